/**
 * Layout and creation kernels: transpose/permute (shaders/transpose.wgsl and the copy path),
 * reshape views, clone, cast (shaders/cast.wgsl), fill/zeros/ones (shaders/fill.wgsl).
 * @module
 */
import {
  abs,
  add,
  cast,
  clone,
  type DType,
  fill,
  max,
  min,
  mul,
  neg,
  ones,
  reshape,
  scalar,
  sum,
  tensor,
  transpose,
  zeros,
} from "../mod.ts";
import {
  assertEqualArrays,
  assertRejectsWgrad,
  assertShape,
  assertWgradError,
  castRef,
  compute,
  computeAll,
  f32,
  fmtDims,
  i32,
  reduceRef,
  Rng,
  type Shape,
  sizeOf,
  transposeRef,
} from "./harness.ts";

// Tolerances: every op here moves or converts elements without arithmetic, so every comparison
// is exact (fill and the f32 copies are compared bit for bit).

const DTYPES: readonly DType[] = ["f32", "i32", "u32"];

/** Random elements of `dtype` that use the whole bit range (signs, large magnitudes). */
function values(rng: Rng, dtype: DType, n: number): Float32Array | Int32Array | Uint32Array {
  if (dtype === "f32") return rng.floats(n, -1e6, 1e6);
  if (dtype === "i32") return rng.ints(n, -(2 ** 31), 2 ** 31 - 1);
  return rng.uints(n, 0, 2 ** 32 - 1);
}

function bits(x: ArrayLike<number>, dtype: DType): Uint32Array {
  if (dtype === "f32") return new Uint32Array(Float32Array.from(x).buffer);
  return dtype === "i32" ? new Uint32Array(Int32Array.from(x).buffer) : Uint32Array.from(x);
}

interface PermCase {
  shape: Shape;
  perm?: number[];
}

const FIXED_PERMS: readonly PermCase[] = [
  // 2-D, odd sizes, default perm (reverse) and explicit; >10,000 and >70,000 elements.
  { shape: [1, 1] },
  { shape: [1, 7] },
  { shape: [7, 1], perm: [1, 0] },
  { shape: [7, 33] },
  { shape: [33, 127], perm: [1, 0] },
  { shape: [127, 101] },
  { shape: [3, 23339] },
  { shape: [41, 43, 41], perm: [2, 0, 1] },
  // Rank 0, rank 1, 0 elements.
  { shape: [] },
  { shape: [127] },
  { shape: [0, 3] },
  { shape: [2, 0, 3], perm: [2, 0, 1] },
  // Identity permutations (a plain copy).
  { shape: [7, 33, 5], perm: [0, 1, 2] },
  { shape: [2, 3, 4, 5, 6], perm: [0, 1, 2, 3, 4] },
  // Permutations that move only size-1 axes (also a plain copy).
  { shape: [5, 1, 7], perm: [1, 0, 2] },
  { shape: [1, 33, 1, 7], perm: [2, 1, 3, 0] },
  { shape: [3, 1, 1, 4, 1], perm: [2, 0, 4, 1, 3] },
  // Permutations that merge into fewer axes: blocks of adjacent axes moved together.
  { shape: [2, 3, 4, 5], perm: [2, 3, 0, 1] },
  { shape: [4, 3, 2, 5, 3, 2], perm: [3, 4, 5, 0, 1, 2] },
  // Eight axes that stay apart (the most the kernel takes).
  { shape: [2, 2, 2, 2, 2, 2, 2, 2], perm: [7, 6, 5, 4, 3, 2, 1, 0] },
];

/** Seeded random permutations of rank 3 to 6. */
function randomPerms(rng: Rng): PermCase[] {
  const out: PermCase[] = [];
  for (let rank = 3; rank <= 6; rank++) {
    for (let k = 0; k < 5; k++) {
      out.push({ shape: rng.shape(rank, rank <= 4 ? 9 : 5), perm: rng.permutation(rank) });
    }
  }
  return out;
}

const PERMS = [...FIXED_PERMS, ...randomPerms(new Rng(0x7a)), ...randomPerms(new Rng(0x7b))];

for (const dtype of DTYPES) {
  Deno.test(`transpose ${dtype} matches the reference on ${PERMS.length} permutations`, async () => {
    const rng = new Rng(0x7e + dtype.charCodeAt(0));
    const inputs = PERMS.map((c) => values(rng, dtype, sizeOf(c.shape)));
    const outs = await computeAll(() =>
      PERMS.map((c, i) => transpose(tensor(inputs[i], c.shape, dtype), c.perm))
    );
    PERMS.forEach((c, i) => {
      const label = `transpose ${dtype} ${fmtDims(c.shape)} perm ${
        c.perm ? fmtDims(c.perm) : "(reversed)"
      }`;
      const ref = transposeRef(inputs[i], c.shape, c.perm);
      assertShape(outs[i].shape, ref.shape, label);
      if (outs[i].dtype !== dtype) throw new Error(`${label}: dtype ${outs[i].dtype}`);
      assertEqualArrays(bits(outs[i].data, dtype), bits(ref.data, dtype), label, ref.shape);
    });
  });
}

