/**
 * Binary kernels (shaders/binary.wgsl) with NumPy broadcasting against float64 references.
 * @module
 */
import {
  add,
  binary,
  BINARY_OPS,
  type BinaryOp,
  div,
  equal,
  greater,
  greaterEqual,
  less,
  lessEqual,
  maximum,
  minimum,
  mul,
  notEqual,
  type Operand,
  pow,
  scalar,
  sub,
  type Tensor,
  tensor,
} from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertShape,
  assertWgradError,
  type BinaryName,
  binaryRef,
  broadcastShape,
  compute,
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
  u32,
} from "./harness.ts";

// Tolerances. EPS = 2⁻²³ is one f32 ulp relative.

/**
 * add, sub and mul are correctly rounded in WGSL, and maximum/minimum pick an operand: all exact
 * against the float64 result rounded to f32 (the float64 result of two f32 operands is exact here).
 */
const EXACT_F32: ReadonlySet<BinaryName> = new Set([
  "add",
  "sub",
  "mul",
  "maximum",
  "minimum",
  "greater",
  "greaterEqual",
  "less",
  "lessEqual",
  "equal",
  "notEqual",
]);
/** div: WGSL allows 2.5 ulps (llvmpipe rounds correctly). */
const DIV_TOL: Tolerance = { atol: 0, rtol: 2.5 * EPS };
/**
 * pow: WGSL's pow is exp2(b·log2|a|), so its bound is inherited: with t = b·log2|a|, exp2 allows
 * 3 + 2|t| ulps, rounding t adds ln2·|t| ulps, and log2's error (3 ulps, or 2⁻²¹ = 4 EPS absolute
 * near 1) is multiplied by ln2·|b|. llvmpipe measures ≤ 8 ulps where this allows ~55.
 */
function powUlps(a: number, b: number): number {
  const l = Math.log2(Math.abs(a));
  const t = Math.abs(b * l);
  return 3 + 2 * t + Math.LN2 * t + Math.LN2 * Math.abs(b) * Math.max(4, 3 * Math.abs(l)) + 1;
}
// Integer ops (i32, u32) are exact (assertEqualArrays); arithmetic wraps at 32 bits as in WGSL.

/** Shape pairs: same shape, scalars both ways, broadcasts of every kind, size-0 dims. */
const FIXED_CASES: readonly (readonly [Shape, Shape])[] = [
  // Same shape (the kernel's mode 0): 1, 7, 33, 127, >10,000 and >70,000 elements.
  [[1], [1]],
  [[7], [7]],
  [[3, 11], [3, 11]],
  [[127], [127]],
  [[101, 103], [101, 103]],
  [[3, 5, 4673], [3, 5, 4673]],
  [[], []],
  // A scalar with a tensor, both orders (modes 1 and 2), and size-1 tensors of higher rank.
  [[], [127]],
  [[127], []],
  [[3, 5, 4673], []],
  [[1], [3, 5, 4673]],
  [[1, 1], [7, 33]],
  [[7, 33], [1, 1, 1]],
  // Leading 1s only: the same elements in the same order.
  [[33], [1, 33]],
  [[1, 1, 7], [7]],
  // [N, C] + [C], both orders; [N, 1] + [1, C]; [N, 1] + [C].
  [[33, 127], [127]],
  [[127], [33, 127]],
  [[33, 1], [1, 127]],
  [[1, 127], [33, 1]],
  [[7, 1], [33]],
  // [A, 1, C] + [B, 1] → [A, B, C].
  [[5, 1, 7], [3, 1]],
  [[4, 1, 33], [7, 1]],
  // Rank 5 and 6.
  [[2, 1, 3, 1, 5], [1, 4, 1, 6, 1]],
  [[2, 3, 1, 4, 1, 5], [3, 1, 4, 5, 1]],
  [[1, 3, 1, 2, 1, 3], [2, 1, 4, 1, 3, 1]],
  // Eight axes that do not merge (the most the kernel takes).
  [[2, 1, 2, 1, 2, 1, 2, 1], [1, 2, 1, 2, 1, 2, 1, 2]],
  // Broadcasts over >70,000 outputs (many workgroups in the general mode).
  [[300, 257], [257]],
  [[300, 1], [1, 257]],
  // Size-0 dimensions.
  [[0], []],
  [[0, 3], [3]],
  [[2, 0], [2, 1]],
  [[1, 0], [5, 1]],
  [[0], [1]],
];

