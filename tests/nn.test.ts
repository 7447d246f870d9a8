/**
 * Layers and Sequential models (src/nn/): output shapes and parameter counts, the Keras summary,
 * build-time errors that name the layer and both shapes, activation and initializer names,
 * getWeights/setWeights, the initializers' distributions, seeded initial weights, the four-pixel
 * camera with hand-set weights, and `model.apply` against a float64 CPU forward pass for every
 * activation (tests/fixtures/nn_reference.ts).
 * @module
 */
import { flush, memoryInfo, nn, type Tensor, tensor, WgradError } from "../mod.ts";
import { Philox } from "../src/random.ts";
import {
  assertClose,
  assertEqualArrays,
  assertShape,
  assertWgradError,
  EPS,
  Rng,
  type Tolerance,
} from "./harness.ts";
import {
  activateRows,
  type ActName,
  defaultAlphaOf,
  denseRefs,
  flatNumbers,
  forwardF64,
  FOUR_PIXEL_LAYERS,
  fourPixelWeights,
} from "./fixtures/nn_reference.ts";

// Tolerances.
//
// FORWARD_TOL (model.apply against float64): inputs in [−2, 2] and glorot weights give values of
// order 1. Each Dense output is an f32 dot product of ≤ 7 terms (≤ 7 ulps of Σ|x||w| ≈ 1e-6) and
// an f32 activation: exp/tanh within 3 + 2|x| ulps (WGSL), erf's fit within 1.2e-7 absolute. Two
// layers and a softmax compound that to a few 1e-6 at most; 2e-5 absolute plus 2e-5 relative is
// ~10× that margin and still 1000× smaller than any mistake in a formula (a wrong alpha, elu vs.
// leaky relu, gelu vs. its tanh form differ by > 1e-3 on these inputs).
const FORWARD_TOL: Tolerance = { atol: 2e-5, rtol: 2e-5 };
// CAMERA_TOL: the example prints (0.178, 0.178, 0.178, 0.465), rounded to 3 decimals; the brief
// asks for agreement to 1e-3. The exact float64 values are checked to FORWARD_TOL besides.
const CAMERA_TOL: Tolerance = { atol: 1e-3, rtol: 0 };
// Initializer statistics: N = 20,000 samples per weight. The sample mean's standard error is
// σ/√N, the sample standard deviation's about σ·√((κ − 1)/4N) (κ ≤ 3 is the kurtosis, so
// ≤ σ·0.5%). We allow 5 standard errors: a false failure has probability < 1e-6, while a missing
// truncation correction (std off by 12–14%) or a wrong fan (off by ≥ 20%) fails by far.
const STAT_SAMPLES_SHAPE = [100, 200];
const STD_RTOL = 5 * Math.sqrt(2 / (4 * 20000)); // 2.5%
const MEAN_SE = 5 / Math.sqrt(20000);

// ---------------------------------------------------------------------------------------------
// Helpers

/** Applies `model` to `x` [rows, ...inputShape] and reads the result back. */
async function applyData(
  model: nn.Sequential,
  x: Float32Array,
  shape: number[],
): Promise<{ data: Float32Array; shape: number[] }> {
  const xt = tensor(x, shape) as Tensor<"f32">;
  const y = model.apply(xt);
  try {
    return { data: await y.data() as Float32Array, shape: [...y.shape] };
  } finally {
    y.dispose();
    xt.dispose();
  }
}

function fashionMlp(): nn.Sequential {
  return nn.sequential([
    nn.flatten(),
    nn.dense(128, { activation: "relu" }),
    nn.dense(10),
  ], { inputShape: [28, 28] });
}

function stats(v: ArrayLike<number>): { mean: number; std: number; maxAbs: number } {
  let s = 0, m = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i];
    m = Math.max(m, Math.abs(v[i]));
  }
  const mean = s / v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / v.length), maxAbs: m };
}

// ---------------------------------------------------------------------------------------------
// Shapes, parameter counts, summary

