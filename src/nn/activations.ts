/**
 * Activation names, as Keras spells them, and their element-wise implementations.
 * @module
 */
import { WgradError } from "../errors.ts";
import type { Tensor } from "../tensor.ts";
import { elu, gelu, leakyRelu, relu, sigmoid, tanh } from "../ops/unary.ts";
import { reshape } from "../ops/transform.ts";

/** The activations every layer accepts, by their canonical names. */
export const ACTIVATIONS = [
  "linear",
  "relu",
  "sigmoid",
  "tanh",
  "elu",
  "leaky_relu",
  "gelu",
  "gelu_tanh",
  "softmax",
] as const;

/** A canonical activation name. */
export type ActivationName = typeof ACTIVATIONS[number];

/** Accepted spellings: the canonical names, camelCase forms, and Keras's aliases. */
export type ActivationLike = ActivationName | "leakyRelu" | "geluTanh" | null | undefined;

const ALIASES: Record<string, ActivationName> = {
  linear: "linear",
  relu: "relu",
  sigmoid: "sigmoid",
  tanh: "tanh",
  elu: "elu",
  leaky_relu: "leaky_relu",
  leakyrelu: "leaky_relu",
  gelu: "gelu",
  gelu_tanh: "gelu_tanh",
  gelutanh: "gelu_tanh",
  softmax: "softmax",
};

/** Resolves an activation spelling to its canonical name, or throws naming `where` and the known ones. */
export function resolveActivation(a: string | null | undefined, where: string): ActivationName {
  if (a === null || a === undefined) return "linear";
  const key = String(a).toLowerCase();
  const name = ALIASES[key] ?? ALIASES[key.replace(/_/g, "")];
  if (!name) {
    throw new WgradError(
      "value",
      `${where}: unknown activation "${a}"; known: ${ACTIVATIONS.join(", ")}`,
    );
  }
  return name;
}

/** The default alpha of an activation (elu 1, leaky relu 0.2 as Keras 3; others unused). */
export function defaultAlpha(a: ActivationName): number {
  return a === "elu" ? 1 : a === "leaky_relu" ? 0.2 : 0;
}

/** The name the matmul epilogue uses for an activation. */
export function epilogueName(a: ActivationName): string {
  return a === "leaky_relu" ? "leakyRelu" : a === "gelu_tanh" ? "geluTanh" : a;
}

/**
 * Applies an activation element-wise (softmax over the last axis). `softmaxFn` comes from the
 * softmax op family.
 */
export function applyActivation(
  x: Tensor<"f32">,
  a: ActivationName,
  alpha: number,
  softmaxFn: (x: Tensor<"f32">) => Tensor<"f32">,
): Tensor<"f32"> {
  switch (a) {
    case "linear":
      return reshape(x, x.shape);
    case "relu":
      return relu(x);
    case "sigmoid":
      return sigmoid(x);
    case "tanh":
      return tanh(x);
    case "elu":
      return elu(x, alpha);
    case "leaky_relu":
      return leakyRelu(x, alpha);
    case "gelu":
      return gelu(x, false);
    case "gelu_tanh":
      return gelu(x, true);
    case "softmax":
      return softmaxFn(x);
  }
}
