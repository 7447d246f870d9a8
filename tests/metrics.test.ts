/**
 * Accuracy metrics and the accumulator (shaders/loss.wgsl, shaders/accumulate.wgsl,
 * src/ops/metrics.ts) against float64 references.
 * @module
 */
import { grad, metrics, type Tensor, tensor, zeros } from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertShape,
  assertWgradError,
  computeAll,
  f32,
  i32,
  Rng,
  u32,
} from "./harness.ts";
import {
  binaryAccuracyRef,
  categoricalAccuracyRef,
  sparseAccuracyRef,
  U,
} from "./reference_loss.ts";

// Tolerances. Correct counts of sparse and categorical accuracy are integers below 2²⁴, summed
// exactly in f32: they must match exactly. Fractions are count / B with WGSL's 2.5-ulp division.
// Binary accuracy sums per-sample fractions hits / C (2.5 ulps each) with one ulp per addition
// on the longest chain of the batch reduction (⌈B/256⌉ − 1 + 8), relative to the sum.
const FRACTION = { atol: 0, rtol: 2.5 * U };

const DIMS = [1, 7, 33, 127];
const SIZES: [number, number][] = DIMS.flatMap((b) => DIMS.map((c): [number, number] => [b, c]));

/** Predictions with many ties (values from a small set), so argmax must pick the first. */
function tiedPredictions(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.pick([0.1, 0.5, 0.5, 0.9, 0.9, -1]));
}

function sum(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s;
}

Deno.test("metrics: sparse categorical accuracy and its count, with ties and bad labels", async () => {
  const rng = new Rng(0xacc);
  const cases = SIZES.map(([b, c]) => {
    const labels = rng.ints(b, 0, c - 1);
    if (b > 3) labels[3] = c; // out of range: incorrect
    return { b, c, labels, pred: tiedPredictions(rng, b * c) };
  });
  const outs = await computeAll(() =>
    cases.flatMap(({ b, c, labels, pred }) => [
      metrics.sparseCategoricalAccuracy(i32(labels, [b]), f32(pred, [b, c])),
      // With one class, accuracy() would pick binary accuracy (yPred's last axis is 1).
      c > 1 ? metrics.accuracy(i32(labels, [b, 1]), f32(pred, [b, c])) : tensor(0),
      metrics.correctCount(i32(labels, [b]), f32(pred, [b, c]), { kind: "sparse" }),
    ])
  );
  cases.forEach(({ b, c, labels, pred }, i) => {
    const label = `sparse accuracy [${b}, ${c}]`;
    const hits = sum(sparseAccuracyRef(labels, pred, b, c));
    assertShape(outs[3 * i].shape, [], label);
    assertClose(outs[3 * i].data, [hits / b], FRACTION, label);
    if (c > 1) {
      assertClose(outs[3 * i + 1].data, [hits / b], FRACTION, `${label} via accuracy, [B, 1]`);
    }
    assertEqualArrays(outs[3 * i + 2].data, [hits], `${label} count`);
  });
});

Deno.test("metrics: categorical accuracy compares the argmax of targets and predictions", async () => {
  const rng = new Rng(0xca7);
  const cases = SIZES.map(([b, c]) => ({
    b,
    c,
    target: tiedPredictions(rng, b * c), // soft targets with ties: the first maximum counts
    pred: tiedPredictions(rng, b * c),
  }));
  const outs = await computeAll(() =>
    cases.flatMap(({ b, c, target, pred }) => [
      metrics.categoricalAccuracy(f32(target, [b, c]), f32(pred, [b, c])),
      c > 1 ? metrics.accuracy(f32(target, [b, c]), f32(pred, [b, c])) : tensor(0),
      metrics.correctCount(f32(target, [b, c]), f32(pred, [b, c]), { kind: "categorical" }),
    ])
  );
  cases.forEach(({ b, c, target, pred }, i) => {
    const label = `categorical accuracy [${b}, ${c}]`;
    const hits = sum(categoricalAccuracyRef(target, pred, b, c));
    assertClose(outs[3 * i].data, [hits / b], FRACTION, label);
    if (c > 1) assertClose(outs[3 * i + 1].data, [hits / b], FRACTION, `${label} via accuracy`);
    assertEqualArrays(outs[3 * i + 2].data, [hits], `${label} count`);
  });
});

