/**
 * Layers: Dense, Flatten, Reshape, Activation, Dropout. A layer knows its output shape for an
 * input shape (checked when the model is built), the weights it needs, and how to apply itself
 * to a batch with the ops; it never touches GPU memory directly.
 * @module
 */
import { WgradError } from "../errors.ts";
import { linear } from "../ops/matmul.ts";
import { dropout } from "../ops/dropout.ts";
import { softmax } from "../ops/softmax.ts";
import { reshape } from "../ops/transform.ts";
import type { Tensor } from "../tensor.ts";
import {
  type ActivationLike,
  type ActivationName,
  applyActivation,
  defaultAlpha,
  epilogueName,
  resolveActivation,
} from "./activations.ts";
import { type Initializer, type InitializerLike, resolveInitializer } from "./initializers.ts";
import type { Regularizer } from "./regularizers.ts";

/** A weight a layer asks for. */
export interface WeightSpec {
  /** The weight's name within the layer: `"kernel"`, `"bias"`. */
  name: string;
  /** Its shape. */
  shape: number[];
  /** How to fill it initially. */
  initializer: Initializer;
  /** An optional penalty added to the loss. */
  regularizer?: Regularizer;
  /** Whether the optimizer updates it. */
  trainable: boolean;
}

/** What a layer gets when it is applied. */
export interface CallContext {
  /** True in training (dropout active), false in evaluate and predict. */
  training: boolean;
  /** The step state `[seedLo, seedHi, step, batchStart]` that dropout draws from. */
  rng: Tensor<"u32"> | null;
}

/** Shapes in messages: a leading `None` for the batch axis, as Keras prints them. */
export function fmtBatchShape(shape: readonly number[]): string {
  return `(None${shape.map((d) => `, ${d}`).join("")})`;
}

/** A layer of a model. */
export abstract class Layer {
  /** The layer's name, unique within its model (`"dense"`, `"dense_1"`, …). */
  name: string;
  /** The weights, once the model has made them (same order as {@linkcode Layer.weightSpecs}). */
  weights: Tensor<"f32">[] = [];
  /** The input shape without the batch axis, once built. */
  inputShape: number[] | null = null;
  /** The output shape without the batch axis, once built. */
  outputShape: number[] | null = null;
  /** Position in the model, used to vary random streams. */
  index = 0;

  /** @param name an explicit name, or the model assigns one */
  constructor(name?: string) {
    this.name = name ?? "";
  }

  /** The Keras class name, e.g. `"Dense"`. */
  abstract readonly className: string;

  /** The base of automatic names, e.g. `"dense"`. */
  get baseName(): string {
    return this.className.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
  }

  /** The output shape for an input shape (both without the batch axis); throws on bad shapes. */
  abstract computeOutputShape(input: readonly number[]): number[];

  /** The weights this layer needs for an input shape. */
  weightSpecs(_input: readonly number[]): WeightSpec[] {
    return [];
  }

  /** Applies the layer to a batch. */
  abstract call(x: Tensor<"f32">, ctx: CallContext): Tensor<"f32">;

  /** Keras-style configuration (for summaries and model files). */
  abstract getConfig(): Record<string, unknown>;

  /** Records the shapes; called by the model when it is built. */
  build(input: readonly number[]): number[] {
    const out = this.computeOutputShape(input);
    if (out.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new WgradError(
        "shape",
        `layer "${this.name}" (${this.className}): input ${fmtBatchShape(input)} gives an empty ` +
          `output ${fmtBatchShape(out)}`,
      );
    }
    this.inputShape = [...input];
    this.outputShape = out;
    return out;
  }

  /** Number of weights' elements. */
  get paramCount(): number {
    return this.weights.reduce((a, w) => a + w.size, 0);
  }

  /** A message prefix naming the layer. */
  protected where(): string {
    return `layer "${this.name}" (${this.className})`;
  }
}

