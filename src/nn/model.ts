/**
 * What every model shares, Sequential or functional: the weights (Keras's names and order), the
 * summary table, compile / fit / evaluate / predict (src/train), and weights files and model
 * directories (src/io). A subclass says how its layers connect: {@linkcode Model.applyAll} runs
 * the graph on a batch.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import type { Tensor, TensorLike } from "../tensor.ts";
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
  type ModelRecord,
  modelRecord,
  trainingStateOutput,
  WEIGHTS_METADATA,
  weightsInput,
} from "../io/model_config.ts";

/** A weight of a model, as {@linkcode Model.weightEntries} lists it. */
export interface WeightEntry {
  /** `layer/weight`, e.g. `"dense/kernel"`. */
  name: string;
  /** Its tensor. */
  tensor: Tensor<"f32">;
  /** The layer that owns it. */
  layer: Layer;
  /** Its position among the layer's weights. */
  index: number;
  /** Whether the optimizer updates it (false for batch norm's moving statistics and frozen layers). */
  trainable: boolean;
}

/**
 * Gives the layers without a name Keras's automatic names (`dense`, `dense_1`, …, in order,
 * avoiding explicit names) and checks that the names are unique. `where` prefixes errors.
 */
export function assignNames(layers: readonly Layer[], where: string): void {
  // Names given already (explicit, or from another model) must be unique; checked before any
  // layer is renamed, so a failure changes nothing. Automatic names then avoid them.
  const explicit = new Set<string>();
  for (const l of layers) {
    if (!l.name) continue;
    if (explicit.has(l.name)) {
      throw new WgradError(
        "value",
        `${where}: two layers are named "${l.name}" (automatic names are unique within one ` +
          "model; when joining layers of two models, name them with { name })",
      );
    }
    explicit.add(l.name);
  }
  const used = new Map<string, number>();
  for (const l of layers) {
    if (l.name) continue;
    const base = l.baseName;
    let k = used.get(base) ?? 0;
    let name = k === 0 ? base : `${base}_${k}`;
    while (explicit.has(name)) name = `${base}_${++k}`;
    used.set(base, k + 1);
    l.name = name;
  }
}

/** One row of the summary table. */
export interface SummaryRow {
  /** The layer. */
  layer: Layer;
  /** Its output shape without the batch axis. */
  shape: readonly number[];
  /** The layers it reads (functional graphs that are not a chain). */
  connectedTo?: string[];
}

/**
 * A model: layers with weights, trained with `compile` and `fit`. `Out` is what `predict`
 * resolves to: a tensor, or an array of tensors for a model with several outputs.
 */
export abstract class Model<Out = Tensor<"f32">> {
  /** The model's name. */
  readonly name: string;
  /** The seed of the initial weights. */
  readonly seed: number;
  #compileOptions: CompileOptions | null = null;
  #disposed = false;

  /** @param name the model's name; @param seed the seed of its initial weights */
  constructor(name: string, seed: number) {
    this.name = name;
    this.seed = seed;
  }

  /** The layers, in order (each once). */
  abstract readonly layers: Layer[];

  /** Whether the model has been built (its weights exist). */
  abstract get built(): boolean;

  /** The shape of one sample of each input, once built. */
  abstract get inputShapes(): readonly (readonly number[])[];

  /** The shape of one sample of each output, once built. */
  abstract get outputShapes(): readonly (readonly number[])[];

  /** Runs the model on a batch `[batch, ...inputShape]` (eager; recorded by tapes): each output. */
  abstract applyAll(x: Tensor<"f32">, ctx?: CallContext): Tensor<"f32">[];

  /** @internal The `class_name` and `config` of model.json. */
  abstract architecture(): Pick<ModelRecord, "class_name" | "config">;

  /** @internal The rows of the summary table. */
  protected abstract summaryRows(): SummaryRow[];