Deno.test("transpose of a transpose and of a reshaped view", async () => {
  const rng = new Rng(0x7c);
  const x = rng.floats(2 * 3 * 4 * 5);
  const outs = await computeAll(() => {
    const t = f32(x, [2, 3, 4, 5]);
    return [
      transpose(transpose(t, [3, 1, 0, 2]), [2, 1, 3, 0]), // inverse permutation
      transpose(reshape(t, [6, 20])),
    ];
  });
  assertEqualArrays(outs[0].data, x, "transpose then inverse");
  assertEqualArrays(outs[1].data, transposeRef(x, [6, 20]).data, "transpose of a view");
  assertShape(outs[1].shape, [20, 6], "transpose of a view");
});

Deno.test("reshape gives views that share memory and keep it alive", async () => {
  const rng = new Rng(0x5a);
  const x = Float32Array.from({ length: 2 * 3 * 4 }, () => rng.int(-50, 50)); // exact sums
  const base = f32(x, [2, 3, 4]);
  const views = [
    reshape(base, [6, 4]),
    reshape(base, [-1]),
    reshape(base, [4, -1, 2]),
    reshape(base, [1, 24, 1]),
    reshape(reshape(base, [24]), [3, 8]),
  ];
  const expectedShapes = [[6, 4], [24], [4, 3, 2], [1, 24, 1], [3, 8]];
  try {
    // Views stay readable after the tensor they view is disposed.
    base.dispose();
    const data = await Promise.all(views.map((v) => v.data()));
    views.forEach((v, i) => {
      assertShape(v.shape, expectedShapes[i], `reshape → ${fmtDims(expectedShapes[i])}`);
      assertEqualArrays(data[i], x, `reshape → ${fmtDims(expectedShapes[i])}`);
    });
    // An op on a view sees the new shape.
    const s = await compute(() => sum(views[0], 1));
    assertEqualArrays(
      s.data,
      Float32Array.from(reduceRef("sum", x, [6, 4], 1).data),
      "sum of view",
    );
    // Scalars and empty tensors reshape too.
    const outs = await computeAll(() => [
      reshape(scalar(3.5), [1, 1]),
      reshape(f32([7], [1]), []),
      reshape(f32([], [0, 3]), [3, 0]),
      reshape(i32([1, 2, 3, 4], [4]), [2, 2]),
    ]);
    assertEqualArrays(outs[0].data, [3.5], "reshape scalar → [1, 1]");
    assertShape(outs[1].shape, [], "reshape [1] → []");
    assertShape(outs[2].shape, [3, 0], "reshape [0, 3] → [3, 0]");
    if (outs[3].dtype !== "i32") throw new Error("reshape changed the dtype");
  } finally {
    for (const v of views) v.dispose();
  }
});

Deno.test("clone copies every dtype, and the copy outlives the original", async () => {
  const rng = new Rng(0xc1);
  const shapes: Shape[] = [[], [1], [7], [3, 11], [127], [101, 103], [3, 5, 4673], [0]];
  for (const dtype of DTYPES) {
    const inputs = shapes.map((s) => values(rng, dtype, sizeOf(s)));
    const outs = await computeAll(() =>
      shapes.map((s, i) => {
        const x = tensor(inputs[i], s, dtype);
        const c = clone(x);
        x.dispose(); // the clone has its own memory
        return c;
      })
    );
    shapes.forEach((s, i) => {
      const label = `clone ${dtype} ${fmtDims(s)}`;
      assertShape(outs[i].shape, s, label);
      if (outs[i].dtype !== dtype) throw new Error(`${label}: dtype ${outs[i].dtype}`);
      assertEqualArrays(bits(outs[i].data, dtype), bits(inputs[i], dtype), label, s);
    });
  }
});

/** Shapes for cast and fill: 0 elements, a scalar, 1, 7, 33, 127, >10,000 and >70,000. */
const SIZES: readonly Shape[] = [[0], [], [1], [7], [3, 11], [127], [101, 103], [3, 5, 4673]];

