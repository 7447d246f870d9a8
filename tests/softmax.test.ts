/**
 * Softmax and log-softmax (shaders/softmax.wgsl) against float64 references, forward and backward.
 * @module
 */
import { grad, GradientTape, logSoftmax, mul, softmax, sum, type Tensor, tensor } from "../mod.ts";
import {
  assertClose,
  assertShape,
  assertWgradError,
  computeAll,
  f32,
  fmtDims,
  i32,
  Rng,
  type Shape,
  sizeOf,
} from "./harness.ts";
import {
  axisRows,
  logErr,
  logSoftmaxRow,
  rowFnGradFD,
  rowIndices,
  softmaxBound,
  softmaxRow,
  U,
} from "./reference_loss.ts";

// Tolerances. Every bound is first order in U = 2⁻²³ (one f32 ulp) and follows from WGSL's
// accuracy guarantees for the operations the kernel performs (see reference_loss.ts):
// - softmax y_j = exp(x_j − m) / s: x_j − m rounds (½·|x_j − m| ulps in exp's result), exp adds
//   3 + 2|x_j − m| ulps, s carries the weighted exp errors plus one ulp per addition on its
//   longest chain (A − 1 in the per-row loop; A/64 − 1 + 6 in the workgroup-per-row tree), the
//   division 2.5 ulps. Results below 2⁻¹²⁶ may flush to zero (absolute 2⁻¹²⁶).
// - log-softmax (x_j − m) − log s: ½ ulp of |x_j − m|, log's 3 ulps (2⁻²¹ absolute for s ≤ 2),
//   s's relative error (absolute in log s), one ulp of the result.
// - gradients against float64 central differences (error ~1e-11, allowed 1e-9): the forward
//   bounds carried through y·(dy − Σ dy·y) and dy − exp(y)·Σ dy, plus the sums' chains.
const DENORMAL = 2 ** -126;
const FD_ATOL = 1e-9;

/** The longest addition chain of a row sum in the kernel that handles rows of length a. */
function depthOf(a: number, rows: number): number {
  return a >= 256 && rows <= 1024 ? Math.ceil(a / 64) - 1 + 6 : Math.max(0, a - 1);
}

/** Per-element tolerances of softmax or log-softmax along `axis`. */
function forwardTol(x: Float32Array, shape: Shape, axis: number, log: boolean): Float64Array {
  const ar = axisRows(shape, axis);
  const tol = new Float64Array(x.length);
  for (let r = 0; r < ar.rows; r++) {
    const idx = rowIndices(r, ar);
    const b = softmaxBound(idx.map((k) => x[k]), depthOf(ar.a, ar.rows));
    idx.forEach((k, j) => {
      if (log) {
        const d = Math.abs(x[k] - b.m);
        const out = Math.abs(Math.log(b.y[j]));
        tol[k] = d * U / 2 + logErr(b.s) + b.relS + U * out;
      } else {
        tol[k] = b.rel[j] * b.y[j] + DENORMAL;
      }
    });
  }
  return tol;
}

/** Per-element tolerances of the seeded gradient (vector-Jacobian product with w). */
function backwardTol(
  x: Float32Array,
  w: Float32Array,
  shape: Shape,
  axis: number,
  log: boolean,
): Float64Array {
  const ar = axisRows(shape, axis);
  const tol = new Float64Array(x.length);
  for (let r = 0; r < ar.rows; r++) {
    const idx = rowIndices(r, ar);
    const depth = depthOf(ar.a, ar.rows);
    const b = softmaxBound(idx.map((k) => x[k]), depth);
    const wr = idx.map((k) => w[k]);
    if (log) {
      // dx = w − exp(ls)·S, S = Σ w; exp(ls) carries ls's absolute error and exp's own ulps.
      let sAbs = 0, sw = 0;
      wr.forEach((v) => (sAbs += Math.abs(v), sw += v));
      idx.forEach((k, j) => {
        const d = Math.abs(x[k] - b.m);
        const lsErr = d * U / 2 + logErr(b.s) + b.relS + U * Math.abs(Math.log(b.y[j]));
        const expRel = lsErr + (3 + 2 * Math.abs(Math.log(b.y[j]))) * U;
        const prod = b.y[j] * Math.abs(sw);
        tol[k] = prod * (expRel + U) + b.y[j] * depth * U * sAbs + U * (Math.abs(wr[j]) + prod) +
          FD_ATOL;
      });
    } else {
      // dx = y·(w − D), D = Σ w·y.
      let dot = 0, dAbs = 0, dErr = 0;
      wr.forEach((v, j) => {
        dot += v * b.y[j];
        dAbs += Math.abs(v * b.y[j]);
        dErr += Math.abs(v) * b.y[j] * (b.rel[j] + U);
      });
      dErr += depth * U * dAbs;
      idx.forEach((k, j) => {
        const diff = Math.abs(wr[j] - dot);
        tol[k] = b.y[j] * diff * (b.rel[j] + 2 * U) + b.y[j] * dErr + DENORMAL + FD_ATOL;
      });
    }
  }
  return tol;
}

