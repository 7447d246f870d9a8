/**
 * The losses (shaders/loss.wgsl, src/ops/loss.ts) against float64 references: values for every
 * loss, both `fromLogits` settings and every reduction; gradients against float64 central
 * differences; Keras's documented examples; out-of-range labels; bad inputs.
 * @module
 */
import {
  GradientTape,
  losses,
  type Tensor,
  tensor,
  valueAndGradSync,
  WgradError,
  zeros,
} from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertRejectsWgrad,
  assertShape,
  assertWgradError,
  computeAll,
  f32,
  i32,
  Rng,
  u32,
} from "./harness.ts";
import {
  ABSOLUTE_STEP,
  CLIP_HI,
  CLIP_LO,
  isSparse,
  logErr,
  lossGradFD,
  type LossName,
  lossRef,
  reduceLossRef,
  RELATIVE_STEP,
  rowLoss,
  softmaxBound,
  softmaxRow,
  U,
} from "./reference_loss.ts";
import { ready } from "../src/gpu/runtime.ts";

// Tolerances. Every bound is first order in U = 2⁻²³ (one f32 ulp) and follows from WGSL's
// accuracy guarantees for the operations each kernel performs (see reference_loss.ts): +, −, ×
// one ulp; ÷ 2.5; exp(x) 3 + 2|x|; log 3 ulps or 2⁻²¹ absolute on [0.5, 2]; a sum one ulp of the
// sum of magnitudes per addition on its longest chain (C − 1 along a row; over the batch,
// ⌈B/256⌉ − 1 per invocation plus the 8 levels of the workgroup tree). Smoothed targets carry 2
// ulps, the gradient scale (f32 1/B, the upstream multiply) 2 ulps. The per-row bounds are in
// rowTol and gradTol below; they are computed from the float64 intermediates of each row, so
// they are as tight as the analysis (about 10–100 ulps of the values involved), not a blanket
// tolerance. Gradients are compared with five-point central differences of the float64
// reference (error ~1e-11; allowed 1e-9 times the row's weight).
const FD_ATOL = 1e-9;

/** The loss variants under test: a name, its options and the reference's name. */
interface Variant {
  title: string;
  ref: LossName;
  smoothing: number;
  call: (yTrue: Tensor, yPred: Tensor<"f32">, opts: losses.LossOptions) => Tensor<"f32">;
}

const V = (
  title: string,
  ref: LossName,
  smoothing: number,
  call: Variant["call"],
): Variant => ({ title, ref, smoothing, call });

const VARIANTS: readonly Variant[] = [
  V(
    "sparseCategoricalCrossentropy fromLogits",
    "sparseLogits",
    0,
    (t, p, o) =>
      losses.sparseCategoricalCrossentropy(t as Tensor<"i32">, p, { ...o, fromLogits: true }),
  ),
  V(
    "sparseCategoricalCrossentropy from probabilities",
    "sparseProbs",
    0,
    (t, p, o) => losses.sparseCategoricalCrossentropy(t as Tensor<"i32">, p, o),
  ),
  V(
    "categoricalCrossentropy fromLogits",
    "categoricalLogits",
    0,
    (t, p, o) => losses.categoricalCrossentropy(t as Tensor<"f32">, p, { ...o, fromLogits: true }),
  ),
  V(
    "categoricalCrossentropy from probabilities",
    "categoricalProbs",
    0,
    (t, p, o) => losses.categoricalCrossentropy(t as Tensor<"f32">, p, o),
  ),
  V("categoricalCrossentropy fromLogits, labelSmoothing 0.1", "categoricalLogits", 0.1, (
    t,
    p,
    o,
  ) =>
    losses.categoricalCrossentropy(t as Tensor<"f32">, p, {
      ...o,
      fromLogits: true,
      labelSmoothing: 0.1,
    })),
  V("categoricalCrossentropy from probabilities, labelSmoothing 0.2", "categoricalProbs", 0.2, (
    t,
    p,
    o,
  ) => losses.categoricalCrossentropy(t as Tensor<"f32">, p, { ...o, labelSmoothing: 0.2 })),
  V(
    "binaryCrossentropy fromLogits",
    "binaryLogits",
    0,
    (t, p, o) => losses.binaryCrossentropy(t as Tensor<"f32">, p, { ...o, fromLogits: true }),
  ),
  V(
    "binaryCrossentropy from probabilities",
    "binaryProbs",
    0,
    (t, p, o) => losses.binaryCrossentropy(t as Tensor<"f32">, p, o),
  ),
  V(
    "binaryCrossentropy fromLogits, labelSmoothing 0.1",
    "binaryLogits",
    0.1,
    (t, p, o) =>
      losses.binaryCrossentropy(t as Tensor<"f32">, p, {
        ...o,
        fromLogits: true,
        labelSmoothing: 0.1,
      }),
  ),
  V("meanSquaredError", "mse", 0, (t, p, o) => losses.meanSquaredError(t as Tensor<"f32">, p, o)),
  V("meanAbsoluteError", "mae", 0, (t, p, o) => losses.meanAbsoluteError(t as Tensor<"f32">, p, o)),
];

/** Batch sizes and class counts: every pair of 1, 7, 33 and 127. */
const DIMS = [1, 7, 33, 127];
const SIZES: readonly [number, number][] = DIMS.flatMap((b) => DIMS.map((c) => [b, c] as const))
  .map(([b, c]) => [b, c]);

// ---------------------------------------------------------------------------------------------
// Inputs

interface Inputs {
  pred: Float32Array;
  target: Float32Array | Int32Array;
}

/**
 * Inputs for a loss: logits in [−6, 6] (with ±80 in the forward tests), probabilities (rows of a
 * softmax, or unnormalised positives for categorical), one-hot and soft targets, and, in the
 * forward tests, exact 0s and 1s among the probabilities so that the clip acts. `smooth`
 * (gradient tests) keeps every input 2h away from the clip bounds and from |t − p| = 0.
 */
