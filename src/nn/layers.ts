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
import { makeTensor, type Tensor } from "../tensor.ts";
import { schedule } from "../gpu/runtime.ts";
import { Philox } from "../random.ts";
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
import { type GraphNode, SymbolicTensor } from "./symbolic.ts";

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
  /** @internal Whether a model has given the layer its position (kept when models share it). */
  placed = false;
  /**
   * Whether fit updates the layer's weights (Keras's `layer.trainable`; default true). Set it to
   * false to freeze a layer, e.g. shared layers while a new head is trained, then `compile`
   * again. A frozen BatchNormalization also normalises with its moving statistics in fit.
   */
  trainable = true;
  /** @internal How many live models use the layer (its weights go with the last one). */
  users = 0;
  /** @internal The model whose `dispose()` freed the weights, if that happened. */
  disposedBy: string | null = null;
  /** @internal The graph nodes where this layer was applied to symbols, in order. */
  readonly nodes: GraphNode[] = [];

  /** @param name an explicit name, or the model assigns one */
  constructor(name?: string) {
    this.name = name ?? "";
  }

  /** The Keras class name, e.g. `"Dense"`. */
  abstract readonly className: string;

  /** The base of automatic names, e.g. `"dense"`. */
  get baseName(): string {
    // Keras's to_snake_case: "MaxPooling2D" → "max_pooling2d", "Conv2D" → "conv2d".
    return this.className.replace(/(.)([A-Z][a-z]+)/g, "$1_$2").replace(/([a-z])([A-Z])/g, "$1_$2")
      .toLowerCase();
  }

  /** The output shape for an input shape (both without the batch axis); throws on bad shapes. */
  abstract computeOutputShape(input: readonly number[]): number[];

  /** The weights this layer needs for an input shape. */
  weightSpecs(_input: readonly number[]): WeightSpec[] {
    return [];
  }

  /** Applies the layer to a batch. */
  abstract call(x: Tensor<"f32">, ctx: CallContext): Tensor<"f32">;

  /** Applies a layer that takes several inputs (merge layers); others take exactly one. */
  callMany(xs: readonly Tensor<"f32">[], ctx: CallContext): Tensor<"f32"> {
    return this.call(xs[0], ctx);
  }

  /** The output shape for several input shapes; layers other than merges take one input. */
  computeOutputShapeMany(inputs: readonly (readonly number[])[]): number[] {
    if (inputs.length !== 1) {
      throw new WgradError(
        "value",
        `${this.where()} takes one input, got ${inputs.length}`,
      );
    }
    return this.computeOutputShape(inputs[0]);
  }

  /**
   * Applies the layer to symbolic inputs (the functional API): checks their shapes now, naming
   * the layer, and returns the output symbol. A layer applied twice shares its weights; it must
   * then see the same input shapes.
   *
   * ```ts
   * const x = nn.input([28, 28, 1]);
   * const h = nn.conv2d(6, { kernelSize: 5, activation: "tanh" }).apply(x);
   * ```
   */
  apply(x: SymbolicTensor | readonly SymbolicTensor[]): SymbolicTensor {
    const inputs = Array.isArray(x) ? [...x] as SymbolicTensor[] : [x as SymbolicTensor];
    inputs.forEach((s, i) => {
      if (!(s instanceof SymbolicTensor)) {
        throw new WgradError(
          "value",
          `${this.where()}.apply: input ${i} is not a symbolic tensor (nn.input or a layer's ` +
            `output), got ${describeValue(s)}`,
        );
      }
    });
    const shapes = inputs.map((s) => s.shape);
    let out: number[];
    if (this.inputShape === null) {
      out = this.computeOutputShapeMany(shapes);
      this.build(shapes[0], out);
    } else {
      const seen = this.nodes.length ? this.nodes[0].inputs.map((s) => s.shape) : [this.inputShape];
      const same = seen.length === shapes.length &&
        seen.every((s, i) => fmtBatchShape(s) === fmtBatchShape(shapes[i]));
      if (!same) {
        throw new WgradError(
          "shape",
          `${this.where()} was built for inputs ${
            seen.map(fmtBatchShape).join(", ")
          } and cannot be applied to ${inputs.map((s) => s.describe()).join(", ")}`,
        );
      }
      out = [...this.outputShape!];
    }
    const node: { layer: Layer; inputs: SymbolicTensor[]; output: SymbolicTensor | null } = {
      layer: this,
      inputs,
      output: null,
    };
    node.output = new SymbolicTensor(out, node as GraphNode, this.name || this.baseName);
    this.nodes.push(node as GraphNode);
    return node.output;
  }

  /** The symbol this layer produced, when it was applied exactly once (Keras's `layer.output`). */
  get output(): SymbolicTensor {
    return this.#onlyNode("output").output;
  }

  /** The symbol this layer was applied to, when it was applied exactly once (`layer.input`). */
  get input(): SymbolicTensor {
    return this.#onlyNode("input").inputs[0];
  }

  #onlyNode(what: string): GraphNode {
    if (this.nodes.length !== 1) {
      throw new WgradError(
        "value",
        `${this.where()}.${what}: the layer has been applied ${this.nodes.length} times; ` +
          (this.nodes.length === 0
            ? "build its model (nn.sequential with an inputShape) or apply it to a symbol first"
            : "use the symbols that apply() returned"),
      );
    }
    return this.nodes[0];
  }

  /**
   * Makes the weights (once) for the built input shape; `seedOf(k)` seeds weight k. A layer
   * whose weights exist (shared by two models) keeps them.
   */
  createWeights(seedOf: (k: number) => number): void {
    this.assertLive();
    if (this.weights.length || !this.inputShape) return;
    const specs = this.weightSpecs(this.inputShape);
    const made: Tensor<"f32">[] = [];
    try {
      specs.forEach((s, k) => {
        const values = Float32Array.from(s.initializer.values(s.shape, new Philox(seedOf(k))));
        // Named before the upload is scheduled, so an allocation failure names the weight.
        const t = makeTensor(s.shape, "f32");
        t.name = `${this.name}/${s.name}`;
        made.push(t);
        schedule((rt) => t.setStorage(rt.upload(values, `weight ${t.describe()}`)));
      });
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    this.weights = made;
  }

  /** Keras-style configuration (for summaries and model files). */
  abstract getConfig(): Record<string, unknown>;

  /** The configuration with `trainable`, as model files store it. */
  fullConfig(): Record<string, unknown> {
    return { ...this.getConfig(), trainable: this.trainable };
  }

  /** Records the shapes; called by the model when it is built. */
  build(input: readonly number[], computed?: readonly number[]): number[] {
    const out = computed ? [...computed] : this.computeOutputShape(input);
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

  /** @internal Throws when the layer's weights were freed by a model's `dispose()`. */
  assertLive(): void {
    if (this.disposedBy !== null) {
      throw new WgradError(
        "disposed",
        `${this.where()}: its weights were freed by model "${this.disposedBy}".dispose(); ` +
          "make new layers (or keep a model that uses them alive)",
      );
    }
  }

  /** Number of weights' elements. */
  get paramCount(): number {
    return this.weights.reduce((a, w) => a + w.size, 0);
  }

  /** A message prefix naming the layer. */
  protected where(): string {
    return `layer "${this.name || this.baseName}" (${this.className})`;
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

/** @internal Keras's `{ class_name, config }` form of an initializer. */
export function serializeInit(
  i: Initializer,
): { class_name: string; config: Record<string, number> } {
  return { class_name: i.className, config: { ...i.config } };
}

/** Keras's `{ class_name, config }` form of a regularizer, or null. */
export function serializeReg(
  r: Regularizer | undefined,
): { class_name: string; config: { l1: number; l2: number } } | null {
  return r ? { class_name: r.className, config: { ...r.config } } : null;
}

/** What a layer with a kernel and an optional bias (Dense, Conv2D) configures. */
export interface KernelLayerSettings {
  readonly useBias: boolean;
  readonly kernelInitializer: Initializer;
  readonly biasInitializer: Initializer;
  readonly kernelRegularizer?: Regularizer;
  readonly biasRegularizer?: Regularizer;
}

/** The kernel of `kernelShape` and, with `useBias`, the bias `[units]`. */
export function kernelAndBias(
  l: KernelLayerSettings,
  kernelShape: number[],
  units: number,
): WeightSpec[] {
  const specs: WeightSpec[] = [{
    name: "kernel",
    shape: kernelShape,
    initializer: l.kernelInitializer,
    regularizer: l.kernelRegularizer,
    trainable: true,
  }];
  if (l.useBias) {
    specs.push({
      name: "bias",
      shape: [units],
      initializer: l.biasInitializer,
      regularizer: l.biasRegularizer,
      trainable: true,
    });
  }
  return specs;
}

/** The Keras config entries of a kernel-and-bias layer. */
export function kernelConfig(l: KernelLayerSettings): Record<string, unknown> {
  return {
    use_bias: l.useBias,
    kernel_initializer: serializeInit(l.kernelInitializer),
    bias_initializer: serializeInit(l.biasInitializer),
    kernel_regularizer: serializeReg(l.kernelRegularizer),
    bias_regularizer: serializeReg(l.biasRegularizer),
  };
}

/**
 * A layer with a kernel, an optional bias and an activation (Dense, Conv2D): the options they
 * share, resolved once.
 */
export abstract class KernelLayer extends Layer implements KernelLayerSettings {
  readonly activation: ActivationName;
  readonly alpha: number;
  readonly useBias: boolean;
  readonly kernelInitializer: Initializer;
  readonly biasInitializer: Initializer;
  readonly kernelRegularizer?: Regularizer;
  readonly biasRegularizer?: Regularizer;

  /** @param options the shared options; @param op names the factory in errors */
  constructor(options: DenseOptions, op: string) {
    super(options.name);
    this.activation = resolveActivation(options.activation as string, op);
    this.alpha = options.alpha ?? defaultAlpha(this.activation);
    this.useBias = options.useBias ?? true;
    this.kernelInitializer = resolveInitializer(options.kernelInitializer ?? "glorot_uniform", op);
    this.biasInitializer = resolveInitializer(options.biasInitializer ?? "zeros", op);
    this.kernelRegularizer = options.kernelRegularizer;
    this.biasRegularizer = options.biasRegularizer;
  }
}

/** A fully connected layer: y = activation(x·W + b) over the last axis. */
export class Dense extends KernelLayer {
  readonly className = "Dense";
  readonly units: number;

  /** @param units output features */
  constructor(units: number, options: DenseOptions = {}) {
    super(options, "nn.dense");
    if (!Number.isInteger(units) || units < 1) {
      throw new WgradError("value", `nn.dense: units must be a positive integer, got ${units}`);
    }
    this.units = units;
  }

  /** Applies the layer to a symbol; the rank is kept (the last axis becomes `units`). */
  override apply<R extends number>(x: SymbolicTensor<R>): SymbolicTensor<R> {
    return super.apply(x) as SymbolicTensor<R>;
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
    return kernelAndBias(this, [input[input.length - 1], this.units], this.units);
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
      ...kernelConfig(this),
    };
  }
}

/** Flattens all axes but the batch axis. */
export class Flatten extends Layer {
  readonly className = "Flatten";

  /** Applies the layer to a symbol; the result has rank 2. */
  override apply(x: SymbolicTensor): SymbolicTensor<2> {
    return super.apply(x) as SymbolicTensor<2>;
  }

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
export class Reshape<R extends number = number> extends Layer {
  readonly className = "Reshape";
  readonly targetShape: number[];

  /** Applies the layer to a symbol; the rank follows the target shape. */
  override apply(x: SymbolicTensor): SymbolicTensor<R> {
    return super.apply(x) as SymbolicTensor<R>;
  }

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

  /** Applies the layer to a symbol; the shape is kept. */
  override apply<R extends number>(x: SymbolicTensor<R>): SymbolicTensor<R> {
    return super.apply(x) as SymbolicTensor<R>;
  }
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

  /** Applies the layer to a symbol; the shape is kept. */
  override apply<R extends number>(x: SymbolicTensor<R>): SymbolicTensor<R> {
    return super.apply(x) as SymbolicTensor<R>;
  }
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

/** A short description of a value that is not what was expected. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object") {
    const c = (v as object).constructor?.name;
    if (c === "Tensor") return `an eager tensor ${(v as Tensor).describe()}`;
    return c ? `a ${c}` : "an object";
  }
  return `${typeof v} ${String(v)}`;
}
