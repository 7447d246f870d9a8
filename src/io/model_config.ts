/**
 * What `model.save(dir)` writes: `model.json` (the architecture, as Keras-style
 * `{ class_name, config }` records, and the compile settings where they can be serialised) and
 * `model.safetensors` (the weights, named `layer/weight`), each replaced atomically; and the
 * check that a weights file matches a model, used by `loadWeights` and `loadModel`.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { Adagrad, Adam, AdamW, RMSprop, SGD } from "../optim/optimizers.ts";
import type { Tensor } from "../tensor.ts";
import type { CompileOptions, TrainingState } from "../train/trainer.ts";
import type { LossSpec } from "../train/losses.ts";
import type { SafetensorsFile } from "./safetensors.ts";

/** The `__metadata__` of weights files written by wgrad. */
export const WEIGHTS_METADATA: Readonly<Record<string, string>> = Object.freeze({
  format: "wgrad",
  version: "1",
});

/** The file names inside a saved model's directory. */
export const MODEL_JSON = "model.json";
/** The weights file inside a saved model's directory. */
export const MODEL_WEIGHTS = "model.safetensors";
/** The value of `format_version` in model.json. */
export const MODEL_FORMAT_VERSION = "1";

/** A `{ class_name, config }` record, as Keras serialises objects. */
export interface ClassRecord {
  /** The class (or registered) name. */
  class_name: string;
  /** Its options. */
  config: Record<string, unknown>;
}

/** A layer in model.json. */
export interface LayerRecord extends ClassRecord {
  /** The layer's name in the model. */
  name: string;
}

/** The compile settings in model.json. */
export interface CompileRecord {
  /** The optimizer: a class such as `"Adam"` with its options, or a Keras name with `{}`. */
  optimizer: ClassRecord;
  /** The loss: its Keras name (`"sparse_categorical_crossentropy"`) and options. */
  loss: ClassRecord;
  /** Metric names. */
  metrics: string[];
}

/** A layer of a functional model in model.json: its record and where its inputs come from. */
export interface FunctionalLayerRecord extends LayerRecord {
  /**
   * One entry per application of the layer: the `[layer name, node index, 0]` of each input,
   * as Keras writes them. Empty for input layers.
   */
  inbound_nodes: [string, number, number][][];
}

/** The `config` of a Sequential model in model.json. */
export interface SequentialConfig {
  /** The model's name. */
  name: string;
  /** The seed of its initial weights. */
  seed: number;
  /** The shape of one input sample, or null when the model was not built. */
  input_shape: number[] | null;
  /** The layers, in order. */
  layers: LayerRecord[];
}

/** The `config` of a functional model in model.json. */
export interface FunctionalConfig {
  /** The model's name. */
  name: string;
  /** The seed of its initial weights. */
  seed: number;
  /** The layers in the order they run, with their connections. */
  layers: FunctionalLayerRecord[];
  /** The model's inputs, as `[layer name, node index, 0]`. */
  input_layers: [string, number, number][];
  /**
   * The model's outputs, as `[layer name, node index, 0]`: a list for a model made with a list
   * of outputs (`predict` returns a list), one reference for a single output.
   */
  output_layers: [string, number, number][] | [string, number, number];
}

/** The contents of model.json. */
export interface ModelRecord {
  /** Always `"wgrad"`. */
  format: "wgrad";
  /** {@linkcode MODEL_FORMAT_VERSION}. */
  format_version: string;
  /** `"Sequential"` or `"Functional"`. */
  class_name: "Sequential" | "Functional";
  /** The model. */
  config: SequentialConfig | FunctionalConfig;
  /** The compile settings, or null when not compiled (or not serialisable, see `compile_note`). */
  compile: CompileRecord | null;
  /** Why the compile settings were left out, when the model was compiled but they were. */
  compile_note?: string;
  /** The weights file, relative to the directory. */
  weights: string;
  /**
   * Where training stopped, for `fit(…, { initialEpoch })` to resume exactly (absent when the
   * model was not compiled). The same record is in the weights file's `__metadata__`
   * (`training_state`), written atomically with the optimizer's tensors; the loader reads that
   * copy.
   */
  training_state?: TrainingStateRecord;
}

