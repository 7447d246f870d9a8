/**
 * The training-step kernels and the plan that replays them: the batch gather
 * (src/ops/gather.ts, shaders/gather.wgsl), Philox dropout (src/ops/dropout.ts,
 * shaders/dropout.wgsl), the GPU-side running totals (src/ops/accumulate.ts,
 * shaders/accumulate.wgsl) and captured plans (`Runtime.capture`, `Plan` in src/gpu/runtime.ts),
 * each against a plain CPU reference.
 *
 * Tolerances (EPS = 2⁻²³, one f32 ulp at 1):
 * - gatherRows, 32-bit rows (MODE 1): bit-exact (the kernel copies words).
 * - gatherRows, bytes (MODE 0 and 2): exact. The GPU computes f32(byte)·scale + shift with the f32
 *   scale and shift of its uniform block; each element must equal f32(f32(byte·scale) + shift)
 *   (a rounded multiply, then a rounded add, as WGSL specifies them) or, where the shader compiler
 *   contracts the two into an FMA (SPIR-V allows it), f32(byte·scale + shift) with one rounding.
 *   The two differ by at most 1 ulp; llvmpipe gives the first one for every element measured.
 * - dropout: the mask (which elements are zero) is exact against the CPU Philox4x32-10 of
 *   src/random.ts. Kept values are x / d with d = f32(1 − f32(rate)), the divisor the kernel uses;
 *   they must be within DIV_ULPS = 2.5 ulps of f32(x / d), WGSL's accuracy for f32 division
 *   (llvmpipe divides correctly rounded: 0 ulps measured). Rate 0: exact (x / 1).
 *   The kept fraction on 100,000 elements: within 4 standard errors of 1 − rate.
 * - dropout gradient: tests/gradcheck.ts's default allowance (4 ulps per term; the gradient is
 *   exactly zero where the mask drops), and directly: the mask exact, values within DIV_ULPS.
 * - accumulateInto: exact (every value chosen representable in f32, every sum exact).
 * - capture/replay: exact against the same ops run eagerly (the same kernels), and exact against
 *   a CPU f32 reference (neg, abs, relu are exact; +, −, · are correctly rounded in WGSL).
 *
 * Which gather kernel variant runs (MODE 0, 1, or 2 for the word path `main_words`) is read from
 * the label of the dispatch that a capture of `gatherRows` records (`kernel "gather {"MODE":1}"`,
 * `kernel "gather.main_words {"WPI":4}"`), so that each MODE's test is known to exercise it. The
 * word path's rows [28, 28] take 4 words per invocation, [4] and [2, 6] one.
 * @module
 */
import {
  abs,
  add,
  fill,
  flush,
  memoryInfo,
  mul,
  neg,
  relu,
  scalar,
  square,
  sub,
  sum,
  type Tensor,
  valueAndGrad,
  zeros,
} from "../mod.ts";
import { accumulateInto } from "../src/ops/accumulate.ts";
import { dropout, rngState } from "../src/ops/dropout.ts";
import { gatherRows, type GatherSource } from "../src/ops/gather.ts";
import { type Plan, ready, type Runtime } from "../src/gpu/runtime.ts";
import { sizeClass } from "../src/gpu/buffers.ts";
import { philox4x32 } from "../src/random.ts";
import { gradCheck } from "./gradcheck.ts";
import {
  assertClose,
  assertEqualArrays,
  assertRejectsWgrad,
  assertShape,
  assertWgradError,
  compute,
  computeAll,
  f32,
  fmtDims,
  i32,
  input,
  Rng,
  type Shape,
  sizeOf,
  u32,
} from "./harness.ts";

/** WGSL's accuracy of f32 division x / y (|y| in [2⁻¹²⁶, 2¹²⁶]), in ulps of the result. */
const DIV_ULPS = 2.5;
/** The kept fraction must lie within this many standard errors of 1 − rate. */
const STAT_SIGMAS = 4;

// ---------------------------------------------------------------------------------------------
// Helpers

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

const f32Box = new Float32Array(1);
const u32Box = new Uint32Array(f32Box.buffer);

/** One ulp of the f32 value `v` (the spacing at its binade; 2⁻¹⁴⁹ for subnormals and 0). */
function ulp32(v: number): number {
  f32Box[0] = v;
  const e = (u32Box[0] >>> 23) & 0xff;
  return 2 ** (Math.max(e, 1) - 150);
}

/** The bit patterns of f32 values, for bit-exact comparisons (−0, payloads). */
function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** Bytes packed four per little-endian u32 word, the last word zero-padded (as fit() does). */
function packBytes(bytes: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(bytes.length / 4));
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

/** Runs `fn` inside `rt.capture` and returns the plan and what `fn` returned. */
function captureWith<T>(rt: Runtime, label: string, fn: () => T): { plan: Plan; value: T } {
  const box: { value?: T } = {};
  const plan = rt.capture(label, () => {
    box.value = fn();
  });
  return { plan, value: box.value as T };
}

