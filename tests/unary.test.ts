/**
 * Unary kernels (shaders/unary.wgsl, shaders/unary_int.wgsl) against float64 references.
 * @module
 */
import {
  abs,
  elu,
  exp,
  gelu,
  leakyRelu,
  log,
  neg,
  reciprocal,
  relu,
  sigmoid,
  sign,
  sqrt,
  square,
  tanh,
  type Tensor,
  unary,
  UNARY_OPS,
} from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertShape,
  assertWgradError,
  computeAll,
  EPS,
  EXACT,
  f32,
  fmtDims,
  i32,
  Rng,
  roundF32,
  type Shape,
  sizeOf,
  type Tolerance,
  type UnaryName,
  unaryRef,
} from "./harness.ts";

// Tolerances. EPS = 2⁻²³ is one f32 ulp relative. Each op's tolerance is what WGSL guarantees for
// the builtins it uses, or, where the shader's own formula sets the error, that formula's bound.

/** exp: WGSL allows 3 + 2·|x| ulps (llvmpipe measures ≤ 6 ulps on [−10, 10]). */
const expUlps = (x: number): number => 3 + 2 * Math.abs(x);
/** log: WGSL allows 3 ulps, but an absolute 2⁻²¹ on [0.5, 2] where the result is near 0. */
const LOG_TOL: Tolerance = { atol: 2 ** -21, rtol: 3 * EPS };
/** sqrt: WGSL inherits 1/inverseSqrt (2 + 2.5 ulps); llvmpipe rounds correctly. */
const SQRT_TOL: Tolerance = { atol: 0, rtol: 4.5 * EPS };
/** 1/x: WGSL's division allows 2.5 ulps. */
const RECIPROCAL_TOL: Tolerance = { atol: 0, rtol: 2.5 * EPS };
/**
 * tanh and elu are (1 − e)/(1 + e) and α(eˣ − 1): near 0 they cancel, so the error is absolute,
 * about an ulp of 1 (WGSL's own tanh is specified the same way, through sinh/cosh); elsewhere
 * the exp bound applies. Four ulps of 1 absolute, plus the relative exp bound.
 */
const CANCEL_ATOL = 4 * EPS;
/**
 * sigmoid: the exp bound plus 2 ulps for the add and divide; results below 2⁻¹²⁶ may be flushed
 * to zero (denormals), hence a tiny absolute term.
 */
const SIGMOID_ATOL = 2 ** -126;
/**
 * gelu: x·Φ(x) where the shader's erf fit (or the tanh form) has an absolute error of about
 * 1.2e-7 ≈ EPS in Φ, scaled by |x|, plus rounding: 2·EPS·(1 + |x|) absolute and 2 ulps.
 */
const geluAtol = (x: number): number => 2 * EPS * (1 + Math.abs(x));
/** leaky relu and elu multiply by an f32 alpha (the float64 alpha rounds by up to half an ulp). */
const SCALE_RTOL = 1.5 * EPS;

/** Shapes: 0 elements, a scalar, 1, 7, 33, 127, >10,000 and >70,000 elements (274 workgroups). */
const SHAPES: readonly Shape[] = [[0], [4, 0], [], [1], [7], [3, 11], [127], [101, 103], [
  3,
  5,
  4673,
]];

interface Case {
  /** Name of the case, e.g. `elu(alpha 0.5)`. */
  name: string;
  op: UnaryName;
  alpha: number;
  /** Runs the op through its public function. */
  call: (x: Tensor<"f32">) => Tensor<"f32">;
  /** Inputs: a well-conditioned domain for the op. */
  domain: (rng: Rng, n: number) => Float32Array;
  /** The tolerance for inputs `x` and float64 results `e`. */
  tol: (x: Float32Array, e: Float64Array) => Tolerance;
}

/** Uniform values in [lo, hi), with some exact zeros and small integers mixed in. */
function mixed(lo: number, hi: number): (rng: Rng, n: number) => Float32Array {
  return (rng, n) => {
    const x = rng.floats(n, lo, hi);
    for (let i = 0; i < n; i += 5) x[i] = rng.pick([0, -0, 1, -1, 2, -3, rng.int(-9, 9)]);
    return x;
  };
}

/**
 * neg, abs, relu, sign and square: sign flips, comparisons and one correctly rounded product (the
 * reference's x·x is rounded to f32 by the comparison below), so they are exact.
 */
const exact = (): Tolerance => EXACT;

/** A per-element relative bound expressed as an absolute tolerance: ulps(x)·EPS·|e| + atol. */
function ulpBound(ulps: (x: number) => number, atol = 0): (x: Float32Array, e: Float64Array) => {
  atol: Float64Array;
  rtol: number;
} {
  return (x, e) => {
    const a = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) a[i] = ulps(x[i]) * EPS * Math.abs(e[i]) + atol;
    return { atol: a, rtol: 0 };
  };
}