/** Options of {@linkcode Dense}. */
export interface DenseOptions {
  /** Activation (default linear). */
  activation?: ActivationLike | string;
  /** Slope for elu / leaky relu (defaults 1 and 0.2). */
  alpha?: number;
  /** Add a bias (default true). */
  useBias?: boolean;
  /** Kernel initializer (default glorot uniform). */
  kernelInitializer?: InitializerLike;
  /** Bias initializer (default zeros). */
  biasInitializer?: InitializerLike;
  /** Penalty on the kernel. */
  kernelRegularizer?: Regularizer;
  /** Penalty on the bias. */
  biasRegularizer?: Regularizer;
  /** Explicit layer name. */
  name?: string;
}

/** Keras's `{ class_name, config }` form of an initializer. */
function serializeInit(i: Initializer): { class_name: string; config: Record<string, number> } {
  return { class_name: i.className, config: { ...i.config } };
}

/** Keras's `{ class_name, config }` form of a regularizer, or null. */
function serializeReg(
  r: Regularizer | undefined,
): { class_name: string; config: { l1: number; l2: number } } | null {
  return r ? { class_name: r.className, config: { ...r.config } } : null;
}

/** A fully connected layer: y = activation(x·W + b) over the last axis. */
export class Dense extends Layer {
  readonly className = "Dense";
  readonly units: number;
  readonly activation: ActivationName;
  readonly alpha: number;
  readonly useBias: boolean;
  readonly kernelInitializer: Initializer;
  readonly biasInitializer: Initializer;
  readonly kernelRegularizer?: Regularizer;
  readonly biasRegularizer?: Regularizer;

  /** @param units output features */
  constructor(units: number, options: DenseOptions = {}) {
    super(options.name);
    if (!Number.isInteger(units) || units < 1) {
      throw new WgradError("value", `nn.dense: units must be a positive integer, got ${units}`);
    }
    this.units = units;
    this.activation = resolveActivation(options.activation as string, "nn.dense");
    this.alpha = options.alpha ?? defaultAlpha(this.activation);
    this.useBias = options.useBias ?? true;
    this.kernelInitializer = resolveInitializer(
      options.kernelInitializer ?? "glorot_uniform",
      "nn.dense",
    );
    this.biasInitializer = resolveInitializer(options.biasInitializer ?? "zeros", "nn.dense");
    this.kernelRegularizer = options.kernelRegularizer;
    this.biasRegularizer = options.biasRegularizer;
  }

  computeOutputShape(input: readonly number[]): number[] {
    if (input.length < 1) {
      throw new WgradError(
        "shape",
        `${this.where()}: needs an input with a feature axis, got ${fmtBatchShape(input)}`,
      );
    }
    return [...input.slice(0, -1), this.units];
  }

  override weightSpecs(input: readonly number[]): WeightSpec[] {
    const inFeatures = input[input.length - 1];
    const specs: WeightSpec[] = [{
      name: "kernel",
      shape: [inFeatures, this.units],
      initializer: this.kernelInitializer,
      regularizer: this.kernelRegularizer,
      trainable: true,
    }];
    if (this.useBias) {
      specs.push({
        name: "bias",
        shape: [this.units],
        initializer: this.biasInitializer,
        regularizer: this.biasRegularizer,
        trainable: true,
      });
    }
    return specs;
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    const [w, b] = this.weights;
    const act = epilogueName(this.activation);
    if (x.rank === 2) {
      return linear(x, w, b ?? null, act as never, { alpha: this.alpha });
    }
    const inFeatures = x.shape[x.rank - 1];
    const flat = reshape(x, [-1, inFeatures]);
    const y = linear(flat, w, b ?? null, act as never, { alpha: this.alpha });
    const out = reshape(y, [...x.shape.slice(0, -1), this.units]);
    flat.dispose();
    y.dispose();
    return out;
  }

