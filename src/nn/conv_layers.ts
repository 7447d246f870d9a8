/**
 * Image layers (channels last, `[batch, height, width, channels]`): Conv2D, MaxPooling2D,
 * AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D and BatchNormalization, plus the
 * graph layers of the functional API: InputLayer and Add. Sizes are checked when a model is built
 * (or when a layer is applied to a symbol), with errors that name the layer and both shapes.
 * @module
 */
import { WgradError } from "../errors.ts";
import { add } from "../ops/binary.ts";
import { concat } from "../ops/concat.ts";
import { axisPadding, conv2d, conv2dGeometry, type Padding, paddingOf, pair } from "../ops/conv.ts";
import { avgPool2d, globalAvgPool2d, globalMaxPool2d, maxPool2d } from "../ops/pool.ts";
import { batchNorm } from "../ops/batchnorm.ts";
import { softmax } from "../ops/softmax.ts";
import { reshape } from "../ops/transform.ts";
import type { Tensor } from "../tensor.ts";
import { epilogueName } from "./activations.ts";
import { type Initializer, type InitializerLike, resolveInitializer } from "./initializers.ts";
import {
  type CallContext,
  type DenseOptions,
  fmtBatchShape,
  kernelAndBias,
  kernelConfig,
  KernelLayer,
  Layer,
  serializeInit,
  serializeReg,
  type WeightSpec,
} from "./layers.ts";
import type { Regularizer } from "./regularizers.ts";
import { type GraphNode, type RankedSymbol, type RankOf, SymbolicTensor } from "./symbolic.ts";

/** A size given once for both spatial axes, or as `[height, width]`. */
export type Size2 = number | readonly [number, number];

/** Checks that a sample is an image `[height, width, channels]`. */
function checkImage(input: readonly number[], where: string, what = "inputs"): void {
  if (input.length !== 3) {
    throw new WgradError(
      "shape",
      `${where} takes ${what} of rank 4 (None, height, width, channels), got ${
        fmtBatchShape(input)
      } (rank ${input.length + 1})${
        input.length === 1 ? "; reshape flat samples first, e.g. nn.reshape([28, 28, 1])" : ""
      }`,
    );
  }
}

/** Options of {@linkcode Conv2D}: Dense's options and the window's geometry. */
export interface Conv2DOptions extends DenseOptions {
  /** Kernel height and width (required): 5 or [5, 5]. */
  kernelSize: Size2;
  /** Strides (default 1). */
  strides?: Size2;
  /** `"valid"` (default, as Keras) or `"same"` (TensorFlow's placement). */
  padding?: Padding;
  /** Dilation rate (Keras's `dilation_rate`, default 1). */
  dilation?: Size2;
}

/**
 * A 2-D convolution, `activation(conv(x, kernel) + bias)`, channels last, with Keras's kernel
 * layout `[kh, kw, in channels, filters]`. Runs as one implicit-GEMM kernel with the bias and the
 * activation fused (softmax, the exception, runs after it).
 */
export class Conv2D extends KernelLayer {
  readonly className = "Conv2D";
  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: Padding;
  readonly dilation: [number, number];

  /** @param filters output channels */
  constructor(filters: number, options: Conv2DOptions) {
    super(options ?? {}, "nn.conv2d");
    const op = "nn.conv2d";
    if (!Number.isInteger(filters) || filters < 1) {
      throw new WgradError("value", `${op}: filters must be a positive integer, got ${filters}`);
    }
    if (!options || options.kernelSize === undefined) {
      throw new WgradError("value", `${op}: kernelSize is required, e.g. { kernelSize: 3 }`);
    }
    this.filters = filters;
    this.kernelSize = pair(op, "kernelSize", options.kernelSize, 1);
    this.strides = pair(op, "strides", options.strides, 1);
    this.dilation = pair(op, "dilation", options.dilation, 1);
    this.padding = paddingOf(op, options.padding);
    if (this.strides.some((s) => s > 1) && this.dilation.some((d) => d > 1)) {
      throw new WgradError(
        "value",
        `${op}: strides > 1 together with dilation > 1 is not supported (as in TensorFlow)`,
      );
    }
  }

