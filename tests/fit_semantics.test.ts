/**
 * Keras semantics of compile and fit that the other training tests do not pin down: every
 * compiled metric is logged and counts what its name says (against float64 counts from the
 * model's own predictions), in fit and evaluate, with and without regularization penalties;
 * "accuracy" with regression losses; validationData overriding validationSplit; stopping from a
 * batch callback; onTrainEnd; earlyStopping's baseline and end-of-training restore;
 * reduceLrOnPlateau across fits.
 * @module
 */
import { callbacks, losses, type LossSpec, nn, optim, type Tensor, WgradError } from "../mod.ts";
import { assertClose, assertEqualArrays, assertWgradError, EPS, Rng } from "./harness.ts";

// METRIC_TOL: a metric is a count of correct samples (exact in f32 up to 2^24) divided by the
// samples; per-sample binary accuracy adds means of C = 4 hits (multiples of 1/4, exact). The
// float64 reference counts on the model's own f32 predictions, so the figures agree up to the
// f32 division: 2 ulps.
const METRIC_TOL = { atol: 0, rtol: 2 * EPS };
// SAME_TOL: training figures at learning rate 0 against evaluate on the same rows: the same
// kernels summing the same per-sample values in another batch order, 16 ulps of the mean.
const SAME_TOL = { atol: 1e-7, rtol: 16 * EPS };

const F = 5, C = 4;

function makeData(
  n: number,
  seed: number,
): { x: Float32Array; y: Int32Array; oneHot: Float32Array } {
  const rng = new Rng(seed);
  const x = new Float32Array(n * F).map(() => rng.uniform(-2, 2));
  const y = new Int32Array(n).map(() => rng.int(0, C - 1));
  const oneHot = new Float32Array(n * C);
  y.forEach((c, i) => oneHot[i * C + c] = 1);
  return { x, y, oneHot };
}

function model(units: number, seed: number, l2 = 0, activation?: "sigmoid"): nn.Sequential {
  const reg = l2 ? nn.regularizers.l2(l2) : undefined;
  return nn.sequential([
    nn.dense(6, { activation: "tanh", kernelRegularizer: reg }),
    nn.dense(units, { activation, kernelRegularizer: reg }),
  ], { inputShape: [F], seed });
}

async function predictions(m: nn.Sequential, x: Float32Array): Promise<Float32Array> {
  const out = await m.predict(x) as Tensor<"f32">;
  try {
    return new Float32Array(await out.data());
  } finally {
    out.dispose();
  }
}

/** Float64 accuracies of f32 predictions [n, c] against targets [n, c]. */
function accuraciesF64(p: Float32Array, t: Float32Array, c: number, threshold: number) {
  const n = p.length / c;
  let argmaxHits = 0, binary = 0;
  for (let i = 0; i < n; i++) {
    let ap = 0, at = 0, hits = 0;
    for (let j = 0; j < c; j++) {
      if (p[i * c + j] > p[i * c + ap]) ap = j;
      if (t[i * c + j] > t[i * c + at]) at = j;
      hits += (p[i * c + j] > threshold ? 1 : 0) === t[i * c + j] ? 1 : 0;
    }
    if (ap === at) argmaxHits++;
    binary += hits / c;
  }
  return { categorical: argmaxHits / n, binary: binary / n };
}

Deno.test("fit semantics: every compiled metric is logged and counts what its name says", async () => {
  const N = 45;
  const { x, oneHot } = makeData(N, 1);
  for (const l2 of [0, 0.01]) {
    const m = model(C, 3, l2);
    try {
      m.compile({
        optimizer: optim.sgd({ learningRate: 0 }),
        loss: losses.categoricalCrossentropy({ fromLogits: true }),
        metrics: ["accuracy", "binary_accuracy", "categorical_accuracy"],
      });
      const h = await m.fit(x, oneHot, { epochs: 1, batchSize: 8, verbose: 0 });
      const e = await m.evaluate(x, oneHot, { batchSize: 16 });
      const keys = ["loss", "accuracy", "binary_accuracy", "categorical_accuracy"];
      assertKeys(e, keys, `l2 ${l2}: evaluate's figures`);
      assertKeys(h.history, keys, `l2 ${l2}: History's figures`);
      // Binary accuracy of a categorical loss thresholds the outputs at 0.5, as Keras does.
      const ref = accuraciesF64(await predictions(m, x), oneHot, C, 0.5);
      assertClose(
        [e.accuracy, e.categorical_accuracy],
        [ref.categorical, ref.categorical],
        METRIC_TOL,
        `l2 ${l2}: argmax accuracies`,
      );
      assertClose([e.binary_accuracy], [ref.binary], METRIC_TOL, `l2 ${l2}: binary accuracy`);
      if (Math.abs(ref.binary - ref.categorical) < 0.05) {
        throw new Error(`l2 ${l2}: the data do not tell binary from categorical accuracy`);
      }
      // At learning rate 0 the training step's figures are evaluate's.
      for (const k of keys) {
        assertClose([h.history[k][0]], [e[k]], SAME_TOL, `l2 ${l2}: fit's ${k} against evaluate`);
      }
    } finally {
      m.dispose();
    }
  }
});