interface Case {
  shape: Shape;
  axis: number;
}

/** Odd sizes (1, 7, 33, 127), every axis of rank-3 shapes, and long rows (workgroup per row). */
const CASES: readonly Case[] = [
  { shape: [1], axis: -1 },
  { shape: [7], axis: 0 },
  { shape: [127], axis: -1 },
  { shape: [1, 1], axis: -1 },
  { shape: [33, 7], axis: -1 },
  { shape: [33, 7], axis: 0 },
  { shape: [7, 33], axis: 1 },
  { shape: [127, 127], axis: -1 },
  { shape: [1, 127], axis: 1 },
  { shape: [127, 1], axis: 1 },
  { shape: [3, 7, 33], axis: 0 },
  { shape: [3, 7, 33], axis: 1 },
  { shape: [3, 7, 33], axis: 2 },
  { shape: [3, 7, 33], axis: -2 },
  { shape: [2, 1000], axis: -1 }, // workgroup per row
  { shape: [1000, 3], axis: 0 }, // workgroup per row, strided
  { shape: [7, 300, 1], axis: 1 }, // workgroup per row, a trailing 1
];

/** Logits: uniform in [−6, 6], with ties and, every 5th row, extremes of ±80. */
function logits(rng: Rng, n: number): Float32Array {
  const x = rng.floats(n, -6, 6);
  for (let i = 0; i < n; i += 11) x[i] = x[Math.max(0, i - 1)]; // ties
  for (let i = 3; i < n; i += 5) x[i] = rng.pick([80, -80, 79.5, -79.5, 0]);
  return x;
}

for (const log of [false, true]) {
  const name = log ? "logSoftmax" : "softmax";
  const fn = log ? logSoftmax : softmax;
  const rowRef = log ? logSoftmaxRow : softmaxRow;

  Deno.test(`${name} matches the float64 reference on every axis and odd sizes`, async () => {
    const rng = new Rng(log ? 0x1050f : 0x50f7);
    const inputs = CASES.map((c) => logits(rng, sizeOf(c.shape)));
    const outs = await computeAll(() => CASES.map((c, i) => fn(f32(inputs[i], c.shape), c.axis)));
    CASES.forEach((c, i) => {
      const label = `${name} ${fmtDims(c.shape)} axis ${c.axis}`;
      assertShape(outs[i].shape, c.shape, label);
      const ar = axisRows(c.shape, c.axis);
      const e = new Float64Array(inputs[i].length);
      for (let r = 0; r < ar.rows; r++) {
        const idx = rowIndices(r, ar);
        const y = rowRef(Float64Array.from(idx, (k) => inputs[i][k]));
        idx.forEach((k, j) => (e[k] = y[j]));
      }
      const tol = forwardTol(inputs[i], c.shape, c.axis, log);
      assertClose(outs[i].data, e, { atol: tol, rtol: 0 }, label, c.shape);
    });
  });

  Deno.test(`${name} gradient matches float64 central differences`, async () => {
    const rng = new Rng(log ? 0x9a4d1 : 0x9a4d0);
    // Central differences cost rows·A²: the long-row cases get shorter rows here (300, still
    // one workgroup per row).
    const cases = [
      ...CASES.filter((c) => sizeOf(c.shape) <= 3000 && c.shape[0] !== 127 && c.shape[1] !== 127),
      { shape: [127, 33], axis: -1 },
      { shape: [2, 300], axis: -1 },
      { shape: [300, 2], axis: 0 },
    ];
    // Moderate logits (the extremes are checked forward): the reference's central differences
    // keep their 1e-11 accuracy where the function values stay small.
    const xs = cases.map((c) => rng.floats(sizeOf(c.shape), -6, 6));
    const ws = cases.map((c) => rng.floats(sizeOf(c.shape), -1, 1));
    const grads: Tensor<"f32">[] = [];
    for (const [i, c] of cases.entries()) {
      const x = f32(xs[i], c.shape);
      const tape = new GradientTape();
      tape.watch(x);
      const y = tape.record(() => fn(x, c.axis));
      const seed = f32(ws[i], c.shape);
      grads.push(tape.gradientSync(y, [x], seed)[0]);
      tape.dispose();
      for (const t of [x, y, seed]) t.dispose();
    }
    const data = await Promise.all(grads.map((g) => g.data()));
    grads.forEach((g) => g.dispose());
    cases.forEach((c, i) => {
      const label = `${name} gradient ${fmtDims(c.shape)} axis ${c.axis}`;
      const e = rowFnGradFD(rowRef, xs[i], ws[i], c.shape, c.axis);
      const tol = backwardTol(xs[i], ws[i], c.shape, c.axis, log);
      assertClose(data[i], e, { atol: tol, rtol: 0 }, label, c.shape);
    });
  });
}