/** The training state in model.json and in the weights file's metadata. */
export interface TrainingStateRecord {
  /** Epochs completed. */
  epoch: number;
  /** Training steps taken (dropout's masks are drawn from it). */
  global_step: number;
  /**
   * The optimizer's step count (Keras's `iterations`; a schedule's position follows from it),
   * its learning rate when it is a number, and its slot names; each slot's values are tensors
   * `optimizer/<slot>/<weight name>` of the weights file. Null when the optimizer has no state
   * yet.
   */
  optimizer: { iterations: number; learning_rate?: number; slots: string[] } | null;
}

/** The prefix of the optimizer's tensors in a weights file (not weights of the model). */
export const OPTIMIZER_PREFIX = "optimizer/";

/** What the serialiser needs of a model. */
export interface ModelLike {
  /** Its architecture: the `class_name` and `config` of model.json. */
  architecture(): Pick<ModelRecord, "class_name" | "config">;
}

/** Serialises an optimizer, or explains why it cannot be. */
export function optimizerRecord(o: unknown): ClassRecord | string {
  if (typeof o === "string") return { class_name: o, config: {} };
  const known = o instanceof AdamW
    ? "AdamW"
    : o instanceof Adam
    ? "Adam"
    : o instanceof SGD
    ? "SGD"
    : o instanceof RMSprop
    ? "RMSprop"
    : o instanceof Adagrad
    ? "Adagrad"
    : null;
  if (!known) {
    return `the optimizer (${
      (o as object)?.constructor?.name ?? String(o)
    }) is not one of optim.sgd/adam/adamw/rmsprop/adagrad`;
  }
  const opt = o as SGD | Adam | RMSprop | Adagrad;
  const config: Record<string, unknown> = { name: opt.name };
  const schedule = opt.schedule;
  config.learning_rate = schedule
    ? { class_name: schedule.kind, config: schedule.getConfig() }
    : opt.learningRate;
  if (opt.weightDecay !== null) config.weight_decay = opt.weightDecay;
  if (opt.clipnorm !== null) config.clipnorm = opt.clipnorm;
  if (opt.globalClipnorm !== null) config.global_clipnorm = opt.globalClipnorm;
  if (opt.clipvalue !== null) config.clipvalue = opt.clipvalue;
  if (opt.excludeFromWeightDecay.length) {
    if (opt.excludeFromWeightDecay.some((r) => r.flags !== "")) {
      return "exclude_from_weight_decay holds a RegExp with flags";
    }
    config.exclude_from_weight_decay = opt.excludeFromWeightDecay.map((r) => r.source);
  }
  if (opt instanceof SGD) {
    config.momentum = opt.momentum;
    config.nesterov = opt.nesterov;
  } else if (opt instanceof Adam) {
    config.beta_1 = opt.beta1;
    config.beta_2 = opt.beta2;
    config.epsilon = opt.epsilon;
    config.amsgrad = opt.amsgrad;
  } else if (opt instanceof RMSprop) {
    config.rho = opt.rho;
    config.momentum = opt.momentum;
    config.epsilon = opt.epsilon;
    config.centered = opt.centered;
  } else {
    config.initial_accumulator_value = opt.initialAccumulatorValue;
    config.epsilon = opt.epsilon;
  }
  return { class_name: known, config };
}

const LOSS_KEYS: Record<string, string> = {
  fromLogits: "from_logits",
  labelSmoothing: "label_smoothing",
};

