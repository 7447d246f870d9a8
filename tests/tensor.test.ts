/**
 * Tensors: creation from every kind of input, exact round trips, fills, shape and value validation,
 * seeded random numbers (with a Philox4x32-10 known-answer test), scopes, and the buffer pool's
 * behaviour over long loops.
 * @module
 */
import {
  add,
  type DType,
  fill,
  flush,
  keep,
  memoryInfo,
  mul,
  ones,
  randomNormal,
  randomUniform,
  scalar,
  scope,
  setSeed,
  sum,
  type Tensor,
  tensor,
  WgradError,
  type WgradErrorKind,
  zeros,
} from "../mod.ts";
import { gpuInfo } from "../mod.ts";
import { mulhi32, Philox, philox4x32 } from "../src/random.ts";

// Acquire the device before any test runs, so that its long-lived WebGPU resources are not
// attributed to (and reported by the resource sanitizer of) whichever test happens to run first.
await gpuInfo();

// ---------------------------------------------------------------------------------------------
// Small assertion helpers (kept local so that this file depends on nothing but the engine)

function fail(msg: string): never {
  throw new Error(msg);
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) fail(msg);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  return false;
}

function assertEquals(actual: unknown, expected: unknown, what = "value"): void {
  if (!deepEqual(actual, expected)) {
    fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

type Typed = Float32Array | Int32Array | Uint32Array;

/** The 32-bit patterns of a typed array's elements (so that NaN, -0 and denormals compare exactly). */
function bits(a: Typed): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

/** Asserts two typed arrays have the same class and bit-identical elements. */
function assertBitEqual(actual: Typed, expected: Typed, what: string): void {
  assert(
    actual.constructor === expected.constructor,
    `${what}: expected a ${expected.constructor.name}, got a ${actual.constructor.name}`,
  );
  assert(
    actual.length === expected.length,
    `${what}: expected ${expected.length} elements, got ${actual.length}`,
  );
  const a = bits(actual), e = bits(expected);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      fail(
        `${what}: element ${i} is ${actual[i]} (0x${a[i].toString(16)}), expected ${expected[i]} ` +
          `(0x${e[i].toString(16)})`,
      );
    }
  }
}

/** Asserts `fn` throws a WgradError of `kind` whose message contains every one of `parts`. */
function assertWgradThrows(
  fn: () => unknown,
  kind: WgradErrorKind,
  parts: readonly (string | RegExp)[],
): WgradError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  return checkWgrad(thrown, kind, parts);
}

function checkWgrad(
  thrown: unknown,
  kind: WgradErrorKind,
  parts: readonly (string | RegExp)[],
): WgradError {
  if (thrown === undefined) fail(`expected a WgradError of kind "${kind}", but nothing was thrown`);
  if (!(thrown instanceof WgradError)) {
    fail(`expected a WgradError of kind "${kind}", got ${String(thrown)}`);
  }
  assert(
    thrown.kind === kind,
    `expected kind "${kind}", got "${thrown.kind}": ${thrown.message}`,
  );
  assertEquals(thrown.name, "WgradError", "error name");
  for (const p of parts) {
    const ok = typeof p === "string" ? thrown.message.includes(p) : p.test(thrown.message);
    assert(ok, `the message should contain ${String(p)}: ${thrown.message}`);
  }
  return thrown;
}

async function assertWgradRejects(
  fn: () => Promise<unknown>,
  kind: WgradErrorKind,
  parts: readonly (string | RegExp)[],
): Promise<WgradError> {
  let thrown: unknown;
  try {
    await fn();
  } catch (e) {
    thrown = e;
  }
  return checkWgrad(thrown, kind, parts);
}

function meanStd(a: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const mean = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i] - mean) ** 2;
  return { mean, std: Math.sqrt(v / a.length) };
}

// ---------------------------------------------------------------------------------------------
// Creation and exact round trips

Deno.test("tensor() from a flat array: f32, shape [n], exact data() and array()", async () => {
  const values = [1, -2.5, 3.25, 0, 1e-3, 65504, -1e30];
  const t = tensor(values);
  assertEquals(t.shape, [values.length], "shape");
  assertEquals(t.dtype, "f32", "dtype");
  assertEquals(t.size, values.length, "size");
  assertEquals(t.rank, 1, "rank");
  assertBitEqual(await t.data(), Float32Array.from(values), "data()");
  assertEquals(await t.array(), Array.from(Float32Array.from(values)), "array()");
  t.dispose();
});

Deno.test("tensor() from nested arrays infers the shape; array() rebuilds the nesting", async () => {
  const m = [[1, 2, 3], [4, 5, 6]];
  const t = tensor(m);
  assertEquals(t.shape, [2, 3], "shape of a matrix");
  assertBitEqual(await t.data(), Float32Array.from([1, 2, 3, 4, 5, 6]), "data()");
  assertEquals(await t.array(), m, "array()");

  const cube = [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 10], [11, 12]]];
  const c = tensor(cube);
  assertEquals(c.shape, [2, 3, 2], "shape of a rank-3 array");
  assertEquals(c.rank, 3, "rank");
  assertEquals(await c.array(), cube, "array() of rank 3");

  const col = tensor([[1], [2], [3]]);
  assertEquals(col.shape, [3, 1], "shape of a column");
  assertEquals(await col.array(), [[1], [2], [3]], "array() of a column");
  for (const x of [t, c, col]) x.dispose();
});

