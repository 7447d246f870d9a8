/**
 * Float64 CPU references for softmax, log-softmax, the losses and the accuracy metrics, written
 * plainly from the formulas Keras documents (keras/src/losses/losses.py and
 * keras/src/backend/tensorflow/nn.py), one loop per op; and central differences of them for the
 * gradient checks. Inputs are the exact f32 values the GPU sees, read as doubles.
 * @module
 */

/** Keras's ε = 1e-7 and 1 − ε, as the f32 values the clip uses. */
export const CLIP_LO: number = Math.fround(1e-7);
/** f32(1 − 1e-7) = 1 − 2⁻²³. */
export const CLIP_HI: number = Math.fround(1 - 1e-7);

// ---------------------------------------------------------------------------------------------
// Softmax along one axis

/** How a shape splits into rows along `axis`: `rows` rows of `a` elements, `inner` apart. */
export interface AxisRows {
  rows: number;
  a: number;
  inner: number;
}

/** Rows along `axis` (negative counts from the end). */
export function axisRows(shape: readonly number[], axis: number): AxisRows {
  const ax = axis < 0 ? axis + shape.length : axis;
  const a = shape[ax];
  const inner = shape.slice(ax + 1).reduce((x, y) => x * y, 1);
  const outer = shape.slice(0, ax).reduce((x, y) => x * y, 1);
  return { rows: outer * inner, a, inner };
}

/** The flat indices of row r's elements. */
export function rowIndices(r: number, ar: AxisRows): number[] {
  const o = Math.floor(r / ar.inner), i = r % ar.inner;
  const base = o * ar.a * ar.inner + i;
  return Array.from({ length: ar.a }, (_, j) => base + j * ar.inner);
}

/** Softmax of one row: exp(x − max) / Σ exp(x − max). */
export function softmaxRow(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < x.length; j++) m = Math.max(m, x[j]);
  const y = new Float64Array(x.length);
  let s = 0;
  for (let j = 0; j < x.length; j++) s += y[j] = Math.exp(x[j] - m);
  for (let j = 0; j < x.length; j++) y[j] /= s;
  return y;
}

/** Log-softmax of one row: x − max − log Σ exp(x − max). */
export function logSoftmaxRow(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < x.length; j++) m = Math.max(m, x[j]);
  let s = 0;
  for (let j = 0; j < x.length; j++) s += Math.exp(x[j] - m);
  const ls = Math.log(s);
  const y = new Float64Array(x.length);
  for (let j = 0; j < x.length; j++) y[j] = x[j] - m - ls;
  return y;
}

/** Applies a row function along `axis` of a tensor of `shape`. */
export function alongAxis(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  fn: (row: Float64Array) => Float64Array,
): Float64Array {
  const ar = axisRows(shape, axis);
  const out = new Float64Array(x.length);
  for (let r = 0; r < ar.rows; r++) {
    const idx = rowIndices(r, ar);
    const y = fn(Float64Array.from(idx, (k) => x[k]));
    idx.forEach((k, j) => (out[k] = y[j]));
  }
  return out;
}

/** Softmax along `axis`. */
export function softmaxRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis = -1,
): Float64Array {
  return alongAxis(x, shape, axis, softmaxRow);
}

/** Log-softmax along `axis`. */
export function logSoftmaxRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis = -1,
): Float64Array {
  return alongAxis(x, shape, axis, logSoftmaxRow);
}

// ---------------------------------------------------------------------------------------------
// Losses, one row (sample) at a time

/** The losses, as the tests name them. */
export type LossName =
  | "sparseLogits"
  | "sparseProbs"
  | "categoricalLogits"
  | "categoricalProbs"
  | "binaryLogits"
  | "binaryProbs"
  | "mse"
  | "mae";

const clip = (v: number): number => Math.min(Math.max(v, CLIP_LO), CLIP_HI);

/**
 * The loss of one sample. `pred` is the row of predictions; `target` the class index (sparse) or
 * the row of targets; `smoothing` Keras's label smoothing. NaN for a class index outside [0, C).
 */