Deno.test("softmax: probabilities of extreme logits stay finite and sum to 1", async () => {
  const x = Float32Array.from([1e30, -1e30, 0, 88, 89, -1e4, 3.4e38, -3.4e38]);
  const [p, lp] = await computeAll(() => [softmax(f32(x, [2, 4])), logSoftmax(f32(x, [2, 4]))]);
  for (let r = 0; r < 2; r++) {
    const row = Array.from(p.data.slice(r * 4, r * 4 + 4));
    if (row.some((v) => !Number.isFinite(v))) throw new Error(`softmax row ${r}: ${row}`);
    assertClose([row.reduce((a, b) => a + b, 0)], [1], { atol: 4 * U, rtol: 0 }, `row ${r} sum`);
  }
  assertClose(p.data, [1, 0, 0, 0, 0, 0, 1, 0], { atol: 0, rtol: 0 }, "softmax of ±1e30");
  // Log-probabilities are exact differences here: −(|x| + …) stays finite where log(0) would not.
  const e = logSoftmaxRow([1e30, -1e30, 0, 88]);
  assertClose(lp.data.slice(0, 4), e, { atol: 0, rtol: U }, "logSoftmax of ±1e30");
});

Deno.test("softmax gradient composes with other ops' gradients", async () => {
  // d/dx Σ w·softmax(x) through mul and sum equals the seeded gradient of softmax alone.
  const rng = new Rng(5);
  const xv = rng.floats(21, -3, 3), wv = rng.floats(21, -1, 1);
  const x = f32(xv, [3, 7]), w = f32(wv, [3, 7]);
  try {
    const [g] = await grad(() => sum(mul(softmax(x), w)), [x]);
    const data = await g.data();
    g.dispose();
    const e = rowFnGradFD(softmaxRow, xv, wv, [3, 7], -1);
    assertClose(data, e, { atol: backwardTol(xv, wv, [3, 7], -1, false), rtol: 2 * U }, "chain");
  } finally {
    x.dispose();
    w.dispose();
  }
});

Deno.test("softmax: empty tensors give empty results", async () => {
  const outs = await computeAll(() => [
    softmax(f32([], [0, 5])),
    logSoftmax(f32([], [4, 0])),
    softmax(f32([], [3, 0, 2]), 0),
  ]);
  assertShape(outs[0].shape, [0, 5], "softmax [0, 5]");
  assertShape(outs[1].shape, [4, 0], "logSoftmax [4, 0]");
  assertShape(outs[2].shape, [3, 0, 2], "softmax [3, 0, 2]");
});

Deno.test("softmax: errors name the op, the tensor and the axis", () => {
  const x = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  const labels = i32([1, 2], [2]);
  const s = tensor(3);
  try {
    assertWgradError(() => softmax(x, 2), "shape", ["softmax", "axis 2", "[2, 3]"], "axis 2");
    assertWgradError(() => logSoftmax(x, -3), "shape", ["logSoftmax", "-3"], "axis -3");
    assertWgradError(() => softmax(x, 0.5), "shape", ["softmax", "0.5"], "axis 0.5");
    assertWgradError(() => softmax(s), "shape", ["softmax", "scalar"], "scalar");
    assertWgradError(
      () => softmax(labels as unknown as Tensor<"f32">),
      "dtype",
      ["softmax", "i32", "[2]"],
      "i32",
    );
    x.dispose();
    assertWgradError(() => softmax(x), "disposed", ["softmax", "[2, 3]"], "disposed");
  } finally {
    x.dispose();
    labels.dispose();
    s.dispose();
  }
});