Deno.test("tensor() from typed arrays takes their dtype and copies the data", async () => {
  const f = new Float32Array([1.5, -2, 3e-8]);
  const i = new Int32Array([-(2 ** 31), -1, 0, 2 ** 31 - 1]);
  const u = new Uint32Array([0, 1, 2 ** 31, 2 ** 32 - 1]);
  const tf = tensor(f), ti = tensor(i), tu = tensor(u);
  assertEquals([tf.dtype, ti.dtype, tu.dtype], ["f32", "i32", "u32"], "dtypes");
  assertEquals([tf.shape, ti.shape, tu.shape], [[3], [4], [4]], "shapes");
  // The tensor holds a copy: changing the source afterwards must not change it.
  const fCopy = f.slice(), iCopy = i.slice(), uCopy = u.slice();
  f[0] = 99;
  i[0] = 99;
  u[0] = 99;
  assertBitEqual(await tf.data(), fCopy, "f32 data()");
  assertBitEqual(await ti.data(), iCopy, "i32 data()");
  assertBitEqual(await tu.data(), uCopy, "u32 data()");
  // The array returned by data() is the caller's own: changing it does not change the tensor.
  const d = await ti.data();
  d[1] = 12345;
  assertBitEqual(await ti.data(), iCopy, "i32 data() after mutating an earlier read");
  // A view into a larger buffer (non-zero byteOffset) uploads only its own elements.
  const big = new Float32Array([10, 20, 30, 40, 50]);
  const view = tensor(big.subarray(1, 4));
  assertBitEqual(await view.data(), new Float32Array([20, 30, 40]), "subarray data()");
  for (const x of [tf, ti, tu, view]) x.dispose();
});

Deno.test("f32 round trips are bit-exact: NaN, ±Infinity, -0, denormals, extremes", async () => {
  const pattern = new Uint32Array([
    0x7fc00000, // quiet NaN
    0x7f800001, // signalling NaN payload
    0xffc12345, // negative NaN with a payload
    0x7f800000, // +Infinity
    0xff800000, // -Infinity
    0x80000000, // -0
    0x00000001, // smallest denormal
    0x007fffff, // largest denormal
    0x7f7fffff, // largest finite
    0x3dcccccd, // 0.1f
  ]);
  const f = new Float32Array(pattern.buffer);
  const t = tensor(f);
  assertBitEqual(await t.data(), f, "special values");
  // From plain numbers, each value is rounded to f32 exactly once, as Float32Array.from does.
  const nums = [0.1, 1 / 3, -0, Infinity, -Infinity, 1e-45, 2 ** -149, 3.4028235e38];
  const tn = tensor(nums);
  assertBitEqual(await tn.data(), Float32Array.from(nums), "numbers rounded to f32");
  const arr = await tn.array() as number[];
  assert(Object.is(arr[2], -0), `array() keeps -0, got ${arr[2]}`);
  t.dispose();
  tn.dispose();
});

Deno.test("scalars: rank 0, shape [], array() returns a number", async () => {
  const s = tensor(3.5);
  assertEquals(s.shape, [], "shape");
  assertEquals(s.rank, 0, "rank");
  assertEquals(s.size, 1, "size");
  assertBitEqual(await s.data(), new Float32Array([3.5]), "data()");
  assertEquals(await s.array(), 3.5, "array()");
  const si = scalar(-7, "i32");
  assertEquals([si.dtype, si.shape], ["i32", []], "scalar(-7, 'i32')");
  assertEquals(await si.array(), -7, "i32 scalar array()");
  const su = scalar(4294967295, "u32");
  assertEquals(await su.array(), 4294967295, "u32 scalar array()");
  // A scalar may also be given as a one-element array with an explicit empty shape.
  const s2 = tensor([2], []);
  assertEquals(s2.shape, [], "tensor([2], []) shape");
  assertEquals(await s2.array(), 2, "tensor([2], []) array()");
  for (const x of [s, si, su, s2]) x.dispose();
});