function scaledAtol(f: (x: number) => number, rtol: number): (x: Float32Array) => Tolerance {
  return (x) => ({ atol: Float64Array.from(x, f), rtol });
}

const CASES: readonly Case[] = [
  { name: "neg", op: "neg", alpha: 0, call: neg, domain: mixed(-100, 100), tol: exact },
  { name: "abs", op: "abs", alpha: 0, call: abs, domain: mixed(-100, 100), tol: exact },
  { name: "relu", op: "relu", alpha: 0, call: relu, domain: mixed(-100, 100), tol: exact },
  { name: "sign", op: "sign", alpha: 0, call: sign, domain: mixed(-100, 100), tol: exact },
  { name: "square", op: "square", alpha: 0, call: square, domain: mixed(-100, 100), tol: exact },
  {
    name: "exp",
    op: "exp",
    alpha: 0,
    call: exp,
    domain: (rng, n) => rng.floats(n, -10, 10),
    tol: ulpBound(expUlps),
  },
  {
    name: "log",
    op: "log",
    alpha: 0,
    call: log,
    // Away from 0, where log is ill-conditioned; log-uniform so that every decade is covered.
    domain: (rng, n) => rng.logFloats(n, 1e-3, 1e4),
    tol: () => LOG_TOL,
  },
  {
    name: "sqrt",
    op: "sqrt",
    alpha: 0,
    call: sqrt,
    domain: (rng, n) => {
      const x = rng.logFloats(n, 1e-4, 1e4);
      if (n > 1) x[1] = 0;
      return x;
    },
    tol: () => SQRT_TOL,
  },
  {
    name: "reciprocal",
    op: "reciprocal",
    alpha: 0,
    call: reciprocal,
    domain: (rng, n) => rng.logFloats(n, 1e-2, 1e2).map((v) => (rng.next() < 0.5 ? -v : v)),
    tol: () => RECIPROCAL_TOL,
  },
  {
    name: "sigmoid",
    op: "sigmoid",
    alpha: 0,
    call: sigmoid,
    domain: (rng, n) => rng.floats(n, -20, 20),
    tol: ulpBound((x) => expUlps(x) + 2, SIGMOID_ATOL),
  },
  {
    name: "tanh",
    op: "tanh",
    alpha: 0,
    call: tanh,
    domain: mixed(-10, 10),
    tol: ulpBound((x) => expUlps(2 * x) + 2, CANCEL_ATOL),
  },
  {
    name: "elu (alpha 1)",
    op: "elu",
    alpha: 1,
    call: (x) => elu(x),
    domain: mixed(-10, 10),
    tol: ulpBound((x) => expUlps(x) + 3, CANCEL_ATOL),
  },
  {
    name: "elu (alpha 0.5)",
    op: "elu",
    alpha: 0.5,
    call: (x) => elu(x, 0.5),
    domain: mixed(-10, 10),
    tol: ulpBound((x) => expUlps(x) + 3, CANCEL_ATOL),
  },
  {
    name: "leakyRelu (alpha 0.2)",
    op: "leakyRelu",
    alpha: 0.2,
    call: (x) => leakyRelu(x),
    domain: mixed(-100, 100),
    tol: () => ({ atol: 0, rtol: SCALE_RTOL }),
  },
  {
    name: "leakyRelu (alpha 0.01)",
    op: "leakyRelu",
    alpha: 0.01,
    call: (x) => leakyRelu(x, 0.01),
    domain: mixed(-100, 100),
    tol: () => ({ atol: 0, rtol: SCALE_RTOL }),
  },
  {
    name: "gelu (erf)",
    op: "gelu",
    alpha: 0,
    call: (x) => gelu(x),
    domain: mixed(-8, 8),
    tol: scaledAtol(geluAtol, 2 * EPS),
  },
  {
    name: "gelu (tanh approximation)",
    op: "geluTanh",
    alpha: 0,
    call: (x) => gelu(x, true),
    domain: mixed(-8, 8),
    tol: scaledAtol(geluAtol, 2 * EPS),
  },
];

