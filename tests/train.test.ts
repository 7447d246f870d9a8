/**
 * compile / fit / evaluate / predict (src/train/): the captured training step that `fit` replays
 * against eager steps built by hand (ParamArena, valueAndGrad, the same optimizer) for SGD
 * (momentum, Nesterov), Adam, RMSprop and Adagrad; shuffling and dropout seeds; convergence on
 * the four-pixel camera; History with validation; evaluate and predict against float64; L2
 * penalties; callbacks; input errors; the last partial batch; GPU memory across fits; byte inputs.
 * @module
 */
import {
  add,
  callbacks,
  datasets,
  flush,
  keep,
  linear,
  losses,
  memoryInfo,
  mul,
  nn,
  optim,
  plot,
  square,
  sum,
  type Tensor,
  tensor,
  valueAndGrad,
  WgradError,
} from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertRejectsWgrad,
  assertShape,
  assertWgradError,
  EPS,
  Rng,
  type Tolerance,
} from "./harness.ts";
import {
  type ActName,
  denseRefs,
  forwardF64,
  FOUR_PIXEL_LAYERS,
  FOUR_PIXEL_PATTERNS,
  l2PenaltyF64,
  sparseCrossentropyF64,
} from "./fixtures/nn_reference.ts";

// Tolerances.
//
// STEP_ULPS (fit against eager steps): the captured step runs the same kernels, specialised for
// the same shapes, on the same batches in the same order as the eager reference, so the weights
// are expected to be bit-identical (measured: they are, for every optimizer here). We allow 4 ulps
// of the largest weight per step, so that a harmless reordering inside a kernel would not fail,
// while one skipped, repeated or reordered batch moves weights by lr·g ≈ 1e-3 ≈ 10⁴ ulps.
const STEP_ULPS = 4;
// HISTORY_TOL (History's loss against the eager per-step losses): the GPU sums per-sample losses
// in f32 over ≤ 64 samples per epoch; relative 64 ulps of the sum.
const HISTORY_TOL: Tolerance = { atol: 0, rtol: 64 * EPS };
// VAL_TOL (val_loss against evaluate on the same data with the same batch size): the same captured
// evaluation kernels on the same rows: equal up to the order of the f32 sums, 8 ulps.
const VAL_TOL: Tolerance = { atol: 0, rtol: 8 * EPS };
// F64_TOL (evaluate's loss, predict's outputs, reported L2 losses against float64): inputs in
// [−2, 2], two Dense layers of ≤ 8 inputs each in f32 (a few ulps of Σ|x||w| ≈ 1e-6), an f32
// log-softmax (≈ 1e-6) and an f32 mean over ≤ 64 samples. 1e-5 absolute + 1e-5 relative is ~10×
// that, and far below any formula mistake (a missing penalty or mean is ≥ 1e-2 here).
const F64_TOL: Tolerance = { atol: 1e-5, rtol: 1e-5 };
// PREDICT_TOL (predict against model.apply on the same weights): the same per-row arithmetic in
// batches of another size; expected equal, 8 ulps allowed for a different kernel arrangement.
const PREDICT_TOL: Tolerance = { atol: 8 * EPS, rtol: 8 * EPS };
// BYTES_TOL (training on bytes normalised on the GPU against training on f32 x/255): the two
// inputs differ by ≤ 1 ulp (byte·f32(1/255) vs. f32(byte/255)); after 10 steps the weights
// differ by ~2.4e-7 (measured). A wrong normalisation (scale 1/256) differs by ~7e-4. Against
// f32 inputs of exactly byte·f32(1/255) the comparison is exact.
const BYTES_TOL: Tolerance = { atol: 2e-6, rtol: 2e-5 };

type Optimizer = optim.Optimizer;

// ---------------------------------------------------------------------------------------------
// Data and models

/** A classification set: `n` samples of `features` in [−2, 2], labels from a random linear teacher. */
function makeData(
  n: number,
  features: number,
  classes: number,
  seed: number,
): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  const x = rng.floats(n * features, -2, 2);
  const teacher = rng.floats(features * classes, -1, 1);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0, bestV = -Infinity;
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let f = 0; f < features; f++) s += x[i * features + f] * teacher[f * classes + c];
      if (s > bestV) [best, bestV] = [c, s];
    }
    y[i] = best;
  }
  return { x, y };
}

interface MlpSpec {
  features: number;
  hidden: number;
  classes: number;
  act: "relu" | "tanh";
  /** L2 on both kernels. */
  l2?: number;
  /** Dropout after the hidden layer. */
  dropout?: number;
}

/** Dense(hidden, act) [→ Dropout] → Dense(classes) (logits). */
function mlp(s: MlpSpec, seed: number): nn.Sequential {
  const reg = s.l2 ? nn.regularizers.l2(s.l2) : undefined;
  return nn.sequential([
    nn.dense(s.hidden, { activation: s.act, kernelRegularizer: reg }),
    ...(s.dropout !== undefined ? [nn.dropout(s.dropout)] : []),
    nn.dense(s.classes, { kernelRegularizer: reg }),
  ], { inputShape: [s.features], seed });
}

function layerSpecs(s: MlpSpec): { units: number; act: ActName }[] {
  return [{ units: s.hidden, act: s.act }, { units: s.classes, act: "linear" }];
}

const logits = () => losses.sparseCategoricalCrossentropy({ fromLogits: true });

function compileMlp(model: nn.Sequential, opt: Optimizer | string): void {
  model.compile({ optimizer: opt, loss: logits(), metrics: ["accuracy"] });
}

/**
 * Trains a copy of the MLP eagerly: a ParamArena holding `init`, one valueAndGrad of the loss
 * (plus the L2 penalties, as fit adds them) per batch, then the optimizer's step. Batches are
 * `order(epoch)`'s rows in runs of `batch`, the last one partial. Returns the final weights and
 * the per-epoch mean loss and accuracy (over the samples, as History reports them).
 */
