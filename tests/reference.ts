/**
 * Float64 CPU references for the kernels, written plainly: one loop per op, no shared tricks with
 * the shaders. Inputs are the exact values the GPU sees (f32, i32 or u32 elements read as
 * doubles); outputs are doubles, except the integer ops, which follow 32-bit wrap-around.
 * @module
 */

/** A shape, outermost dimension first. */
export type Shape = readonly number[];

/** Element types, as the engine names them. */
export type RefDType = "f32" | "i32" | "u32";

/** A float64 (or exact integer) result and its shape. */
export interface RefResult {
  data: Float64Array;
  shape: number[];
}

// ---------------------------------------------------------------------------------------------
// Shapes

/** The number of elements of a shape. */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** The multi-index of flat index `flat` in `shape`. */
export function unravel(flat: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return idx;
}

/** NumPy's broadcast shape, or null when the shapes do not broadcast. */
export function broadcastShape(a: Shape, b: Shape): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** The flat index in `shape` of the element that output multi-index `idx` reads (broadcast). */
function broadcastIndex(idx: readonly number[], shape: Shape): number {
  const off = idx.length - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) {
    const i = shape[d] === 1 ? 0 : idx[d + off];
    flat = flat * shape[d] + i;
  }
  return flat;
}

// ---------------------------------------------------------------------------------------------
// Special functions

/**
 * erf(x) to about 1e-15 relative error, from the everywhere-convergent series with positive terms
 * erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1)) (Abramowitz & Stegun 7.1.6); no
 * cancellation, so it is accurate at every |x|. Beyond |x| = 6, erf is ±1 to double precision.
 * A different method from the shader's Chebyshev fit on purpose.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const z = Math.abs(x);
  if (z > 6) return Math.sign(x);
  let term = z;
  let total = z;
  for (let n = 1; n < 500; n++) {
    term *= (2 * z * z) / (2 * n + 1);
    total += term;
    if (term < total * 1e-17) break;
  }
  const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * total;
  return x < 0 ? -r : r;
}

/** The standard normal CDF Φ(x), from erf. */
export function normalCdf(x: number): number {
  return 0.5 * (1 + erf(x / Math.SQRT2));
}

// ---------------------------------------------------------------------------------------------
// Unary ops

/** The unary ops the engine has (as in `UNARY_OPS`). */
export type UnaryName =
  | "neg"
  | "abs"
  | "exp"
  | "log"
  | "sqrt"
  | "square"
  | "relu"
  | "sigmoid"
  | "tanh"
  | "elu"
  | "leakyRelu"
  | "gelu"
  | "geluTanh"
  | "reciprocal"
  | "sign";

/** Float64 unary references; `alpha` is elu's and leaky relu's slope. */
export const unaryF64: Record<UnaryName, (x: number, alpha: number) => number> = {
  neg: (x) => -x,
  abs: (x) => Math.abs(x),
  exp: (x) => Math.exp(x),
  log: (x) => Math.log(x),
  sqrt: (x) => Math.sqrt(x),
  square: (x) => x * x,
  relu: (x) => (x > 0 ? x : 0),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  tanh: (x) => Math.tanh(x),
  elu: (x, alpha) => (x > 0 ? x : alpha * Math.expm1(x)),
  leakyRelu: (x, alpha) => (x > 0 ? x : alpha * x),
  gelu: (x) => x * normalCdf(x),
  geluTanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
  reciprocal: (x) => 1 / x,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
};

/** The unary ops that take i32, with 32-bit wrap-around as WGSL's integer arithmetic does. */
export const unaryI32: Partial<Record<UnaryName, (x: number) => number>> = {
  neg: (x) => -x | 0,
  abs: (x) => Math.abs(x) | 0,
  square: (x) => Math.imul(x, x),
  relu: (x) => (x > 0 ? x : 0),
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
};