  /** @internal Wraps the outputs as `predict` returns them. */
  protected abstract wrapOutputs(outs: Tensor<"f32">[]): Out;

  /** An error for a property read before the model is built. */
  protected notBuilt(what: string): WgradError {
    return new WgradError(
      "value",
      `model "${this.name}": ${what} is not known before the model is built; give ` +
        "nn.sequential an inputShape or call model.build(inputShape)",
    );
  }

  /** The shape of one input sample (a model with one input), once built. */
  get inputShape(): readonly number[] {
    const s = this.inputShapes;
    if (s.length !== 1) {
      throw new WgradError(
        "value",
        `model "${this.name}" has ${s.length} inputs; fit, evaluate and predict take models with ` +
          "one input",
      );
    }
    return s[0];
  }

  /** The shape of one output sample (a model with one output), once built. */
  get outputShape(): readonly number[] {
    const s = this.outputShapes;
    if (s.length !== 1) {
      throw new WgradError(
        "value",
        `model "${this.name}" has ${s.length} outputs (${
          s.map(fmtBatchShape).join(", ")
        }); read them with predict or outputShapes`,
      );
    }
    return s[0];
  }

  /** Runs a one-output model on a batch (eager; recorded by tapes). */
  apply(x: Tensor<"f32">, ctx: CallContext = { training: false, rng: null }): Tensor<"f32"> {
    if (this.outputShapes.length !== 1) void this.outputShape;
    return this.applyAll(x, ctx)[0];
  }

  /** Every weight, layer by layer, in Keras's order (a Dense layer's kernel before its bias). */
  get weightEntries(): WeightEntry[] {
    if (!this.built) throw this.notBuilt("weights");
    this.assertLive();
    const out: WeightEntry[] = [];
    for (const l of this.layers) {
      if (!l.inputShape || !l.weights.length) continue;
      const specs = l.weightSpecs(l.inputShape);
      for (let k = 0; k < l.weights.length; k++) {
        out.push({
          name: `${l.name}/${specs[k].name}`,
          tensor: l.weights[k],
          layer: l,
          index: k,
          trainable: specs[k].trainable && l.trainable,
        });
      }
    }
    return out;
  }

  /** The number of parameters (trainable or not). */
  countParams(): number {
    return this.layers.reduce((a, l) => a + l.paramCount, 0);
  }

  /**
   * The Keras summary table: each layer's name and type, output shape and parameter count (and
   * what it is connected to, in a graph that is not a chain), and the totals. Returned as a string
   * and printed with `print` (default `console.log`).
   */
  summary(print: ((line: string) => void) | null = console.log): string {
    if (!this.built) throw this.notBuilt("summary");
    const rows = this.summaryRows();
    const connected = rows.some((r) => r.connectedTo);
    const table = [[
      "Layer (type)",
      "Output Shape",
      "Param #",
      ...(connected ? ["Connected to"] : []),
    ]];
    for (const r of rows) {
      table.push([
        `${r.layer.name} (${r.layer.className})`,
        fmtBatchShape(r.shape),
        r.layer.paramCount.toLocaleString("en-US"),
        ...(connected ? [(r.connectedTo ?? []).join(", ") || "-"] : []),
      ]);
    }
    const w = [
      Math.max(29, ...table.map((r) => r[0].length + 1)),
      Math.max(26, ...table.map((r) => r[1].length + 1)),
      Math.max(10, ...table.map((r) => r[2].length)),
      ...(connected ? [Math.max(14, ...table.map((r) => r[3].length + 2))] : []),
    ];
    const width = w.reduce((a, b) => a + b, 0);
    const line = (r: string[]) =>
      r[0].padEnd(w[0]) + r[1].padEnd(w[1]) + r[2].padStart(w[2]) +
      (connected ? "  " + r[3].padEnd(w[3] - 2) : "");
    let trainable = 0, frozen = 0;
    for (const e of this.weightEntries) {
      if (e.trainable) trainable += e.tensor.size;
      else frozen += e.tensor.size;
    }
    const fmt = (n: number) => `${n.toLocaleString("en-US")} (${fmtBytes(n * 4)})`;
    const body = table.slice(1).map(line);
    const out = [
      `Model: "${this.name}"`,
      line(table[0]).trimEnd(),
      "━".repeat(width),
      ...body.flatMap((r, i) =>
        i < body.length - 1 ? [r.trimEnd(), "─".repeat(width)] : [r.trimEnd()]
      ),
      "━".repeat(width),
      ` Total params: ${fmt(trainable + frozen)}`,
      ` Trainable params: ${fmt(trainable)}`,
      ` Non-trainable params: ${fmt(frozen)}`,
    ].join("\n");
    if (print) print(out);
    return out;
  }