/** Seeded random broadcast pairs of rank 1 to 6 (dims 1 to 5, some of them broadcast). */
function randomCases(rng: Rng, count: number): [Shape, Shape][] {
  const out: [Shape, Shape][] = [];
  while (out.length < count) {
    const rank = rng.int(1, 6);
    const full = rng.shape(rank, 5);
    const operand = (): number[] => {
      const r = rng.int(0, rank);
      return full.slice(rank - r).map((d) => (rng.next() < 0.35 ? 1 : d));
    };
    const a = operand(), b = operand();
    const s = broadcastShape(a, b);
    if (s && sizeOf(s) <= 4000) out.push([a, b]);
  }
  return out;
}

const CASES = [...FIXED_CASES, ...randomCases(new Rng(0xb1), 24)];

/** Inputs for an op and dtype on a well-conditioned domain. */
function operands(
  rng: Rng,
  op: BinaryName,
  dtype: "f32" | "i32" | "u32",
  na: number,
  nb: number,
): [Float32Array | Int32Array | Uint32Array, Float32Array | Int32Array | Uint32Array] {
  if (COMPARISONS.has(op)) {
    // Few distinct values, so that every relation is both true and false many times.
    const draw = (n: number) => rng.ints(n, 0, 4);
    const [a, b] = [draw(na), draw(nb)];
    if (dtype === "f32") {
      return [
        Float32Array.from(a, (v) => v - 1.5),
        Float32Array.from(b, (v) => v - 1.5),
      ];
    }
    if (dtype === "i32") {
      return [
        Int32Array.from(a, (v) => v - 2),
        Int32Array.from(b, (v) => v - 2),
      ];
    }
    return [Uint32Array.from(a), Uint32Array.from(b)];
  }
  if (dtype === "f32") {
    if (op === "div") {
      // Divisors away from 0, where the quotient is ill-conditioned.
      const b = rng.logFloats(nb, 0.1, 10).map((v) => (rng.next() < 0.5 ? -v : v));
      return [rng.floats(na, -10, 10), b];
    }
    if (op === "pow") {
      // Bases log-uniform in [0.1, 10), a quarter negative; exponents half integers in
      // [−4, 4], half fractional in [−3, 3) (negative bases with those must give NaN).
      const a = rng.logFloats(na, 0.1, 10).map((v) => (rng.next() < 0.25 ? -v : v));
      const b = Float32Array.from(
        { length: nb },
        () => (rng.next() < 0.5 ? rng.int(-4, 4) : rng.uniform(-3, 3)),
      );
      return [a, b];
    }
    const a = rng.floats(na, -10, 10), b = rng.floats(nb, -10, 10);
    for (let i = 0; i < Math.min(na, nb); i += 9) b[i] = a[i]; // ties for maximum/minimum
    return [a, b];
  }
  if (dtype === "i32") {
    // |a|, |b| ≤ 1000: products stay inside i32. Divisors are never 0.
    const b = rng.ints(nb, -1000, 1000);
    if (op === "div") b.forEach((v, i) => (b[i] = v === 0 ? 7 : v > 0 ? v % 50 + 1 : v % 50 - 1));
    return [rng.ints(na, -1000, 1000), b];
  }
  // u32: products up to 60000² wrap modulo 2³², as u32 multiplication does in WGSL; a − b wraps
  // when b > a.
  return [rng.uints(na, 0, 60000), op === "div" ? rng.uints(nb, 1, 1000) : rng.uints(nb, 0, 60000)];
}

function toleranceFor(
  op: BinaryName,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  ref: { data: Float64Array; ia: Int32Array; ib: Int32Array },
): Tolerance {
  if (op === "div") return DIV_TOL;
  if (op === "pow") {
    const atol = new Float64Array(ref.data.length);
    for (let i = 0; i < atol.length; i++) {
      atol[i] = powUlps(a[ref.ia[i]], b[ref.ib[i]]) * EPS * Math.abs(ref.data[i]);
    }
    return { atol, rtol: 0 };
  }
  return EXACT;
}

const COMPARISONS: ReadonlySet<BinaryName> = new Set([
  "greater",
  "greaterEqual",
  "less",
  "lessEqual",
  "equal",
  "notEqual",
]);

const FUNCS: Record<
  BinaryName,
  <D extends "f32" | "i32" | "u32">(a: Tensor<D>, b: Tensor<D>) => Tensor<D>
> = {
  add,
  sub,
  mul,
  div,
  maximum,
  minimum,
  // pow takes f32 only; the table is only called with f32 for it (and for the error cases).
  pow: <D extends "f32" | "i32" | "u32">(a: Tensor<D>, b: Tensor<D>) =>
    pow(a as Tensor<"f32">, b as Tensor<"f32">) as unknown as Tensor<D>,
  greater,
  greaterEqual,
  less,
  lessEqual,
  equal,
  notEqual,
};

