/**
 * `loadModel(dir)`: rebuilds a Sequential or functional model saved by `model.save(dir)` from
 * `model.json`, loads `model.safetensors` into it and compiles it again when compile settings
 * were saved.
 * Every field is checked; errors name the file and the field.
 * @module
 */
import { WgradError } from "../errors.ts";
import { Activation, Dense, Dropout, Flatten, type Layer, Reshape } from "../nn/layers.ts";
import { Sequential } from "../nn/sequential.ts";
import {
  Add,
  AveragePooling2D,
  BatchNormalization,
  Concatenate,
  Conv2D,
  GlobalAveragePooling2D,
  GlobalMaxPooling2D,
  InputLayer,
  MaxPooling2D,
} from "../nn/conv_layers.ts";
import { Functional } from "../nn/functional.ts";
import type { Model } from "../nn/model.ts";
import type { SymbolicTensor } from "../nn/symbolic.ts";
import type { Tensor } from "../tensor.ts";
import * as initializers from "../nn/initializers.ts";
import * as regularizers from "../nn/regularizers.ts";
import { adagrad, adam, adamw, rmsprop, sgd } from "../optim/optimizers.ts";
import {
  cosineDecay,
  exponentialDecay,
  type LearningRate,
  piecewiseConstantDecay,
} from "../optim/schedules.ts";
import {
  binaryCrossentropy,
  categoricalCrossentropy,
  type LossSpec,
  meanAbsoluteError,
  meanSquaredError,
  sparseCategoricalCrossentropy,
} from "../train/losses.ts";
import { type CompileOptions, setTrainingState } from "../train/trainer.ts";
import type { OptimizerLike } from "../train/optimizers.ts";
import {
  matchWeights,
  MODEL_FORMAT_VERSION,
  MODEL_JSON,
  MODEL_WEIGHTS,
  readTrainingState,
} from "./model_config.ts";
import { describeReadError } from "./atomic.ts";
import { readSafetensors } from "./safetensors.ts";

type Obj = Record<string, unknown>;

/** Reads typed fields of a JSON document, naming the file and the field path in errors. */
class Fields {
  constructor(readonly file: string) {}

  fail(path: string, what: string, cause?: unknown): never {
    throw new WgradError("value", `model file "${this.file}": ${path}: ${what}`, { cause });
  }