/** Serialises a loss, or explains why it cannot be. */
export function lossRecord(l: unknown): ClassRecord | string {
  if (typeof l === "string") return { class_name: l, config: {} };
  const spec = l as LossSpec;
  if (!spec || typeof spec.name !== "string") return "the loss has no name";
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec.config ?? {})) {
    if (v === undefined) continue;
    const key = LOSS_KEYS[k];
    if (!key) return `the loss option "${k}" is not serialisable`;
    config[key] = v;
  }
  return { class_name: spec.name, config };
}

/** The model.json record of a model (compile settings from `compile`, if it was compiled). */
export function modelRecord(model: ModelLike, compile: CompileOptions | null): ModelRecord {
  const rec: ModelRecord = {
    format: "wgrad",
    format_version: MODEL_FORMAT_VERSION,
    ...model.architecture(),
    compile: null,
    weights: MODEL_WEIGHTS,
  };
  if (compile) {
    const optimizer = optimizerRecord(compile.optimizer);
    const loss = lossRecord(compile.loss);
    if (typeof optimizer === "string" || typeof loss === "string") {
      rec.compile_note = `compile settings not saved: ${
        typeof optimizer === "string" ? optimizer : loss
      }`;
    } else {
      rec.compile = { optimizer, loss, metrics: [...(compile.metrics ?? [])].map(String) };
    }
  }
  return rec;
}

/** Whether `name` is `optimizer/<slot>/<weight>` for one of the `weights`. */
function isOptimizerSlot(name: string, weights: ReadonlySet<string>): boolean {
  if (!name.startsWith(OPTIMIZER_PREFIX)) return false;
  const rest = name.slice(OPTIMIZER_PREFIX.length);
  const i = rest.indexOf("/");
  return i > 0 && weights.has(rest.slice(i + 1));
}

/** A weight of a model as the matcher sees it. */
export interface WeightEntryLike {
  /** The weight's name, `layer/weight`. */
  name: string;
  /** Its tensor (for the expected shape). */
  tensor: Tensor<"f32">;
}

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16", "F64"]);

/**
 * Checks that a weights file holds exactly the model's weights, by name, with float dtypes and
 * the same shapes, and returns their values (converted to float32) in the model's order. Throws
 * one error listing every missing, unexpected and mismatched weight; `where` prefixes it.
 * A checkpoint's optimizer slots, `optimizer/<slot>/<weight name>` for a weight of the model, are
 * not weights and are passed over.
 */
export function matchWeights(
  entries: readonly WeightEntryLike[],
  file: SafetensorsFile,
  where: string,
): Float32Array[] {
  const problems: string[] = [];
  const expected = new Set(entries.map((e) => e.name));
  for (const e of entries) {
    const t = file.tensors.get(e.name);
    if (!t) {
      problems.push(`missing: ${e.name} (expected ${fmtShape(e.tensor.shape)} F32)`);
      continue;
    }
    const shapeOk = fmtShape(t.shape) === fmtShape(e.tensor.shape);
    const dtypeOk = FLOAT_DTYPES.has(t.dtype);
    if (!shapeOk || !dtypeOk) {
      problems.push(
        `mismatch: ${e.name}: expected ${fmtShape(e.tensor.shape)} F32, found ${
          fmtShape(t.shape)
        } ${t.dtype}${dtypeOk ? "" : " (not a float dtype)"}`,
      );
    }
  }
  for (const [name, t] of file.tensors) {
    if (!expected.has(name) && !isOptimizerSlot(name, expected)) {
      problems.push(
        `unexpected: ${name} (${fmtShape(t.shape)} ${t.dtype}, not a weight of the model)`,
      );
    }
  }
  if (problems.length) {
    throw new WgradError(
      "value",
      `${where}: the file does not match the model's weights (${problems.length} ` +
        `problem${problems.length > 1 ? "s" : ""}):\n  ${problems.join("\n  ")}`,
    );
  }
  return entries.map((e) => file.tensors.get(e.name)!.toFloat32());
}

