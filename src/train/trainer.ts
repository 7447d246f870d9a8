/**
 * compile / fit / evaluate / predict for models (Sequential and functional).
 *
 * `fit` builds, once per batch size, a captured training step: gather the batch from the
 * GPU-resident data set through a shuffled permutation, forward, loss, backward (derived by the
 * tape while capturing), copy the gradients into the parameter arena, one fused optimizer
 * dispatch, and accumulate loss and correct count on the GPU. Each step then costs one small
 * `writeBuffer` (the step state), the replay of the captured commands and one `queue.submit`;
 * loss and metrics come back through asynchronous readbacks every few steps, never awaited step
 * by step.
 * @module
 */
import { noGrad } from "../autodiff/tape.ts";
import { valueAndGradSync } from "../autodiff/grad.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { type Plan, ready, type Runtime } from "../gpu/runtime.ts";
import type { Storage } from "../gpu/buffers.ts";
import { accumulateInto } from "../ops/accumulate.ts";
import { add } from "../ops/binary.ts";
import { accumulate } from "../ops/metrics.ts";
import { setWeightUpdate } from "../ops/matmul.ts";
import { gatherRows, type GatherSource } from "../ops/gather.ts";
import { ParamArena } from "../optim/arena.ts";
import { Philox } from "../random.ts";
import { keep, type Tensor, tensor, zeros } from "../tensor.ts";
import type { OptimizerState } from "../optim/optimizers.ts";
import type { Model } from "../nn/model.ts";
import type { Layer } from "../nn/layers.ts";
import { clone } from "../ops/transform.ts";
import { type Callback, History, type TrainingControl } from "./callbacks.ts";
import { ProgressBar } from "./progress.ts";
import {
  countedByLoss,
  type LossLike,
  type LossSpec,
  type MetricSpec,
  resolveLoss,
  resolveMetrics,
} from "./losses.ts";
import { type OptimizerLike, resolveOptimizer } from "./optimizers.ts";

/** Any model, whatever `predict` returns. */
type AnyModel = Model<unknown>;

// ---------------------------------------------------------------------------------------------
// Data

/** Inputs `fit`, `evaluate` and `predict` accept. */
export type InputData =
  | Tensor
  | Float32Array
  | Uint8Array
  | readonly number[]
  | readonly (readonly number[])[]
  | { data: Uint8Array | Float32Array; shape: readonly number[] };

/** Targets: sparse labels (integers) or dense targets (one row per sample). */
export type TargetData =
  | Tensor
  | Int32Array
  | Uint8Array
  | Uint32Array
  | Float32Array
  | readonly number[]
  | readonly (readonly number[])[];

/** A data set split as the datasets module returns it: `{ x, y }`. */
export interface XY {
  /** Inputs. */
  x: InputData;
  /** Targets. */
  y: TargetData;
}

interface DeviceData {
  x: GatherSource;
  y: GatherSource;
  rows: number;
  /** Tensors this object made and must dispose. */
  owned: Tensor[];
  scale: number;
  shift: number;
}

function isTensor(v: unknown): v is Tensor {
  return v !== null && typeof v === "object" && "shape" in v && "dtype" in v && "storage" in v;
}

function nestedShape(v: unknown): number[] {
  const s: number[] = [];
  while (Array.isArray(v)) {
    s.push(v.length);
    v = v[0];
  }
  return s;
}

function flat(v: unknown): number[] {
  const out: number[] = [];
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) { for (const y of x) walk(y); }
    else out.push(x as number);
  };
  walk(v);
  return out;
}

/**
 * The largest chunk of a data set on the GPU: 128 MiB, the storage binding size every WebGPU
 * adapter offers. A larger set is uploaded as several tensors and gathered chunk by chunk.
 */
const DATA_CHUNK_BYTES = 128 * 1024 * 1024;
let dataChunkBytes = DATA_CHUNK_BYTES;

/**
 * @internal Caps the chunks data sets are uploaded in at `bytes` (null: back to 128 MiB), so that
 * tests can run the chunked gather on small sets.
 */
export function setDataChunkBytes(bytes: number | null): void {
  dataChunkBytes = bytes ?? DATA_CHUNK_BYTES;
}

let weightUpdates = true;

/**
 * @internal Whether a compiled training step updates dense kernels in the epilogue of their
 * weight-gradient products (default true); off, every parameter's gradient is stored and the
 * optimizer's one dispatch updates them all. For tests and benchmarks that compare the two.
 */
export function setWeightUpdates(enabled: boolean): void {
  weightUpdates = enabled;
}

/**
 * Uploads `rows` rows of `rowValues` values each, in as many chunks as the chunk size needs
 * (bytes are packed four per u32 word, and a chunk of bytes starts on a word).
 */
function uploadRows(
  values: Uint8Array | Float32Array | Int32Array,
  rows: number,
  rowValues: number,
  tensorShape: (n: number) => number[] | null,
  owned: Tensor[],
): Pick<GatherSource, "data" | "perChunk"> {
  const bytesPerValue = values instanceof Uint8Array ? 1 : 4;
  const rowBytes = Math.max(1, rowValues * bytesPerValue);
  // Each chunk is packed from its own word 0, so a chunk may hold any number of rows.
  const perChunk = Math.max(1, Math.floor(dataChunkBytes / rowBytes));
  const chunks: Tensor[] = [];
  for (let first = 0; first === 0 || first < rows; first += perChunk) {
    const n = Math.min(perChunk, rows - first);
    const part = values.subarray(first * rowValues, (first + n) * rowValues);
    let t: Tensor;
    if (part instanceof Uint8Array) {
      const words = new Uint32Array(Math.ceil(part.length / 4));
      new Uint8Array(words.buffer).set(part);
      t = tensor(words);
    } else {
      const shape = tensorShape(n);
      t = shape ? tensor(part, shape) : tensor(part);
    }
    owned.push(t);
    chunks.push(t);
  }
  return chunks.length === 1 ? { data: chunks[0] } : { data: chunks, perChunk };
}

