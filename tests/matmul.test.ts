/**
 * Matrix products and dense layers (shaders/matmul.wgsl, src/ops/matmul.ts) against float64
 * references: every transpose combination, every activation with and without a bias, odd and
 * aligned sizes, gradients against float64 central differences, and the errors.
 *
 * Tolerances. u = 2⁻²⁴ is the f32 unit roundoff (EPS = 2u, one ulp at 1). Every bound is the
 * first-order error of the operations the kernels perform, as WGSL specifies them:
 * - A product ĉ = Σₖ aₖbₖ (+ bias) is K fused multiply-adds in sequence, each rounding once, so
 *   |ĉ − c| ≤ (K + 2)·u·Σₖ|aₖ||bₖ| (Higham's γ bound for recursive summation, with one more
 *   rounding for the bias and one to spare), plus 2⁻¹²⁶ per term for products that flush to
 *   zero. A missing, doubled or misplaced term is ~Σ|ab|/K, hundreds of times this bound.
 * - An activation y = f(z) adds L·tol(z) (L bounds |f′|) to its own rounding, as in the unary
 *   tests: exp carries 3 + 2|x| ulps; sigmoid 2 ulps more; tanh 2 more plus 4 ulps of 1
 *   absolute (its 1 − e cancels); elu 3 more plus 4 ulps of alpha; gelu 2·EPS·(1 + |z|) (the
 *   erf fit's 1.2e-7) and 2 ulps; leaky relu 1.5 ulps (alpha rounded to f32).
 * - softmax yᵢ = exp(dᵢ)/Σⱼ exp(dⱼ), dᵢ = zᵢ − max: first order, |δyᵢ|/yᵢ ≤ 2·maxⱼ tol(zⱼ)
 *   from z, plus |dᵢ|·u and exp's ulps for exp(dᵢ), the same weighted by yⱼ for the sum, N·u
 *   for its additions and 2.5 ulps for the division.
 * - Gradients are compared with float64 central differences of the float64 reference. The
 *   activation's gradient dz = f′(z)·dy is off by |dy|·(L₂·tol(z) + its own rounding), L₂
 *   bounding |f″|; softmax's y ⊙ (dy − Σ dy ⊙ y) carries the errors of y. dx = dz·wᵀ, dw = xᵀ·dz
 *   and db = Σ dz add those errors times |w| or |x| to the products' own (L + 2)·u·Σ|p||q|. The
 *   differences' own error is estimated from two step sizes (Richardson) and added, with 1e-12.
 * @module
 */
import {
  type Activation,
  add,
  grad,
  linear,
  matmul,
  mul,
  sum,
  type Tensor,
  WgradError,
} from "../mod.ts";
import {
  assertClose,
  assertShape,
  assertWgradError,
  computeAll,
  EPS,
  f32,
  i32,
  Rng,
} from "./harness.ts";
import {
  activationDerivF64,
  type ActivationName,
  applyActivation,
  centralDifferences,
  linearObjective,
  matmulRef,
} from "./reference_matmul.ts";

const U = EPS / 2;
const TINY = 2 ** -126;

/** WGSL's accuracy of exp(x), in ulps. */
const expUlps = (x: number): number => 3 + 2 * Math.abs(x);

// ---------------------------------------------------------------------------------------------
// Bounds

/** |ĉ − c| ≤ (K + 2)·u·Σ|a||b| + K·2⁻¹²⁶, per element. */
function productTol(abs: Float64Array, k: number): Float64Array {
  return abs.map((s) => (k + 2) * U * s + (k + 1) * TINY);
}

/** Bounds on |f′| (L) and |f″| (L₂) of each activation, for alpha ≤ 1. */
function lipschitz(act: ActivationName, alpha: number): { l1: number; l2: number } {
  switch (act) {
    case "linear":
    case "relu":
      return { l1: 1, l2: 0 };
    case "leakyRelu":
      return { l1: Math.max(1, Math.abs(alpha)), l2: 0 };
    case "elu":
      return { l1: Math.max(1, Math.abs(alpha)), l2: Math.abs(alpha) };
    case "sigmoid":
      return { l1: 0.25, l2: 0.0963 };
    case "tanh":
      return { l1: 1, l2: 0.7699 };
    case "gelu":
      return { l1: 1.129, l2: 0.7979 };
    case "geluTanh":
      return { l1: 1.13, l2: 0.85 };
    case "softmax":
      return { l1: 1, l2: 1 };
  }
}