async function eagerTrain(o: {
  spec: MlpSpec;
  init: readonly Float32Array[];
  opt: Optimizer;
  x: Float32Array;
  y: Int32Array;
  batch: number;
  epochs: number;
  order?: (epoch: number) => number[];
}): Promise<{ weights: Float32Array[]; loss: number[]; accuracy: number[] }> {
  const { spec, x, y, batch } = o;
  const F = spec.features, C = spec.classes, N = y.length;
  const shapes = [[F, spec.hidden], [spec.hidden], [spec.hidden, C], [C]];
  const arena = new optim.ParamArena(o.init.map((v, i) => ({ value: v, shape: shapes[i] })));
  const [w1, b1, w2, b2] = arena.params;
  const pending: { value: Tensor; out: Tensor; rows: number[]; epoch: number }[] = [];
  try {
    for (let e = 0; e < o.epochs; e++) {
      const order = o.order?.(e) ?? Array.from({ length: N }, (_, i) => i);
      for (let lo = 0; lo < N; lo += batch) {
        const rows = order.slice(lo, lo + batch);
        const xb = tensor(
          Float32Array.from(rows.flatMap((r) => Array.from(x.subarray(r * F, (r + 1) * F)))),
          [rows.length, F],
        ) as Tensor<"f32">;
        const yb = tensor(Int32Array.from(rows.map((r) => y[r])));
        let out: Tensor | null = null;
        const { value, grads } = await valueAndGrad(() => {
          const h = linear(xb, w1, b1, spec.act, { alpha: 0 });
          const z = linear(h, w2, b2, "linear", { alpha: 0 });
          out = keep(z);
          const ce = losses.sparseCategoricalCrossentropy(yb, z, { fromLogits: true });
          if (!spec.l2) return ce;
          // As fit: l2·Σw² per regularized kernel, summed in layer order, added to the loss.
          const p1 = mul(sum(square(w1)), spec.l2);
          const p2 = mul(sum(square(w2)), spec.l2);
          return add(ce, add(p1, p2));
        }, arena.params);
        arena.setGradients(grads);
        o.opt.step(arena);
        for (const g of grads) g.dispose();
        xb.dispose();
        yb.dispose();
        pending.push({ value, out: out!, rows, epoch: e });
      }
    }
    const loss = new Array(o.epochs).fill(0), correct = new Array(o.epochs).fill(0);
    for (const p of pending) {
      const v = (await p.value.data())[0];
      const z = await p.out.data() as Float32Array;
      loss[p.epoch] += v * p.rows.length;
      p.rows.forEach((r, i) => {
        let best = 0;
        for (let c = 1; c < C; c++) if (z[i * C + c] > z[i * C + best]) best = c;
        if (best === y[r]) correct[p.epoch]++;
      });
    }
    return {
      weights: await arena.getWeights(),
      loss: loss.map((l) => l / N),
      accuracy: correct.map((c) => c / N),
    };
  } finally {
    for (const p of pending) {
      p.value.dispose();
      p.out.dispose();
    }
    arena.dispose();
  }
}

/** Asserts weights agree to STEP_ULPS ulps of the largest weight per step. */
function assertWeightsClose(
  got: readonly Float32Array[],
  want: readonly Float32Array[],
  steps: number,
  label: string,
): void {
  if (got.length !== want.length) {
    throw new Error(`${label}: ${got.length} weights, not ${want.length}`);
  }
  want.forEach((w, i) => {
    const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const tol = { atol: STEP_ULPS * steps * EPS * scale, rtol: 0 };
    assertClose(got[i], w, tol, `${label}, weight ${i}`);
  });
}

function differs(a: readonly Float32Array[], b: readonly Float32Array[], atLeast = 1e-4): boolean {
  return a.some((w, i) => w.some((v, j) => Math.abs(v - b[i][j]) > atLeast));
}

function rowsOf(x: Float32Array, F: number, lo: number, hi: number): Float32Array {
  return x.slice(lo * F, hi * F);
}

// ---------------------------------------------------------------------------------------------
// (1) Captured steps against eager steps

const SPEC: MlpSpec = { features: 4, hidden: 6, classes: 3, act: "relu" };
const OPTIMIZERS: { label: string; make: () => Optimizer }[] = [
  { label: "SGD", make: () => optim.sgd({ learningRate: 0.1 }) },
  { label: "SGD momentum 0.9", make: () => optim.sgd({ learningRate: 0.1, momentum: 0.9 }) },
  {
    label: "SGD Nesterov 0.9",
    make: () => optim.sgd({ learningRate: 0.1, momentum: 0.9, nesterov: true }),
  },
  { label: "Adam", make: () => optim.adam({ learningRate: 0.01 }) },
  { label: "RMSprop", make: () => optim.rmsprop({ learningRate: 0.01 }) },
  { label: "Adagrad", make: () => optim.adagrad({ learningRate: 0.1 }) },
];

Deno.test("train: fit's captured steps equal eager steps (SGD, momentum, Nesterov, Adam, RMSprop, Adagrad)", async () => {
  // N = 37, batch 8: 4 full batches and one of 5, over 2 epochs (10 steps), unshuffled.
  const N = 37, B = 8, E = 2;
  const { x, y } = makeData(N, SPEC.features, SPEC.classes, 1);
  for (const o of OPTIMIZERS) {
    const model = mlp(SPEC, 4);
    try {
      const init = await model.getWeights();
      compileMlp(model, o.make());
      const h = await model.fit(x, y, { epochs: E, batchSize: B, shuffle: false, verbose: 0 });
      const got = await model.getWeights();
      const ref = await eagerTrain({ spec: SPEC, init, opt: o.make(), x, y, batch: B, epochs: E });
      assertWeightsClose(got, ref.weights, E * Math.ceil(N / B), o.label);
      if (!differs(got, init)) throw new Error(`${o.label}: training did not change the weights`);
      assertClose(h.history.loss, ref.loss, HISTORY_TOL, `${o.label}: History loss`);
      assertClose(
        h.history.accuracy,
        ref.accuracy,
        { atol: 1e-7, rtol: 0 },
        `${o.label}: accuracy`,
      );
      assertEqualArrays(h.epoch, [0, 1], `${o.label}: History epochs`);
    } finally {
      model.dispose();
    }
  }
});

// ---------------------------------------------------------------------------------------------
// (9) The last partial batch