/** Puts inputs on the GPU as a gather source (bytes stay bytes: four per word). */
function inputSource(model: AnyModel, x: InputData, what: string, owned: Tensor[]): GatherSource {
  const rowShape = [...model.inputShape];
  const rowSize = rowShape.reduce((a, b) => a * b, 1);
  const fromFlat = (n: number, kindLabel: string): number => {
    if (n % rowSize !== 0) {
      throw new WgradError(
        "shape",
        `${what}: ${n} ${kindLabel} values are not a whole number of samples of ${
          fmtShape(rowShape)
        } (${rowSize} each)`,
      );
    }
    return n / rowSize;
  };
  if (isTensor(x)) {
    x.assertLive(what);
    if (x.dtype !== "f32") {
      throw new WgradError("dtype", `${what}: inputs ${x.describe()} must be f32`);
    }
    if (fmtShape(x.shape.slice(1)) !== fmtShape(rowShape)) {
      throw new WgradError(
        "shape",
        `${what}: inputs ${x.describe()} do not match the model's input (None, ${
          rowShape.join(", ")
        })`,
      );
    }
    return { data: x, kind: "f32", rows: x.shape[0], rowShape };
  }
  let data: Uint8Array | Float32Array;
  let shape: readonly number[] | null = null;
  if (x instanceof Uint8Array || x instanceof Float32Array) data = x;
  else if (Array.isArray(x)) {
    shape = nestedShape(x);
    data = Float32Array.from(flat(x));
  } else if (x && typeof x === "object" && "data" in x && "shape" in x) {
    data = x.data;
    shape = x.shape;
  } else {
    throw new WgradError(
      "value",
      `${what}: inputs must be a tensor, a typed array or nested arrays`,
    );
  }
  if (shape && shape.length > 1 && fmtShape(shape.slice(1)) !== fmtShape(rowShape)) {
    throw new WgradError(
      "shape",
      `${what}: inputs of shape ${fmtShape(shape)} do not match the model's input (None, ${
        rowShape.join(", ")
      })`,
    );
  }
  const rows = fromFlat(data.length, data instanceof Uint8Array ? "byte" : "float");
  if (data instanceof Float32Array) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new WgradError(
          "value",
          `${what}: input value ${data[i]} in sample ${Math.floor(i / rowSize)} (feature ${
            i % rowSize
          }) is not finite`,
        );
      }
    }
  }
  const kind = data instanceof Uint8Array ? "u8" : "f32";
  const up = uploadRows(data, rows, rowSize, (n) => [n, ...rowShape], owned);
  return { ...up, kind, rows, rowShape };
}

/** Puts targets on the GPU: sparse labels as i32 [N], dense targets as f32 [N, ...]. */
function targetSource(
  model: AnyModel,
  y: TargetData,
  rows: number,
  loss: LossSpec,
  what: string,
  owned: Tensor[],
): GatherSource {
  const out = model.outputShape;
  const classes = out[out.length - 1];
  if (isTensor(y)) {
    y.assertLive(what);
    if (y.shape[0] !== rows) {
      throw new WgradError(
        "shape",
        `${what}: ${rows} input samples but ${y.shape[0]} targets (${y.describe()})`,
      );
    }
    if (loss.labels === "sparse") {
      if (y.dtype !== "i32" || y.size !== rows) {
        throw new WgradError(
          "dtype",
          `${what}: ${loss.name} takes integer labels, one per sample (i32 [${rows}]); got ${y.describe()}`,
        );
      }
      return { data: y, kind: "i32", rows, rowShape: [] };
    }
    if (y.dtype !== "f32") {
      throw new WgradError("dtype", `${what}: ${loss.name} takes f32 targets, got ${y.describe()}`);
    }
    return { data: y, kind: "f32", rows, rowShape: y.shape.slice(1) as number[] };
  }
  const values = ArrayBuffer.isView(y) ? (y as ArrayLike<number>) : flat(y);
  if (loss.labels === "sparse") {
    if (values.length !== rows) {
      throw new WgradError("shape", `${what}: ${rows} input samples but ${values.length} labels`);
    }
    const labels = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      const v = values[i];
      if (!Number.isInteger(v) || v < 0 || v >= classes) {
        throw new WgradError(
          "value",
          `${what}: label ${v} of sample ${i} is outside [0, ${classes}) (the model has ${classes} outputs)`,
        );
      }
      labels[i] = v;
    }
    return { ...uploadRows(labels, rows, 1, () => null, owned), kind: "i32", rows, rowShape: [] };
  }
  const per = values.length / rows;
  if (!Number.isInteger(per) || per !== out.reduce((a, b) => a * b, 1)) {
    throw new WgradError(
      "shape",
      `${what}: ${values.length} target values for ${rows} samples do not match the model's output (None, ${
        out.join(", ")
      })`,
    );
  }
  const up = uploadRows(Float32Array.from(values), rows, per, (n) => [n, ...out], owned);
  return { ...up, kind: "f32", rows, rowShape: [...out] };
}

