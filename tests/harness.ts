/**
 * Test harness for the kernel tests: a seeded input generator, closeness and equality assertions
 * with messages that locate the worst element, helpers that run GPU ops and read them back, and an
 * assertion for the engine's errors.
 * @module
 */
import { type DType, gpuInfo, scope, type Tensor, tensor, WgradError } from "../mod.ts";
import { type Shape, sizeOf, unravel } from "./reference.ts";

export * from "./reference.ts";

/** f32 machine epsilon: the spacing of f32 numbers at 1 (one ulp relative, 2⁻²³). */
export const EPS = 2 ** -23;

// Acquire the device once, before any test runs, so that the device's own long-lived WebGPU
// resources are not attributed to (and reported by the sanitizers of) the first test.
await gpuInfo();

// ---------------------------------------------------------------------------------------------
// Seeded inputs

/** A small deterministic generator (mulberry32): the same seed gives the same inputs everywhere. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1) with 32 random bits. */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** An integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** A random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }

  /** `n` f32 values uniform in [lo, hi). */
  floats(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** `n` positive f32 values log-uniform in [lo, hi) (every decade equally likely). */
  logFloats(n: number, lo: number, hi: number): Float32Array {
    const a = Math.log(lo), b = Math.log(hi);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.exp(this.uniform(a, b));
    return out;
  }

  /** `n` i32 values in [lo, hi], inclusive. */
  ints(n: number, lo: number, hi: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(lo, hi);
    return out;
  }

  /** `n` u32 values in [lo, hi], inclusive. */
  uints(n: number, lo: number, hi: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(lo, hi);
    return out;
  }

  /** `n` values of `dtype`: uniform in [lo, hi) for f32, integers in [lo, hi] otherwise. */
  values(dtype: DType, n: number, lo: number, hi: number): Float32Array | Int32Array | Uint32Array {
    return dtype === "f32"
      ? this.floats(n, lo, hi)
      : dtype === "i32"
      ? this.ints(n, lo, hi)
      : this.uints(n, lo, hi);
  }

  /** A shape of `rank` dimensions, each in [minDim, maxDim]. */
  shape(rank: number, maxDim: number, minDim = 1): number[] {
    return Array.from({ length: rank }, () => this.int(minDim, maxDim));
  }
}

// ---------------------------------------------------------------------------------------------
// Assertions

/** Closeness: |actual − expected| ≤ atol + rtol·|expected|, element by element. */
export interface Tolerance {
  /** Absolute tolerance: one number, or one per element (e.g. a summation's error scale). */
  atol: number | ArrayLike<number>;
  /** Relative tolerance. */
  rtol: number;
}

/** Exact equality, as a tolerance. */
export const EXACT: Tolerance = { atol: 0, rtol: 0 };

function fmt(v: number): string {
  return Number.isInteger(v) || !Number.isFinite(v) ? String(v) : v.toPrecision(9);
}

function where(i: number, shape?: Shape): string {
  return shape && shape.length > 1 && sizeOf(shape) > i
    ? `flat index ${i} (index [${unravel(i, shape).join(", ")}])`
    : `flat index ${i}`;
}

/**
 * Asserts that `actual` is within `tol` of `expected`, element by element. NaN matches only NaN
 * and infinities only the same infinity. On failure the message names `label`, the number of
 * elements out of tolerance, the max absolute and relative errors, the worst element (the one
 * furthest beyond its allowance) with its index and both values there, and the tolerances.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label: string,
  shape?: Shape,
): void {
  if (actual.length !== expected.length) {
    throw new Error(
      `${label}: length ${actual.length} where ${expected.length} elements were expected`,
    );
  }
  const atolAt = typeof tol.atol === "number"
    ? (() => tol.atol as number)
    : (i: number) => (tol.atol as ArrayLike<number>)[i];
  let maxAbs = 0, maxRel = 0, bad = 0, worst = -1, worstRatio = -1, worstAllowed = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    let ok: boolean;
    let err: number;
    const allowed = atolAt(i) + tol.rtol * Math.abs(e);
    if (Number.isNaN(e) || Number.isNaN(a)) {
      ok = Number.isNaN(e) && Number.isNaN(a);
      err = ok ? 0 : Infinity;
    } else if (!Number.isFinite(e) || !Number.isFinite(a)) {
      ok = a === e;
      err = ok ? 0 : Infinity;
    } else {
      err = Math.abs(a - e);
      ok = err <= allowed;
      maxAbs = Math.max(maxAbs, err);
      if (e !== 0) maxRel = Math.max(maxRel, err / Math.abs(e));
      else if (err > 0) maxRel = Infinity;
    }
    if (!ok) {
      bad++;
      const ratio = allowed > 0 ? err / allowed : Infinity;
      if (ratio > worstRatio || worst < 0) {
        worstRatio = ratio;
        worst = i;
        worstAllowed = allowed;
      }
    }
  }
  if (bad === 0) return;
  const a = actual[worst], e = expected[worst];
  const atolText = typeof tol.atol === "number"
    ? fmt(tol.atol)
    : `per element (here ${fmt(atolAt(worst))})`;
  throw new Error(
    `${label}: ${bad} of ${expected.length} elements out of tolerance ` +
      `(atol ${atolText}, rtol ${fmt(tol.rtol)})\n` +
      `  max abs error ${fmt(maxAbs)}, max rel error ${fmt(maxRel)}\n` +
      `  worst at ${where(worst, shape)}: actual ${fmt(a)}, expected ${fmt(e)} ` +
      `(abs error ${fmt(Math.abs(a - e))}, rel error ${
        fmt(e === 0 ? Infinity : Math.abs(a - e) / Math.abs(e))
      }, allowed ${fmt(worstAllowed)})`,
  );
}

/**
 * Asserts exact equality of two number arrays (integer results, layouts, casts). On failure the
 * message names `label`, the number of differing elements and the first one with both values.
 */