Deno.test("fit semantics: binary accuracy with binary cross-entropy from logits thresholds at logit 0, with or without penalties", async () => {
  const N = 37;
  const rng = new Rng(5);
  const { x } = makeData(N, 4);
  const t = new Float32Array(N * C).map(() => rng.int(0, 1));
  const figures: number[][] = [];
  for (const l2 of [0, 0.01]) {
    const m = model(C, 7, l2);
    try {
      m.compile({
        optimizer: optim.sgd({ learningRate: 0 }),
        loss: losses.binaryCrossentropy({ fromLogits: true }),
        metrics: ["accuracy", "binary_accuracy"],
      });
      const h = await m.fit(x, t, { epochs: 1, batchSize: 16, verbose: 0 });
      const e = await m.evaluate(x, t);
      const ref = accuraciesF64(await predictions(m, x), t, C, 0);
      assertClose(
        [e.accuracy, e.binary_accuracy],
        [ref.binary, ref.binary],
        METRIC_TOL,
        `l2 ${l2}: evaluate`,
      );
      assertClose(
        [h.history.accuracy[0], h.history.binary_accuracy[0]],
        [e.accuracy, e.accuracy],
        SAME_TOL,
        `l2 ${l2}: fit`,
      );
      figures.push([e.accuracy, e.binary_accuracy, h.history.accuracy[0]]);
    } finally {
      m.dispose();
    }
  }
  // The same weights (learning rate 0) give the same figures whether a penalty is added or not.
  assertEqualArrays(figures[1], figures[0], "figures with an L2 penalty against without");
});

Deno.test('fit semantics: "accuracy" with a regression loss follows the shapes (binary for one output, else categorical)', async () => {
  const N = 41;
  const rng = new Rng(9);
  const { x, oneHot } = makeData(N, 8);
  const t1 = new Float32Array(N).map(() => rng.int(0, 1));
  for (const loss of ["mse", "mae"]) {
    const one = model(1, 11, 0, "sigmoid");
    const many = model(C, 12, 0, "sigmoid");
    try {
      one.compile({ optimizer: "sgd", loss, metrics: ["accuracy"] });
      many.compile({ optimizer: "sgd", loss, metrics: ["acc"] });
      const e1 = await one.evaluate(x, t1);
      const eC = await many.evaluate(x, oneHot);
      const r1 = accuraciesF64(await predictions(one, x), t1, 1, 0.5);
      const rC = accuraciesF64(await predictions(many, x), oneHot, C, 0.5);
      assertClose([e1.accuracy], [r1.binary], METRIC_TOL, `${loss}: one output`);
      // Keras keeps the name "acc" when compiled with it.
      assertKeys(eC, ["loss", "acc"], `${loss}: figures named as compiled`);
      assertClose([eC.acc], [rC.categorical], METRIC_TOL, `${loss}: ${C} outputs`);
      if (!(r1.binary > 0 && rC.categorical > 0)) throw new Error(`${loss}: degenerate data`);
    } finally {
      one.dispose();
      many.dispose();
    }
  }
});

Deno.test("fit semantics: a metric listed twice and label smoothing of sparse labels are errors", () => {
  const m = model(C, 1);
  try {
    assertWgradError(
      () => m.compile({ optimizer: "adam", loss: "mse", metrics: ["accuracy", "accuracy"] }),
      "value",
      ['"accuracy"', "twice"],
      "duplicate metric",
    );
    assertWgradError(
      () => losses.sparseCategoricalCrossentropy({ labelSmoothing: 0.1 }),
      "value",
      ["sparseCategoricalCrossentropy", "labelSmoothing", "categoricalCrossentropy"],
      "sparse label smoothing",
    );
  } finally {
    m.dispose();
  }
});

