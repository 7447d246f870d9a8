/**
 * Image layers and the functional API (src/nn/conv_layers.ts, src/nn/functional.ts): a CNN's
 * forward pass against a float64 CPU composition of the reference ops, the LeNet summary, batch
 * normalisation in fit and in inference, multi-output functional models over trained layers
 * (the feature-map trick), residual Add, the functional chain training exactly as the Sequential
 * one, save/load of a functional CNN with exact resume, a finite-difference check of the loss
 * through the layers, and the build-time errors (ranks, sizes, channels, disconnected graphs).
 * @module
 */
import { losses, mul, nn, optim, sum, type Tensor, tensor, valueAndGrad } from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertShape,
  assertWgradError,
  Rng,
  type Tolerance,
} from "./harness.ts";
import { batchNormRef, conv2dRef, pool2dRef, type Window } from "./reference_conv.ts";

// FORWARD_TOL: inputs in [−1, 1], glorot weights; every output is an f32 sum of ≤ 36 products
// followed by an f32 activation, pooled and fed to a ≤ 12-term dense layer. The rounding is a
// few 1e-6 at most; 2e-5 absolute plus relative is ~5× that and far below any wiring mistake (a
// wrong padding offset, pool window or kernel layout changes outputs by > 1e-2).
const FORWARD_TOL: Tolerance = { atol: 2e-5, rtol: 2e-5 };

const same = (s: number): Window => ({ sh: s, sw: s, dh: 1, dw: 1, padding: "same" });
const valid = (s: number): Window => ({ sh: s, sw: s, dh: 1, dw: 1, padding: "valid" });

function relu(v: Float64Array): Float64Array {
  return v.map((x) => Math.max(x, 0));
}

/** [n, f] · [f, u] + b in float64. */
function denseRef(x: ArrayLike<number>, n: number, w: ArrayLike<number>, b: ArrayLike<number>) {
  const u = b.length, f = w.length / u;
  const y = new Float64Array(n * u);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < u; j++) {
      let s = b[j];
      for (let k = 0; k < f; k++) s += x[r * f + k] * w[k * u + j];
      y[r * u + j] = s;
    }
  }
  return y;
}

/** A small CNN with odd sizes, and its float64 forward pass from its weights. */
function smallCnn(seed: number): nn.Sequential {
  return nn.sequential([
    nn.conv2d(4, { kernelSize: 3, padding: "same", activation: "relu" }),
    nn.maxPool2d(),
    nn.conv2d(3, { kernelSize: [2, 3], activation: "tanh" }),
    nn.avgPool2d({ poolSize: 2, strides: 1 }),
    nn.flatten(),
    nn.dense(5),
  ], { inputShape: [7, 9, 2], seed });
}

function smallCnnRef(x: Float32Array, n: number, w: Float32Array[]) {
  const c1 = conv2dRef(x, [n, 7, 9, 2], w[0], [3, 3, 2, 4], same(1), w[1]);
  const a1 = relu(c1.y);
  const p1 = pool2dRef("max", a1, c1.shape, 2, 2, 2, 2, "valid");
  const c2 = conv2dRef(p1.y, p1.shape, w[2], [2, 3, 4, 3], valid(1), w[3]);
  const a2 = c2.y.map(Math.tanh);
  const p2 = pool2dRef("avg", a2, c2.shape, 2, 2, 1, 1, "valid");
  return { conv1: a1, out: denseRef(p2.y, n, w[4], w[5]) };
}

Deno.test("cnn: a Sequential CNN's predict matches a float64 composition of the reference ops", async () => {
  const rng = new Rng(11);
  const n = 3;
  const model = smallCnn(4);
  try {
    assertShape(model.outputShape, [5], "output shape");
    const x = rng.floats(n * 7 * 9 * 2);
    const want = smallCnnRef(x, n, await model.getWeights());
    const y = await model.predict({ data: x, shape: [n, 7, 9, 2] }, { batchSize: 2 });
    assertShape(y.shape, [n, 5], "predict shape");
    assertClose(await y.data(), want.out, FORWARD_TOL, "small CNN forward");
    y.dispose();
  } finally {
    model.dispose();
  }
});

