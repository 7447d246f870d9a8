/**
 * Reduction kernels (shaders/reduce.wgsl, both entry points) against float64 references.
 * @module
 */
import { argmax, argmin, max, mean, min, sum, type Tensor, tensor } from "../mod.ts";
import {
  assertClose,
  assertEqualArrays,
  assertShape,
  assertWgradError,
  compute,
  computeAll,
  EPS,
  EXACT,
  f32,
  fmtDims,
  i32,
  type ReduceName,
  reduceRef,
  type ReduceResult,
  Rng,
  roundF32,
  type Shape,
  sizeOf,
  type Tolerance,
  u32,
} from "./harness.ts";

// Tolerances. EPS = 2⁻²³ is one f32 ulp relative.

/**
 * sum (f32): a recursive or tree summation of R terms in f32 errs by at most (R−1)·u·Σ|xᵢ| (u =
 * EPS/2), and with high probability by about √R·u·Σ|xᵢ| (Higham, "Accuracy and Stability of
 * Numerical Algorithms", §4.2). The tolerance is twice that probabilistic bound, per output.
 * Sums of small integers are exact in any order and are checked exactly as well.
 */
function sumTol(ref: ReduceResult): Tolerance {
  return { atol: ref.absSum.map((s) => Math.sqrt(ref.r) * EPS * s), rtol: 0 };
}
/** mean: the sum's tolerance divided by R, plus 1.5 ulps for rounding 1/R and the product. */
function meanTol(ref: ReduceResult): Tolerance {
  return { atol: ref.absSum.map((s) => (Math.sqrt(ref.r) * EPS * s) / ref.r), rtol: 1.5 * EPS };
}
// max, min, argmax and argmin pick an element: exact. Integer sums are exact (no overflow here).

interface Case {
  shape: Shape;
  axes?: number | number[];
  keepDims?: boolean;
}

const FIXED_CASES: readonly Case[] = [
  // Rank 0 and 1: 1, 7, 33, 127, >10,000 and >70,000 elements.
  { shape: [] },
  { shape: [1] },
  { shape: [7] },
  { shape: [33], axes: 0 },
  { shape: [127], axes: -1, keepDims: true },
  { shape: [10007] },
  { shape: [70001], axes: 0 },
  // Rank 2: each axis, negative axes, both, keepDims.
  { shape: [33, 127], axes: 0 },
  { shape: [33, 127], axes: 1 },
  { shape: [33, 127], axes: -2, keepDims: true },
  { shape: [33, 127], axes: [0, 1] },
  { shape: [33, 127], axes: [-1, 0], keepDims: true },
  // Rank 3: every single axis, adjacent and non-adjacent pairs, all axes.
  { shape: [7, 33, 5], axes: 0 },
  { shape: [7, 33, 5], axes: 1 },
  { shape: [7, 33, 5], axes: 2, keepDims: true },
  { shape: [7, 33, 5], axes: [0, 1] },
  { shape: [7, 33, 5], axes: [1, 2], keepDims: true },
  { shape: [7, 33, 5], axes: [0, 2] },
  { shape: [7, 33, 5], axes: [-1, -3], keepDims: true },
  { shape: [7, 33, 5], keepDims: true },
  // Rank 4.
  { shape: [3, 4, 5, 6], axes: [0, 2] },
  { shape: [3, 4, 5, 6], axes: [1, 3] },
  { shape: [3, 4, 5, 6], axes: [0, 3], keepDims: true },
  { shape: [3, 4, 5, 6], axes: [0, 1, 3] },
  { shape: [3, 4, 5, 6], axes: [1, 2] },
  { shape: [3, 4, 5, 6], axes: 3 },
  // Rank 5 and 6.
  { shape: [2, 3, 4, 3, 2], axes: [0, 2, 4] },
  { shape: [2, 3, 4, 3, 2], axes: [1, 3], keepDims: true },
  { shape: [3, 1, 4, 2, 5, 2], axes: [1, 2, 5] },
  { shape: [2, 2, 3, 2, 3, 2], axes: [0, 1, 2, 3, 4, 5] },
  { shape: [2, 5, 2, 3, 2, 3], axes: [-5, -3, -1] },
  // Large R with few outputs (one workgroup per output): contiguous, strided, non-adjacent,
  // fewer inputs than invocations, the 64/65 boundary of the two paths.
  { shape: [5, 1000], axes: 1 },
  { shape: [3000, 4], axes: 0 },
  { shape: [2, 300, 3, 40], axes: [1, 3] },
  { shape: [7, 100], axes: 1 },
  { shape: [10, 64], axes: 1 },
  { shape: [10, 65], axes: -1, keepDims: true },
  { shape: [257, 3, 2], axes: [0, 2] },
  // Many outputs: small R, and R > 64 with ≥ 16,384 outputs (one invocation per output).
  { shape: [70001, 3], axes: 1 },
  { shape: [3, 23339], axes: 0 },
  { shape: [16400, 66], axes: 1 },
  // Size-1 axes and an empty axis list.
  { shape: [7, 1, 5], axes: 1 },
  { shape: [1, 1], axes: [0, 1], keepDims: true },
  { shape: [7, 5], axes: [] },
];