Deno.test("fit semantics: validationData overrides validationSplit, and every row trains", async () => {
  const { x, y } = makeData(40, 2);
  const v = makeData(12, 3);
  const m = model(C, 5);
  try {
    m.compile({
      optimizer: "adam",
      loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
      metrics: ["accuracy"],
    });
    const batches: number[] = [];
    const h = await m.fit(x, y, {
      epochs: 1,
      batchSize: 8,
      validationSplit: 0.25,
      validationData: [v.x, v.y],
      verbose: 0,
      callbacks: [{ onBatchEnd: (b) => void batches.push(b) }],
    });
    // 40 rows in batches of 8: 5 steps (with the split, 30 rows would give 4).
    if (batches[batches.length - 1] !== 4) throw new Error(`batches reported: ${batches}`);
    const e = await m.evaluate(v.x, v.y, { batchSize: 8 });
    assertClose([h.history.val_loss[0]], [e.loss], SAME_TOL, "val_loss is the validationData's");
  } finally {
    m.dispose();
  }
});

Deno.test("fit semantics: stopTraining set in onBatchEnd ends the epoch early; it still validates, and onTrainEnd gets its logs", async () => {
  const { x, y } = makeData(800, 6);
  const m = model(C, 8);
  const opt = optim.sgd({ learningRate: 0.01 });
  try {
    m.compile({
      optimizer: opt,
      loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
      metrics: ["accuracy"],
    });
    const events: string[] = [];
    let endLogs: Record<string, number> | null = null;
    const steps = Math.ceil(720 / 8); // 90 training steps per epoch
    const h = await m.fit(x, y, {
      epochs: 3,
      batchSize: 8,
      validationSplit: 0.1,
      verbose: 0,
      callbacks: [{
        onBatchEnd(batch, _logs, control) {
          if (control.stopTraining) events.push("a batch call after the stop");
          events.push(`batch ${batch}`);
          control.stopTraining = true;
        },
        onEpochEnd: (e) => void events.push(`epoch ${e}`),
        onTrainEnd(_control, logs) {
          events.push("end");
          endLogs = logs;
        },
      }],
    });
    assertEqualArrays(h.epoch, [0], "epochs run");
    if (!(opt.iterations < steps)) {
      throw new Error(`${opt.iterations} steps ran of ${steps}: the epoch did not end early`);
    }
    // One batch call (the one that stopped training; Keras makes none after it), the epoch's
    // end, the train's end.
    if (events.length !== 3 || events[1] !== "epoch 0" || events[2] !== "end") {
      throw new Error(`events: ${events.join(", ")}`);
    }
    if (!Number.isFinite(h.history.val_loss?.[0])) throw new Error("no validation after the stop");
    const logs = endLogs as Record<string, number> | null;
    if (!logs || logs.val_loss !== h.history.val_loss[0] || logs.loss !== h.history.loss[0]) {
      throw new Error(`onTrainEnd logs ${JSON.stringify(logs)}`);
    }
    // An error ends fit without onTrainEnd (Keras).
    let ended = false;
    await m.fit(x, y, {
      epochs: 2,
      batchSize: 64,
      verbose: 0,
      callbacks: [{
        onEpochEnd() {
          throw new WgradError("value", "test: stop here");
        },
        onTrainEnd: () => void (ended = true),
      }],
    }).then(
      () => {
        throw new Error("fit did not reject");
      },
      (e) => {
        if (!(e instanceof WgradError) || !e.message.includes("test: stop here")) throw e;
      },
    );
    if (ended) throw new Error("onTrainEnd ran after an error");
  } finally {
    m.dispose();
  }
});

function assertKeys(actual: object, expected: string[], label: string): void {
  const keys = Object.keys(actual);
  if (keys.join(",") !== expected.join(",")) {
    throw new Error(`${label}: ${keys.join(", ")}, expected ${expected.join(", ")}`);
  }
}