/** The error f(z) itself may have in f32 at z (y = f(z) in float64). */
function ownTol(act: ActivationName, z: number, y: number, alpha: number): number {
  switch (act) {
    case "linear":
    case "relu":
      return 0;
    case "leakyRelu":
      return 1.5 * EPS * Math.abs(y);
    case "elu":
      return z > 0 ? 0 : (expUlps(z) + 3) * EPS * Math.abs(y) + 4 * EPS * Math.abs(alpha);
    case "sigmoid":
      return (expUlps(z) + 2) * EPS * Math.abs(y) + TINY;
    case "tanh":
      return (expUlps(2 * z) + 2) * EPS * Math.abs(y) + 4 * EPS;
    case "gelu":
    case "geluTanh":
      return 2 * EPS * (1 + Math.abs(z)) + 2 * EPS * Math.abs(y);
    case "softmax":
      throw new Error("softmax is row-wise");
  }
}

/** Per-element tolerance of y = act(z) given z's float64 values and tolerances. */
function activationTol(
  act: ActivationName,
  z: Float64Array,
  y: Float64Array,
  tz: Float64Array,
  rows: number,
  n: number,
  alpha: number,
): Float64Array {
  const tol = new Float64Array(z.length);
  if (act !== "softmax") {
    const { l1 } = lipschitz(act, alpha);
    for (let i = 0; i < z.length; i++) tol[i] = l1 * tz[i] + ownTol(act, z[i], y[i], alpha);
    return tol;
  }
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity, tzMax = 0;
    for (let j = 0; j < n; j++) {
      mx = Math.max(mx, z[r * n + j]);
      tzMax = Math.max(tzMax, tz[r * n + j]);
    }
    const expRel = (j: number) => {
      const d = z[r * n + j] - mx;
      return Math.abs(d) * U + expUlps(d) * EPS;
    };
    let sumRel = n * U;
    for (let j = 0; j < n; j++) sumRel += y[r * n + j] * expRel(j);
    for (let j = 0; j < n; j++) {
      const rel = 2 * tzMax + expRel(j) + sumRel + 2.5 * EPS;
      tol[r * n + j] = y[r * n + j] * rel + TINY;
    }
  }
  return tol;
}

// ---------------------------------------------------------------------------------------------
// Inputs

/** Shapes whose every dimension is odd or 2 mod 4: all loads scalar, K not a multiple of 4. */
const ODD_SHAPES: readonly [number, number, number][] = [
  [1, 1, 1], // M, N, K
  [7, 7, 7],
  [33, 7, 127],
  [1, 33, 5],
  [127, 1, 33],
  [131, 19, 3], // more rows than a workgroup's tile (128 or fewer)
  [6, 130, 14], // more columns than a workgroup's tile
];
/** Shapes whose every dimension is a multiple of 4 (vector loads), none a multiple of 16. */
const ALIGNED_SHAPES: readonly [number, number, number][] = [
  [4, 4, 4],
  [36, 84, 20],
  [132, 28, 12],
  [20, 140, 44],
];

function operands(
  rng: Rng,
  m: number,
  n: number,
  k: number,
  scale = 1,
): { a: Float32Array; b: Float32Array } {
  return { a: rng.floats(m * k, -scale, scale), b: rng.floats(k * n, -1, 1) };
}

const LAYOUTS = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

const layoutName = (tA: boolean, tB: boolean) => `${tA ? "aᵀ" : "a"}·${tB ? "bᵀ" : "b"}`;

// ---------------------------------------------------------------------------------------------
// Forward

