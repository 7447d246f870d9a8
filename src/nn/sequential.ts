/**
 * Sequential models: a stack of layers, built for an input shape, with Keras's summary, weights
 * access and (through src/train) compile, fit, evaluate and predict.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { scope, type Tensor } from "../tensor.ts";
import { weightSeed } from "./initializers.ts";
import { type CallContext, fmtBatchShape, Layer } from "./layers.ts";
import { InputLayer } from "./conv_layers.ts";
import { assignNames, Model, type SummaryRow } from "./model.ts";
import type { SymbolicTensor } from "./symbolic.ts";
import type { ModelRecord } from "../io/model_config.ts";

/** Options of {@linkcode Sequential}. */
export interface SequentialOptions {
  /** The shape of one sample (without the batch axis); builds the model at once. */
  inputShape?: readonly number[];
  /** The model's name (default `"sequential"`). */
  name?: string;
  /** Seed of the initial weights (default: a fixed seed, so runs repeat). */
  seed?: number;
}

/** A stack of layers applied in order. */
export class Sequential extends Model<Tensor<"f32">> {
  /** The layers, in order. */
  readonly layers: Layer[];
  #input: SymbolicTensor | null = null;
  #symbols: SymbolicTensor[] = [];

  /** @param layers the layers, first to last */
  constructor(layers: readonly Layer[], options: SequentialOptions = {}) {
    super(options.name ?? "sequential", options.seed ?? 0x5eed);
    if (!Array.isArray(layers) || layers.length === 0) {
      throw new WgradError("value", "nn.sequential: needs at least one layer");
    }
    layers.forEach((l, i) => {
      if (!(l instanceof Layer)) {
        throw new WgradError("value", `nn.sequential: item ${i} is not a layer (got ${String(l)})`);
      }
      if (l instanceof InputLayer) {
        throw new WgradError(
          "value",
          `nn.sequential: item ${i} is an input layer; give the sample shape as { inputShape }`,
        );
      }
      if (l.nodes.length) {
        throw new WgradError(
          "value",
          `nn.sequential: layer "${l.name}" (item ${i}) already belongs to a model; layers ` +
            "are shared between models with the functional API (nn.model)",
        );
      }
    });
    this.layers = [...layers];
    this.layers.forEach((l, i) => {
      l.index = i;
      l.placed = true;
    });
    assignNames(this.layers, "nn.sequential");
    this.adoptLayers();
    if (options.inputShape) this.build(options.inputShape);
  }

  /** Whether the model has been built (its weights exist). */
  get built(): boolean {
    return this.#input !== null;
  }

  /** The shape of one input sample, as a one-element list (see `inputShape`). */
  get inputShapes(): readonly (readonly number[])[] {
    if (!this.#input) throw this.notBuilt("inputShape");
    return [this.#input.shape];
  }

  /** The shape of one output sample, as a one-element list (see `outputShape`). */
  get outputShapes(): readonly (readonly number[])[] {
    if (!this.#input) throw this.notBuilt("outputShape");
    return [this.layers[this.layers.length - 1].outputShape!];
  }

  /** The input symbol (Keras's `model.input`), to build functional models over these layers. */
  get input(): SymbolicTensor {
    if (!this.#input) throw this.notBuilt("input");
    return this.#input;
  }

  /** The output symbol (Keras's `model.output`). */
  get output(): SymbolicTensor {
    if (!this.#input) throw this.notBuilt("output");
    return this.#symbols[this.#symbols.length - 1];
  }

  /** The symbol each layer produced when the model was built (as `layer.output`, in order). */
  get layerOutputs(): readonly SymbolicTensor[] {
    if (!this.#input) throw this.notBuilt("layerOutputs");
    return this.#symbols;
  }

  /**
   * Checks every layer's shapes for samples of `inputShape` and makes the weights. Errors name
   * the layer and both shapes.
   */
  build(inputShape: readonly number[]): void {
    if (this.#input) {
      if (fmtShape(inputShape) === fmtShape(this.#input.shape)) return;
      throw new WgradError(
        "shape",
        `model "${this.name}" was built for inputs ${fmtBatchShape(this.#input.shape)}, not ${
          fmtBatchShape(inputShape)
        }`,
      );
    }
    if (!Array.isArray(inputShape) || inputShape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new WgradError(
        "shape",
        `model "${this.name}": inputShape must list positive integers, got ${String(inputShape)}`,
      );
    }
    const input = new InputLayer(inputShape, { name: `${this.name}_input` }).symbol();
    // What this build adds, to take back alone if it fails (the layers may be in other graphs).
    const before = this.layers.map((l) => ({
      nodes: l.nodes.length,
      built: l.inputShape !== null,
      weights: l.weights.length,
    }));
    const symbols: SymbolicTensor[] = [];
    try {
      let h: SymbolicTensor = input;
      for (const l of this.layers) symbols.push(h = l.apply(h));
      for (const l of this.layers) l.createWeights((k) => weightSeed(this.seed, l.index, k));
    } catch (e) {
      this.layers.forEach((l, i) => {
        const b = before[i];
        if (!b.weights) {
          for (const w of l.weights) w.dispose();
          l.weights = [];
        }
        l.nodes.length = b.nodes;
        if (!b.built) l.inputShape = l.outputShape = null;
      });
      throw e;
    }
    this.#input = input;
    this.#symbols = symbols;
  }

  /** Applies the model to a batch `[batch, ...inputShape]` (eager; recorded by tapes). */
  override apply(
    x: Tensor<"f32">,
    ctx: CallContext = { training: false, rng: null },
  ): Tensor<"f32"> {
    const shape = this.inputShape;
    if (x.rank !== shape.length + 1 || fmtShape(x.shape.slice(1)) !== fmtShape(shape)) {
      throw new WgradError(
        "shape",
        `model "${this.name}" expects inputs ${fmtBatchShape(shape)}, got ${x.describe()}`,
      );
    }
    this.assertLive();
    return scope(() => {
      let h = x;
      for (const l of this.layers) h = l.call(h, ctx);
      return h;
    });
  }

  /** Runs the model on a batch: its one output, in a list. */
  applyAll(x: Tensor<"f32">, ctx?: CallContext): Tensor<"f32">[] {
    return [this.apply(x, ctx)];
  }

  /** @internal */
  architecture(): Pick<ModelRecord, "class_name" | "config"> {
    return {
      class_name: "Sequential",
      config: {
        name: this.name,
        seed: this.seed,
        input_shape: this.built ? [...this.inputShape] : null,
        layers: this.layers.map((l) => ({
          class_name: l.className,
          name: l.name,
          config: l.fullConfig(),
        })),
      },
    };
  }

  /** @internal */
  protected summaryRows(): SummaryRow[] {
    return this.layers.map((l) => ({ layer: l, shape: l.outputShape! }));
  }

  /** @internal */
  protected wrapOutputs(outs: Tensor<"f32">[]): Tensor<"f32"> {
    return outs[0];
  }
}
