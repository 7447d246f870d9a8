/**
 * Layers and models, Keras-style: `nn.sequential([nn.flatten(), nn.dense(128, { activation:
 * "relu" }), nn.dense(10)], { inputShape: [28, 28] })`.
 * @module
 */
import {
  Activation,
  Dense,
  type DenseOptions,
  Dropout,
  Flatten,
  type Layer,
  Reshape,
} from "./layers.ts";
import { Sequential, type SequentialOptions } from "./sequential.ts";

export {
  Activation,
  Dense,
  type DenseOptions,
  Dropout,
  Flatten,
  Layer,
  Reshape,
} from "./layers.ts";
export type { CallContext, WeightSpec } from "./layers.ts";
export { Sequential, type SequentialOptions } from "./sequential.ts";
export * as initializers from "./initializers.ts";
export * as regularizers from "./regularizers.ts";
export { type ActivationName, ACTIVATIONS } from "./activations.ts";
export { loadModel } from "../io/model.ts";

/** A stack of layers; with `inputShape` it is built (weights made) at once. */
export function sequential(layers: readonly Layer[], options: SequentialOptions = {}): Sequential {
  return new Sequential(layers, options);
}

/** A fully connected layer with `units` outputs: activation(x·W + b). */
export function dense(units: number, options: DenseOptions = {}): Dense {
  return new Dense(units, options);
}

/** Flattens each sample to one axis. */
export function flatten(options: { name?: string } = {}): Flatten {
  const f = new Flatten(options.name);
  return f;
}

/** Reshapes each sample to `targetShape` (one dimension may be -1). */
export function reshape(targetShape: readonly number[], options: { name?: string } = {}): Reshape {
  return new Reshape(targetShape, options);
}

/** Applies an activation by name ("relu", "softmax", …). */
export function activation(
  name: string,
  options: { alpha?: number; name?: string } = {},
): Activation {
  return new Activation(name, options);
}

/** Inverted dropout at `rate` in training; the identity in evaluate and predict. */
export function dropout(rate: number, options: { name?: string } = {}): Dropout {
  return new Dropout(rate, options);
}