/** Values that probe every conversion rule: truncation, saturation, rounding, sign bits. */
const SPECIAL: Record<DType, number[]> = {
  f32: [
    0,
    -0,
    0.5,
    -0.5,
    0.999,
    -0.999,
    1.5,
    -1.5,
    2.5,
    -2.5,
    123456.7,
    -123456.7,
    16777216,
    2147483520, // the largest f32 below 2³¹
    -2147483648,
    -2147483904, // below −2³¹: saturates to −2147483648 as i32
    -3e9,
    2e9,
    -1e20,
    1e-30,
  ],
  i32: [0, 1, -1, 7, -7, 16777217, -16777217, 2147483647, -2147483648, 123456789, -987654321],
  u32: [0, 1, 7, 16777217, 2147483647, 2147483648, 3000000000, 4294967295, 123456789],
};

for (const from of DTYPES) {
  for (const to of DTYPES) {
    Deno.test(`cast ${from} → ${to} matches the reference`, async () => {
      const rng = new Rng(0xca + from.charCodeAt(0) * 7 + to.charCodeAt(0));
      const inputs = SIZES.map((s) => {
        const x = from === "f32"
          ? rng.floats(sizeOf(s), -1e4, 1e4)
          : from === "i32"
          ? rng.ints(sizeOf(s), -(2 ** 31), 2 ** 31 - 1)
          : rng.uints(sizeOf(s), 0, 2 ** 32 - 1);
        // Put the special values at the start of the larger inputs.
        const special = SPECIAL[from];
        if (x.length >= special.length) special.forEach((v, i) => (x[i] = v));
        return x;
      });
      const outs = await computeAll(() =>
        SIZES.map((s, i) => cast(tensor(inputs[i], s, from), to))
      );
      SIZES.forEach((s, i) => {
        const label = `cast ${from} → ${to} ${fmtDims(s)}`;
        assertShape(outs[i].shape, s, label);
        if (outs[i].dtype !== to) throw new Error(`${label}: dtype ${outs[i].dtype}`);
        const e = castRef(inputs[i], from, to);
        assertEqualArrays(outs[i].data, e, label, s);
      });
    });
  }
}

