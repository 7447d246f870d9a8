/**
 * Gradients: a central-difference gradient check (tests/gradcheck.ts) of every differentiable op
 * in src/ops/unary.ts, binary.ts, reduce.ts and transform.ts, the conventions at their
 * non-differentiable points, and the tape machinery (src/autodiff).
 *
 * Method (see tests/gradcheck.ts): for an op f, random f32 inputs and a fixed random f32 cotangent
 * r of f's output shape, L = Σ f ⊙ r. The GPU's gradient of L, `grad(() => sum(mul(f(…), r)))`,
 * computed in f32, is compared with float64 central differences (Richardson-extrapolated from
 * steps h, h/2, h/4 with h = 1e-3·max(|x|, 0.1) unless stated; truncation O(h⁴)) of the float64
 * references in tests/reference.ts, and with the closed-form float64 derivative.
 *
 * Tolerances. EPS = 2⁻²³ is one f32 ulp at 1. Each gradient element is a sum of k terms
 * rⱼ·∂fⱼ/∂xᵢ; each term is allowed the error bound of the f32 arithmetic of its gradient rule,
 * and the sum EPS·(k − 1)·Σ|terms| more (recursive summation). The per-term bounds, in ulps of the
 * term (or, where the rule cancels internally, of the magnitudes involved), follow from WGSL's
 * accuracy of the builtins the rules use (exp 3 + 2|x| ulps, log 3 ulps or 2⁻²¹ absolute on
 * [0.5, 2], division 2.5 ulps, sqrt 4.5 ulps, pow through exp2/log2) and half an ulp per rounded
 * +, −, ·. An exact rule (neg, add, the layout ops, sum) is allowed 1 ulp, the f32 resolution of
 * the answer. The float64 numeric gradient is required to be accurate to 5% of the allowance
 * (checked per element from R(h) − R(h/2) and the references' rounding), so these tolerances
 * measure the GPU alone. Measured on llvmpipe, the largest error is about half the allowance
 * (mul's 1 ulp); the bound-based ones (exp, tanh, gelu, pow, the compositions) use 10–40% of it.
 *
 * Conventions at non-differentiable points (as TensorFlow): relu'(0) = 0, |x|'(0) = 0,
 * leakyRelu'(0) = α, elu'(0) = α; maximum/minimum ties send the gradient to the first operand;
 * max/min reductions share it equally among ties; pow's exponent gradient is 0 where the base
 * is ≤ 0; sign, comparisons and casts through integers have no gradient.
 * @module
 */
import {
  abs,
  add,
  broadcastTo,
  cast,
  clone,
  div,
  elu,
  exp,
  flush,
  gelu,
  grad,
  GradientTape,
  greater,
  keep,
  leakyRelu,
  log,
  max,
  maximum,
  mean,
  memoryInfo,
  min,
  minimum,
  mul,
  neg,
  noGrad,
  type Operand,
  pow,
  reciprocal,
  relu,
  reshape,
  scalar,
  scope,
  sigmoid,
  sign,
  sqrt,
  square,
  sub,
  sum,
  tanh,
  type Tensor,
  transpose,
  valueAndGrad,
  valueAndGradSync,
} from "../mod.ts";
import { recording } from "../src/autodiff/tape.ts";
import {
  assertClose,
  assertEqualArrays,
  assertRejectsWgrad,
  assertShape,
  assertWgradError,
  type BinaryName,
  binaryRef,
  EPS,
  f32,
  i32,
  normalCdf,
  normAxes,
  reduceRef,
  Rng,
  type Shape,
  sizeOf,
  transposeRef,
  type UnaryName,
  unaryRef,
  unravel,
} from "./harness.ts";
import { gradCheck, termAllow } from "./gradcheck.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Sizes 1, 7, 33 and 300 elements. */
const UNARY_SHAPES: readonly Shape[] = [[1], [7], [3, 11], [12, 25]];

const absAll = (v: ArrayLike<number>): Float64Array => Float64Array.from(v, Math.abs);

/** Values uniform in ±[lo, hi) (a random sign), i.e. kept at least `lo` away from 0. */
function awayFromZero(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() < 0.5 ? -1 : 1) * rng.uniform(lo, hi);
  return out;
}

/** n distinct values in [lo, hi], at least (hi − lo)/n apart, in random order. */
function distinct(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const p = rng.permutation(n);
  return Float32Array.from(p, (k) => lo + ((hi - lo) * (k + 0.5)) / n);
}

/** For each element of `shape`, the flat index of the output element a reduction over `axes` makes. */
function reducedIndex(shape: Shape, axes: number | readonly number[] | undefined): Int32Array {
  const ax = normAxes(axes, shape.length);
  const kept = shape.map((_, i) => i).filter((i) => !ax.includes(i));
  const keptShape = kept.map((i) => shape[i]);
  const out = new Int32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    let flat = 0;
    kept.forEach((d, j) => (flat = flat * keptShape[j] + idx[d]));
    out[i] = flat;
  }
  return out;
}

const phi = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

// ---------------------------------------------------------------------------------------------
// Unary ops

interface UnarySpec {
  label: string;
  op: UnaryName;
  alpha?: number;
  gpu: (x: Tensor<"f32">) => Tensor<"f32">;
  sample: (rng: Rng, n: number) => Float32Array;
  /** f′(x) in float64 (closed form). */
  deriv: (x: number) => number;
  /** Bound of |computed f′(x) − f′(x)| (per unit of the cotangent), in units of EPS. */
  err: (x: number) => number;
}

/** `ulps(x)` ulps of |f′(x)|. */
const ulpsOf = (d: (x: number) => number, ulps: (x: number) => number) => (x: number): number =>
  ulps(x) * Math.abs(d(x));

const sigmoid64 = (x: number): number => 1 / (1 + Math.exp(-x));
const sech2 = (x: number): number => 1 / Math.cosh(x) ** 2;