  /**
   * Configures training: an optimizer (`optim.adam(…)` or a name such as "adam"), a loss
   * (`losses.sparseCategoricalCrossentropy({ fromLogits: true })` or a name) and metrics
   * (`["accuracy"]`).
   */
  compile(options: CompileOptions): void {
    compileModel(this as Model<unknown>, options);
    this.#compileOptions = { ...options };
  }

  /**
   * Trains the model: `fit(x, y, options)` or `fit({ x, y }, options)`. Returns the History of
   * per-epoch loss and metrics.
   */
  fit(x: InputData | XY, y?: TargetData | FitOptions, options?: FitOptions): Promise<History> {
    return fitModel(this as Model<unknown>, x, y, options);
  }

  /** The loss and metrics on a data set: `evaluate(x, y)` or `evaluate({ x, y })`. */
  evaluate(
    x: InputData | XY,
    y?: TargetData | EvaluateOptions,
    options?: EvaluateOptions,
  ): Promise<Record<string, number>> {
    return evaluateModel(this as Model<unknown>, x, y, options);
  }

  /**
   * The outputs for every sample, computed in batches on the GPU: a tensor `[N, ...outputShape]`,
   * or one per output for a model built with an array of outputs.
   */
  async predict(x: InputData, options?: EvaluateOptions): Promise<Out> {
    return this.wrapOutputs(await predictModel(this as Model<unknown>, x, options));
  }

  /**
   * Epochs completed by `fit` since `compile` (restored by `nn.loadModel`): the `initialEpoch` to
   * resume training at.
   */
  get epochsTrained(): number {
    return epochsTrained(this as Model<unknown>);
  }

  /**
   * Gives back the GPU memory of the weights and of the training state. Layers shared with
   * another live model keep their weights (they are freed with the last model that uses them).
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    disposeTraining(this as Model<unknown>, (l) => l.users > 1);
    this.#compileOptions = null;
    for (const l of this.layers) {
      l.users--;
      // A layer without weights (pooling, flatten, an input) has nothing to free.
      if (l.users > 0 || !l.weights.length) continue;
      for (const w of l.weights) w.dispose();
      l.weights = [];
      l.disposedBy = this.name;
    }
  }

  /** @internal Counts this model as a user of its layers (their weights live while it does). */
  protected adoptLayers(): void {
    for (const l of this.layers) l.users++;
  }

  /** @internal Throws when the model or one of its layers was disposed. */
  protected assertLive(): void {
    if (this.#disposed) {
      throw new WgradError("disposed", `model "${this.name}" was disposed`);
    }
    for (const l of this.layers) l.assertLive();
  }

  /** The weights' values, layer by layer (kernel before bias), as Float32Arrays. */
  async getWeights(): Promise<Float32Array[]> {
    return await Promise.all(this.weightEntries.map((e) => e.tensor.data()));
  }