export function rowLoss(
  name: LossName,
  pred: ArrayLike<number>,
  target: number | ArrayLike<number>,
  smoothing = 0,
): number {
  const c = pred.length;
  switch (name) {
    case "sparseLogits": {
      const y = target as number;
      if (!(y >= 0 && y < c)) return NaN;
      return -logSoftmaxRow(pred)[y];
    }
    case "sparseProbs": {
      // TensorFlow: sparse_softmax_cross_entropy_with_logits(log(clip(p))).
      const y = target as number;
      if (!(y >= 0 && y < c)) return NaN;
      const logits = new Float64Array(c);
      for (let j = 0; j < c; j++) logits[j] = Math.log(clip(pred[j]));
      return -logSoftmaxRow(logits)[y];
    }
    case "categoricalLogits": {
      const t = smooth(target as ArrayLike<number>, 1 - smoothing, smoothing / c);
      const ls = logSoftmaxRow(pred);
      let loss = 0;
      for (let j = 0; j < c; j++) loss -= t[j] * ls[j];
      return loss;
    }
    case "categoricalProbs": {
      const t = smooth(target as ArrayLike<number>, 1 - smoothing, smoothing / c);
      let s = 0;
      for (let j = 0; j < c; j++) s += pred[j];
      let loss = 0;
      for (let j = 0; j < c; j++) loss -= t[j] * Math.log(clip(pred[j] / s));
      return loss;
    }
    case "binaryLogits": {
      const t = smooth(target as ArrayLike<number>, 1 - smoothing, smoothing / 2);
      let loss = 0;
      for (let j = 0; j < c; j++) {
        const x = pred[j];
        loss += Math.max(x, 0) - x * t[j] + Math.log1p(Math.exp(-Math.abs(x)));
      }
      return loss / c;
    }
    case "binaryProbs": {
      const t = smooth(target as ArrayLike<number>, 1 - smoothing, smoothing / 2);
      let loss = 0;
      for (let j = 0; j < c; j++) {
        const p = clip(pred[j]);
        loss -= t[j] * Math.log(p) + (1 - t[j]) * Math.log(1 - p);
      }
      return loss / c;
    }
    case "mse": {
      const t = target as ArrayLike<number>;
      let loss = 0;
      for (let j = 0; j < c; j++) loss += (t[j] - pred[j]) ** 2;
      return loss / c;
    }
    case "mae": {
      const t = target as ArrayLike<number>;
      let loss = 0;
      for (let j = 0; j < c; j++) loss += Math.abs(t[j] - pred[j]);
      return loss / c;
    }
  }
}

function smooth(t: ArrayLike<number>, mul: number, add: number): Float64Array {
  const out = new Float64Array(t.length);
  for (let j = 0; j < t.length; j++) out[j] = t[j] * mul + add;
  return out;
}

/** Whether a loss takes class indices. */
export function isSparse(name: LossName): boolean {
  return name === "sparseLogits" || name === "sparseProbs";
}

/** The per-sample losses of `rows` rows of `cols` predictions. */
export function lossRef(
  name: LossName,
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  rows: number,
  cols: number,
  smoothing = 0,
): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = Array.prototype.slice.call(pred, r * cols, (r + 1) * cols) as number[];
    const t = isSparse(name)
      ? target[r]
      : Array.prototype.slice.call(target, r * cols, (r + 1) * cols) as number[];
    out[r] = rowLoss(name, row, t, smoothing);
  }
  return out;
}

/** Keras's reductions of per-sample losses: the sum, or the sum over their number (0 if none). */
export function reduceLossRef(values: ArrayLike<number>, reduction: "sum" | "mean"): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return reduction === "sum" ? s : values.length ? s / values.length : 0;
}

// ---------------------------------------------------------------------------------------------
// Central differences

/** The step of a central difference at value v. */
export type StepFn = (v: number) => number;

/** Steps for inputs defined everywhere (logits, regression values): 1e-3. */
export const ABSOLUTE_STEP: StepFn = (): number => 1e-3;

/**
 * Steps for probabilities, whose losses take log p and log(1 − p): 1e-3 of the distance to the
 * nearer singularity, min(|p|, |1 − p|).
 */
export const RELATIVE_STEP: StepFn = (v: number): number =>
  1e-3 * Math.min(Math.abs(v), Math.abs(1 - v));

/**
 * The gradient of `f` at `x` by the five-point central difference
 * (−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)) / 12h in float64: truncation error h⁴·f⁽⁵⁾/30 and
 * rounding error about ε₆₄·|f|/h, both near 1e-11 for these functions with h = 1e-3 (times the
 * distance to 0 or 1 for probabilities, whose derivatives grow like 1/p and 1/(1 − p)). Inputs
 * must lie 2h away from kinks (the clip bounds, |t − p| = 0).
 */
export function centralDiff(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  step: StepFn = ABSOLUTE_STEP,
): Float64Array {
  const p = Float64Array.from(x);
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    const h = step(v);
    const at = (k: number): number => {
      p[i] = v + k * h;
      return f(p);
    };
    g[i] = (-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * h);
    p[i] = v;
  }
  return g;
}

/**
 * The gradient of Σ_rows w_r · loss_r with respect to the predictions (w_r = 1/rows for a mean,
 * 1 for a sum, the upstream gradient for "none"), by central differences row by row (a prediction
 * moves only its own row's loss).
 */
export function lossGradFD(
  name: LossName,
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  rows: number,
  cols: number,
  weights: ArrayLike<number>,
  smoothing = 0,
  step: StepFn = ABSOLUTE_STEP,
): Float64Array {
  const g = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.prototype.slice.call(pred, r * cols, (r + 1) * cols) as number[];
    const t = isSparse(name)
      ? target[r]
      : Array.prototype.slice.call(target, r * cols, (r + 1) * cols) as number[];
    const d = centralDiff((x) => rowLoss(name, x, t, smoothing), row, step);
    for (let j = 0; j < cols; j++) g[r * cols + j] = weights[r] * d[j];
  }
  return g;
}