Deno.test("nn: the Fashion MLP's names, shapes, parameter counts and Keras summary", async () => {
  const model = fashionMlp();
  try {
    const names = model.layers.map((l) => l.name).join(",");
    if (names !== "flatten,dense,dense_1") throw new Error(`layer names: ${names}`);
    assertShape(model.layers[0].outputShape!, [784], "flatten output");
    assertShape(model.layers[1].outputShape!, [128], "dense output");
    assertShape(model.layers[2].outputShape!, [10], "dense_1 output");
    assertShape(model.outputShape, [10], "model output");
    assertEqualArrays(
      model.layers.map((l) => l.paramCount),
      [0, 784 * 128 + 128, 128 * 10 + 10],
      "parameters per layer",
    );
    if (model.countParams() !== 101_770) {
      throw new Error(`countParams ${model.countParams()}, expected 101,770`);
    }
    let printed = "";
    const text = model.summary((s) => (printed += s));
    if (printed !== text) throw new Error("summary(print) printed something else than it returned");
    const lines = text.split("\n");
    const need = (re: RegExp, what: string) => {
      if (!lines.some((l) => re.test(l))) throw new Error(`summary lacks ${what}:\n${text}`);
    };
    need(/^Model: "sequential"$/, 'the title Model: "sequential"');
    need(/^Layer \(type\)\s+Output Shape\s+Param #$/, "the header");
    need(/^flatten \(Flatten\)\s+\(None, 784\)\s+0$/, "the flatten row");
    need(/^dense \(Dense\)\s+\(None, 128\)\s+100,?480$/, "the dense row");
    need(/^dense_1 \(Dense\)\s+\(None, 10\)\s+1,?290$/, "the dense_1 row");
    need(/^ ?Total params: 101,770 \(397\.54 KB\)$/, "Total params: 101,770 (397.54 KB)");
    need(/^ ?Trainable params: 101,770 \(397\.54 KB\)$/, "Trainable params: 101,770");
    need(/^ ?Non-trainable params: 0 \(0\.00 B\)$/, "Non-trainable params: 0");
    // Rows in layer order.
    const at = (s: string) => lines.findIndex((l) => l.startsWith(s));
    if (!(at("flatten ") < at("dense ") && at("dense ") < at("dense_1 "))) {
      throw new Error(`summary rows out of order:\n${text}`);
    }
    // The weights have the shapes the counts promise.
    const w = await model.getWeights();
    assertEqualArrays(w.map((a) => a.length), [784 * 128, 128, 1280, 10], "weight sizes");
    const entries = model.weightEntries.map((e) => `${e.name} [${e.tensor.shape.join(", ")}]`);
    const expect = [
      "dense/kernel [784, 128]",
      "dense/bias [128]",
      "dense_1/kernel [128, 10]",
      "dense_1/bias [10]",
    ];
    if (entries.join("; ") !== expect.join("; ")) {
      throw new Error(`weight entries: ${entries.join("; ")}`);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("nn: Reshape, Activation, Dropout, Flatten: shapes, counts, names, applied shapes", async () => {
  const model = nn.sequential([
    nn.reshape([3, 4]),
    nn.dense(5),
    nn.activation("relu"),
    nn.dropout(0.5),
    nn.reshape([-1]),
    nn.dense(2, { useBias: false }),
    nn.reshape([1, 2, 1]),
    nn.flatten(),
  ], { inputShape: [12] });
  try {
    const rows = model.layers.map((l) =>
      `${l.name}:${l.className}:(${l.outputShape!.join(",")}):${l.paramCount}`
    );
    const expect = [
      "reshape:Reshape:(3,4):0",
      "dense:Dense:(3,5):25",
      "activation:Activation:(3,5):0",
      "dropout:Dropout:(3,5):0",
      "reshape_1:Reshape:(15):0",
      "dense_1:Dense:(2):30",
      "reshape_2:Reshape:(1,2,1):0",
      "flatten:Flatten:(2):0",
    ];
    if (rows.join(" ") !== expect.join(" ")) {
      throw new Error(`layers:\n  got      ${rows.join(" ")}\n  expected ${expect.join(" ")}`);
    }
    if (model.countParams() !== 55) throw new Error(`countParams ${model.countParams()}, not 55`);
    const text = model.summary(null);
    for (const s of ["(None, 3, 4)", "(None, 3, 5)", "(None, 15)", "(None, 1, 2, 1)"]) {
      if (!text.includes(s)) throw new Error(`summary lacks ${s}:\n${text}`);
    }
    if (!/Total params: 55 \(220\.00 B\)/.test(text)) {
      throw new Error(`summary total: expected 55 (220.00 B):\n${text}`);
    }
    const x = new Rng(1).floats(7 * 12);
    const y = await applyData(model, x, [7, 12]);
    assertShape(y.shape, [7, 2], "applied output");
  } finally {
    model.dispose();
  }
});

Deno.test("nn: explicit names are kept and generated names step around them", () => {
  const a = nn.sequential([nn.dense(2, { name: "dense" }), nn.dense(2), nn.dense(2)], {
    inputShape: [3],
  });
  const b = nn.sequential([nn.dense(2), nn.dense(2, { name: "dense" }), nn.dense(2)], {
    inputShape: [3],
  });
  try {
    const an = a.layers.map((l) => l.name).join(",");
    const bn = b.layers.map((l) => l.name).join(",");
    if (an !== "dense,dense_1,dense_2") throw new Error(`names ${an}`);
    if (bn !== "dense_1,dense,dense_2") throw new Error(`names ${bn}`);
    // Names are per model: a second model starts again at "dense".
  } finally {
    a.dispose();
    b.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Build errors

Deno.test("nn: build errors name the layer and both shapes, and leave nothing allocated", async () => {
  await flush();
  const before = memoryInfo().buffersInUse;
  assertWgradError(
    () => nn.sequential([nn.dense(4), nn.reshape([5])], { inputShape: [3] }),
    "shape",
    ['layer "reshape" (Reshape)', "(None, 4)", "(None, 5)", "4 values"],
    "Reshape size mismatch",
  );
  assertWgradError(
    () => nn.sequential([nn.reshape([-1, -1])], { inputShape: [6] }),
    "shape",
    ['layer "reshape" (Reshape)', "(None, 6)", "(None, -1, -1)"],
    "Reshape with two unknown dimensions",
  );
  assertWgradError(
    () => nn.sequential([nn.reshape([-1, 4])], { inputShape: [6] }),
    "shape",
    ['layer "reshape" (Reshape)', "(None, 6)", "(None, -1, 4)"],
    "Reshape whose -1 cannot be resolved",
  );
  assertWgradError(
    () => nn.sequential([nn.dense(3)], { inputShape: [] }),
    "shape",
    ['layer "dense" (Dense)', "(None)"],
    "Dense on a rank-0 input",
  );
  assertWgradError(
    () => nn.sequential([nn.dense(3, { name: "a" }), nn.dense(2, { name: "a" })]),
    "value",
    ['two layers are named "a"'],
    "two layers with one name",
  );
  for (const bad of [[0, 4], [4, 0], [2.5], [-1]]) {
    assertWgradError(
      () => nn.sequential([nn.flatten(), nn.dense(2)], { inputShape: bad }),
      "shape",
      ["inputShape", String(bad)],
      `inputShape [${bad}]`,
    );
  }
  assertWgradError(() => nn.dense(0), "value", ["units", "0"], "Dense with 0 units");
  assertWgradError(() => nn.dense(2.5), "value", ["units", "2.5"], "Dense with 2.5 units");
  assertWgradError(() => nn.dropout(1), "value", ["rate", "1"], "Dropout rate 1");
  assertWgradError(() => nn.dropout(-0.1), "value", ["rate", "-0.1"], "Dropout rate -0.1");
  assertWgradError(() => nn.sequential([]), "value", ["at least one layer"], "no layers");

  // An unbuilt model says what is missing; building it later works; a second shape is refused.
  const m = nn.sequential([nn.dense(2)]);
  try {
    if (m.built) throw new Error("a model without inputShape reports built");
    assertWgradError(() => m.summary(null), "value", ["built", "inputShape"], "summary unbuilt");
    await assertRejectsAsync(() => m.getWeights(), "getWeights unbuilt");
    m.build([3]);
    assertShape(m.outputShape, [2], "built later");
    m.build([3]); // the same shape again is fine
    assertWgradError(
      () => m.build([4]),
      "shape",
      ["(None, 3)", "(None, 4)"],
      "build for another shape",
    );
  } finally {
    m.dispose();
  }
  await flush();
  const after = memoryInfo().buffersInUse;
  if (after !== before) {
    throw new Error(`buffers in use ${before} before the failed builds, ${after} after`);
  }
});

async function assertRejectsAsync(fn: () => Promise<unknown>, label: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof WgradError) return;
    throw new Error(`${label}: expected a WgradError, got ${String(e)}`);
  }
  throw new Error(`${label}: expected an error`);
}

Deno.test("nn: unknown activation and initializer names list the known ones", () => {
  const acts = [
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "elu",
    "leaky_relu",
    "gelu",
    "softmax",
  ];
  const e1 = assertWgradError(
    () => nn.dense(3, { activation: "swish" }),
    "value",
    ['"swish"', ...acts],
    "Dense activation swish",
  );
  for (const a of nn.ACTIVATIONS) {
    if (!e1.message.includes(a)) throw new Error(`message lacks known activation ${a}`);
  }
  assertWgradError(() => nn.activation("softplus"), "value", ['"softplus"', ...acts], "Activation");
  const inits = [
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "zeros",
    "ones",
    "random_normal",
  ];
  assertWgradError(
    () => nn.dense(3, { kernelInitializer: "orthogonal" }),
    "value",
    ['"orthogonal"', ...inits],
    "kernelInitializer orthogonal",
  );
  assertWgradError(
    () => nn.dense(3, { biasInitializer: "bogus" }),
    "value",
    ['"bogus"', ...inits],
    "biasInitializer bogus",
  );
  // Keras's other spellings are accepted.
  const l1 = nn.dense(3, { activation: "leakyRelu", kernelInitializer: "heNormal" });
  const l2 = nn.dense(3, { activation: "LeakyReLU" as string, kernelInitializer: "HeNormal" });
  if (l1.activation !== "leaky_relu" || l2.activation !== "leaky_relu") {
    throw new Error(`aliases: ${l1.activation}, ${l2.activation}`);
  }
  if (l1.kernelInitializer.className !== "HeNormal") {
    throw new Error(`heNormal resolved to ${l1.kernelInitializer.className}`);
  }
  const plain = nn.dense(3);
  if (plain.activation !== "linear" || plain.kernelInitializer.className !== "GlorotUniform") {
    throw new Error("Dense defaults are not linear / glorot_uniform");
  }
  if (plain.biasInitializer.className !== "Zeros") throw new Error("bias default is not zeros");
});

// ---------------------------------------------------------------------------------------------
// getWeights / setWeights

Deno.test("nn: getWeights/setWeights round trip; wrong counts and shapes name the weight", async () => {
  const model = nn.sequential([nn.dense(3, { activation: "relu" }), nn.dense(2)], {
    inputShape: [4],
  });
  try {
    const rng = new Rng(7);
    const values = [rng.floats(12), rng.floats(3), rng.floats(6), rng.floats(2)];
    model.setWeights(values);
    const back = await model.getWeights();
    values.forEach((v, i) => assertEqualArrays(back[i], v, `weight ${i} after setWeights`));

    // Nested arrays of the right shapes work too.
    const nested = [
      [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]],
      [0.5, -0.5, 0.25],
      [[1, 0], [0, 1], [1, 1]],
      [3, -3],
    ];
    model.setWeights(nested);
    const back2 = await model.getWeights();
    nested.forEach((v, i) =>
      assertEqualArrays(back2[i], flatNumbers(v), `nested weight ${i} after setWeights`)
    );

    const e = assertWgradError(
      () => model.setWeights(values.slice(0, 3)),
      "value",
      ["expected 4", "got 3", "dense/kernel", "dense_1/bias"],
      "setWeights with 3 arrays",
    );
    if (!e.message.includes("[4, 3]")) throw new Error(`count message lacks shapes: ${e.message}`);
    assertWgradError(
      () => model.setWeights([values[0], values[1], rng.floats(5), values[3]]),
      "shape",
      ["dense_1/kernel", "[3, 2]", "6 values", "5 values"],
      "setWeights with 5 values for a [3, 2] kernel",
    );
    assertWgradError(
      () => model.setWeights([nested[0], nested[1], [[1, 0, 1], [0, 1, 1]], nested[3]]),
      "shape",
      ["dense_1/kernel", "[3, 2]", "[2, 3]"],
      "setWeights with a [2, 3] array for a [3, 2] kernel",
    );
    assertWgradError(
      () => model.setWeights([values[0], [[0.5, -0.5, 0.25]], values[2], values[3]]),
      "shape",
      ["dense/bias", "[3]", "[1, 3]"],
      "setWeights with a [1, 3] array for a [3] bias",
    );
    // A refused call changes nothing, not even the weights before the bad one.
    const still = await model.getWeights();
    nested.forEach((v, i) =>
      assertEqualArrays(still[i], flatNumbers(v), `weight ${i} after refused setWeights`)
    );
  } finally {
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Initializers

Deno.test("nn: glorotUniform lies in ±sqrt(6/(fanIn+fanOut)) with the uniform's moments", () => {
  const [fanIn, fanOut] = STAT_SAMPLES_SHAPE;
  const v = nn.initializers.glorotUniform().values(STAT_SAMPLES_SHAPE, new Philox(11));
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const s = stats(v);
  if (s.maxAbs > limit) throw new Error(`|w| up to ${s.maxAbs} > limit ${limit}`);
  if (s.maxAbs < 0.999 * limit) throw new Error(`|w| only up to ${s.maxAbs}, limit ${limit}`);
  const std = limit / Math.sqrt(3);
  assertClose([s.std], [std], { atol: 0, rtol: STD_RTOL }, "glorotUniform std");
  assertClose([s.mean], [0], { atol: MEAN_SE * std, rtol: 0 }, "glorotUniform mean");
  // heUniform: ±sqrt(6/fanIn).
  const h = stats(nn.initializers.heUniform().values(STAT_SAMPLES_SHAPE, new Philox(12)));
  const hl = Math.sqrt(6 / fanIn);
  if (h.maxAbs > hl || h.maxAbs < 0.999 * hl) throw new Error(`heUniform max ${h.maxAbs}, ${hl}`);
});

Deno.test("nn: heNormal, glorotNormal, lecunNormal: truncated at 2σ with the target std", () => {
  const [fanIn, fanOut] = STAT_SAMPLES_SHAPE;
  // Keras draws from a normal of stddev target/0.87962566 truncated at two of its stddevs, so
  // the samples' std is the target (sqrt(2/fanIn) for he, sqrt(2/(fanIn+fanOut)) for glorot).
  const cases = [
    { name: "heNormal", init: nn.initializers.heNormal(), target: Math.sqrt(2 / fanIn) },
    {
      name: "glorotNormal",
      init: nn.initializers.glorotNormal(),
      target: Math.sqrt(2 / (fanIn + fanOut)),
    },
    { name: "lecunNormal", init: nn.initializers.lecunNormal(), target: Math.sqrt(1 / fanIn) },
  ];
  for (const [k, c] of cases.entries()) {
    const v = c.init.values(STAT_SAMPLES_SHAPE, new Philox(21 + k));
    const s = stats(v);
    const sigma = c.target / 0.87962566103423978;
    const bound = 2 * sigma;
    if (s.maxAbs > bound * (1 + EPS)) {
      throw new Error(`${c.name}: |w| up to ${s.maxAbs} beyond 2σ = ${bound}`);
    }
    // ~1.2% of a normal lies between 1.9σ and 2σ: 20,000 samples reach there.
    if (s.maxAbs < 0.95 * bound) {
      throw new Error(`${c.name}: |w| only up to ${s.maxAbs} (2σ ${bound})`);
    }
    assertClose([s.std], [c.target], { atol: 0, rtol: STD_RTOL }, `${c.name} std`);
    assertClose([s.mean], [0], { atol: MEAN_SE * c.target, rtol: 0 }, `${c.name} mean`);
  }
});

Deno.test("nn: a model's initializers follow its layers' options (he_normal kernel, ones bias)", async () => {
  const model = nn.sequential([
    nn.dense(200, { kernelInitializer: "he_normal", biasInitializer: "ones" }),
    nn.dense(3, { kernelInitializer: nn.initializers.constant(0.25) }),
  ], { inputShape: [100] });
  try {
    const [k1, b1, k2, b2] = await model.getWeights();
    const s = stats(k1);
    assertClose([s.std], [Math.sqrt(2 / 100)], { atol: 0, rtol: STD_RTOL }, "he_normal std");
    if (s.maxAbs > 2 * Math.sqrt(2 / 100) / 0.87962566103423978 * (1 + EPS)) {
      throw new Error(`he_normal kernel not truncated: ${s.maxAbs}`);
    }
    assertEqualArrays(b1, new Float32Array(200).fill(1), "ones bias");
    assertEqualArrays(k2, new Float32Array(600).fill(0.25), "constant kernel");
    assertEqualArrays(b2, new Float32Array(3), "zeros bias");
  } finally {
    model.dispose();
  }
});

Deno.test("nn: the same seed gives identical initial weights; other seeds differ", async () => {
  const make = (seed?: number) =>
    nn.sequential([
      nn.dense(6, { activation: "tanh" }),
      nn.dense(3, { kernelInitializer: "he_normal" }),
    ], {
      inputShape: [5],
      seed,
    });
  const models = [make(7), make(7), make(8), make(), make()];
  try {
    const [a, b, c, d, e] = await Promise.all(models.map((m) => m.getWeights()));
    for (let i = 0; i < 4; i += 2) {
      assertEqualArrays(b[i], a[i], `seed 7, kernel ${i / 2}`);
      assertEqualArrays(e[i], d[i], `default seed, kernel ${i / 2}`);
      const same = c[i].every((v, j) => v === a[i][j]);
      if (same) throw new Error(`seeds 7 and 8 give the same kernel ${i / 2}`);
      const sameD = d[i].every((v, j) => v === a[i][j]);
      if (sameD) throw new Error(`the default seed gives seed 7's kernel ${i / 2}`);
    }
    // Two kernels of one model are not copies of each other's stream.
    if (a[0].slice(0, 6).every((v, j) => v === a[2][j])) {
      throw new Error("the two layers' kernels start with the same values");
    }
  } finally {
    for (const m of models) m.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Forward passes

Deno.test("nn: the four-pixel camera with hand-set weights predicts (0.178, 0.178, 0.178, 0.465)", async () => {
  const model = nn.sequential(
    FOUR_PIXEL_LAYERS.map((l) => nn.dense(l.units, { activation: l.act })),
    { inputShape: [4], seed: 3, name: "four_pixel_camera" },
  );
  try {
    const weights = fourPixelWeights();
    model.setWeights(weights);
    const x = Float32Array.from([1, 1, -1, -1]);
    const p = await model.predict(tensor([[1, 1, -1, -1]]));
    const pd = await p.data();
    assertShape(p.shape, [1, 4], "predict shape");
    p.dispose();
    assertClose(pd, [0.178, 0.178, 0.178, 0.465], CAMERA_TOL, "hand-set camera, horizontal");
    const ref = forwardF64(
      x,
      1,
      4,
      FOUR_PIXEL_LAYERS.map((l, i) => ({
        kernel: flatNumbers(weights[2 * i]),
        bias: flatNumbers(weights[2 * i + 1]),
        units: l.units,
        act: l.act,
      })),
    );
    assertClose(pd, ref, FORWARD_TOL, "hand-set camera against float64");
    const applied = await applyData(model, x, [1, 4]);
    assertClose(applied.data, ref, FORWARD_TOL, "model.apply of the camera");
  } finally {
    model.dispose();
  }
});

const ALL_ACTS: ActName[] = [
  "linear",
  "relu",
  "sigmoid",
  "tanh",
  "elu",
  "leaky_relu",
  "gelu",
  "gelu_tanh",
  "softmax",
];

Deno.test("nn: model.apply equals a float64 forward pass for every Dense activation", async () => {
  const rows = 33, inF = 6;
  for (const [k, act] of ALL_ACTS.entries()) {
    for (const units of act === "softmax" ? [5, 20] : [5]) {
      const spec = [{ units: 7, act }, { units, act }];
      const model = nn.sequential(spec.map((s) => nn.dense(s.units, { activation: s.act })), {
        inputShape: [inF],
        seed: 100 + k,
      });
      try {
        const x = new Rng(200 + k).floats(rows * inF, -2, 2);
        const y = await applyData(model, x, [rows, inF]);
        assertShape(y.shape, [rows, units], `${act} output shape`);
        const ref = forwardF64(x, rows, inF, denseRefs(await model.getWeights(), spec));
        assertClose(y.data, ref, FORWARD_TOL, `Dense ${act} (units ${units})`, [rows, units]);
      } finally {
        model.dispose();
      }
    }
  }
});

Deno.test("nn: Activation layers equal the float64 activations (custom alpha too)", async () => {
  const rows = 9, inF = 4, units = 6;
  for (const [k, act] of ALL_ACTS.entries()) {
    const alpha = act === "elu" ? 0.7 : act === "leaky_relu" ? 0.05 : undefined;
    const model = nn.sequential([
      nn.dense(units),
      nn.activation(act, alpha === undefined ? {} : { alpha }),
    ], { inputShape: [inF], seed: 300 + k });
    try {
      const x = new Rng(400 + k).floats(rows * inF, -2, 2);
      const y = await applyData(model, x, [rows, inF]);
      const [w, b] = await model.getWeights();
      const z = forwardF64(x, rows, inF, [{ kernel: w, bias: b, units, act: "linear" }]);
      const ref = activateRows(act, z, rows, units, alpha ?? defaultAlphaOf(act));
      assertClose(y.data, ref, FORWARD_TOL, `Activation ${act}`, [rows, units]);
    } finally {
      model.dispose();
    }
  }
  // Dense with an explicit alpha as well.
  const model = nn.sequential([nn.dense(5, { activation: "leaky_relu", alpha: 0.3 })], {
    inputShape: [3],
  });
  try {
    const x = new Rng(5).floats(8 * 3, -2, 2);
    const y = await applyData(model, x, [8, 3]);
    const [w, b] = await model.getWeights();
    const ref = forwardF64(x, 8, 3, [{
      kernel: w,
      bias: b,
      units: 5,
      act: "leaky_relu",
      alpha: 0.3,
    }]);
    assertClose(y.data, ref, FORWARD_TOL, "Dense leaky_relu alpha 0.3");
  } finally {
    model.dispose();
  }
});

Deno.test("nn: Dense on rank-3 inputs applies to the last axis", async () => {
  const model = nn.sequential([nn.dense(5, { activation: "tanh" }), nn.dense(2)], {
    inputShape: [3, 4],
  });
  try {
    assertShape(model.outputShape, [3, 2], "output shape");
    if (model.layers[0].paramCount !== 4 * 5 + 5) {
      throw new Error(`rank-3 Dense has ${model.layers[0].paramCount} parameters, not 25`);
    }
    if (!model.summary(null).includes("(None, 3, 5)")) {
      throw new Error("summary lacks (None, 3, 5)");
    }
    const n = 7;
    const x = new Rng(9).floats(n * 3 * 4, -2, 2);
    const y = await applyData(model, x, [n, 3, 4]);
    assertShape(y.shape, [n, 3, 2], "applied shape");
    // Each of the n·3 rows of 4 features is one sample for the reference.
    const spec = [{ units: 5, act: "tanh" as const }, { units: 2, act: "linear" as const }];
    const ref = forwardF64(x, n * 3, 4, denseRefs(await model.getWeights(), spec));
    assertClose(y.data, ref, FORWARD_TOL, "rank-3 Dense", [n, 3, 2]);
  } finally {
    model.dispose();
  }
});

Deno.test("nn: model.apply refuses inputs of another shape, naming both", () => {
  const model = nn.sequential([nn.dense(2)], { inputShape: [4], name: "m" });
  const x = tensor(new Float32Array(15), [5, 3]) as Tensor<"f32">;
  const x1 = tensor(new Float32Array(4), [4]) as Tensor<"f32">;
  try {
    assertWgradError(() => model.apply(x), "shape", ['model "m"', "(None, 4)", "[5, 3]"], "[5, 3]");
    assertWgradError(() => model.apply(x1), "shape", ['model "m"', "(None, 4)", "[4]"], "rank 1");
  } finally {
    x.dispose();
    x1.dispose();
    model.dispose();
  }
});