const OPS: readonly BinaryName[] = [
  "add",
  "sub",
  "mul",
  "div",
  "maximum",
  "minimum",
  "pow",
  "greater",
  "greaterEqual",
  "less",
  "lessEqual",
  "equal",
  "notEqual",
];

function upload<D extends "f32" | "i32" | "u32">(
  data: Float32Array | Int32Array | Uint32Array,
  shape: Shape,
  dtype: D,
): Tensor<D> {
  return tensor(data, shape, dtype);
}

for (const dtype of ["f32", "i32", "u32"] as const) {
  for (const op of OPS) {
    if (op === "pow" && dtype !== "f32") continue;
    Deno.test(`binary ${op} ${dtype} matches the reference on ${CASES.length} broadcasts`, async () => {
      const rng = new Rng(0xb00 + OPS.indexOf(op) * 31 + dtype.length * 1000 + dtype.charCodeAt(0));
      const inputs = CASES.map(([sa, sb]) => operands(rng, op, dtype, sizeOf(sa), sizeOf(sb)));
      const outs = await computeAll(() =>
        CASES.map(([sa, sb], i) =>
          FUNCS[op](upload(inputs[i][0], sa, dtype), upload(inputs[i][1], sb, dtype))
        )
      );
      CASES.forEach(([sa, sb], i) => {
        const [a, b] = inputs[i];
        const label = `${op} ${dtype} ${fmtDims(sa)} with ${fmtDims(sb)}`;
        const ref = binaryRef(op, a, sa, b, sb, dtype);
        assertShape(outs[i].shape, ref.shape, label);
        if (outs[i].dtype !== dtype) throw new Error(`${label}: dtype ${outs[i].dtype}`);
        if (dtype !== "f32") {
          assertEqualArrays(outs[i].data, ref.data, label, ref.shape);
        } else {
          const tol = toleranceFor(op, a, b, ref);
          const expected = EXACT_F32.has(op) ? roundF32(ref.data) : ref.data;
          assertClose(outs[i].data, expected, tol, label, ref.shape);
        }
      });
    });
  }
}

Deno.test("binary: numbers as operands become scalars of the tensor's dtype", async () => {
  const rng = new Rng(0xc0);
  const x = rng.floats(127, 0.5, 4);
  const n = rng.ints(127, -100, 100);
  const s = [127];
  const cases: [string, () => Tensor, (v: number) => number][] = [
    ["add(x, 2)", () => add(f32(x, s), 2), (v) => v + 2],
    ["add(2, x)", () => add(2, f32(x, s)), (v) => 2 + v],
    ["sub(x, 0.5)", () => sub(f32(x, s), 0.5), (v) => v - 0.5],
    ["sub(3, x)", () => sub(3, f32(x, s)), (v) => 3 - v],
    ["mul(x, -1.5)", () => mul(f32(x, s), -1.5), (v) => v * -1.5],
    ["div(x, 4)", () => div(f32(x, s), 4), (v) => v / 4],
    ["div(1, x)", () => div(1, f32(x, s)), (v) => 1 / v],
    ["maximum(x, 2)", () => maximum(f32(x, s), 2), (v) => Math.max(v, 2)],
    ["minimum(2, x)", () => minimum(2, f32(x, s)), (v) => Math.min(2, v)],
    ["pow(x, 2)", () => pow(f32(x, s), 2), (v) => v * v],
    ["pow(2, x)", () => pow(2, f32(x, s)), (v) => 2 ** v],
    ["pow(x, 0.5)", () => pow(f32(x, s), 0.5), (v) => Math.sqrt(v)],
    ["binary('sub', x, 1)", () => binary("sub", f32(x, s), 1), (v) => v - 1],
  ];
  const icases: [string, () => Tensor, (v: number) => number][] = [
    ["add(n, 2) i32", () => add(i32(n, s), 2), (v) => v + 2],
    ["sub(5, n) i32", () => sub(5, i32(n, s)), (v) => 5 - v],
    ["mul(n, -3) i32", () => mul(i32(n, s), -3), (v) => v * -3],
    ["div(n, 7) i32 (truncates toward zero)", () => div(i32(n, s), 7), (v) => Math.trunc(v / 7)],
    ["div(n, -7) i32", () => div(i32(n, s), -7), (v) => Math.trunc(v / -7)],
    ["maximum(n, 0) i32", () => maximum(i32(n, s), 0), (v) => Math.max(v, 0)],
  ];
  const outs = await computeAll(() => [...cases, ...icases].map(([, f]) => f()));
  cases.forEach(([label, , f], i) => {
    assertShape(outs[i].shape, s, label);
    const e = Array.from(x, f);
    // pow(x, 2) is x·x in float64, one rounding away; pow is within its WGSL bound (here |t| ≤ 2).
    const tol = label.startsWith("pow")
      ? { atol: 0, rtol: 12 * EPS }
      : label.startsWith("div")
      ? DIV_TOL
      : EXACT;
    assertClose(outs[i].data, tol === EXACT ? roundF32(e) : e, tol, label, s);
  });
  icases.forEach(([label, , f], i) => {
    const out = outs[cases.length + i];
    if (out.dtype !== "i32") throw new Error(`${label}: dtype ${out.dtype}`);
    assertEqualArrays(out.data, Array.from(n, f), label, s);
  });
});