Deno.test("cast f32 → i32/u32 saturates at the integer type's range", async () => {
  // cast() documents "saturates at the integer type's range". WGSL's own conversion (since
  // gpuweb#5073) maps too-large floats to the largest integer that is an f32 (2147483520,
  // 4294967040) instead, so the kernel must clamp those itself.
  // 2³¹, 3e9 and the largest f32 below 2³² are in range as u32; 2³² and beyond are not.
  const x = [2147483648, 3e9, 4294967040, 4294967296, 1e20, 3.4e38];
  const s = [x.length];
  const outs = await computeAll(() => [cast(f32(x, s), "i32"), cast(f32(x, s), "u32")]);
  const failures: string[] = [];
  for (const [i, to] of [[0, "i32"], [1, "u32"]] as const) {
    try {
      assertEqualArrays(outs[i].data, castRef(x, "f32", to), `cast f32 → ${to} of [${x}]`);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(failures.join("\n"));
});

Deno.test("fill, zeros and ones write every element's bit pattern", async () => {
  const cases: [number, DType][] = [
    [0, "f32"],
    [-0, "f32"],
    [1, "f32"],
    [-2.5, "f32"],
    [Math.PI, "f32"],
    [1e-30, "f32"],
    [3.4e38, "f32"],
    [Infinity, "f32"],
    [-Infinity, "f32"],
    [NaN, "f32"],
    [-7, "i32"],
    [2 ** 31 - 1, "i32"],
    [-(2 ** 31), "i32"],
    [0, "u32"],
    [4294967295, "u32"],
    [2 ** 31, "u32"],
  ];
  for (const [value, dtype] of cases) {
    const outs = await computeAll(() => SIZES.map((s) => fill(s, value, dtype)));
    SIZES.forEach((s, i) => {
      const label = `fill(${fmtDims(s)}, ${Object.is(value, -0) ? "-0" : value}, ${dtype})`;
      assertShape(outs[i].shape, s, label);
      if (outs[i].dtype !== dtype) throw new Error(`${label}: dtype ${outs[i].dtype}`);
      const n = sizeOf(s);
      const expected = bits(new Array<number>(n).fill(value), dtype);
      assertEqualArrays(bits(outs[i].data, dtype), expected, label, s);
    });
  }
  const outs = await computeAll(() => [
    zeros([3, 5, 4673]),
    ones([101, 103]),
    zeros([7], "i32"),
    ones([33], "u32"),
    ones([]),
    fill([127], 2),
  ]);
  const expected: [Shape, DType, number][] = [
    [[3, 5, 4673], "f32", 0],
    [[101, 103], "f32", 1],
    [[7], "i32", 0],
    [[33], "u32", 1],
    [[], "f32", 1],
    [[127], "f32", 2],
  ];
  expected.forEach(([s, dtype, v], i) => {
    const label = `${v === 0 ? "zeros" : "ones"}(${fmtDims(s)}, ${dtype})`;
    assertShape(outs[i].shape, s, label);
    if (outs[i].dtype !== dtype) throw new Error(`${label}: dtype ${outs[i].dtype}`);
    assertEqualArrays(outs[i].data, new Array<number>(sizeOf(s)).fill(v), label, s);
  });
});

Deno.test("kernels cover more than 65535·256 elements (launches folded into 2-D grids)", async () => {
  // 4097 × 4096 = 16,781,312 elements need more than 65,535 workgroups of 256, so fill, the
  // integer and float unary kernels, binary, cast, transpose and the one-invocation-per-output
  // reduction fold their launch into a 2-D grid. Every element must be written exactly once;
  // row reductions (16 KiB each to read back) check every element.
  const rows = 4097, cols = 4096, n = rows * cols;
  const outs = await computeAll(() => {
    const a = fill([rows, cols], 3, "i32");
    const c = mul(neg(a), a); // −9 everywhere
    const perRow = sum(reshape(c, [n, 1]), 1); // n outputs, one reduced element each
    const g = abs(add(cast(c, "f32"), 1)); // 8 everywhere
    return [
      sum(c, 1),
      sum(transpose(c), 1),
      sum(reshape(perRow, [rows, cols]), 1),
      max(g, 1),
      min(g, 1),
    ];
  });
  const expected: [string, number, number][] = [
    ["fill, neg (i32), mul (i32)", rows, -9 * cols],
    ["transpose (i32)", cols, -9 * rows],
    ["sum over a size-1 axis with 16.8M outputs", rows, -9 * cols],
    ["cast, add (f32), abs (f32): max", rows, 8],
    ["cast, add (f32), abs (f32): min", rows, 8],
  ];
  expected.forEach(([label, len, v], i) => {
    assertEqualArrays(outs[i].data, new Array<number>(len).fill(v), `${label} over ${n} elements`);
  });
});

Deno.test("layout errors name the op and the shapes", async () => {
  const x = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  try {
    const bad: number[][] = [[0, 0], [0, 2], [0], [1, 0, 2], [1, -1], [0.5, 1]];
    for (const p of bad) {
      assertWgradError(
        () => transpose(x, p),
        "shape",
        ["transpose", fmtDims(p), "[2, 3]"],
        `transpose perm ${fmtDims(p)}`,
      );
    }
    // Nine axes that no permutation-merge can join: a reversal of nine axes of size 2.
    const nine = Array<number>(9).fill(2);
    const big = f32(new Float32Array(512), nine);
    try {
      assertWgradError(
        () => transpose(big),
        "shape",
        ["transpose", fmtDims(nine), "9 axes"],
        "transpose of 9 axes",
      );
    } finally {
      big.dispose();
    }
    assertWgradError(
      () => reshape(x, [4, 2]),
      "shape",
      ["reshape", "[2, 3]", "[4, 2]"],
      "reshape [2, 3] → [4, 2]",
    );
    assertWgradError(
      () => reshape(x, [4, -1]),
      "shape",
      ["reshape", "[2, 3]", "[4, -1]"],
      "reshape [2, 3] → [4, -1]",
    );
    assertWgradError(
      () => reshape(x, [-1, -1]),
      "shape",
      ["reshape", "[-1, -1]"],
      "reshape with two -1",
    );
    assertWgradError(
      () => reshape(x, [2, -3]),
      "shape",
      ["reshape", "[2, -3]"],
      "reshape with a negative dimension",
    );
    assertWgradError(
      () => cast(x, "f64" as DType),
      "dtype",
      ["cast", "f64", "[2, 3]"],
      "cast to f64",
    );
    assertWgradError(() => fill([2, 3], 1.5, "i32"), "value", ["1.5", "i32"], "fill i32 1.5");
    assertWgradError(() => fill([2, 3], -1, "u32"), "value", ["-1", "u32"], "fill u32 -1");
    assertWgradError(() => zeros([2, -1]), "shape", ["[2, -1]"], "zeros [2, -1]");
    x.dispose();
    assertWgradError(() => transpose(x), "disposed", ["transpose", "[2, 3]"], "transpose disposed");
    assertWgradError(() => reshape(x, [6]), "disposed", ["reshape", "[2, 3]"], "reshape disposed");
    assertWgradError(() => clone(x), "disposed", ["clone", "[2, 3]"], "clone disposed");
    assertWgradError(() => cast(x, "i32"), "disposed", ["cast", "[2, 3]"], "cast disposed");
    await assertRejectsWgrad(
      () => x.data(),
      "disposed",
      ["data()", "f32 [2, 3]", "dispose"],
      "data() of a disposed tensor",
    );
  } finally {
    x.dispose();
  }
});
