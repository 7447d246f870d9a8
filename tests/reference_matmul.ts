/**
 * Float64 CPU references for the matrix product and the dense layer (shaders/matmul.wgsl), written
 * plainly: one loop per output, the activations from their textbook formulas. Alongside each
 * result they return the quantities the tests' error bounds are built from (Σ|a||b| per output).
 * @module
 */
import { normalCdf } from "./reference.ts";

/** The activations of `linear`, as the engine names them. */
export type ActivationName =
  | "linear"
  | "relu"
  | "sigmoid"
  | "tanh"
  | "elu"
  | "leakyRelu"
  | "gelu"
  | "geluTanh"
  | "softmax";

/** A row-major float64 matrix result with, per element, Σₖ |aᵢₖ||bₖⱼ| (and |bias|). */
export interface ProductRef {
  /** The exact product (to float64 rounding). */
  c: Float64Array;
  /** Σₖ |op(A)ᵢₖ|·|op(B)ₖⱼ| (+ |biasⱼ|), the scale of the summation's rounding error. */
  abs: Float64Array;
}

/**
 * C = op(A)·op(B) (+ bias), with op(A) [m, k] and op(B) [k, n]. A is stored [m, k], or [k, m] when
 * `transA`; B is stored [k, n], or [n, k] when `transB`.
 */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  transA = false,
  transB = false,
  bias: ArrayLike<number> | null = null,
): ProductRef {
  const c = new Float64Array(m * n);
  const abs = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j] : 0;
      let t = bias ? Math.abs(bias[j]) : 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[p * m + i] : a[i * k + p];
        const y = transB ? b[j * k + p] : b[p * n + j];
        s += x * y;
        t += Math.abs(x * y);
      }
      c[i * n + j] = s;
      abs[i * n + j] = t;
    }
  }
  return { c, abs };
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** An element-wise activation f(z) in float64 (not softmax). */
export function activationF64(act: ActivationName, z: number, alpha: number): number {
  switch (act) {
    case "linear":
      return z;
    case "relu":
      return z > 0 ? z : 0;
    case "sigmoid":
      return 1 / (1 + Math.exp(-z));
    case "tanh":
      return Math.tanh(z);
    case "elu":
      return z > 0 ? z : alpha * Math.expm1(z);
    case "leakyRelu":
      return z > 0 ? z : alpha * z;
    case "gelu":
      return z * normalCdf(z);
    case "geluTanh":
      return 0.5 * z * (1 + Math.tanh(SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)));
    case "softmax":
      throw new Error("reference: softmax is row-wise; use applyActivation");
  }
}

/** f'(z) in float64 (not softmax). */
export function activationDerivF64(act: ActivationName, z: number, alpha: number): number {
  switch (act) {
    case "linear":
      return 1;
    case "relu":
      return z > 0 ? 1 : 0;
    case "sigmoid": {
      const s = 1 / (1 + Math.exp(-z));
      return s * (1 - s);
    }
    case "tanh": {
      const t = Math.tanh(z);
      return 1 - t * t;
    }
    case "elu":
      return z > 0 ? 1 : alpha * Math.exp(z);
    case "leakyRelu":
      return z > 0 ? 1 : alpha;
    case "gelu":
      return normalCdf(z) + z * Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    case "geluTanh": {
      const u = SQRT_2_OVER_PI * (z + 0.044715 * z * z * z);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * z * z);
    }
    case "softmax":
      throw new Error("reference: softmax is row-wise");
  }
}

/** Applies `act` to a [rows, n] matrix of pre-activations (softmax along each row). */
export function applyActivation(
  act: ActivationName,
  z: ArrayLike<number>,
  rows: number,
  n: number,
  alpha: number,
): Float64Array {
  const y = new Float64Array(rows * n);
  if (act !== "softmax") {
    for (let i = 0; i < rows * n; i++) y[i] = activationF64(act, z[i], alpha);
    return y;
  }
  for (let i = 0; i < rows; i++) {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, z[i * n + j]);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(z[i * n + j] - mx);
    for (let j = 0; j < n; j++) y[i * n + j] = Math.exp(z[i * n + j] - mx) / s;
  }
  return y;
}

/**
 * The scalar Σ act(x·w + b) ⊙ r in float64: the objective of the gradient checks (r is a fixed
 * random weighting, so every output's gradient differs).
 */
export function linearObjective(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  r: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  act: ActivationName,
  alpha: number,
): number {
  const z = matmulRef(x, w, m, n, k, false, false, b).c;
  const y = applyActivation(act, z, m, n, alpha);
  let s = 0;
  for (let i = 0; i < m * n; i++) s += y[i] * r[i];
  return s;
}

/**
 * Central differences of `f` with respect to every element of `v` (float64 throughout):
 * (f(v + h·eᵢ) − f(v − h·eᵢ)) / 2h, with h = `step`·max(1, |vᵢ|).
 */
export function centralDifferences(
  f: (v: Float64Array) => number,
  v: ArrayLike<number>,
  step: number,
): Float64Array {
  const x = Float64Array.from(v);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const h = step * Math.max(1, Math.abs(x[i]));
    const keep = x[i];
    x[i] = keep + h;
    const up = f(x);
    x[i] = keep - h;
    const down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