  obj(v: unknown, path: string): Obj {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      this.fail(path, `expected an object, got ${show(v)}`);
    }
    return v as Obj;
  }

  has(o: Obj, key: string): boolean {
    return Object.hasOwn(o, key) && o[key] !== undefined;
  }

  get(o: Obj, key: string, path: string): unknown {
    if (!Object.hasOwn(o, key)) this.fail(`${path}.${key}`, "missing");
    return o[key];
  }

  str(o: Obj, key: string, path: string): string {
    const v = this.get(o, key, path);
    if (typeof v !== "string") this.fail(`${path}.${key}`, `expected a string, got ${show(v)}`);
    return v as string;
  }

  num(o: Obj, key: string, path: string): number {
    const v = this.get(o, key, path);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.fail(`${path}.${key}`, `expected a number, got ${show(v)}`);
    }
    return v as number;
  }

  bool(o: Obj, key: string, path: string): boolean {
    const v = this.get(o, key, path);
    if (typeof v !== "boolean") {
      this.fail(`${path}.${key}`, `expected true or false, got ${show(v)}`);
    }
    return v as boolean;
  }

  ints(o: Obj, key: string, path: string): number[] {
    const v = this.get(o, key, path);
    if (!Array.isArray(v) || v.some((d) => !Number.isInteger(d))) {
      this.fail(`${path}.${key}`, `expected an array of integers, got ${show(v)}`);
    }
    return [...(v as number[])];
  }

  /** Optional fields, checked only when present. */
  optNum(o: Obj, key: string, path: string): number | undefined {
    return this.has(o, key) && o[key] !== null ? this.num(o, key, path) : undefined;
  }

  optBool(o: Obj, key: string, path: string): boolean | undefined {
    return this.has(o, key) && o[key] !== null ? this.bool(o, key, path) : undefined;
  }

  /** Runs a constructor, turning its error into one that names the field. */
  build<T>(path: string, make: () => T): T {
    try {
      return make();
    } catch (e) {
      if (e instanceof WgradError && e.message.startsWith(`model file "${this.file}"`)) throw e;
      return this.fail(path, e instanceof Error ? e.message : String(e), e);
    }
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

const INITIALIZERS: Record<string, (c: Obj, f: Fields, path: string) => initializers.Initializer> =
  {
    GlorotUniform: () => initializers.glorotUniform(),
    GlorotNormal: () => initializers.glorotNormal(),
    HeNormal: () => initializers.heNormal(),
    HeUniform: () => initializers.heUniform(),
    LecunNormal: () => initializers.lecunNormal(),
    Zeros: () => initializers.zeros(),
    Ones: () => initializers.ones(),
    Constant: (c, f, p) => initializers.constant(f.num(c, "value", p)),
    RandomNormal: (c, f, p) =>
      initializers.randomNormal({ mean: f.optNum(c, "mean", p), stddev: f.optNum(c, "stddev", p) }),
    RandomUniform: (c, f, p) =>
      initializers.randomUniform({
        minval: f.optNum(c, "minval", p),
        maxval: f.optNum(c, "maxval", p),
      }),
    TruncatedNormal: (c, f, p) =>
      initializers.truncatedNormalInit({
        mean: f.optNum(c, "mean", p),
        stddev: f.optNum(c, "stddev", p),
      }),
  };

function initializer(v: unknown, f: Fields, path: string): initializers.Initializer {
  if (typeof v === "string") return f.build(path, () => initializers.resolveInitializer(v, path));
  const o = f.obj(v, path);
  const name = f.str(o, "class_name", path);
  const make = INITIALIZERS[name];
  if (!make) {
    f.fail(
      `${path}.class_name`,
      `unknown initializer "${name}"; known: ${Object.keys(INITIALIZERS).join(", ")}`,
    );
  }
  const config = f.has(o, "config") ? f.obj(o.config, `${path}.config`) : {};
  return f.build(path, () => make(config, f, `${path}.config`));
}

function regularizer(v: unknown, f: Fields, path: string): regularizers.Regularizer | undefined {
  if (v === null || v === undefined) return undefined;
  const o = f.obj(v, path);
  const name = f.str(o, "class_name", path);
  const c = f.obj(f.get(o, "config", path), `${path}.config`);
  const l1 = f.optNum(c, "l1", `${path}.config`) ?? 0;
  const l2 = f.optNum(c, "l2", `${path}.config`) ?? 0;
  switch (name) {
    case "L1":
      return f.build(path, () => regularizers.l1(l1));
    case "L2":
      return f.build(path, () => regularizers.l2(l2));
    case "L1L2":
      return f.build(path, () => regularizers.l1l2({ l1, l2 }));
    default:
      return f.fail(`${path}.class_name`, `unknown regularizer "${name}"; known: L1, L2, L1L2`);
  }
}

const LAYERS: Record<string, (c: Obj, name: string, f: Fields, path: string) => Layer> = {
  Dense: (c, name, f, p) => {
    const units = f.num(c, "units", p);
    const activation = f.has(c, "activation") && c.activation !== null
      ? f.str(c, "activation", p)
      : undefined;
    return f.build(p, () =>
      new Dense(units, {
        name,
        activation,
        alpha: f.optNum(c, "alpha", p),
        ...kernelOptions(c, f, p),
      }));
  },
  Flatten: (_c, name) => new Flatten(name),
  Reshape: (c, name, f, p) => {
    const target = f.ints(c, "target_shape", p);
    return f.build(p, () => new Reshape(target, { name }));
  },
  Activation: (c, name, f, p) => {
    const activation = f.str(c, "activation", p);
    return f.build(p, () => new Activation(activation, { name, alpha: f.optNum(c, "alpha", p) }));
  },
  Dropout: (c, name, f, p) => {
    const rate = f.num(c, "rate", p);
    return f.build(p, () => new Dropout(rate, { name }));
  },
  Conv2D: (c, name, f, p) => {
    const filters = f.num(c, "filters", p);
    const activation = f.has(c, "activation") && c.activation !== null
      ? f.str(c, "activation", p)
      : undefined;
    const padding = f.has(c, "padding") ? f.str(c, "padding", p) : undefined;
    return f.build(p, () =>
      new Conv2D(filters, {
        name,
        kernelSize: pairField(c, "kernel_size", f, p)!,
        strides: pairField(c, "strides", f, p),
        dilation: pairField(c, "dilation_rate", f, p),
        padding: padding as "same" | "valid" | undefined,
        activation,
        alpha: f.optNum(c, "alpha", p),
        ...kernelOptions(c, f, p),
      }));
  },
  MaxPooling2D: (c, name, f, p) => {
    const o = poolFields(c, f, p);
    return f.build(p, () => new MaxPooling2D({ name, ...o }));
  },
  AveragePooling2D: (c, name, f, p) => {
    const o = poolFields(c, f, p);
    return f.build(p, () => new AveragePooling2D({ name, ...o }));
  },
  GlobalAveragePooling2D: (_c, name) => new GlobalAveragePooling2D(name),
  GlobalMaxPooling2D: (_c, name) => new GlobalMaxPooling2D(name),
  BatchNormalization: (c, name, f, p) => {
    if (f.has(c, "axis") && c.axis !== -1) {
      f.fail(`${p}.axis`, `only axis -1 (channels last) is supported, got ${show(c.axis)}`);
    }
    const init = (key: string) => f.has(c, key) ? initializer(c[key], f, `${p}.${key}`) : undefined;
    return f.build(p, () =>
      new BatchNormalization({
        name,
        momentum: f.optNum(c, "momentum", p),
        epsilon: f.optNum(c, "epsilon", p),
        gammaInitializer: init("gamma_initializer"),
        betaInitializer: init("beta_initializer"),
        movingMeanInitializer: init("moving_mean_initializer"),
        movingVarianceInitializer: init("moving_variance_initializer"),
        gammaRegularizer: regularizer(c.gamma_regularizer, f, `${p}.gamma_regularizer`),
        betaRegularizer: regularizer(c.beta_regularizer, f, `${p}.beta_regularizer`),
      }));
  },
  Add: (_c, name) => new Add(name),
  Concatenate: (c, name, f, p) => {
    const axis = f.optNum(c, "axis", p);
    return f.build(p, () => new Concatenate({ name, axis }));
  },
};

/** The options of a kernel-and-bias layer (Dense, Conv2D). */
function kernelOptions(c: Obj, f: Fields, p: string) {
  return {
    useBias: f.optBool(c, "use_bias", p),
    kernelInitializer: f.has(c, "kernel_initializer")
      ? initializer(c.kernel_initializer, f, `${p}.kernel_initializer`)
      : undefined,
    biasInitializer: f.has(c, "bias_initializer")
      ? initializer(c.bias_initializer, f, `${p}.bias_initializer`)
      : undefined,
    kernelRegularizer: regularizer(c.kernel_regularizer, f, `${p}.kernel_regularizer`),
    biasRegularizer: regularizer(c.bias_regularizer, f, `${p}.bias_regularizer`),
  };
}

/** A `[h, w]` option (or one integer for both), when present. */
function pairField(c: Obj, key: string, f: Fields, p: string): [number, number] | undefined {
  if (!f.has(c, key) || c[key] === null) return undefined;
  if (typeof c[key] === "number") {
    const n = f.num(c, key, p);
    return [n, n];
  }
  const v = f.ints(c, key, p);
  if (v.length !== 2) f.fail(`${p}.${key}`, `expected two integers, got ${show(v)}`);
  return [v[0], v[1]];
}

function poolFields(
  c: Obj,
  f: Fields,
  p: string,
): { poolSize?: [number, number]; strides?: [number, number]; padding?: "same" | "valid" } {
  const padding = f.has(c, "padding") ? f.str(c, "padding", p) : undefined;
  return {
    poolSize: pairField(c, "pool_size", f, p),
    strides: pairField(c, "strides", f, p),
    padding: padding as "same" | "valid" | undefined,
  };
}

/** Reads a `[layer name, node index, 0]` reference of a functional model. */
function nodeRef(v: unknown, f: Fields, path: string): [string, number] {
  if (
    !Array.isArray(v) || v.length < 2 || typeof v[0] !== "string" || !Number.isInteger(v[1]) ||
    v[1] < 0
  ) {
    f.fail(path, `expected [layer name, node index, 0], got ${show(v)}`);
  }
  return [v[0] as string, v[1] as number];
}

/** Rebuilds a functional model's graph from its config. */
function functionalFromConfig(
  config: Obj,
  f: Fields,
  name: string,
  seed: number,
): Functional<unknown> {
  const layersRaw = f.get(config, "layers", "config");
  if (!Array.isArray(layersRaw) || layersRaw.length === 0) {
    f.fail("config.layers", `expected a non-empty array of layers, got ${show(layersRaw)}`);
  }
  const made: { layer: Layer; inbound: [string, number][][]; path: string }[] = [];
  const byName = new Map<string, number>();
  (layersRaw as unknown[]).forEach((v, i) => {
    const path = `config.layers[${i}]`;
    const o = f.obj(v, path);
    const cls = f.str(o, "class_name", path);
    const lname = f.str(o, "name", path);
    if (byName.has(lname)) f.fail(`${path}.name`, `two layers are named ${show(lname)}`);
    const c = f.obj(f.get(o, "config", path), `${path}.config`);
    let layer: Layer;
    if (cls === "InputLayer") {
      const shape = f.get(c, "batch_shape", `${path}.config`);
      if (!Array.isArray(shape) || shape.length < 2 || shape[0] !== null) {
        f.fail(
          `${path}.config.batch_shape`,
          `expected [null, ...sample shape], got ${show(shape)}`,
        );
      }
      layer = f.build(path, () => new InputLayer((shape as number[]).slice(1), { name: lname }));
    } else {
      const make = LAYERS[cls];
      if (!make) {
        f.fail(
          `${path}.class_name`,
          `unknown layer class "${cls}"; known: InputLayer, ${Object.keys(LAYERS).join(", ")}`,
        );
      }
      layer = make(c, lname, f, `${path}.config`);
    }
    layer.trainable = f.optBool(c, "trainable", `${path}.config`) ?? true;
    const nodesRaw = f.get(o, "inbound_nodes", path);
    if (!Array.isArray(nodesRaw)) f.fail(`${path}.inbound_nodes`, "expected an array");
    const inbound = (nodesRaw as unknown[]).map((n, k) => {
      if (!Array.isArray(n) || n.length === 0) {
        f.fail(`${path}.inbound_nodes[${k}]`, `expected a non-empty array, got ${show(n)}`);
      }
      return (n as unknown[]).map((r, j) => nodeRef(r, f, `${path}.inbound_nodes[${k}][${j}]`));
    });
    byName.set(lname, made.length);
    made.push({ layer, inbound, path });
  });
  // Symbols by `name:node`; inputs first, then every node whose inputs exist, until none is left.
  const symbols = new Map<string, SymbolicTensor>();
  for (const m of made) {
    if (m.layer instanceof InputLayer) symbols.set(`${m.layer.name}:0`, m.layer.symbol());
  }
  const pending = made.flatMap((m) =>
    m.inbound.map((refs, k) => ({ m, refs, k, path: `${m.path}.inbound_nodes[${k}]` }))
  );
  for (const p of pending) {
    for (const [ln] of p.refs) {
      if (!byName.has(ln)) f.fail(p.path, `refers to an unknown layer ${show(ln)}`);
    }
  }
  while (pending.length) {
    const i = pending.findIndex((p) => p.refs.every(([ln, k]) => symbols.has(`${ln}:${k}`)));
    if (i < 0) {
      const p = pending[0];
      f.fail(
        p.path,
        `its inputs ${
          show(p.refs.map(([ln, k]) => `${ln}[${k}]`))
        } are never made (a missing node or a cycle)`,
      );
    }
    const [p] = pending.splice(i, 1);
    const args = p.refs.map(([ln, k]) => symbols.get(`${ln}:${k}`)!);
    const out = f.build(p.path, () => p.m.layer.apply(args.length === 1 ? args[0] : args));
    symbols.set(`${p.m.layer.name}:${p.k}`, out);
  }
  const refs = (key: string): SymbolicTensor[] => {
    let raw = f.get(config, key, "config");
    if (Array.isArray(raw) && typeof raw[0] === "string") raw = [raw];
    if (!Array.isArray(raw) || raw.length === 0) {
      f.fail(`config.${key}`, `expected a non-empty array, got ${show(raw)}`);
    }
    return (raw as unknown[]).map((r, i) => {
      const [ln, k] = nodeRef(r, f, `config.${key}[${i}]`);
      const s = symbols.get(`${ln}:${k}`);
      if (!s) f.fail(`config.${key}[${i}]`, `refers to an unknown node ${show(r)}`);
      return s!;
    });
  };
  const inputs = refs("input_layers");
  const outputs = refs("output_layers");
  const rawOut = config.output_layers as unknown[];
  const listOutput = !(Array.isArray(rawOut) && typeof rawOut[0] === "string");
  return f.build("config", () =>
    new Functional({
      inputs,
      outputs: listOutput ? outputs : outputs[0],
      name,
      seed,
    }));
}

function learningRate(v: unknown, f: Fields, path: string): LearningRate {
  if (typeof v === "number") return v;
  const o = f.obj(v, path);
  const kind = f.str(o, "class_name", path);
  const c = f.obj(f.get(o, "config", path), `${path}.config`);
  const clean = Object.fromEntries(Object.entries(c).filter(([, x]) => x !== null)) as never;
  switch (kind) {
    case "ExponentialDecay":
      return f.build(path, () => exponentialDecay(clean));
    case "PiecewiseConstantDecay":
      return f.build(path, () => piecewiseConstantDecay(clean));
    case "CosineDecay":
      return f.build(path, () => cosineDecay(clean));
    default:
      return f.fail(
        `${path}.class_name`,
        `unknown learning-rate schedule "${kind}"; known: ExponentialDecay, ` +
          "PiecewiseConstantDecay, CosineDecay",
      );
  }
}

function optimizer(v: unknown, f: Fields, path: string): OptimizerLike | string {
  const o = f.obj(v, path);
  const kind = f.str(o, "class_name", path);
  const c = f.obj(f.get(o, "config", path), `${path}.config`);
  const p = `${path}.config`;
  if (!["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"].includes(kind)) {
    if (Object.keys(c).length === 0) return kind; // a Keras name given to compile; resolved there
    f.fail(
      `${path}.class_name`,
      `unknown optimizer "${kind}"; known: SGD, Adam, AdamW, RMSprop, Adagrad`,
    );
  }
  const exclude = f.has(c, "exclude_from_weight_decay")
    ? f.get(c, "exclude_from_weight_decay", p)
    : undefined;
  if (
    exclude !== undefined && (!Array.isArray(exclude) || exclude.some((x) => typeof x !== "string"))
  ) {
    f.fail(`${p}.exclude_from_weight_decay`, `expected an array of strings, got ${show(exclude)}`);
  }
  const base = {
    name: f.has(c, "name") ? f.str(c, "name", p) : undefined,
    learningRate: f.has(c, "learning_rate")
      ? learningRate(c.learning_rate, f, `${p}.learning_rate`)
      : undefined,
    weightDecay: f.optNum(c, "weight_decay", p),
    clipnorm: f.optNum(c, "clipnorm", p),
    globalClipnorm: f.optNum(c, "global_clipnorm", p),
    clipvalue: f.optNum(c, "clipvalue", p),
    excludeFromWeightDecay: exclude as string[] | undefined,
  };
  return f.build(path, () => {
    switch (kind) {
      case "SGD":
        return sgd({
          ...base,
          momentum: f.optNum(c, "momentum", p),
          nesterov: f.optBool(c, "nesterov", p),
        });
      case "Adam":
      case "AdamW": {
        const opts = {
          ...base,
          beta1: f.optNum(c, "beta_1", p),
          beta2: f.optNum(c, "beta_2", p),
          epsilon: f.optNum(c, "epsilon", p),
          amsgrad: f.optBool(c, "amsgrad", p),
        };
        return kind === "Adam" ? adam(opts) : adamw(opts);
      }
      case "RMSprop":
        return rmsprop({
          ...base,
          rho: f.optNum(c, "rho", p),
          momentum: f.optNum(c, "momentum", p),
          epsilon: f.optNum(c, "epsilon", p),
          centered: f.optBool(c, "centered", p),
        });
      default:
        return adagrad({
          ...base,
          initialAccumulatorValue: f.optNum(c, "initial_accumulator_value", p),
          epsilon: f.optNum(c, "epsilon", p),
        });
    }
  });
}

const LOSSES: Record<string, (o: { fromLogits?: boolean; labelSmoothing?: number }) => LossSpec> = {
  // Files from releases that accepted (and ignored) label smoothing for sparse labels load as
  // they trained: without it.
  sparse_categorical_crossentropy: (o) =>
    sparseCategoricalCrossentropy({ fromLogits: o.fromLogits }),
  categorical_crossentropy: (o) => categoricalCrossentropy(o),
  binary_crossentropy: (o) => binaryCrossentropy(o),
  mean_squared_error: () => meanSquaredError(),
  mean_absolute_error: () => meanAbsoluteError(),
};

function loss(v: unknown, f: Fields, path: string): LossSpec | string {
  const o = f.obj(v, path);
  const name = f.str(o, "class_name", path);
  const c = f.has(o, "config") ? f.obj(o.config, `${path}.config`) : {};
  const make = LOSSES[name];
  if (!make) {
    if (Object.keys(c).length === 0) return name; // a name given to compile; resolved there
    f.fail(
      `${path}.class_name`,
      `unknown loss "${name}"; known: ${Object.keys(LOSSES).join(", ")}`,
    );
  }
  for (const k of Object.keys(c)) {
    if (k !== "from_logits" && k !== "label_smoothing") {
      f.fail(`${path}.config.${k}`, "unknown loss option");
    }
  }
  const options: { fromLogits?: boolean; labelSmoothing?: number } = {};
  const fromLogits = f.optBool(c, "from_logits", `${path}.config`);
  const labelSmoothing = f.optNum(c, "label_smoothing", `${path}.config`);
  if (fromLogits !== undefined) options.fromLogits = fromLogits;
  if (labelSmoothing !== undefined) options.labelSmoothing = labelSmoothing;
  return make(options);
}

function compileOptions(v: unknown, f: Fields): CompileOptions {
  const o = f.obj(v, "compile");
  const metrics = f.has(o, "metrics") ? f.get(o, "metrics", "compile") : [];
  if (!Array.isArray(metrics) || metrics.some((m) => typeof m !== "string")) {
    f.fail("compile.metrics", `expected an array of strings, got ${show(metrics)}`);
  }
  return {
    optimizer: optimizer(f.get(o, "optimizer", "compile"), f, "compile.optimizer"),
    loss: loss(f.get(o, "loss", "compile"), f, "compile.loss"),
    // Files from releases that accepted a metric listed twice (and logged it once) load so.
    metrics: [...new Set(metrics as string[])],
  };
}

/**
 * Rebuilds a model saved with `model.save(dir)`: reads `dir/model.json`, makes every layer from
 * its configuration, builds the model (a Sequential one for the saved input shape, a functional
 * one from its saved connections) with the saved name and seed,
 * loads `dir/model.safetensors` (checking every name, dtype and shape), and compiles it when
 * compile settings were saved. The result predicts exactly as the saved model did.
 */
export async function loadModel<Out = Tensor<"f32">>(dir: string): Promise<Model<Out>> {
  const base = dir.endsWith("/") ? dir : `${dir}/`;
  const file = `${base}${MODEL_JSON}`;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    const why = describeReadError(e, " (was the model saved with model.save(dir)?)");
    throw new WgradError("value", `model file "${file}": cannot read it: ${why}`, { cause: e });
  }
  const f = new Fields(file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new WgradError("value", `model file "${file}": not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const root = f.obj(json, "(top level)");
  if (f.get(root, "format", "(top level)") !== "wgrad") {
    f.fail("format", `expected "wgrad", got ${show(root.format)}`);
  }
  const version = f.str(root, "format_version", "(top level)");
  if (version !== MODEL_FORMAT_VERSION) {
    f.fail("format_version", `version ${version} is not supported (this wgrad reads "1")`);
  }
  if (root.class_name !== "Sequential" && root.class_name !== "Functional") {
    f.fail(
      "class_name",
      `expected "Sequential" or "Functional", got ${show(root.class_name)}`,
    );
  }
  const functional = root.class_name === "Functional";
  const config = f.obj(f.get(root, "config", "(top level)"), "config");
  const name = f.str(config, "name", "config");
  const seed = f.num(config, "seed", "config");
  const inputRaw = functional ? null : f.get(config, "input_shape", "config");
  const inputShape = inputRaw === null ? null : f.ints(config, "input_shape", "config");
  const layersRaw = f.get(config, "layers", "config");
  if (!Array.isArray(layersRaw) || layersRaw.length === 0) {
    f.fail("config.layers", `expected a non-empty array of layers, got ${show(layersRaw)}`);
  }
  const layers = functional ? [] : (layersRaw as unknown[]).map((v, i) => {
    const path = `config.layers[${i}]`;
    const o = f.obj(v, path);
    const cls = f.str(o, "class_name", path);
    const lname = f.str(o, "name", path);
    const make = LAYERS[cls];
    if (!make) {
      f.fail(
        `${path}.class_name`,
        `unknown layer class "${cls}"; known: ${Object.keys(LAYERS).join(", ")}`,
      );
    }
    const c = f.obj(f.get(o, "config", path), `${path}.config`);
    const layer = make(c, lname, f, `${path}.config`);
    layer.trainable = f.optBool(c, "trainable", `${path}.config`) ?? true;
    return layer;
  });
  const weightsName = f.has(root, "weights")
    ? f.str(root, "weights", "(top level)")
    : MODEL_WEIGHTS;
  if (weightsName.includes("/") || weightsName.includes("\\") || weightsName.startsWith(".")) {
    f.fail("weights", `must be a file name inside the model's directory, got ${show(weightsName)}`);
  }
  const compile = root.compile === null || root.compile === undefined
    ? null
    : compileOptions(root.compile, f);
  const model: Model<unknown> = functional ? functionalFromConfig(config, f, name, seed) : f.build(
    "config",
    () => new Sequential(layers, { name, seed, ...(inputShape ? { inputShape } : {}) }),
  );
  try {
    let restore: (() => void) | null = null;
    if (model.built) {
      const wfile = `${base}${weightsName}`;
      const entries = model.weightEntries;
      const wf = await readSafetensors(wfile);
      const values = matchWeights(entries, wf, `weights file "${wfile}"`);
      model.setWeights(values);
      // The weights file's copy of the training state was written atomically with its tensors.
      const meta = wf.metadata?.training_state;
      let raw: unknown = root.training_state;
      if (meta !== undefined) {
        try {
          raw = JSON.parse(meta);
        } catch (e) {
          throw new WgradError(
            "value",
            `weights file "${wfile}": __metadata__.training_state is not valid JSON`,
            { cause: e },
          );
        }
      }
      if (compile && raw !== undefined && raw !== null) {
        const state = readTrainingState(
          raw,
          entries.filter((e) => e.trainable),
          wf,
          `weights file "${wfile}"`,
        );
        restore = () => setTrainingState(model, state);
      }
    }
    if (compile) f.build("compile", () => model.compile(compile));
    restore?.();
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model as Model<Out>;
}