/** The `MODE` constant of the gather kernel that `gatherRows` picks for `src`. */
async function gatherModeOf(src: GatherSource): Promise<number> {
  const rt = await ready();
  const perm = u32([0], [1]);
  const step = rngState(0);
  const { plan, value } = captureWith(
    rt,
    "gather mode probe",
    () => gatherRows(src, perm, step, 1),
  );
  const label = plan.commands.find((c) => c.kind === "dispatch")?.label ?? "(no dispatch)";
  value.dispose();
  plan.dispose();
  perm.dispose();
  step.dispose();
  // The word path is its own entry point, `main_words` (called MODE 2 here).
  if (/gather\.main_words \{"WPI":\d+\}/.test(label)) return 2;
  const m = /"MODE":(\d+)/.exec(label);
  assert(m, `the gather dispatch's label names no MODE constant: ${label}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// gatherRows

/**
 * Asserts that `actual[i]` is byte[i]·scale + shift computed in f32: f32(f32(b·s) + h) or, fused,
 * f32(b·s + h) (b·s is exact in float64 — 8 by 24 bits — and so is b·s + h for the scales and
 * shifts used here, so one Math.fround rounds it once).
 */
function assertAffineBytes(
  actual: ArrayLike<number>,
  bytes: ArrayLike<number>,
  scale: number,
  shift: number,
  label: string,
  shape: Shape,
): void {
  assert(
    actual.length === bytes.length,
    `${label}: ${actual.length} elements where ${bytes.length} were expected`,
  );
  const s = Math.fround(scale), h = Math.fround(shift);
  let bad = 0, first = -1;
  for (let i = 0; i < bytes.length; i++) {
    const two = Math.fround(Math.fround(bytes[i] * s) + h);
    const one = Math.fround(bytes[i] * s + h);
    if (actual[i] !== two && actual[i] !== one && bad++ === 0) first = i;
  }
  if (bad) {
    const b = bytes[first];
    throw new Error(
      `${label}: ${bad} of ${bytes.length} elements are neither f32(f32(byte·scale) + shift) ` +
        `nor f32(byte·scale + shift); first at flat index ${first} of ${fmtDims(shape)}: ` +
        `actual ${actual[first]}, byte ${b}, expected ${Math.fround(Math.fround(b * s) + h)} ` +
        `(or ${Math.fround(b * s + h)} fused), scale ${s}, shift ${h}`,
    );
  }
}

/** The rows that `gatherRows` picks: perm[start + b] for b < batch. */
function pickedRows(perm: ArrayLike<number>, start: number, batch: number): number[] {
  return Array.from({ length: batch }, (_, b) => perm[start + b]);
}

/** Row-wise gather on the CPU: out[b, j] = values[rows[b]·F + j]. */
function gatherRef(values: ArrayLike<number>, rows: readonly number[], features: number): number[] {
  const out: number[] = [];
  for (const r of rows) for (let j = 0; j < features; j++) out.push(values[r * features + j]);
  return out;
}

interface ByteCase {
  rowShape: number[];
  rows: number;
  batch: number;
  start: number;
  scale?: number;
  shift?: number;
}

/** Gathers byte rows on the GPU (with batchStart in the step state) and checks every element. */
async function checkByteGather(c: ByteCase, rng: Rng, label: string): Promise<void> {
  const features = sizeOf(c.rowShape);
  const bytes = new Uint8Array(c.rows * features);
  for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(0, 255);
  // Extremes where they matter: 0 and 255 somewhere in every case.
  bytes[0] = 255;
  bytes[bytes.length - 1] = 0;
  const perm = Uint32Array.from(rng.permutation(c.rows));
  const opts = c.scale === undefined ? {} : { scale: c.scale, shift: c.shift };
  const out = await compute(() =>
    gatherRows(
      {
        data: u32(packBytes(bytes), [Math.ceil(bytes.length / 4)]),
        kind: "u8",
        rows: c.rows,
        rowShape: c.rowShape,
      },
      u32(perm, [c.rows]),
      rngState(12345, 6, c.start),
      c.batch,
      opts,
    )
  );
  const shape = [c.batch, ...c.rowShape];
  assertShape(out.shape, shape, label);
  assert(out.dtype === "f32", `${label}: dtype ${out.dtype}, expected f32`);
  const expected = gatherRef(bytes, pickedRows(perm, c.start, c.batch), features);
  assertAffineBytes(out.data, expected, c.scale ?? 1 / 255, c.shift ?? 0, label, shape);
}

const BATCHES = [1, 7, 33] as const;
/** Normalisations: the default [0, 1], centred [−0.5, 0.5], and one with inexact products. */
const NORMS = [
  { scale: undefined, shift: undefined },
  { scale: 1 / 255, shift: -0.5 },
  { scale: 0.1, shift: 0.3 },
] as const;

for (
  const [mode, shapes] of [
    [0, [[2, 3], [5], [7, 3]]],
    [2, [[28, 28], [4], [2, 6]]],
  ] as const
) {
  Deno.test(
    `gather: bytes → f32 (MODE ${mode}) for rows ${shapes.map(fmtDims).join(", ")}, ` +
      "batches 1, 7, 33 from mid-permutation, three normalisations",
    async () => {
      const rng = new Rng(100 + mode);
      for (const rowShape of shapes) {
        const features = sizeOf(rowShape);
        // 37 rows: with an odd row length the bytes end inside a word (the last word padded).
        const rows = 37;
        const probe = u32(new Uint32Array(Math.ceil((rows * features) / 4)), [
          Math.ceil((rows * features) / 4),
        ]);
        const picked = await gatherModeOf({ data: probe, kind: "u8", rows, rowShape });
        probe.dispose();
        assert(
          picked === mode,
          `rows of ${fmtDims(rowShape)} (${features} bytes) use gather MODE ${picked}, ` +
            `expected ${mode}`,
        );
        for (const batch of BATCHES) {
          // batchStart 0 and a start in the middle of the permutation (the last batch ends at
          // the permutation's end when start = rows − batch).
          for (const start of [0, rng.int(1, rows - batch), rows - batch]) {
            for (const norm of NORMS) {
              await checkByteGather(
                { rowShape: [...rowShape], rows, batch, start, ...norm },
                rng,
                `gather MODE ${mode} rows ${fmtDims(rowShape)} batch ${batch} start ${start} ` +
                  `scale ${norm.scale ?? "default"} shift ${norm.shift ?? "default"}`,
              );
            }
          }
        }
      }
    },
  );
}

Deno.test("gather: 32-bit rows (MODE 1): i32 labels, f32 rows [3, 5], u32 rows, bit-exact", async () => {
  const rng = new Rng(7);
  const rows = 41;
  const cases: {
    kind: "i32" | "f32" | "u32";
    rowShape: number[];
    values: Int32Array | Float32Array | Uint32Array;
  }[] = [
    { kind: "i32", rowShape: [], values: rng.ints(rows, -(2 ** 31), 2 ** 31 - 1) },
    { kind: "f32", rowShape: [3, 5], values: rng.floats(rows * 15, -1e6, 1e6) },
    { kind: "u32", rowShape: [2], values: rng.uints(rows * 2, 0, 2 ** 32 - 1) },
  ];
  // Signed zeros, extremes of each type: a copy must keep every bit.
  (cases[0].values as Int32Array).set([-(2 ** 31), 2 ** 31 - 1, 0, -1]);
  (cases[1].values as Float32Array).set([-0, 3.4028234663852886e38, -1.1754943508222875e-38]);
  (cases[2].values as Uint32Array).set([2 ** 32 - 1, 2 ** 31, 0]);
  for (const c of cases) {
    const features = sizeOf(c.rowShape);
    const src = input(c.values, [rows, ...c.rowShape], c.kind);
    const picked = await gatherModeOf({ data: src, kind: c.kind, rows, rowShape: c.rowShape });
    src.dispose();
    assert(picked === 1, `${c.kind} rows use gather MODE ${picked}, expected 1`);
    for (const batch of BATCHES) {
      for (const start of [0, rng.int(1, rows - batch), rows - batch]) {
        const perm = Uint32Array.from(rng.permutation(rows));
        const label = `gather ${c.kind} rows ${fmtDims(c.rowShape)} batch ${batch} start ${start}`;
        const out = await compute(() =>
          gatherRows(
            {
              data: input(c.values, [rows * features], c.kind),
              kind: c.kind,
              rows,
              rowShape: c.rowShape,
            },
            u32(perm, [rows]),
            rngState(99, 0, start),
            batch,
            { scale: 3, shift: 1 }, // ignored for 32-bit rows
          )
        );
        const shape = [batch, ...c.rowShape];
        assertShape(out.shape, shape, label);
        assert(out.dtype === c.kind, `${label}: dtype ${out.dtype}, expected ${c.kind}`);
        const expected = gatherRef(c.values, pickedRows(perm, start, batch), features);
        if (c.kind === "f32") {
          assertEqualArrays(
            bitsOf(out.data as Float32Array),
            bitsOf(Float32Array.from(expected)),
            `${label} (bit patterns)`,
            shape,
          );
        } else {
          assertEqualArrays(out.data, expected, label, shape);
        }
      }
    }
  }
});

/** Splits rows of `features` values into chunks of `per` rows (bytes packed per chunk). */
function chunked(
  values: Uint8Array | Int32Array,
  rows: number,
  features: number,
  per: number,
): Tensor[] {
  const out: Tensor[] = [];
  for (let first = 0; first < rows; first += per) {
    const part = values.subarray(first * features, Math.min(rows, first + per) * features);
    out.push(
      part instanceof Uint8Array
        ? u32(packBytes(part), [Math.ceil(part.length / 4)])
        : input(part, [part.length], "i32"),
    );
  }
  return out;
}

Deno.test("gather: rows in chunks (bytes by word and by byte, i32) equal the whole set's gather", async () => {
  // A set larger than one storage binding is uploaded in chunks of whole rows, one dispatch per
  // chunk: every row of the batch must come from its chunk, whichever chunk that is.
  const rng = new Rng(9);
  const rows = 61;
  for (
    const c of [
      { kind: "u8", rowShape: [2, 4], per: 16 }, // main_words, 4 chunks, the last one short
      { kind: "u8", rowShape: [3], per: 7 }, // MODE 0: 7 · 3 bytes, each chunk from its word 0
      { kind: "i32", rowShape: [], per: 20 }, // MODE 1, labels
      { kind: "u8", rowShape: [4, 4], per: 61 }, // one chunk in a list
    ] as const
  ) {
    const features = sizeOf(c.rowShape);
    const values = c.kind === "u8"
      ? Uint8Array.from({ length: rows * features }, () => rng.int(0, 255))
      : rng.ints(rows, -1000, 1000);
    for (const batch of [1, 7, 33]) {
      const start = rng.int(0, rows - batch);
      const perm = Uint32Array.from(rng.permutation(rows));
      const label = `chunked gather ${c.kind} rows ${fmtDims(c.rowShape)}, ${c.per} per chunk, ` +
        `batch ${batch} start ${start}`;
      const out = await compute(() =>
        gatherRows(
          {
            data: chunked(values, rows, features, c.per),
            perChunk: c.per,
            kind: c.kind,
            rows,
            rowShape: [...c.rowShape],
          },
          u32(perm, [rows]),
          rngState(5, 0, start),
          batch,
        )
      );
      const shape = [batch, ...c.rowShape];
      assertShape(out.shape, shape, label);
      const expected = gatherRef(values, pickedRows(perm, start, batch), features);
      if (c.kind === "u8") assertAffineBytes(out.data, expected, 1 / 255, 0, label, shape);
      else assertEqualArrays(out.data, expected, label, shape);
    }
  }
});

Deno.test("gather: chunk lists that cannot hold the rows are refused before any GPU work", () => {
  const bytes = new Uint8Array(40 * 3);
  const perm = u32(new Uint32Array(40).map((_, i) => i), [40]);
  const step = rngState(0);
  const bad = [
    { per: undefined, why: "no perChunk" },
    { per: 10, why: "4 chunks of 10 rows for 40 rows with 5 chunks" },
    { per: 7, why: "5 chunks of 7 rows hold 35 of the 40 rows" },
  ];
  for (const b of bad) {
    const data = chunked(bytes, 40, 3, 8); // 5 chunks of 8
    assertWgradError(
      () =>
        gatherRows({ data, perChunk: b.per, kind: "u8", rows: 40, rowShape: [3] }, perm, step, 4),
      "value",
      ["gatherRows", "5 chunks", "cannot hold 40 rows of [3]"],
      b.why,
    );
    for (const t of data) t.dispose();
  }
  // A chunk too short for its rows names the chunk.
  const short = [u32(new Uint32Array(6), [6]), u32(new Uint32Array(2), [2])];
  assertWgradError(
    () =>
      gatherRows({ data: short, perChunk: 8, kind: "u8", rows: 16, rowShape: [3] }, perm, step, 4),
    "shape",
    ["gatherRows", "fewer than 8 rows of [3]", "chunk 1 of 2"],
    "a short chunk",
  );
  for (const t of short) t.dispose();
  perm.dispose();
  step.dispose();
});

Deno.test("gather: perm larger than the batch and rows not all used (a validation subset)", async () => {
  // perm holds 40 of 60 rows (indices 20…59, shuffled), as fit() does for a validation split.
  const rng = new Rng(8);
  const rows = 60, rowShape = [3, 3];
  const features = 9;
  const bytes = Uint8Array.from({ length: rows * features }, () => rng.int(0, 255));
  const perm = Uint32Array.from(rng.permutation(40).map((i) => 20 + i));
  const out = await compute(() =>
    gatherRows(
      { data: u32(packBytes(bytes), [Math.ceil(bytes.length / 4)]), kind: "u8", rows, rowShape },
      u32(perm, [40]),
      rngState(1, 0, 5),
      33,
      { scale: 1 / 255, shift: -0.5 },
    )
  );
  const expected = gatherRef(bytes, pickedRows(perm, 5, 33), features);
  assertAffineBytes(out.data, expected, 1 / 255, -0.5, "gather from a subset", [33, 3, 3]);
});

Deno.test("gather: batchStart written into the step state between gathers, eager and replayed", async () => {
  const rt = await ready();
  const rng = new Rng(9);
  const rows = 50, rowShape = [28, 28], features = 784, batch = 7;
  const bytes = Uint8Array.from({ length: rows * features }, () => rng.int(0, 255));
  const permValues = Uint32Array.from(rng.permutation(rows));
  const data = u32(packBytes(bytes), [rows * features / 4]);
  const labels = Int32Array.from({ length: rows }, () => rng.int(0, 9));
  const labelData = i32(labels, [rows]);
  const perm = u32(permValues, [rows]);
  const step = rngState(77);
  const src: GatherSource = { data, kind: "u8", rows, rowShape };
  const ysrc: GatherSource = { data: labelData, kind: "i32", rows, rowShape: [] };
  const starts = [0, 7, 14, 21, 43, 3];
  const words = new Uint32Array(4);
  const write = (start: number, k: number) => {
    words.set([77, 0, k, start]);
    rt.write(step.storage, words, "test: step state");
  };
  try {
    // Eager: each gather is recorded, then the next write submits it before changing the state.
    const outs: Tensor[] = [];
    starts.forEach((start, k) => {
      write(start, k);
      outs.push(gatherRows(src, perm, step, batch, { scale: 1 / 255, shift: -0.5 }));
      outs.push(gatherRows(ysrc, perm, step, batch));
    });
    const read = await Promise.all(outs.map((t) => t.data()));
    for (const t of outs) t.dispose();
    starts.forEach((start, k) => {
      const picked = pickedRows(permValues, start, batch);
      assertAffineBytes(
        read[2 * k],
        gatherRef(bytes, picked, features),
        1 / 255,
        -0.5,
        `eager gather after writing batchStart ${start}`,
        [batch, ...rowShape],
      );
      assertEqualArrays(read[2 * k + 1], gatherRef(labels, picked, 1), `labels, start ${start}`);
    });

    // Captured once, replayed per batch as fit() does: the state is the only thing that changes.
    const { plan, value } = captureWith(rt, "gather step", () => [
      gatherRows(src, perm, step, batch, { scale: 1 / 255, shift: -0.5 }),
      gatherRows(ysrc, perm, step, batch),
    ]);
    try {
      for (const [k, start] of starts.entries()) {
        write(start, k);
        plan.replay();
        const [x, y] = await Promise.all(value.map((t) => t.data()));
        const picked = pickedRows(permValues, start, batch);
        assertAffineBytes(
          x,
          gatherRef(bytes, picked, features),
          1 / 255,
          -0.5,
          `replayed gather, batchStart ${start}`,
          [batch, ...rowShape],
        );
        assertEqualArrays(y, gatherRef(labels, picked, 1), `replayed labels, start ${start}`);
      }
    } finally {
      for (const t of value) t.dispose();
      plan.dispose();
    }
  } finally {
    for (const t of [data, labelData, perm, step]) t.dispose();
  }
});

Deno.test("gather: errors name gatherRows (batch 0, batch > perm, non-u32 perm/step, short data)", async () => {
  const bytes = u32(new Uint32Array(15), [15]); // 60 bytes: 10 rows of [2, 3]
  const src: GatherSource = { data: bytes, kind: "u8", rows: 10, rowShape: [2, 3] };
  const perm = u32(Uint32Array.from({ length: 10 }, (_, i) => i), [10]);
  const step = rngState(1);
  const made: Tensor[] = [bytes, perm, step];
  const tmp = <T extends Tensor>(t: T): T => (made.push(t), t);
  try {
    assertWgradError(() => gatherRows(src, perm, step, 0), "value", ["gatherRows", "0"], "batch 0");
    assertWgradError(
      () => gatherRows(src, perm, step, 11),
      "value",
      ["gatherRows", "11", "10"],
      "batch 11 > perm size 10",
    );
    assertWgradError(() => gatherRows(src, perm, step, 2.5), "value", ["gatherRows"], "batch 2.5");
    const permI32 = tmp(i32(Array.from({ length: 10 }, (_, i) => i), [10]));
    assertWgradError(
      () => gatherRows(src, permI32 as unknown as Tensor<"u32">, step, 4),
      "dtype",
      ["gatherRows", "i32"],
      "perm of i32",
    );
    const stepF32 = tmp(f32([1, 0, 0, 0], [4]));
    assertWgradError(
      () => gatherRows(src, perm, stepF32 as unknown as Tensor<"u32">, 4),
      "dtype",
      ["gatherRows", "f32"],
      "step of f32",
    );
    // Bytes: 10 rows of [2, 3] need 60 bytes = 15 words; 14 words are short.
    const short = tmp(u32(new Uint32Array(14), [14]));
    assertWgradError(
      () => gatherRows({ ...src, data: short }, perm, step, 4),
      "shape",
      ["gatherRows", "[14]", "10 rows", "[2, 3]"],
      "byte data of 56 bytes for 60",
    );
    // 10 rows of [5] need 50 bytes, i.e. 13 words (the last one padded): 12 are short, 13 fit.
    const odd: GatherSource = {
      data: tmp(u32(new Uint32Array(12), [12])),
      kind: "u8",
      rows: 10,
      rowShape: [5],
    };
    assertWgradError(
      () => gatherRows(odd, perm, step, 4),
      "shape",
      ["gatherRows"],
      "48 bytes for 50",
    );
    const fifty = Uint8Array.from({ length: 50 }, (_, i) => 5 * i + 1);
    const fits = tmp(gatherRows({ ...odd, data: tmp(u32(packBytes(fifty), [13])) }, perm, step, 4));
    const firstRows = fifty.slice(0, 20); // perm is the identity, batchStart 0
    assertAffineBytes(await fits.data(), firstRows, 1 / 255, 0, "50 bytes in 13 words", [4, 5]);
    // 32-bit rows: 10 rows of [3, 5] need 150 values.
    const floats = tmp(f32(new Float32Array(149), [149]));
    assertWgradError(
      () => gatherRows({ data: floats, kind: "f32", rows: 10, rowShape: [3, 5] }, perm, step, 4),
      "shape",
      ["gatherRows", "[149]", "[3, 5]"],
      "149 floats for 150",
    );
    const labels = tmp(i32(new Int32Array(9), [9]));
    assertWgradError(
      () => gatherRows({ data: labels, kind: "i32", rows: 10, rowShape: [] }, perm, step, 4),
      "shape",
      ["gatherRows", "[9]"],
      "9 labels for 10",
    );
  } finally {
    for (const t of made) t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// dropout

/** The CPU dropout mask: 1 where the kernel keeps element i (see shaders/dropout.wgsl). */
function dropoutMask(
  n: number,
  seed: number,
  step: number,
  salt: number,
  rate: number,
): Uint8Array {
  const k0 = seed >>> 0, k1 = Math.floor(seed / 2 ** 32) >>> 0;
  // The kernel compares with its uniform's f32 rate (0.9 rounds to 0.89999998; a draw equal to
  // f32(0.9) is kept there, and would be dropped against the float64 0.9).
  const rate32 = Math.fround(rate);
  const w = new Uint32Array(4);
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if ((i & 3) === 0) philox4x32(i >>> 2, salt >>> 0, step >>> 0, 0, k0, k1, w);
    keep[i] = (w[i & 3] >>> 8) * 2 ** -24 >= rate32 ? 1 : 0;
  }
  return keep;
}

/** The divisor the kernel uses: 1 − rate in f32 arithmetic on the f32 rate. */
const keepDivisor = (rate: number): number => Math.fround(1 - Math.fround(rate));

/** Nonzero f32 values with random signs and magnitudes in [0.5, 2), so that zeros mean "dropped". */
function nonzero(rng: Rng, n: number): Float32Array {
  const x = rng.floats(n, 0.5, 2);
  for (let i = 0; i < n; i++) if (rng.next() < 0.5) x[i] = -x[i];
  return x;
}

/**
 * Asserts that `y` is `x` masked by `keep` and divided by d = f32(1 − f32(rate)): zero exactly
 * where the mask drops, within DIV_ULPS of f32(x / d) where it keeps.
 */
function assertMasked(
  y: ArrayLike<number>,
  x: ArrayLike<number>,
  keep: Uint8Array,
  rate: number,
  label: string,
  ulps = DIV_ULPS,
): void {
  assert(y.length === keep.length, `${label}: ${y.length} elements, expected ${keep.length}`);
  let wrong = 0, first = -1;
  for (let i = 0; i < y.length; i++) {
    if ((y[i] !== 0) !== (keep[i] === 1) && wrong++ === 0) first = i;
  }
  if (wrong) {
    throw new Error(
      `${label}: the mask differs from the CPU Philox4x32-10 reference at ${wrong} of ${y.length} ` +
        `elements; first at ${first}: GPU ${y[first]} (x ${x[first]}), reference ` +
        `${keep[first] ? "keeps" : "drops"} it`,
    );
  }
  const d = keepDivisor(rate);
  const expected = Float64Array.from(x, (v, i) => (keep[i] ? Math.fround(v / d) : 0));
  assertClose(y, expected, { atol: expected.map((e) => ulps * ulp32(e)), rtol: 0 }, label);
}

/** A seed whose high word is nonzero (the key's second half). */
const SEED = 2 ** 40 + 0x2468ace;
const RATES = [0.1, 0.5, 0.9] as const;

Deno.test("dropout: the mask equals the CPU Philox reference for sizes 1, 7, 33, 10,000", async () => {
  const rng = new Rng(21);
  let k = 0;
  for (const n of [1, 7, 33, 10_000]) {
    for (const rate of RATES) {
      const x = nonzero(rng, n);
      const step = [0, 1, 2 ** 32 - 3][k % 3];
      const salt = [0, 3, 0xdead][k++ % 3];
      const [y] = await computeAll(() => [
        dropout(f32(x, [n]), rate, { rng: rngState(SEED, step), salt }),
      ]);
      assertShape(y.shape, [n], `dropout [${n}]`);
      assertMasked(
        y.data,
        x,
        dropoutMask(n, SEED, step, salt, rate),
        rate,
        `dropout [${n}] rate ${rate} step ${step} salt ${salt}`,
      );
    }
  }
});

Deno.test("dropout: another step, salt or seed draws another mask; the same state the same one", async () => {
  const n = 10_000, rate = 0.5;
  const x = nonzero(new Rng(22), n);
  const states = [
    { seed: SEED, step: 3, salt: 1 },
    { seed: SEED, step: 4, salt: 1 },
    { seed: SEED, step: 3, salt: 2 },
    { seed: SEED + 1, step: 3, salt: 1 },
    { seed: SEED + 2 ** 32, step: 3, salt: 1 }, // only the key's high word differs
    { seed: SEED, step: 3, salt: 1 }, // the first one again
  ];
  const ys = await computeAll(() =>
    states.map((s) => dropout(f32(x, [n]), rate, { rng: rngState(s.seed, s.step), salt: s.salt }))
  );
  const masks = ys.map((y) => Uint8Array.from(y.data, (v) => (v !== 0 ? 1 : 0)));
  states.forEach((s, i) => {
    assertMasked(
      ys[i].data,
      x,
      dropoutMask(n, s.seed, s.step, s.salt, rate),
      rate,
      `dropout seed ${s.seed} step ${s.step} salt ${s.salt}`,
    );
  });
  for (let i = 1; i < 5; i++) {
    let differ = 0;
    for (let j = 0; j < n; j++) differ += masks[0][j] ^ masks[i][j];
    // Independent masks at rate 0.5 differ at half the positions (standard error 0.005).
    assert(
      differ / n > 0.45 && differ / n < 0.55,
      `dropout: state ${JSON.stringify(states[i])} gives a mask that differs from ` +
        `${JSON.stringify(states[0])} at ${differ} of ${n} positions (expected about half)`,
    );
  }
  assertEqualArrays(ys[5].data, ys[0].data, "dropout with the same state twice");
});

Deno.test("dropout: the kept fraction on 100,000 elements is within 4 standard errors of 1 − rate", async () => {
  const n = 100_000;
  const ones = new Float32Array(n).fill(1);
  for (const rate of RATES) {
    const y = await compute(() =>
      dropout(f32(ones, [n]), rate, { rng: rngState(SEED, 11), salt: 4 })
    );
    let kept = 0;
    for (let i = 0; i < n; i++) if (y.data[i] !== 0) kept++;
    const se = Math.sqrt((rate * (1 - rate)) / n);
    const frac = kept / n;
    assert(
      Math.abs(frac - (1 - rate)) <= STAT_SIGMAS * se,
      `dropout rate ${rate}: kept ${kept} of ${n} (${frac}), expected ${1 - rate} ± ` +
        `${STAT_SIGMAS}·${se.toPrecision(3)}`,
    );
    assertMasked(
      y.data,
      ones,
      dropoutMask(n, SEED, 11, 4, rate),
      rate,
      `dropout rate ${rate} [${n}]`,
    );
  }
});

Deno.test("dropout: rate 0 returns x unchanged", async () => {
  const rng = new Rng(23);
  for (const n of [1, 7, 33, 10_000]) {
    const x = rng.floats(n, -3, 3);
    x[0] = -0;
    const y = await compute(() => dropout(f32(x, [n]), 0, { rng: rngState(SEED, 5) }));
    assertEqualArrays(bitsOf(y.data as Float32Array), bitsOf(x), `dropout rate 0 [${n}] (bits)`);
  }
  // Without an rng of its own (the global stream) too.
  const x = rng.floats(33, -3, 3);
  const y = await compute(() => dropout(f32(x, [33]), 0));
  assertEqualArrays(y.data, x, "dropout rate 0 with the default rng");
});

Deno.test("dropout: gradient passes the finite-difference check (linear for a fixed mask)", async () => {
  const rng = new Rng(24);
  for (const rate of RATES) {
    for (const n of [7, 33]) {
      const salt = 9, step = 17;
      const keep = dropoutMask(n, SEED, step, salt, rate);
      const d = keepDivisor(rate);
      const state = rngState(SEED, step);
      try {
        await gradCheck({
          label: `dropout rate ${rate} [${n}]`,
          inputs: [{ data: nonzero(rng, n), shape: [n] }],
          gpu: (x) => dropout(x, rate, { rng: state, salt }),
          ref: (x) => ({ data: x.map((v, i) => (keep[i] ? v / d : 0)), shape: [n] }),
          vjp: (_xs, r) => [r.map((v, i) => (keep[i] ? v / d : 0))],
          seed: 100 + n,
        });
      } finally {
        state.dispose();
      }
    }
  }
});

Deno.test("dropout: grad of sum(dropout(x) ⊙ r) is mask ⊙ r / (1 − rate)", async () => {
  const rng = new Rng(25);
  for (const n of [1, 7, 33, 10_000]) {
    for (const rate of RATES) {
      const x = nonzero(rng, n), r = nonzero(rng, n);
      const step = rng.int(0, 1000), salt = rng.int(0, 50);
      const xt = f32(x, [n]), rt = f32(r, [n]), state = rngState(SEED, step);
      try {
        const { value, grads } = await valueAndGrad(
          () => sum(mul(dropout(xt, rate, { rng: state, salt }), rt)),
          [xt],
        );
        const g = await grads[0].data();
        value.dispose();
        grads[0].dispose();
        assertMasked(
          g,
          r,
          dropoutMask(n, SEED, step, salt, rate),
          rate,
          `d/dx sum(dropout(x) ⊙ r) [${n}] rate ${rate}`,
        );
      } finally {
        for (const t of [xt, rt, state]) t.dispose();
      }
    }
  }
});

Deno.test("dropout: bad rates, a wrong-size or non-u32 random state, non-f32 x name dropout", () => {
  const x = f32([1, 2, 3], [3]);
  const made: Tensor[] = [x];
  const tmp = <T extends Tensor>(t: T): T => (made.push(t), t);
  try {
    for (const rate of [-0.1, 1, NaN, 1.5, Infinity]) {
      assertWgradError(
        () => dropout(x, rate),
        "value",
        ["dropout", "rate", String(rate)],
        `dropout rate ${rate}`,
      );
    }
    for (const shape of [[3], [5], [2, 4]]) {
      const bad = tmp(u32(new Uint32Array(sizeOf(shape)), shape));
      assertWgradError(
        () => dropout(x, 0.5, { rng: bad }),
        "shape",
        ["dropout", fmtDims(shape), "4 elements"],
        `dropout with a random state of ${fmtDims(shape)}`,
      );
    }
    const signed = tmp(i32([1, 0, 0, 0], [4]));
    assertWgradError(
      () => dropout(x, 0.5, { rng: signed as unknown as Tensor<"u32"> }),
      "dtype",
      ["dropout", "i32"],
      "dropout with an i32 random state",
    );
    const ints = tmp(i32([1, 2, 3], [3]));
    assertWgradError(
      () => dropout(ints as unknown as Tensor<"f32">, 0.5),
      "dtype",
      ["dropout", "i32"],
      "dropout of an i32 tensor",
    );
    assertWgradError(() => rngState(-1), "value", ["rngState", "-1"], "rngState(-1)");
  } finally {
    for (const t of made) t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// accumulateInto

Deno.test("accumulate: acc = [Σ loss·batch, Σ correct, Σ batch, calls], exactly", async () => {
  const calls = [
    { loss: 0.5, correct: 3, batch: 8 },
    { loss: 1.25, correct: 5, batch: 32 },
    { loss: 2, correct: 0, batch: 1 },
    { loss: 0.75, correct: 7, batch: 7 },
    { loss: 3.5, correct: 33, batch: 33 },
  ];
  const acc = zeros([4]);
  try {
    const expected = [0, 0, 0, 0];
    for (const c of calls) {
      const loss = scalar(c.loss), correct = scalar(c.correct);
      accumulateInto(acc, loss, correct, c.batch);
      loss.dispose();
      correct.dispose();
      expected[0] += c.loss * c.batch;
      expected[1] += c.correct;
      expected[2] += c.batch;
      expected[3] += 1;
      // Every partial sum is an exact f32 (small dyadic rationals), so f32 adds are exact.
      assertEqualArrays(await acc.data(), expected, `acc after ${expected[3]} calls`);
    }
    assertEqualArrays(await acc.data(), [166.75, 48, 81, 5], "acc after all calls");
  } finally {
    acc.dispose();
  }
});

Deno.test("accumulate: with correct = null the second element is unchanged", async () => {
  const acc = f32([1, 2, 3, 4], [4]);
  const lossA = f32([0.25], [1]), lossB = scalar(1.5), correct = scalar(6);
  try {
    accumulateInto(acc, lossA, null, 16);
    assertEqualArrays(await acc.data(), [1 + 4, 2, 3 + 16, 5], "acc after a call without correct");
    accumulateInto(acc, lossB, correct, 2);
    accumulateInto(acc, lossB, null, 4);
    assertEqualArrays(
      await acc.data(),
      [5 + 3 + 6, 2 + 6, 19 + 2 + 4, 7],
      "acc after calls with and without correct",
    );
  } finally {
    for (const t of [acc, lossA, lossB, correct]) t.dispose();
  }
});

Deno.test("accumulate: a longer accumulator takes the figures in its first four words", async () => {
  // fit keeps one word per metric after the four (src/train/trainer.ts).
  const acc = f32([1, 2, 3, 4, 5, 6], [6]), loss = scalar(0.5), correct = scalar(3);
  try {
    accumulateInto(acc, loss, correct, 8);
    assertEqualArrays(await acc.data(), [1 + 4, 2 + 3, 3 + 8, 5, 5, 6], "acc [6] after one call");
  } finally {
    for (const t of [acc, loss, correct]) t.dispose();
  }
});

Deno.test("accumulate: replayed from a captured plan, with the loss rewritten per step", async () => {
  const rt = await ready();
  const acc = zeros([4]), loss = scalar(0), correct = scalar(0);
  try {
    const plan = rt.capture("accumulate step", () => accumulateInto(acc, loss, correct, 32));
    try {
      let expected = [0, 0, 0, 0];
      for (const [l, c] of [[0.5, 10], [0.25, 31], [1.125, 0], [2, 32]]) {
        rt.write(loss.storage, new Float32Array([l]), "test: loss");
        rt.write(correct.storage, new Float32Array([c]), "test: correct");
        plan.replay();
        expected = [expected[0] + l * 32, expected[1] + c, expected[2] + 32, expected[3] + 1];
      }
      assertEqualArrays(await acc.data(), expected, "acc after 4 replays");
    } finally {
      plan.dispose();
    }
  } finally {
    for (const t of [acc, loss, correct]) t.dispose();
  }
});

Deno.test("accumulate: shape and dtype errors name accumulateInto and the shapes", () => {
  const made: Tensor[] = [];
  const tmp = <T extends Tensor>(t: T): T => (made.push(t), t);
  try {
    const acc = tmp(zeros([4])), loss = tmp(scalar(1)), correct = tmp(scalar(1));
    assertWgradError(
      () => accumulateInto(tmp(zeros([3])), loss, correct, 8),
      "shape",
      ["accumulateInto", "[3]"],
      "acc [3]",
    );
    assertWgradError(
      () => accumulateInto(tmp(zeros([2, 2])), loss, null, 8),
      "shape",
      ["accumulateInto", "[2, 2]"],
      "acc [2, 2]",
    );
    assertWgradError(
      () => accumulateInto(acc, tmp(zeros([2])), correct, 8),
      "shape",
      ["accumulateInto", "[2]"],
      "loss [2]",
    );
    assertWgradError(
      () => accumulateInto(tmp(zeros([4], "i32")) as unknown as Tensor<"f32">, loss, correct, 8),
      "dtype",
      ["accumulateInto", "i32"],
      "acc of i32",
    );
    // A correct count of the wrong size is rejected…
    assertWgradError(
      () => accumulateInto(acc, loss, tmp(zeros([2, 1])), 8),
      "shape",
      ["accumulateInto"],
      "correct [2, 1]",
    );
  } finally {
    for (const t of made) t.dispose();
  }
});

Deno.test("accumulate: the error for a wrong-size correct count names its shape", () => {
  const acc = zeros([4]), loss = scalar(1), correct = zeros([2, 3]);
  try {
    // DESIGN.md: errors name the op and the shapes at fault; here the fault is correct's [2, 3].
    assertWgradError(
      () => accumulateInto(acc, loss, correct, 8),
      "shape",
      ["accumulateInto", "[2, 3]"],
      "correct [2, 3]",
    );
  } finally {
    for (const t of [acc, loss, correct]) t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Runtime.capture and Plan

/** relu(x·2 + c) on the CPU in f32 (x·2 is exact; the add rounds once; relu is exact). */
function reluAffineRef(x: ArrayLike<number>, c: number): number[] {
  const c32 = Math.fround(c);
  return Array.from(x, (v) => {
    const t = Math.fround(Math.fround(v * 2) + c32);
    return t < 0 ? 0 : t;
  });
}

/**
 * Overwrites pooled buffers of the sizes a plan uses, so that a plan buffer wrongly returned to the
 * pool (its constants, its intermediates) would be clobbered before the next replay.
 */
async function churn(n: number): Promise<void> {
  const junk: Tensor[] = [];
  for (let i = 0; i < 8; i++) {
    junk.push(fill([], 1e6 + i), fill([n], -7 - i), scalar(-123), f32([9, 9, 9], [3]));
  }
  await flush();
  for (const t of junk) t.dispose();
}

Deno.test("capture: relu(x·2 + c) replayed 5 times with x rewritten equals eager ops and the CPU", async () => {
  const rt = await ready();
  const rng = new Rng(31);
  const n = 1000, c = -0.3;
  const x = f32(rng.floats(n, -1, 1), [n]);
  const { plan, value: y } = captureWith(rt, "relu(x·2 + c)", () => {
    const a = mul(x, 2); // 2 and c are uploaded during the capture: constants of the plan
    const b = add(a, c);
    a.dispose();
    const out = relu(b);
    b.dispose();
    return out;
  });
  try {
    assert(plan.dispatches === 3, `the plan has ${plan.dispatches} dispatches, expected 3`);
    for (let k = 0; k < 5; k++) {
      const values = rng.floats(n, -1, 1);
      values[0] = 0.15; // 0.15·2 − 0.3 rounds to a tiny value, not 0: the rounding is checked
      rt.write(x.storage, values, "test: x");
      plan.replay();
      // The next step's write must not overtake this replay: write() submits it first.
      rt.write(x.storage, new Float32Array(n).fill(1e3), "test: x, next step");
      const got = await y.data();
      const eager = await compute(() => relu(add(mul(f32(values, [n]), 2), c)));
      assertEqualArrays(got, eager.data, `replay ${k + 1} against the same ops run eagerly`);
      assertEqualArrays(got, reluAffineRef(values, c), `replay ${k + 1} against the CPU`);
      await churn(n);
    }
  } finally {
    y.dispose();
    plan.dispose();
    x.dispose();
  }
});

Deno.test("capture: numbers uploaded as constants during the capture survive replays", async () => {
  const rt = await ready();
  const n = 33;
  const x = f32(Array.from({ length: n }, (_, i) => i - 16), [n]);
  // Every constant distinct, each its own scalar upload, each released during the capture.
  const consts = [0.5, -3, 7.25, 0.125, 100];
  const { plan, value: y } = captureWith(rt, "constants", () => {
    let t = mul(x, consts[0]);
    for (const k of consts.slice(1)) {
      const next = add(t, k);
      t.dispose();
      t = next;
    }
    return t;
  });
  try {
    // Each step rounded to f32 as the GPU does (all exact here: small dyadic values).
    const ref = (v: number) =>
      consts.slice(1).reduce((t, k) => Math.fround(t + k), Math.fround(v * consts[0]));
    for (let k = 0; k < 5; k++) {
      await churn(n);
      plan.replay();
      const got = await y.data();
      assertEqualArrays(got, Array.from({ length: n }, (_, i) => ref(i - 16)), `replay ${k + 1}`);
    }
  } finally {
    y.dispose();
    plan.dispose();
    x.dispose();
  }
});

Deno.test("capture: intermediates released during the capture are reused within it", async () => {
  const rt = await ready();
  const rng = new Rng(32);
  const n = 1000;
  const x = f32(rng.floats(n, 0.5, 1.5), [n]);
  type F = Tensor<"f32">;
  // Ten element-wise ops on [1000], each intermediate released once the next one exists.
  const ops: [string, (t: F) => F, (v: number, xv: number) => number][] = [
    ["neg", (t) => neg(t), (v) => -v],
    ["add x", (t) => add(t, x), (v, xv) => Math.fround(v + xv)],
    ["relu", (t) => relu(t), (v) => (v < 0 ? 0 : v)],
    ["mul x", (t) => mul(t, x), (v, xv) => Math.fround(v * xv)],
    ["abs", (t) => abs(t), (v) => Math.abs(v)],
    ["sub x", (t) => sub(t, x), (v, xv) => Math.fround(v - xv)],
    ["square", (t) => square(t), (v) => Math.fround(v * v)],
    ["add x", (t) => add(t, x), (v, xv) => Math.fround(v + xv)],
    ["neg", (t) => neg(t), (v) => -v],
    ["mul x", (t) => mul(t, x), (v, xv) => Math.fround(v * xv)],
  ];
  const chain = (t0: F) => {
    let t = t0;
    for (const [, op] of ops) {
      const next = op(t);
      if (t !== t0) t.dispose();
      t = next;
    }
    return t;
  };
  const { plan, value: y } = captureWith(rt, "chain of 10", () => chain(x));
  try {
    const perIntermediate = sizeClass(4 * n);
    const all = ops.length * perIntermediate;
    assert(
      plan.bytes < all,
      `the plan holds ${plan.bytes} bytes, not less than the ${all} bytes of its ${ops.length} ` +
        "intermediates: released intermediates were not reused within the capture",
    );
    // A chain needs two live buffers at a time (an op's input and output).
    assert(
      plan.bytes <= 2 * perIntermediate,
      `the plan holds ${plan.bytes} bytes for a chain that needs ${2 * perIntermediate}`,
    );
    for (let k = 0; k < 3; k++) {
      const values = rng.floats(n, -1.5, 1.5);
      rt.write(x.storage, values, "test: x");
      plan.replay();
      const got = await y.data();
      const eager = await compute(() => chain(f32(values, [n])));
      assertEqualArrays(got, eager.data, `chain replay ${k + 1} against eager ops`);
      const cpu = Array.from(values, (xv) => ops.reduce((v, [, , f]) => f(v, xv), xv));
      assertEqualArrays(got, cpu, `chain replay ${k + 1} against the CPU`);
    }
  } finally {
    y.dispose();
    plan.dispose();
    x.dispose();
  }
});

Deno.test("capture: Runtime.read during a capture rejects with a WgradError", async () => {
  const rt = await ready();
  const x = f32([1, -2, 3], [3]);
  let pending: Promise<unknown> | null = null;
  const plan = rt.capture("read inside", () => {
    const y = relu(x);
    pending = rt.read(y.storage, "y");
    y.dispose();
  });
  try {
    await assertRejectsWgrad(
      () => pending!,
      "value",
      ["captured", "read"],
      "Runtime.read during a capture",
    );
  } finally {
    plan.dispose();
    x.dispose();
  }
});

Deno.test("capture: Tensor.data() during a capture rejects with a WgradError", async () => {
  const rt = await ready();
  const x = f32([1, -2, 3], [3]);
  let pending: Promise<unknown> | null = null;
  let y: Tensor | null = null;
  const plan = rt.capture("data() inside", () => {
    y = relu(x);
    pending = y.data();
  });
  try {
    // The captured relu has not run: any values data() returned would be stale or garbage.
    await assertRejectsWgrad(
      () => pending!,
      "value",
      ["captured"],
      "Tensor.data() during a capture",
    );
  } finally {
    (y as Tensor | null)?.dispose();
    plan.dispose();
    x.dispose();
  }
});

Deno.test("capture: plan.dispose() and disposing the capture's tensors give every buffer back", async () => {
  const rt = await ready();
  const n = 1000;
  const x = f32(new Rng(33).floats(n, -1, 1), [n]);
  try {
    for (const order of ["tensors, then the plan", "the plan, then the tensors"]) {
      await flush();
      const before = memoryInfo().buffersInUse;
      const { plan, value } = captureWith(rt, `memory (${order})`, () => {
        // Constants, intermediates released during the capture, and two tensors kept.
        const a = mul(x, 3);
        const b = add(a, 0.5);
        a.dispose();
        const c = relu(b);
        b.dispose();
        const d = sub(c, 1);
        return [c, d];
      });
      assert(
        memoryInfo().buffersInUse > before,
        `${order}: the capture allocated no buffers (${memoryInfo().buffersInUse})`,
      );
      plan.replay();
      await Promise.all(value.map((t) => t.data()));
      if (order.startsWith("tensors")) {
        for (const t of value) t.dispose();
        plan.dispose();
      } else {
        plan.dispose();
        for (const t of value) t.dispose();
      }
      await flush();
      const after = memoryInfo().buffersInUse;
      assert(
        after === before,
        `${order}: buffersInUse is ${after} after disposing, ${before} before the capture`,
      );
    }
  } finally {
    x.dispose();
  }
});

Deno.test("capture: replay after dispose() throws a WgradError naming the plan", async () => {
  const rt = await ready();
  const x = f32([1, 2], [2]);
  const { plan, value } = captureWith(rt, "doomed step", () => neg(x));
  value.dispose();
  plan.dispose();
  plan.dispose(); // a second dispose is harmless
  try {
    assertWgradError(
      () => plan.replay(),
      "disposed",
      ["doomed step", "dispose"],
      "replay after dispose",
    );
  } finally {
    x.dispose();
  }
  await flush();
});