Deno.test("explicit shapes reshape flat data; explicit dtypes convert numbers exactly", async () => {
  const t = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
  assertEquals(t.shape, [3, 2], "shape");
  assertEquals(await t.array(), [[1, 2], [3, 4], [5, 6]], "array()");
  const nested = tensor([[1, 2, 3], [4, 5, 6]], [6]);
  assertEquals(nested.shape, [6], "nested data under a flat shape");
  assertEquals(await nested.array(), [1, 2, 3, 4, 5, 6], "array()");
  const typed = tensor(new Float32Array([1, 2, 3, 4]), [2, 1, 2]);
  assertEquals(await typed.array(), [[[1, 2]], [[3, 4]]], "typed array under an explicit shape");

  const i = tensor([-(2 ** 31), -1, 0, 7, 2 ** 31 - 1], [5], "i32");
  assertEquals(i.dtype, "i32", "i32 dtype");
  const id = await i.data();
  assert(id instanceof Int32Array, "i32 data() is an Int32Array");
  assertEquals(Array.from(id), [-(2 ** 31), -1, 0, 7, 2 ** 31 - 1], "i32 extremes");

  const u = tensor([0, 1, 2 ** 31, 2 ** 32 - 1], [2, 2], "u32");
  const ud = await u.data();
  assert(ud instanceof Uint32Array, "u32 data() is a Uint32Array");
  assertEquals(await u.array(), [[0, 1], [2 ** 31, 2 ** 32 - 1]], "u32 extremes");

  // A typed array with an explicit different dtype is converted (integers only).
  const fromF32 = tensor(new Float32Array([1, -2, 3]), [3], "i32");
  assertEquals(fromF32.dtype, "i32", "f32 data as i32");
  assertEquals(await fromF32.array(), [1, -2, 3], "f32 data as i32 values");
  const fromI32 = tensor(new Int32Array([1, -2, 3]), [3], "f32");
  assertBitEqual(await fromI32.data(), new Float32Array([1, -2, 3]), "i32 data as f32");
  for (const x of [t, nested, typed, i, u, fromF32, fromI32]) x.dispose();
});

Deno.test("empty tensors: zero-size dimensions are allowed and read back empty", async () => {
  const e = tensor([]);
  assertEquals([e.shape, e.size], [[0], 0], "tensor([])");
  assertEquals(Array.from(await e.data()), [], "data() of tensor([])");
  const e2 = tensor([[], []]);
  assertEquals(e2.shape, [2, 0], "tensor([[], []]) shape");
  assertEquals(await e2.array(), [[], []], "array() of [2, 0]");
  const z = zeros([3, 0, 2], "i32");
  assertEquals([z.size, z.dtype], [0, "i32"], "zeros([3, 0, 2])");
  assertEquals(await z.array(), [[], [], []], "array() of [3, 0, 2]");
  for (const x of [e, e2, z]) x.dispose();
});

Deno.test("zeros, ones and fill for every dtype", async () => {
  const arrayClass = { f32: Float32Array, i32: Int32Array, u32: Uint32Array };
  for (const dtype of ["f32", "i32", "u32"] as const) {
    const z = zeros([2, 3], dtype);
    const o = ones([2, 3], dtype);
    assertEquals([z.dtype, z.shape, o.dtype, o.shape], [dtype, [2, 3], dtype, [2, 3]], dtype);
    const zd = await z.data(), od = await o.data();
    assert(zd instanceof arrayClass[dtype], `zeros ${dtype} reads back as ${zd.constructor.name}`);
    assert(od instanceof arrayClass[dtype], `ones ${dtype} reads back as ${od.constructor.name}`);
    assertEquals(Array.from(zd), [0, 0, 0, 0, 0, 0], `zeros ${dtype}`);
    assertEquals(Array.from(od), [1, 1, 1, 1, 1, 1], `ones ${dtype}`);
    z.dispose();
    o.dispose();
  }
  assertEquals(zeros([2]).dtype, "f32", "zeros defaults to f32");
  const fills: [DType, number, Typed][] = [
    ["f32", -0.1, new Float32Array(5).fill(-0.1)],
    ["f32", -0, new Float32Array(5).fill(-0)],
    ["f32", NaN, new Float32Array(5).fill(NaN)],
    ["f32", -Infinity, new Float32Array(5).fill(-Infinity)],
    ["f32", 1e-45, new Float32Array(5).fill(1e-45)],
    ["i32", -(2 ** 31), new Int32Array(5).fill(-(2 ** 31))],
    ["i32", 2 ** 31 - 1, new Int32Array(5).fill(2 ** 31 - 1)],
    ["u32", 2 ** 32 - 1, new Uint32Array(5).fill(2 ** 32 - 1)],
    ["u32", 2 ** 31, new Uint32Array(5).fill(2 ** 31)],
  ];
  for (const [dtype, value, expected] of fills) {
    const t = fill([5], value, dtype);
    assertBitEqual(await t.data(), expected, `fill([5], ${value}, "${dtype}")`);
    t.dispose();
  }
  // Large enough for many workgroups, and a scalar.
  const big = fill([1000, 257], 2.5);
  const bd = await big.data();
  assert(bd.length === 257000 && bd.every((v) => v === 2.5), "fill([1000, 257], 2.5)");
  const s = fill([], 9, "i32");
  assertEquals(await s.array(), 9, "fill([], 9, 'i32')");
  big.dispose();
  s.dispose();
});

// ---------------------------------------------------------------------------------------------
// Validation errors

Deno.test("ragged nested arrays are rejected naming tensor() and the inferred shape", () => {
  assertWgradThrows(() => tensor([[1, 2], [3]]), "shape", [
    "tensor()",
    "ragged",
    "[1]",
    "1 entries where 2 were expected",
    "[2, 2]",
  ]);
  assertWgradThrows(() => tensor([[1, 2], 3] as unknown as number[][]), "shape", [
    "tensor()",
    "ragged",
    "no entries",
    "[2, 2]",
  ]);
  assertWgradThrows(() => tensor([1, [2, 3]] as unknown as number[]), "shape", [
    "tensor()",
    "ragged",
    "[1]",
  ]);
  assertWgradThrows(
    () => tensor([[[1, 2], [3, 4]], [[5, 6], [7]]]),
    "shape",
    ["tensor()", "[1][1]", "[2, 2, 2]"],
  );
});