for (const [tA, tB] of LAYOUTS) {
  Deno.test(`matmul ${layoutName(tA, tB)} matches the float64 reference`, async () => {
    const rng = new Rng(0x3a7 + (tA ? 2 : 0) + (tB ? 1 : 0));
    const cases = [...ODD_SHAPES, ...ALIGNED_SHAPES].map(([m, n, k]) => ({
      m,
      n,
      k,
      ...operands(rng, m, n, k),
    }));
    const outs = await computeAll(() =>
      cases.map((c) =>
        matmul(f32(c.a, tA ? [c.k, c.m] : [c.m, c.k]), f32(c.b, tB ? [c.n, c.k] : [c.k, c.n]), {
          transposeA: tA,
          transposeB: tB,
        })
      )
    );
    cases.forEach((c, i) => {
      const label = `matmul ${layoutName(tA, tB)} M=${c.m} N=${c.n} K=${c.k}`;
      assertShape(outs[i].shape, [c.m, c.n], label);
      const ref = matmulRef(c.a, c.b, c.m, c.n, c.k, tA, tB);
      assertClose(outs[i].data, ref.c, { atol: productTol(ref.abs, c.k), rtol: 0 }, label, [
        c.m,
        c.n,
      ]);
    });
  });
}

Deno.test("matmul: empty operands give empty or zero results", async () => {
  const outs = await computeAll(() => [
    matmul(f32([], [0, 3]), f32([1, 2, 3, 4, 5, 6], [3, 2])),
    matmul(f32([], [3, 0]), f32([], [0, 5])),
    matmul(f32([1, 2, 3], [1, 3]), f32([], [3, 0])),
    linear(f32([], [2, 0]), f32([], [0, 3]), f32([1, -2, 3], [3]), "relu"),
  ]);
  assertShape(outs[0].shape, [0, 2], "[0, 3]·[3, 2]");
  assertShape(outs[1].shape, [3, 5], "[3, 0]·[0, 5]");
  assertClose(outs[1].data, new Float64Array(15), { atol: 0, rtol: 0 }, "[3, 0]·[0, 5] is zero");
  assertShape(outs[2].shape, [1, 0], "[1, 3]·[3, 0]");
  // K = 0: the product is zero, so the layer gives act(b) on every row.
  assertClose(outs[3].data, [1, 0, 3, 1, 0, 3], { atol: 0, rtol: 0 }, "relu(0 + b)");
});

Deno.test("matmul: leading axes of a fold into rows, as a dense layer applies", async () => {
  const rng = new Rng(91);
  const [b0, b1, k, n] = [3, 5, 9, 7];
  const { a, b } = operands(rng, b0 * b1, n, k);
  const outs = await computeAll(() => [matmul(f32(a, [b0, b1, k]), f32(b, [k, n]))]);
  assertShape(outs[0].shape, [b0, b1, n], "[3, 5, 9]·[9, 7]");
  const ref = matmulRef(a, b, b0 * b1, n, k);
  assertClose(outs[0].data, ref.c, { atol: productTol(ref.abs, k), rtol: 0 }, "rank-3 matmul");
});

/** Every activation, with the alphas that `linear` defaults to and one other. */
const ACTS: readonly { act: Activation; alpha?: number }[] = [
  { act: "linear" },
  { act: "relu" },
  { act: "sigmoid" },
  { act: "tanh" },
  { act: "elu" },
  { act: "elu", alpha: 0.5 },
  { act: "leakyRelu" },
  { act: "leakyRelu", alpha: 0.01 },
  { act: "gelu" },
  { act: "geluTanh" },
  { act: "softmax" },
];

const defaultAlpha = (act: Activation, alpha?: number) => alpha ?? (act === "elu" ? 1 : 0.2);
const actName = (act: Activation, alpha?: number) =>
  alpha === undefined ? act : `${act} (alpha ${alpha})`;

/** A dense layer against the reference: returns the label and the check. */
function checkLinear(
  out: { data: ArrayLike<number>; shape: number[] },
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  m: number,
  n: number,
  k: number,
  act: Activation,
  alpha: number,
  label: string,
): void {
  assertShape(out.shape, [m, n], label);
  const z = matmulRef(x, w, m, n, k, false, false, b);
  const y = applyActivation(act, z.c, m, n, alpha);
  const tol = activationTol(act, z.c, y, productTol(z.abs, k), m, n, alpha);
  assertClose(out.data, y, { atol: tol, rtol: 0 }, label, [m, n]);
}