Deno.test("binary: pow follows its documented semantics for signs and zero exponents", async () => {
  const a = [-2, -2, -2, -2, -0.5, -3, -3, 0, 0, 5, 2, -2, 0.5, 4, -8, 3];
  const b = [2, 3, -1, -2, 3, 0.5, -1.5, 0, 2, 0, 0.5, 0, -2, 0.5, 1 / 3, -3];
  const expected = [4, -8, -0.5, 0.25, -0.125, NaN, NaN, 1, 0, 1, Math.SQRT2, 1, 4, 2, NaN, 1 / 27];
  const out = await compute(() => pow(f32(a, [a.length]), f32(b, [b.length])));
  assertClose(out.data, expected, { atol: 0, rtol: 16 * EPS }, "pow special cases");
  // x⁰ = 1 even for a NaN base: pow(NaN, 0).
  const nan = await compute(() => pow(scalar(NaN), 0));
  assertEqualArrays(nan.data, [1], "pow(NaN, 0)");
});

Deno.test("binary: errors name the op and both shapes or dtypes", () => {
  const a = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = f32([1, 2, 3, 4], [4]);
  const n = i32([1, 2, 3, 4, 5, 6], [2, 3]);
  const w = u32([1, 2, 3], [3]);
  try {
    for (const [op, fn] of Object.entries(FUNCS)) {
      assertWgradError(
        () => fn(a, b),
        "shape",
        [op, "[2, 3]", "[4]"],
        `${op} [2, 3] with [4]`,
      );
    }
    assertWgradError(
      () => add(a, n as unknown as Tensor<"f32">),
      "dtype",
      ["add", "f32 [2, 3]", "i32 [2, 3]"],
      "add f32 with i32",
    );
    assertWgradError(
      () => mul(w as unknown as Tensor<"i32">, n),
      "dtype",
      ["mul", "u32 [3]", "i32 [2, 3]"],
      "mul u32 with i32",
    );
    assertWgradError(
      () => pow(n as unknown as Tensor<"f32">, n as unknown as Tensor<"f32">),
      "dtype",
      ["pow", "i32 [2, 3]"],
      "pow on i32",
    );
    assertWgradError(
      () => binary("add", 1 as Operand<"f32">, 2 as Operand<"f32">),
      "value",
      ["add"],
      "add of two numbers",
    );
    // Nine axes that alternate between broadcast and not: nothing merges, 9 > 8 axes.
    const sa = [2, 1, 2, 1, 2, 1, 2, 1, 2], sb = [1, 2, 1, 2, 1, 2, 1, 2, 1];
    const x = f32(new Float32Array(sizeOf(sa)), sa), y = f32(new Float32Array(sizeOf(sb)), sb);
    try {
      assertWgradError(
        () => add(x, y),
        "shape",
        ["add", fmtDims(sa), fmtDims(sb), "9 axes"],
        "add over 9 unmergeable axes",
      );
    } finally {
      x.dispose();
      y.dispose();
    }
    b.dispose();
    assertWgradError(() => add(a, b), "disposed", ["add", "f32 [4]", "dispose"], "add disposed");
    assertWgradError(() => sub(b, 1), "disposed", ["sub", "[4]", "dispose"], "sub disposed");
  } finally {
    for (const t of [a, b, n, w]) t.dispose();
  }
});

// The op codes the kernel switches on match the exported table.
Deno.test("binary: binary(op, a, b) covers every exported op", async () => {
  const x = [1.5, 2, 3], y = [2, 0.5, 2];
  const ops = Object.keys(BINARY_OPS) as BinaryOp[];
  const outs = await computeAll(() => ops.map((op) => binary(op, f32(x, [3]), f32(y, [3]))));
  ops.forEach((op, i) => {
    const e = binaryRef(op, x, [3], y, [3]).data;
    assertClose(outs[i].data, e, { atol: 0, rtol: 4 * EPS }, `binary("${op}")`);
  });
});
