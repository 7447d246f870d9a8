/**
 * Sequential models: a stack of layers, built for an input shape, with Keras's summary, weights
 * access and (through src/train) compile, fit, evaluate and predict.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { Philox } from "../random.ts";
import { schedule } from "../gpu/runtime.ts";
import { scope, type Tensor, tensor, type TensorLike } from "../tensor.ts";
import { weightSeed } from "./initializers.ts";
import type { History } from "../train/callbacks.ts";
import {
  compileModel,
  type CompileOptions,
  disposeTraining,
  epochsTrained,
  evaluateModel,
  type EvaluateOptions,
  fitModel,
  type FitOptions,
  getTrainingState,
  type InputData,
  predictModel,
  type TargetData,
  type XY,
} from "../train/trainer.ts";
import { type CallContext, fmtBatchShape, Layer } from "./layers.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import {
  matchWeights,
  MODEL_JSON,
  MODEL_WEIGHTS,
  modelRecord,
  trainingStateOutput,
  WEIGHTS_METADATA,
  weightsInput,
} from "../io/model_config.ts";

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
export class Sequential {
  /** The layers, in order. */
  readonly layers: Layer[];
  /** The model's name. */
  readonly name: string;
  /** The seed of the initial weights. */
  readonly seed: number;
  #inputShape: number[] | null = null;
  #compileOptions: CompileOptions | null = null;

  /** @param layers the layers, first to last */
  constructor(layers: readonly Layer[], options: SequentialOptions = {}) {
    if (!Array.isArray(layers) || layers.length === 0) {
      throw new WgradError("value", "nn.sequential: needs at least one layer");
    }
    layers.forEach((l, i) => {
      if (!(l instanceof Layer)) {
        throw new WgradError("value", `nn.sequential: item ${i} is not a layer (got ${String(l)})`);
      }
    });
    this.layers = [...layers];
    this.name = options.name ?? "sequential";
    this.seed = options.seed ?? 0x5eed;
    const used = new Map<string, number>();
    const explicit = new Set(this.layers.map((l) => l.name).filter((n) => n));
    this.layers.forEach((l, i) => {
      l.index = i;
      if (l.name) return;
      const base = l.baseName;
      let k = used.get(base) ?? 0;
      let name = k === 0 ? base : `${base}_${k}`;
      while (explicit.has(name)) name = `${base}_${++k}`;
      used.set(base, k + 1);
      l.name = name;
    });
    const names = new Set<string>();
    for (const l of this.layers) {
      if (names.has(l.name)) {
        throw new WgradError("value", `nn.sequential: two layers are named "${l.name}"`);
      }
      names.add(l.name);
    }
    if (options.inputShape) this.build(options.inputShape);
  }

  /** Whether the model has been built (its weights exist). */
  get built(): boolean {
    return this.#inputShape !== null;
  }

  /** The shape of one input sample, once built. */
  get inputShape(): readonly number[] {
    if (!this.#inputShape) throw this.#notBuilt("inputShape");
    return this.#inputShape;
  }

  /** The shape of one output sample, once built. */
  get outputShape(): readonly number[] {
    if (!this.#inputShape) throw this.#notBuilt("outputShape");
    return this.layers[this.layers.length - 1].outputShape!;
  }

  #notBuilt(what: string): WgradError {
    return new WgradError(
      "value",
      `model "${this.name}": ${what} is not known before the model is built; give ` +
        "nn.sequential an inputShape or call model.build(inputShape)",
    );
  }

  /**
   * Checks every layer's shapes for samples of `inputShape` and makes the weights. Errors name
   * the layer and both shapes.
   */
  build(inputShape: readonly number[]): void {
    if (this.#inputShape) {
      if (fmtShape(inputShape) === fmtShape(this.#inputShape)) return;
      throw new WgradError(
        "shape",
        `model "${this.name}" was built for inputs ${fmtBatchShape(this.#inputShape)}, not ${
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
    let shape: number[] = [...inputShape];
    const made: Tensor<"f32">[] = [];
    try {
      for (const l of this.layers) {
        const specs = l.weightSpecs(shape);
        const next = l.build(shape);
        l.weights = specs.map((s, k) => {
          const g = new Philox(weightSeed(this.seed, l.index, k));
          const t = tensor(s.initializer.values(s.shape, g), s.shape) as Tensor<"f32">;
          t.name = `${l.name}/${s.name}`;
          made.push(t);
          return t;
        });
        shape = next;
      }
    } catch (e) {
      for (const t of made) t.dispose();
      for (const l of this.layers) l.weights = [];
      throw e;
    }
    this.#inputShape = [...inputShape];
  }

  /** Every weight, layer by layer, as `{ name, tensor, trainable, regularizer }`. */
  get weightEntries(): {
    name: string;
    tensor: Tensor<"f32">;
    layer: Layer;
    index: number;
  }[] {
    if (!this.#inputShape) throw this.#notBuilt("weights");
    const out = [];
    for (const l of this.layers) {
      const specs = l.weightSpecs(l.inputShape!);
      for (let k = 0; k < l.weights.length; k++) {
        out.push({ name: `${l.name}/${specs[k].name}`, tensor: l.weights[k], layer: l, index: k });
      }
    }
    return out;
  }

  /** The number of trainable parameters. */
  countParams(): number {
    return this.layers.reduce((a, l) => a + l.paramCount, 0);
  }

  /** Applies the model to a batch `[batch, ...inputShape]` (eager; recorded by tapes). */
  apply(x: Tensor<"f32">, ctx: CallContext = { training: false, rng: null }): Tensor<"f32"> {
    const shape = this.inputShape;
    if (x.rank !== shape.length + 1 || fmtShape(x.shape.slice(1)) !== fmtShape(shape)) {
      throw new WgradError(
        "shape",
        `model "${this.name}" expects inputs ${fmtBatchShape(shape)}, got ${x.describe()}`,
      );
    }
    return scope(() => {
      let h = x;
      for (const l of this.layers) h = l.call(h, ctx);
      return h;
    });
  }

  /**
   * The Keras summary table: each layer's name and type, output shape and parameter count, and
   * the totals. Returned as a string and printed with `print` (default `console.log`).
   */
  summary(print: ((line: string) => void) | null = console.log): string {
    const rows = [["Layer (type)", "Output Shape", "Param #"]];
    if (!this.#inputShape) throw this.#notBuilt("summary");
    for (const l of this.layers) {
      rows.push([
        `${l.name} (${l.className})`,
        fmtBatchShape(l.outputShape!),
        l.paramCount.toLocaleString("en-US"),
      ]);
    }
    const w = [
      Math.max(29, ...rows.map((r) => r[0].length + 1)),
      Math.max(26, ...rows.map((r) => r[1].length + 1)),
      Math.max(10, ...rows.map((r) => r[2].length)),
    ];
    const width = w[0] + w[1] + w[2];
    const line = (r: string[]) => r[0].padEnd(w[0]) + r[1].padEnd(w[1]) + r[2].padStart(w[2]);
    const total = this.countParams();
    const fmt = (n: number) => `${n.toLocaleString("en-US")} (${fmtBytes(n * 4)})`;
    const out = [
      `Model: "${this.name}"`,
      "┏" + "━".repeat(width) + "┓",
      line(rows[0]),
      "━".repeat(width),
      ...rows.slice(1).flatMap((r, i) => [line(r), i < rows.length - 2 ? "─".repeat(width) : ""])
        .filter((s) => s !== ""),
      "━".repeat(width),
      ` Total params: ${fmt(total)}`,
      ` Trainable params: ${fmt(total)}`,
      ` Non-trainable params: 0 (0.00 B)`,
    ].join("\n").replace("┏" + "━".repeat(width) + "┓\n", "");
    if (print) print(out);
    return out;
  }

  /**
   * Configures training: an optimizer (`optim.adam(…)` or a name such as "adam"), a loss
   * (`losses.sparseCategoricalCrossentropy({ fromLogits: true })` or a name) and metrics
   * (`["accuracy"]`).
   */
  compile(options: CompileOptions): void {
    compileModel(this, options);
    this.#compileOptions = { ...options };
  }

  /**
   * Trains the model: `fit(x, y, options)` or `fit({ x, y }, options)`. Returns the History of
   * per-epoch loss and metrics.
   */
  fit(x: InputData | XY, y?: TargetData | FitOptions, options?: FitOptions): Promise<History> {
    return fitModel(this, x, y, options);
  }

  /** The loss and metrics on a data set: `evaluate(x, y)` or `evaluate({ x, y })`. */
  evaluate(
    x: InputData | XY,
    y?: TargetData | EvaluateOptions,
    options?: EvaluateOptions,
  ): Promise<Record<string, number>> {
    return evaluateModel(this, x, y, options);
  }

  /** The outputs for every sample, computed in batches on the GPU: a tensor `[N, ...outputShape]`. */
  predict(x: InputData, options?: EvaluateOptions): Promise<Tensor<"f32">> {
    return predictModel(this, x, options);
  }

  /**
   * Epochs completed by `fit` since `compile` (restored by `nn.loadModel`): the `initialEpoch` to
   * resume training at.
   */
  get epochsTrained(): number {
    return epochsTrained(this);
  }

  /** Gives back the GPU memory of the weights and of the training state. */
  dispose(): void {
    disposeTraining(this);
    this.#compileOptions = null;
    for (const l of this.layers) {
      for (const w of l.weights) w.dispose();
      l.weights = [];
    }
  }

  /** The weights' values, layer by layer (kernel before bias), as Float32Arrays. */
  async getWeights(): Promise<Float32Array[]> {
    return await Promise.all(this.weightEntries.map((e) => e.tensor.data()));
  }

  /**
   * Writes the weights to a safetensors file at `path`, atomically (a process killed meanwhile
   * leaves the old file or the new one). Tensors are named as Keras names them —
   * `dense/kernel`, `dense/bias`, `dense_1/kernel`, … — in Keras's layouts (a Dense kernel is
   * `[in, out]`), as F32, with `__metadata__` `{ format: "wgrad", version: "1" }`.
   */
  async saveWeights(path: string): Promise<void> {
    const entries = this.weightEntries;
    const values = await Promise.all(entries.map((e) => e.tensor.data()));
    await writeSafetensors(path, weightsInput(entries, values), WEIGHTS_METADATA);
  }

  /**
   * Reads weights saved by {@linkcode Sequential.saveWeights} (or any safetensors file with the
   * same names and shapes; F16, BF16 and F64 values are converted to float32). Every name, dtype
   * and shape is checked first; on any difference one error lists what is missing, unexpected or
   * mismatched, and the model is left unchanged.
   */
  async loadWeights(path: string): Promise<void> {
    const entries = this.weightEntries;
    const file = await readSafetensors(path);
    const values = matchWeights(entries, file, `model "${this.name}".loadWeights("${path}")`);
    entries.forEach((e, i) => writeWeights(e.tensor, values[i]));
  }

  /**
   * Saves the whole model into the directory `dir` (created if needed): `model.json` (the layers
   * with their configurations, the input shape, name and seed, and the compile settings when they
   * are serialisable) and `model.safetensors` (the weights, as {@linkcode Sequential.saveWeights}).
   * A compiled model also saves its training state: the optimizer's slots as tensors
   * `optimizer/<slot>/<weight>`, and the optimizer's step count and learning rate, the epochs
   * completed and the step counter of dropout in `training_state` (in model.json and in the
   * weights file's metadata). Each file is replaced atomically. `nn.loadModel(dir)` rebuilds the
   * model and its training state, so that `fit(…, { initialEpoch: model.epochsTrained })` with the
   * same data and options continues exactly as an uninterrupted run.
   */
  async save(dir: string): Promise<void> {
    const record = modelRecord(this, this.#compileOptions);
    const entries = this.built ? this.weightEntries : [];
    const values = await Promise.all(entries.map((e) => e.tensor.data()));
    const state = this.built && record.compile ? await getTrainingState(this) : null;
    const training = state ? trainingStateOutput(entries, state) : null;
    if (training) record.training_state = training.record;
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        throw new WgradError(
          "value",
          `model "${this.name}".save: cannot create the directory "${dir}": ${
            (e as Error).message
          }`,
          { cause: e },
        );
      }
    }
    const base = dir.endsWith("/") ? dir : `${dir}/`;
    await writeSafetensors(
      `${base}${MODEL_WEIGHTS}`,
      [...weightsInput(entries, values), ...(training?.tensors ?? [])],
      {
        ...WEIGHTS_METADATA,
        ...(training ? { training_state: JSON.stringify(training.record) } : {}),
      },
    );
    const json = JSON.stringify(record, null, 2) + "\n";
    await writeFileAtomic(`${base}${MODEL_JSON}`, new TextEncoder().encode(json));
  }

  /**
   * Replaces the weights, layer by layer (kernel before bias). Each value may be a Float32Array,
   * flat numbers or nested arrays; counts and shapes are checked first, naming the weight.
   */
  setWeights(values: readonly TensorLike[]): void {
    const entries = this.weightEntries;
    if (!Array.isArray(values) || values.length !== entries.length) {
      throw new WgradError(
        "value",
        `model "${this.name}".setWeights: expected ${entries.length} arrays (${
          entries.map((e) => `${e.name} ${fmtShape(e.tensor.shape)}`).join(", ")
        }), got ${Array.isArray(values) ? values.length : String(values)}`,
      );
    }
    const flat = values.map((v, i) => {
      const e = entries[i];
      const data = Float32Array.from(flattenValues(v));
      if (data.length !== e.tensor.size) {
        throw new WgradError(
          "shape",
          `model "${this.name}".setWeights: ${e.name} needs ${fmtShape(e.tensor.shape)} ` +
            `(${e.tensor.size} values), got ${data.length} values${shapeNote(v)}`,
        );
      }
      const nested = nestedShape(v);
      if (nested && nested.length > 1 && fmtShape(nested) !== fmtShape(e.tensor.shape)) {
        throw new WgradError(
          "shape",
          `model "${this.name}".setWeights: ${e.name} needs ${fmtShape(e.tensor.shape)}, got ${
            fmtShape(nested)
          }`,
        );
      }
      return data;
    });
    entries.forEach((e, i) => writeWeights(e.tensor, flat[i]));
  }
}

/** Overwrites a weight's values in place (a plain tensor or a region of a parameter arena). */
function writeWeights(t: Tensor<"f32">, values: Float32Array): void {
  schedule((rt) => rt.write(t.storage, values, `setWeights ${t.describe()}`));
}

function flattenValues(v: TensorLike): ArrayLike<number> {
  if (ArrayBuffer.isView(v)) return v as ArrayLike<number>;
  if (typeof v === "number") return [v];
  const out: number[] = [];
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) { for (const y of x) walk(y); }
    else out.push(x as number);
  };
  walk(v);
  return out;
}

function nestedShape(v: TensorLike): number[] | null {
  if (!Array.isArray(v)) return null;
  const shape: number[] = [];
  let x: unknown = v;
  while (Array.isArray(x)) {
    shape.push(x.length);
    x = x[0];
  }
  return shape;
}

function shapeNote(v: TensorLike): string {
  const s = nestedShape(v);
  return s ? ` (shape ${fmtShape(s)})` : "";
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n.toFixed(2)} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(2)} KB`;
  return `${(n / 1024 ** 2).toFixed(2)} MB`;
}