/** Applies a unary reference element-wise. */
export function unaryRef(
  op: UnaryName,
  x: ArrayLike<number>,
  dtype: "f32" | "i32" = "f32",
  alpha = 0,
): Float64Array {
  const out = new Float64Array(x.length);
  if (dtype === "i32") {
    const f = unaryI32[op];
    if (!f) throw new Error(`reference: ${op} has no i32 form`);
    for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  } else {
    const f = unaryF64[op];
    for (let i = 0; i < x.length; i++) out[i] = f(x[i], alpha);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Binary ops

/** The binary ops the engine has (as in `BINARY_OPS`). */
export type BinaryName =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "maximum"
  | "minimum"
  | "pow"
  | CompareName;

/** The comparisons: 1 where the relation holds, else 0, in the operands' dtype. */
export type CompareName = "greater" | "greaterEqual" | "less" | "lessEqual" | "equal" | "notEqual";

/** A comparison of two scalars as 1 or 0. */
export function compareScalar(op: CompareName, a: number, b: number): number {
  switch (op) {
    case "greater":
      return a > b ? 1 : 0;
    case "greaterEqual":
      return a >= b ? 1 : 0;
    case "less":
      return a < b ? 1 : 0;
    case "lessEqual":
      return a <= b ? 1 : 0;
    case "equal":
      return a === b ? 1 : 0;
    case "notEqual":
      return a !== b ? 1 : 0;
  }
}

/**
 * aᵇ with the engine's documented semantics (src/ops/binary.ts): x⁰ = 1; a ≥ 0 gives |a|ᵇ;
 * a < 0 with an integer b keeps the sign of (−1)ᵇ; a < 0 with a fractional b is NaN.
 */
export function powRef(a: number, b: number): number {
  if (b === 0) return 1;
  const m = Math.pow(Math.abs(a), b);
  if (a >= 0) return m;
  if (!Number.isInteger(b)) return NaN;
  return Math.abs(b % 2) === 1 ? -m : m;
}

/** One binary op on two scalars of `dtype` (integers wrap at 32 bits; division truncates). */
export function binaryScalar(op: BinaryName, a: number, b: number, dtype: RefDType): number {
  if (
    op === "greater" || op === "greaterEqual" || op === "less" || op === "lessEqual" ||
    op === "equal" || op === "notEqual"
  ) {
    return compareScalar(op, a, b);
  }
  if (dtype === "f32") {
    switch (op) {
      case "add":
        return a + b;
      case "sub":
        return a - b;
      case "mul":
        return a * b;
      case "div":
        return a / b;
      case "maximum":
        return Math.max(a, b);
      case "minimum":
        return Math.min(a, b);
      case "pow":
        return powRef(a, b);
    }
  }
  let r: number;
  switch (op) {
    case "add":
      r = a + b;
      break;
    case "sub":
      r = a - b;
      break;
    case "mul":
      // The low 32 bits of the product, exactly (a·b itself may exceed 2⁵³).
      r = Math.imul(a, b);
      break;
    case "div":
      if (b === 0) throw new Error("reference: integer division by zero is not specified");
      r = Math.trunc(a / b);
      break;
    case "maximum":
      r = Math.max(a, b);
      break;
    case "minimum":
      r = Math.min(a, b);
      break;
    case "pow":
      throw new Error("reference: pow takes f32 only");
  }
  return dtype === "i32" ? r | 0 : r >>> 0;
}

/** A binary op's result, with the element of each operand that every output element read. */
export interface BinaryResult extends RefResult {
  /** Flat index into `a` for each output element. */
  ia: Int32Array;
  /** Flat index into `b` for each output element. */
  ib: Int32Array;
}

/** A binary op with NumPy broadcasting. Throws if the shapes do not broadcast. */
export function binaryRef(
  op: BinaryName,
  a: ArrayLike<number>,
  aShape: Shape,
  b: ArrayLike<number>,
  bShape: Shape,
  dtype: RefDType = "f32",
): BinaryResult {
  const shape = broadcastShape(aShape, bShape);
  if (!shape) throw new Error(`reference: [${aShape}] and [${bShape}] do not broadcast`);
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  const ia = new Int32Array(n), ib = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    ia[i] = broadcastIndex(idx, aShape);
    ib[i] = broadcastIndex(idx, bShape);
    out[i] = binaryScalar(op, a[ia[i]], b[ib[i]], dtype);
  }
  return { data: out, shape, ia, ib };
}

// ---------------------------------------------------------------------------------------------
// Reductions

/** The reductions the engine has. */
export type ReduceName = "sum" | "mean" | "max" | "min" | "argmax" | "argmin";

/** A reduction's result, with Σ|xᵢ| per output (the scale of a summation's rounding error). */
export interface ReduceResult extends RefResult {
  /** Σ|xᵢ| over each output's inputs. */
  absSum: Float64Array;
  /** Inputs per output. */
  r: number;
}

/** Normalises reduction axes the way NumPy does (negative from the end), sorted. */
export function normAxes(axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : [...axes];
  const out = list.map((a) => (a < 0 ? a + rank : a));
  for (const a of out) {
    if (a < 0 || a >= rank) throw new Error(`reference: axis out of range`);
  }
  if (new Set(out).size !== out.length) throw new Error(`reference: duplicate axis`);
  return out.sort((p, q) => p - q);
}

/**
 * Reduces `x` over `axes`, in float64 (sums of integers exactly; integer sums wrap at 32 bits).
 * argmax/argmin give the index within the reduced axes in row-major order; ties go to the first.
 */
export function reduceRef(
  op: ReduceName,
  x: ArrayLike<number>,
  shape: Shape,
  axes: number | readonly number[] | undefined,
  keepDims = false,
  dtype: RefDType = "f32",
): ReduceResult {
  const ax = normAxes(axes, shape.length);
  const kept = shape.map((_, i) => i).filter((i) => !ax.includes(i));
  const keptShape = kept.map((i) => shape[i]);
  const redShape = ax.map((i) => shape[i]);
  const nOut = sizeOf(keptShape);
  const r = sizeOf(redShape);
  const strides = stridesOf(shape);
  // Offsets of each output's first input, and of the inputs within one output (row-major order
  // over the reduced axes, which is the order argmax/argmin count in).
  const offsets = (dims: number[], sub: number[]): Float64Array =>
    Float64Array.from({ length: sizeOf(sub) }, (_, k) => {
      const idx = unravel(k, sub);
      return dims.reduce((off, axis, j) => off + idx[j] * strides[axis], 0);
    });
  const bases = offsets(kept, keptShape);
  const within = offsets(ax, redShape);
  const data = new Float64Array(nOut);
  const absSum = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let acc = op === "max" || op === "argmax"
      ? -Infinity
      : op === "min" || op === "argmin"
      ? Infinity
      : 0;
    let best = -1;
    let abs = 0;
    for (let k = 0; k < r; k++) {
      const v = x[bases[o] + within[k]];
      abs += Math.abs(v);
      switch (op) {
        case "sum":
        case "mean":
          acc += v;
          break;
        case "max":
          acc = Math.max(acc, v);
          break;
        case "min":
          acc = Math.min(acc, v);
          break;
        case "argmax":
          if (best < 0 || v > acc) {
            acc = v;
            best = k;
          }
          break;
        case "argmin":
          if (best < 0 || v < acc) {
            acc = v;
            best = k;
          }
          break;
      }
    }
    if (op === "mean") acc /= r;
    if (op === "sum" && dtype === "i32") acc = acc | 0;
    if (op === "sum" && dtype === "u32") acc = acc >>> 0;
    data[o] = op === "argmax" || op === "argmin" ? best : acc;
    absSum[o] = abs;
  }
  const outShape = keepDims ? shape.map((d, i) => (ax.includes(i) ? 1 : d)) : keptShape;
  return { data, shape: outShape, absSum, r };
}

