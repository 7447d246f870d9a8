/**
 * Pooling (shaders/pool.wgsl, shaders/pool_grad.wgsl, src/ops/pool.ts) against float64 references
 * (tests/reference_conv.ts): max and average pooling with odd sizes, windows 1–3, strides 1–3,
 * "same" (odd total padding included) and "valid", ties, gradients against the reference and
 * central differences, global pooling, and the errors.
 *
 * Tolerances (u = 2⁻²⁴, EPS = 2u). Max pooling and its gradient's routing are exact; a max-pool
 * input gradient sums T ≤ ⌈ph/sh⌉·⌈pw/sw⌉ output gradients: (T − 1)·u·Σ|dy|. An average is a sum
 * of T ≤ ph·pw elements and one division: (T + 1)·u·Σ|x|/T. Its gradient adds T' quotients
 * dy/count, each rounded once: (T' + 1)·u·Σ|dy/count|. Global pooling is the reduction ops'
 * (tests/reduce.test.ts's bounds): (R + 1)·u·Σ|x|/R for the mean over R = H·W elements.
 * @module
 */
import { grad, mul, sum, type Tensor } from "../mod.ts";
import {
  avgPool2d,
  globalAvgPool2d,
  globalMaxPool2d,
  maxPool2d,
  type Pool2dOptions,
} from "../src/ops/pool.ts";
import { gradCheck } from "./gradcheck.ts";
import { assertClose, assertShape, assertWgradError, EPS, EXACT, f32, Rng } from "./harness.ts";
import { pool2dGradRef, pool2dRef } from "./reference_conv.ts";

const U = EPS / 2;

interface Case {
  x: [number, number, number, number];
  pool: [number, number];
  strides?: [number, number];
  padding: "same" | "valid";
}

const CASES: readonly Case[] = [
  { x: [1, 1, 1, 1], pool: [1, 1], padding: "valid" },
  { x: [2, 5, 5, 3], pool: [2, 2], padding: "valid" },
  { x: [2, 5, 5, 3], pool: [2, 2], padding: "same" }, // total padding 1: at the bottom/right
  { x: [1, 7, 7, 5], pool: [3, 3], strides: [2, 2], padding: "same" },
  { x: [2, 13, 7, 17], pool: [3, 2], strides: [1, 1], padding: "same" }, // overlapping windows
  { x: [1, 13, 13, 1], pool: [3, 3], strides: [3, 2], padding: "valid" },
  { x: [3, 1, 7, 4], pool: [1, 3], strides: [1, 2], padding: "same" },
  { x: [2, 28, 28, 6], pool: [2, 2], padding: "valid" }, // LeNet
];

const strides = (c: Case): [number, number] => c.strides ?? c.pool;
const optionsOf = (c: Case): Pool2dOptions => ({
  poolSize: c.pool,
  strides: c.strides,
  padding: c.padding,
});
const nameOf = (kind: string, c: Case) =>
  `${kind} x [${c.x.join(", ")}] window ${c.pool.join("×")} strides ${
    strides(c).join("×")
  } ${c.padding}`;
const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Inputs with many ties: multiples of 1/4 in [−1, 1]. */
const tied = (rng: Rng, n: number) => Float32Array.from({ length: n }, () => rng.int(-4, 4) / 4);