for (const { act, alpha } of ACTS) {
  Deno.test(`linear ${actName(act, alpha)} with and without bias matches the reference`, async () => {
    const rng = new Rng(0x11e + act.length * 31 + Math.round((alpha ?? 0) * 100));
    const a = defaultAlpha(act, alpha);
    // Pre-activations spread over about [−12, 12] so that every activation saturates somewhere;
    // N = 13 keeps a softmax row in one invocation; 131 rows span two workgroups.
    const [m, n, k] = [131, 13, 29];
    const x = rng.floats(m * k, -2, 2);
    const w = rng.floats(k * n, -1, 1);
    const b = rng.floats(n, -2, 2);
    // Multiples of 1/16 and small integers: every product and partial sum is exact in f32, so
    // z is exact and the tolerance is the activation's own rounding alone.
    const xe = Float32Array.from({ length: m * k }, () => rng.int(-32, 32) / 16);
    const we = Float32Array.from({ length: k * n }, () => rng.int(-2, 2) / 2);
    const be = Float32Array.from({ length: n }, () => rng.int(-16, 16) / 8);
    const opts = alpha === undefined ? {} : { alpha };
    const outs = await computeAll(() => [
      linear(f32(x, [m, k]), f32(w, [k, n]), f32(b, [n]), act, opts),
      linear(f32(x, [m, k]), f32(w, [k, n]), null, act, opts),
      linear(f32(xe, [m, k]), f32(we, [k, n]), f32(be, [n]), act, opts),
    ]);
    checkLinear(outs[0], x, w, b, m, n, k, act, a, `linear ${act} + bias`);
    checkLinear(outs[1], x, w, null, m, n, k, act, a, `linear ${act}, no bias`);
    const z = matmulRef(xe, we, m, n, k, false, false, be).c;
    const y = applyActivation(act, z, m, n, a);
    const tol = activationTol(act, z, y, new Float64Array(m * n), m, n, a);
    assertClose(outs[2].data, y, { atol: tol, rtol: 0 }, `linear ${act}, exact z`, [m, n]);
  });
}

Deno.test("linear: aligned shapes, softmax over long rows, and batch axes", async () => {
  const rng = new Rng(4242);
  const [m, n, k] = [36, 84, 20];
  const x = rng.floats(m * k, -2, 2), w = rng.floats(k * n, -1, 1), b = rng.floats(n, -1, 1);
  // Softmax over 33 columns is the product, then a row-wise pass.
  const [m2, n2, k2] = [7, 33, 5];
  const x2 = rng.floats(m2 * k2, -3, 3), w2 = rng.floats(k2 * n2, -1, 1);
  const b2 = rng.floats(n2, -1, 1);
  const outs = await computeAll(() => [
    linear(f32(x, [m, k]), f32(w, [k, n]), f32(b, [n]), "relu"),
    linear(f32(x2, [m2, k2]), f32(w2, [k2, n2]), f32(b2, [n2]), "softmax"),
    linear(f32(x2, [1, m2, k2]), f32(w2, [k2, n2]), f32(b2, [n2]), "tanh"),
  ]);
  checkLinear(outs[0], x, w, b, m, n, k, "relu", 0, "linear relu, aligned");
  checkLinear(outs[1], x2, w2, b2, m2, n2, k2, "softmax", 0, "linear softmax, 33 columns");
  assertShape(outs[2].shape, [1, m2, n2], "linear on [1, 7, 5]");
  checkLinear(
    { data: outs[2].data, shape: [m2, n2] },
    x2,
    w2,
    b2,
    m2,
    n2,
    k2,
    "tanh",
    0,
    "linear tanh, rank 3",
  );
});

// ---------------------------------------------------------------------------------------------
// Gradients

/**
 * Central differences of `f` at `v` with their estimated error: D(h) and the Richardson estimate
 * |D(h) − D(2h)| (the truncation error of D(h) is about a third of it).
 */
function differences(
  f: (v: Float64Array) => number,
  v: ArrayLike<number>,
): { g: Float64Array; err: Float64Array } {
  const g = centralDifferences(f, v, 1e-4);
  const g2 = centralDifferences(f, v, 2e-4);
  return { g, err: g.map((x, i) => Math.abs(x - g2[i]) + 1e-12) };
}

