/**
 * Element-wise unary ops: neg, abs, exp, log, sqrt, square, relu, sigmoid, tanh, elu, leaky relu,
 * gelu, reciprocal, sign.
 * @module
 */
import unarySrc from "../../shaders/unary.wgsl" with { type: "text" };
import unaryIntSrc from "../../shaders/unary_int.wgsl" with { type: "text" };
import unaryGradSrc from "../../shaders/unary_grad.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import { type DType, makeTensor, type Tensor } from "../tensor.ts";
import { checkInputs, grid } from "./util.ts";

const UNARY = { name: "unary", code: unarySrc };
const UNARY_INT = { name: "unary_int", code: unaryIntSrc };
const UNARY_GRAD = { name: "unary_grad", code: unaryGradSrc };

/** Unary op codes, as numbered in `shaders/unary.wgsl`. */
export const UNARY_OPS = {
  neg: 0,
  abs: 1,
  exp: 2,
  log: 3,
  sqrt: 4,
  square: 5,
  relu: 6,
  sigmoid: 7,
  tanh: 8,
  elu: 9,
  leakyRelu: 10,
  gelu: 11,
  geluTanh: 12,
  reciprocal: 13,
  sign: 14,
} as const;

/** The name of a unary op. */
export type UnaryOp = keyof typeof UNARY_OPS;

const INT_OPS: ReadonlySet<UnaryOp> = new Set(["neg", "abs", "square", "relu", "sign"]);

/**
 * The gradient of unary op `op`: `dy · f'(x)`, from the op's input `x`, its output `y` and the
 * output's gradient `dy` (all f32, one shape). `sign` has no gradient (zeros).
 */
export function unaryGrad(
  op: UnaryOp,
  x: Tensor<"f32">,
  y: Tensor<"f32">,
  dy: Tensor<"f32">,
  alpha = 0,
): Tensor<"f32"> {
  const name = `${op} gradient`;
  checkInputs(name, [x, y, dy], ["f32"]);
  if (x.size !== y.size || x.size !== dy.size) {
    throw new WgradError(
      "shape",
      `${name}: ${x.describe()}, ${y.describe()} and ${dy.describe()} must have one size`,
    );
  }
  const out = makeTensor(x.shape, "f32");
  schedule((rt) => {
    const label = `${name} ${x.describe()}`;
    const s = rt.alloc(x.size * 4, label);
    out.setStorage(s);
    if (x.size === 0) return;
    const g = grid(x.size);
    const u = new Uint32Array([x.size, g.stride, 0, 0]);
    new Float32Array(u.buffer)[2] = alpha;
    rt.dispatch({
      kernel: UNARY_GRAD,
      constants: { OP: UNARY_OPS[op] },
      bindings: [x.storage, y.storage, dy.storage, s, u],
      workgroups: g.groups,
      label,
    });
  });
  return out;
}

/** Runs unary op `op` on `x`. `alpha` parameterises elu and leaky relu. */
export function unary<D extends DType>(op: UnaryOp, x: Tensor<D>, alpha = 0): Tensor<D> {
  const isInt = INT_OPS.has(op);
  checkInputs(op, [x], isInt ? ["f32", "i32"] : ["f32"]);
  if (!Number.isFinite(alpha)) {
    throw new WgradError("value", `${op}: alpha must be finite, got ${alpha}`);
  }
  const out = makeTensor(x.shape, x.dtype);
  schedule((rt) => {
    const label = `${op} ${x.describe()}`;
    const s = rt.alloc(x.size * 4, label);
    out.setStorage(s);
    if (x.size === 0) return;
    const g = grid(x.size);
    const u = new Uint32Array([x.size, g.stride, 0, 0]);
    new Float32Array(u.buffer)[2] = alpha;
    rt.dispatch({
      kernel: x.dtype === "f32" ? UNARY : UNARY_INT,
      constants: { OP: UNARY_OPS[op] },
      bindings: [x.storage, s, u],
      workgroups: g.groups,
      label,
    });
  });
  if (x.dtype === "f32" && recording([x])) {
    const xf = x as Tensor<"f32">, yf = out as Tensor<"f32">;
    record(op, [x], out, (dy) => [op === "sign" ? null : unaryGrad(op, xf, yf, dy, alpha)]);
  }
  return out;
}

/** −x. */
export function neg<D extends "f32" | "i32">(x: Tensor<D>): Tensor<D> {
  return unary("neg", x);
}
/** |x|. */
export function abs<D extends "f32" | "i32">(x: Tensor<D>): Tensor<D> {
  return unary("abs", x);
}
/** eˣ. */
export function exp(x: Tensor<"f32">): Tensor<"f32"> {
  return unary("exp", x);
}
/** Natural logarithm. */
export function log(x: Tensor<"f32">): Tensor<"f32"> {
  return unary("log", x);
}
/** Square root. */
export function sqrt(x: Tensor<"f32">): Tensor<"f32"> {
  return unary("sqrt", x);
}
/** x². */
export function square<D extends "f32" | "i32">(x: Tensor<D>): Tensor<D> {
  return unary("square", x);
}
/** 1 / x. */
export function reciprocal(x: Tensor<"f32">): Tensor<"f32"> {
  return unary("reciprocal", x);
}
/** −1, 0 or 1. */
export function sign<D extends "f32" | "i32">(x: Tensor<D>): Tensor<D> {
  return unary("sign", x);
}
/** max(x, 0). */
export function relu<D extends "f32" | "i32">(x: Tensor<D>): Tensor<D> {
  return unary("relu", x);
}
/** 1 / (1 + e⁻ˣ), computed without overflow for large |x|. */
export function sigmoid(x: Tensor<"f32">): Tensor<"f32"> {
  return unary("sigmoid", x);
}
/** Hyperbolic tangent, computed without overflow for large |x|. */
export function tanh(x: Tensor<"f32">): Tensor<"f32"> {
  return unary("tanh", x);
}
/** x for x > 0, else alpha·(eˣ − 1) (Keras default alpha 1). */
export function elu(x: Tensor<"f32">, alpha = 1): Tensor<"f32"> {
  return unary("elu", x, alpha);
}
/** x for x > 0, else alpha·x (default alpha 0.2, as `tf.nn.leaky_relu` and Keras 3). */
export function leakyRelu(x: Tensor<"f32">, alpha = 0.2): Tensor<"f32"> {
  return unary("leakyRelu", x, alpha);
}
/**
 * Gaussian error linear unit, x·Φ(x). Exact (erf-based, Keras's default) unless
 * `approximate` is true, which uses the tanh form.
 */
export function gelu(x: Tensor<"f32">, approximate = false): Tensor<"f32"> {
  return unary(approximate ? "geluTanh" : "gelu", x);
}