for (const c of CASES) {
  Deno.test(`unary ${c.name} f32 matches the float64 reference`, async () => {
    const rng = new Rng(0x5eed + UNARY_OPS[c.op] * 101 + Math.round(c.alpha * 1000));
    const inputs = SHAPES.map((s) => c.domain(rng, sizeOf(s)));
    const outs = await computeAll(() => SHAPES.map((s, i) => c.call(f32(inputs[i], s))));
    SHAPES.forEach((s, i) => {
      const label = `${c.name} f32 ${fmtDims(s)}`;
      assertShape(outs[i].shape, s, label);
      if (outs[i].dtype !== "f32") throw new Error(`${label}: dtype ${outs[i].dtype}`);
      const e = unaryRef(c.op, inputs[i], "f32", c.alpha);
      const tol = c.tol(inputs[i], e);
      // An exact op must give the float64 result rounded to f32.
      assertClose(outs[i].data, tol === EXACT ? roundF32(e) : e, tol, label, s);
    });
  });
}

Deno.test("unary: generic unary(op, x, alpha) runs every op code", async () => {
  const rng = new Rng(77);
  const x = rng.floats(127, 0.25, 4); // inside every op's domain
  const ops = Object.keys(UNARY_OPS) as UnaryName[];
  const outs = await computeAll(() => ops.map((op) => unary(op, f32(x, [127]), 0.3)));
  ops.forEach((op, i) => {
    const e = unaryRef(op, x, "f32", 0.3);
    // Every op is within 16 ulps + 1e-6 absolute on this benign domain; a wrong op code is not.
    assertClose(outs[i].data, e, { atol: 1e-6, rtol: 16 * EPS }, `unary("${op}") f32 [127]`);
  });
});

Deno.test("unary: sigmoid, tanh, elu and gelu saturate without overflow at large |x|", async () => {
  const x = Float32Array.from([-1e30, -1e4, -200, -100, -89, -50, 0, 50, 89, 100, 200, 1e4, 1e30]);
  const s = [x.length];
  const outs = await computeAll(() => [
    sigmoid(f32(x, s)),
    tanh(f32(x, s)),
    elu(f32(x, s)),
    gelu(f32(x, s)),
    gelu(f32(x, s), true),
  ]);
  const names: UnaryName[] = ["sigmoid", "tanh", "elu", "gelu", "geluTanh"];
  names.forEach((op, i) => {
    const e = unaryRef(op, x, "f32", 1);
    for (let k = 0; k < x.length; k++) {
      if (!Number.isFinite(outs[i].data[k])) {
        throw new Error(`${op}(${x[k]}) gave ${outs[i].data[k]}, expected ${e[k]}`);
      }
    }
    // Results are 0, ±1 or x itself, or e^x-sized for |x| = 50 (the exp bound at |x| = 50,
    // 103 ulps, plus 3), or tiny (absolute 1e-30).
    assertClose(outs[i].data, e, { atol: 1e-30, rtol: 106 * EPS }, `${op} at large |x|`);
  });
});

/** The unary ops that take i32. */
const INT_CASES: readonly [UnaryName, (x: Tensor<"i32">) => Tensor<"i32">][] = [
  ["neg", neg],
  ["abs", abs],
  ["square", square],
  ["relu", relu],
  ["sign", sign],
];

for (const [op, call] of INT_CASES) {
  Deno.test(`unary ${op} i32 matches the reference exactly`, async () => {
    const rng = new Rng(0x1a7 + UNARY_OPS[op]);
    // |x| ≤ 46340 keeps x² inside i32; zeros are mixed in.
    const inputs = SHAPES.map((s) => {
      const x = rng.ints(sizeOf(s), -46340, 46340);
      for (let i = 0; i < x.length; i += 7) x[i] = 0;
      return x;
    });
    const outs = await computeAll(() => SHAPES.map((s, i) => call(i32(inputs[i], s))));
    SHAPES.forEach((s, i) => {
      const label = `${op} i32 ${fmtDims(s)}`;
      assertShape(outs[i].shape, s, label);
      if (!(outs[i].data instanceof Int32Array)) throw new Error(`${label}: not i32`);
      assertEqualArrays(outs[i].data, unaryRef(op, inputs[i], "i32"), label, s);
    });
  });
}

Deno.test("unary: errors name the op and the tensor's dtype and shape", () => {
  const x = i32([1, 2, 3, 4, 5, 6], [2, 3]);
  const y = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  try {
    for (const [op, fn] of [["exp", exp], ["log", log], ["sqrt", sqrt], ["tanh", tanh]] as const) {
      assertWgradError(
        () => fn(x as unknown as Tensor<"f32">),
        "dtype",
        [op, "i32", "[2, 3]"],
        `${op} on i32`,
      );
    }
    assertWgradError(() => elu(y, Infinity), "value", ["elu", "alpha"], "elu alpha Infinity");
    y.dispose();
    assertWgradError(() => exp(y), "disposed", ["exp", "f32 [2, 3]", "dispose"], "exp disposed");
    assertWgradError(() => neg(y), "disposed", ["neg", "[2, 3]"], "neg disposed");
  } finally {
    x.dispose();
    y.dispose();
  }
});