  /** Applies the layer to a symbol of rank 4. */
  override apply<R extends number>(x: SymbolicTensor<R> & RankedSymbol<R, 4>): SymbolicTensor<4> {
    return super.apply(x) as SymbolicTensor<4>;
  }

  computeOutputShape(input: readonly number[]): number[] {
    checkImage(input, this.where());
    const [kh, kw] = this.kernelSize;
    const g = conv2dGeometry(
      this.where(),
      [1, ...input],
      [kh, kw, input[2], this.filters],
      { strides: this.strides, padding: this.padding, dilation: this.dilation },
      `input ${fmtBatchShape(input)} and a ${kh}×${kw} kernel (padding "${this.padding}", ` +
        `strides ${this.strides.join("×")}, dilation ${this.dilation.join("×")})`,
    );
    return [g.ho, g.wo, this.filters];
  }

  override weightSpecs(input: readonly number[]): WeightSpec[] {
    return kernelAndBias(
      this,
      [...this.kernelSize, input[input.length - 1], this.filters],
      this.filters,
    );
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    const [w, b] = this.weights;
    const fused = this.activation !== "softmax";
    const y = conv2d(x, w, {
      strides: this.strides,
      padding: this.padding,
      dilation: this.dilation,
      bias: b ?? null,
      activation: (fused ? epilogueName(this.activation) : "linear") as never,
      alpha: this.alpha,
    });
    if (fused) return y;
    const out = softmax(y);
    y.dispose();
    return out;
  }

  getConfig(): Record<string, unknown> {
    return {
      filters: this.filters,
      kernel_size: this.kernelSize,
      strides: this.strides,
      padding: this.padding,
      dilation_rate: this.dilation,
      activation: this.activation,
      alpha: this.alpha,
      ...kernelConfig(this),
    };
  }
}

/** Options of {@linkcode MaxPooling2D} and {@linkcode AveragePooling2D}. */
export interface Pool2DOptions {
  /** Window height and width (default 2). */
  poolSize?: Size2;
  /** Strides (default: the pool size, as Keras). */
  strides?: Size2;
  /** `"valid"` (default) or `"same"`. */
  padding?: Padding;
  /** Explicit layer name. */
  name?: string;
}

abstract class Pool2DBase extends Layer {
  readonly poolSize: [number, number];
  readonly strides: [number, number];
  readonly padding: Padding;

  constructor(op: string, options: Pool2DOptions = {}) {
    super(options.name);
    this.poolSize = pair(op, "poolSize", options.poolSize, 2);
    this.strides = options.strides === undefined
      ? [...this.poolSize]
      : pair(op, "strides", options.strides, 1);
    this.padding = paddingOf(op, options.padding);
  }

  /** Applies the layer to a symbol of rank 4. */
  override apply<R extends number>(x: SymbolicTensor<R> & RankedSymbol<R, 4>): SymbolicTensor<4> {
    return super.apply(x) as SymbolicTensor<4>;
  }

  computeOutputShape(input: readonly number[]): number[] {
    checkImage(input, this.where());
    const [h, w, c] = input;
    const py = axisPadding(h, this.poolSize[0], this.strides[0], 1, this.padding);
    const px = axisPadding(w, this.poolSize[1], this.strides[1], 1, this.padding);
    if (py.out <= 0 || px.out <= 0) {
      throw new WgradError(
        "shape",
        `${this.where()}: the ${this.poolSize.join("×")} window does not fit the input ${
          fmtBatchShape(input)
        } under "valid" padding (the output would be empty)`,
      );
    }
    return [py.out, px.out, c];
  }

  protected get poolOptions(): { poolSize: Size2; strides: Size2; padding: Padding } {
    return { poolSize: this.poolSize, strides: this.strides, padding: this.padding };
  }

  getConfig(): Record<string, unknown> {
    return { pool_size: this.poolSize, strides: this.strides, padding: this.padding };
  }
}

/** The maximum of each window (Keras's `MaxPooling2D`). */
export class MaxPooling2D extends Pool2DBase {
  readonly className = "MaxPooling2D";

  /** @param options pool size (default 2), strides (default the pool size), padding */
  constructor(options: Pool2DOptions = {}) {
    super("nn.maxPool2d", options);
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return maxPool2d(x, this.poolOptions);
  }
}

/** The mean of each window, padding excluded (Keras's `AveragePooling2D`). */
export class AveragePooling2D extends Pool2DBase {
  readonly className = "AveragePooling2D";