interface GradBounds {
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

/**
 * Error bounds of the dense layer's gradients for the objective Σ act(x·w + b) ⊙ r (dy = r):
 * the activation gradient's error ez, carried through dx = dz·wᵀ, dw = xᵀ·dz and db = Σ dz.
 */
function linearGradBounds(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  r: Float32Array,
  m: number,
  n: number,
  k: number,
  act: ActivationName,
  alpha: number,
): GradBounds {
  const z = matmulRef(x, w, m, n, k, false, false, b);
  const y = applyActivation(act, z.c, m, n, alpha);
  const tz = productTol(z.abs, k);
  const ty = activationTol(act, z.c, y, tz, m, n, alpha);
  const dz = new Float64Array(m * n), ez = new Float64Array(m * n);
  if (act === "softmax") {
    for (let i = 0; i < m; i++) {
      let dot = 0, dotAbs = 0, dotErr = 0;
      for (let j = 0; j < n; j++) {
        dot += r[i * n + j] * y[i * n + j];
        dotAbs += Math.abs(r[i * n + j] * y[i * n + j]);
        dotErr += ty[i * n + j] * Math.abs(r[i * n + j]);
      }
      dotErr += (n + 1) * U * dotAbs;
      for (let j = 0; j < n; j++) {
        const q = i * n + j;
        dz[q] = y[q] * (r[q] - dot);
        ez[q] = ty[q] * Math.abs(r[q] - dot) + y[q] * dotErr +
          3 * EPS * y[q] * (Math.abs(r[q]) + Math.abs(dot));
      }
    }
  } else {
    const { l2 } = lipschitz(act, alpha);
    for (let q = 0; q < m * n; q++) {
      const d = activationDerivF64(act, z.c[q], alpha);
      const g = Math.abs(r[q]);
      dz[q] = d * r[q];
      let own = 0;
      const zq = z.c[q];
      switch (act) {
        case "leakyRelu":
          own = 1.5 * EPS * Math.abs(dz[q]);
          break;
        case "elu":
          own = zq > 0 ? 0 : g * (ty[q] + 2 * EPS * Math.abs(y[q] + alpha));
          break;
        case "sigmoid":
          own = (expUlps(zq) + 6) * EPS * Math.abs(dz[q]);
          break;
        case "tanh":
          own = (expUlps(2 * zq) + 6) * EPS * Math.abs(dz[q]);
          break;
        case "gelu": {
          const pdf = Math.exp(-0.5 * zq * zq) / Math.sqrt(2 * Math.PI);
          own = g * (0.6e-7 + 3 * EPS + Math.abs(zq * pdf) * (expUlps(zq * zq / 2) + 3) * EPS) +
            2 * EPS * Math.abs(dz[q]);
          break;
        }
        case "geluTanh": {
          const c = Math.sqrt(2 / Math.PI);
          const inner = c * (zq + 0.044715 * zq * zq * zq);
          const dinner = c * (1 + 3 * 0.044715 * zq * zq);
          const tErr = (expUlps(2 * inner) + 2) * EPS + 4 * EPS;
          own = g * (tErr * (0.5 + Math.abs(zq * dinner)) + 8 * EPS * (1 + Math.abs(zq * dinner)));
          break;
        }
      }
      ez[q] = g * l2 * tz[q] + own;
    }
  }
  const dx = new Float64Array(m * k), dw = new Float64Array(k * n), db = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let e = 0, s = 0;
      for (let j = 0; j < n; j++) {
        e += ez[i * n + j] * Math.abs(w[p * n + j]);
        s += Math.abs(dz[i * n + j] * w[p * n + j]);
      }
      dx[i * k + p] = e + (n + 2) * U * s + (n + 1) * TINY;
    }
  }
  for (let p = 0; p < k; p++) {
    for (let j = 0; j < n; j++) {
      let e = 0, s = 0;
      for (let i = 0; i < m; i++) {
        e += Math.abs(x[i * k + p]) * ez[i * n + j];
        s += Math.abs(x[i * k + p] * dz[i * n + j]);
      }
      dw[p * n + j] = e + (m + 2) * U * s + (m + 1) * TINY;
    }
  }
  for (let j = 0; j < n; j++) {
    let e = 0, s = 0;
    for (let i = 0; i < m; i++) {
      e += ez[i * n + j];
      s += Math.abs(dz[i * n + j]);
    }
    db[j] = e + (m + 2) * U * s;
  }
  return { dx, dw, db };
}

