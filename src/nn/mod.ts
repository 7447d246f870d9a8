/**
 * Layers and models, Keras-style: `nn.sequential([nn.flatten(), nn.dense(128, { activation:
 * "relu" }), nn.dense(10)], { inputShape: [28, 28] })`, or the functional form:
 *
 * ```ts
 * const x = nn.input([28, 28, 1]);
 * const c = nn.conv2d(6, { kernelSize: 5, padding: "same", activation: "tanh" }).apply(x);
 * const y = nn.dense(10).apply(nn.flatten().apply(nn.maxPool2d().apply(c)));
 * const model = nn.model({ inputs: x, outputs: y });
 * ```
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
import {
  Add,
  AveragePooling2D,
  BatchNormalization,
  type BatchNormOptions,
  Concatenate,
  Conv2D,
  type Conv2DOptions,
  GlobalAveragePooling2D,
  GlobalMaxPooling2D,
  InputLayer,
  MaxPooling2D,
  type Pool2DOptions,
} from "./conv_layers.ts";
import { Functional } from "./functional.ts";
import type { RankOf, SymbolicTensor } from "./symbolic.ts";
import type { Tensor } from "../tensor.ts";

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
export {
  Add,
  AveragePooling2D,
  BatchNormalization,
  type BatchNormOptions,
  Concatenate,
  Conv2D,
  type Conv2DOptions,
  GlobalAveragePooling2D,
  GlobalMaxPooling2D,
  InputLayer,
  MaxPooling2D,
  type Pool2DOptions,
  type Size2,
} from "./conv_layers.ts";
export { Functional, type FunctionalOptions } from "./functional.ts";
export { Model, type SummaryRow, type WeightEntry } from "./model.ts";
export { type GraphNode, type RankedSymbol, type RankOf, SymbolicTensor } from "./symbolic.ts";
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
export function reshape<const S extends readonly number[]>(
  targetShape: S,
  options: { name?: string } = {},
): Reshape<RankOf<S>> {
  return new Reshape<RankOf<S>>(targetShape, options);
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

/**
 * A 2-D convolution with `filters` output channels (channels last): `nn.conv2d(32, { kernelSize:
 * 3, padding: "same", activation: "relu" })`. Takes rank-4 inputs `(None, height, width,
 * channels)`.
 */
export function conv2d(filters: number, options: Conv2DOptions): Conv2D {
  return new Conv2D(filters, options);
}

/** Max pooling (default 2×2 windows, strides equal to the window, "valid" padding). */
export function maxPool2d(options: Pool2DOptions = {}): MaxPooling2D {
  return new MaxPooling2D(options);
}

/** Average pooling (default 2×2 windows, strides equal to the window, "valid" padding). */
export function avgPool2d(options: Pool2DOptions = {}): AveragePooling2D {
  return new AveragePooling2D(options);
}

/** The mean over height and width of each channel: `(None, h, w, c)` → `(None, c)`. */
export function globalAvgPool2d(options: { name?: string } = {}): GlobalAveragePooling2D {
  return new GlobalAveragePooling2D(options.name);
}

/** The maximum over height and width of each channel: `(None, h, w, c)` → `(None, c)`. */
export function globalMaxPool2d(options: { name?: string } = {}): GlobalMaxPooling2D {
  return new GlobalMaxPooling2D(options.name);
}

/** Batch normalisation over the last axis (momentum 0.99 and epsilon 1e-3 by default, as Keras). */
export function batchNorm(options: BatchNormOptions = {}): BatchNormalization {
  return new BatchNormalization(options);
}

/** The element-wise sum of two or more symbols of one shape: `nn.add().apply([x, y])`. */
export function add(options: { name?: string } = {}): Add {
  return new Add(options.name);
}

/** Joins two or more symbols along `axis` (default -1, the channels): `nn.concatenate().apply([x, y])`. */
export function concatenate(options: { axis?: number; name?: string } = {}): Concatenate {
  return new Concatenate(options);
}

/**
 * A model input: a symbol for batches of samples of `shape` (without the batch axis). Its rank,
 * batch axis included, is in its type: `nn.input([28, 28, 1])` is a `SymbolicTensor<4>`.
 */
export function input<const S extends readonly number[]>(
  shape: S,
  options: { name?: string } = {},
): SymbolicTensor<RankOf<S>> {
  return new InputLayer(shape, options).symbol<S>();
}

/**
 * A functional model from input symbols to output symbols (Keras's `Model(inputs, outputs)`).
 * With an array of outputs, `predict` returns an array of tensors, one per output; layers shared
 * with another model keep their (trained) weights.
 */
export function model(
  options: { inputs: SymbolicTensor | readonly SymbolicTensor[]; outputs: SymbolicTensor } & {
    name?: string;
    seed?: number;
  },
): Functional<Tensor<"f32">>;
/** With an array of outputs: `predict` resolves to one tensor per output. */
export function model(
  options: {
    inputs: SymbolicTensor | readonly SymbolicTensor[];
    outputs: readonly SymbolicTensor[];
  } & { name?: string; seed?: number },
): Functional<Tensor<"f32">[]>;
export function model(
  options: {
    inputs: SymbolicTensor | readonly SymbolicTensor[];
    outputs: SymbolicTensor | readonly SymbolicTensor[];
    name?: string;
    seed?: number;
  },
): Functional<Tensor<"f32"> | Tensor<"f32">[]> {
  return new Functional(options);
}