  /** @param options pool size (default 2), strides (default the pool size), padding */
  constructor(options: Pool2DOptions = {}) {
    super("nn.avgPool2d", options);
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return avgPool2d(x, this.poolOptions);
  }
}

abstract class GlobalPool2DBase extends Layer {
  /** Applies the layer to a symbol of rank 4; the result has rank 2. */
  override apply<R extends number>(x: SymbolicTensor<R> & RankedSymbol<R, 4>): SymbolicTensor<2> {
    return super.apply(x) as SymbolicTensor<2>;
  }

  computeOutputShape(input: readonly number[]): number[] {
    checkImage(input, this.where());
    return [input[2]];
  }

  getConfig(): Record<string, unknown> {
    return {};
  }
}

/** The mean over height and width per channel: `[N, H, W, C]` → `[N, C]`. */
export class GlobalAveragePooling2D extends GlobalPool2DBase {
  readonly className = "GlobalAveragePooling2D";

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return globalAvgPool2d(x);
  }
}

/** The maximum over height and width per channel: `[N, H, W, C]` → `[N, C]`. */
export class GlobalMaxPooling2D extends GlobalPool2DBase {
  readonly className = "GlobalMaxPooling2D";

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return globalMaxPool2d(x);
  }
}

/** Options of {@linkcode BatchNormalization}. */
export interface BatchNormOptions {
  /** Weight of the old moving statistics in their update (default 0.99, as Keras). */
  momentum?: number;
  /** Added to the variance (default 1e-3, as Keras). */
  epsilon?: number;
  /** Initializer of γ (default ones). */
  gammaInitializer?: InitializerLike;
  /** Initializer of β (default zeros). */
  betaInitializer?: InitializerLike;
  /** Initializer of the moving mean (default zeros). */
  movingMeanInitializer?: InitializerLike;
  /** Initializer of the moving variance (default ones). */
  movingVarianceInitializer?: InitializerLike;
  /** Penalty on γ. */
  gammaRegularizer?: Regularizer;
  /** Penalty on β. */
  betaRegularizer?: Regularizer;
  /** Explicit layer name. */
  name?: string;
}

/**
 * Batch normalisation over the last axis (Keras's `BatchNormalization` with `axis=-1`): in fit,
 * each batch is normalised with its own mean and variance and the moving statistics are updated
 * (`moving = moving·momentum + batch·(1 − momentum)`); in evaluate and predict the moving
 * statistics are used. Weights: `gamma`, `beta` (trained) and `moving_mean`, `moving_variance`
 * (not trained, saved with the model).
 */
export class BatchNormalization extends Layer {
  readonly className = "BatchNormalization";
  readonly momentum: number;
  readonly epsilon: number;
  readonly gammaInitializer: Initializer;
  readonly betaInitializer: Initializer;
  readonly movingMeanInitializer: Initializer;
  readonly movingVarianceInitializer: Initializer;
  readonly gammaRegularizer?: Regularizer;
  readonly betaRegularizer?: Regularizer;

  /** @param options momentum, epsilon, initializers and regularizers */
  constructor(options: BatchNormOptions = {}) {
    super(options.name);
    const op = "nn.batchNorm";
    this.momentum = options.momentum ?? 0.99;
    this.epsilon = options.epsilon ?? 1e-3;
    if (!(this.momentum >= 0 && this.momentum <= 1)) {
      throw new WgradError("value", `${op}: momentum must be in [0, 1], got ${this.momentum}`);
    }
    if (!(this.epsilon > 0) || !Number.isFinite(this.epsilon)) {
      throw new WgradError(
        "value",
        `${op}: epsilon must be a positive number, got ${this.epsilon}`,
      );
    }
    this.gammaInitializer = resolveInitializer(options.gammaInitializer ?? "ones", op);
    this.betaInitializer = resolveInitializer(options.betaInitializer ?? "zeros", op);
    this.movingMeanInitializer = resolveInitializer(options.movingMeanInitializer ?? "zeros", op);
    this.movingVarianceInitializer = resolveInitializer(
      options.movingVarianceInitializer ?? "ones",
      op,
    );
    this.gammaRegularizer = options.gammaRegularizer;
    this.betaRegularizer = options.betaRegularizer;
  }