/**
 * Random layer inputs whose pre-activations all stay at least 1e-3 from 0, so that the central
 * differences (which move z by at most 3e-4: steps of 2e-4·max(1, |v|) times |x|, |w| ≤ 1.5)
 * never straddle relu's, leaky relu's or elu's kink.
 */
function layerInputs(rng: Rng, m: number, n: number, k: number, withBias: boolean) {
  for (;;) {
    const x = rng.floats(m * k, -1.5, 1.5), w = rng.floats(k * n, -1, 1);
    const b = withBias ? rng.floats(n, -1, 1) : null;
    const r = rng.floats(m * n, -1, 1);
    const z = matmulRef(x, w, m, n, k, false, false, b).c;
    if (z.every((v) => Math.abs(v) >= 1e-3)) return { x, w, b, r };
  }
}

/** Checks the gradients of Σ linear(x, w, b, act) ⊙ r with respect to x, w and b. */
async function checkLinearGrads(
  rng: Rng,
  act: Activation,
  alpha: number | undefined,
  [m, n, k]: readonly [number, number, number],
  withBias: boolean,
): Promise<void> {
  const a = defaultAlpha(act, alpha);
  const opts = alpha === undefined ? {} : { alpha };
  const { x, w, b, r } = layerInputs(rng, m, n, k, withBias);
  const X = f32(x, [m, k]), W = f32(w, [k, n]), R = f32(r, [m, n]);
  const B = b ? f32(b, [n]) : null;
  const params: Tensor[] = B ? [X, W, B] : [X, W];
  let got: Float32Array[];
  try {
    const gs = await grad(() => sum(mul(linear(X, W, B, act, opts), R)), params);
    got = await Promise.all(gs.map((g) => g.data() as Promise<Float32Array>));
    gs.forEach((g) => g.dispose());
  } finally {
    for (const t of [X, W, R, B]) t?.dispose();
  }
  const f = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number> | null) =>
    linearObjective(xx, ww, bb, r, m, n, k, act, a);
  const fdX = differences((v) => f(v, w, b), x);
  const fdW = differences((v) => f(x, v, b), w);
  const bounds = linearGradBounds(x, w, b, r, m, n, k, act, a);
  const tag = `linear ${actName(act, alpha)} [${m}, ${k}]·[${k}, ${n}]${b ? " + bias" : ""}`;
  const tol = (bound: Float64Array, fd: { err: Float64Array }) => ({
    atol: bound.map((e, i) => e + fd.err[i]),
    rtol: 0,
  });
  assertClose(got[0], fdX.g, tol(bounds.dx, fdX), `${tag}: dx`, [m, k]);
  assertClose(got[1], fdW.g, tol(bounds.dw, fdW), `${tag}: dw`, [k, n]);
  if (b) {
    const fdB = differences((v) => f(x, w, v), b);
    assertClose(got[2], fdB.g, tol(bounds.db, fdB), `${tag}: db`);
  }
}

for (const { act, alpha } of ACTS) {
  Deno.test(`linear ${actName(act, alpha)} gradients match central differences`, async () => {
    const rng = new Rng(0x6ad + act.length * 7 + Math.round((alpha ?? 0) * 1000));
    await checkLinearGrads(rng, act, alpha, [7, 9, 13], true);
    await checkLinearGrads(rng, act, alpha, [5, 3, 11], false);
  });
}

Deno.test("linear gradients on aligned shapes (vector loads, direct stores)", async () => {
  const rng = new Rng(0xa11);
  await checkLinearGrads(rng, "relu", undefined, [20, 36, 12], true);
});