export function assertEqualArrays(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
  shape?: Shape,
): void {
  if (actual.length !== expected.length) {
    throw new Error(
      `${label}: length ${actual.length} where ${expected.length} elements were expected`,
    );
  }
  let bad = 0, first = -1;
  for (let i = 0; i < expected.length; i++) {
    const same = actual[i] === expected[i] ||
      (Number.isNaN(actual[i]) && Number.isNaN(expected[i]));
    if (!same) {
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad === 0) return;
  throw new Error(
    `${label}: ${bad} of ${expected.length} elements differ; first at ${where(first, shape)}: ` +
      `actual ${fmt(actual[first])}, expected ${fmt(expected[first])}`,
  );
}

/** Rounds every element to the nearest f32 (for exact comparisons with a float64 reference). */
export function roundF32(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, Math.fround);
}

/** Asserts that a shape is as expected. */
export function assertShape(actual: Shape, expected: Shape, label: string): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Error(`${label}: shape [${actual.join(", ")}], expected [${expected.join(", ")}]`);
  }
}

/**
 * Asserts that `fn` throws a {@linkcode WgradError} (of `kind`, when given) whose message
 * contains every string in `parts` (the op's name, the shapes). Returns the error.
 */
export function assertWgradError(
  fn: () => unknown,
  kind: WgradError["kind"] | undefined,
  parts: readonly string[],
  label: string,
): WgradError {
  let thrown: unknown = undefined;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    thrown = e;
  }
  if (!threw) throw new Error(`${label}: expected a WgradError, but nothing was thrown`);
  if (!(thrown instanceof WgradError)) {
    throw new Error(`${label}: expected a WgradError, got ${String(thrown)}`, { cause: thrown });
  }
  if (kind !== undefined && thrown.kind !== kind) {
    throw new Error(`${label}: expected kind "${kind}", got "${thrown.kind}": ${thrown.message}`);
  }
  for (const p of parts) {
    if (!thrown.message.includes(p)) {
      throw new Error(`${label}: the message does not mention "${p}": ${thrown.message}`);
    }
  }
  return thrown;
}

/** Like {@linkcode assertWgradError}, for an async function (e.g. `data()`). */
export async function assertRejectsWgrad(
  fn: () => Promise<unknown>,
  kind: WgradError["kind"] | undefined,
  parts: readonly string[],
  label: string,
): Promise<WgradError> {
  let thrown: unknown = undefined;
  let threw = false;
  try {
    await fn();
  } catch (e) {
    threw = true;
    thrown = e;
  }
  return assertWgradError(
    () => {
      if (threw) throw thrown;
    },
    kind,
    parts,
    label,
  );
}

// ---------------------------------------------------------------------------------------------
// Running ops

/** A tensor's elements and shape, as read back from the GPU. */
export interface Readback {
  data: Float32Array | Int32Array | Uint32Array;
  shape: number[];
  dtype: DType;
}

/** Uploads `data` as a tensor of `shape` and `dtype`. */
export function input(
  data: Float32Array | Int32Array | Uint32Array,
  shape: Shape,
  dtype?: DType,
): Tensor {
  return tensor(data, shape, dtype ?? dtypeOf(data));
}

/** Uploads f32 values (rounded to f32) as a tensor of `shape`. */
export function f32(data: ArrayLike<number>, shape: Shape): Tensor<"f32"> {
  return tensor(data instanceof Float32Array ? data : Float32Array.from(data), shape, "f32");
}

/** Uploads i32 values as a tensor of `shape`. */
export function i32(data: ArrayLike<number>, shape: Shape): Tensor<"i32"> {
  return tensor(data instanceof Int32Array ? data : Int32Array.from(data), shape, "i32");
}

/** Uploads u32 values as a tensor of `shape`. */
export function u32(data: ArrayLike<number>, shape: Shape): Tensor<"u32"> {
  return tensor(data instanceof Uint32Array ? data : Uint32Array.from(data), shape, "u32");
}

/** The dtype of a typed array. */
export function dtypeOf(data: Float32Array | Int32Array | Uint32Array): DType {
  return data instanceof Float32Array ? "f32" : data instanceof Int32Array ? "i32" : "u32";
}

/**
 * Runs `fn` in a {@linkcode scope} (so that its inputs and intermediates are disposed once their
 * work is recorded), reads every returned tensor back and disposes it. The reads run together, so
 * that their readback waits overlap.
 */
export async function computeAll(fn: () => Tensor[]): Promise<Readback[]> {
  const outs = scope(fn);
  try {
    const data = await Promise.all(outs.map((t) => t.data()));
    return outs.map((t, i) => ({ data: data[i], shape: [...t.shape], dtype: t.dtype }));
  } finally {
    for (const t of outs) t.dispose();
  }
}

/** Runs one op (see {@linkcode computeAll}) and reads its result back. */
export async function compute(fn: () => Tensor): Promise<Readback> {
  return (await computeAll(() => [fn()]))[0];
}

/** Formats a shape for labels. */
export function fmtDims(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}