Deno.test("size mismatches between data and shape are rejected naming both", () => {
  assertWgradThrows(() => tensor([1, 2, 3], [2, 2]), "shape", [
    "tensor()",
    "3 values",
    "[2, 2]",
    "4 elements",
  ]);
  assertWgradThrows(() => tensor(new Float32Array(5), [2, 3]), "shape", [
    "tensor()",
    "5 values",
    "[2, 3]",
  ]);
  assertWgradThrows(() => tensor(1, [2]), "shape", ["tensor()", "1 values", "[2]"]);
});

Deno.test("negative, fractional and non-finite dimensions are rejected naming the shape", () => {
  assertWgradThrows(() => tensor([1, 2], [-1, -2]), "shape", [
    "tensor()",
    "[-1, -2]",
    "invalid dimension -1 at axis 0",
  ]);
  assertWgradThrows(() => tensor([1, 2], [2, 0.5, 2]), "shape", [
    "tensor()",
    "[2, 0.5, 2]",
    "0.5 at axis 1",
  ]);
  assertWgradThrows(() => zeros([2, -3]), "shape", [/zeros\(\)|fill\(\)/, "[2, -3]", "axis 1"]);
  assertWgradThrows(() => ones([NaN]), "shape", [/ones\(\)|fill\(\)/, "[NaN]"]);
  assertWgradThrows(() => fill([Infinity], 1), "shape", ["fill()", "[Infinity]"]);
  assertWgradThrows(() => randomUniform([3, -1]), "shape", ["randomUniform()", "[3, -1]"]);
  assertWgradThrows(() => randomNormal([1.5]), "shape", ["randomNormal()", "[1.5]"]);
  assertWgradThrows(
    () => tensor([1], "1" as unknown as number[]),
    "shape",
    ["tensor()", "shape must be an array"],
  );
});

Deno.test("integer dtypes reject values that are not integers or out of range", () => {
  assertWgradThrows(() => tensor([1, 2.5], [2], "i32"), "value", [
    "tensor()",
    "2.5",
    "flat index 1",
    "i32",
  ]);
  assertWgradThrows(() => tensor([2 ** 31], [1], "i32"), "value", [
    "tensor()",
    "2147483648",
    "i32",
    "[-2147483648, 2147483647]",
  ]);
  assertWgradThrows(() => tensor([[0, 0], [0, -(2 ** 31) - 1]], [2, 2], "i32"), "value", [
    "-2147483649",
    "flat index 3",
  ]);
  assertWgradThrows(() => tensor([NaN], [1], "i32"), "value", ["NaN", "i32"]);
  assertWgradThrows(() => tensor([-1], [1], "u32"), "value", ["tensor()", "-1", "u32"]);
  assertWgradThrows(() => tensor([2 ** 32], [1], "u32"), "value", ["4294967296", "u32"]);
  assertWgradThrows(() => tensor(new Float32Array([0.5]), [1], "u32"), "value", ["0.5", "u32"]);
  assertWgradThrows(() => tensor(new Int32Array([-3]), [1], "u32"), "value", ["-3", "u32"]);
  assertWgradThrows(() => fill([2], 1.5, "i32"), "value", ["fill()", "1.5", "i32"]);
  assertWgradThrows(() => fill([2], -1, "u32"), "value", ["fill()", "-1", "u32"]);
  assertWgradThrows(() => scalar(Infinity, "i32"), "value", ["Infinity", "i32"]);
});

Deno.test("unknown dtypes and non-numeric data are rejected", () => {
  assertWgradThrows(() => tensor([1], [1], "f64" as DType), "dtype", [
    "tensor()",
    '"f64"',
    '"f32", "i32" or "u32"',
  ]);
  assertWgradThrows(() => zeros([2], "bool" as DType), "dtype", ['"bool"']);
  assertWgradThrows(() => tensor("abc" as unknown as number[]), "value", ["tensor()"]);
  assertWgradThrows(
    () => randomUniform([2], { dtype: "u32" as "i32" }),
    "dtype",
    ["randomUniform()", '"u32"'],
  );
});

Deno.test("disposed tensors: reading or using them is an error naming the tensor", async () => {
  const t = tensor([1, 2, 3]);
  t.name = "weights";
  t.dispose();
  t.dispose(); // twice is fine
  assert(t.isDisposed, "isDisposed after dispose()");
  await assertWgradRejects(() => t.data(), "disposed", ["data()", "weights f32 [3]"]);
  assertWgradThrows(() => add(t, 1), "disposed", ["add", "weights f32 [3]", "dispose()"]);
});

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 and seeded random numbers