  /**
   * Writes the weights to a safetensors file at `path`, atomically (a process killed meanwhile
   * leaves the old file or the new one). Tensors are named as Keras names them —
   * `dense/kernel`, `dense/bias`, `conv2d/kernel`, `batch_normalization/moving_mean`, … — in
   * Keras's layouts (a Dense kernel is `[in, out]`, a Conv2D kernel `[kh, kw, in, out]`), as F32,
   * with `__metadata__` `{ format: "wgrad", version: "1" }`.
   */
  async saveWeights(path: string): Promise<void> {
    const entries = this.weightEntries;
    const values = await Promise.all(entries.map((e) => e.tensor.data()));
    await writeSafetensors(path, weightsInput(entries, values), WEIGHTS_METADATA);
  }

  /**
   * Reads weights saved by {@linkcode Model.saveWeights} (or any safetensors file with the same
   * names and shapes; F16, BF16 and F64 values are converted to float32). Every name, dtype and
   * shape is checked first; on any difference one error lists what is missing, unexpected or
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
   * with their configurations and connections, the input shape, name and seed, and the compile
   * settings when they are serialisable) and `model.safetensors` (the weights, as
   * {@linkcode Model.saveWeights}). A compiled model also saves its training state: the
   * optimizer's slots as tensors `optimizer/<slot>/<weight>`, and the optimizer's step count and
   * learning rate, the epochs completed and the step counter of dropout in `training_state` (in
   * model.json and in the weights file's metadata). Each file is replaced atomically.
   * `nn.loadModel(dir)` rebuilds the model and its training state, so that
   * `fit(…, { initialEpoch: model.epochsTrained })` with the same data and options continues
   * exactly as an uninterrupted run.
   */
  async save(dir: string): Promise<void> {
    const record = modelRecord(this, this.#compileOptions);
    const entries = this.built ? this.weightEntries : [];
    const values = await Promise.all(entries.map((e) => e.tensor.data()));
    const state = this.built && record.compile
      ? await getTrainingState(this as Model<unknown>)
      : null;
    const training = state ? trainingStateOutput(entries.filter((e) => e.trainable), state) : null;
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
   * Replaces the weights, layer by layer (kernel before bias; batch norm's gamma, beta, moving
   * mean, moving variance). Each value may be a Float32Array, flat numbers or nested arrays;
   * counts and shapes are checked first, naming the weight.
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
      const nested = nestedShape(v);
      if (nested && nested.length > 1 && fmtShape(nested) !== fmtShape(e.tensor.shape)) {
        throw new WgradError(
          "shape",
          `model "${this.name}".setWeights: ${e.name} needs ${fmtShape(e.tensor.shape)}, got ${
            fmtShape(nested)
          }${channelNote(e, nested)}`,
        );
      }
      if (data.length !== e.tensor.size) {
        throw new WgradError(
          "shape",
          `model "${this.name}".setWeights: ${e.name} needs ${fmtShape(e.tensor.shape)} ` +
            `(${e.tensor.size} values), got ${data.length} values${shapeNote(v)}`,
        );
      }
      return data;
    });
    entries.forEach((e, i) => writeWeights(e.tensor, flat[i]));
  }

  /** @internal The compile options given last (for model files). */
  get compileOptions(): CompileOptions | null {
    return this.#compileOptions;
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

/** For a convolution kernel whose channel counts differ, says which. */
function channelNote(e: WeightEntry, got: readonly number[]): string {
  const want = e.tensor.shape;
  if (want.length !== 4 || got.length !== 4) return "";
  const parts = [];
  if (got[2] !== want[2]) parts.push(`${got[2]} input channels instead of ${want[2]}`);
  if (got[3] !== want[3]) parts.push(`${got[3]} filters instead of ${want[3]}`);
  if (got[0] !== want[0] || got[1] !== want[1]) {
    parts.push(`a ${got[0]}×${got[1]} kernel instead of ${want[0]}×${want[1]}`);
  }
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/** Bytes as the summary prints them. */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n.toFixed(2)} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(2)} KB`;
  return `${(n / 1024 ** 2).toFixed(2)} MB`;
}