  /** Applies the layer to a symbol (rank 2 or more); the rank is kept. */
  override apply<R extends number>(x: SymbolicTensor<R>): SymbolicTensor<R> {
    return super.apply(x) as SymbolicTensor<R>;
  }

  computeOutputShape(input: readonly number[]): number[] {
    if (input.length < 1) {
      throw new WgradError(
        "shape",
        `${this.where()} needs a feature axis to normalise, got ${fmtBatchShape(input)}`,
      );
    }
    return [...input];
  }

  override weightSpecs(input: readonly number[]): WeightSpec[] {
    const c = [input[input.length - 1]];
    return [
      {
        name: "gamma",
        shape: c,
        initializer: this.gammaInitializer,
        regularizer: this.gammaRegularizer,
        trainable: true,
      },
      {
        name: "beta",
        shape: c,
        initializer: this.betaInitializer,
        regularizer: this.betaRegularizer,
        trainable: true,
      },
      { name: "moving_mean", shape: c, initializer: this.movingMeanInitializer, trainable: false },
      {
        name: "moving_variance",
        shape: c,
        initializer: this.movingVarianceInitializer,
        trainable: false,
      },
    ];
  }

  call(x: Tensor<"f32">, ctx: CallContext): Tensor<"f32"> {
    const [gamma, beta, movingMean, movingVar] = this.weights;
    const flat = x.rank === 2 ? null : reshape(x, [-1, x.shape[x.rank - 1]]);
    const y = batchNorm(flat ?? x, gamma, beta, {
      // Frozen (trainable false), it normalises with its moving statistics, as Keras does.
      training: ctx.training && this.trainable,
      movingMean,
      movingVar,
      momentum: this.momentum,
      epsilon: this.epsilon,
    });
    if (!flat) return y;
    const out = reshape(y, x.shape);
    flat.dispose();
    y.dispose();
    return out;
  }

  getConfig(): Record<string, unknown> {
    return {
      axis: -1,
      momentum: this.momentum,
      epsilon: this.epsilon,
      gamma_initializer: serializeInit(this.gammaInitializer),
      beta_initializer: serializeInit(this.betaInitializer),
      moving_mean_initializer: serializeInit(this.movingMeanInitializer),
      moving_variance_initializer: serializeInit(this.movingVarianceInitializer),
      gamma_regularizer: serializeReg(this.gammaRegularizer),
      beta_regularizer: serializeReg(this.betaRegularizer),
    };
  }
}

/** The input of a functional model (Keras's `InputLayer`); made by `nn.input`. */
export class InputLayer extends Layer {
  readonly className = "InputLayer";
  /** The shape of one sample. */
  readonly shape: readonly number[];

  /** @param shape one sample's shape */
  constructor(shape: readonly number[], options: { name?: string } = {}) {
    super(options.name);
    if (
      !Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 1)
    ) {
      throw new WgradError(
        "shape",
        `nn.input: the shape of one sample must list positive integers, got ${
          JSON.stringify(shape)
        }`,
      );
    }
    this.shape = Object.freeze([...shape]);
    this.inputShape = [...shape];
    this.outputShape = [...shape];
  }

  /** @internal Makes the model input symbol (once; `nn.input` calls it). */
  symbol<S extends readonly number[]>(): SymbolicTensor<RankOf<S>> {
    if (this.nodes.length) return this.nodes[0].output as SymbolicTensor<RankOf<S>>;
    const node: { layer: Layer; inputs: SymbolicTensor[]; output: SymbolicTensor | null } = {
      layer: this,
      inputs: [],
      output: null,
    };
    node.output = new SymbolicTensor(this.shape, node as GraphNode, this.name || "input");
    this.nodes.push(node as GraphNode);
    return node.output as SymbolicTensor<RankOf<S>>;
  }

  override apply(): never {
    throw new WgradError(
      "value",
      `${this.where()}: an input layer is not applied to symbols; nn.input() returns its symbol`,
    );
  }

  computeOutputShape(input: readonly number[]): number[] {
    return [...input];
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return x;
  }

  getConfig(): Record<string, unknown> {
    return { batch_shape: [null, ...this.shape] };
  }
}

/** The element-wise sum of several inputs of one shape (Keras's `Add`), e.g. a residual link. */
export class Add extends Layer {
  readonly className = "Add";