/**
 * The gradient of Σ w ⊙ f(x) for a row function f (softmax, log-softmax) along `axis`, by central
 * differences row by row.
 */
export function rowFnGradFD(
  fn: (row: Float64Array) => Float64Array,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
): Float64Array {
  const ar = axisRows(shape, axis);
  const g = new Float64Array(x.length);
  for (let r = 0; r < ar.rows; r++) {
    const idx = rowIndices(r, ar);
    const row = Float64Array.from(idx, (k) => x[k]);
    const wr = Float64Array.from(idx, (k) => w[k]);
    const d = centralDiff((v) => {
      const y = fn(v);
      let s = 0;
      for (let j = 0; j < y.length; j++) s += wr[j] * y[j];
      return s;
    }, row);
    idx.forEach((k, j) => (g[k] = d[j]));
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Accuracy

/** Index of the largest element (the first of ties), as NumPy and TensorFlow's argmax. */
export function argmaxRow(x: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[best]) best = j;
  return best;
}

/** Per-row correctness of sparse categorical accuracy (a label outside [0, C) is incorrect). */
export function sparseAccuracyRef(
  labels: ArrayLike<number>,
  pred: ArrayLike<number>,
  rows: number,
  cols: number,
): Float64Array {
  return Float64Array.from({ length: rows }, (_, r) => {
    const row = Array.prototype.slice.call(pred, r * cols, (r + 1) * cols) as number[];
    return argmaxRow(row) === labels[r] ? 1 : 0;
  });
}

/** Per-row correctness of categorical accuracy: argmax of targets against argmax of predictions. */
export function categoricalAccuracyRef(
  target: ArrayLike<number>,
  pred: ArrayLike<number>,
  rows: number,
  cols: number,
): Float64Array {
  return Float64Array.from({ length: rows }, (_, r) => {
    const p = Array.prototype.slice.call(pred, r * cols, (r + 1) * cols) as number[];
    const t = Array.prototype.slice.call(target, r * cols, (r + 1) * cols) as number[];
    return argmaxRow(p) === argmaxRow(t) ? 1 : 0;
  });
}

/** Per-row binary accuracy: the mean over the row of [target == (pred > threshold)]. */
export function binaryAccuracyRef(
  target: ArrayLike<number>,
  pred: ArrayLike<number>,
  rows: number,
  cols: number,
  threshold = 0.5,
): Float64Array {
  return Float64Array.from({ length: rows }, (_, r) => {
    let hits = 0;
    for (let j = 0; j < cols; j++) {
      const k = r * cols + j;
      if (target[k] === (pred[k] > threshold ? 1 : 0)) hits++;
    }
    return hits / cols;
  });
}

// ---------------------------------------------------------------------------------------------
// Error bounds (for the tolerances): first-order bounds from WGSL's accuracy guarantees, in units
// of U = 2⁻²³ (one f32 ulp relative): +, −, × round to 1 ulp; ÷ 2.5 ulps; exp(x) 3 + 2|x| ulps;
// log 3 ulps, or 2⁻²¹ absolute on [0.5, 2]; a sum of n terms 1 ulp of the sum of their magnitudes
// per addition on its longest chain (n − 1 for a loop).

/** One f32 ulp, relative. */
export const U = 2 ** -23;

/** WGSL's bound on log(v): 3 ulps, or 2⁻²¹ absolute on [0.5, 2]. */
export function logErr(v: number): number {
  return v >= 0.5 && v <= 2 ? 2 ** -21 : 3 * U * Math.abs(Math.log(v));
}

/** Bounds for one softmax row computed the way the kernels do. */
export interface SoftmaxBound {
  /** The row maximum. */
  m: number;
  /** Σ exp(x − m). */
  s: number;
  /** Softmax, float64. */
  y: Float64Array;
  /** Relative error bound of each softmax value. */
  rel: Float64Array;
  /** Relative error bound of the sum s. */
  relS: number;
}

/**
 * Error bounds of a softmax row: x − m rounds (|x − m|·U/2 relative in exp), exp adds
 * 3 + 2|x − m| ulps, the sum adds `depth` ulps (its longest addition chain), the division 2.5.
 */
export function softmaxBound(x: ArrayLike<number>, depth: number): SoftmaxBound {
  let m = -Infinity;
  for (let j = 0; j < x.length; j++) m = Math.max(m, x[j]);
  const e = Float64Array.from(x, (v) => Math.exp(v - m));
  const a = Float64Array.from(x, (v) => (3 + 2.5 * Math.abs(v - m)) * U);
  let s = 0;
  for (let j = 0; j < x.length; j++) s += e[j];
  let relS = depth * U;
  for (let j = 0; j < x.length; j++) relS += (e[j] / s) * a[j];
  const y = Float64Array.from(e, (v) => v / s);
  const rel = Float64Array.from(a, (v) => v + relS + 2.5 * U);
  return { m, s, y, rel, relS };
}