const expD = (x: number): number => Math.exp(x);
const logD = (x: number): number => 1 / x;
const sqrtD = (x: number): number => 0.5 / Math.sqrt(x);
const recipD = (x: number): number => -1 / (x * x);
const sigmoidD = (x: number): number => sigmoid64(x) * (1 - sigmoid64(x));
const geluD = (x: number): number => normalCdf(x) + x * phi(x);
function geluTanhD(x: number): number {
  const t = Math.tanh(GELU_K * (x + GELU_C * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
}
const eluD = (alpha: number) => (x: number): number => (x > 0 ? 1 : alpha * Math.exp(x));
const leakyD = (alpha: number) => (x: number): number => (x > 0 ? 1 : alpha);

/**
 * elu for x ≤ 0: dy·(y + α) with y = α·(eˣ − 1) from the forward kernel. Its errors — exp's
 * (3 + 2|x|) ulps of α·eˣ, and four roundings — are bounded by (4 + 2|x|) ulps of the magnitudes
 * involved, |y| + α = α·(2 − eˣ) (which is ≥ α·eˣ and ≥ α). For x > 0 the rule is exact.
 */
const eluErr = (alpha: number) => (x: number): number =>
  x > 0 ? 1 : (5 + 2 * Math.abs(x)) * alpha * (2 - Math.exp(x));

/**
 * gelu′ = Φ(x) + x·φ(x). Φ comes from the shader's erf fit, off by up to 1.2e-7 ≈ 1 EPS, evaluated
 * in f32 as 1 − t·exp(−z² − 1.27 + poly(t)), t = 1/(1 + z/2): exp's 3 ulps and the roundings of
 * t and of Horner's nine steps (terms ≤ 1.5) keep erfc(z) ≤ 1 within ~15 EPS, halved in Φ: 8 EPS
 * absolute. φ's exp(−x²/2) is within (3 + x²) ulps, plus 2 for the roundings of x² and x·φ;
 * then one add and one multiply (1.5 ulps of f′).
 */
const geluErr = (x: number): number =>
  8 + (5 + x * x) * Math.abs(x) * phi(x) + 1.5 * Math.abs(geluD(x));

/**
 * The tanh form: t = tanh(k(x + 0.044715x³)) from exp(−2|u|), with an absolute error
 * δt ≤ ((3 + 4|u| + 3)(1 − t²) + 2) EPS (exp's bound, the roundings of u, and of (1 − e)/(1 + e));
 * f′ = ½(1 + t) + ½x(1 − t²)·k(1 + 3·0.044715x²) takes ½δt + |x|·|t|·δt·k(1 + 0.134x²) from it,
 * and 4 ulps of each of its two terms for their roundings.
 */
function geluTanhErr(x: number): number {
  const u = GELU_K * (x + GELU_C * x ** 3);
  const t = Math.tanh(u);
  const dInner = GELU_K * (1 + 3 * GELU_C * x * x);
  const dt = (6 + 4 * Math.abs(u)) * (1 - t * t) + 2;
  const term2 = Math.abs(0.5 * x * (1 - t * t) * dInner);
  return 0.5 * dt + Math.abs(x * t) * dt * dInner + 4 * (0.5 * (1 + t) + term2);
}

const UNARY_SPECS: readonly UnarySpec[] = [
  {
    label: "neg",
    op: "neg",
    gpu: neg,
    sample: (g, n) => g.floats(n, -3, 3),
    deriv: () => -1,
    err: () => 1, // exact
  },
  {
    label: "abs",
    op: "abs",
    gpu: abs,
    sample: (g, n) => awayFromZero(g, n, 0.01, 3),
    deriv: Math.sign,
    err: () => 1, // exact
  },
  {
    label: "exp",
    op: "exp",
    gpu: exp,
    sample: (g, n) => g.floats(n, -4, 4),
    deriv: expD,
    err: ulpsOf(expD, (x) => 4 + 2 * Math.abs(x)), // y = exp(x): 3 + 2|x|; dy·y: 1
  },
  {
    label: "log",
    op: "log",
    gpu: log,
    sample: (g, n) => g.logFloats(n, 0.05, 20),
    deriv: logD,
    err: ulpsOf(logD, () => 3), // dy / x: 2.5
  },
  {
    label: "sqrt",
    op: "sqrt",
    gpu: sqrt,
    sample: (g, n) => g.logFloats(n, 0.05, 20),
    deriv: sqrtD,
    err: ulpsOf(sqrtD, () => 8), // y = sqrt(x): 4.5; dy·0.5 / y: 2.5 + 0.5
  },
  {
    label: "square",
    op: "square",
    gpu: square,
    sample: (g, n) => g.floats(n, -3, 3),
    deriv: (x) => 2 * x,
    err: ulpsOf((x) => 2 * x, () => 1), // dy·2 exact, ·x one rounding
  },
  {
    label: "reciprocal",
    op: "reciprocal",
    gpu: reciprocal,
    sample: (g, n) => awayFromZero(g, n, 0.1, 10),
    deriv: recipD,
    err: ulpsOf(recipD, () => 7), // y = 1/x: 2.5, twice; two products
  },
  {
    label: "relu",
    op: "relu",
    gpu: relu,
    sample: (g, n) => awayFromZero(g, n, 0.01, 3),
    deriv: (x) => (x > 0 ? 1 : 0),
    err: () => 1, // exact (a select)
  },
  {
    label: "sigmoid",
    op: "sigmoid",
    gpu: sigmoid,
    sample: (g, n) => g.floats(n, -8, 8),
    deriv: sigmoidD,
    // e^-|x|/(1 + e^-|x|)²: exp 3 + 2|x| (damped by (1 − e)/(1 + e) ≤ 1), the square 1.5, the
    // division 2.5, two products 1
    err: ulpsOf(sigmoidD, (x) => 8 + 2 * Math.abs(x)),
  },
  {
    label: "tanh",
    op: "tanh",
    gpu: tanh,
    sample: (g, n) => g.floats(n, -4, 4),
    deriv: sech2,
    // 4e/(1 + e)² with e = exp(−2|x|): 3 + 4|x|, then as sigmoid
    err: ulpsOf(sech2, (x) => 8 + 4 * Math.abs(x)),
  },
  ...[1, 0.5].map((alpha): UnarySpec => ({
    label: `elu alpha ${alpha}`,
    op: "elu",
    alpha,
    gpu: (x) => elu(x, alpha),
    sample: (g, n) => awayFromZero(g, n, 0.01, 3),
    deriv: eluD(alpha),
    err: eluErr(alpha),
  })),
  ...[0.2, 0.01].map((alpha): UnarySpec => ({
    label: `leakyRelu alpha ${alpha}`,
    op: "leakyRelu",
    alpha,
    gpu: (x) => leakyRelu(x, alpha),
    sample: (g, n) => awayFromZero(g, n, 0.01, 3),
    deriv: leakyD(alpha),
    // x ≤ 0: dy·f32(α): α's rounding 0.5, the product 0.5; x > 0: exact
    err: (x) => (x > 0 ? 1 : 2 * alpha),
  })),
  {
    label: "gelu (erf)",
    op: "gelu",
    gpu: (x) => gelu(x),
    sample: (g, n) => g.floats(n, -4, 4),
    deriv: geluD,
    err: geluErr,
  },
  {
    label: "gelu (tanh approximation)",
    op: "geluTanh",
    gpu: (x) => gelu(x, true),
    sample: (g, n) => g.floats(n, -4, 4),
    deriv: geluTanhD,
    err: geluTanhErr,
  },
];

for (const spec of UNARY_SPECS) {
  Deno.test(`grad: ${spec.label} against central differences and f′ in closed form`, async () => {
    const rng = new Rng(0x5eed + spec.label.length * 131 + (spec.alpha ?? 0) * 1000);
    for (const shape of UNARY_SHAPES) {
      const x = spec.sample(rng, sizeOf(shape));
      await gradCheck({
        label: `${spec.label} ${JSON.stringify(shape)}`,
        inputs: [{ data: x, shape }],
        gpu: spec.gpu,
        ref: (v) => ({ data: unaryRef(spec.op, v, "f32", spec.alpha ?? 0), shape }),
        vjp: ([v], r) => [v.map((xi, i) => r[i] * spec.deriv(xi))],
        allow: ({ xs: [v], r }) => v.map((xi, i) => EPS * Math.abs(r[i]) * spec.err(xi)),
        seed: sizeOf(shape),
      });
    }
  });
}

Deno.test("grad: sign has a zero gradient", async () => {
  const x = f32([-2, -0.5, 0, 0.5, 3], [5]);
  const [g] = await grad(() => sign(x), [x]);
  assertEqualArrays(await g.data(), [0, 0, 0, 0, 0], "d sign");
  // And it cuts the path it is on: d/dx (sign(x)·x) = sign(x).
  const [g2] = await grad(() => mul(sign(x), x), [x]);
  assertEqualArrays(await g2.data(), [-1, -1, 0, 1, 1], "d (sign(x)·x)");
  for (const t of [x, g, g2]) t.dispose();
});

// ---------------------------------------------------------------------------------------------
// Binary ops

type BinaryFn = (a: Operand<"f32">, b: Operand<"f32">) => Tensor<"f32">;

interface BinarySpec {
  op: BinaryName;
  gpu: BinaryFn;
  sampleA: (rng: Rng, n: number) => Float32Array;
  sampleB: (rng: Rng, n: number) => Float32Array;
  /** A number operand within the samples' domain (for op(x, c) and op(c, x)). */
  constant: number;
  /** ∂f/∂a and ∂f/∂b in float64. */
  da: (a: number, b: number) => number;
  db: (a: number, b: number) => number;
  /** Bounds of the computed ∂f/∂a and ∂f/∂b terms' errors (per unit cotangent), in EPS. */
  errA: (a: number, b: number) => number;
  errB: (a: number, b: number) => number;
}

/**
 * WGSL's pow is exp2(b·log2|a|) (as in tests/binary.test.ts): with t = |b·log2 a|, exp2 allows
 * 3 + 2t ulps, rounding b·log2 a adds ln2·t, and log2's error (3 ulps, or 2⁻²¹ absolute near 1)
 * is multiplied by ln2·|b|.
 */
function powUlps(a: number, b: number): number {
  const l = Math.log2(Math.abs(a));
  const t = Math.abs(b * l);
  return 3 + 2 * t + Math.LN2 * t + Math.LN2 * Math.abs(b) * Math.max(4, 3 * Math.abs(l)) + 1;
}

/** Odd multiples of 1/20 in (−2, 2) for maximum/minimum's first operand… */
const oddTwentieths = (g: Rng, n: number): Float32Array =>
  Float32Array.from({ length: n }, () => (2 * g.int(-20, 19) + 1) / 20);
/** …and even ones for the second: the operands never tie and differ by ≥ 0.05. */
const evenTwentieths = (g: Rng, n: number): Float32Array =>
  Float32Array.from({ length: n }, () => (2 * g.int(-20, 20)) / 20);

const one = () => 1;
const BINARY_SPECS: readonly BinarySpec[] = [
  {
    op: "add",
    gpu: add,
    sampleA: (g, n) => g.floats(n, -2, 2),
    sampleB: (g, n) => g.floats(n, -2, 2),
    constant: 1.7,
    da: one,
    db: one,
    errA: one, // exact
    errB: one,
  },
  {
    op: "sub",
    gpu: sub,
    sampleA: (g, n) => g.floats(n, -2, 2),
    sampleB: (g, n) => g.floats(n, -2, 2),
    constant: 1.7,
    da: one,
    db: () => -1,
    errA: one, // exact
    errB: one,
  },
  {
    op: "mul",
    gpu: mul,
    sampleA: (g, n) => g.floats(n, -2, 2),
    sampleB: (g, n) => g.floats(n, -2, 2),
    constant: -1.7,
    da: (_a, b) => b,
    db: (a) => a,
    errA: (_a, b) => Math.abs(b), // dy·b: one rounding
    errB: (a) => Math.abs(a),
  },
  {
    op: "div",
    gpu: div,
    sampleA: (g, n) => awayFromZero(g, n, 0.5, 2),
    sampleB: (g, n) => awayFromZero(g, n, 0.5, 2),
    constant: 1.7,
    da: (_a, b) => 1 / b,
    db: (a, b) => -a / (b * b),
    errA: (_a, b) => 3 / Math.abs(b), // dy / b: 2.5
    errB: (a, b) => (6 * Math.abs(a)) / (b * b), // (dy / b)·y with y = a / b: 2.5 + 2.5 + 0.5
  },
  {
    op: "maximum",
    gpu: maximum,
    sampleA: oddTwentieths,
    sampleB: evenTwentieths,
    constant: 0.325, // a multiple of 1/40, not of 1/20: no ties with either operand's samples
    da: (a, b) => (a >= b ? 1 : 0),
    db: (a, b) => (a >= b ? 0 : 1),
    errA: one, // dy·mask and dy − dy·mask: exact
    errB: one,
  },
  {
    op: "minimum",
    gpu: minimum,
    sampleA: oddTwentieths,
    sampleB: evenTwentieths,
    constant: 0.325,
    da: (a, b) => (a <= b ? 1 : 0),
    db: (a, b) => (a <= b ? 0 : 1),
    errA: one,
    errB: one,
  },
  {
    op: "pow",
    gpu: pow,
    sampleA: (g, n) => g.floats(n, 0.3, 3),
    sampleB: (g, n) => g.floats(n, -2.5, 2.5),
    constant: 1.7,
    da: (a, b) => b * Math.pow(a, b - 1),
    db: (a, b) => Math.pow(a, b) * Math.log(a),
    // dy·(pow(a, b − 1)·b): pow's bound at b − 1, the rounding of b − 1 (½ ulp of b − 1, times
    // |ln a| relative), two products
    errA: (a, b) =>
      Math.abs(b * Math.pow(a, b - 1)) *
      (powUlps(a, b - 1) + 0.5 * Math.abs(Math.log(a) * (b - 1)) + 1),
    // dy·(y·ln a): y within powUlps, ln within 3 ulps or 4 EPS absolute, two products
    errB: (a, b) => Math.pow(a, b) * (Math.abs(Math.log(a)) * (powUlps(a, b) + 4) + 4),
  },
];

/** Operand shape pairs: same shape, [N,C]·[C] both ways, [N,1]·[1,C], rank 0, rank 4, 320 elements. */
const BINARY_SHAPES: readonly (readonly [Shape, Shape])[] = [
  [[1], [1]],
  [[7], [7]],
  [[3, 11], [3, 11]],
  [[5, 7], [7]],
  [[7], [5, 7]],
  [[6, 1], [1, 5]],
  [[], [4, 5]],
  [[4, 5], []],
  [[2, 1, 3, 1], [1, 4, 1, 5]],
  [[2, 3, 4, 5], [3, 1, 5]],
  [[20, 16], [16]],
];

/** The allowance of a binary op's gradients from its terms (see tests/gradcheck.ts). */
function binaryAllow(
  spec: BinarySpec,
  res: { ia: Int32Array; ib: Int32Array },
  a: Float64Array,
  b: Float64Array,
  r: Float64Array,
  which: "a" | "b",
): Float64Array {
  const n = res.ia.length;
  const err = new Float64Array(n), mag = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const av = a[res.ia[j]], bv = b[res.ib[j]];
    const d = which === "a" ? spec.da(av, bv) : spec.db(av, bv);
    const e = which === "a" ? spec.errA(av, bv) : spec.errB(av, bv);
    mag[j] = Math.abs(r[j] * d);
    err[j] = d === 0 ? 0 : EPS * Math.abs(r[j]) * e;
  }
  const size = which === "a" ? a.length : b.length;
  return termAllow(size, [{ index: which === "a" ? res.ia : res.ib, err, mag }]);
}

/** The closed-form gradients of Σ op(a, b) ⊙ r, accumulated over broadcasting. */
function binaryVjp(
  spec: BinarySpec,
  res: { ia: Int32Array; ib: Int32Array },
  a: Float64Array,
  b: Float64Array,
  r: Float64Array,
): [Float64Array, Float64Array] {
  const ga = new Float64Array(a.length), gb = new Float64Array(b.length);
  for (let j = 0; j < res.ia.length; j++) {
    const av = a[res.ia[j]], bv = b[res.ib[j]];
    ga[res.ia[j]] += r[j] * spec.da(av, bv);
    gb[res.ib[j]] += r[j] * spec.db(av, bv);
  }
  return [ga, gb];
}

for (const spec of BINARY_SPECS) {
  Deno.test(`grad: ${spec.op} with broadcasting against central differences`, async () => {
    const rng = new Rng(0xb1 + spec.op.length * 7919 + spec.op.charCodeAt(0));
    for (const [sa, sb] of BINARY_SHAPES) {
      const a = spec.sampleA(rng, sizeOf(sa)), b = spec.sampleB(rng, sizeOf(sb));
      const ref = (x: Float64Array, y: Float64Array) => binaryRef(spec.op, x, sa, y, sb);
      await gradCheck({
        label: `${spec.op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
        inputs: [{ data: a, shape: sa }, { data: b, shape: sb }],
        gpu: (x, y) => spec.gpu(x, y),
        ref,
        vjp: ([x, y], r) => binaryVjp(spec, ref(x, y), x, y, r),
        allow: ({ input, xs: [x, y], r }) =>
          binaryAllow(spec, ref(x, y), x, y, r, input === 0 ? "a" : "b"),
        seed: sizeOf(sa) * 31 + sizeOf(sb),
      });
    }
  });

  Deno.test(`grad: ${spec.op} with a number operand, a rank-0 tensor, and x used twice`, async () => {
    const rng = new Rng(0xc0 + spec.op.charCodeAt(1));
    const c = Math.fround(spec.constant);
    for (const shape of [[1], [7], [3, 11], [300]] as const) {
      const n = sizeOf(shape);
      // op(x, c) and op(c, x), the number becoming a scalar.
      const xa = spec.sampleA(rng, n);
      const refA = (x: Float64Array) => binaryRef(spec.op, x, shape, [c], []);
      await gradCheck({
        label: `${spec.op}(x ${JSON.stringify(shape)}, ${c})`,
        inputs: [{ data: xa, shape }],
        gpu: (x) => spec.gpu(x, spec.constant),
        ref: refA,
        vjp: ([x], r) => [binaryVjp(spec, refA(x), x, Float64Array.of(c), r)[0]],
        allow: ({ xs: [x], r }) => binaryAllow(spec, refA(x), x, Float64Array.of(c), r, "a"),
        seed: n,
      });
      const xb = spec.sampleB(rng, n);
      const refB = (x: Float64Array) => binaryRef(spec.op, [c], [], x, shape);
      await gradCheck({
        label: `${spec.op}(${c}, x ${JSON.stringify(shape)})`,
        inputs: [{ data: xb, shape }],
        gpu: (x) => spec.gpu(spec.constant, x),
        ref: refB,
        vjp: ([x], r) => [binaryVjp(spec, refB(x), Float64Array.of(c), x, r)[1]],
        allow: ({ xs: [x], r }) => binaryAllow(spec, refB(x), Float64Array.of(c), x, r, "b"),
        seed: n + 1,
      });
      // op(x, x): both operands' gradients reach x (maximum/minimum tie everywhere: the first
      // operand takes the gradient, and d/dx max(x, x) = 1 either way).
      const xx = spec.sampleA(rng, n);
      const refX = (x: Float64Array) => binaryRef(spec.op, x, shape, x, shape);
      await gradCheck({
        label: `${spec.op}(x, x) ${JSON.stringify(shape)}`,
        inputs: [{ data: xx, shape }],
        gpu: (x) => spec.gpu(x, x),
        ref: refX,
        vjp: ([x], r) => {
          const [ga, gb] = binaryVjp(spec, refX(x), x, x, r);
          return [ga.map((v, i) => v + gb[i])];
        },
        allow: ({ xs: [x], r }) => {
          const res = refX(x);
          const ga = binaryAllow(spec, res, x, x, r, "a");
          const gb = binaryAllow(spec, res, x, x, r, "b");
          // Two terms per element, added in f32: one more rounding of the sum of their sizes.
          const [va, vb] = binaryVjp(spec, res, x, x, r);
          return ga.map((v, i) => v + gb[i] + EPS * (Math.abs(va[i]) + Math.abs(vb[i])));
        },
        seed: n + 2,
      });
    }
    // A rank-0 tensor operand, on either side, differentiated with the other.
    for (const shape of [[7], [2, 3, 5]] as const) {
      const x = spec.sampleA(rng, sizeOf(shape)), s = spec.sampleB(rng, 1);
      const ref = (p: Float64Array, q: Float64Array) => binaryRef(spec.op, p, shape, q, []);
      await gradCheck({
        label: `${spec.op}(x ${JSON.stringify(shape)}, rank-0 tensor)`,
        inputs: [{ data: x, shape }, { data: s, shape: [] }],
        gpu: (p, q) => spec.gpu(p, q),
        ref,
        vjp: ([p, q], r) => binaryVjp(spec, ref(p, q), p, q, r),
        allow: ({ input, xs: [p, q], r }) =>
          binaryAllow(spec, ref(p, q), p, q, r, input === 0 ? "a" : "b"),
        seed: 77,
      });
      const y = spec.sampleB(rng, sizeOf(shape)), t = spec.sampleA(rng, 1);
      const ref2 = (p: Float64Array, q: Float64Array) => binaryRef(spec.op, p, [], q, shape);
      await gradCheck({
        label: `${spec.op}(rank-0 tensor, x ${JSON.stringify(shape)})`,
        inputs: [{ data: t, shape: [] }, { data: y, shape }],
        gpu: (p, q) => spec.gpu(p, q),
        ref: ref2,
        vjp: ([p, q], r) => binaryVjp(spec, ref2(p, q), p, q, r),
        allow: ({ input, xs: [p, q], r }) =>
          binaryAllow(spec, ref2(p, q), p, q, r, input === 0 ? "a" : "b"),
        seed: 78,
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Reductions

/** Shapes and axes: single axes (also negative), several, all (omitted), keepDims; R > 64. */
const REDUCE_CASES: readonly {
  shape: Shape;
  axes: number | readonly number[] | undefined;
  keepDims?: boolean;
}[] = [
  { shape: [1], axes: 0 },
  { shape: [7], axes: 0 },
  { shape: [7], axes: undefined, keepDims: true },
  { shape: [3, 11], axes: 0 },
  { shape: [3, 11], axes: 1 },
  { shape: [3, 11], axes: -1, keepDims: true },
  { shape: [4, 5, 6], axes: [0, 2] },
  { shape: [4, 5, 6], axes: [1, 2], keepDims: true },
  { shape: [4, 5, 6], axes: undefined },
  { shape: [2, 3, 4, 5], axes: [1, 3] },
  { shape: [2, 3, 4, 5], axes: [-4, -2], keepDims: true },
  { shape: [3, 100], axes: 1 },
  { shape: [300], axes: undefined },
  { shape: [1, 1], axes: [0, 1] },
];

const REDUCERS = {
  sum: (x: Tensor<"f32">, axes?: number | readonly number[], keepDims?: boolean) =>
    sum(x, axes, { keepDims }),
  mean: (x: Tensor<"f32">, axes?: number | readonly number[], keepDims?: boolean) =>
    mean(x, axes, { keepDims }),
  max: (x: Tensor<"f32">, axes?: number | readonly number[], keepDims?: boolean) =>
    max(x, axes, { keepDims }),
  min: (x: Tensor<"f32">, axes?: number | readonly number[], keepDims?: boolean) =>
    min(x, axes, { keepDims }),
} as const;

for (const op of ["sum", "mean", "max", "min"] as const) {
  Deno.test(`grad: ${op} over axes against central differences`, async () => {
    const rng = new Rng(0x7ed + op.charCodeAt(1));
    for (const c of REDUCE_CASES) {
      const n = sizeOf(c.shape);
      // max/min: distinct values (≥ 4/n apart), so that no step crosses a tie.
      const x = op === "max" || op === "min" ? distinct(rng, n, -2, 2) : rng.floats(n, -2, 2);
      const idx = reducedIndex(c.shape, c.axes);
      const ref = (v: Float64Array) => reduceRef(op, v, c.shape, c.axes, c.keepDims ?? false);
      await gradCheck({
        label: `${op} ${JSON.stringify(c.shape)} axes ${JSON.stringify(c.axes)}` +
          (c.keepDims ? " keepDims" : ""),
        inputs: [{ data: x, shape: c.shape }],
        gpu: (v) => REDUCERS[op](v, c.axes, c.keepDims),
        ref,
        vjp: ([v], r) => {
          const res = ref(v);
          return [v.map((xi, i) => {
            const rj = r[idx[i]];
            if (op === "sum") return rj;
            if (op === "mean") return rj / res.r;
            return xi === res.data[idx[i]] ? rj : 0;
          })];
        },
        // sum and max/min: the cotangent passed through (or masked), exact; mean: ·f32(1/R),
        // two roundings. One term per element.
        ulps: op === "mean" ? 2 : 1,
        // Linear (or piecewise linear with gaps ≥ 4/n ≥ 0.013): large steps are exact and keep
        // the rounding of the float64 sums out of the differences.
        step: op === "max" || op === "min" ? 1e-3 : 1e-2,
        seed: n,
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Layout ops

Deno.test("grad: transpose with random permutations of rank 2 to 5", async () => {
  const rng = new Rng(0x7a);
  const cases: { shape: number[]; perm?: number[] }[] = [
    { shape: [1, 1] },
    { shape: [7, 1] },
    { shape: [3, 11] },
    { shape: [20, 15] },
  ];
  for (let rank = 2; rank <= 5; rank++) {
    for (let k = 0; k < 3; k++) {
      let shape: number[];
      do shape = rng.shape(rank, rank <= 3 ? 7 : 4); while (sizeOf(shape) > 400);
      cases.push({ shape, perm: rng.permutation(rank) });
    }
  }
  for (const { shape, perm } of cases) {
    const x = rng.floats(sizeOf(shape), -2, 2);
    const src = transposeRef(Float64Array.from(x, (_, i) => i), shape, perm).data;
    await gradCheck({
      label: `transpose ${JSON.stringify(shape)} perm ${JSON.stringify(perm)}`,
      inputs: [{ data: x, shape }],
      gpu: (v) => transpose(v, perm),
      ref: (v) => transposeRef(v, shape, perm),
      vjp: (_xs, r) => {
        const g = new Float64Array(src.length);
        src.forEach((s, j) => (g[s] = r[j]));
        return [g];
      },
      ulps: 1, // the cotangent, moved: exact
      step: 1e-2,
      seed: sizeOf(shape),
    });
  }
});

Deno.test("grad: reshape, clone and cast f32 → f32 pass the gradient through", async () => {
  const rng = new Rng(0x8e);
  const cases: readonly [Shape, number[]][] = [
    [[], [1, 1]],
    [[1], []],
    [[7], [7, 1]],
    [[3, 11], [33]],
    [[12], [2, -1, 3]],
    [[4, 5, 15], [15, 20]],
  ];
  for (const [from, to] of cases) {
    const x = rng.floats(sizeOf(from), -2, 2);
    const resolved = to.map((d) => (d === -1 ? sizeOf(from) / -sizeOf(to) : d));
    const ops: [string, (v: Tensor<"f32">) => Tensor<"f32">, Shape][] = [
      [`reshape → ${JSON.stringify(to)}`, (v) => reshape(v, to), resolved],
      ["clone", (v) => clone(v), from],
      ["cast f32 → f32", (v) => cast(v, "f32"), from],
    ];
    for (const [name, fn, outShape] of ops) {
      await gradCheck({
        label: `${name} of ${JSON.stringify(from)}`,
        inputs: [{ data: x, shape: from }],
        gpu: fn,
        ref: (v) => ({ data: v.slice(), shape: outShape }),
        vjp: (_xs, r) => [r.slice()],
        ulps: 1,
        step: 1e-2,
        seed: sizeOf(from) + 5,
      });
    }
  }
});

Deno.test("grad: broadcastTo sums the gradient back over the broadcast axes", async () => {
  const rng = new Rng(0xbc);
  const cases: readonly [Shape, Shape][] = [
    [[], [5]],
    [[1], [2, 3]],
    [[3], [4, 3]],
    [[7], [7]],
    [[2, 1, 3], [2, 4, 3]],
    [[5, 1], [2, 5, 7]],
    [[1, 11, 1], [3, 11, 9]],
  ];
  for (const [from, to] of cases) {
    const x = rng.floats(sizeOf(from), -2, 2);
    const zeros = new Float64Array(sizeOf(to));
    const ref = (v: Float64Array) => binaryRef("add", v, from, zeros, to);
    await gradCheck({
      label: `broadcastTo ${JSON.stringify(from)} → ${JSON.stringify(to)}`,
      inputs: [{ data: x, shape: from }],
      gpu: (v) => broadcastTo(v, to),
      ref,
      vjp: ([v], r) => {
        const g = new Float64Array(v.length);
        ref(v).ia.forEach((i, j) => (g[i] += r[j]));
        return [g];
      },
      ulps: 1, // terms exact; the summation is accounted for by the number of terms
      step: 1e-2,
      seed: sizeOf(to),
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Compositions

Deno.test("grad: mean(square(add(x, b))), the GradientTape notebook's loss without matmul", async () => {
  const rng = new Rng(0x1b);
  const xShape = [4, 3], bShape = [3];
  const x = rng.floats(12, -2, 2), b = rng.floats(3, -1, 1);
  const ref = (p: Float64Array, q: Float64Array) => {
    const s = binaryRef("add", p, xShape, q, bShape);
    return reduceRef("mean", unaryRef("square", s.data), s.shape, undefined);
  };
  // dL/dx = r·2(x + b)/12, dL/db = Σₙ r·2(xₙ + b)/12.
  const terms = (p: Float64Array, q: Float64Array, r: Float64Array) =>
    p.map((v, i) => (r[0] * 2 * (v + q[i % 3])) / 12);
  const report = await gradCheck({
    label: "mean(square(add(x, b)))",
    inputs: [{ data: x, shape: xShape }, { data: b, shape: bShape }],
    gpu: (p, q) => mean(square(add(p, q))),
    ref,
    vjp: ([p, q], r) => {
      const t = terms(p, q, r);
      const db = new Float64Array(3);
      t.forEach((v, i) => (db[i % 3] += v));
      return [t, db];
    },
    // Quadratic in every input: central differences are exact, so a large step keeps the
    // rounding of the float64 mean (of size |L|) out of tiny gradient elements.
    step: 1e-2,
    // Each term: ·f32(1/12) 1, x + b 0.5 (correctly rounded: relative to the sum), ·2·v 0.5,
    // and 1 for the answer: 3 ulps; db sums 4 of them.
    allow: ({ input, xs: [p, q], r }) => {
      const t = terms(p, q, r);
      const err = absAll(t).map((v) => 3 * EPS * v);
      return termAllow(input === 0 ? 12 : 3, [
        { index: input === 0 ? null : t.map((_, i) => i % 3), err, mag: t },
      ]);
    },
  });
  assertEqualArrays([report.analytic[1].length], [3], "db has b's size");
});

Deno.test("grad: a chain of 6 ops with broadcast parameters", async () => {
  // out = mean(exp(square(sigmoid(add(mul(x, w), b)))), 0); x [6, 7], w [7], b [7].
  // All forward values the backward pass uses are relatively accurate (no cancellation), and
  // every path is a product, so the error of each term is a sum of ulps, and db, dw sum 6 terms.
  const rng = new Rng(0xc6);
  const N = 6, C = 7;
  const x = rng.floats(N * C, -1, 1), w = rng.floats(C, -1.5, 1.5), b = rng.floats(C, -0.5, 0.5);
  const ref = (p: Float64Array, q: Float64Array, s: Float64Array) => {
    const z = Float64Array.from(p, (v, i) => v * q[i % C] + s[i % C]);
    const e = z.map((v) => Math.exp(sigmoid64(v) ** 2));
    return reduceRef("mean", e, [N, C], 0);
  };
  /** Per element: ∂out/∂z·r, z, x·w. */
  const dz = (p: Float64Array, q: Float64Array, s: Float64Array, r: Float64Array) =>
    p.map((v, i) => {
      const z = v * q[i % C] + s[i % C];
      const sg = sigmoid64(z);
      return (r[i % C] / N) * Math.exp(sg * sg) * 2 * sg * sg * (1 - sg);
    });
  /**
   * Ulps of one term: mean's ·f32(1/6) 1; exp's gradient dy·y, y = exp(q) with q = σ² ≤ 1:
   * 3 + 2q + q's error (σ within 6 + 2|z| ulps — exp, add, divide — squared: 12.5 + 4|z|) + 0.5
   * for the product; square's dy·2σ: 6 + 2|z| + 0.5; sigmoid's gradient 8 + 2|z|, plus its
   * sensitivity to z's rounding, |1 − 2σ|·|δz| ≤ (|xw| + |z|)/2 ulps; ·w (or ·x, or 1): 0.5.
   */
  const ulps = (p: Float64Array, q: Float64Array, s: Float64Array) =>
    p.map((v, i) => {
      const z = Math.abs(v * q[i % C] + s[i % C]);
      return 34 + 8.5 * z + 0.5 * Math.abs(v * q[i % C]);
    });
  await gradCheck({
    label: "chain of 6",
    inputs: [{ data: x, shape: [N, C] }, { data: w, shape: [C] }, { data: b, shape: [C] }],
    gpu: (p, q, s) => mean(exp(square(sigmoid(add(mul(p, q), s)))), 0),
    ref,
    vjp: ([p, q, s], r) => {
      const d = dz(p, q, s, r);
      const dw = new Float64Array(C), db = new Float64Array(C);
      d.forEach((v, i) => {
        dw[i % C] += v * p[i];
        db[i % C] += v;
      });
      return [d.map((v, i) => v * q[i % C]), dw, db];
    },
    allow: ({ input, xs: [p, q, s], r }) => {
      const d = dz(p, q, s, r), u = ulps(p, q, s);
      const t = input === 0
        ? d.map((v, i) => v * q[i % C])
        : input === 1
        ? d.map((v, i) => v * p[i])
        : d;
      const err = t.map((v, i) => EPS * u[i] * Math.abs(v));
      const col = t.map((_, i) => i % C);
      return termAllow(input === 0 ? N * C : C, [{ index: input === 0 ? null : col, err, mag: t }]);
    },
  });
});

Deno.test("grad: a diamond, where h feeds two branches that meet again", async () => {
  // h = exp(x); out = sum(mul(sigmoid(h), square(h)), 1): dh = r·(σ′(h)·h² + σ(h)·2h), two
  // positive terms (h > 0), added by the tape; dx = dh·h.
  const rng = new Rng(0xd1);
  const shape = [9, 11];
  const x = rng.floats(99, -2, 1.5);
  const ref = (p: Float64Array) => {
    const y = p.map((v) => {
      const h = Math.exp(v);
      return sigmoid64(h) * h * h;
    });
    return reduceRef("sum", y, shape, 1);
  };
  const parts = (p: Float64Array, r: Float64Array) =>
    Array.from(p, (v, i) => {
      const h = Math.exp(v), sg = sigmoid64(h), rr = r[Math.floor(i / 11)];
      return [rr * sg * (1 - sg) * h * h * h, rr * sg * 2 * h * h] as const;
    });
  await gradCheck({
    label: "diamond",
    inputs: [{ data: x, shape }],
    gpu: (p) => {
      const h = exp(p);
      return sum(mul(sigmoid(h), square(h)), 1);
    },
    ref,
    vjp: ([p], r) => [Float64Array.from(parts(p, r), ([a, b]) => a + b)],
    // Branch 1: dy·h² (h² within 2(3 + 2|x|) + 0.5), sigmoid's gradient 8 + 2h plus its
    // sensitivity to h's error (h·(3 + 2|x|)); branch 2: dy·σ(h) (σ within 5 + 2h, plus h's
    // error), square's dy·2h (0.5 + h's error). Both then go through exp's gradient dy·y
    // (3 + 2|x| + 0.5), and the answer 1. Their sum adds one rounding (termAllow).
    allow: ({ xs: [p], r }) => {
      const ps = parts(p, r);
      const e1 = new Float64Array(p.length), e2 = new Float64Array(p.length);
      const m1 = new Float64Array(p.length), m2 = new Float64Array(p.length);
      p.forEach((v, i) => {
        const h = Math.exp(v), ex = 3 + 2 * Math.abs(v);
        const tail = ex + 0.5 + 1;
        e1[i] = EPS * Math.abs(ps[i][0]) * (2 * ex + 0.5 + 8 + 2 * h + h * ex + 0.5 + tail);
        e2[i] = EPS * Math.abs(ps[i][1]) * (5 + 2 * h + ex + 0.5 + 0.5 + ex + tail);
        m1[i] = ps[i][0];
        m2[i] = ps[i][1];
      });
      return termAllow(p.length, [
        { index: null, err: e1, mag: m1 },
        { index: null, err: e2, mag: m2 },
      ]);
    },
  });
});

Deno.test("grad: layout ops composed with arithmetic", async () => {
  // out = sum(mul(transpose(reshape(x, [3, 4, 5]), [2, 0, 1]), c), [1]) with a constant c of
  // shape [5, 1, 4]: every element of x reaches one output through one product: 1 ulp.
  const rng = new Rng(0x1a);
  const x = rng.floats(60, -2, 2), c = rng.floats(20, -2, 2);
  const cT = f32(c, [5, 1, 4]);
  try {
    await gradCheck({
      label: "sum(mul(transpose(reshape(x)), c), 1)",
      inputs: [{ data: x, shape: [60] }],
      gpu: (p) => sum(mul(transpose(reshape(p, [3, 4, 5]), [2, 0, 1]), cT), [1]),
      ref: (p) => {
        const t = transposeRef(p, [3, 4, 5], [2, 0, 1]);
        const m = binaryRef("mul", t.data, t.shape, Float64Array.from(c), [5, 1, 4]);
        return reduceRef("sum", m.data, m.shape, [1]);
      },
      ulps: 1,
      step: 1e-3,
    });
  } finally {
    cT.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Conventions at non-differentiable points

Deno.test("grad: relu′(0) = 0, |x|′(0) = 0, leakyRelu′(0) = α, elu′(0) = α", async () => {
  const x = f32([-2, -0, 0, 1e-30, 3], [5]);
  const [dRelu] = await grad(() => relu(x), [x]);
  assertEqualArrays(await dRelu.data(), [0, 0, 0, 1, 1], "relu′ at −2, −0, 0, 1e-30, 3");
  const [dAbs] = await grad(() => abs(x), [x]);
  assertEqualArrays(await dAbs.data(), [-1, 0, 0, 1, 1], "|x|′ at −2, −0, 0, 1e-30, 3");
  const z = f32([0, -0], [2]);
  for (const alpha of [0.2, 0.01]) {
    const [d] = await grad(() => leakyRelu(z, alpha), [z]);
    assertEqualArrays(await d.data(), [Math.fround(alpha), Math.fround(alpha)], `leaky ${alpha}`);
    d.dispose();
  }
  for (const alpha of [1, 0.5]) {
    const [d] = await grad(() => elu(z, alpha), [z]);
    assertEqualArrays(await d.data(), [alpha, alpha], `elu′(0) alpha ${alpha}`);
    d.dispose();
  }
  for (const t of [x, z, dRelu, dAbs]) t.dispose();
});

Deno.test("grad: maximum and minimum ties send the gradient to the first operand", async () => {
  const a = f32([1, 2, 3, -1], [4]), b = f32([1, 5, 3, -2], [4]);
  for (const [name, fn] of [["maximum", maximum], ["minimum", minimum]] as const) {
    const [da, db] = await grad(() => mul(fn(a, b), f32([1, 2, 3, 4], [4])), [a, b]);
    const big = name === "maximum";
    assertEqualArrays(await da.data(), [1, big ? 0 : 2, 3, big ? 4 : 0], `${name} da`);
    assertEqualArrays(await db.data(), [0, big ? 2 : 0, 0, big ? 0 : 4], `${name} db`);
    da.dispose();
    db.dispose();
  }
  // Ties with a broadcast scalar operand: the scalar gets the gradient where it wins strictly.
  const x = f32([0.5, 1, 2, 1], [4]);
  const c = scalar(1);
  const [dx, dc] = await grad(() => maximum(x, c), [x, c]);
  assertEqualArrays(await dx.data(), [0, 1, 1, 1], "maximum(x, 1) dx");
  assertEqualArrays(await dc.data(), [1], "maximum(x, 1) dc");
  const [dc2, dx2] = await grad(() => maximum(c, x), [c, x]);
  assertEqualArrays(await dx2.data(), [0, 0, 1, 0], "maximum(1, x) dx");
  assertEqualArrays(await dc2.data(), [3], "maximum(1, x) dc");
  for (const t of [a, b, x, c, dx, dc, dc2, dx2]) t.dispose();
});

Deno.test("grad: max and min reductions share the gradient equally among ties", async () => {
  const x = f32([1, 3, 3, 2, 5, 5, 5, -1, -4, 0, -4, 7], [3, 4]);
  const [dMax] = await grad(() => max(x, 1), [x]);
  assertClose(
    await dMax.data(),
    [0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 1],
    { atol: 0, rtol: EPS },
    "max over rows with ties",
  );
  const [dMin] = await grad(() => mul(min(x, 1, { keepDims: true }), f32([2, 3, 4], [3, 1])), [x]);
  assertClose(
    await dMin.data(),
    [2, 0, 0, 0, 0, 0, 0, 3, 2, 0, 2, 0],
    { atol: 0, rtol: EPS },
    "min over rows with ties, weighted",
  );
  const [dAll] = await grad(() => max(x), [x]);
  assertEqualArrays(await dAll.data(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "max of all");
  const y = f32([2, 2, 2, 2], [4]);
  const [dY] = await grad(() => min(y), [y]);
  assertEqualArrays(await dY.data(), [0.25, 0.25, 0.25, 0.25], "min of equal values");
  for (const t of [x, y, dMax, dMin, dAll, dY]) t.dispose();
});

Deno.test("grad: pow's exponent gradient is 0 where the base is ≤ 0", async () => {
  const a = f32([-2, -1.5, 0, 2, 0.5], [5]), b = f32([2, 3, 2, 2, -1], [5]);
  const [da, db] = await grad(() => pow(a, b), [a, b]);
  // da = b·a^(b−1): −4, 3·2.25, 0, 4, −1·0.5⁻²; db = aᵇ·ln a for a > 0, else 0.
  assertClose(await da.data(), [-4, 6.75, 0, 4, -4], { atol: 0, rtol: 16 * EPS }, "pow da");
  assertClose(
    await db.data(),
    [0, 0, 0, 4 * Math.LN2, 2 * Math.log(0.5)],
    { atol: 0, rtol: 16 * EPS },
    "pow db",
  );
  // pow with a number exponent: no exponent to differentiate, and negative bases work.
  const [dx] = await grad(() => pow(a, 3), [a]);
  assertClose(await dx.data(), [12, 6.75, 0, 12, 0.75], { atol: 0, rtol: 16 * EPS }, "d x³");
  for (const t of [a, b, da, db, dx]) t.dispose();
});

Deno.test("grad: comparisons and casts through integers carry no gradient", async () => {
  const x = f32([-1, 0.5, 2], [3]);
  const [g] = await grad(() => mul(greater(x, 0), x), [x]);
  assertEqualArrays(await g.data(), [0, 1, 1], "d (x > 0)·x: the mask is a constant");
  const [g2] = await grad(() => cast(cast(x, "i32"), "f32"), [x]);
  assertEqualArrays(await g2.data(), [0, 0, 0], "d cast(cast(x, i32), f32)");
  for (const t of [x, g, g2]) t.dispose();
});

// ---------------------------------------------------------------------------------------------
// The tape machinery

Deno.test("grad: d/dx x² at 3 is 6; valueAndGrad returns the value too", async () => {
  const x = scalar(3);
  const [g] = await grad(() => square(x), [x]);
  assertShape(g.shape, [], "gradient of a rank-0 source");
  assertEqualArrays(await g.data(), [6], "d x² at 3");
  const { value, grads } = await valueAndGrad(() => mul(square(x), 2), [x]);
  assertEqualArrays(await value.data(), [18], "value 2x² at 3");
  assertEqualArrays(await grads[0].data(), [12], "d 2x² at 3");
  for (const t of [x, g, value, ...grads]) t.dispose();
});

Deno.test("grad: a source the result does not depend on gets zeros of its shape", async () => {
  const x = f32([1, 2, 3], [3]), y = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  const [dx, dy] = await grad(() => sum(square(x)), [x, y]);
  assertEqualArrays(await dx.data(), [2, 4, 6], "dx");
  assertShape(dy.shape, [2, 3], "dy shape");
  assertEqualArrays(await dy.data(), [0, 0, 0, 0, 0, 0], "dy");
  // The same when the result is a constant.
  const c = f32([4], [1]);
  const [dNone] = await grad(() => mul(c, 2), [x]);
  assertEqualArrays(await dNone.data(), [0, 0, 0], "a constant");
  for (const t of [x, y, dx, dy, c, dNone]) t.dispose();
});

Deno.test("grad: does not dispose a tensor that fn returns but did not make", async () => {
  // fn may return one of its sources (the identity) or a constant made outside it: grad disposes
  // the value it computed, but these belong to the caller.
  const x = f32([1, 2, 3], [3]);
  const [dSelf] = await grad(() => x, [x]);
  assertEqualArrays(await dSelf.data(), [1, 1, 1], "d Σx / dx");
  assertEqualArrays([Number(x.isDisposed)], [0], "the source returned by fn is still live");
  const c = f32([4], [1]);
  const [dConst] = await grad(() => c, [x]);
  assertEqualArrays(await dConst.data(), [0, 0, 0], "d c / dx");
  assertEqualArrays([Number(c.isDisposed)], [0], "the constant returned by fn is still live");
  for (const t of [x, c, dSelf, dConst]) t.dispose();
});

Deno.test("grad: rejects non-f32 sources and targets, naming them", async () => {
  const labels = i32([1, 2, 3], [3]);
  labels.name = "labels";
  const x = f32([1, 2, 3], [3]);
  await assertRejectsWgrad(
    () => grad(() => sum(square(x)), [x, labels as unknown as Tensor<"f32">]),
    "dtype",
    ["source 1", "labels", "i32", "f32"],
    "an i32 source",
  );
  const tape = new GradientTape();
  assertWgradError(
    () => tape.gradientSync(x, [labels]),
    "dtype",
    ["GradientTape.gradient", "labels"],
    "an i32 source on a tape",
  );
  tape.dispose();
  await assertRejectsWgrad(
    () => grad(() => cast(x, "i32"), [x]),
    "dtype",
    ["target", "i32", "must be f32"],
    "an i32 target",
  );
  await assertRejectsWgrad(() => grad(() => x, []), "value", ["grad"], "no sources");
  const gone = f32([1], [1]);
  gone.dispose();
  await assertRejectsWgrad(() => grad(() => gone, [gone]), "disposed", ["grad"], "disposed");
  // After the errors, no tape is left recording.
  assertEqualArrays([Number(recording([x]))], [0], "recording after errors");
  labels.dispose();
  x.dispose();
});

Deno.test("grad: a gradient that fails leaks nothing", async () => {
  const x = f32([1, 2, 3], [3]);
  await flush();
  const before = memoryInfo().buffersInUse;
  // fn throws after making tensors: they are disposed, the tape released.
  await assertRejectsWgrad(
    () =>
      grad(() => {
        const y = exp(x);
        return add(y, f32([1, 2], [2]));
      }, [x]),
    "shape",
    ["add"],
    "a shape error inside fn",
  );
  await flush();
  assertEqualArrays([memoryInfo().buffersInUse], [before], "buffers after fn threw");
  // backward throws (the target is not f32): the value fn made must be disposed too.
  await assertRejectsWgrad(() => grad(() => cast(x, "i32"), [x]), "dtype", ["f32"], "i32 target");
  await flush();
  assertEqualArrays([memoryInfo().buffersInUse], [before], "buffers after backward threw");
  assertEqualArrays([Number(recording([x]))], [0], "no tape left recording");
  x.dispose();
});

Deno.test("grad: GradientTape with watch, record, gradient and a custom seed", async () => {
  const x = f32([1, -2, 3], [3]), w = f32([0.5, 4, -1], [3]);
  const tape = new GradientTape();
  tape.watch(x, w);
  const y = tape.record(() => mul(square(x), w)); // y = x²·w
  // Default seed (ones): dx = 2xw, dw = x².
  const [dx, dw] = await tape.gradient(y, [x, w]);
  assertEqualArrays(await dx.data(), [1, -16, -6], "dx, seed ones");
  assertEqualArrays(await dw.data(), [1, 4, 9], "dw, seed ones");
  // A custom seed s: dx = 2xw·s, dw = x²·s. The seed stays the caller's.
  const s = f32([1, 0.5, -2], [3]);
  const [dxs, dws] = await tape.gradient(y, [x, w], s);
  assertEqualArrays(await dxs.data(), [1, -8, 12], "dx, custom seed");
  assertEqualArrays(await dws.data(), [1, 2, -18], "dw, custom seed");
  // A seed of the wrong shape is an error that names both.
  const bad = f32([1, 2], [2]);
  assertWgradError(
    () => tape.gradientSync(y, [x], bad),
    "shape",
    ["seed", "[2]", "[3]"],
    "seed shape",
  );
  tape.dispose();
  assertWgradError(() => tape.record(() => square(x)), "value", ["disposed"], "record after");
  for (const t of [x, w, y, dx, dw, s, dxs, dws, bad]) t.dispose();
});

Deno.test("grad: GradientTape leaves a custom seed to the caller", async () => {
  const x = f32([1, -2, 3], [3]);
  const tape = new GradientTape();
  tape.watch(x);
  const y = tape.record(() => mul(x, 2));
  const s = f32([1, 0.5, -2], [3]);
  const [dx] = await tape.gradient(y, [x], s);
  assertEqualArrays(await dx.data(), [2, 1, -4], "dx, custom seed");
  assertEqualArrays([Number(s.isDisposed)], [0], "the seed is still live");
  // …and usable again.
  const [dx2] = await tape.gradient(y, [x], s);
  assertEqualArrays(await dx2.data(), [2, 1, -4], "dx, the same seed again");
  tape.dispose();
  for (const t of [x, y, s, dx, dx2]) t.dispose();
});

Deno.test("grad: GradientTape gives gradients with respect to intermediate tensors", async () => {
  // z = Σ 2y with y = x²: dz/dy = 2, dz/dx = 4x — asked for together, and y alone.
  const x = f32([1, -2, 3], [3]);
  const tape = new GradientTape();
  tape.watch(x);
  const y = tape.record(() => square(x));
  const z = tape.record(() => scope(() => sum(mul(y, 2))));
  const [dy, dx] = await tape.gradient(z, [y, x]);
  assertEqualArrays(await dx.data(), [4, -8, 12], "dz/dx");
  assertEqualArrays(await dy.data(), [2, 2, 2], "dz/dy");
  const [dyAlone] = await tape.gradient(z, [y]);
  assertEqualArrays(await dyAlone.data(), [2, 2, 2], "dz/dy alone");
  tape.dispose();
  for (const t of [x, y, z, dy, dx, dyAlone]) t.dispose();
});

Deno.test("grad: intermediates disposed inside fn are kept by the tape until it is done", async () => {
  const x = f32([0.5, -1, 2], [3]);
  const [g] = await grad(() => {
    // tanh(exp(x)): scope disposes exp(x) and tanh's output, which tanh's gradient reads.
    const t = scope(() => tanh(exp(x)));
    const h = exp(x);
    const y = mul(h, t);
    h.dispose(); // the input of mul, needed for its gradient
    return sum(y);
  }, [x]);
  const expected = [0.5, -1, 2].map((v) => {
    const e = Math.exp(Math.fround(v)), th = Math.tanh(e);
    return e * th + e * e * (1 - th * th);
  });
  assertClose(await g.data(), expected, { atol: 0, rtol: 64 * EPS }, "d sum(eˣ·tanh(eˣ))");
  g.dispose();
  x.dispose();
});

Deno.test("grad: the tape leaks nothing (buffers in use return to their count)", async () => {
  await flush();
  const before = memoryInfo().buffersInUse;
  const x = f32(new Rng(1).floats(12, -1, 1), [4, 3]), b = f32([0.1, 0.2, 0.3], [3]);
  const [dx, db] = await grad(() => mean(square(add(x, b))), [x, b]);
  const { value, grads } = await valueAndGrad(() => sum(mul(tanh(x), maximum(x, 0.2)), 1), [x]);
  const tape = new GradientTape();
  tape.watch(b);
  // The intermediates are the caller's to dispose (here by scope); the tape defers that.
  const y = tape.record(() => scope(() => max(pow(exp(b), 2))));
  const [gb] = await tape.gradient(y, [b]);
  tape.dispose();
  await Promise.all([dx.data(), db.data(), value.data(), grads[0].data(), gb.data()]);
  for (const t of [x, b, dx, db, value, ...grads, y, gb]) t.dispose();
  await flush();
  assertEqualArrays([memoryInfo().buffersInUse], [before], "buffers in use after disposal");
});

Deno.test("grad: nested grad calls for independent and for shared functions", async () => {
  const x = f32([1, 2, -3], [3]), y = f32([0.5, -1], [2]);
  let inner: Tensor<"f32"> | undefined;
  const [dx] = await grad(() => {
    // An inner, independent gradient, computed while the outer tape records.
    const r = valueAndGradSync(() => sum(exp(y)), [y]);
    inner = keep(r.grads[0]);
    r.value.dispose();
    return sum(square(x));
  }, [x]);
  assertEqualArrays(await dx.data(), [2, 4, -6], "outer dx");
  assertClose(
    await inner!.data(),
    [Math.exp(0.5), Math.exp(-1)],
    { atol: 0, rtol: 8 * EPS },
    "inner dy",
  );
  // The inner function uses the outer source: its value is recorded on both tapes, and the
  // intermediates the inner call disposes stay with the outer tape.
  let innerDy: Tensor<"f32"> | undefined;
  const [dx2] = await grad(() => {
    const r = valueAndGradSync(() => sum(mul(exp(x), sum(y))), [y]); // Σeˣ·Σy
    innerDy = keep(r.grads[0]);
    return r.value;
  }, [x]);
  const sy = -0.5, ex = [1, 2, -3].map(Math.exp);
  assertClose(await dx2.data(), ex.map((e) => e * sy), { atol: 0, rtol: 8 * EPS }, "outer dx");
  const sx = ex.reduce((p, q) => p + q, 0);
  assertClose(await innerDy!.data(), [sx, sx], { atol: 0, rtol: 16 * EPS }, "inner dy");
  for (const t of [x, y, dx, dx2, inner!, innerDy!]) t.dispose();
});

Deno.test("grad: ops outside any tape do not record and keep no memory", async () => {
  const x = f32([1, 2, 3], [3]);
  assertEqualArrays([Number(recording([x]))], [0], "recording outside a tape");
  await flush();
  const before = memoryInfo().buffersInUse;
  for (let i = 0; i < 20; i++) {
    const y = scope(() => tanh(mul(exp(x), 2)));
    y.dispose();
    // Not deferred: disposal is immediate outside a tape.
    assertEqualArrays([Number(y.isDisposed)], [1], "disposed at once");
  }
  await flush();
  assertEqualArrays([memoryInfo().buffersInUse], [before], "buffers in use");
  // A tape that does not watch x does not record ops on it (and does not defer disposal)…
  const tape = new GradientTape();
  const other = f32([1], [1]);
  tape.watch(other);
  tape.record(() => {
    assertEqualArrays([Number(recording([x]))], [0], "unwatched inside a tape");
    const y = exp(x);
    y.dispose();
    assertEqualArrays([Number(y.isDisposed)], [1], "unwatched: disposed at once");
    // …whereas ops on a watched tensor are recorded, and their results kept.
    const z = exp(other);
    assertEqualArrays([Number(recording([z]))], [1], "an op's output on a watched tensor");
    z.dispose();
    assertEqualArrays([Number(z.isDisposed)], [0], "recorded: disposal deferred");
  });
  // noGrad pauses recording.
  tape.record(() => noGrad(() => assertEqualArrays([Number(recording([other]))], [0], "noGrad")));
  tape.dispose();
  other.dispose();
  x.dispose();
  await flush();
  assertEqualArrays([memoryInfo().buffersInUse], [before - 1], "after the tape's release");
});