// ---------------------------------------------------------------------------------------------
// Layout

/** Permutes axes: output axis i is input axis perm[i] (reverses the axes without `perm`). */
export function transposeRef(
  x: ArrayLike<number>,
  shape: Shape,
  perm?: readonly number[],
): RefResult {
  const p = perm ?? shape.map((_, i) => shape.length - 1 - i);
  const outShape = p.map((a) => shape[a]);
  const inStrides = stridesOf(shape);
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, outShape);
    let off = 0;
    for (let d = 0; d < p.length; d++) off += idx[d] * inStrides[p[d]];
    out[i] = x[off];
  }
  return { data: out, shape: outShape };
}

/**
 * Converts one value between dtypes. Float → integer truncates toward zero and saturates at the
 * integer type's range (negative floats give 0 as u32); NaN gives 0. Integer → float rounds to the
 * nearest f32. i32 ↔ u32 keeps the 32-bit pattern (two's complement), as WGSL's conversions do.
 */
export function castScalar(v: number, from: RefDType, to: RefDType): number {
  if (from === to) return v;
  if (to === "f32") return Math.fround(v);
  if (from === "f32") {
    if (Number.isNaN(v)) return 0;
    const t = Math.trunc(v);
    const [lo, hi] = to === "i32" ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
    return Math.min(hi, Math.max(lo, t));
  }
  return to === "i32" ? v | 0 : v >>> 0;
}

/** Converts every element between dtypes (see {@linkcode castScalar}). */
export function castRef(x: ArrayLike<number>, from: RefDType, to: RefDType): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = castScalar(x[i], from, to);
  return out;
}