for (const kind of ["max", "avg"] as const) {
  const op = kind === "max" ? maxPool2d : avgPool2d;
  Deno.test(`${kind}Pool2d forward and gradient match the float64 reference`, async () => {
    const rng = new Rng(kind === "max" ? 0x90 : 0x91);
    const xs = CASES.map((
      c,
    ) => (rng.next() < 0.5 ? tied(rng, sizeOf(c.x)) : rng.floats(sizeOf(c.x))));
    const refs = CASES.map((c, i) => {
      const [sh, sw] = strides(c);
      return pool2dRef(kind, xs[i], c.x, c.pool[0], c.pool[1], sh, sw, c.padding);
    });
    const dys = refs.map((r) => rng.floats(r.y.length));
    const outs: { data: Float32Array; shape: readonly number[] }[] = [];
    for (const [i, c] of CASES.entries()) {
      const x = f32(xs[i], c.x);
      const dyT = f32(dys[i], refs[i].shape);
      const y = op(x, optionsOf(c));
      const [dx] = await grad(() => sum(mul(op(x, optionsOf(c)), dyT)), [x]);
      const [yd, dxd] = await Promise.all([y.data(), dx.data()]);
      outs.push({ data: yd, shape: y.shape }, { data: dxd, shape: dx.shape });
      for (const t of [x, dyT, y, dx]) t.dispose();
    }
    CASES.forEach((c, i) => {
      const label = nameOf(`${kind}Pool2d`, c);
      const [sh, sw] = strides(c);
      const ref = refs[i];
      const [y, dx] = [outs[2 * i], outs[2 * i + 1]];
      assertShape(y.shape, ref.shape, label);
      if (kind === "max") {
        assertClose(y.data, ref.y, EXACT, label, ref.shape);
      } else {
        // Σ|x|/count ≤ 1 (inputs in [−1, 1]); ref.arg is the count.
        const tol = ref.arg.map((t) => (t + 1) * U);
        assertClose(y.data, ref.y, { atol: tol, rtol: 0 }, label, ref.shape);
      }
      const gref = pool2dGradRef(kind, xs[i], c.x, c.pool[0], c.pool[1], sh, sw, c.padding, dys[i]);
      // Each input element receives at most ⌈ph/sh⌉·⌈pw/sw⌉ terms of magnitude ≤ 1.
      const t = Math.ceil(c.pool[0] / sh) * Math.ceil(c.pool[1] / sw);
      assertClose(dx.data, gref, { atol: (t + 1) * U * t, rtol: 0 }, `${label}: dx`, c.x);
    });
  });
}

Deno.test("maxPool2d routes a tie's gradient to the first maximum in the window", async () => {
  // One window of four equal values, and one whose maximum appears twice (second and fourth).
  const x = [5, 5, 5, 5, 1, 3, 2, 3];
  const xt = f32(x, [2, 2, 2, 1]), w = f32([10, 20], [2, 1, 1, 1]);
  const [dx] = await grad(() => sum(mul(maxPool2d(xt), w)), [xt]);
  const outs = [{ data: await dx.data() }];
  for (const t of [xt, w, dx]) t.dispose();
  assertClose(outs[0].data, [10, 0, 0, 0, 0, 20, 0, 0], EXACT, "tie routing");
});

const CHECKS: readonly Case[] = [
  { x: [2, 5, 5, 3], pool: [2, 2], padding: "same" },
  { x: [1, 7, 6, 2], pool: [3, 3], strides: [2, 1], padding: "same" },
  { x: [1, 5, 7, 2], pool: [3, 2], strides: [1, 2], padding: "valid" },
];

for (const kind of ["max", "avg"] as const) {
  for (const c of CHECKS) {
    Deno.test(`gradient check: ${nameOf(`${kind}Pool2d`, c)}`, async () => {
      const n = sizeOf(c.x);
      // Distinct values at least 2/n apart, so that no difference step changes a maximum.
      const perm = new Rng(0x92 + n).permutation(n);
      const x = Float32Array.from(perm, (v) => (2 * v + 1) / n - 1);
      const [sh, sw] = strides(c);
      await gradCheck({
        label: nameOf(kind, c),
        inputs: [{ data: x, shape: c.x }],
        gpu: (t: Tensor<"f32">) => (kind === "max" ? maxPool2d : avgPool2d)(t, optionsOf(c)),
        ref: (v) => {
          const r = pool2dRef(kind, v, c.x, c.pool[0], c.pool[1], sh, sw, c.padding);
          return { data: r.y, shape: r.shape };
        },
        stepFloor: 0.01,
        step: 1e-3,
      });
    });
  }
}