function inputsFor(name: LossName, rng: Rng, b: number, c: number, smooth: boolean): Inputs {
  const n = b * c;
  const logits = (): Float32Array => {
    const x = rng.floats(n, -6, 6);
    if (!smooth) { for (let i = 5; i < n; i += 9) x[i] = rng.pick([80, -80, 79.25, -80]); }
    return x;
  };
  const probRows = (): Float32Array => {
    const x = new Float32Array(n);
    for (let r = 0; r < b; r++) {
      let s = 0;
      for (let j = 0; j < c; j++) s += x[r * c + j] = Math.exp(rng.uniform(-2, 2));
      for (let j = 0; j < c; j++) x[r * c + j] /= s;
    }
    if (smooth) {
      for (let i = 0; i < n; i++) x[i] = Math.min(Math.max(x[i], 0.01), 0.99);
    } else {
      for (let i = 3; i < n; i += 7) x[i] = rng.pick([0, 1, 1e-9]);
    }
    return x;
  };
  const oneHotOrSoft = (): Float32Array => {
    const t = new Float32Array(n);
    for (let r = 0; r < b; r++) {
      if (r % 2 === 0) {
        t[r * c + rng.int(0, c - 1)] = 1;
      } else {
        let s = 0;
        for (let j = 0; j < c; j++) s += t[r * c + j] = rng.next();
        for (let j = 0; j < c; j++) t[r * c + j] /= s;
      }
    }
    return t;
  };
  const binaryTargets = (): Float32Array =>
    Float32Array.from({ length: n }, () => rng.pick([0, 1, 0, 1, 0.25, 0.7]));
  switch (name) {
    case "sparseLogits":
      return { pred: logits(), target: rng.ints(b, 0, c - 1) };
    case "sparseProbs":
      return { pred: probRows(), target: rng.ints(b, 0, c - 1) };
    case "categoricalLogits":
      return { pred: logits(), target: oneHotOrSoft() };
    case "categoricalProbs": {
      const p = rng.floats(n, 0.01, 1);
      // Zeros (clipped to ε after normalisation), but no row of zeros only (see the NaN test).
      if (!smooth && c > 1) { for (let i = 2; i < n; i += 6) if (i % c !== 0) p[i] = 0; }
      return { pred: p, target: oneHotOrSoft() };
    }
    case "binaryLogits": {
      const x = rng.floats(n, -8, 8);
      if (!smooth) { for (let i = 4; i < n; i += 8) x[i] = rng.pick([80, -80, 30, -30]); }
      return { pred: x, target: binaryTargets() };
    }
    case "binaryProbs": {
      const p = rng.floats(n, smooth ? 0.01 : 0.001, smooth ? 0.99 : 0.999);
      if (!smooth) { for (let i = 4; i < n; i += 8) p[i] = rng.pick([0, 1, 1e-9, 1 - 1e-8]); }
      return { pred: p, target: binaryTargets() };
    }
    case "mse":
    case "mae": {
      const t = rng.floats(n, -3, 3), p = rng.floats(n, -3, 3);
      for (let i = 0; i < n; i++) if (Math.abs(t[i] - p[i]) < 0.01) p[i] = t[i] + 0.5;
      return { pred: p, target: t };
    }
  }
}

function rowOf(x: ArrayLike<number>, r: number, c: number): number[] {
  return Array.prototype.slice.call(x, r * c, (r + 1) * c) as number[];
}

// ---------------------------------------------------------------------------------------------
// Error bounds

const clip = (v: number): number => Math.min(Math.max(v, CLIP_LO), CLIP_HI);
const inClip = (v: number): boolean => v >= CLIP_LO && v <= CLIP_HI;

function smoothed(name: LossName, t: number[], s: number): number[] {
  const c = t.length;
  const add = name === "binaryLogits" || name === "binaryProbs" ? s / 2 : s / c;
  return t.map((v) => v * (1 - s) + add);
}

/** The bound on one row's loss (see the header). */
function rowTol(name: LossName, x: number[], target: number | number[], s: number): number {
  const c = x.length;
  const loss = Math.abs(rowLoss(name, x, target, s));
  switch (name) {
    case "sparseLogits": {
      const b = softmaxBound(x, c - 1);
      const d = b.m - x[target as number];
      return U * d + logErr(b.s) + b.relS + U * loss;
    }
    case "sparseProbs": {
      let sum = 0;
      for (const v of x) sum += clip(v);
      const cy = clip(x[target as number]);
      return logErr(sum) + (c - 1) * U + logErr(cy) +
        U * (Math.abs(Math.log(sum)) + Math.abs(Math.log(cy)));
    }
    case "categoricalLogits": {
      const t = smoothed(name, target as number[], s);
      const b = softmaxBound(x, c - 1);
      const ls = Math.log(b.s), lsErr = logErr(b.s) + b.relS;
      let err = 0, mag = 0;
      t.forEach((tj, j) => {
        const d = b.m - x[j];
        const term = Math.abs(tj * (d + ls));
        err += Math.abs(tj) * (U * d + lsErr + U * (d + ls)) + 3 * U * term;
        mag += term;
      });
      return err + (c - 1) * U * mag;
    }
    case "categoricalProbs": {
      const t = smoothed(name, target as number[], s);
      let sum = 0;
      for (const v of x) sum += v;
      const relQ = (c - 1) * U + 2.5 * U;
      let err = 0, mag = 0;
      t.forEach((tj, j) => {
        const q = x[j] / sum;
        const cq = clip(q);
        const term = Math.abs(tj * Math.log(cq));
        err += Math.abs(tj) * (logErr(cq) + (inClip(q) ? relQ : 0)) + 3 * U * term;
        mag += term;
      });
      return err + (c - 1) * U * mag;
    }
    case "binaryLogits": {
      const t = smoothed(name, target as number[], s);
      let err = 0, mag = 0;
      x.forEach((v, j) => {
        const e = Math.exp(-Math.abs(v));
        const l1 = Math.log1p(e);
        const expRel = (3 + 2 * Math.abs(v)) * U;
        const l1Err = e < 2 ** -10
          ? l1 * (expRel + 6 * U)
          : logErr(1 + e) + U + (e * expRel) / (1 + e);
        const a = Math.max(v, 0) - v * t[j];
        const term = Math.abs(a + l1);
        err += U * Math.abs(v * t[j]) * 3 + U * Math.abs(a) + l1Err + U * term;
        mag += term;
      });
      return (err + (c - 1) * U * mag) / c + 2.5 * U * loss;
    }
    case "binaryProbs": {
      const t = smoothed(name, target as number[], s);
      let err = 0, mag = 0;
      x.forEach((v, j) => {
        const p = clip(v);
        const l0 = Math.abs(Math.log(p)), l1 = Math.abs(Math.log(1 - p));
        const term = Math.abs(t[j] * Math.log(p) + (1 - t[j]) * Math.log(1 - p));
        err += Math.abs(t[j]) * (logErr(p) + 3 * U * l0) +
          Math.abs(1 - t[j]) * (logErr(1 - p) + U + 3 * U * l1) + U * term;
        mag += term;
      });
      return (err + (c - 1) * U * mag) / c + 2.5 * U * loss;
    }
    case "mse":
    case "mae": {
      const t = target as number[];
      let mag = 0;
      x.forEach((v, j) => (mag += name === "mse" ? (t[j] - v) ** 2 : Math.abs(t[j] - v)));
      return ((c + 2) * U * mag) / c + 2.5 * U * loss;
    }
  }
}