Deno.test("metrics: binary accuracy at several thresholds, f32 and integer targets", async () => {
  const rng = new Rng(0xb1);
  const cases = SIZES.flatMap(([b, c]) =>
    [0.5, 0, 0.7].map((threshold) => ({
      b,
      c,
      threshold,
      target: Float32Array.from({ length: b * c }, () => rng.pick([0, 1, 1, 0.5])),
      pred: Float32Array.from({ length: b * c }, () => rng.pick([0, 0.5, 0.7, 0.75, -1, 1])),
    }))
  );
  const outs = await computeAll(() =>
    cases.flatMap(({ b, c, threshold, target, pred }) => [
      metrics.binaryAccuracy(f32(target, [b, c]), f32(pred, [b, c]), threshold),
      metrics.correctCount(f32(target, [b, c]), f32(pred, [b, c]), { kind: "binary", threshold }),
      metrics.binaryAccuracy(
        i32(target.map((v) => (v === 1 ? 1 : 0)), [b, c]),
        f32(pred, [b, c]),
        threshold,
      ),
    ])
  );
  cases.forEach(({ b, c, threshold, target, pred }, i) => {
    const label = `binary accuracy [${b}, ${c}] threshold ${threshold}`;
    const per = binaryAccuracyRef(target, pred, b, c, threshold);
    const hits = sum(per);
    const tol = (2.5 + Math.ceil(b / 256) - 1 + 8) * U * hits;
    assertClose(outs[3 * i].data, [hits / b], { atol: tol / b, rtol: 2.5 * U }, label);
    assertClose(outs[3 * i + 1].data, [hits], { atol: tol, rtol: 0 }, `${label} count`);
    const intTarget = target.map((v) => (v === 1 ? 1 : 0));
    const intHits = sum(binaryAccuracyRef(intTarget, pred, b, c, threshold));
    const intTol = (2.5 + Math.ceil(b / 256) - 1 + 8) * U * intHits / b;
    assertClose(
      outs[3 * i + 2].data,
      [intHits / b],
      { atol: intTol, rtol: 2.5 * U },
      `${label} i32`,
    );
  });
});

Deno.test("metrics: accuracy picks binary, sparse or categorical as Keras does", async () => {
  const outs = await computeAll(() => [
    // yPred's last axis is 1: binary accuracy at 0.5.
    metrics.accuracy(f32([1, 0, 1], [3, 1]), f32([0.9, 0.2, 0.4], [3, 1])),
    metrics.accuracy(f32([1, 0, 1], [3]), f32([0.9, 0.2, 0.4], [3, 1])),
    // Integer labels: sparse; u32 too.
    metrics.accuracy(i32([2, 0], [2]), f32([0, 1, 5, 3, 1, 2], [2, 3])),
    metrics.accuracy(u32([2, 1], [2]), f32([0, 1, 5, 3, 1, 2], [2, 3])),
    // f32 targets of yPred's shape: categorical.
    metrics.accuracy(f32([0, 0, 1, 0, 1, 0], [2, 3]), f32([0, 1, 5, 3, 1, 2], [2, 3])),
  ]);
  assertClose(outs[0].data, [2 / 3], FRACTION, "binary [3, 1]");
  assertClose(outs[1].data, [2 / 3], FRACTION, "binary [3] vs [3, 1]");
  assertClose(outs[2].data, [1], FRACTION, "sparse i32");
  assertClose(outs[3].data, [0.5], FRACTION, "sparse u32");
  assertClose(outs[4].data, [0.5], FRACTION, "categorical");
});

Deno.test("metrics: batches over 4,096 rows count in two passes", async () => {
  const rng = new Rng(12);
  const b = 10000, c = 5;
  const labels = rng.ints(b, 0, c - 1), pred = tiedPredictions(rng, b * c);
  const [count, frac] = await computeAll(() => [
    metrics.correctCount(i32(labels, [b]), f32(pred, [b, c])),
    metrics.accuracy(i32(labels, [b]), f32(pred, [b, c])),
  ]);
  const hits = sum(sparseAccuracyRef(labels, pred, b, c));
  assertEqualArrays(count.data, [hits], "count of 10000 rows");
  assertClose(frac.data, [hits / b], FRACTION, "fraction of 10000 rows");
});