Deno.test("globalAvgPool2d and globalMaxPool2d match the reference, with gradients", async () => {
  const rng = new Rng(0x93);
  const shape = [3, 5, 7, 6] as const;
  const x = tied(rng, sizeOf(shape));
  const r = rng.floats(3 * 6);
  const xt = f32(x, shape), rt = f32(r, [3, 6]);
  const ga = globalAvgPool2d(xt), gm = globalMaxPool2d(xt);
  const [dA] = await grad(() => sum(mul(globalAvgPool2d(xt), rt)), [xt]);
  const [dM] = await grad(() => sum(mul(globalMaxPool2d(xt), rt)), [xt]);
  const outs = [];
  for (const t of [ga, gm, dA, dM]) outs.push({ data: await t.data(), shape: [...t.shape] });
  for (const t of [xt, rt, ga, gm, dA, dM]) t.dispose();
  const avg = new Float64Array(18), mx = new Float64Array(18).fill(-Infinity);
  for (let n = 0; n < 3; n++) {
    for (let p = 0; p < 35; p++) {
      for (let c = 0; c < 6; c++) {
        const v = x[(n * 35 + p) * 6 + c];
        avg[n * 6 + c] += v / 35;
        mx[n * 6 + c] = Math.max(mx[n * 6 + c], v);
      }
    }
  }
  const da = new Float64Array(x.length), dm = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const o = Math.floor(i / 210) * 6 + (i % 6);
    da[i] = r[o] / 35;
    let ties = 0;
    for (let p = 0; p < 35; p++) {
      if (x[(Math.floor(i / 210) * 35 + p) * 6 + (i % 6)] === mx[o]) ties++;
    }
    dm[i] = x[i] === mx[o] ? r[o] / ties : 0;
  }
  assertShape(outs[0].shape, [3, 6], "globalAvgPool2d");
  assertShape(outs[1].shape, [3, 6], "globalMaxPool2d");
  assertClose(outs[0].data, avg, { atol: 37 * U, rtol: 0 }, "globalAvgPool2d");
  assertClose(outs[1].data, mx, EXACT, "globalMaxPool2d");
  assertClose(outs[2].data, da, { atol: 0, rtol: 2 * EPS }, "globalAvgPool2d gradient");
  assertClose(
    outs[3].data,
    dm,
    { atol: 0, rtol: 2 * EPS },
    "globalMaxPool2d gradient (ties share)",
  );
});

Deno.test("pooling rejects bad shapes and options with messages naming the op and shapes", () => {
  const x = f32(new Float32Array(2 * 5 * 5 * 3), [2, 5, 5, 3]);
  const x3 = f32(new Float32Array(75), [5, 5, 3]);
  try {
    assertWgradError(() => maxPool2d(x3), "shape", ["maxPool2d", "[5, 5, 3]", "rank 4"], "rank");
    assertWgradError(() => globalAvgPool2d(x3), "shape", ["globalAvgPool2d", "rank 4"], "rank");
    assertWgradError(() => globalMaxPool2d(x3), "shape", ["globalMaxPool2d", "rank 4"], "rank");
    assertWgradError(
      () => avgPool2d(x, { poolSize: 6 }),
      "shape",
      ["avgPool2d", "6×6", "[2, 5, 5, 3]"],
      "window larger than the input",
    );
    assertWgradError(
      () => maxPool2d(x, { poolSize: 0 }),
      "value",
      ["maxPool2d", "poolSize"],
      "pool size 0",
    );
    assertWgradError(
      () => maxPool2d(x, { strides: [1, -1] }),
      "value",
      ["maxPool2d", "strides"],
      "negative stride",
    );
    assertWgradError(
      () => avgPool2d(x, { padding: "causal" as "same" }),
      "value",
      ["avgPool2d", "padding"],
      "padding",
    );
    assertWgradError(
      () => maxPool2d(f32([], [2, 0, 5, 3])),
      "shape",
      ["maxPool2d", "zero"],
      "zero dimension",
    );
  } finally {
    x.dispose();
    x3.dispose();
  }
});