/** Per-row loss bounds for a batch. */
function rowTols(
  name: LossName,
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  b: number,
  c: number,
  smoothing = 0,
): Float64Array {
  return Float64Array.from({ length: b }, (_, r) =>
    rowTol(
      name,
      rowOf(pred, r, c),
      isSparse(name) ? target[r] : rowOf(target, r, c),
      smoothing,
    ));
}

/** The bound on a reduction of per-row losses with bounds `tols` (see the header). */
function reducedTol(values: Float64Array, tols: Float64Array, reduction: "sum" | "mean"): number {
  const b = values.length;
  let err = 0, mag = 0;
  for (let r = 0; r < b; r++) {
    err += tols[r];
    mag += Math.abs(values[r]);
  }
  err += (Math.ceil(b / 256) - 1 + 8) * U * mag;
  return reduction === "sum" ? err : err / b + 2.5 * U * (mag / b);
}

/** Per-element bounds of a row's gradient with weight w (1/B, 1, or the upstream gradient). */
function gradTol(
  name: LossName,
  x: number[],
  target: number | number[],
  s: number,
  w: number,
): number[] {
  const c = x.length;
  const aw = Math.abs(w);
  switch (name) {
    case "sparseLogits": {
      const b = softmaxBound(x, c - 1);
      return x.map((_, j) => {
        const g = b.y[j] - (j === target ? 1 : 0);
        return aw * (b.rel[j] * b.y[j] + U * Math.abs(g) + 2 * U * Math.abs(g));
      });
    }
    case "sparseProbs": {
      let sum = 0;
      for (const v of x) sum += clip(v);
      const relS = (c - 1) * U;
      return x.map((v, j) => {
        if (!inClip(v)) return 0;
        const hit = j === target ? 1 / clip(v) : 0;
        const g = 1 / sum - hit;
        return aw * ((relS + 2.5 * U) / sum + 2.5 * U * hit + 3 * U * Math.abs(g));
      });
    }
    case "categoricalLogits": {
      const t = smoothed(name, target as number[], s);
      const b = softmaxBound(x, c - 1);
      let tSum = 0, tAbs = 0;
      for (const v of t) (tSum += v, tAbs += Math.abs(v));
      const tErr = (c + 1) * U * tAbs;
      return x.map((_, j) => {
        const g = b.y[j] * tSum - t[j];
        return aw * (b.y[j] * Math.abs(tSum) * (b.rel[j] + U) + b.y[j] * tErr +
          2 * U * Math.abs(t[j]) + 3 * U * Math.abs(g));
      });
    }
    case "categoricalProbs": {
      const t = smoothed(name, target as number[], s);
      let sum = 0;
      for (const v of x) sum += v;
      const relS = (c - 1) * U, relQ = relS + 2.5 * U;
      const q = x.map((v) => v / sum);
      const g = q.map((qj, j) => (inClip(qj) ? -t[j] / clip(qj) : 0));
      let gq = 0, gqAbs = 0;
      g.forEach((gj, j) => (gq += gj * q[j], gqAbs += Math.abs(gj * q[j])));
      const errG = gqAbs * (2 * relQ + 5.5 * U) + (c - 1) * U * gqAbs;
      return g.map((gj) => {
        const inner = gj - gq;
        const errInner = Math.abs(gj) * (relQ + 4.5 * U) + errG + U * Math.abs(inner);
        const out = inner / sum;
        return aw * (errInner / sum + Math.abs(out) * (relS + 2.5 * U) + 2 * U * Math.abs(out));
      });
    }
    case "binaryLogits": {
      const t = smoothed(name, target as number[], s);
      return x.map((v, j) => {
        const sg = 1 / (1 + Math.exp(-v));
        const g = sg - t[j];
        return (aw / c) * (sg * (6.5 + 2 * Math.abs(v)) * U + 2 * U * Math.abs(t[j]) +
          3 * U * Math.abs(g));
      });
    }
    case "binaryProbs": {
      const t = smoothed(name, target as number[], s);
      return x.map((v, j) => {
        if (!inClip(v)) return 0;
        const a = Math.abs(1 - t[j]) / (1 - v), b = Math.abs(t[j]) / v;
        return (aw / c) * (a * 5.5 * U + b * 4.5 * U + 3 * U * (a + b));
      });
    }
    case "mse":
    case "mae": {
      const t = target as number[];
      return x.map((v, j) => {
        const g = name === "mse" ? 2 * (v - t[j]) : Math.sign(v - t[j]);
        return (aw / c) * 3 * U * Math.abs(g);
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forward: every loss, both settings, every reduction, every size

function targetTensor(name: LossName, data: Float32Array | Int32Array, b: number, c: number) {
  return isSparse(name) ? i32(data, [b]) : f32(data, [b, c]);
}

for (const v of VARIANTS) {
  Deno.test(`loss ${v.title}: values match the float64 reference (mean, sum, none)`, async () => {
    const rng = new Rng(0x1055 + VARIANTS.indexOf(v) * 977);
    const cases = SIZES.map(([b, c]) => ({ b, c, ...inputsFor(v.ref, rng, b, c, false) }));
    const outs = await computeAll(() =>
      cases.flatMap(({ b, c, pred, target }) =>
        (["mean", "sum", "none"] as const).map((reduction) =>
          v.call(targetTensor(v.ref, target, b, c), f32(pred, [b, c]), { reduction })
        )
      )
    );
    cases.forEach(({ b, c, pred, target }, i) => {
      const per = lossRef(v.ref, pred, target, b, c, v.smoothing);
      const tols = Float64Array.from({ length: b }, (_, r) =>
        rowTol(
          v.ref,
          rowOf(pred, r, c),
          isSparse(v.ref) ? target[r] : rowOf(target, r, c),
          v.smoothing,
        ));
      const label = `${v.title} [${b}, ${c}]`;
      const [mean, sum, none] = outs.slice(i * 3, i * 3 + 3);
      assertShape(mean.shape, [], `${label} mean`);
      assertShape(none.shape, [b], `${label} none`);
      assertClose(none.data, per, { atol: tols, rtol: 0 }, `${label} none`, [b]);
      assertClose(
        sum.data,
        [reduceLossRef(per, "sum")],
        { atol: reducedTol(per, tols, "sum"), rtol: 0 },
        `${label} sum`,
      );
      assertClose(
        mean.data,
        [reduceLossRef(per, "mean")],
        { atol: reducedTol(per, tols, "mean"), rtol: 0 },
        `${label} mean`,
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Gradients against central differences

for (const v of VARIANTS) {
  Deno.test(`loss ${v.title}: gradients match float64 central differences`, async () => {
    const rng = new Rng(0x96ad + VARIANTS.indexOf(v) * 131);
    type Case = { b: number; c: number; reduction: "mean" | "sum" | "none" } & Inputs & {
      w: Float32Array;
    };
    const cases: Case[] = [];
    // Every pair of sizes but 127 × 127 (the central differences cost B·C² there).
    for (const [b, c] of SIZES.filter(([b, c]) => b * c < 127 * 127)) {
      const w = new Float32Array();
      cases.push({ b, c, reduction: "mean", ...inputsFor(v.ref, rng, b, c, true), w });
    }
    for (const [b, c] of [[7, 33], [33, 7], [127, 1]]) {
      for (const reduction of ["sum", "none"] as const) {
        const w = reduction === "none" ? rng.floats(b, -2, 2) : new Float32Array();
        cases.push({ b, c, reduction, ...inputsFor(v.ref, rng, b, c, true), w });
      }
    }
    const results: { value: Tensor; grad: Tensor<"f32"> }[] = [];
    for (const k of cases) {
      const yPred = f32(k.pred, [k.b, k.c]);
      const yTrue = targetTensor(v.ref, k.target, k.b, k.c);
      if (k.reduction === "none") {
        // The upstream gradient of per-sample losses is a vector: use a tape with a seed.
        const tape = new GradientTape();
        tape.watch(yPred);
        const value = tape.record(() => v.call(yTrue, yPred, { reduction: "none" }));
        const seed = f32(k.w, [k.b]);
        const [g] = tape.gradientSync(value, [yPred], seed);
        tape.dispose();
        seed.dispose();
        results.push({ value, grad: g });
      } else {
        const { value, grads } = valueAndGradSync(
          () => v.call(yTrue, yPred, { reduction: k.reduction }),
          [yPred],
        );
        results.push({ value, grad: grads[0] });
      }
      yPred.dispose();
      yTrue.dispose();
    }
    const data = await Promise.all(
      results.map((r) => Promise.all([r.value.data(), r.grad.data()])),
    );
    for (const r of results) {
      r.value.dispose();
      r.grad.dispose();
    }
    const step = v.ref.endsWith("Probs") ? RELATIVE_STEP : ABSOLUTE_STEP;
    cases.forEach((k, i) => {
      const label = `${v.title} gradient [${k.b}, ${k.c}] ${k.reduction}`;
      const weights = k.reduction === "none"
        ? k.w
        : new Float64Array(k.b).fill(k.reduction === "mean" ? 1 / k.b : 1);
      const e = lossGradFD(v.ref, k.pred, k.target, k.b, k.c, weights, v.smoothing, step);
      const tol = new Float64Array(k.b * k.c);
      for (let r = 0; r < k.b; r++) {
        const t = isSparse(v.ref) ? k.target[r] : rowOf(k.target, r, k.c);
        gradTol(v.ref, rowOf(k.pred, r, k.c), t, v.smoothing, weights[r]).forEach((x, j) =>
          tol[r * k.c + j] = x + FD_ATOL * Math.abs(weights[r])
        );
      }
      assertClose(data[i][1], e, { atol: tol, rtol: 0 }, label, [k.b, k.c]);
      // The value returned alongside the gradient is the loss itself.
      const per = lossRef(v.ref, k.pred, k.target, k.b, k.c, v.smoothing);
      const tols = Float64Array.from({ length: k.b }, (_, r) =>
        rowTol(
          v.ref,
          rowOf(k.pred, r, k.c),
          isSparse(v.ref) ? k.target[r] : rowOf(k.target, r, k.c),
          v.smoothing,
        ));
      if (k.reduction === "none") {
        assertClose(data[i][0], per, { atol: tols, rtol: 0 }, `${label} value`);
      } else {
        const e = [reduceLossRef(per, k.reduction)];
        const atol = reducedTol(per, tols, k.reduction);
        assertClose(data[i][0], e, { atol, rtol: 0 }, `${label} value`);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Keras parity: the examples in Keras's documentation, and hand-computed cases

Deno.test("loss Keras parity: documented examples", async () => {
  const yTrueOneHot = [[0, 1, 0], [0, 0, 1]];
  const yPred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]];
  const eye = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const b = [[0.9, 0.05, 0.05], [0.05, 0.89, 0.06], [0.05, 0.01, 0.94]];
  const outs = await computeAll(() => [
    // keras.losses.CategoricalCrossentropy: 1.177 (metric doc: 1.1769392), sum 2.354,
    // none [0.0513, 2.303].
    losses.categoricalCrossentropy(tensor(yTrueOneHot), tensor(yPred)),
    losses.categoricalCrossentropy(tensor(yTrueOneHot), tensor(yPred), { reduction: "sum" }),
    losses.categoricalCrossentropy(tensor(yTrueOneHot), tensor(yPred), { reduction: "none" }),
    // keras.losses.sparse_categorical_crossentropy([1, 2], …): [0.0513, 2.303].
    losses.sparseCategoricalCrossentropy(i32([1, 2], [2]), tensor(yPred), { reduction: "none" }),
    // keras.backend.categorical_crossentropy(eye(3), b): [0.10536, 0.11653, 0.06188].
    losses.categoricalCrossentropy(tensor(eye), tensor(b), { reduction: "none" }),
    // keras.losses.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]): [0.916, 0.714].
    losses.binaryCrossentropy(tensor([[0, 1], [0, 0]]), tensor([[0.6, 0.4], [0.4, 0.6]]), {
      reduction: "none",
    }),
    // keras.losses.BinaryCrossentropy(from_logits=True): 0.8654 for rank 1 and for 2×2; sum
    // 1.730; none [0.235, 1.496].
    losses.binaryCrossentropy(tensor([0, 1, 0, 0]), tensor([-18.6, 0.51, 2.94, -12.8]), {
      fromLogits: true,
    }),
    losses.binaryCrossentropy(tensor([[0, 1], [0, 0]]), tensor([[-18.6, 0.51], [2.94, -12.8]]), {
      fromLogits: true,
    }),
    losses.binaryCrossentropy(tensor([[0, 1], [0, 0]]), tensor([[-18.6, 0.51], [2.94, -12.8]]), {
      fromLogits: true,
      reduction: "sum",
    }),
    losses.binaryCrossentropy(tensor([[0, 1], [0, 0]]), tensor([[-18.6, 0.51], [2.94, -12.8]]), {
      fromLogits: true,
      reduction: "none",
    }),
    // keras.losses.MeanSquaredError / MeanAbsoluteError: [[0, 1], [0, 0]] vs [[1, 1], [1, 0]]
    // give 0.5 each.
    losses.meanSquaredError(tensor([[0, 1], [0, 0]]), tensor([[1, 1], [1, 0]])),
    losses.meanAbsoluteError(tensor([[0, 1], [0, 0]]), tensor([[1, 1], [1, 0]])),
  ]);
  // Keras prints 3–4 significant digits (rounded or cut): within one unit of the last digit
  // printed. The metric doc's 1.1769392 is f32 to 8 digits.
  const d3 = { atol: 1e-3, rtol: 0 };
  assertClose(outs[0].data, [1.1769392], { atol: 1e-7, rtol: 0 }, "CategoricalCrossentropy");
  assertClose(outs[1].data, [2.354], d3, "CategoricalCrossentropy sum");
  assertClose(outs[2].data, [0.0513, 2.303], d3, "CategoricalCrossentropy none");
  assertClose(outs[3].data, [0.0513, 2.303], d3, "sparse_categorical_crossentropy");
  assertClose(outs[4].data, [0.10536, 0.11653, 0.06188], { atol: 5e-6, rtol: 0 }, "backend cce");
  assertClose(outs[5].data, [0.916, 0.714], d3, "binary_crossentropy");
  assertShape(outs[6].shape, [], "BinaryCrossentropy rank 1 is a scalar");
  assertClose(outs[6].data, [0.8654], { atol: 1e-4, rtol: 0 }, "BinaryCrossentropy rank 1");
  assertClose(outs[7].data, [0.8654], { atol: 1e-4, rtol: 0 }, "BinaryCrossentropy 2×2");
  // And to f32 accuracy against the float64 formulas on the same (f32) inputs.
  const f = (v: number[]) => Array.from(Float32Array.from(v));
  const exact = (name: LossName, t: number[][], p: number[][], lbl: number[] = []) =>
    lossRef(name, f(p.flat()), isSparse(name) ? lbl : f(t.flat()), p.length, p[0].length);
  const tight = { atol: 0, rtol: 16 * U };
  assertClose(outs[2].data, exact("categoricalProbs", yTrueOneHot, yPred), tight, "cce exact");
  assertClose(outs[3].data, exact("sparseProbs", [], yPred, [1, 2]), tight, "scce exact");
  assertClose(outs[4].data, exact("categoricalProbs", eye, b), tight, "backend cce exact");
  const bce = exact("binaryLogits", [[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]]);
  assertClose(outs[9].data, bce, tight, "bce exact");
  assertClose(outs[6].data, [(bce[0] + bce[1]) / 2], tight, "bce rank 1 exact");
  assertClose(outs[8].data, [1.730], d3, "BinaryCrossentropy sum");
  assertClose(outs[9].data, [0.235, 1.496], d3, "BinaryCrossentropy none");
  assertClose(outs[10].data, [0.5], { atol: 0, rtol: 0 }, "MeanSquaredError");
  assertClose(outs[11].data, [0.5], { atol: 0, rtol: 0 }, "MeanAbsoluteError");
});

Deno.test("loss Keras parity: the clip at ε = 1e-7 and its gradient at the bounds", async () => {
  const eps = CLIP_LO, hi = CLIP_HI;
  const onTape = (fn: (p: Tensor<"f32">) => Tensor<"f32">, p: Tensor<"f32">) => {
    const { value, grads } = valueAndGradSync(() => fn(p), [p]);
    p.dispose();
    return [value, grads[0]];
  };
  const outs = await computeAll(() => [
    // A zero probability for the true class is clipped to ε: loss −log ε; the clip cuts the
    // gradient (Keras on TensorFlow: the gradient of clip_by_value is zero outside the range).
    ...onTape((p) => losses.categoricalCrossentropy(tensor([[1, 0]]), p), tensor([[0, 1]])),
    // Sparse from probabilities: c = clip(p) = [ε, 1 − ε]; loss log(Σc) − log c_0.
    ...onTape(
      (p) => losses.sparseCategoricalCrossentropy(i32([0], [1]), p),
      tensor([[0, 1]]),
    ),
    // Binary: p = 1 with t = 0 gives −log(1 − (1 − 2⁻²³)) = 23·ln 2; no gradient beyond the
    // bound, but exactly at the bounds the gradient passes (TensorFlow's inclusive clip).
    ...onTape((p) => losses.binaryCrossentropy(tensor([0, 1, 0, 1]), p), f32([1, 0, hi, eps], [4])),
    // A row of zero probabilities has no loss (Keras divides 0 by 0): NaN, and no gradient.
    ...onTape(
      (p) => losses.categoricalCrossentropy(tensor([[1, 0], [0, 1]]), p, { reduction: "none" }),
      tensor([[0, 0], [0.25, 0.75]]),
    ),
  ]);
  const [cceV, cceG, sV, sG, bV, bG, zV, zG] = outs.map((o) => o.data);
  assertClose(cceV, [-Math.log(eps)], { atol: 0, rtol: 4 * U }, "cce of a zero probability");
  assertEqualArrays(cceG, [0, 0], "cce gradient at a clipped probability");
  const s = eps + hi;
  assertClose(sV, [Math.log(s) - Math.log(eps)], { atol: 0, rtol: 8 * U }, "sparse clipped");
  assertEqualArrays(sG, [0, 0], "sparse: both probabilities lie outside [ε, 1 − ε]");
  const per = [-Math.log(1 - hi), -Math.log(eps), -Math.log(1 - hi), -Math.log(eps)];
  assertClose(bV, [per.reduce((a, b) => a + b) / 4], { atol: 0, rtol: 8 * U }, "bce at bounds");
  // Mean over the 4 elements of one sample: each gradient carries 1/4.
  const g = [0, 0, 1 / (1 - hi) / 4, -1 / eps / 4];
  assertClose(bG, g, { atol: 0, rtol: 8 * U }, "bce gradient at and beyond the bounds");
  assertClose(zV, [NaN, -Math.log(0.75)], { atol: 0, rtol: 4 * U }, "cce of a zero row");
  assertClose(zG, [0, 0, 1, -1 / 3], { atol: 0, rtol: 8 * U }, "cce gradient of a zero row");
});

Deno.test("loss: extreme logits (±80, ±1e4) give finite losses and exact gradients", async () => {
  const x = [[80, -80, 0], [-80, 80, 79], [1e4, -1e4, 0]];
  const p = f32(x.flat(), [3, 3]);
  const { value, grads } = valueAndGradSync(
    () => losses.sparseCategoricalCrossentropy(i32([1, 1, 1], [3]), p, { fromLogits: true }),
    [p],
  );
  const yOneHot = f32([0, 1, 0, 0, 1, 0, 0, 1, 0], [3, 3]);
  const c = valueAndGradSync(
    () => losses.categoricalCrossentropy(yOneHot, p, { fromLogits: true, reduction: "none" }),
    [p],
  );
  const bt = f32([0, 1, 1, 0], [4, 1]), bp = f32([80, -80, 1e4, -1e4], [4, 1]);
  const bce = losses.binaryCrossentropy(bt, bp, {
    fromLogits: true,
    reduction: "none",
  });
  const [v, g, cv, cg, bv] = await Promise.all(
    [value, grads[0], c.value, c.grads[0], bce].map((t) => t.data()),
  );
  for (const t of [value, grads[0], c.value, c.grads[0], bce, p, yOneHot, bt, bp]) t.dispose();
  // Row losses: 160, log(1 + e⁻¹) ≈ 0.31326, 2e4; the mean is their sum over 3.
  const rows = [160 + Math.log1p(2 * Math.exp(-80)), Math.log1p(Math.exp(-1)), 2e4];
  assertClose(v, [(rows[0] + rows[1] + rows[2]) / 3], { atol: 0, rtol: 8 * U }, "sparse mean");
  assertClose(cv, rows, { atol: 0, rtol: 8 * U }, "categorical none");
  // softmax − onehot(1), in float64: [1, −1, e⁻⁸⁰], [e⁻¹⁶⁰ ≈ 0, σ(1) − 1, 1 − σ(1)], [1, −1, 0].
  const e = x.flatMap((row) => Array.from(softmaxRow(row), (v, j) => v - (j === 1 ? 1 : 0)));
  // The kernel's exp(−80) carries the WGSL bound of 3 + 2·80 ulps; values below 2⁻¹²⁶ may flush.
  const atol = e.map((v) => 163 * U * Math.abs(v) + 2 ** -126);
  assertClose(g, e.map((v) => v / 3), { atol: atol.map((a) => a / 3), rtol: 8 * U }, "sparse grad");
  assertClose(cg, e, { atol, rtol: 8 * U }, "categorical grad");
  assertClose(bv, [80, 80, 0, 0], { atol: 0, rtol: 0 }, "binary from extreme logits");
});

// ---------------------------------------------------------------------------------------------
// Shapes: sequences, Keras's squeeze, empty batches, large batches

Deno.test("loss: rank-3 predictions, [B, 1] labels and [B] vs [B, 1] targets", async () => {
  const rng = new Rng(33);
  const logits = rng.floats(2 * 3 * 5, -3, 3), labels = rng.ints(6, 0, 4);
  const t = rng.floats(7, -1, 1), p = rng.floats(7, -1, 1);
  const outs = await computeAll(() => [
    losses.sparseCategoricalCrossentropy(i32(labels, [2, 3]), f32(logits, [2, 3, 5]), {
      fromLogits: true,
      reduction: "none",
    }),
    losses.sparseCategoricalCrossentropy(i32(labels, [6, 1]), f32(logits, [6, 5]), {
      fromLogits: true,
      reduction: "none",
    }),
    losses.meanSquaredError(f32(t, [7]), f32(p, [7, 1]), { reduction: "none" }),
    losses.meanSquaredError(f32(t, [7, 1]), f32(p, [7]), { reduction: "none" }),
    losses.meanAbsoluteError(f32(t, [7]), f32(p, [7]), { reduction: "none" }),
  ]);
  const per = lossRef("sparseLogits", logits, labels, 6, 5);
  const tol = { atol: rowTols("sparseLogits", logits, labels, 6, 5), rtol: 0 };
  assertShape(outs[0].shape, [2, 3], "sparse [2, 3] labels with [2, 3, 5] logits");
  assertClose(outs[0].data, per, tol, "sparse rank 3");
  assertShape(outs[1].shape, [6], "sparse [6, 1] labels");
  assertClose(outs[1].data, per, tol, "sparse [6, 1]");
  const mse = Array.from(t, (v, i) => (v - p[i]) ** 2);
  assertShape(outs[2].shape, [7], "mse [7] vs [7, 1]");
  assertClose(outs[2].data, mse, { atol: 0, rtol: 4 * U }, "mse [7] vs [7, 1]");
  assertShape(outs[3].shape, [7], "mse [7, 1] vs [7]");
  assertClose(outs[3].data, mse, { atol: 0, rtol: 4 * U }, "mse [7, 1] vs [7]");
  // Rank 1: the mean over the last axis leaves one value (Keras returns a scalar).
  assertShape(outs[4].shape, [], "mae [7] vs [7]");
  const mae = Array.from(t, (v, i) => Math.abs(v - p[i])).reduce((a, b) => a + b) / 7;
  assertClose(outs[4].data, [mae], { atol: 0, rtol: 10 * U }, "mae rank 1");
});

Deno.test("loss: an empty batch gives 0 (mean and sum) and an empty vector (none)", async () => {
  const outs = await computeAll(() => [
    losses.sparseCategoricalCrossentropy(i32([], [0]), f32([], [0, 4]), { fromLogits: true }),
    losses.categoricalCrossentropy(f32([], [0, 4]), f32([], [0, 4]), { reduction: "sum" }),
    losses.meanSquaredError(f32([], [0, 4]), f32([], [0, 4]), { reduction: "none" }),
  ]);
  assertEqualArrays(outs[0].data, [0], "mean of no samples");
  assertEqualArrays(outs[1].data, [0], "sum of no samples");
  assertShape(outs[2].shape, [0], "none of no samples");
});

Deno.test("loss: batches over 4,096 rows reduce in two passes, with the accumulator", async () => {
  const rng = new Rng(4097);
  const b = 9000, c = 3;
  const logits = rng.floats(b * c, -4, 4), labels = rng.ints(b, 0, c - 1);
  const acc = f32([1, 2, 3, 4, 5, 6], [6]); // adds to what is there
  const outs = await computeAll(() => [
    losses.sparseCategoricalCrossentropy(i32(labels, [b]), f32(logits, [b, c]), {
      fromLogits: true,
      accumulate: acc,
      accumulateAt: 2,
    }),
    losses.sparseCategoricalCrossentropy(i32(labels, [b]), f32(logits, [b, c]), {
      fromLogits: true,
      reduction: "sum",
    }),
  ]);
  const accData = await acc.data();
  acc.dispose();
  const per = lossRef("sparseLogits", logits, labels, b, c);
  const tols = Float64Array.from(
    { length: b },
    (_, r) => rowTol("sparseLogits", rowOf(logits, r, c), labels[r], 0),
  );
  // Two passes: per invocation ⌈9000 / (9 groups · 256)⌉ rows, then two 8-level trees.
  const mag = per.reduce((a, v) => a + Math.abs(v), 0);
  const sumTol = tols.reduce((a, v) => a + v, 0) + (4 + 16) * U * mag;
  const sum = reduceLossRef(per, "sum");
  assertClose(outs[1].data, [sum], { atol: sumTol, rtol: 0 }, "sum of 9000 rows");
  assertClose(outs[0].data, [sum / b], { atol: sumTol / b + 3 * U * sum / b, rtol: 0 }, "mean");
  let correct = 0;
  for (let r = 0; r < b; r++) {
    const row = rowOf(logits, r, c);
    if (row.indexOf(Math.max(...row)) === labels[r]) correct++;
  }
  const expected = [1, 2, 3 + sum, 4 + correct, 5 + b, 7];
  assertClose(accData, expected, { atol: [0, 0, sumTol, 0, 0, 0], rtol: 0 }, "acc");
});

Deno.test("loss: accumulate adds [loss sum, correct, samples, steps] across batches", async () => {
  const rng = new Rng(77);
  const acc = zeros([4]);
  const batches = [5, 7, 1].map((b) => ({
    b,
    logits: rng.floats(b * 4, -2, 2),
    labels: rng.ints(b, 0, 3),
  }));
  const means = await computeAll(() =>
    batches.map(({ b, logits, labels }) =>
      losses.sparseCategoricalCrossentropy(i32(labels, [b]), f32(logits, [b, 4]), {
        fromLogits: true,
        accumulate: acc,
      })
    )
  );
  const total = await acc.data();
  acc.dispose();
  let sum = 0, sumTol = 0, correct = 0, n = 0;
  batches.forEach(({ b, logits, labels }, i) => {
    const per = lossRef("sparseLogits", logits, labels, b, 4);
    const tols = rowTols("sparseLogits", logits, labels, b, 4);
    const atol = reducedTol(per, tols, "mean");
    assertClose(means[i].data, [reduceLossRef(per, "mean")], { atol, rtol: 0 }, `batch ${i}`);
    sum += reduceLossRef(per, "sum");
    sumTol += reducedTol(per, tols, "sum");
    n += b;
    for (let r = 0; r < b; r++) {
      const row = rowOf(logits, r, 4);
      if (row.indexOf(Math.max(...row)) === labels[r]) correct++;
    }
  });
  // Each batch's sum, plus one rounding per addition into the accumulator.
  const atol = [sumTol + batches.length * U * sum, 0, 0, 0];
  assertClose(total, [sum, correct, n, 3], { atol, rtol: 0 }, "accumulated");
});

Deno.test("loss: one dispatch forward with its gradient; one small launch backward", async () => {
  const rt = await ready();
  const p = f32(new Float32Array(32 * 10).fill(0.5), [32, 10]);
  const y = i32(new Int32Array(32).fill(3), [32]);
  try {
    const tape = new GradientTape();
    tape.watch(p);
    const before = rt.recorder.pending;
    const loss = tape.record(() =>
      losses.sparseCategoricalCrossentropy(y, p, { fromLogits: true })
    );
    const forward = rt.recorder.pending - before;
    const seed = tensor(1);
    const mid = rt.recorder.pending;
    const [g] = tape.gradientSync(loss, [p], seed);
    const backward = rt.recorder.pending - mid;
    tape.dispose();
    const d = await g.data();
    for (const t of [loss, seed, g]) t.dispose();
    if (forward !== 1) throw new Error(`forward took ${forward} dispatches, expected 1`);
    if (backward !== 1) throw new Error(`backward took ${backward} dispatches, expected 1`);
    assertClose(d.slice(0, 10), [...Array(10)].map((_, j) => (0.1 - (j === 3 ? 1 : 0)) / 32), {
      atol: 0,
      rtol: 4 * U,
    }, "gradient of a uniform row");
  } finally {
    p.dispose();
    y.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Labels out of range

Deno.test("loss: labels outside [0, C) give NaN for their rows, zero gradients, no stray reads", async () => {
  const c = 4;
  const logits = new Rng(9).floats(5 * c, -2, 2);
  const labels = [1, 4, -1, 3, 2147483647];
  const p = f32(logits, [5, c]);
  const y = i32(labels, [5]);
  const yu = u32([0, 4294967295, 2, 3, 1], [5]);
  const { value, grads } = valueAndGradSync(
    () => losses.sparseCategoricalCrossentropy(y, p, { fromLogits: true }),
    [p],
  );
  const none = losses.sparseCategoricalCrossentropy(y, p, { fromLogits: true, reduction: "none" });
  const probs = losses.sparseCategoricalCrossentropy(yu, p, { reduction: "none" });
  const [v, g, n, pr] = await Promise.all([value, grads[0], none, probs].map((t) => t.data()));
  for (const t of [value, grads[0], none, probs, p, y, yu]) t.dispose();
  if (!Number.isNaN(v[0])) throw new Error(`the mean with bad labels is ${v[0]}, expected NaN`);
  const per = lossRef("sparseLogits", logits, labels, 5, c);
  const tols = rowTols("sparseLogits", logits, labels.map((l) => (l >= 0 && l < c ? l : 0)), 5, c);
  assertClose(n, per, { atol: tols, rtol: 0 }, "none: NaN exactly for the bad rows");
  if (!Number.isNaN(pr[1]) || pr.filter(Number.isNaN).length !== 1) {
    throw new Error(`u32 label 4294967295 should give one NaN row: ${Array.from(pr)}`);
  }
  for (const r of [1, 2, 4]) {
    assertEqualArrays(g.slice(r * c, r * c + c), [0, 0, 0, 0], `gradient of bad row ${r}`);
  }
  const good = lossGradFD("sparseLogits", logits, labels, 5, c, [0.2, 0, 0, 0.2, 0]);
  for (const r of [0, 3]) {
    const tol = gradTol("sparseLogits", rowOf(logits, r, c), labels[r], 0, 0.2)
      .map((v) => v + FD_ATOL);
    const rows = [r * c, r * c + c];
    assertClose(g.slice(...rows), good.slice(...rows), { atol: tol, rtol: 0 }, `good row ${r}`);
  }
});

Deno.test("checkLabels names the first label out of range", async () => {
  const ok = i32([0, 1, 2, 9], [4]);
  const bad = i32([0, 3, 10, -1], [2, 2]);
  const badU = u32([1, 2, 7], [3]);
  try {
    await losses.checkLabels(ok, 10);
    await assertRejectsWgrad(
      () => losses.checkLabels(bad, 10),
      "value",
      ["checkLabels", "label 10", "index [1, 0]", "flat 2", "[0, 10)"],
      "i32 labels",
    );
    await assertRejectsWgrad(
      () => losses.checkLabels(badU, 7),
      "value",
      ["label 7", "index 2", "[0, 7)"],
      "u32 labels",
    );
    await assertRejectsWgrad(
      () => losses.checkLabels(f32([1], [1]), 3),
      "dtype",
      ["checkLabels", "f32"],
      "float labels",
    );
    await assertRejectsWgrad(() => losses.checkLabels(ok, 0), "value", ["numClasses"], "0 classes");
  } finally {
    for (const t of [ok, bad, badU]) t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Bad inputs

Deno.test("loss: errors name the op and both shapes before any GPU work", () => {
  const logits = f32(new Float32Array(12), [4, 3]);
  const labels = i32([0, 1, 2, 0], [4]);
  const short = i32([0, 1, 2], [3]);
  const oneHot = f32(new Float32Array(12), [4, 3]);
  const wide = f32(new Float32Array(20), [4, 5]);
  const fewer = f32(new Float32Array(9), [3, 3]);
  const s = tensor(1);
  const acc = zeros([2]);
  const L = losses;
  try {
    const cases: [() => unknown, WgradError["kind"], string[], string][] = [
      [
        () => L.sparseCategoricalCrossentropy(short, logits),
        "shape",
        ["sparseCategoricalCrossentropy", "batch sizes differ", "[3]", "[4, 3]"],
        "sparse batch",
      ],
      [
        () => L.sparseCategoricalCrossentropy(oneHot as unknown as Tensor<"i32">, logits),
        "dtype",
        ["sparseCategoricalCrossentropy", "f32 [4, 3]", "i32 or u32"],
        "sparse float labels",
      ],
      [
        () => L.sparseCategoricalCrossentropy(i32(new Int32Array(12), [4, 3]), logits),
        "shape",
        ["sparseCategoricalCrossentropy", "[4, 3]", "categoricalCrossentropy"],
        "sparse one-hot-shaped labels",
      ],
      [
        () => L.sparseCategoricalCrossentropy(labels, s),
        "shape",
        ["sparseCategoricalCrossentropy", "f32 []"],
        "scalar predictions",
      ],
      [
        () => L.categoricalCrossentropy(oneHot, wide),
        "shape",
        ["categoricalCrossentropy", "class counts differ", "[4, 3]", "[4, 5]"],
        "classes",
      ],
      [
        () => L.categoricalCrossentropy(fewer, oneHot),
        "shape",
        ["categoricalCrossentropy", "batch sizes differ", "[3, 3]", "[4, 3]"],
        "categorical batch",
      ],
      [
        () => L.categoricalCrossentropy(labels as unknown as Tensor<"f32">, logits),
        "dtype",
        ["categoricalCrossentropy", "i32 [4]", "sparseCategoricalCrossentropy"],
        "categorical integer targets",
      ],
      [
        () => L.binaryCrossentropy(s, logits),
        "shape",
        ["binaryCrossentropy", "ranks differ", "f32 []", "[4, 3]"],
        "binary ranks",
      ],
      [
        () => L.meanSquaredError(fewer, oneHot),
        "shape",
        ["meanSquaredError", "batch sizes differ", "[3, 3]", "[4, 3]"],
        "mse batch",
      ],
      [
        () =>
          L.meanAbsoluteError(oneHot, logits as unknown as Tensor<"f32">, {
            reduction: "avg" as "mean",
          }),
        "value",
        ["meanAbsoluteError", "avg"],
        "reduction",
      ],
      [
        () => L.categoricalCrossentropy(oneHot, logits, { labelSmoothing: 1.5 }),
        "value",
        ["categoricalCrossentropy", "labelSmoothing", "1.5"],
        "smoothing",
      ],
      [
        () => L.sparseCategoricalCrossentropy(labels, logits, { accumulate: acc }),
        "shape",
        ["sparseCategoricalCrossentropy", "accumulator", "2 elements"],
        "small accumulator",
      ],
      [
        () =>
          L.sparseCategoricalCrossentropy(labels, logits, {
            accumulate: zeros([4]),
            reduction: "none",
          }),
        "value",
        ["sparseCategoricalCrossentropy", "none"],
        "accumulate with none",
      ],
    ];
    for (const [fn, kind, parts, label] of cases) assertWgradError(fn, kind, parts, label);
    logits.dispose();
    assertWgradError(
      () => L.sparseCategoricalCrossentropy(labels, logits),
      "disposed",
      ["sparseCategoricalCrossentropy", "[4, 3]"],
      "disposed",
    );
  } finally {
    for (const t of [logits, labels, short, oneHot, wide, fewer, s, acc]) t.dispose();
  }
});