/** A TrainingControl without a model: weights are labelled arrays. */
function fakeControl() {
  const state = {
    weights: [new Float32Array([0])] as Float32Array[],
    lr: 0.1,
    stopTraining: false,
  };
  const control: callbacks.TrainingControl = {
    get stopTraining() {
      return state.stopTraining;
    },
    set stopTraining(v: boolean) {
      state.stopTraining = v;
    },
    get learningRate() {
      return state.lr;
    },
    set learningRate(v: number) {
      state.lr = v;
    },
    getWeights: () => Promise.resolve(state.weights.map((w) => w.slice())),
    setWeights: (w) => void (state.weights = w),
    save: () => Promise.resolve(),
    saveWeights: () => Promise.resolve(),
  };
  return { state, control };
}

/** Runs a callback over the figures as fit would, the weights set to [epoch] at each epoch. */
async function drive(cb: callbacks.Callback, figures: number[], monitor = "val_loss") {
  const { state, control } = fakeControl();
  await cb.onTrainBegin?.(control);
  let epochs = 0;
  for (let e = 0; e < figures.length && !state.stopTraining; e++) {
    state.weights = [new Float32Array([e])];
    await cb.onEpochEnd?.(e, { [monitor]: figures[e] }, control);
    epochs++;
  }
  await cb.onTrainEnd?.(control, {});
  return { epochs, weight: state.weights[0][0], lr: state.lr };
}

Deno.test("fit semantics: earlyStopping restores the best weights at the end of training and honours a baseline", async () => {
  // Keras 3: the best epoch's weights come back when training ends, stopped early or not.
  const es = callbacks.earlyStopping({ patience: 5, restoreBestWeights: true });
  const r = await drive(es, [0.9, 0.5, 0.7, 0.8]);
  if (r.epochs !== 4 || r.weight !== 1 || es.bestEpoch !== 1 || es.stoppedEpoch !== -1) {
    throw new Error(
      `no stop: ${JSON.stringify(r)}, best ${es.bestEpoch}, stopped ${es.stoppedEpoch}`,
    );
  }
  // Reused for a second run, it starts afresh.
  const r2 = await drive(es, [0.8, 0.9, 0.6, 0.7]);
  if (r2.weight !== 2 || (es.bestEpoch as number) !== 2) {
    throw new Error(`second run: ${JSON.stringify(r2)}`);
  }
  // A baseline that is never beaten: the patience runs from the first epoch.
  const base = callbacks.earlyStopping({ patience: 2, baseline: 0.5 });
  const rb = await drive(base, [0.9, 0.95, 0.97, 0.99, 0.99]);
  const plain = callbacks.earlyStopping({ patience: 2 });
  const rp = await drive(plain, [0.9, 0.95, 0.97, 0.99, 0.99]);
  if (base.stoppedEpoch !== 1 || rb.epochs !== 2 || plain.stoppedEpoch !== 2 || rp.epochs !== 3) {
    throw new Error(
      `baseline: stopped at ${base.stoppedEpoch} after ${rb.epochs} epochs; without: ` +
        `${plain.stoppedEpoch} after ${rp.epochs}`,
    );
  }
  assertWgradError(
    () => callbacks.earlyStopping({ baseline: NaN }),
    "value",
    ["baseline"],
    "NaN baseline",
  );
});

Deno.test("fit semantics: reduceLrOnPlateau starts afresh in each fit, and a missing figure is an error", async () => {
  const rl = callbacks.reduceLrOnPlateau({ factor: 0.5, patience: 1, minLr: 0.04 });
  // 0.1 → 0.05 after epoch 1 → 0.04 (minLr) after epoch 2; epoch 3 leaves it at minLr.
  const r = await drive(rl, [1, 1, 1, 1]);
  assertClose([r.lr], [0.04], { atol: 0, rtol: 1e-12 }, "rate after the first run");
  // A second fit with an improving figure: the first run's best (1) does not carry over.
  const r2 = await drive(rl, [5, 4, 3]);
  assertClose([r2.lr], [0.1], { atol: 0, rtol: 0 }, "rate after the second run");
  // At minLr the patience keeps counting (Keras): a rate raised by someone else is lowered at
  // the next epoch without improvement. 0.1 → 0.05 (minLr) after epoch 2; epochs 3, 4 wait at
  // minLr; the rate is raised to 0.1 before epoch 5, which lowers it again at once.
  const atMin = callbacks.reduceLrOnPlateau({ factor: 0.5, patience: 2, minLr: 0.05 });
  const { state, control: c2 } = fakeControl();
  await atMin.onTrainBegin?.(c2);
  const rates: number[] = [];
  for (let e = 0; e < 6; e++) {
    if (e === 5) state.lr = 0.1;
    await atMin.onEpochEnd?.(e, { val_loss: 1 }, c2);
    rates.push(state.lr);
  }
  assertEqualArrays(rates, [0.1, 0.1, 0.05, 0.05, 0.05, 0.05], "rates at minLr");
  const missing = callbacks.reduceLrOnPlateau({ monitor: "val_los" });
  const { control } = fakeControl();
  assertWgradError(
    () => missing.onEpochEnd?.(0, { loss: 1, val_loss: 1 }, control),
    "value",
    ["reduceLrOnPlateau", '"val_los"', "loss, val_loss"],
    "missing monitor",
  );
});