/** The safetensors input for a model's weights. */
export function weightsInput(
  entries: readonly WeightEntryLike[],
  values: readonly Float32Array[],
): [string, { data: Float32Array; shape: readonly number[] }][] {
  return entries.map((e, i) => [e.name, { data: values[i], shape: e.tensor.shape }]);
}

/** The record and the optimizer tensors of a training state, for `model.save`. */
export function trainingStateOutput(
  entries: readonly WeightEntryLike[],
  state: TrainingState,
): {
  record: TrainingStateRecord;
  tensors: [string, { data: Float32Array; shape: readonly number[] }][];
} {
  const tensors: [string, { data: Float32Array; shape: readonly number[] }][] = [];
  let optimizer: TrainingStateRecord["optimizer"] = null;
  if (state.optimizer) {
    const o = state.optimizer;
    const slots = Object.keys(o.slots);
    for (const slot of slots) {
      entries.forEach((e, i) => {
        tensors.push([`${OPTIMIZER_PREFIX}${slot}/${e.name}`, {
          data: o.slots[slot][i],
          shape: e.tensor.shape,
        }]);
      });
    }
    optimizer = { iterations: o.iterations, slots };
    if (o.learningRate !== undefined) optimizer.learning_rate = o.learningRate;
  }
  return { record: { epoch: state.epoch, global_step: state.globalStep, optimizer }, tensors };
}

/**
 * Reads a training state back: the record (from the weights file's metadata, else model.json)
 * and the optimizer's tensors, checking every field, name and shape. `where` names the file.
 */
export function readTrainingState(
  raw: unknown,
  entries: readonly WeightEntryLike[],
  file: SafetensorsFile,
  where: string,
): TrainingState {
  const fail = (what: string): never => {
    throw new WgradError("value", `${where}: training_state: ${what}`);
  };
  const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail("expected an object");
  const r = raw as Record<string, unknown>;
  if (!isCount(r.epoch)) fail(`epoch: expected an integer >= 0, got ${String(r.epoch)}`);
  if (!isCount(r.global_step)) {
    fail(`global_step: expected an integer >= 0, got ${String(r.global_step)}`);
  }
  let optimizer: TrainingState["optimizer"] = null;
  if (r.optimizer !== null && r.optimizer !== undefined) {
    const o = r.optimizer as Record<string, unknown>;
    if (typeof o !== "object" || Array.isArray(o)) fail("optimizer: expected an object or null");
    if (!isCount(o.iterations)) {
      fail(`optimizer.iterations: expected an integer >= 0, got ${String(o.iterations)}`);
    }
    const lr = o.learning_rate;
    if (lr !== undefined && !(typeof lr === "number" && Number.isFinite(lr))) {
      fail(`optimizer.learning_rate: expected a number, got ${String(lr)}`);
    }
    const names = o.slots;
    if (!Array.isArray(names) || names.some((n) => typeof n !== "string")) {
      fail("optimizer.slots: expected an array of slot names");
    }
    const slots: Record<string, Float32Array[]> = {};
    for (const slot of names as string[]) {
      slots[slot] = entries.map((e) => {
        const name = `${OPTIMIZER_PREFIX}${slot}/${e.name}`;
        const t = file.tensors.get(name);
        if (!t) return fail(`the weights file has no tensor "${name}"`);
        if (fmtShape(t.shape) !== fmtShape(e.tensor.shape) || !FLOAT_DTYPES.has(t.dtype)) {
          fail(
            `tensor "${name}" is ${fmtShape(t.shape)} ${t.dtype}, expected ${
              fmtShape(e.tensor.shape)
            } F32`,
          );
        }
        return t.toFloat32();
      });
    }
    optimizer = { iterations: o.iterations as number, slots };
    if (lr !== undefined) optimizer.learningRate = lr as number;
  }
  return { epoch: r.epoch as number, globalStep: r.global_step as number, optimizer };
}