  /** Applies the layer to two or more symbols of one shape. */
  override apply<R extends number>(xs: readonly SymbolicTensor<R>[]): SymbolicTensor<R> {
    if (!Array.isArray(xs)) {
      throw new WgradError(
        "value",
        `${this.where()}.apply takes an array of two or more symbols, e.g. add.apply([x, y])`,
      );
    }
    return super.apply(xs) as SymbolicTensor<R>;
  }

  computeOutputShape(input: readonly number[]): number[] {
    return [...input];
  }

  override computeOutputShapeMany(inputs: readonly (readonly number[])[]): number[] {
    if (inputs.length < 2) {
      throw new WgradError(
        "value",
        `${this.where()} needs two or more inputs, got ${inputs.length}`,
      );
    }
    const first = fmtBatchShape(inputs[0]);
    inputs.forEach((s, i) => {
      if (fmtBatchShape(s) !== first) {
        throw new WgradError(
          "shape",
          `${this.where()}: input ${i} ${fmtBatchShape(s)} does not match input 0 ${first}`,
        );
      }
    });
    return [...inputs[0]];
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return x;
  }

  override callMany(xs: readonly Tensor<"f32">[]): Tensor<"f32"> {
    let total = add(xs[0], xs[1]);
    for (let i = 2; i < xs.length; i++) {
      const next = add(total, xs[i]);
      total.dispose();
      total = next;
    }
    return total;
  }

  getConfig(): Record<string, unknown> {
    return {};
  }
}

/** Joins several inputs along an axis (Keras's `Concatenate`; default the last, the channels). */
export class Concatenate extends Layer {
  readonly className = "Concatenate";
  /** The axis, counting the batch axis as Keras does (-1, the last, by default). */
  readonly axis: number;

  /** @param options the axis (default -1) and an explicit name */
  constructor(options: { axis?: number; name?: string } = {}) {
    super(options.name);
    this.axis = options.axis ?? -1;
    if (!Number.isInteger(this.axis) || this.axis === 0) {
      throw new WgradError(
        "value",
        `nn.concatenate: axis must be a non-zero integer (0 is the batch axis), got ${this.axis}`,
      );
    }
  }

  /** Applies the layer to two or more symbols of one rank. */
  override apply<R extends number>(xs: readonly SymbolicTensor<R>[]): SymbolicTensor<R> {
    if (!Array.isArray(xs)) {
      throw new WgradError(
        "value",
        `${this.where()}.apply takes an array of symbols, e.g. concatenate.apply([x, y])`,
      );
    }
    return super.apply(xs) as SymbolicTensor<R>;
  }

  /** The axis within one sample's shape (without the batch axis). */
  #sampleAxis(rank: number): number {
    return this.axis < 0 ? this.axis + rank : this.axis - 1;
  }

  computeOutputShape(input: readonly number[]): number[] {
    return this.computeOutputShapeMany([input]);
  }

  override computeOutputShapeMany(inputs: readonly (readonly number[])[]): number[] {
    if (inputs.length < 1) {
      throw new WgradError("value", `${this.where()} needs at least one input`);
    }
    const rank = inputs[0].length;
    const a = this.#sampleAxis(rank);
    if (a < 0 || a >= rank) {
      throw new WgradError(
        "shape",
        `${this.where()}: axis ${this.axis} is out of range for inputs ${fmtBatchShape(inputs[0])}`,
      );
    }
    inputs.forEach((s, i) => {
      if (s.length !== rank || s.some((d, k) => k !== a && d !== inputs[0][k])) {
        throw new WgradError(
          "shape",
          `${this.where()}: input ${i} ${fmtBatchShape(s)} does not match input 0 ${
            fmtBatchShape(inputs[0])
          } outside axis ${this.axis}`,
        );
      }
    });
    const out = [...inputs[0]];
    out[a] = inputs.reduce((p, s) => p + s[a], 0);
    return out;
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return this.callMany([x]);
  }

  override callMany(xs: readonly Tensor<"f32">[]): Tensor<"f32"> {
    return concat(xs, this.#sampleAxis(xs[0].rank - 1) + 1);
  }

  getConfig(): Record<string, unknown> {
    return { axis: this.axis };
  }
}