for (const [tA, tB] of LAYOUTS) {
  Deno.test(`matmul ${layoutName(tA, tB)} gradients match central differences`, async () => {
    const rng = new Rng(0x9d + (tA ? 2 : 0) + (tB ? 1 : 0));
    const [m, n, k] = [7, 5, 9];
    const { a, b } = operands(rng, m, n, k);
    const r = rng.floats(m * n, -1, 1);
    const A = f32(a, tA ? [k, m] : [m, k]), B = f32(b, tB ? [n, k] : [k, n]);
    const R = f32(r, [m, n]);
    let got: Float32Array[];
    try {
      const gs = await grad(
        () => sum(mul(matmul(A, B, { transposeA: tA, transposeB: tB }), R)),
        [A, B],
      );
      got = await Promise.all(gs.map((g) => g.data() as Promise<Float32Array>));
      gs.forEach((g) => g.dispose());
    } finally {
      for (const t of [A, B, R]) t.dispose();
    }
    const f = (aa: ArrayLike<number>, bb: ArrayLike<number>) => {
      const c = matmulRef(aa, bb, m, n, k, tA, tB).c;
      let s = 0;
      for (let i = 0; i < m * n; i++) s += c[i] * r[i];
      return s;
    };
    const fdA = differences((v) => f(v, b), a);
    const fdB = differences((v) => f(a, v), b);
    // dA and dB are products of length n and m of exact inputs (r, a, b): (L + 2)·u·Σ|p||q|.
    const at = (i: number, p: number) => (tA ? a[p * m + i] : a[i * k + p]);
    const bt = (p: number, j: number) => (tB ? b[j * k + p] : b[p * n + j]);
    const tolA = new Float64Array(m * k), tolB = new Float64Array(k * n);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += Math.abs(r[i * n + j] * bt(p, j));
        tolA[tA ? p * m + i : i * k + p] = (n + 2) * U * s;
      }
    }
    for (let p = 0; p < k; p++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let i = 0; i < m; i++) s += Math.abs(at(i, p) * r[i * n + j]);
        tolB[tB ? j * k + p : p * n + j] = (m + 2) * U * s;
      }
    }
    const label = `matmul ${layoutName(tA, tB)}`;
    assertClose(
      got[0],
      fdA.g,
      { atol: tolA.map((t, i) => t + fdA.err[i]), rtol: 0 },
      `${label}: da`,
    );
    assertClose(
      got[1],
      fdB.g,
      { atol: tolB.map((t, i) => t + fdB.err[i]), rtol: 0 },
      `${label}: db`,
    );
  });
}