/** Seeded random shapes of rank 1 to 6 with random (possibly negative) axis sets. */
function randomCases(rng: Rng, count: number): Case[] {
  const out: Case[] = [];
  for (let c = 0; c < count; c++) {
    const rank = rng.int(1, 6);
    const shape = rng.shape(rank, 6);
    const axes = rng.permutation(rank).slice(0, rng.int(1, rank))
      .map((a) => (rng.next() < 0.3 ? a - rank : a));
    out.push({ shape, axes, keepDims: rng.next() < 0.5 });
  }
  return out;
}

const CASES = [...FIXED_CASES, ...randomCases(new Rng(0x4ed), 16)];

/** The cases argmax/argmin take: one axis, or none (the flattened tensor). */
const ARG_CASES: Case[] = CASES.flatMap((c) => {
  if (c.axes === undefined || typeof c.axes === "number") return [c];
  if (c.axes.length === 1) return [{ ...c, axes: c.axes[0] }];
  return [];
});

function describe(c: Case): string {
  const axes = c.axes === undefined ? "all axes" : `axes ${JSON.stringify(c.axes)}`;
  return `${fmtDims(c.shape)} ${axes}${c.keepDims ? " keepDims" : ""}`;
}

type DT = "f32" | "i32" | "u32";

/** Inputs: uniform f32 in [−1, 1) (or small integers, for ties), integers in a safe range. */
function inputsFor(rng: Rng, op: ReduceName, dtype: DT, n: number, ties: boolean) {
  if (dtype === "f32") {
    if (ties) return Float32Array.from({ length: n }, () => rng.int(-3, 3));
    return rng.floats(n, -1, 1);
  }
  const hi = op === "argmax" || op === "argmin" || op === "max" || op === "min" ? 4 : 1000;
  return dtype === "i32" ? rng.ints(n, -hi, hi) : rng.uints(n, 0, 2 * hi);
}

function run(op: ReduceName, x: Tensor, c: Case): Tensor {
  const opts = { keepDims: c.keepDims };
  switch (op) {
    case "sum":
      return sum(x, c.axes, opts);
    case "mean":
      return mean(x as Tensor<"f32">, c.axes, opts);
    case "max":
      return max(x, c.axes, opts);
    case "min":
      return min(x, c.axes, opts);
    case "argmax":
      return argmax(x, c.axes as number | undefined, opts);
    case "argmin":
      return argmin(x, c.axes as number | undefined, opts);
  }
}

const PLAN: readonly [ReduceName, DT][] = [
  ["sum", "f32"],
  ["sum", "i32"],
  ["sum", "u32"],
  ["mean", "f32"],
  ["max", "f32"],
  ["max", "i32"],
  ["max", "u32"],
  ["min", "f32"],
  ["min", "i32"],
  ["min", "u32"],
  ["argmax", "f32"],
  ["argmax", "i32"],
  ["argmax", "u32"],
  ["argmin", "f32"],
  ["argmin", "i32"],
  ["argmin", "u32"],
];