async function checkTensorLabels(src: GatherSource, classes: number, what: string): Promise<void> {
  if (src.kind !== "i32" || Array.isArray(src.data)) return; // (chunks: labels checked on upload)
  const labels = await (src.data as Tensor).data() as Int32Array;
  for (let i = 0; i < src.rows; i++) {
    if (labels[i] < 0 || labels[i] >= classes) {
      throw new WgradError(
        "value",
        `${what}: label ${
          labels[i]
        } of sample ${i} is outside [0, ${classes}) (the model has ${classes} outputs)`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Compiled state

/** Options of `compile`. */
export interface CompileOptions {
  /** An optimizer (`optim.adam(…)`) or a Keras name: "adam", "sgd", "rmsprop", "adagrad", "adamw". */
  optimizer: OptimizerLike | string;
  /** A loss (`losses.sparseCategoricalCrossentropy({ fromLogits: true })`) or a Keras name. */
  loss: LossLike | string;
  /** Metrics by Keras name: "accuracy" (resolved from the loss), "sparse_categorical_accuracy", … */
  metrics?: readonly string[];
}

interface Compiled {
  optimizer: OptimizerLike;
  loss: LossSpec;
  metrics: MetricSpec[];
  arena: ParamArena | null;
  step: Tensor<"u32"> | null;
  acc: Tensor<"f32"> | null;
  plans: Map<string, { plan: Plan; outs: Tensor[] }>;
  globalStep: number;
  /** Epochs completed (the `initialEpoch` to resume at). */
  epoch: number;
  /** Whether the optimizer's state exists (built by a captured step or restored). */
  optBuilt: boolean;
}

const compiled = new WeakMap<AnyModel, Compiled>();

/** Configures a model for training. */
export function compileModel(model: AnyModel, options: CompileOptions): void {
  if (!options || typeof options !== "object") {
    throw new WgradError(
      "value",
      `model "${model.name}".compile: pass { optimizer, loss, metrics }`,
    );
  }
  if (model.built && model.inputShapes.length !== 1) {
    throw new WgradError(
      "value",
      `model "${model.name}".compile: the model has ${model.inputShapes.length} inputs; compile ` +
        "and fit train models with one input",
    );
  }
  if (model.built && model.outputShapes.length !== 1) {
    throw new WgradError(
      "value",
      `model "${model.name}".compile: the model has ${model.outputShapes.length} outputs; ` +
        "compile and fit train models with one output (a model over the same layers with " +
        "several outputs can still predict, to read intermediate outputs)",
    );
  }
  const optimizer = resolveOptimizer(options.optimizer, `model "${model.name}".compile`);
  const loss = resolveLoss(options.loss, `model "${model.name}".compile`);
  const metrics = resolveMetrics(options.metrics ?? [], loss, `model "${model.name}".compile`);
  const prev = compiled.get(model);
  if (prev) disposeCompiled(prev, false);
  // Weights frozen or unfrozen since the arena was made: a new arena (and optimizer state).
  if (prev?.arena && !prev.arena.isDisposed && model.built) {
    const names = model.weightEntries.filter((e) => e.trainable).map((e) => e.name);
    if (names.join("\n") !== prev.arena.names.join("\n")) {
      releaseArena(model, prev.arena);
      prev.arena = null;
    }
  }
  compiled.set(model, {
    optimizer,
    loss,
    metrics,
    arena: prev?.arena ?? null,
    step: null,
    acc: null,
    plans: new Map(),
    globalStep: 0,
    epoch: 0,
    optBuilt: false,
  });
}

function disposeCompiled(c: Compiled, arenaToo: boolean): void {
  for (const { plan, outs } of c.plans.values()) {
    for (const o of outs) o.dispose();
    plan.dispose();
  }
  c.plans.clear();
  c.step?.dispose();
  c.acc?.dispose();
  c.step = c.acc = null;
  if (arenaToo) c.arena?.dispose();
}

function getCompiled(model: AnyModel, what: string): Compiled {
  const c = compiled.get(model);
  if (!c) {
    throw new WgradError(
      "value",
      `model "${model.name}".${what}: call model.compile({ optimizer, loss, metrics }) first`,
    );
  }
  if (!model.built) {
    throw new WgradError(
      "value",
      `model "${model.name}".${what}: the model is not built; give nn.sequential an inputShape`,
    );
  }
  return c;
}

/** The parameters of every arena: tensors an arena owns, never disposed by another model. */
const arenaOwned = new WeakSet<Tensor>();

/**
 * Moves the model's weights into one parameter arena (once), so one dispatch updates them all.
 * Layers shared with another model may since have moved into that model's arena: their current
 * values are copied back into this arena first, so each model trains the weights it shares.
 */
function ensureArena(model: AnyModel, c: Compiled): ParamArena {
  // Only trained weights go into the arena (batch norm's moving statistics stay apart).
  const entries = model.weightEntries.filter((e) => e.trainable);
  if (c.arena && !c.arena.isDisposed) {
    const arena = c.arena;
    if (
      entries.length !== arena.length || entries.some((e, i) => e.name !== arena.names[i])
    ) {
      throw new WgradError(
        "value",
        `model "${model.name}": its trained weights (${
          entries.map((e) => e.name).join(", ")
        }) no longer match its optimizer's (${arena.names.join(", ")}): after changing a ` +
          "layer's trainable, call compile again",
      );
    }
    entries.forEach((e, i) => {
      const cur = e.layer.weights[e.index];
      if (cur === arena.params[i]) return;
      arena.setWeight(i, cur);
      e.layer.weights[e.index] = arena.params[i];
      if (!arenaOwned.has(cur)) cur.dispose();
    });
    return arena;
  }
  const arena = new ParamArena(entries.map((e) => ({ name: e.name, value: e.tensor })), {
    name: model.name,
  });
  entries.forEach((e, i) => {
    const old = e.layer.weights[e.index];
    const t = keep(arena.params[i]);
    t.name = e.name;
    arenaOwned.add(t);
    e.layer.weights[e.index] = t;
    if (!arenaOwned.has(old)) old.dispose();
  });
  c.arena = arena;
  return arena;
}

/**
 * The GPU state of the captured steps: the step words, and the running figures of an epoch,
 * [loss sum, correct count of the loss launch, samples, steps] then one word per metric that
 * the loss launch does not count (see {@linkcode metricPlan}).
 */
function ensureState(c: Compiled): { step: Tensor<"u32">; acc: Tensor<"f32"> } {
  c.step ??= keep(tensor(new Uint32Array(4)));
  c.acc ??= keep(zeros([4 + c.metrics.length]));
  return { step: c.step, acc: c.acc };
}

/**
 * Where each compiled metric's count lands in the accumulator: the loss launch's own count
 * (word 1) where it counts that metric and no regularization penalty takes the loss apart, else
 * a word of its own from 4 on; `own` lists the metrics that count in a dispatch of their own,
 * in the order of their words.
 */
function metricPlan(model: AnyModel, c: Compiled): { slots: number[]; own: MetricSpec[] } {
  const regularized = hasPenalty(model);
  const own: MetricSpec[] = [];
  const slots = c.metrics.map((m) => {
    if (!regularized && countedByLoss(m, c.loss)) return 1;
    own.push(m);
    return 3 + own.length;
  });
  return { slots, own };
}

/** Counts each of `own` on a batch and adds the counts into `acc` from word 4 on. */
function countMetrics(
  acc: Tensor<"f32">,
  own: readonly MetricSpec[],
  yb: Tensor,
  out: Tensor<"f32">,
): void {
  if (own.length === 0) return;
  const counts = noGrad(() => own.map((m) => m.count(yb, out)));
  accumulate(acc, counts, 4);
  for (const t of counts) t.dispose();
}

function hasPenalty(model: AnyModel): boolean {
  return model.layers.some((l) =>
    l.inputShape && l.weightSpecs(l.inputShape).some((s) => s.regularizer)
  );
}

function penalty(model: AnyModel): Tensor<"f32"> | null {
  let total: Tensor<"f32"> | null = null;
  for (const l of model.layers) {
    if (!l.inputShape) continue;
    const specs = l.weightSpecs(l.inputShape);
    specs.forEach((s, k) => {
      if (!s.regularizer) return;
      const p = s.regularizer.penalty(l.weights[k]);
      if (total) {
        const t = add(total, p);
        total.dispose();
        p.dispose();
        total = t;
      } else total = p;
    });
  }
  return total;
}

function captureTrainStep(
  rt: Runtime,
  model: AnyModel,
  c: Compiled,
  data: DeviceData,
  perm: Tensor<"u32">,
  batch: number,
): Plan {
  const arena = ensureArena(model, c);
  // The optimizer's state is made and zeroed now: a capture would replay that every step.
  const opt = c.optimizer as OptimizerLike & { build?: (a: ParamArena) => void };
  opt.build?.(arena);
  c.optBuilt = true;
  // Parameters whose gradient is one dense layer's dW = Xᵀ·dZ (written straight into its slot)
  // are updated by that product's epilogue: the gradient is never stored or read back, and the
  // optimizer's dispatch skips them.
  const updated: number[] = [];
  const registered: Tensor[] = [];
  const { step, acc } = ensureState(c);
  try {
    if (weightUpdates && opt.weightUpdate) {
      arena.gradients.forEach((slot, i) => {
        const u = opt.weightUpdate!(arena, i, () => updated.push(i));
        if (!u) return;
        registered.push(slot);
        setWeightUpdate(slot, u);
      });
    }
    return rt.capture(`train step "${model.name}" batch ${batch}`, () => {
      const xb = gatherRows(data.x, perm, step, batch, {
        scale: data.scale,
        shift: data.shift,
      }) as Tensor<"f32">;
      const yb = gatherRows(data.y, perm, step, batch);
      const regularized = hasPenalty(model);
      const { own } = metricPlan(model, c);
      const { value, grads } = valueAndGradSync(
        () => {
          const out = model.apply(xb, { training: true, rng: step });
          countMetrics(acc, own, yb, out);
          // Without penalties the loss launch itself adds [loss sum, correct, samples, 1] into acc.
          if (!regularized) return c.loss.fn(yb, out, acc);
          const l = c.loss.fn(yb, out);
          const reg = penalty(model)!;
          return add(l, reg);
        },
        arena.params,
        arena.gradients,
      );
      // Every slot is overwritten each step (in place by the kernel that computes it, else by a
      // copy, or a clear for a parameter without a gradient), or never read (a kernel updated by
      // its product), so the update need not clear them; fit clears them all when it ends.
      arena.setGradients(grads);
      grads.forEach((g, i) => {
        if (g !== arena.gradients[i]) g.dispose();
      });
      c.optimizer.step(arena, { keepGradients: true, updated: [...updated].sort((a, b) => a - b) });
      if (regularized) accumulateInto(acc, value as Tensor<"f32">, null, batch);
      value.dispose();
      xb.dispose();
      yb.dispose();
    });
  } finally {
    for (const slot of registered) setWeightUpdate(slot, null);
  }
}

function captureEvalStep(
  rt: Runtime,
  model: AnyModel,
  c: Compiled,
  data: DeviceData,
  perm: Tensor<"u32">,
  batch: number,
  keepOutput: boolean,
): { plan: Plan; outs: Tensor[] } {
  const { step, acc } = ensureState(c);
  const kept: Tensor[] = [];
  const plan = rt.capture(`eval step "${model.name}" batch ${batch}`, () =>
    noGrad(() => {
      const xb = gatherRows(data.x, perm, step, batch, {
        scale: data.scale,
        shift: data.shift,
      }) as Tensor<"f32">;
      if (keepOutput) {
        for (const o of model.applyAll(xb, { training: false, rng: null })) kept.push(keep(o));
      } else {
        const out = model.apply(xb, { training: false, rng: null });
        const yb = gatherRows(data.y, perm, step, batch);
        countMetrics(acc, metricPlan(model, c).own, yb, out);
        if (hasPenalty(model)) {
          // Keras reports the regularization penalty in evaluation losses too.
          const l = c.loss.fn(yb, out);
          const reg = penalty(model)!;
          const total = add(l, reg);
          accumulateInto(acc, total, null, batch);
          for (const t of [l, reg, total]) t.dispose();
        } else {
          c.loss.fn(yb, out, acc).dispose();
        }
        yb.dispose();
        out.dispose();
      }
      xb.dispose();
    }));
  return { plan, outs: kept };
}

// ---------------------------------------------------------------------------------------------
// fit

/** Options of `fit`. */
export interface FitOptions {
  /** Epochs to train (default 1). */
  epochs?: number;
  /** Samples per step (default 32). The last partial batch is trained on, not dropped. */
  batchSize?: number;
  /** Shuffle the training samples each epoch (default true). */
  shuffle?: boolean;
  /** Seed of the shuffles and of dropout (default: the model's seed). */
  seed?: number;
  /**
   * Fraction of the samples held out for validation, taken from the end before shuffling: as
   * Keras, the first floor(n · (1 − validationSplit)) train and the rest validate.
   */
  validationSplit?: number;
  /** Data to validate on after each epoch (instead of a split). */
  validationData?: XY | readonly [InputData, TargetData];
  /** Callbacks (earlyStopping, reduceLrOnPlateau, or your own hooks). */
  callbacks?: readonly Callback[];
  /** 0 silent, 1 progress bar (default), 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
  /** The epoch to start at (to resume), default 0. */
  initialEpoch?: number;
  /** For bytes: pixel · scale + shift (default 1/255 and 0, i.e. [0, 1]). */
  scale?: number;
  /** See `scale`. */
  shift?: number;
  /**
   * Stop when the loss becomes NaN or infinite (default true, Keras's TerminateOnNaN): the
   * training state is put back to its values at the start of the epoch (the weights, the
   * optimizer's step count and slots, batch norm's moving statistics, from GPU copies made then:
   * about (1 + slots) × the parameters' memory, 3× for Adam) and fit throws an error naming the
   * epoch and step. With false, training goes on and the figures are reported as they are.
   */
  terminateOnNaN?: boolean;
}

function toDevice(
  model: AnyModel,
  c: Compiled,
  x: InputData,
  y: TargetData | null,
  what: string,
  scale: number,
  shift: number,
): DeviceData {
  const owned: Tensor[] = [];
  try {
    const xs = inputSource(model, x, what, owned);
    const ys = y === null
      ? { data: xs.data, perChunk: xs.perChunk, kind: "i32" as const, rows: xs.rows, rowShape: [] }
      : targetSource(model, y, xs.rows, c.loss, what, owned);
    return { x: xs, y: ys, rows: xs.rows, owned, scale, shift };
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}

function shuffled(n: number, lo: number, g: Philox | null): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = lo + i;
  if (g) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(g.nextUnit() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
  }
  return p;
}

function checkBatch(batchSize: number, what: string): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new WgradError(
      "value",
      `${what}: batchSize must be a positive integer, got ${batchSize}`,
    );
  }
}

/** The loss and every compiled metric, per sample, from the accumulator's words. */
function logsFrom(
  acc: Float32Array,
  c: Compiled,
  slots: readonly number[],
): Record<string, number> {
  const n = acc[2] || 1;
  const logs: Record<string, number> = { loss: acc[0] / n };
  c.metrics.forEach((m, i) => logs[m.name] = acc[slots[i]] / n);
  return logs;
}

/** The two call forms, `(x, y, options)` and `({ x, y }, options)`, as one. */
function splitArgs<O>(
  xOrData: InputData | XY,
  yOrOptions: TargetData | O | undefined,
  maybeOptions: O | undefined,
  where: string,
): { x: InputData; y: TargetData; options: O } {
  if (
    xOrData && typeof xOrData === "object" && "x" in xOrData && "y" in xOrData && !isTensor(xOrData)
  ) {
    return { x: xOrData.x, y: xOrData.y, options: (yOrOptions as O) ?? ({} as O) };
  }
  if (yOrOptions === undefined) throw new WgradError("value", `${where}: targets are missing`);
  return {
    x: xOrData as InputData,
    y: yOrOptions as TargetData,
    options: maybeOptions ?? ({} as O),
  };
}

/** Trains the model; see {@linkcode FitOptions}. */
export async function fitModel(
  model: AnyModel,
  xOrData: InputData | XY,
  yOrOptions?: TargetData | FitOptions,
  maybeOptions?: FitOptions,
): Promise<History> {
  const where = `model "${model.name}".fit`;
  const c = getCompiled(model, "fit");
  const { x, y, options } = splitArgs<FitOptions>(xOrData, yOrOptions, maybeOptions, where);
  const epochs = options.epochs ?? 1;
  const batchSize = options.batchSize ?? 32;
  const verbose = options.verbose ?? 1;
  const initialEpoch = options.initialEpoch ?? 0;
  checkBatch(batchSize, where);
  if (!Number.isInteger(epochs) || epochs < 0) {
    throw new WgradError("value", `${where}: epochs must be a non-negative integer, got ${epochs}`);
  }
  const givenSplit = options.validationSplit ?? 0;
  if (!(givenSplit >= 0 && givenSplit < 1)) {
    throw new WgradError(
      "value",
      `${where}: validationSplit must be in [0, 1), got ${givenSplit}`,
    );
  }
  // Keras: validationData overrides validationSplit, and every row trains.
  const split = options.validationData ? 0 : givenSplit;
  const scale = options.scale ?? 1 / 255, shift = options.shift ?? 0;
  const data = toDevice(model, c, x, y, where, scale, shift);
  let val: DeviceData | null = null;
  try {
    const classes = model.outputShape[model.outputShape.length - 1];
    await checkTensorLabels(data.y, classes, where);
    // Keras: the first floor(n · (1 − split)) rows train, the rest validate.
    const nTrain = Math.floor(data.rows * (1 - split));
    const nVal = data.rows - nTrain;
    if (data.rows === 0) {
      throw new WgradError("value", `${where}: no training samples (x has 0 rows)`);
    }
    if (split > 0 && (nTrain === 0 || nVal === 0)) {
      throw new WgradError(
        "value",
        `${where}: ${data.rows} samples are not enough to split into training and validation ` +
          `parts with validationSplit ${split} (${nTrain} would train, ${nVal} validate)`,
      );
    }
    if (options.validationData) {
      const vd = options.validationData;
      const [vx, vy] = Array.isArray(vd) ? vd : [(vd as XY).x, (vd as XY).y];
      val = toDevice(model, c, vx, vy, `${where} (validationData)`, scale, shift);
      await checkTensorLabels(val.y, classes, `${where} (validationData)`);
    }
    const rt = await ready();
    const history = new History();
    const seed = options.seed ?? model.seed;
    // The order of epoch e comes from stream (0x5f, e) of the seed, so it depends on the seed and
    // the epoch only: a run resumed at initialEpoch shuffles as the uninterrupted run did.
    const shuffleGen = (epoch: number) =>
      options.shuffle === false ? null : new Philox(seed, 0x5f + epoch * 2 ** 32);
    const terminateOnNaN = options.terminateOnNaN ?? true;
    const perm = tensor(new Uint32Array(data.rows)) as Tensor<"u32">;
    const valPerm = val ? tensor(shuffled(val.rows, 0, null)) as Tensor<"u32"> : null;
    data.owned.push(perm);
    if (valPerm) val!.owned.push(valPerm);
    const steps = Math.ceil(nTrain / batchSize);
    const last = nTrain - (steps - 1) * batchSize;
    const { step, acc } = ensureState(c);
    const planFull = captureTrainStep(rt, model, c, data, perm, Math.min(batchSize, nTrain));
    let planLast: Plan | null = null;
    try {
      if (last !== Math.min(batchSize, nTrain)) {
        planLast = captureTrainStep(rt, model, c, data, perm, last);
      }
    } catch (e) {
      planFull.dispose();
      throw e;
    }
    const control: TrainingControl = {
      stopTraining: false,
      get learningRate() {
        return c.optimizer.learningRate;
      },
      set learningRate(v: number) {
        c.optimizer.learningRate = v;
      },
      getWeights: () => model.getWeights(),
      setWeights: (w) => model.setWeights(w),
      save: (dir) => model.save(dir),
      saveWeights: (path) => model.saveWeights(path),
    };
    const callbacks = options.callbacks ?? [];
    // The training state at the start of the epoch, put back when the loss becomes NaN: the
    // parameter arena, the optimizer's step counters and slots (moments, velocities), and the
    // weights a training step changes outside the arena (batch norm's moving statistics), one GPU
    // copy of each per epoch.
    const arena = c.arena!;
    type Region = { storage: Storage; byteOffset: number; byteLength: number };
    const whole = (s: Storage): Region => ({ storage: s, byteOffset: 0, byteLength: s.byteLength });
    const kept: Region[] = [whole(arena.paramRegion)];
    const opt = c.optimizer as OptimizerLike & { stateRegions?: () => Region[] };
    const optRegions = opt.stateRegions?.() ?? [];
    kept.push(...optRegions);
    let moving = 0;
    for (const e of model.weightEntries) {
      if (!e.trainable && e.layer.trainable && !arenaOwned.has(e.tensor)) {
        kept.push(whole(e.tensor.storage));
        moving++;
      }
    }
    const restored = [
      "the weights",
      ...(optRegions.length ? ["the optimizer's state"] : []),
      ...(moving ? ["the moving statistics"] : []),
    ];
    const restoredText = restored.length === 1
      ? restored[0]
      : `${restored.slice(0, -1).join(", ")} and ${restored[restored.length - 1]}`;
    // Allocated inside the try below, so that its finally gives them back on every exit.
    let backup: { r: Region; copy: Storage }[] | null = null;
    let stepAtEpochStart = c.globalStep;
    // Ctrl-C: the current step finishes, checkpoint callbacks save, and fit throws
    // Deno.errors.Interrupted; a second Ctrl-C exits at once.
    const sigint = { hit: false };
    const onSigint = () => {
      if (sigint.hit) Deno.exit(130);
      sigint.hit = true;
    };
    let listening = false;
    if (Deno.build.os !== "windows") {
      try {
        Deno.addSignalListener("SIGINT", onSigint);
        listening = true;
      } catch { /* signals unavailable: Ctrl-C ends the process as usual */ }
    }
    // `epoch` is the epoch in progress (or the last one completed, with done = steps).
    let lastLogs: Record<string, number> = {};
    const interrupt = async (epoch: number, done: number, logs: Record<string, number>) => {
      for (const cb of callbacks) await cb.onInterrupt?.(epoch, logs, control);
      throw new Deno.errors.Interrupted(
        `${where}: interrupted (SIGINT) ${
          done === steps ? `after epoch ${epoch + 1}` : `in epoch ${epoch + 1} after step ${done}`
        } of ${done === steps ? epochs : steps}; ${c.epoch} epoch${
          c.epoch === 1 ? "" : "s"
        } completed`,
      );
    };
    const seedLo = seed >>> 0, seedHi = Math.floor(seed / 2 ** 32) >>> 0;
    const stepWords = new Uint32Array(4);
    const zeroAcc = new Float32Array(acc.size);
    const { slots } = metricPlan(model, c);
    try {
      if (terminateOnNaN) {
        backup = [];
        for (const r of kept) {
          backup.push({ r, copy: rt.alloc(r.byteLength, "fit: training state at epoch start") });
        }
      }
      for (const cb of callbacks) await cb.onTrainBegin?.(control);
      for (let epoch = initialEpoch; epoch < epochs && !control.stopTraining; epoch++) {
        if (sigint.hit) await interrupt(Math.max(epoch - 1, 0), steps, lastLogs);
        ProgressBar.header(epoch + 1, epochs, verbose);
        for (const cb of callbacks) await cb.onEpochBegin?.(epoch, control);
        const bar = new ProgressBar(steps, verbose);
        rt.write(perm.storage, shuffled(nTrain, 0, shuffleGen(epoch)), "fit: permutation");
        rt.write(acc.storage, zeroAcc, "fit: accumulators");
        if (backup) {
          for (const { r, copy } of backup) {
            rt.copy(r.storage, copy, r.byteLength, "fit: keep training state", r.byteOffset, 0);
          }
          stepAtEpochStart = c.globalStep;
        }
        let readEvery = 8;
        const pending: { done: number; promise: Promise<ArrayBuffer> }[] = [];
        let latest: Record<string, number> = {};
        const drain = async (keepAtMost: number) => {
          while (pending.length > keepAtMost) {
            const p = pending.shift()!;
            const a = new Float32Array(await p.promise);
            if (backup && !Number.isFinite(a[0])) {
              pending.length = 0;
              for (const { r, copy } of backup) {
                const label = "fit: restore training state";
                rt.copy(copy, r.storage, r.byteLength, label, 0, r.byteOffset);
              }
              c.globalStep = stepAtEpochStart;
              await rt.flush();
              throw new WgradError(
                "value",
                `${where}: the loss became ${a[0]} in epoch ${
                  epoch + 1
                }, by step ${p.done} of ${steps}; ` +
                  `training stopped and ${restoredText} were restored to those at the start of ` +
                  "the epoch (lower the learning rate, check the inputs for NaN, or clip gradients)",
              );
            }
            latest = logsFrom(a, c, slots);
            bar.update(p.done, latest);
            // Once a callback has stopped training, the readbacks still in flight update the
            // figures but call no batch hooks (Keras calls none after stop_training).
            if (control.stopTraining) continue;
            for (const cb of callbacks) await cb.onBatchEnd?.(p.done - 1, latest, control);
          }
        };
        const t0 = performance.now();
        let stoppedAt = -1;
        let ran = steps;
        for (let s = 0; s < steps; s++) {
          stepWords[0] = seedLo;
          stepWords[1] = seedHi;
          stepWords[2] = c.globalStep++;
          stepWords[3] = s * batchSize;
          rt.write(step.storage, stepWords, "fit: step state");
          (s === steps - 1 && planLast ? planLast : planFull).replay();
          if ((s + 1) % readEvery === 0 || s === steps - 1) {
            pending.push({ done: s + 1, promise: rt.read(acc.storage, "fit: running loss") });
            if (s + 1 === 4 * readEvery) {
              // Aim at a readback every ~100 ms once a step's time is known.
              const perStep = (performance.now() - t0) / (s + 1);
              readEvery = Math.max(4, Math.min(256, Math.round(100 / Math.max(perStep, 0.01))));
            }
            await drain(2);
            // A batch callback stopped training: the epoch ends after the steps already
            // submitted, then validates and calls onEpochEnd, as Keras does.
            if (control.stopTraining) {
              ran = s + 1;
              break;
            }
          } else {
            rt.flush();
          }
          if (sigint.hit && s < steps - 1) {
            stoppedAt = s + 1;
            pending.push({ done: s + 1, promise: rt.read(acc.storage, "fit: running loss") });
            break;
          }
        }
        await drain(0);
        if (stoppedAt >= 0) await interrupt(epoch, stoppedAt, { ...latest });
        const logs = { ...latest };
        if (nVal > 0 || val) {
          const v = val ?? { ...data, rows: data.rows };
          const vPerm = val ? valPerm! : perm;
          if (!val) rt.write(perm.storage, shuffled(nVal, nTrain, null), "fit: validation rows");
          const vl = await evaluateOn(rt, model, c, v, vPerm, val ? val.rows : nVal, batchSize);
          for (const [k, value] of Object.entries(vl)) logs[`val_${k}`] = value;
        }
        bar.finish(logs, ran);
        c.epoch = epoch + 1;
        for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs, control);
        history.record(epoch, logs);
        lastLogs = logs;
      }
      if (sigint.hit) await interrupt(Math.max(c.epoch - 1, 0), steps, lastLogs);
      // As in Keras, only when training ends normally (not after an error or an interrupt).
      for (const cb of callbacks) await cb.onTrainEnd?.(control, lastLogs);
    } finally {
      if (listening) Deno.removeSignalListener("SIGINT", onSigint);
      planFull.dispose();
      planLast?.dispose();
      for (const b of backup ?? []) b.copy.release();
      // The slots of kernels updated by their products were never written: fit leaves every
      // slot zero rather than a mix of the last step's gradients and stale values.
      const arena = c.arena;
      if (arena && !arena.isDisposed) rt.clear(arena.gradRegion, "fit: clear the gradients");
    }
    return history;
  } finally {
    for (const t of data.owned) t.dispose();
    if (val) { for (const t of val.owned) t.dispose(); }
  }
}

async function evaluateOn(
  rt: Runtime,
  model: AnyModel,
  c: Compiled,
  data: DeviceData,
  perm: Tensor<"u32">,
  rows: number,
  batchSize: number,
): Promise<Record<string, number>> {
  const { step, acc } = ensureState(c);
  const steps = Math.ceil(rows / batchSize);
  const last = rows - (steps - 1) * batchSize;
  const full = captureEvalStep(rt, model, c, data, perm, Math.min(batchSize, rows), false);
  let tail: { plan: Plan; outs: Tensor[] } | null = null;
  try {
    tail = last !== Math.min(batchSize, rows)
      ? captureEvalStep(rt, model, c, data, perm, last, false)
      : null;
    rt.write(acc.storage, new Float32Array(acc.size), "evaluate: accumulators");
    const words = new Uint32Array(4);
    for (let s = 0; s < steps; s++) {
      words[3] = s * batchSize;
      rt.write(step.storage, words, "evaluate: step state");
      (s === steps - 1 && tail ? tail : full).plan.replay();
      rt.flush();
    }
    const a = new Float32Array(await rt.read(acc.storage, "evaluate: totals"));
    return logsFrom(a, c, metricPlan(model, c).slots);
  } finally {
    full.plan.dispose();
    tail?.plan.dispose();
  }
}

/** Options of `evaluate` and `predict`. */
export interface EvaluateOptions {
  /** Samples per step (default 32). */
  batchSize?: number;
  /** For bytes: pixel · scale + shift (default 1/255 and 0). */
  scale?: number;
  /** See `scale`. */
  shift?: number;
  /** 0 silent (default), 1 a line with the results. */
  verbose?: 0 | 1;
}

/** The loss and metrics on a data set, as `{ loss, accuracy }`. */
export async function evaluateModel(
  model: AnyModel,
  xOrData: InputData | XY,
  yOrOptions?: TargetData | EvaluateOptions,
  maybeOptions?: EvaluateOptions,
): Promise<Record<string, number>> {
  const where = `model "${model.name}".evaluate`;
  const c = getCompiled(model, "evaluate");
  const { x, y, options } = splitArgs<EvaluateOptions>(xOrData, yOrOptions, maybeOptions, where);
  const batchSize = options.batchSize ?? 32;
  checkBatch(batchSize, where);
  const data = toDevice(model, c, x, y, where, options.scale ?? 1 / 255, options.shift ?? 0);
  try {
    // Keras refuses empty data too: a loss and accuracy over no samples are not numbers.
    if (data.rows === 0) throw new WgradError("value", `${where}: no samples (x has 0 rows)`);
    const classes = model.outputShape[model.outputShape.length - 1];
    await checkTensorLabels(data.y, classes, where);
    const rt = await ready();
    if (!c.arena) ensureArena(model, c);
    const perm = tensor(shuffled(data.rows, 0, null)) as Tensor<"u32">;
    data.owned.push(perm);
    const logs = await evaluateOn(rt, model, c, data, perm, data.rows, batchSize);
    if (options.verbose) {
      console.log(Object.entries(logs).map(([k, v]) => `${k}: ${v.toFixed(4)}`).join(" - "));
    }
    return logs;
  } finally {
    for (const t of data.owned) t.dispose();
  }
}

/**
 * The model's outputs for every sample, one tensor `[N, ...outputShape]` per output (batched on
 * the GPU).
 */
export async function predictModel(
  model: AnyModel,
  x: InputData,
  options: EvaluateOptions = {},
): Promise<Tensor<"f32">[]> {
  const where = `model "${model.name}".predict`;
  const batchSize = options.batchSize ?? 32;
  checkBatch(batchSize, where);
  if (!model.built) {
    throw new WgradError(
      "value",
      `${where}: the model is not built; give nn.sequential an inputShape`,
    );
  }
  const c: Compiled = compiled.get(model) ?? {
    optimizer: null as unknown as OptimizerLike,
    loss: null as unknown as LossSpec,
    metrics: [],
    arena: null,
    step: null,
    acc: null,
    plans: new Map(),
    globalStep: 0,
    epoch: 0,
    optBuilt: false,
  };
  const owned: Tensor[] = [];
  const xs = inputSource(model, x, where, owned);
  const data: DeviceData = {
    x: xs,
    y: xs,
    rows: xs.rows,
    owned,
    scale: options.scale ?? 1 / 255,
    shift: options.shift ?? 0,
  };
  const outShapes = model.outputShapes;
  if (xs.rows === 0) {
    // No rows, no work: empty outputs of the right shape (as a PyTorch module or NumPy gives).
    for (const t of owned) t.dispose();
    return outShapes.map((s) => zeros([0, ...s]) as Tensor<"f32">);
  }
  const rt = await ready();
  const rowFloats = outShapes.map((s) => s.reduce((a, b) => a * b, 1));
  const results = outShapes.map((s) => zeros([data.rows, ...s]) as Tensor<"f32">);
  const { step } = ensureState(c);
  const perm = tensor(shuffled(data.rows, 0, null)) as Tensor<"u32">;
  owned.push(perm);
  const steps = Math.ceil(data.rows / batchSize);
  const last = data.rows - (steps - 1) * batchSize;
  let full: { plan: Plan; outs: Tensor[] } | null = null;
  let tail: { plan: Plan; outs: Tensor[] } | null = null;
  try {
    full = captureEvalStep(rt, model, c, data, perm, Math.min(batchSize, data.rows), true);
    tail = last !== Math.min(batchSize, data.rows)
      ? captureEvalStep(rt, model, c, data, perm, last, true)
      : null;
    const words = new Uint32Array(4);
    for (let s = 0; s < steps; s++) {
      const p = s === steps - 1 && tail ? tail : full;
      words[3] = s * batchSize;
      rt.write(step.storage, words, "predict: step state");
      p.plan.replay();
      const rows = s === steps - 1 ? last : Math.min(batchSize, data.rows);
      p.outs.forEach((o, k) =>
        copyRows(
          rt,
          o.storage,
          results[k].storage,
          rows * rowFloats[k] * 4,
          s * batchSize * rowFloats[k] * 4,
        )
      );
      rt.flush();
    }
    await rt.settle();
  } catch (e) {
    for (const r of results) r.dispose();
    throw e;
  } finally {
    for (const o of [...(full?.outs ?? []), ...(tail?.outs ?? [])]) o.dispose();
    full?.plan.dispose();
    tail?.plan.dispose();
    for (const t of owned) t.dispose();
    if (!compiled.has(model)) {
      c.step?.dispose();
      c.acc?.dispose();
    }
  }
  return results;
}

function copyRows(rt: Runtime, src: Storage, dst: Storage, bytes: number, dstByte: number): void {
  rt.copy(src, dst, bytes, "predict: gather outputs", 0, dstByte);
}

/**
 * @internal What a checkpoint stores to resume training exactly: the epochs completed, the step
 * counter that seeds dropout, and the optimizer's state (step count, learning rate, slots).
 */
export interface TrainingState {
  /** Epochs completed by `fit` (the `initialEpoch` to resume at). */
  epoch: number;
  /** Training steps taken (dropout's masks are drawn from it). */
  globalStep: number;
  /** The optimizer's state, or null when it has none yet or cannot report it. */
  optimizer: OptimizerState | null;
}

interface StatefulOptimizer {
  getState(): Promise<OptimizerState>;
  setState(state: OptimizerState, arena?: ParamArena): void;
}

function stateful(o: OptimizerLike): (OptimizerLike & StatefulOptimizer) | null {
  const s = o as OptimizerLike & Partial<StatefulOptimizer>;
  return typeof s.getState === "function" && typeof s.setState === "function"
    ? s as OptimizerLike & StatefulOptimizer
    : null;
}

/** @internal The training state of a compiled model (null when it is not compiled). */
export async function getTrainingState(model: AnyModel): Promise<TrainingState | null> {
  const c = compiled.get(model);
  if (!c) return null;
  const opt = stateful(c.optimizer);
  const optimizer = opt && c.optBuilt && c.arena && !c.arena.isDisposed
    ? await opt.getState()
    : null;
  return { epoch: c.epoch, globalStep: c.globalStep, optimizer };
}

/**
 * @internal Restores {@linkcode getTrainingState}'s result into a compiled model (moving its
 * weights into the parameter arena and building the optimizer on it).
 */
export function setTrainingState(model: AnyModel, state: TrainingState): void {
  const c = getCompiled(model, "setTrainingState");
  if (state.optimizer) {
    const opt = stateful(c.optimizer);
    if (!opt) {
      throw new WgradError(
        "value",
        `model "${model.name}": the optimizer cannot take a saved state (no setState)`,
      );
    }
    opt.setState(state.optimizer, ensureArena(model, c));
    c.optBuilt = true;
  }
  c.epoch = state.epoch;
  c.globalStep = state.globalStep;
}

/** @internal Epochs completed by `fit` on a compiled model (restored by `loadModel`). */
export function epochsTrained(model: AnyModel): number {
  return compiled.get(model)?.epoch ?? 0;
}

/**
 * Moves the weights that live in `arena` into tensors of their own (for the layers `which`
 * picks), then disposes the arena.
 */
function releaseArena(
  model: AnyModel,
  arena: ParamArena,
  which: (l: Layer) => boolean = () => true,
): void {
  const params = new Set<Tensor>(arena.params);
  for (const l of model.layers) {
    if (!which(l)) continue;
    l.weights = l.weights.map((w) => {
      if (!params.has(w)) return w;
      const copy = keep(clone(w));
      copy.name = w.name;
      return copy;
    });
  }
  arena.dispose();
}

/**
 * Disposes a model's compiled state (plans, optimizer state, arena). Weights of layers for which
 * `keep(layer)` is true (layers another model still uses) that live in this model's arena are
 * first copied out of it, so the other model keeps their values.
 */
export function disposeTraining(
  model: AnyModel,
  keepLayer: (l: Layer) => boolean = () => false,
): void {
  const c = compiled.get(model);
  if (c?.arena && !c.arena.isDisposed) releaseArena(model, c.arena, keepLayer);
  if (c) disposeCompiled(c, true);
  compiled.delete(model);
}