Deno.test("fit semantics: a metric the loss launch counts takes no dispatch of its own; another takes two per step", async () => {
  const { ready } = await import("../src/gpu/runtime.ts");
  const rt = await ready();
  const N = 48, B = 8, steps = N / B;
  const { x, y, oneHot } = makeData(N, 10);
  const rng = new Rng(12);
  const bits = new Float32Array(N * C).map(() => rng.int(0, 1));
  /** Dispatches in the second epoch of a fit (the first compiles), per step. */
  const perStep = async (
    loss: LossSpec,
    metrics: string[],
    targets: Float32Array | Int32Array,
    activation?: "sigmoid",
  ): Promise<number> => {
    const m = model(C, 2, 0, activation);
    try {
      m.compile({ optimizer: "adam", loss, metrics });
      const at: number[] = [];
      const probe = {
        onEpochBegin: () => void at.push(rt.counters.dispatches),
        onEpochEnd: () => void at.push(rt.counters.dispatches),
      };
      await m.fit(x, targets, { epochs: 2, batchSize: B, verbose: 0, callbacks: [probe] });
      return (at[3] - at[2]) / steps;
    } finally {
      m.dispose();
    }
  };
  const cases: [
    string,
    LossSpec,
    Float32Array | Int32Array,
    string[],
    number,
  ][] = [
    ["sparse, logits", losses.sparseCategoricalCrossentropy({ fromLogits: true }), y, [
      "accuracy",
      "acc",
      "sparse_categorical_accuracy",
    ], 0],
    ["categorical, logits", losses.categoricalCrossentropy({ fromLogits: true }), oneHot, [
      "accuracy",
      "categorical_accuracy",
    ], 0],
    ["binary, logits", losses.binaryCrossentropy({ fromLogits: true }), bits, [
      "accuracy",
      "binary_accuracy",
    ], 0],
    [
      "categorical, logits, binary accuracy",
      losses.categoricalCrossentropy({ fromLogits: true }),
      oneHot,
      ["binary_accuracy"],
      2,
    ],
  ];
  for (const [what, loss, t, metrics, extra] of cases) {
    const none = await perStep(loss, [], t);
    const some = await perStep(loss, metrics, t);
    if (!Number.isInteger(none) || some - none !== extra) {
      throw new Error(
        `${what}: ${none} dispatches per step without metrics, ${some} with ${metrics}`,
      );
    }
  }
});

Deno.test("fit semantics: model files that name label smoothing for sparse labels or a metric twice still load", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgrad-fit-semantics-" });
  const m = model(C, 4);
  try {
    m.compile({
      optimizer: "adam",
      loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
      metrics: ["accuracy"],
    });
    await m.save(dir);
    // What earlier releases wrote: the option was accepted (and ignored), the metric kept twice.
    const file = `${dir}/model.json`;
    const json = JSON.parse(await Deno.readTextFile(file));
    json.compile.loss.config.label_smoothing = 0.1;
    json.compile.metrics = ["accuracy", "accuracy"];
    await Deno.writeTextFile(file, JSON.stringify(json));
    const loaded = await nn.loadModel(dir);
    try {
      const { x, y } = makeData(16, 3);
      const e = await loaded.evaluate(x, y);
      assertKeys(e, ["loss", "accuracy"], "figures of the loaded model");
    } finally {
      loaded.dispose();
    }
  } finally {
    m.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