Deno.test("linear and matmul gradients keep batch axes and skip untracked inputs", async () => {
  const rng = new Rng(5150);
  const [b0, b1, k, n] = [2, 3, 5, 6];
  const x = rng.floats(b0 * b1 * k, -1, 1), w = rng.floats(k * n, -1, 1);
  const r = rng.floats(b0 * b1 * n, -1, 1);
  const X = f32(x, [b0, b1, k]), W = f32(w, [k, n]), R = f32(r, [b0, b1, n]);
  try {
    // Only w is a source: x's gradient is never needed.
    const [dw] = await grad(() => sum(mul(linear(X, W, null, "linear"), R)), [W]);
    const [dx] = await grad(() => sum(mul(matmul(X, W), R)), [X]);
    assertShape(dw.shape, [k, n], "dw of a rank-3 input");
    assertShape(dx.shape, [b0, b1, k], "dx of a rank-3 input");
    // dw = xᵀ·r and dx = r·wᵀ over the folded rows.
    const m = b0 * b1;
    const xt = new Float32Array(k * m);
    for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) xt[p * m + i] = x[i * k + p];
    const refW = matmulRef(xt, r, k, n, m);
    const refX = matmulRef(r, w, m, k, n, false, true);
    assertClose(await dw.data(), refW.c, { atol: productTol(refW.abs, m), rtol: 0 }, "dw");
    assertClose(await dx.data(), refX.c, { atol: productTol(refX.abs, n), rtol: 0 }, "dx");
    dw.dispose();
    dx.dispose();
  } finally {
    for (const t of [X, W, R]) t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Errors

Deno.test("matmul and linear: errors name the op and both shapes", () => {
  const a = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = f32([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
  const v = f32([1, 2, 3], [3]);
  const n = i32([1, 2, 3, 4, 5, 6], [3, 2]);
  const w = f32([1, 2, 3, 4, 5, 6], [3, 2]);
  try {
    assertWgradError(() => matmul(a, b), "shape", ["matmul", "[2, 3]", "[4, 2]", "inner"], "K");
    assertWgradError(
      () => matmul(a, b, { transposeA: true }),
      "shape",
      ["matmul", "[2, 3]", "[4, 2]"],
      "Kᵀ",
    );
    assertWgradError(() => matmul(v, w), "shape", ["matmul", "[3]", "[3, 2]", "rank"], "rank a");
    assertWgradError(() => matmul(a, v), "shape", ["matmul", "[2, 3]", "[3]", "rank"], "rank b");
    assertWgradError(
      () => matmul(f32(new Float32Array(12), [2, 2, 3]), w, { transposeA: true }),
      "shape",
      ["matmul", "transposeA", "[2, 2, 3]", "[3, 2]"],
      "transposeA rank 3",
    );
    assertWgradError(
      () => matmul(a, n as unknown as Tensor<"f32">),
      "dtype",
      ["matmul", "[2, 3]", "i32 [3, 2]"],
      "dtype",
    );
    assertWgradError(
      () => linear(a, w, f32([1, 2, 3], [3]), "relu"),
      "shape",
      ["linear", "bias", "[3]", "[2, 3]", "[3, 2]"],
      "bias shape",
    );
    assertWgradError(
      () => linear(a, w, null, "swish" as Activation),
      "value",
      ["linear", "swish", "relu", "softmax", "geluTanh"],
      "unknown activation",
    );
    assertWgradError(
      () => linear(a, w, null, "elu", { alpha: NaN }),
      "value",
      ["linear", "alpha"],
      "alpha NaN",
    );
    assertWgradError(() => linear(a, b, null), "shape", ["linear", "[2, 3]", "[4, 2]"], "K");
    a.dispose();
    assertWgradError(() => matmul(a, w), "disposed", ["matmul", "[2, 3]"], "disposed");
    const e = assertWgradError(() => linear(v, w, null), "shape", ["linear", "[3]"], "rank x");
    if (!(e instanceof WgradError)) throw new Error("not a WgradError");
  } finally {
    for (const t of [a, b, v, n, w]) t.dispose();
  }
});

Deno.test("linear: weight and bias gradients go straight into given destinations", async () => {
  const { valueAndGradSync } = await import("../src/autodiff/grad.ts");
  const rng = new Rng(41);
  const [m, k, n] = [7, 9, 5];
  const x = f32(rng.floats(m * k), [m, k]);
  const w = f32(rng.floats(k * n), [k, n]);
  const b = f32(rng.floats(n), [n]);
  const r = f32(rng.floats(m * n), [m, n]);
  const loss = () => sum(mul(linear(x, w, b, "tanh"), r));
  const plain = await grad(loss, [w, b]);
  const want = await Promise.all(plain.map((t) => t.data()));
  // Used once each: the gradients are the destinations themselves, with the same values.
  const dw = f32(new Float32Array(k * n), [k, n]);
  const db = f32(new Float32Array(n), [n]);
  const once = valueAndGradSync(loss, [w, b], [dw, db]);
  once.value.dispose();
  if (once.grads[0] !== dw || once.grads[1] !== db) {
    throw new Error("the gradients of a parameter used once must be written into the destinations");
  }
  const exact = { atol: 0, rtol: 0 };
  assertClose(await dw.data(), want[0], exact, "dW in place (the same kernel: bitwise)");
  assertClose(await db.data(), want[1], exact, "db in place (the same kernel: bitwise)");
  // Used twice: the two contributions are summed into a new tensor; the destination is untouched.
  const dw2 = f32(new Float32Array(k * n), [k, n]);
  const twice = valueAndGradSync(
    () => add(loss(), sum(mul(linear(x, w, null, "linear"), r))),
    [w],
    [dw2],
  );
  twice.value.dispose();
  if (twice.grads[0] === dw2) throw new Error("a parameter used twice needs the sum");
  assertClose(await dw2.data(), new Float32Array(k * n), exact, "a summed gradient's destination");
  for (const t of [x, w, b, r, dw, db, dw2, twice.grads[0], ...plain]) t.dispose();
});