for (const [op, dtype] of PLAN) {
  const isArg = op === "argmax" || op === "argmin";
  const cases = isArg ? ARG_CASES : CASES;
  Deno.test(`reduce ${op} ${dtype} matches the reference on ${cases.length} axis sets`, async () => {
    const rng = new Rng(0x7ed + PLAN.findIndex(([o, d]) => o === op && d === dtype) * 977);
    // argmax/argmin see small integers (many ties); max/min see both kinds, alternately.
    const inputs = cases.map((c, i) =>
      inputsFor(
        rng,
        op,
        dtype,
        sizeOf(c.shape),
        isArg || ((op === "max" || op === "min") && i % 2 === 1),
      )
    );
    const outs = await computeAll(() =>
      cases.map((c, i) => run(op, tensor(inputs[i], c.shape, dtype), c))
    );
    cases.forEach((c, i) => {
      const label = `${op} ${dtype} ${describe(c)}`;
      const ref = reduceRef(op, inputs[i], c.shape, c.axes, c.keepDims, dtype);
      assertShape(outs[i].shape, ref.shape, label);
      const outDtype = isArg ? "i32" : dtype;
      if (outs[i].dtype !== outDtype) throw new Error(`${label}: dtype ${outs[i].dtype}`);
      if (op === "sum" && dtype === "f32") {
        assertClose(outs[i].data, ref.data, sumTol(ref), label, ref.shape);
      } else if (op === "mean") {
        assertClose(outs[i].data, ref.data, meanTol(ref), label, ref.shape);
      } else {
        assertEqualArrays(outs[i].data, ref.data, label, ref.shape);
      }
    });
  });
}

Deno.test("reduce: f32 sums and means of small integers are exact", async () => {
  // Integers with |partial sums| < 2²⁴ are exact in f32 in any summation order, so the kernels'
  // results must equal the reference exactly (mean: R a power of two, so 1/R is exact too).
  const rng = new Rng(0x51);
  const cases: Case[] = [
    { shape: [70001] },
    { shape: [5, 1000], axes: 1 },
    { shape: [3000, 4], axes: 0 },
    { shape: [2, 300, 3, 40], axes: [1, 3] },
    { shape: [16400, 66], axes: 1 },
    { shape: [33, 127], axes: 0 },
    { shape: [7, 33, 5], axes: [0, 2] },
  ];
  const means: Case[] = [{ shape: [3, 1024], axes: 1 }, { shape: [64, 5], axes: 0 }];
  const inputs = [...cases, ...means].map((c) =>
    Float32Array.from({ length: sizeOf(c.shape) }, () => rng.int(-100, 100))
  );
  const outs = await computeAll(() => [
    ...cases.map((c, i) => sum(f32(inputs[i], c.shape), c.axes)),
    ...means.map((c, i) => mean(f32(inputs[cases.length + i], c.shape), c.axes)),
  ]);
  cases.forEach((c, i) => {
    const ref = reduceRef("sum", inputs[i], c.shape, c.axes);
    assertEqualArrays(outs[i].data, ref.data, `sum of integers f32 ${describe(c)}`, ref.shape);
  });
  means.forEach((c, i) => {
    const ref = reduceRef("mean", inputs[cases.length + i], c.shape, c.axes);
    const out = outs[cases.length + i];
    assertClose(out.data, roundF32(ref.data), EXACT, `mean of integers ${describe(c)}`);
  });
});