Deno.test("train: the last partial batch is trained on (N = 33, batch 32)", async () => {
  const N = 33, B = 32;
  const { x, y } = makeData(N, SPEC.features, SPEC.classes, 2);
  const make = () => optim.sgd({ learningRate: 0.5 });
  const model = mlp(SPEC, 5);
  const model32 = mlp(SPEC, 5);
  try {
    const init = await model.getWeights();
    compileMlp(model, make());
    compileMlp(model32, make());
    await model.fit(x, y, { epochs: 1, batchSize: B, shuffle: false, verbose: 0 });
    await model32.fit(rowsOf(x, SPEC.features, 0, 32), y.slice(0, 32), {
      epochs: 1,
      batchSize: B,
      shuffle: false,
      verbose: 0,
    });
    const got = await model.getWeights();
    const ref = await eagerTrain({ spec: SPEC, init, opt: make(), x, y, batch: B, epochs: 1 });
    assertWeightsClose(got, ref.weights, 2, "N = 33 against two eager steps (32 + 1)");
    // The 33rd sample's step changes the weights: training on the first 32 alone differs.
    if (!differs(got, await model32.getWeights(), 1e-6)) {
      throw new Error("the weights after N = 33 equal those after the first 32 samples alone");
    }
  } finally {
    model.dispose();
    model32.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// (2) Shuffling

Deno.test("train: shuffling is seeded (same seed, same weights; other seed, other weights) and visits every sample once", async () => {
  const N = 40, B = 8;
  const { x, y } = makeData(N, SPEC.features, SPEC.classes, 3);
  const run = async (options: { seed?: number; shuffle?: boolean }) => {
    const model = mlp(SPEC, 6);
    try {
      compileMlp(model, optim.sgd({ learningRate: 0.2, momentum: 0.5 }));
      await model.fit(x, y, { epochs: 2, batchSize: B, verbose: 0, ...options });
      return await model.getWeights();
    } finally {
      model.dispose();
    }
  };
  const a = await run({ seed: 11 });
  const b = await run({ seed: 11 });
  const c = await run({ seed: 12 });
  const plain = await run({ shuffle: false });
  a.forEach((w, i) => assertEqualArrays(b[i], w, `seed 11 twice, weight ${i}`));
  if (!differs(a, c, 1e-6)) throw new Error("seeds 11 and 12 give the same weights");
  if (!differs(a, plain, 1e-6)) throw new Error("shuffled training equals unshuffled training");

  // With a learning rate of 0 the weights stay, so the epoch's loss is the mean over the samples
  // the permutation visited: it equals evaluate's only if each sample comes exactly once.
  const model = mlp(SPEC, 7);
  try {
    compileMlp(model, optim.sgd({ learningRate: 0 }));
    const h = await model.fit(x, y, { epochs: 2, batchSize: 7, seed: 5, verbose: 0 });
    const r = await model.evaluate(x, y, { batchSize: 7 });
    assertClose(h.history.loss, [r.loss, r.loss], HISTORY_TOL, "shuffled epoch loss at lr 0");
    assertClose(h.history.accuracy, [r.accuracy, r.accuracy], { atol: 1e-7, rtol: 0 }, "accuracy");
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// (3) Convergence

Deno.test("train: the four-pixel camera learns every pattern with RMSprop (loss falls, accuracy 1)", async () => {
  const pats = Array.from({ length: 4 }, () => FOUR_PIXEL_PATTERNS).flat();
  const x = pats.map(([p]) => [...p]);
  const y = pats.map(([, c]) => c);
  const model = nn.sequential(
    FOUR_PIXEL_LAYERS.map((l) => nn.dense(l.units, { activation: l.act })),
    { inputShape: [4], seed: 3, name: "four_pixel_camera" },
  );
  try {
    model.compile({
      optimizer: optim.rmsprop({ learningRate: 0.01 }),
      loss: losses.sparseCategoricalCrossentropy(),
      metrics: ["accuracy"],
    });
    const before = await model.evaluate(x, y);
    const h = await model.fit(x, y, { epochs: 30, batchSize: 8, verbose: 0, seed: 1 });
    const loss = h.history.loss;
    if (loss.length !== 30) throw new Error(`History has ${loss.length} epochs, not 30`);
    if (!(loss[29] < 0.25 * loss[0] && loss[9] < loss[0] && loss[19] < loss[9])) {
      throw new Error(`the loss does not fall: ${loss.map((v) => v.toFixed(3)).join(", ")}`);
    }
    const after = await model.evaluate(x, y);
    if (!(after.loss < 0.25 * before.loss)) {
      throw new Error(`evaluate's loss ${before.loss} → ${after.loss}`);
    }
    if (after.accuracy !== 1 || h.history.accuracy[29] !== 1) {
      throw new Error(`accuracy ${after.accuracy} (History ${h.history.accuracy[29]}), not 1`);
    }
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// (4) History and validation

Deno.test("train: History with validationSplit: per-epoch figures, val equal to evaluate, held-out rows not trained on", async () => {
  const N = 48, B = 8, E = 3, F = SPEC.features;
  const { x, y } = makeData(N, F, SPEC.classes, 4);
  const nTrain = 36; // validationSplit 0.25 holds out the last 12 rows
  const model = mlp(SPEC, 8);
  const trainOnly = mlp(SPEC, 8);
  try {
    compileMlp(model, optim.adam({ learningRate: 0.02 }));
    compileMlp(trainOnly, optim.adam({ learningRate: 0.02 }));
    const h = await model.fit(x, y, {
      epochs: E,
      batchSize: B,
      validationSplit: 0.25,
      shuffle: false,
      verbose: 0,
    });
    const keys = Object.keys(h.history).sort().join(",");
    if (keys !== "accuracy,loss,val_accuracy,val_loss") throw new Error(`History keys ${keys}`);
    for (const k of Object.keys(h.history)) {
      if (h.history[k].length !== E || !h.history[k].every(Number.isFinite)) {
        throw new Error(`History ${k}: ${h.history[k]}`);
      }
    }
    assertEqualArrays(h.epoch, [0, 1, 2], "History epochs");
    const r = await model.evaluate(rowsOf(x, F, nTrain, N), y.slice(nTrain), { batchSize: B });
    assertClose([h.history.val_loss[E - 1]], [r.loss], VAL_TOL, "val_loss against evaluate");
    assertClose([h.history.val_accuracy[E - 1]], [r.accuracy], VAL_TOL, "val_accuracy");
    // The split trains on the first 36 rows only: the same as fitting them without a split.
    const h2 = await trainOnly.fit(rowsOf(x, F, 0, nTrain), y.slice(0, nTrain), {
      epochs: E,
      batchSize: B,
      shuffle: false,
      verbose: 0,
    });
    const [wa, wb] = [await model.getWeights(), await trainOnly.getWeights()];
    wa.forEach((w, i) => assertEqualArrays(wb[i], w, `split vs. first 36 rows, weight ${i}`));
    assertEqualArrays(h.history.loss, h2.history.loss, "training loss with and without the split");
    // The chart names both series.
    const chart = plot.history(h);
    for (const s of ["loss per epoch", "val_loss", "accuracy per epoch", "val_accuracy"]) {
      if (!chart.includes(s)) throw new Error(`plot.history lacks "${s}":\n${chart}`);
    }
  } finally {
    model.dispose();
    trainOnly.dispose();
  }
});

Deno.test("train: History with validationData ({ x, y } and [x, y]) equals evaluate on that data", async () => {
  const F = SPEC.features, B = 8;
  const t = makeData(40, F, SPEC.classes, 5);
  const v = makeData(21, F, SPEC.classes, 6);
  for (const form of ["object", "tuple"] as const) {
    const model = mlp(SPEC, 9);
    try {
      compileMlp(model, optim.rmsprop({ learningRate: 0.01 }));
      const h = await model.fit(t.x, t.y, {
        epochs: 2,
        batchSize: B,
        validationData: form === "object" ? { x: v.x, y: v.y } : [v.x, v.y],
        verbose: 0,
      });
      for (const k of ["loss", "accuracy", "val_loss", "val_accuracy"]) {
        if (h.history[k]?.length !== 2) throw new Error(`${form}: History ${k}: ${h.history[k]}`);
      }
      const r = await model.evaluate(v.x, v.y, { batchSize: B });
      assertClose([h.history.val_loss[1]], [r.loss], VAL_TOL, `${form}: val_loss vs evaluate`);
      assertClose([h.history.val_accuracy[1]], [r.accuracy], VAL_TOL, `${form}: val_accuracy`);
      // The validation figures are not the training figures.
      if (h.history.val_loss[1] === h.history.loss[1]) throw new Error("val_loss equals loss");
    } finally {
      model.dispose();
    }
  }
});

// ---------------------------------------------------------------------------------------------
// (5) evaluate, predict, dropout

Deno.test("train: evaluate's loss and accuracy equal a float64 computation from the weights (logits and probabilities)", async () => {
  const N = 45, F = 5, C = 4;
  const { x } = makeData(N, F, C, 7);
  // Random labels (not the teacher's), so that the accuracy is neither 0 nor 1.
  const labels = new Rng(8).ints(N, 0, C - 1);
  for (const fromLogits of [true, false]) {
    const spec = [{ units: 7, act: "tanh" as const }, {
      units: C,
      act: fromLogits ? "linear" as const : "softmax" as const,
    }];
    const model = nn.sequential(spec.map((s) => nn.dense(s.units, { activation: s.act })), {
      inputShape: [F],
      seed: 10,
    });
    try {
      model.compile({
        optimizer: "sgd",
        loss: losses.sparseCategoricalCrossentropy({ fromLogits }),
        metrics: ["accuracy"],
      });
      const r = await model.evaluate(x, labels, { batchSize: 16 });
      const keys = Object.keys(r).sort().join(",");
      if (keys !== "accuracy,loss") throw new Error(`evaluate returned ${keys}`);
      const out = forwardF64(x, N, F, denseRefs(await model.getWeights(), spec));
      const ref = sparseCrossentropyF64(out, N, C, labels, fromLogits);
      assertClose([r.loss], [ref.loss], F64_TOL, `evaluate loss (fromLogits ${fromLogits})`);
      assertClose(
        [r.accuracy],
        [ref.correct / N],
        { atol: ref.ambiguous / N + 1e-7, rtol: 0 },
        "accuracy",
      );
      if (ref.correct === 0 || ref.correct === N) throw new Error("degenerate accuracy");
      // predict: [N, C], equal to model.apply and to float64.
      const p = await model.predict(x, { batchSize: 16 });
      assertShape(p.shape, [N, C], "predict shape");
      const pd = await p.data();
      p.dispose();
      const xt = tensor(x, [N, F]) as Tensor<"f32">;
      const a = model.apply(xt);
      const ad = await a.data();
      a.dispose();
      xt.dispose();
      assertClose(pd, ad, PREDICT_TOL, "predict against model.apply", [N, C]);
      assertClose(pd, out, F64_TOL, "predict against float64", [N, C]);
      // Nested arrays give the same.
      const nested = Array.from({ length: N }, (_, i) => Array.from(x.subarray(i * F, i * F + F)));
      const p2 = await model.predict(nested, { batchSize: 7 });
      const p2d = await p2.data();
      p2.dispose();
      assertClose(p2d, pd, PREDICT_TOL, "predict of nested arrays, batch 7");
    } finally {
      model.dispose();
    }
  }
});

Deno.test("train: dropout is active in fit (seeded) and off in evaluate and predict", async () => {
  const N = 32, F = SPEC.features, B = 8;
  const { x, y } = makeData(N, F, SPEC.classes, 9);
  const spec = (rate: number): MlpSpec => ({ ...SPEC, hidden: 16, dropout: rate });
  const fitOnce = async (rate: number, seed: number) => {
    const model = mlp(spec(rate), 12);
    compileMlp(model, optim.sgd({ learningRate: 0.1 }));
    await model.fit(x, y, { epochs: 1, batchSize: B, shuffle: false, seed, verbose: 0 });
    return model;
  };
  const a = await fitOnce(0.5, 21);
  const a2 = await fitOnce(0.5, 21);
  const a3 = await fitOnce(0.5, 22);
  const none = await fitOnce(0, 21);
  try {
    const [wa, wa2, wa3, wn] = await Promise.all([a, a2, a3, none].map((m) => m.getWeights()));
    wa.forEach((w, i) => assertEqualArrays(wa2[i], w, `dropout, seed 21 twice, weight ${i}`));
    if (!differs(wa, wn)) throw new Error("training with dropout 0.5 equals training without");
    if (!differs(wa, wa3, 1e-6)) throw new Error("dropout seeds 21 and 22 give the same weights");

    // predict: deterministic and equal to the float64 pass without dropout.
    const p1 = await a.predict(x);
    const p2 = await a.predict(x);
    const [d1, d2] = [await p1.data(), await p2.data()];
    p1.dispose();
    p2.dispose();
    assertEqualArrays(d2, d1, "predict twice");
    const ref = forwardF64(x, N, F, denseRefs(wa, layerSpecs(spec(0.5))));
    assertClose(d1, ref, F64_TOL, "predict with dropout layer against float64 without dropout");
    // evaluate: a dropout-0.5 model and a dropout-0 model with the same weights agree exactly.
    none.setWeights(wa);
    const [ra, rn] = [await a.evaluate(x, y), await none.evaluate(x, y)];
    assertClose([ra.loss, ra.accuracy], [rn.loss, rn.accuracy], { atol: 0, rtol: 0 }, "evaluate");
  } finally {
    for (const m of [a, a2, a3, none]) m.dispose();
  }

  // At learning rate 0 the training loss is the loss seen through the dropout masks: it differs
  // from evaluate's with dropout 0.5 and equals it with dropout 0.
  for (const rate of [0.5, 0]) {
    const m = mlp(spec(rate), 13);
    try {
      compileMlp(m, optim.sgd({ learningRate: 0 }));
      const h = await m.fit(x, y, { epochs: 1, batchSize: B, shuffle: false, verbose: 0 });
      const r = await m.evaluate(x, y, { batchSize: B });
      const same = Math.abs(h.history.loss[0] - r.loss) <= 64 * EPS * r.loss;
      if (same !== (rate === 0)) {
        throw new Error(
          `dropout ${rate}: training loss ${h.history.loss[0]}, evaluate's ${r.loss}`,
        );
      }
    } finally {
      m.dispose();
    }
  }
});

// ---------------------------------------------------------------------------------------------
// (6) L2 regularization

const L2_SPEC: MlpSpec = { ...SPEC, l2: 0.05 };

Deno.test("train: L2 penalties: the reported loss includes l2·Σw², and the steps equal eager steps", async () => {
  const N = 30, B = 8;
  const { x, y } = makeData(N, SPEC.features, SPEC.classes, 10);
  // Learning rate 0: the weights stay, so the epoch's loss is the data loss plus the penalty.
  const still = mlp(L2_SPEC, 14);
  try {
    compileMlp(still, optim.sgd({ learningRate: 0 }));
    const h = await still.fit(x, y, { epochs: 1, batchSize: B, shuffle: false, verbose: 0 });
    const w = await still.getWeights();
    const out = forwardF64(x, N, SPEC.features, denseRefs(w, layerSpecs(SPEC)));
    const ce = sparseCrossentropyF64(out, N, SPEC.classes, y, true);
    const penalty = l2PenaltyF64(L2_SPEC.l2!, [w[0], w[2]]);
    if (penalty < 0.05) throw new Error(`penalty ${penalty} too small to tell apart`);
    assertClose(h.history.loss, [ce.loss + penalty], F64_TOL, "reported loss = CE + l2·Σw²");
    assertClose(
      h.history.accuracy,
      [ce.correct / N],
      { atol: ce.ambiguous / N + 1e-7, rtol: 0 },
      "accuracy with a penalty",
    );
  } finally {
    still.dispose();
  }
  // Steps: SGD with momentum, 2 epochs with a partial batch, against eager steps with the penalty.
  const make = () => optim.sgd({ learningRate: 0.1, momentum: 0.9 });
  const model = mlp(L2_SPEC, 15);
  const plain = mlp(SPEC, 15);
  try {
    const init = await model.getWeights();
    compileMlp(model, make());
    compileMlp(plain, make());
    const h = await model.fit(x, y, { epochs: 2, batchSize: B, shuffle: false, verbose: 0 });
    await plain.fit(x, y, { epochs: 2, batchSize: B, shuffle: false, verbose: 0 });
    const ref = await eagerTrain({ spec: L2_SPEC, init, opt: make(), x, y, batch: B, epochs: 2 });
    assertWeightsClose(await model.getWeights(), ref.weights, 8, "L2 steps against eager");
    assertClose(h.history.loss, ref.loss, HISTORY_TOL, "L2 History loss against eager");
    if (!differs(await model.getWeights(), await plain.getWeights())) {
      throw new Error("the L2 penalty did not change the training");
    }
  } finally {
    model.dispose();
    plain.dispose();
  }
});

Deno.test("train: L2 penalties count in evaluate and val_loss, as in Keras", async () => {
  // Keras adds the layers' regularization losses to the loss in test_step too, so evaluate and
  // val_loss report CE + l2·Σw², the same quantity as the training loss.
  const N = 24, B = 8;
  const { x, y } = makeData(N, SPEC.features, SPEC.classes, 11);
  const model = mlp(L2_SPEC, 16);
  try {
    compileMlp(model, optim.sgd({ learningRate: 0 }));
    const h = await model.fit(x, y, {
      epochs: 1,
      batchSize: B,
      shuffle: false,
      validationData: { x, y },
      verbose: 0,
    });
    const w = await model.getWeights();
    const out = forwardF64(x, N, SPEC.features, denseRefs(w, layerSpecs(SPEC)));
    const expected = sparseCrossentropyF64(out, N, SPEC.classes, y, true).loss +
      l2PenaltyF64(L2_SPEC.l2!, [w[0], w[2]]);
    const r = await model.evaluate(x, y, { batchSize: B });
    assertClose([r.loss], [expected], F64_TOL, "evaluate's loss with an L2 penalty");
    assertClose(h.history.val_loss, [expected], F64_TOL, "val_loss with an L2 penalty");
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// (7) Callbacks

Deno.test("train: earlyStopping stops after patience (as Keras) and restores the best epoch's weights", async () => {
  // Keras (keras/src/callbacks/early_stopping.py): `wait` counts the epochs since the best one
  // and training stops once `wait >= patience`, i.e. after `patience` epochs without improvement.
  const { x, y } = makeData(24, SPEC.features, SPEC.classes, 12);
  const figure = [5, 3, 4, 6, 7, 8, 9, 10]; // best at epoch 1, then never better
  const run = async (patience: number) => {
    const model = mlp(SPEC, 17);
    compileMlp(model, optim.sgd({ learningRate: 0.2 }));
    const snapshots: Float32Array[][] = [];
    // Injects the figure into the logs before earlyStopping sees them, and keeps the weights.
    const inject: callbacks.Callback = {
      async onEpochEnd(epoch, logs, control) {
        logs.score = figure[epoch];
        snapshots.push(await control.getWeights());
      },
    };
    const stop = callbacks.earlyStopping({
      monitor: "score",
      mode: "min",
      patience,
      restoreBestWeights: true,
    });
    const h = await model.fit(x, y, {
      epochs: 8,
      batchSize: 8,
      callbacks: [inject, stop],
      verbose: 0,
    });
    return { model, snapshots, stop, h };
  };
  for (const patience of [0, 2]) {
    const { model, snapshots, stop, h } = await run(patience);
    try {
      const last = h.epoch.length - 1;
      // The weights are those of epoch 1, whichever epoch training stopped at.
      const final = await model.getWeights();
      if (!differs(snapshots[last], snapshots[1])) {
        throw new Error(`patience ${patience}: epochs 1 and ${last} have the same weights`);
      }
      final.forEach((w, i) =>
        assertEqualArrays(w, snapshots[1][i], `patience ${patience}: restored weight ${i}`)
      );
      // The restored weights are the ones the GPU uses afterwards.
      const r = await model.evaluate(x, y);
      const out = forwardF64(x, 24, SPEC.features, denseRefs(snapshots[1], layerSpecs(SPEC)));
      const ref = sparseCrossentropyF64(out, 24, SPEC.classes, y, true);
      assertClose([r.loss], [ref.loss], F64_TOL, `patience ${patience}: evaluate after restoring`);
      // Epochs 2 … 1 + patience do not improve: training stops at epoch 1 + patience.
      const stopAt = 1 + Math.max(patience, 1);
      const epochs = Array.from({ length: stopAt + 1 }, (_, i) => i);
      assertEqualArrays(h.epoch, epochs, `patience ${patience}: epochs run`);
      assertEqualArrays(h.history.score, figure.slice(0, stopAt + 1), "the figure in History");
      if (stop.stoppedEpoch !== stopAt) {
        throw new Error(`patience ${patience}: stoppedEpoch ${stop.stoppedEpoch}, not ${stopAt}`);
      }
    } finally {
      model.dispose();
    }
  }
});

Deno.test("train: reduceLrOnPlateau lowers the learning rate, and the lowered rate is used", async () => {
  const { x, y } = makeData(24, SPEC.features, SPEC.classes, 13);
  const model = mlp(SPEC, 18);
  const opt = optim.sgd({ learningRate: 0.1 });
  try {
    compileMlp(model, opt);
    const flat: callbacks.Callback = {
      onEpochEnd(_epoch, logs) {
        logs.score = 1; // never improves after the first epoch
      },
    };
    const h = await model.fit(x, y, {
      epochs: 5,
      batchSize: 8,
      callbacks: [
        flat,
        callbacks.reduceLrOnPlateau({ monitor: "score", factor: 0.5, patience: 2 }),
      ],
      verbose: 0,
    });
    // Epoch 0 sets the best; epochs 1, 2 wait → ×0.5 after epoch 2; epochs 3, 4 → ×0.5 again.
    assertClose([opt.learningRate], [0.025], { atol: 0, rtol: 1e-12 }, "learning rate after fit");
    assertClose(
      h.history.learning_rate,
      [0.1, 0.1, 0.1, 0.05, 0.05],
      { atol: 0, rtol: 1e-12 },
      "logged rates",
    );
  } finally {
    model.dispose();
  }
  // A rate set by a callback reaches the captured step: at rate 0 an epoch changes nothing.
  const m2 = mlp(SPEC, 19);
  try {
    compileMlp(m2, optim.sgd({ learningRate: 0.3 }));
    const snaps: Float32Array[][] = [];
    const h = await m2.fit(x, y, {
      epochs: 3,
      batchSize: 8,
      verbose: 0,
      callbacks: [{
        async onEpochEnd(epoch, _logs, control) {
          snaps.push(await control.getWeights());
          if (epoch === 0) control.learningRate = 0;
          if (epoch === 1) control.learningRate = 0.3;
        },
      }],
    });
    if (h.epoch.length !== 3) throw new Error(`${h.epoch.length} epochs`);
    snaps[0].forEach((w, i) => assertEqualArrays(snaps[1][i], w, `epoch at rate 0, weight ${i}`));
    if (!differs(snaps[2], snaps[1])) throw new Error("restoring the rate did not resume training");
  } finally {
    m2.dispose();
  }
});

Deno.test("train: callbacks are called in order with logs (train, epoch and batch hooks)", async () => {
  const N = 40, B = 8, E = 3; // 5 steps per epoch
  const { x, y } = makeData(N, SPEC.features, SPEC.classes, 14);
  const model = mlp(SPEC, 20);
  try {
    compileMlp(model, optim.adam({ learningRate: 0.01 }));
    const events: string[] = [];
    const batchLogs: { epoch: number; batch: number; logs: Record<string, number> }[] = [];
    const epochLogs: Record<string, number>[] = [];
    let epochNow = -1;
    const h = await model.fit(x, y, {
      epochs: E,
      batchSize: B,
      validationSplit: 0.2,
      verbose: 0,
      callbacks: [{
        onTrainBegin: () => void events.push("trainBegin"),
        onEpochBegin: (e) => {
          epochNow = e;
          events.push(`epochBegin ${e}`);
        },
        onBatchEnd: (b, logs) =>
          void batchLogs.push({ epoch: epochNow, batch: b, logs: { ...logs } }),
        onEpochEnd: (e, logs) => {
          events.push(`epochEnd ${e}`);
          epochLogs.push({ ...logs });
        },
        onTrainEnd: () => void events.push("trainEnd"),
      }],
    });
    const expect = ["trainBegin", "epochBegin 0", "epochEnd 0", "epochBegin 1", "epochEnd 1"]
      .concat(["epochBegin 2", "epochEnd 2", "trainEnd"]);
    if (events.join("|") !== expect.join("|")) throw new Error(`events: ${events.join(" | ")}`);
    const steps = Math.ceil((N - Math.floor(N * 0.2)) / B); // 32 training rows: 4 steps
    for (let e = 0; e < E; e++) {
      const mine = batchLogs.filter((b) => b.epoch === e);
      if (mine.length === 0) throw new Error(`onBatchEnd never called in epoch ${e}`);
      const idx = mine.map((b) => b.batch);
      if (idx.some((b, i) => b < 0 || b >= steps || (i > 0 && b <= idx[i - 1]))) {
        throw new Error(`epoch ${e}: batch indices ${idx}`);
      }
      const last = mine[mine.length - 1];
      if (last.batch !== steps - 1) throw new Error(`epoch ${e}: last batch ${last.batch}`);
      if (!Number.isFinite(last.logs.loss) || !Number.isFinite(last.logs.accuracy)) {
        throw new Error(`epoch ${e}: batch logs ${JSON.stringify(last.logs)}`);
      }
      // The last batch's running figures are the epoch's.
      assertClose([last.logs.loss], [h.history.loss[e]], { atol: 0, rtol: 0 }, `epoch ${e} loss`);
      for (const k of ["loss", "accuracy", "val_loss", "val_accuracy"]) {
        if (epochLogs[e][k] !== h.history[k][e]) {
          throw new Error(
            `epoch ${e}: onEpochEnd ${k} ${epochLogs[e][k]}, History ${h.history[k][e]}`,
          );
        }
      }
    }
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// (8) Bad input

Deno.test("train: bad inputs are clear WgradErrors that change nothing and leak nothing", async () => {
  const N = 10, F = SPEC.features;
  const { x, y } = makeData(N, F, SPEC.classes, 15);
  const model = mlp(SPEC, 21);
  const name = 'model "sequential"';
  try {
    await assertRejectsWgrad(() => model.fit(x, y, { verbose: 0 }), "value", [
      `${name}.fit`,
      "compile",
    ], "fit before compile");
    await assertRejectsWgrad(
      () => model.evaluate(x, y),
      "value",
      ["compile"],
      "evaluate before compile",
    );
    compileMlp(model, optim.sgd({ learningRate: 0.1 }));
    // One good fit first, so that the arena and the optimizer's state exist before counting.
    await model.fit(x, y, { verbose: 0 });
    await flush();
    const before = memoryInfo().buffersInUse;
    const weights = await model.getWeights();
    const fit = (...args: Parameters<nn.Sequential["fit"]>) => () => model.fit(...args);

    const badLabels = Int32Array.from(y);
    badLabels[7] = 3;
    await assertRejectsWgrad(fit(x, badLabels, { verbose: 0 }), "value", [
      "label 3 of sample 7",
      "[0, 3)",
    ], "label 3 of 3 classes (Int32Array)");
    const neg = Array.from(y);
    neg[2] = -1;
    await assertRejectsWgrad(fit(x, neg, { verbose: 0 }), "value", [
      "label -1 of sample 2",
      "[0, 3)",
    ], "label -1");
    const frac = Array.from(y);
    frac[4] = 1.5;
    await assertRejectsWgrad(
      fit(x, frac, { verbose: 0 }),
      "value",
      ["label 1.5 of sample 4"],
      "label 1.5",
    );
    const yt = tensor(badLabels);
    const xt = tensor(x, [N, F]) as Tensor<"f32">;
    try {
      await assertRejectsWgrad(fit(xt, yt, { verbose: 0 }), "value", [
        "label 3 of sample 7",
        "[0, 3)",
      ], "label tensor");
      await assertRejectsWgrad(
        () => model.evaluate(xt, yt),
        "value",
        ["label 3 of sample 7"],
        "evaluate with a label tensor out of range",
      );
      await assertRejectsWgrad(
        fit(x, y, { verbose: 0, validationData: [x, badLabels] }),
        "value",
        ["validationData", "label 3 of sample 7"],
        "validation labels out of range",
      );
      const fy = tensor(Float32Array.from(y), [N]) as Tensor<"f32">;
      await assertRejectsWgrad(
        fit(xt, fy, { verbose: 0 }),
        "dtype",
        ["i32", "f32"],
        "f32 label tensor",
      );
      fy.dispose();
    } finally {
      yt.dispose();
      xt.dispose();
    }

    const wrongNested = Array.from({ length: N }, () => [1, 2, 3]);
    await assertRejectsWgrad(fit(wrongNested, y, { verbose: 0 }), "shape", [
      "[10, 3]",
      "(None, 4)",
    ], "rows of 3 features for a model of 4");
    await assertRejectsWgrad(fit(x.subarray(0, 38), y, { verbose: 0 }), "shape", [
      "38",
      "[4]",
    ], "38 floats for samples of 4");
    const x3 = tensor(new Float32Array(N * 3), [N, 3]) as Tensor<"f32">;
    try {
      await assertRejectsWgrad(
        fit(x3, y, { verbose: 0 }),
        "shape",
        ["[10, 3]", "(None, 4)"],
        "tensor [10, 3]",
      );
      await assertRejectsWgrad(
        () => model.predict(x3),
        "shape",
        ["[10, 3]", "(None, 4)"],
        "predict [10, 3]",
      );
    } finally {
      x3.dispose();
    }
    for (const b of [0, 2.5, -1]) {
      await assertRejectsWgrad(fit(x, y, { batchSize: b, verbose: 0 }), "value", [
        "batchSize",
        String(b),
      ], `batchSize ${b}`);
      await assertRejectsWgrad(
        () => model.evaluate(x, y, { batchSize: b }),
        "value",
        ["batchSize"],
        `evaluate batchSize ${b}`,
      );
      await assertRejectsWgrad(
        () => model.predict(x, { batchSize: b }),
        "value",
        ["batchSize"],
        `predict batchSize ${b}`,
      );
    }
    for (const s of [1, 1.5, -0.1]) {
      await assertRejectsWgrad(fit(x, y, { validationSplit: s, verbose: 0 }), "value", [
        "validationSplit",
        String(s),
      ], `validationSplit ${s}`);
    }
    await assertRejectsWgrad(fit(x, y.slice(0, 9), { verbose: 0 }), "shape", [
      "10 input samples",
      "9",
    ], "9 labels for 10 samples");
    await assertRejectsWgrad(
      fit(x, [...y, 0], { verbose: 0 }),
      "shape",
      ["10 input samples", "11"],
      "11 labels",
    );
    await assertRejectsWgrad(
      fit(x, y, { epochs: 1.5, verbose: 0 }),
      "value",
      ["epochs", "1.5"],
      "epochs 1.5",
    );

    // Names: unknown losses, optimizers and metrics list the known ones.
    const m2 = mlp(SPEC, 22);
    try {
      const compile = (o: Partial<Parameters<nn.Sequential["compile"]>[0]>) => () =>
        m2.compile({ optimizer: "sgd", loss: logits(), ...o });
      assertWgradError(compile({ loss: "hinge" }), "value", [
        '"hinge"',
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",
        "mean_squared_error",
      ], "unknown loss");
      assertWgradError(compile({ optimizer: "adadelta" }), "value", [
        '"adadelta"',
        "adam",
        "sgd",
        "rmsprop",
        "adagrad",
      ], "unknown optimizer");
      assertWgradError(compile({ metrics: ["f1"] }), "value", [
        '"f1"',
        "accuracy",
        "sparse_categorical_accuracy",
      ], "unknown metric");
      // Keras's names work.
      m2.compile({ optimizer: "Adam", loss: "sparse_categorical_crossentropy", metrics: ["acc"] });
      m2.compile({ optimizer: "rmsprop", loss: "sparseCategoricalCrossentropy" });
    } finally {
      m2.dispose();
    }

    await flush();
    const after = memoryInfo().buffersInUse;
    if (after !== before) {
      throw new Error(`buffers in use: ${before} before the errors, ${after} after`);
    }
    const now = await model.getWeights();
    now.forEach((w, i) => assertEqualArrays(w, weights[i], `weight ${i} after the refused calls`));
    // The model still trains.
    const h = await model.fit(x, y, { epochs: 1, verbose: 0 });
    if (!Number.isFinite(h.history.loss[0])) throw new Error("training after the errors failed");
  } finally {
    model.dispose();
  }
});

Deno.test("train: NaN inputs give a NaN loss, and fit throws naming the epoch and step", async () => {
  const N = 24, F = SPEC.features;
  const { x, y } = makeData(N, F, SPEC.classes, 16);
  const bad = x.slice();
  bad[17 * F + 2] = NaN; // sample 17: in the third batch of 8
  // tanh, sigmoid, elu, gelu and linear hidden layers carry the NaN to the loss.
  const model = mlp({ ...SPEC, act: "tanh" }, 23);
  try {
    compileMlp(model, optim.sgd({ learningRate: 0.1 }));
    // Typed-array inputs are scanned on the CPU before any GPU work: the sample is named.
    await assertRejectsWgrad(
      () => model.fit(bad, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 }),
      "value",
      ["NaN", "sample 17", "feature 2"],
      "NaN in typed-array inputs",
    );
    // A tensor is not scanned: the loss guard stops training at the NaN.
    const badTensor = tensor(bad, [N, F]);
    const e = await assertRejectsWgrad(
      () => model.fit(badTensor, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 }),
      "value",
      ["NaN", "epoch 1", "step"],
      "NaN in tensor inputs",
    ).finally(() => badTensor.dispose());
    const m = /step (\d+) of (\d+)/.exec(e.message);
    if (!m || Number(m[2]) !== 3 || Number(m[1]) < 3) {
      throw new Error(`the message does not name step 3 of 3: ${e.message}`);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("train: NaN inputs to a relu layer are not trained on silently", async () => {
  // relu(NaN) must not be 0 with the NaN left to reach the weights through dW = xᵀ·dz: fit must
  // refuse the inputs (or stop at the NaN), never return with NaN weights and a finite loss.
  const N = 24, F = SPEC.features;
  const { x, y } = makeData(N, F, SPEC.classes, 16);
  const bad = x.slice();
  bad[17 * F + 2] = NaN;
  const model = mlp(SPEC, 23); // Dense(6, relu) → Dense(3)
  try {
    compileMlp(model, optim.sgd({ learningRate: 0.1 }));
    let outcome = "";
    try {
      const h = await model.fit(bad, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
      const nan = (await model.getWeights()).map((w) => w.filter(Number.isNaN).length);
      outcome = `fit returned: loss ${h.history.loss.join(", ")}, NaN weights per tensor ${nan}`;
    } catch (e) {
      if (!(e instanceof WgradError) || !e.message.includes("NaN")) throw e;
    }
    if (outcome) throw new Error(`NaN input with a relu layer: ${outcome}`);
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// (10) Memory

Deno.test("train: fit, evaluate and predict leave no GPU buffers behind (3 rounds, then dispose)", async () => {
  const { x, y } = makeData(40, SPEC.features, SPEC.classes, 17);
  const v = makeData(12, SPEC.features, SPEC.classes, 18);
  await flush();
  const base = memoryInfo().buffersInUse;
  const baseBytes = memoryInfo().bytesInUse;
  const model = mlp({ ...SPEC, dropout: 0.25 }, 24);
  const opt = optim.adam({ learningRate: 0.01 });
  const levels: number[] = [];
  try {
    compileMlp(model, opt);
    for (let round = 0; round < 3; round++) {
      await model.fit(x, y, { epochs: 2, batchSize: 16, validationData: [v.x, v.y], verbose: 0 });
      await model.fit(x, y, { epochs: 1, batchSize: 8, validationSplit: 0.2, verbose: 0 });
      await model.evaluate(x, y, { batchSize: 16 });
      const p = await model.predict(x, { batchSize: 16 });
      p.dispose();
      await flush();
      levels.push(memoryInfo().buffersInUse);
    }
  } finally {
    model.dispose();
    opt.dispose();
  }
  if (levels[1] !== levels[0] || levels[2] !== levels[0]) {
    throw new Error(`buffers in use after each round: ${levels.join(", ")} (grows)`);
  }
  await flush();
  const end = memoryInfo();
  if (end.buffersInUse !== base || end.bytesInUse !== baseBytes) {
    throw new Error(
      `after model.dispose() and optimizer.dispose(): ${end.buffersInUse} buffers ` +
        `(${end.bytesInUse} bytes) in use, ${base} (${baseBytes} bytes) before the model`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// (11) Bytes

Deno.test("train: fit takes { x: bytes, y: labels } (a DataSplit) and normalises by 1/255", async () => {
  const N = 40, shape = [2, 3], F = 6, C = 3, B = 8;
  const rng = new Rng(19);
  const bytes = Uint8Array.from({ length: N * F }, () => rng.int(0, 255));
  const labels = Uint8Array.from({ length: N }, (_, i) => (bytes[i * F] + bytes[i * F + 4]) % C);
  const floats = Float32Array.from(bytes, (b) => b / 255);
  const spec: MlpSpec = { features: F, hidden: 5, classes: C, act: "tanh" };
  const make = () =>
    nn.sequential([
      nn.flatten(),
      nn.dense(spec.hidden, { activation: "tanh" }),
      nn.dense(C),
    ], { inputShape: shape, seed: 25 });
  const split = new datasets.DataSplit(bytes, labels, shape, C);
  const results: Float32Array[][] = [];
  const histories: number[][] = [];
  // byte·f32(1/255), rounded once: what the GPU's gather computes.
  const gathered = Float32Array.from(bytes, (b) => Math.fround(b * Math.fround(1 / 255)));
  for (const input of ["plain", "split", "floats", "gathered"] as const) {
    const model = make();
    try {
      compileMlp(model, optim.adam({ learningRate: 0.05 }));
      const opts = { epochs: 2, batchSize: B, shuffle: false, verbose: 0 as const };
      const h = input === "plain"
        ? await model.fit({ x: bytes, y: labels }, opts)
        : input === "split"
        ? await model.fit(split, opts)
        : await model.fit(input === "floats" ? floats : gathered, Int32Array.from(labels), opts);
      results.push(await model.getWeights());
      histories.push(h.history.loss);
      if (input === "floats") {
        // evaluate and predict take bytes too.
        const rb = await model.evaluate(split);
        const rf = await model.evaluate(floats, Int32Array.from(labels));
        assertClose([rb.loss, rb.accuracy], [rf.loss, rf.accuracy], BYTES_TOL, "evaluate bytes");
        const pb = await model.predict(bytes);
        const pf = await model.predict(floats);
        assertShape(pb.shape, [N, C], "predict of bytes");
        assertClose(await pb.data(), await pf.data(), BYTES_TOL, "predict bytes vs floats");
        pb.dispose();
        pf.dispose();
      }
    } finally {
      model.dispose();
    }
  }
  results[1].forEach((w, i) =>
    assertEqualArrays(w, results[0][i], `DataSplit vs { x, y }, weight ${i}`)
  );
  results[2].forEach((w, i) =>
    assertClose(results[0][i], w, BYTES_TOL, `bytes vs x/255, weight ${i}`)
  );
  assertClose(histories[0], histories[2], BYTES_TOL, "History loss, bytes vs x/255");
  // Against f32 inputs equal to byte·f32(1/255) the weights are bit-identical (measured).
  results[3].forEach((w, i) =>
    assertEqualArrays(results[0][i], w, `bytes vs byte·f32(1/255), weight ${i}`)
  );
  // Unnormalised bytes would train differently: the check can fail.
  const raw = make();
  try {
    compileMlp(raw, optim.adam({ learningRate: 0.05 }));
    await raw.fit(bytes, Int32Array.from(labels), {
      epochs: 2,
      batchSize: B,
      shuffle: false,
      verbose: 0,
      scale: 1 / 256,
    });
    if (!differs(await raw.getWeights(), results[0], 1e-5)) {
      throw new Error("scale 1/256 trains the same as 1/255: the comparison cannot tell");
    }
  } finally {
    raw.dispose();
  }
});

Deno.test("train: a dense model's compiled step writes its gradients in place (no copies)", async () => {
  const { ready } = await import("../src/gpu/runtime.ts");
  const rt = await ready();
  const labels: string[][] = [];
  const stop = rt.observePlans((p) => {
    if (p.label.startsWith("train step")) {
      labels.push(p.commands.map((c) => `${c.kind} ${c.label}`));
    }
  });
  try {
    const rng = new Rng(5);
    const model = nn.sequential([
      nn.dense(6, { activation: "relu" }),
      nn.dense(3),
    ], { inputShape: [4], seed: 3 });
    model.compile({ optimizer: "adam", loss: "sparse_categorical_crossentropy" });
    const x = tensor(rng.floats(40), [10, 4]);
    const y = tensor(new Int32Array(10).map((_, i) => i % 3), [10]);
    await model.fit(x, y, { epochs: 1, batchSize: 5, verbose: 0 });
    x.dispose();
    y.dispose();
    model.dispose();
  } finally {
    stop();
  }
  if (labels.length !== 1) {
    throw new Error(`expected one captured train step, got ${labels.length}`);
  }
  const cmds = labels[0];
  const copies = cmds.filter((c) => !c.startsWith("dispatch"));
  if (copies.length) throw new Error(`copies or clears in the train step:\n${copies.join("\n")}`);
  // gather x, gather y, 2 forward, loss, dX, dW(+db) ×2, relu gradient, optimizer (the ones
  // seed is never filled: the fused loss gradient does not read it).
  if (cmds.length > 10) throw new Error(`${cmds.length} dispatches:\n${cmds.join("\n")}`);
});

Deno.test("train: one submit per training step, and readbacks only every few steps", async () => {
  const { ready } = await import("../src/gpu/runtime.ts");
  const rt = await ready();
  const rng = new Rng(9);
  const n = 64 * 4, batch = 4, steps = n / batch;
  const model = nn.sequential([nn.dense(8, { activation: "relu" }), nn.dense(3)], {
    inputShape: [5],
    seed: 2,
  });
  model.compile({ optimizer: "sgd", loss: "sparse_categorical_crossentropy" });
  const x = tensor(rng.floats(n * 5), [n, 5]);
  const y = tensor(new Int32Array(n).map((_, i) => i % 3), [n]);
  const seen: { submits: number; readbacks: number }[] = [];
  const probe = {
    onEpochBegin: () => void seen.push({ ...rt.counters }),
    onEpochEnd: () => void seen.push({ ...rt.counters }),
  };
  await model.fit(x, y, { epochs: 2, batchSize: batch, verbose: 0, callbacks: [probe] });
  // The second epoch (the step is compiled in the first); onEpochEnd comes after the epoch's
  // last readback, before validation.
  const submits = seen[3].submits - seen[2].submits;
  const readbacks = seen[3].readbacks - seen[2].readbacks;
  // A step: the 16-byte state write (which submits what was recorded before it) and the replay.
  // (Measured: 65 for 64 steps, the extra one the accumulators' reset at the epoch's start.)
  if (submits < steps || submits > steps + 2) {
    throw new Error(`${submits} submits for ${steps} steps: a step must be one submit`);
  }
  // Readbacks of the running loss: every 4 steps at the most often, plus the epoch's end.
  if (readbacks < 1 || readbacks > steps / 4 + 1) {
    throw new Error(`${readbacks} readbacks in an epoch of ${steps} steps`);
  }
  x.dispose();
  y.dispose();
  model.dispose();
});

Deno.test("train: empty data: fit and evaluate refuse it by name, predict gives empty outputs", async () => {
  const model = nn.sequential([nn.dense(4, { activation: "relu" }), nn.dense(3)], {
    inputShape: [5],
    seed: 1,
  });
  model.compile({ optimizer: "adam", loss: "sparse_categorical_crossentropy" });
  const x = tensor(new Float32Array(0), [0, 5]);
  const y = tensor(new Int32Array(0), [0]);
  const x3 = tensor(new Float32Array(15), [3, 5]);
  const y3 = tensor(new Int32Array(3), [3]);
  try {
    const before = await model.getWeights();
    await assertRejectsWgrad(
      () => model.fit(x, y, { verbose: 0 }),
      "value",
      ['model "sequential".fit', "no training samples (x has 0 rows)"],
      "fit on 0 rows",
    );
    await assertRejectsWgrad(
      () => model.fit(x3, y3, { verbose: 0, validationSplit: 0.9 }),
      "value",
      ["3 samples are not enough", "validationSplit 0.9 (0 would train, 3 validate)"],
      "fit with every row held out",
    );
    await assertRejectsWgrad(
      () => model.evaluate(x, y),
      "value",
      ['model "sequential".evaluate', "no samples (x has 0 rows)"],
      "evaluate on 0 rows",
    );
    const after = await model.getWeights();
    after.forEach((w, k) => assertEqualArrays(w, before[k], `weight ${k} after the errors`));
    const out = await model.predict(x);
    assertShape(out.shape, [0, 3], "predict on 0 rows");
    out.dispose();
  } finally {
    for (const t of [x, y, x3, y3]) t.dispose();
    model.dispose();
  }
});