Deno.test("cnn: the LeNet summary has Keras's shapes and parameter counts", () => {
  const model = nn.sequential([
    nn.conv2d(6, { kernelSize: 5, padding: "same", activation: "tanh" }),
    nn.avgPool2d({ poolSize: 2, strides: 1 }),
    nn.conv2d(16, { kernelSize: 5, activation: "tanh" }),
    nn.avgPool2d({ poolSize: 2, strides: 2 }),
    nn.conv2d(120, { kernelSize: 5, activation: "tanh" }),
    nn.flatten(),
    nn.dense(84, { activation: "tanh" }),
    nn.dense(10, { activation: "softmax" }),
  ], { inputShape: [28, 28, 1] });
  try {
    const text = model.summary(null);
    const rows = [
      ["conv2d (Conv2D)", "(None, 28, 28, 6)", "156"],
      ["average_pooling2d (AveragePooling2D)", "(None, 27, 27, 6)", "0"],
      ["conv2d_1 (Conv2D)", "(None, 23, 23, 16)", "2,416"],
      ["average_pooling2d_1 (AveragePooling2D)", "(None, 11, 11, 16)", "0"],
      ["conv2d_2 (Conv2D)", "(None, 7, 7, 120)", "48,120"],
      ["flatten (Flatten)", "(None, 5880)", "0"],
      ["dense (Dense)", "(None, 84)", "494,004"],
      ["dense_1 (Dense)", "(None, 10)", "850"],
    ];
    for (const [name, shape, count] of rows) {
      const line = text.split("\n").find((l) => l.startsWith(name + " "));
      if (!line || !line.includes(shape) || !line.trimEnd().endsWith(" " + count)) {
        throw new Error(`summary row for ${name}: expected ${shape} and ${count}, got:\n${text}`);
      }
    }
    if (!text.includes("Total params: 545,546") || !text.includes("Non-trainable params: 0")) {
      throw new Error(`summary totals:\n${text}`);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("cnn: batch norm updates its moving statistics in fit and uses them in predict", async () => {
  const rng = new Rng(3);
  const n = 24, c = 3;
  const x = Float32Array.from(rng.floats(n * 2 * 2 * c), (v, i) => v * (1 + (i % c)) + (i % c));
  const model = nn.sequential([nn.batchNorm({ momentum: 0.9 })], { inputShape: [2, 2, c] });
  try {
    const text = model.summary(null);
    if (!text.includes("Trainable params: 6") || !text.includes("Non-trainable params: 6")) {
      throw new Error(`batch norm summary counts:\n${text}`);
    }
    model.compile({ optimizer: optim.sgd({ learningRate: 0.1 }), loss: "mse" });
    // One step over the whole set: the moving statistics see exactly the set's mean and variance.
    await model.fit({ data: x, shape: [n, 2, 2, c] }, new Float32Array(n * 4 * c), {
      epochs: 1,
      batchSize: n,
      shuffle: false,
      verbose: 0,
    });
    const [gamma, beta, mm, mv] = await model.getWeights();
    const stats = batchNormRef(x, c, [1, 1, 1], [0, 0, 0], 1e-3, null);
    assertClose(mm, stats.mean.map((m) => 0.1 * m), { atol: 1e-6, rtol: 1e-5 }, "moving mean");
    assertClose(
      mv,
      stats.variance.map((v) => 0.9 + 0.1 * v),
      { atol: 1e-6, rtol: 1e-5 },
      "moving variance",
    );
    // The step moved gamma and beta (an MSE towards 0 shrinks both).
    if (gamma.every((g) => g === 1) || beta.every((b) => b === 0)) {
      throw new Error(`gamma ${gamma} / beta ${beta} were not trained`);
    }
    const y = await model.predict({ data: x, shape: [n, 2, 2, c] });
    const want = batchNormRef(x, c, gamma, beta, 1e-3, { mean: mm, variance: mv });
    assertClose(await y.data(), want.y, FORWARD_TOL, "inference with the moving statistics");
    y.dispose();
  } finally {
    model.dispose();
  }
});

Deno.test("functional: predict returns every output of a model over trained layers", async () => {
  const rng = new Rng(21);
  const n = 40;
  const seq = smallCnn(9);
  try {
    seq.compile({
      optimizer: "adam",
      loss: "sparse_categorical_crossentropy",
      metrics: ["accuracy"],
    });
    const x = rng.floats(n * 7 * 9 * 2);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 5);
    await seq.fit({ data: x, shape: [n, 7, 9, 2] }, labels, {
      epochs: 2,
      batchSize: 8,
      verbose: 0,
    });
    // The seed notebook's trick: a model whose outputs are every layer's output.
    const maps = nn.model({ inputs: seq.input, outputs: seq.layers.map((l) => l.output) });
    const outs = await maps.predict({ data: x, shape: [n, 7, 9, 2] });
    if (outs.length !== 6) throw new Error(`expected 6 outputs, got ${outs.length}`);
    const shapes = [[n, 7, 9, 4], [n, 3, 4, 4], [n, 2, 2, 3], [n, 1, 1, 3], [n, 3], [n, 5]];
    outs.forEach((o, i) => assertShape(o.shape, shapes[i], `output ${i}`));
    const want = smallCnnRef(x, n, await seq.getWeights());
    assertClose(await outs[0].data(), want.conv1, FORWARD_TOL, "first feature map");
    const direct = await seq.predict({ data: x, shape: [n, 7, 9, 2] });
    assertEqualArrays(await outs[5].data(), await direct.data(), "last output vs seq.predict");
    for (const o of [...outs, direct]) o.dispose();
    // Shared layers: the Sequential model still trains and predicts after the second model.
    const h = await seq.fit({ data: x, shape: [n, 7, 9, 2] }, labels, {
      epochs: 1,
      batchSize: 8,
      verbose: 0,
    });
    if (!Number.isFinite(h.history.loss[0])) throw new Error("training after sharing failed");
  } finally {
    seq.dispose();
  }
});

Deno.test("functional: a chain trains exactly as the Sequential model with the same seed", async () => {
  const rng = new Rng(5);
  const n = 32;
  const x = rng.floats(n * 6 * 6 * 1);
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7) % 4);
  const layers = () => [
    nn.conv2d(3, { kernelSize: 3, activation: "relu" }),
    nn.batchNorm(),
    nn.maxPool2d(),
    nn.dropout(0.25),
    nn.flatten(),
    nn.dense(4),
  ];
  const seq = nn.sequential(layers(), { inputShape: [6, 6, 1], seed: 12 });
  const inp = nn.input([6, 6, 1]);
  let h: nn.SymbolicTensor = inp;
  for (const l of layers()) h = (l as nn.Layer).apply(h);
  const fun = nn.model({ inputs: inp, outputs: h, seed: 12 });
  try {
    const names = fun.layers.map((l) => l.name).join(",");
    if (names !== "input_layer,conv2d,batch_normalization,max_pooling2d,dropout,flatten,dense") {
      throw new Error(`functional layer names: ${names}`);
    }
    for (const m of [seq, fun] as nn.Model[]) {
      m.compile({
        optimizer: "adam",
        loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
      });
      await m.fit({ data: x, shape: [n, 6, 6, 1] }, labels, {
        epochs: 2,
        batchSize: 6,
        verbose: 0,
      });
    }
    const a = await seq.getWeights(), b = await fun.getWeights();
    a.forEach((w, i) => assertEqualArrays(b[i], w, `weight ${i}`));
  } finally {
    seq.dispose();
    fun.dispose();
  }
});

Deno.test("functional: Add sums branches (a residual link)", async () => {
  const rng = new Rng(8);
  const inp = nn.input([4]);
  const dense = nn.dense(4, { activation: "tanh" });
  const out = nn.add().apply([inp, dense.apply(inp)]);
  const model = nn.model({ inputs: inp, outputs: out });
  try {
    const text = model.summary(null);
    if (!text.includes("Connected to") || !text.includes("input_layer[0][0], dense[0][0]")) {
      throw new Error(`a branching graph's summary lists connections:\n${text}`);
    }
    const x = rng.floats(6 * 4);
    const [w, b] = await model.getWeights();
    const lin = denseRef(x, 6, w, b);
    const want = lin.map((v, i) => x[i] + Math.tanh(v));
    const y = await model.predict({ data: x, shape: [6, 4] });
    assertClose(await y.data(), want, FORWARD_TOL, "x + tanh(xW + b)");
    y.dispose();
  } finally {
    model.dispose();
  }
});

Deno.test("functional: save and load a CNN with batch norm; resumed training is bitwise", async () => {
  const rng = new Rng(17);
  const n = 30;
  const x = rng.floats(n * 8 * 8 * 2);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const build = () => {
    const inp = nn.input([8, 8, 2]);
    const c = nn.conv2d(4, { kernelSize: 3, padding: "same", activation: "relu" }).apply(inp);
    const bn = nn.batchNorm().apply(c);
    const skip = nn.conv2d(4, { kernelSize: 1, useBias: false }).apply(inp);
    const sum = nn.add().apply([bn, skip]);
    const g = nn.globalAvgPool2d().apply(nn.maxPool2d({ padding: "same" }).apply(sum));
    const out = nn.dense(3).apply(nn.dropout(0.2).apply(g));
    return nn.model({ inputs: inp, outputs: out, name: "residual_cnn", seed: 3 });
  };
  const fitOptions = { epochs: 2, batchSize: 7, verbose: 0 as const, seed: 4 };
  const data = { data: x, shape: [n, 8, 8, 2] };
  const dir = await Deno.makeTempDir({ prefix: "wgrad_functional_" });
  const a = build();
  let b: nn.Model | null = null;
  try {
    a.compile({
      optimizer: optim.adam({ learningRate: 0.01 }),
      loss: "sparse_categorical_crossentropy",
    });
    await a.fit(data, labels, { ...fitOptions, epochs: 1 });
    await a.save(`${dir}/m`);
    b = await nn.loadModel(`${dir}/m`);
    if (!(b instanceof nn.Functional)) {
      throw new Error("loadModel did not rebuild a functional model");
    }
    const names = (m: nn.Model) => m.layers.map((l) => `${l.name}:${l.className}`).join(",");
    if (names(b) !== names(a)) throw new Error(`loaded layers ${names(b)} vs ${names(a)}`);
    const pa = await a.predict(data), pb = await b.predict(data);
    assertEqualArrays(await pb.data(), await pa.data(), "loaded predict");
    pa.dispose();
    pb.dispose();
    await a.fit(data, labels, { ...fitOptions, initialEpoch: 1 });
    await b.fit(data, labels, { ...fitOptions, initialEpoch: b.epochsTrained });
    const wa = await a.getWeights(), wb = await b.getWeights();
    wa.forEach((w, i) => assertEqualArrays(wb[i], w, `weight ${i} after resuming`));
  } finally {
    a.dispose();
    b?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cnn: the loss's gradient through conv, pool and dense layers matches finite differences", async () => {
  const rng = new Rng(31);
  const n = 2;
  const model = smallCnn(6);
  try {
    const x = rng.floats(n * 7 * 9 * 2);
    const r = rng.floats(n * 5);
    const w = await model.getWeights();
    const xt = tensor(x, [n, 7, 9, 2]) as Tensor<"f32">;
    const rt = tensor(r, [n, 5]) as Tensor<"f32">;
    const params = model.weightEntries.map((e) => e.tensor);
    const { grads } = await valueAndGrad(() => {
      const y = model.apply(xt);
      return sum(mul(y, rt));
    }, params);
    const loss = (ws: Float64Array[]): number => {
      const out = smallCnnRef(x, n, ws.map((v) => Float32Array.from(v))).out;
      return out.reduce((a, v, i) => a + v * r[i], 0);
    };
    // Central differences in float64 on the first conv's kernel and the dense kernel.
    for (const k of [0, 2, 4]) {
      const g = await grads[k].data();
      const base = w.map((v) => Float64Array.from(v));
      const numeric = new Float64Array(g.length);
      for (let i = 0; i < g.length; i++) {
        const h = 1e-3;
        const up = base.map((v) => v.slice()), dn = base.map((v) => v.slice());
        up[k][i] += h;
        dn[k][i] -= h;
        numeric[i] = (loss(up) - loss(dn)) / (2 * h);
      }
      // f32 gradients of sums of ≤ 100 terms of order 1 against float64 differences whose
      // truncation error is O(h²·f''') ≈ 1e-6: 2e-4 absolute and relative covers both.
      assertClose(g, numeric, { atol: 2e-4, rtol: 2e-4 }, `dL/d weight ${k}`);
    }
    xt.dispose();
    rt.dispose();
    for (const g of grads) g.dispose();
  } finally {
    model.dispose();
  }
});

Deno.test("cnn: build-time errors name the layer and the shapes", () => {
  assertWgradError(
    () => nn.sequential([nn.conv2d(2, { kernelSize: 5 })], { inputShape: [4, 4, 1] }),
    "shape",
    ['layer "conv2d" (Conv2D)', "larger", "(None, 4, 4, 1)", '"valid"'],
    "kernel larger than its input",
  );
  assertWgradError(
    () => nn.sequential([nn.conv2d(2, { kernelSize: 3 })], { inputShape: [784] }),
    "shape",
    ['layer "conv2d" (Conv2D)', "rank 4", "(None, 784)", "nn.reshape"],
    "rank-2 input to a conv layer",
  );
  assertWgradError(
    () =>
      nn.sequential([nn.conv2d(2, { kernelSize: 3 }), nn.maxPool2d({ poolSize: 3 })], {
        inputShape: [4, 4, 1],
      }),
    "shape",
    ['layer "max_pooling2d" (MaxPooling2D)', "(None, 2, 2, 2)", "empty"],
    "an output that shrinks to zero",
  );
  assertWgradError(
    () => nn.conv2d(4, { kernelSize: 3, strides: 2, dilation: 2 }),
    "value",
    ["nn.conv2d", "dilation"],
    "strides and dilation",
  );
  const flat = nn.input([10]);
  assertWgradError(
    // @ts-expect-error: a conv layer takes rank-4 symbols; the types refuse a rank-2 one.
    () => nn.conv2d(2, { kernelSize: 3, name: "c" }).apply(flat),
    "shape",
    ['layer "c" (Conv2D)', "rank 4", "(None, 10)"],
    "functional rank-2 symbol into conv",
  );
  const img = nn.input([8, 8, 3]);
  const pooled = nn.globalAvgPool2d().apply(img);
  // @ts-expect-error: global pooling gives rank 2, which a pooling layer does not take.
  assertWgradError(() => nn.maxPool2d().apply(pooled), "shape", ["rank 4"], "rank after gap");
  // deno-lint-ignore no-explicit-any
  const eager = tensor(new Float32Array(4), [1, 4]) as any;
  assertWgradError(
    () => nn.dense(2).apply(eager),
    "value",
    ["not a symbolic tensor", "eager tensor"],
    "apply to an eager tensor",
  );
  eager.dispose();
  const other = nn.input([8, 8, 3]);
  const joined = nn.add().apply([img, other]);
  assertWgradError(
    () => nn.model({ inputs: img, outputs: joined }),
    "value",
    ["disconnected", "outputs[0]"],
    "disconnected graph",
  );
  assertWgradError(
    () => nn.add().apply([img, nn.input([8, 8, 4])]),
    "shape",
    ["Add", "(None, 8, 8, 4)", "(None, 8, 8, 3)"],
    "Add of two shapes",
  );
});

Deno.test("cnn: setWeights names a conv kernel's channel mismatch; multi-output compile refuses", () => {
  const model = nn.sequential([nn.conv2d(4, { kernelSize: 3 })], { inputShape: [5, 5, 1] });
  try {
    const kernel = Array.from(
      { length: 3 },
      () => Array.from({ length: 3 }, () => Array.from({ length: 2 }, () => [0, 0, 0, 0])),
    );
    assertWgradError(
      () => model.setWeights([kernel, [0, 0, 0, 0]]),
      "shape",
      ["conv2d/kernel", "[3, 3, 1, 4]", "[3, 3, 2, 4]", "2 input channels instead of 1"],
      "conv kernel channels",
    );
    const two = nn.model({ inputs: model.input, outputs: [model.output, model.output] });
    assertWgradError(
      () => two.compile({ optimizer: "sgd", loss: "mse" }),
      "value",
      ["2 outputs", "one output"],
      "compile with two outputs",
    );
  } finally {
    model.dispose();
  }
});

Deno.test("functional: models sharing layers train in turn; dispose frees weights with the last user", async () => {
  const rng = new Rng(41);
  const n = 24;
  const x = rng.floats(n * 4);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const data = { data: x, shape: [n, 4] };
  const seq = nn.sequential([nn.dense(5, { activation: "relu" }), nn.dense(3)], {
    inputShape: [4],
    seed: 2,
  });
  const head = nn.dense(3, { name: "head" });
  const tuned = nn.model({ inputs: seq.input, outputs: head.apply(seq.layerOutputs[0]) });
  try {
    for (const m of [seq, tuned, seq, tuned] as nn.Model[]) {
      if (!m.epochsTrained) {
        m.compile({ optimizer: "sgd", loss: "sparse_categorical_crossentropy" });
      }
      await m.fit(data, labels, { epochs: 1, batchSize: 8, verbose: 0 });
    }
    // The shared first layer holds what the last fit left, in both models.
    const shared = (await tuned.getWeights())[0];
    assertEqualArrays((await seq.getWeights())[0], shared, "shared kernel seen by both models");
    tuned.dispose();
    // seq still has its weights (the shared layer was copied out of tuned's arena) and trains.
    assertEqualArrays((await seq.getWeights())[0], shared, "shared kernel after tuned.dispose()");
    await seq.fit(data, labels, { epochs: 1, batchSize: 8, verbose: 0 });
    const y = await seq.predict(data);
    assertShape(y.shape, [n, 3], "seq predict after the other model's dispose");
    y.dispose();
    // An input used as an output comes back as it went in.
    const ident = nn.model({ inputs: seq.input, outputs: [seq.input, seq.output] });
    const [same] = await ident.predict(data);
    assertClose(await same.data(), x, { atol: 0, rtol: 0 }, "input as output");
    same.dispose();
    ident.dispose();
  } finally {
    seq.dispose();
  }
  assertWgradError(
    () => nn.model({ inputs: seq.input, outputs: seq.output }),
    "disposed",
    ['layer "dense" (Dense)', 'model "sequential".dispose()'],
    "a model over disposed layers",
  );
});

Deno.test("functional: a layer applied twice is one summary row; list outputs survive save/load", async () => {
  const inp = nn.input([3]);
  const shared = nn.dense(3, { activation: "tanh", name: "shared" });
  const twice = shared.apply(shared.apply(inp));
  const model = nn.model({ inputs: inp, outputs: [twice] });
  const dir = await Deno.makeTempDir({ prefix: "wgrad_twice_" });
  let loaded: nn.Model<Tensor<"f32">[]> | null = null;
  try {
    const text = model.summary(null);
    const rows = text.split("\n").filter((l) => l.startsWith("shared (Dense)"));
    if (rows.length !== 1 || !text.includes("Total params: 12")) {
      throw new Error(`one row for the shared layer, 12 parameters:\n${text}`);
    }
    await model.save(`${dir}/m`);
    loaded = await nn.loadModel<Tensor<"f32">[]>(`${dir}/m`);
    const x = new Float32Array([0.1, -0.2, 0.3, 0.5, 0.25, -1]);
    const a = await model.predict({ data: x, shape: [2, 3] });
    const b = await loaded.predict({ data: x, shape: [2, 3] });
    if (!Array.isArray(b) || b.length !== 1) {
      throw new Error("the loaded model lost its list output");
    }
    assertEqualArrays(await b[0].data(), await a[0].data(), "loaded predict");
    for (const t of [...a, ...b]) t.dispose();
  } finally {
    model.dispose();
    loaded?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("functional: a symbol of a rank unknown to the types is checked when applied", () => {
  const shape: number[] = [6, 6, 2]; // a run-time shape: SymbolicTensor<number>
  const x = nn.input(shape);
  const y = nn.conv2d(2, { kernelSize: 3 }).apply(x);
  assertShape(y.shape, [4, 4, 2], "conv on a run-time rank");
  const flat: number[] = [12];
  assertWgradError(
    () => nn.conv2d(2, { kernelSize: 3, name: "c2" }).apply(nn.input(flat)),
    "shape",
    ['layer "c2" (Conv2D)', "rank 4", "(None, 12)"],
    "run-time rank 2 into conv",
  );
});

Deno.test("layers: trainable = false freezes weights (and batch norm's statistics); it is saved", async () => {
  const rng = new Rng(43);
  const n = 32;
  const x = rng.floats(n * 6 * 6 * 1);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
  const data = { data: x, shape: [n, 6, 6, 1] };
  const model = nn.sequential([
    nn.conv2d(2, { kernelSize: 3, activation: "relu" }),
    nn.batchNorm(),
    nn.flatten(),
    nn.dense(2),
  ], { inputShape: [6, 6, 1], seed: 8 });
  const dir = await Deno.makeTempDir({ prefix: "wgrad_frozen_" });
  let loaded: nn.Model | null = null;
  try {
    model.compile({ optimizer: "adam", loss: "sparse_categorical_crossentropy" });
    await model.fit(data, labels, { epochs: 1, batchSize: 8, verbose: 0 });
    // Freeze the convolution and the batch norm, compile again, train the head alone.
    model.layers[0].trainable = false;
    model.layers[1].trainable = false;
    model.compile({ optimizer: "adam", loss: "sparse_categorical_crossentropy" });
    const text = model.summary(null);
    if (!text.includes("Trainable params: 66") || !text.includes("Non-trainable params: 28")) {
      throw new Error(`frozen summary counts:\n${text}`);
    }
    const before = await model.getWeights();
    await model.fit(data, labels, { epochs: 2, batchSize: 8, verbose: 0 });
    const after = await model.getWeights();
    for (let i = 0; i < 6; i++) assertEqualArrays(after[i], before[i], `frozen weight ${i}`);
    if (after[6].every((v, i) => v === before[6][i])) throw new Error("the head did not train");
    await model.save(`${dir}/m`);
    loaded = await nn.loadModel(`${dir}/m`);
    const flags = loaded.layers.map((l) => l.trainable).join(",");
    if (flags !== "false,false,true,true") throw new Error(`loaded trainable flags ${flags}`);
  } finally {
    model.dispose();
    loaded?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("functional: Concatenate joins branches along the channels; it trains and reloads", async () => {
  const rng = new Rng(47);
  const n = 20;
  const x = rng.floats(n * 5 * 5 * 2);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const data = { data: x, shape: [n, 5, 5, 2] };
  const inp = nn.input([5, 5, 2]);
  const a = nn.conv2d(3, { kernelSize: 3, padding: "same", activation: "relu" }).apply(inp);
  const b = nn.conv2d(2, { kernelSize: 1 }).apply(inp);
  const joined = nn.concatenate().apply([a, b, inp]);
  assertShape(joined.shape, [5, 5, 7], "concatenated channels");
  const out = nn.dense(3).apply(nn.flatten().apply(joined));
  const model = nn.model({ inputs: inp, outputs: [joined, out] });
  const dir = await Deno.makeTempDir({ prefix: "wgrad_concat_" });
  let loaded: nn.Model<Tensor<"f32">[]> | null = null;
  try {
    const w = await model.getWeights();
    const [j] = await model.predict(data);
    const ca = relu(conv2dRef(x, [n, 5, 5, 2], w[0], [3, 3, 2, 3], same(1), w[1]).y);
    const cb = conv2dRef(x, [n, 5, 5, 2], w[2], [1, 1, 2, 2], valid(1), w[3]).y;
    const want = new Float64Array(n * 25 * 7);
    for (let p = 0; p < n * 25; p++) {
      want.set(ca.subarray(p * 3, p * 3 + 3), p * 7);
      want.set(cb.subarray(p * 2, p * 2 + 2), p * 7 + 3);
      want.set(x.subarray(p * 2, p * 2 + 2), p * 7 + 5);
    }
    assertClose(await j.data(), want, FORWARD_TOL, "concatenated feature maps");
    j.dispose();
    assertWgradError(
      () => nn.concatenate({ name: "cat" }).apply([a, nn.input([4, 5, 2])]),
      "shape",
      ['layer "cat" (Concatenate)', "(None, 4, 5, 2)", "(None, 5, 5, 3)"],
      "concatenate with other spatial sizes",
    );
    const trainable = nn.model({ inputs: inp, outputs: out });
    trainable.compile({ optimizer: "adam", loss: "sparse_categorical_crossentropy" });
    const h = await trainable.fit(data, labels, { epochs: 3, batchSize: 5, verbose: 0 });
    if (!(h.history.loss[2] < h.history.loss[0])) {
      throw new Error(`loss did not fall: ${h.history.loss}`);
    }
    await model.save(`${dir}/m`);
    loaded = await nn.loadModel<Tensor<"f32">[]>(`${dir}/m`);
    const p1 = await model.predict(data), p2 = await loaded.predict(data);
    assertEqualArrays(await p2[1].data(), await p1[1].data(), "loaded predict");
    for (const t of [...p1, ...p2]) t.dispose();
    trainable.dispose();
  } finally {
    model.dispose();
    loaded?.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