Deno.test("reduce: argmax and argmin take the first of tied elements", async () => {
  // Every element equal: index 0 everywhere. Maximum repeated at the end of each row: the first.
  const row = [0, 5, 1, 5, 5, 2, 5];
  const wide = new Float32Array(3 * 300).fill(1); // R = 300 takes the workgroup path
  for (let r = 0; r < 3; r++) {
    for (const k of [299, 100 + r, 257, 200]) wide[r * 300 + k] = 9;
  }
  const outs = await computeAll(() => [
    argmax(f32(new Float32Array(1000).fill(2), [1000])),
    argmin(f32(new Float32Array(1000).fill(2), [10, 100]), 1),
    argmax(f32(row, [7])),
    argmin(f32(row.map((v) => -v), [7]), 0, { keepDims: true }),
    argmax(f32(wide, [3, 300]), -1),
    argmin(f32(wide.map((v) => -v), [3, 300]), 1),
    argmax(i32([3, 7, 7, 1, 7], [5])),
    argmin(u32([4, 2, 9, 2, 2], [5])),
    argmax(f32(Array.from({ length: 8 }, (_, i) => (i % 4 === 2 ? 1 : 0)), [2, 4]), 0),
  ]);
  const expected = [[0], Array(10).fill(0), [1], [1], [100, 101, 102], [100, 101, 102], [1], [1], [
    0,
    0,
    0,
    0,
  ]];
  expected.forEach((e, i) => assertEqualArrays(outs[i].data, e, `ties case ${i}`));
  assertShape(outs[3].shape, [1], "argmin keepDims [7]");
  assertShape(outs[0].shape, [], "argmax of all axes");
});

Deno.test("reduce: axes holding no elements", async () => {
  const outs = await computeAll(() => [
    sum(f32([], [3, 0]), 1),
    sum(f32([], [0]), undefined, { keepDims: true }),
    sum(i32([], [0, 4]), 0),
    sum(f32([], [0, 3]), 1),
    max(f32([], [0, 3]), 1),
  ]);
  assertEqualArrays(outs[0].data, [0, 0, 0], "sum [3, 0] over axis 1");
  assertShape(outs[1].shape, [1], "sum [0] keepDims");
  assertEqualArrays(outs[1].data, [0], "sum [0]");
  assertEqualArrays(outs[2].data, [0, 0, 0, 0], "sum i32 [0, 4] over axis 0");
  assertShape(outs[3].shape, [0], "sum [0, 3] over axis 1");
  assertShape(outs[4].shape, [0], "max [0, 3] over axis 1");
  const empty = await compute(() => mean(f32([1, 2, 3, 4, 5, 6], [2, 3]), []));
  assertEqualArrays(empty.data, [1, 2, 3, 4, 5, 6], "mean over no axes");
});

Deno.test("reduce: errors name the op, the axes and the shape", () => {
  const x = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  const e = f32([], [2, 0]);
  const n = i32([1, 2], [2]);
  try {
    for (const [op, fn] of [["sum", sum], ["mean", mean], ["max", max], ["min", min]] as const) {
      const f = fn as (t: Tensor, a?: number | number[]) => Tensor;
      assertWgradError(() => f(x, 2), "shape", [op, "axis 2", "[2, 3]"], `${op} axis 2`);
      assertWgradError(() => f(x, -3), "shape", [op, "axis -3", "[2, 3]"], `${op} axis -3`);
      assertWgradError(() => f(x, [1, -1]), "shape", [op, "twice", "[2, 3]"], `${op} [1, -1]`);
      assertWgradError(() => f(x, [0, 0]), "shape", [op, "twice", "[2, 3]"], `${op} [0, 0]`);
      assertWgradError(() => f(x, 0.5), "shape", [op, "0.5", "[2, 3]"], `${op} axis 0.5`);
    }
    for (const [op, fn] of [["argmax", argmax], ["argmin", argmin]] as const) {
      assertWgradError(() => fn(x, 2), "shape", [op, "axis 2", "[2, 3]"], `${op} axis 2`);
      assertWgradError(() => fn(e, 1), "shape", [op, "[2, 0]"], `${op} over an empty axis`);
    }
    assertWgradError(() => max(e, 1), "shape", ["max", "[2, 0]"], "max over an empty axis");
    assertWgradError(() => min(e), "shape", ["min", "[2, 0]"], "min of an empty tensor");
    assertWgradError(
      () => mean(n as unknown as Tensor<"f32">),
      "dtype",
      ["mean", "i32 [2]"],
      "mean of i32",
    );
    x.dispose();
    assertWgradError(() => sum(x), "disposed", ["sum", "[2, 3]", "dispose"], "sum disposed");
    assertWgradError(() => argmax(x), "disposed", ["argmax", "[2, 3]"], "argmax disposed");
  } finally {
    for (const t of [x, e, n]) t.dispose();
  }
});