Deno.test("metrics: accumulate adds scalars in place, across calls", async () => {
  const acc = zeros([5]);
  const rng = new Rng(3);
  const batches = [4, 9, 2].map((b) => ({
    b,
    labels: rng.ints(b, 0, 2),
    pred: tiedPredictions(rng, b * 3),
  }));
  for (const { b, labels, pred } of batches) {
    const y = i32(labels, [b]), p = f32(pred, [b, 3]);
    const n = metrics.correctCount(y, p);
    const size = tensor(b);
    metrics.accumulate(acc, [n, size], 1);
    metrics.accumulate(acc, [tensor([0.25])]);
    for (const t of [y, p, n, size]) t.dispose();
  }
  const data = await acc.data();
  acc.dispose();
  let hits = 0;
  for (const { b, labels, pred } of batches) hits += sum(sparseAccuracyRef(labels, pred, b, 3));
  assertEqualArrays(data, [0.75, hits, 15, 0, 0], "accumulated");
});

Deno.test("metrics: no gradients flow through accuracy", async () => {
  const p = f32([0.2, 0.8, 0.6, 0.4], [2, 2]);
  const y = i32([1, 1], [2]);
  try {
    const [g] = await grad(() => metrics.accuracy(y, p), [p]);
    assertEqualArrays(await g.data(), [0, 0, 0, 0], "gradient of accuracy");
    g.dispose();
  } finally {
    p.dispose();
    y.dispose();
  }
});

Deno.test("metrics: errors name the op and the shapes", () => {
  const p = f32(new Float32Array(12), [4, 3]);
  const y = i32([0, 1, 2, 0], [4]);
  const short = i32([0, 1, 2], [3]);
  const yf = f32([0, 1, 2, 0], [4]);
  const acc = zeros([2]);
  const one = tensor(1), two = f32([1, 2], [2]);
  try {
    assertWgradError(
      () => metrics.sparseCategoricalAccuracy(short, p),
      "shape",
      ["sparseCategoricalAccuracy", "batch sizes differ", "[3]", "[4, 3]"],
      "batch",
    );
    assertWgradError(
      () => metrics.accuracy(yf, p),
      "dtype",
      ["accuracy", "f32 [4]", "i32 or u32"],
      "float class indices",
    );
    assertWgradError(
      () => metrics.categoricalAccuracy(f32(new Float32Array(8), [4, 2]), p),
      "shape",
      ["categoricalAccuracy", "class counts differ", "[4, 2]", "[4, 3]"],
      "classes",
    );
    assertWgradError(
      () => metrics.binaryAccuracy(yf, p, NaN),
      "value",
      ["binaryAccuracy", "threshold"],
      "threshold",
    );
    assertWgradError(
      () => metrics.correctCount(y, p, { kind: "ternary" as "binary" }),
      "value",
      ["correctCount", "ternary"],
      "kind",
    );
    assertWgradError(
      () => metrics.accumulate(acc, [one, one, one]),
      "shape",
      ["accumulate", "2 elements", "3"],
      "accumulator too small",
    );
    assertWgradError(
      () => metrics.accumulate(acc, [two]),
      "shape",
      ["accumulate", "value 0", "[2]", "one element"],
      "value not scalar",
    );
    assertWgradError(() => metrics.accumulate(acc, []), "value", ["accumulate"], "no values");
    assertWgradError(
      () => metrics.accumulate(acc, [y as unknown as Tensor<"f32">]),
      "dtype",
      ["accumulate", "i32"],
      "i32 value",
    );
    assertWgradError(
      () => metrics.accumulate(acc, [one], -1),
      "shape",
      ["accumulate", "offset -1"],
      "negative offset",
    );
  } finally {
    for (const t of [p, y, short, yf, acc, one, two]) t.dispose();
  }
});