Deno.test("philox4x32 matches the Random123 known-answer vectors", () => {
  const out = new Uint32Array(4);
  const vectors: [number[], number[], number[]][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  const hex = (a: ArrayLike<number>) =>
    Array.from(a, (x) => "0x" + (x >>> 0).toString(16).padStart(8, "0")).join(" ");
  for (const [c, k, expected] of vectors) {
    philox4x32(c[0], c[1], c[2], c[3], k[0], k[1], out);
    assertEquals(
      hex(out),
      hex(expected),
      `philox4x32(counter ${hex(c)}, key ${hex(k)})`,
    );
  }
});

Deno.test("mulhi32 is the high word of the exact 64-bit product", () => {
  let x = 0x12345678;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  const edge = [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
  const pairs: [number, number][] = [];
  for (const a of edge) for (const b of edge) pairs.push([a, b]);
  for (let i = 0; i < 2000; i++) pairs.push([next(), next()]);
  for (const [a, b] of pairs) {
    const want = Number((BigInt(a) * BigInt(b)) >> 32n);
    const got = mulhi32(a, b);
    assert(
      got === want,
      `mulhi32(0x${a.toString(16)}, 0x${b.toString(16)}) = ${got}, want ${want}`,
    );
  }
});

Deno.test("randomUniform(seed) is the Philox stream of the seed: 24-bit units, exact in f32", async () => {
  // Pins the number stream across versions and machines: counter i, stream 0, key = seed.
  const seed = 0x1234abcd;
  const t = randomUniform([8], { seed });
  const out = new Uint32Array(4);
  const expected = new Float32Array(8);
  for (let block = 0; block < 2; block++) {
    philox4x32(block, 0, 0, 0, seed, 0, out);
    for (let j = 0; j < 4; j++) expected[block * 4 + j] = (out[j] >>> 8) * 2 ** -24;
  }
  assertBitEqual(await t.data(), expected, "randomUniform([8], { seed })");
  // The JS generator agrees with itself.
  const g = new Philox(seed);
  assertEquals(g.nextUnit(), expected[0], "Philox(seed).nextUnit()");
  t.dispose();
});

Deno.test("the same seed gives bit-identical numbers; different seeds differ", async () => {
  const shape = [64, 33];
  const u1 = await randomUniform(shape, { seed: 42 }).data();
  const u2 = await randomUniform(shape, { seed: 42 }).data();
  assertBitEqual(u1, u2, "randomUniform twice with seed 42");
  const u3 = await randomUniform(shape, { seed: 43 }).data();
  const sameU = u1.filter((v, i) => v === u3[i]).length;
  assert(sameU < 10, `seeds 42 and 43 should differ, ${sameU} of ${u1.length} elements equal`);

  const n1 = await randomNormal(shape, { seed: 7, mean: 1, stddev: 3 }).data();
  const n2 = await randomNormal(shape, { seed: 7, mean: 1, stddev: 3 }).data();
  assertBitEqual(n1, n2, "randomNormal twice with seed 7");
  const n3 = await randomNormal(shape, { seed: 8, mean: 1, stddev: 3 }).data();
  const sameN = n1.filter((v, i) => v === n3[i]).length;
  assert(sameN < 10, `seeds 7 and 8 should differ, ${sameN} of ${n1.length} elements equal`);

  const i1 = await randomUniform([500], { seed: 5, minval: -10, maxval: 10, dtype: "i32" }).data();
  const i2 = await randomUniform([500], { seed: 5, minval: -10, maxval: 10, dtype: "i32" }).data();
  assertBitEqual(i1, i2, "i32 randomUniform twice with seed 5");

  // Large seeds use both key words: 2^32 + 1 differs from 1.
  const big = await randomUniform([16], { seed: 2 ** 32 + 1 }).data();
  const one = await randomUniform([16], { seed: 1 }).data();
  assert(big.some((v, i) => v !== one[i]), "seed 2^32 + 1 should differ from seed 1");
  const maxSeed = await randomUniform([4], { seed: Number.MAX_SAFE_INTEGER }).data();
  assert(maxSeed.every((v) => v >= 0 && v < 1), "the largest safe seed works");
});

Deno.test("setSeed() makes unseeded calls reproducible; seeded calls do not consume streams", async () => {
  const run = async () => {
    const a = await randomUniform([100]).data();
    const b = await randomNormal([100]).data();
    const c = await randomUniform([100], { seed: 99 }).data(); // its own seed
    const d = await randomUniform([100]).data();
    return { a, b, c, d };
  };
  setSeed(1234);
  const first = await run();
  setSeed(1234);
  const second = await run();
  assertBitEqual(second.a, first.a, "first unseeded uniform after setSeed");
  assertBitEqual(second.b, first.b, "unseeded normal after setSeed");
  assertBitEqual(second.d, first.d, "unseeded uniform after a seeded call");
  // Successive unseeded calls draw different streams.
  assert(first.a.some((v, i) => v !== first.d[i]), "successive unseeded calls should differ");
  // A seeded call in between must not shift the global streams.
  setSeed(1234);
  const a = await randomUniform([100]).data();
  await randomNormal([100]).data();
  const d = await randomUniform([100]).data();
  assertBitEqual(a, first.a, "stream 1");
  assertBitEqual(d, first.d, "stream 3, without the seeded call in between");
  setSeed(4321);
  const other = await randomUniform([100]).data();
  assert(other.some((v, i) => v !== first.a[i]), "another global seed gives other numbers");
  let threw: unknown;
  try {
    setSeed(-1);
  } catch (e) {
    threw = e;
  }
  assert(threw instanceof RangeError, `setSeed(-1) should throw a RangeError, got ${threw}`);
  assert(String(threw).includes("setSeed"), `the message names setSeed: ${threw}`);
});

Deno.test("randomUniform statistics on 100k samples; values in [minval, maxval)", async () => {
  const n = 100_000;
  const u = await randomUniform([n], { seed: 11 }).data();
  const su = meanStd(u);
  // Standard error of the mean: 0.2887 / sqrt(1e5) ≈ 0.0009; bounds at about 5 standard errors.
  assert(Math.abs(su.mean - 0.5) < 0.005, `uniform mean ${su.mean}`);
  assert(Math.abs(su.std - Math.sqrt(1 / 12)) < 0.003, `uniform std ${su.std}`);
  assert(u.every((v) => v >= 0 && v < 1), "uniform values in [0, 1)");
  // Each tenth of the interval gets about a tenth of the samples.
  const bins = new Array(10).fill(0);
  for (const v of u) bins[Math.floor(v * 10)]++;
  assert(bins.every((b) => Math.abs(b - n / 10) < 600), `uniform deciles ${bins}`);

  const lo = -2, hi = 3;
  const r = await randomUniform([n], { seed: 12, minval: lo, maxval: hi }).data();
  let mn = Infinity, mx = -Infinity;
  for (const v of r) {
    mn = Math.min(mn, v);
    mx = Math.max(mx, v);
  }
  assert(mn >= lo && mx < hi, `values in [${lo}, ${hi}): min ${mn}, max ${mx}`);
  assert(mn < lo + 0.001 && mx > hi - 0.001, `values cover the interval: min ${mn}, max ${mx}`);
  const sr = meanStd(r);
  assert(Math.abs(sr.mean - 0.5) < 0.025, `mean of U[-2, 3) ${sr.mean}`);

  // An interval narrower than f32's spacing: rounding must never reach maxval.
  const tight = await randomUniform([20_000], { seed: 13, minval: 2 ** 24 - 1, maxval: 2 ** 24 })
    .data();
  assert(tight.every((v) => v === 2 ** 24 - 1), "values in [2^24 - 1, 2^24) are all 2^24 - 1");
});

Deno.test("randomNormal statistics on 100k samples", async () => {
  const n = 100_000;
  const x = await randomNormal([n], { seed: 21, mean: 3, stddev: 2 }).data();
  const s = meanStd(x);
  assert(Math.abs(s.mean - 3) < 0.03, `normal mean ${s.mean}`);
  assert(Math.abs(s.std - 2) < 0.03, `normal std ${s.std}`);
  let within1 = 0, within2 = 0, skew = 0;
  for (const v of x) {
    const z = (v - 3) / 2;
    if (Math.abs(z) < 1) within1++;
    if (Math.abs(z) < 2) within2++;
    skew += z ** 3;
  }
  assert(Math.abs(within1 / n - 0.6827) < 0.01, `P(|z| < 1) = ${within1 / n}`);
  assert(Math.abs(within2 / n - 0.9545) < 0.005, `P(|z| < 2) = ${within2 / n}`);
  assert(Math.abs(skew / n) < 0.05, `skewness ${skew / n}`);
  assert(x.every(Number.isFinite), "normal samples are finite");
  const zero = await randomNormal([10], { seed: 1, mean: 5, stddev: 0 }).data();
  assert(zero.every((v) => v === 5), "stddev 0 gives the mean");
});

Deno.test("i32 randomUniform: integers in [minval, maxval), all values about equally likely", async () => {
  const n = 70_000;
  const t = randomUniform([n], { seed: 31, minval: -3, maxval: 4, dtype: "i32" });
  assertEquals(t.dtype, "i32", "dtype");
  const x = await t.data();
  assert(x instanceof Int32Array, "data() is an Int32Array");
  const counts = new Map<number, number>();
  for (const v of x) counts.set(v, (counts.get(v) ?? 0) + 1);
  assertEquals([...counts.keys()].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3], "values");
  for (const [v, c] of counts) {
    assert(Math.abs(c - n / 7) < 500, `value ${v} appears ${c} times, expected about ${n / 7}`);
  }
  const wide = await randomUniform([1000], {
    seed: 32,
    minval: -(2 ** 31),
    maxval: 2 ** 31 - 1,
    dtype: "i32",
  }).data();
  assert(wide.some((v) => v < -(2 ** 30)) && wide.some((v) => v > 2 ** 30), "a wide range");
  t.dispose();
});

Deno.test("random ops reject bad bounds and options naming the op", () => {
  assertWgradThrows(() => randomUniform([2], { minval: 1, maxval: 1 }), "value", [
    "randomUniform()",
    "[1, 1)",
  ]);
  assertWgradThrows(() => randomUniform([2], { minval: 0, maxval: Infinity }), "value", [
    "randomUniform()",
  ]);
  assertWgradThrows(
    () => randomUniform([2], { minval: 0, maxval: 2.5, dtype: "i32" }),
    "value",
    ["randomUniform()", "i32", "2.5"],
  );
  assertWgradThrows(() => randomNormal([2], { stddev: -1 }), "value", ["randomNormal()", "-1"]);
  assertWgradThrows(() => randomNormal([2], { mean: NaN }), "value", ["randomNormal()", "NaN"]);
});

// ---------------------------------------------------------------------------------------------
// Scopes

Deno.test("scope() disposes inner tensors and keeps a returned tensor", async () => {
  const outside = tensor([1, 2, 3]);
  let inner: Tensor[] = [];
  const result = scope(() => {
    const a = add(outside, 1);
    const b = mul(a, 2);
    inner = [a, b];
    return add(b, outside);
  });
  assert(inner.every((t) => t.isDisposed), "intermediates are disposed");
  assert(!result.isDisposed, "the returned tensor is kept");
  assert(!outside.isDisposed, "a tensor created outside the scope is not disposed");
  assertEquals(Array.from(await result.data()), [5, 8, 11], "result");
  result.dispose();
  outside.dispose();
});

Deno.test("scope() keeps tensors returned in arrays and plain objects", async () => {
  let made: Tensor[] = [];
  const r = scope(() => {
    const a = tensor([1]), b = tensor([2]), c = tensor([3]), d = tensor([4]), e = tensor([5]);
    made = [a, b, c, d, e];
    return { first: a, list: [b, { deep: c }], n: 5, s: "x" };
  });
  const [a, b, c, d, e] = made;
  assert(!a.isDisposed && !b.isDisposed && !c.isDisposed, "returned tensors are kept");
  assert(d.isDisposed && e.isDisposed, "the others are disposed");
  assertEquals(r.n, 5, "other values pass through");
  assertEquals(Array.from(await (r.list[1] as { deep: Tensor }).deep.data()), [3], "deep value");
  const arr = scope(() => [tensor([1]), tensor([2])]);
  assert(arr.every((t) => !t.isDisposed), "tensors returned in an array are kept");
  assertEquals(scope(() => 42), 42, "a non-tensor result is returned");
  for (const t of [a, b, c, ...arr]) t.dispose();
});

Deno.test("nested scopes: returned tensors belong to the enclosing scope", async () => {
  let innerResult: Tensor | null = null, innerTemp: Tensor | null = null;
  let outerTemp: Tensor | null = null;
  const outerResult = scope(() => {
    outerTemp = tensor([10]);
    innerResult = scope(() => {
      innerTemp = tensor([1]);
      return add(innerTemp, 1);
    });
    assert(innerTemp!.isDisposed, "the inner scope disposed its temporary");
    assert(!innerResult.isDisposed, "the inner result survives the inner scope");
    return add(innerResult, outerTemp);
  });
  assert(innerResult!.isDisposed, "the inner result is disposed by the outer scope");
  assert(outerTemp!.isDisposed, "the outer temporary is disposed");
  assertEquals(Array.from(await outerResult.data()), [12], "result");
  outerResult.dispose();
});

Deno.test("keep() exempts a tensor from every enclosing scope", async () => {
  let kept: Tensor | null = null;
  let other: Tensor | null = null;
  scope(() => {
    scope(() => {
      kept = keep(tensor([7, 8]));
      other = tensor([1]);
    });
    assert(!kept!.isDisposed, "kept survives the inner scope");
  });
  assert(!kept!.isDisposed, "kept survives the outer scope");
  assert(other!.isDisposed, "the other tensor is disposed");
  assertEquals(Array.from(await kept!.data()), [7, 8], "kept data");
  kept!.dispose();
});

Deno.test("a scope whose function throws disposes everything and rethrows", async () => {
  let made: Tensor[] = [];
  const boom = new Error("boom");
  let caught: unknown;
  try {
    scope(() => {
      made = [tensor([1]), add(tensor([2]), 1)];
      throw boom;
    });
  } catch (e) {
    caught = e;
  }
  assert(caught === boom, "the same error is rethrown");
  assert(made.length === 2 && made.every((t) => t.isDisposed), "every tensor is disposed");
  // An engine error inside a scope propagates too, and the scope still cleans up.
  let partial: Tensor | null = null;
  assertWgradThrows(
    () =>
      scope(() => {
        partial = tensor([1, 2]);
        return add(partial, tensor([1, 2, 3]));
      }),
    "shape",
    ["add", "[2]", "[3]"],
  );
  assert(partial!.isDisposed, "tensors made before the failing op are disposed");
  // Scopes still work afterwards (the scope stack was unwound).
  const t = scope(() => add(tensor([1]), 1));
  assertEquals(Array.from(await t.data()), [2], "a scope after a failed one");
  t.dispose();
});

Deno.test("a scope function that returns a Promise is rejected with a clear error", async () => {
  let made: Tensor | null = null;
  let pending: Promise<unknown> | null = null;
  const err = assertWgradThrows(
    () =>
      scope(() => {
        made = tensor([1]);
        pending = Promise.resolve(made);
        return pending;
      }),
    "value",
    ["scope()", "Promise", "synchronous"],
  );
  assert(err.message.length > 20, "a sentence");
  assert(made!.isDisposed, "tensors created before the Promise are disposed");
  await pending;
  // The same for an async function.
  assertWgradThrows(
    // deno-lint-ignore require-await
    () => scope(async () => tensor([2])),
    "value",
    ["scope()", "Promise"],
  );
  // The scope stack is intact afterwards: a tensor made now belongs to no scope.
  const free = tensor([3]);
  scope(() => {});
  assert(!free.isDisposed, "no scope left open");
  free.dispose();
});

Deno.test("scope() releases GPU memory: buffersInUse returns to where it was", async () => {
  await flush();
  const before = memoryInfo().buffersInUse;
  const r = scope(() => {
    let x = tensor(new Float32Array(1000).fill(1));
    for (let i = 0; i < 10; i++) x = add(mul(x, 2), 1);
    return sum(x);
  });
  assertEquals(Array.from(await r.data()), [1000 * 2047], "sum");
  assertEquals(memoryInfo().buffersInUse, before + 1, "only the result holds a buffer");
  r.dispose();
  await flush();
  assertEquals(memoryInfo().buffersInUse, before, "nothing is held after disposing the result");
});

// ---------------------------------------------------------------------------------------------
// The buffer pool over long loops

Deno.test("1,000 iterations of create, compute, dispose do not grow GPU memory", async () => {
  await flush();
  const start = memoryInfo();
  let at100 = -1;
  let checksum = 0;
  for (let i = 1; i <= 1000; i++) {
    const x = tensor(new Float32Array(64).fill(i % 7));
    const y = add(x, 1);
    const z = mul(y, y);
    const s = sum(z);
    if (i % 10 === 0) checksum += (await s.data())[0];
    for (const t of [x, y, z, s]) t.dispose();
    if (i % 50 === 0) await flush();
    if (i === 100) at100 = memoryInfo().bytesAllocated;
  }
  await flush();
  const end = memoryInfo();
  let expected = 0;
  for (let i = 10; i <= 1000; i += 10) expected += 64 * ((i % 7) + 1) ** 2;
  assertEquals(checksum, expected, "results");
  assertEquals(end.bytesAllocated, at100, "bytesAllocated at iteration 1000 vs iteration 100");
  assertEquals(end.buffersInUse, start.buffersInUse, "buffers in use after the loop");
  assert(
    end.bytesAllocated - start.bytesAllocated <= 16 * 1024,
    `the loop keeps at most a few buffers: ${end.bytesAllocated - start.bytesAllocated} bytes`,
  );
});

Deno.test("1,000 iterations in scope() without any read do not grow GPU memory", async () => {
  await flush();
  const start = memoryInfo();
  let at100 = -1;
  const acc = keep(zeros([128]));
  let total = acc;
  for (let i = 1; i <= 1000; i++) {
    const next = scope(() => add(total, mul(ones([128]), tensor([1]))));
    if (total !== acc) total.dispose();
    total = next;
    if (i === 100) {
      await flush();
      at100 = memoryInfo().bytesAllocated;
    }
  }
  await flush();
  const grown = memoryInfo().bytesAllocated;
  assertEquals(Array.from(await total.data()), new Array(128).fill(1000), "accumulated");
  assertEquals(grown, at100, "bytesAllocated at iteration 1000 vs iteration 100");
  total.dispose();
  acc.dispose();
  await flush();
  assertEquals(memoryInfo().buffersInUse, start.buffersInUse, "buffers in use after the loop");
});

Deno.test("varying sizes reuse size classes: the pool stays bounded", async () => {
  await flush();
  const start = memoryInfo();
  // A deterministic sequence of 600 sizes between 1,000 and 9,000 elements, nearly all distinct.
  let seed = 17;
  const sizes = Array.from({ length: 600 }, () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return 1000 + (seed % 8000);
  });
  let after200 = -1;
  for (let i = 0; i < sizes.length; i++) {
    const n = sizes[i];
    const x = fill([n], 2);
    const y = add(x, 1);
    const s = sum(y);
    if (i % 25 === 24) assertEquals((await s.data())[0], 3 * n, `sum for size ${n}`);
    for (const t of [x, y, s]) t.dispose();
    if (i === 199) {
      await flush();
      after200 = memoryInfo().bytesAllocated;
    }
  }
  await flush();
  const end = memoryInfo();
  assertEquals(end.buffersInUse, start.buffersInUse, "buffers in use after the loop");
  // Sizes of 4,000..36,000 bytes fall in 11 size classes; two or three buffers each are plenty.
  // A pool keyed by exact size would hold hundreds of buffers (over 10 MB) here.
  const grew = end.bytesAllocated - start.bytesAllocated;
  assert(grew <= 3 * 11 * 40 * 1024, `the pool holds ${grew} bytes for 600 distinct sizes`);
  assert(
    end.bytesAllocated <= after200 + 2 * 40 * 1024,
    `after the first 200 sizes the pool hardly grows: ${after200} → ${end.bytesAllocated}`,
  );
});