  getConfig(): Record<string, unknown> {
    return {
      units: this.units,
      activation: this.activation,
      alpha: this.alpha,
      use_bias: this.useBias,
      kernel_initializer: serializeInit(this.kernelInitializer),
      bias_initializer: serializeInit(this.biasInitializer),
      kernel_regularizer: serializeReg(this.kernelRegularizer),
      bias_regularizer: serializeReg(this.biasRegularizer),
    };
  }
}

/** Flattens all axes but the batch axis. */
export class Flatten extends Layer {
  readonly className = "Flatten";

  computeOutputShape(input: readonly number[]): number[] {
    return [input.reduce((a, b) => a * b, 1)];
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return reshape(x, [x.shape[0], -1]);
  }

  getConfig(): Record<string, unknown> {
    return {};
  }
}

/** Reshapes each sample to `targetShape` (one dimension may be -1). */
export class Reshape extends Layer {
  readonly className = "Reshape";
  readonly targetShape: number[];

  /** @param targetShape the shape of one sample */
  constructor(targetShape: readonly number[], options: { name?: string } = {}) {
    super(options.name);
    this.targetShape = [...targetShape];
  }

  computeOutputShape(input: readonly number[]): number[] {
    const n = input.reduce((a, b) => a * b, 1);
    const t = [...this.targetShape];
    const unknown = t.indexOf(-1);
    const known = t.reduce((a, d) => (d === -1 ? a : a * d), 1);
    if (unknown >= 0 && t.indexOf(-1, unknown + 1) < 0 && known > 0 && n % known === 0) {
      t[unknown] = n / known;
    }
    if (t.some((d) => !Number.isInteger(d) || d < 1) || t.reduce((a, b) => a * b, 1) !== n) {
      throw new WgradError(
        "shape",
        `${this.where()}: cannot reshape ${fmtBatchShape(input)} (${n} values per sample) to ` +
          `${fmtBatchShape(this.targetShape)}`,
      );
    }
    return t;
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return reshape(x, [x.shape[0], ...this.outputShape!]);
  }

  getConfig(): Record<string, unknown> {
    return { target_shape: this.targetShape };
  }
}

/** Applies an activation. */
export class Activation extends Layer {
  readonly className = "Activation";
  readonly activation: ActivationName;
  readonly alpha: number;

  /** @param activation the activation's name */
  constructor(
    activation: ActivationLike | string,
    options: { alpha?: number; name?: string } = {},
  ) {
    super(options.name);
    this.activation = resolveActivation(activation as string, "nn.activation");
    this.alpha = options.alpha ?? defaultAlpha(this.activation);
  }

  computeOutputShape(input: readonly number[]): number[] {
    return [...input];
  }

  call(x: Tensor<"f32">): Tensor<"f32"> {
    return applyActivation(x, this.activation, this.alpha, (t) => softmax(t));
  }

  getConfig(): Record<string, unknown> {
    return { activation: this.activation, alpha: this.alpha };
  }
}

/** Inverted dropout in training; the identity in evaluate and predict. */
export class Dropout extends Layer {
  readonly className = "Dropout";
  readonly rate: number;

  /** @param rate the fraction of inputs to zero, in [0, 1) */
  constructor(rate: number, options: { name?: string } = {}) {
    super(options.name);
    if (!(rate >= 0 && rate < 1)) {
      throw new WgradError("value", `nn.dropout: rate must be in [0, 1), got ${rate}`);
    }
    this.rate = rate;
  }

  computeOutputShape(input: readonly number[]): number[] {
    return [...input];
  }

  call(x: Tensor<"f32">, ctx: CallContext): Tensor<"f32"> {
    if (!ctx.training || this.rate === 0) return reshape(x, x.shape);
    return dropout(x, this.rate, { rng: ctx.rng ?? undefined, salt: this.index + 1 });
  }

  getConfig(): Record<string, unknown> {
    return { rate: this.rate };
  }
}
