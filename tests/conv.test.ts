/**
 * 2-D convolution (shaders/conv2d_strip.wgsl, shaders/conv2d_wgrad_strip.wgsl, and
 * shaders/conv2d.wgsl for strided input gradients; src/ops/conv.ts) against float64 references
 * (tests/reference_conv.ts): forward with every fused activation, odd sizes (H, W = 1, 5, 7, 13,
 * 27), channel counts 1, 3, 4, 5, 6, 16, 17, 37, 120 (one or several blocks of output channels,
 * vec4 or scalar loads and stores), kernels 1–5, strides 1 and 2, dilation 2, "same" with odd
 * total padding and "valid"; the input, weight and bias gradients against the
 * reference backward pass; central-difference gradient checks through the tape; the errors.
 *
 * Tolerances. u = 2⁻²⁴ is the f32 unit roundoff (EPS = 2u). An output of the implicit GEMM is a
 * sum of K = kh·kw·Cin products accumulated with fused multiply-adds (each rounding once) plus the
 * bias, in some order, so |ŷ − y| ≤ (K + 2)·u·Σ|x·w| (+|b|) (the first-order bound of recursive
 * summation, which holds for any order), plus 2⁻¹²⁶ per term for flushed products. Gradients are
 * sums of T terms (T = the number of products reaching the element) in any order (the weight
 * gradient is split into chunks whose partial sums are then added): |err| ≤ (T + 2)·u·Σ|terms|.
 * Activations add L·tol(z) (L bounds |f′|: 1 for relu, 1/4 sigmoid, 1 tanh) plus their own
 * rounding (as in tests/matmul.test.ts: exp is 3 + 2|x| ulps; sigmoid 2 ulps more, tanh 2 more
 * and 4 ulps of 1 absolute). A missing, doubled or misplaced term is ~Σ|x·w|/K: hundreds of
 * times these bounds. The gradient checks use tests/gradcheck.ts's allowance (f32 error of the
 * summed terms), with the activation's gradient error added where there is one.
 * @module
 */
import { grad, mul, sum, type Tensor } from "../mod.ts";
import {
  conv2d,
  conv2dInputGrad,
  type Conv2dOptions,
  conv2dWeightGrad,
  type ConvActivation,
} from "../src/ops/conv.ts";
import { gradCheck } from "./gradcheck.ts";
import {
  assertClose,
  assertShape,
  assertWgradError,
  computeAll,
  EPS,
  f32,
  Rng,
} from "./harness.ts";
import { conv2dGradRef, conv2dRef, type Window } from "./reference_conv.ts";

const U = EPS / 2;
const TINY = 2 ** -126;

/** One convolution: input and kernel shapes and the window. */
interface Case {
  x: [number, number, number, number];
  k: [number, number];
  co: number;
  s?: number | [number, number];
  d?: number;
  padding: "same" | "valid";
  act?: ConvActivation;
  bias?: boolean;
}

const CASES: readonly Case[] = [
  { x: [1, 1, 1, 1], k: [1, 1], co: 1, padding: "valid" },
  { x: [1, 1, 1, 3], k: [3, 3], co: 2, padding: "same", bias: true }, // all padding but the center
  { x: [2, 5, 5, 3], k: [3, 3], co: 5, padding: "same", act: "relu", bias: true },
  { x: [2, 7, 7, 3], k: [4, 4], co: 6, s: 2, padding: "same", bias: true }, // pad 1 top, 2 bottom
  { x: [1, 13, 13, 1], k: [5, 5], co: 6, padding: "same", act: "tanh", bias: true },
  { x: [2, 13, 7, 5], k: [5, 3], co: 17, s: 2, padding: "valid", act: "sigmoid", bias: true },
  { x: [1, 7, 5, 17], k: [3, 3], co: 3, d: 2, padding: "same", bias: true },
  { x: [2, 6, 6, 4], k: [2, 2], co: 8, padding: "same", act: "relu", bias: true }, // pad 0, 1
  { x: [1, 5, 13, 16], k: [1, 3], co: 16, s: [1, 2], padding: "valid" },
  { x: [3, 5, 5, 8], k: [3, 3], co: 12, d: 2, padding: "valid", bias: true },
  { x: [2, 9, 9, 4], k: [3, 3], co: 4, s: 2, padding: "same", act: "tanh", bias: true },
  { x: [2, 14, 14, 6], k: [5, 5], co: 16, padding: "valid", act: "relu", bias: true },
  { x: [2, 28, 28, 1], k: [5, 5], co: 6, padding: "same", act: "relu", bias: true },
  { x: [1, 7, 5, 5], k: [2, 5], co: 7, s: [2, 1], padding: "same", bias: true }, // odd pads
  // Several blocks of output channels, Cout % 4 ≠ 0 (guarded scalar stores, clamped columns).
  { x: [2, 9, 11, 3], k: [3, 3], co: 37, padding: "same", act: "relu", bias: true },
  // dx with Cin = 37 output channels (several blocks) and 12 inner channels read as vec4.
  { x: [1, 6, 7, 37], k: [2, 3], co: 12, padding: "valid", bias: true },
  // LeNet-shaped layers: rows of 23 and 7 outputs, Cout = 120 (weight gradient one kernel row
  // per block, dx with 120 inner channels).
  { x: [1, 27, 27, 6], k: [5, 5], co: 16, padding: "valid", act: "relu", bias: true },
  { x: [2, 11, 11, 16], k: [5, 5], co: 120, padding: "valid", bias: true },
];

function windowOf(c: Case): Window {
  const [sh, sw] = typeof c.s === "number" ? [c.s, c.s] : c.s ?? [1, 1];
  const d = c.d ?? 1;
  return { sh, sw, dh: d, dw: d, padding: c.padding };
}

function optionsOf(c: Case): Conv2dOptions {
  return { strides: c.s, dilation: c.d, padding: c.padding, activation: c.act };
}

function caseName(c: Case): string {
  const w = windowOf(c);
  return `conv2d x [${c.x.join(", ")}] * ${c.k[0]}×${c.k[1]}×${c.co} strides ${w.sh}×${w.sw} ` +
    `dilation ${w.dh} ${c.padding}${c.act ? ` ${c.act}` : ""}${c.bias ? " + bias" : ""}`;
}

interface Data {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array | null;
  ks: [number, number, number, number];
}

function dataOf(rng: Rng, c: Case): Data {
  const ks: [number, number, number, number] = [c.k[0], c.k[1], c.x[3], c.co];
  return {
    x: rng.floats(c.x.reduce((a, b) => a * b, 1), -1, 1),
    w: rng.floats(ks.reduce((a, b) => a * b, 1), -1, 1),
    b: c.bias ? rng.floats(c.co, -1, 1) : null,
    ks,
  };
}

const expUlps = (x: number): number => 3 + 2 * Math.abs(x);

/** The reference output of an activation and its tolerance, from z and z's tolerance. */
function activate(
  act: ConvActivation,
  z: Float64Array,
  tz: Float64Array,
): { y: Float64Array; tol: Float64Array } {
  const y = new Float64Array(z.length), tol = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const v = z[i];
    switch (act) {
      case "linear":
        y[i] = v;
        tol[i] = tz[i];
        break;
      case "relu":
        y[i] = Math.max(v, 0);
        tol[i] = tz[i];
        break;
      case "sigmoid":
        y[i] = 1 / (1 + Math.exp(-v));
        tol[i] = 0.25 * tz[i] + (expUlps(v) + 2) * EPS * y[i] + TINY;
        break;
      case "tanh":
        y[i] = Math.tanh(v);
        tol[i] = tz[i] + (expUlps(2 * v) + 2) * EPS * Math.abs(y[i]) + 4 * EPS;
        break;
      default:
        throw new Error(`no reference for ${act}`);
    }
  }
  return { y, tol };
}

/** The summation bound (T + 2)·u·Σ|terms| with T terms per element. */
const sumTol = (abs: Float64Array, terms: number): Float64Array =>
  abs.map((a) => (terms + 2) * U * a + (terms + 1) * TINY);

// ---------------------------------------------------------------------------------------------
// Forward

Deno.test("conv2d forward matches the float64 reference (odd sizes, strides, dilation, padding)", async () => {
  const rng = new Rng(0xc0);
  const data = CASES.map((c) => dataOf(rng, c));
  const outs = await computeAll(() =>
    CASES.map((c, i) =>
      conv2d(f32(data[i].x, c.x), f32(data[i].w, data[i].ks), {
        ...optionsOf(c),
        bias: data[i].b ? f32(data[i].b!, [c.co]) : null,
      })
    )
  );
  CASES.forEach((c, i) => {
    const d = data[i];
    const ref = conv2dRef(d.x, c.x, d.w, d.ks, windowOf(c), d.b);
    const label = caseName(c);
    assertShape(outs[i].shape, ref.shape, label);
    const k = d.ks[0] * d.ks[1] * d.ks[2];
    const { y, tol } = activate(c.act ?? "linear", ref.y, sumTol(ref.abs, k));
    assertClose(outs[i].data, y, { atol: tol, rtol: 0 }, label, ref.shape);
  });
});

Deno.test("conv2d: every fused activation with exact pre-activations", async () => {
  // Multiples of 1/8 and of 1/2: every product and partial sum is exact in f32.
  const rng = new Rng(0xc1);
  const xs = [2, 6, 5, 3] as const, ks = [3, 3, 3, 5] as const;
  const x = Float32Array.from({ length: 180 }, () => rng.int(-16, 16) / 8);
  const w = Float32Array.from({ length: 135 }, () => rng.int(-2, 2) / 2);
  const b = Float32Array.from({ length: 5 }, () => rng.int(-8, 8) / 4);
  const acts: ConvActivation[] = ["linear", "relu", "sigmoid", "tanh"];
  const outs = await computeAll(() =>
    acts.map((act) =>
      conv2d(f32(x, xs), f32(w, ks), { padding: "same", activation: act, bias: f32(b, [5]) })
    )
  );
  const ref = conv2dRef(x, xs, w, ks, { sh: 1, sw: 1, dh: 1, dw: 1, padding: "same" }, b);
  acts.forEach((act, i) => {
    const { y, tol } = activate(act, ref.y, new Float64Array(ref.y.length));
    assertClose(outs[i].data, y, { atol: tol, rtol: 0 }, `conv2d ${act}, exact z`, ref.shape);
  });
});

// ---------------------------------------------------------------------------------------------
// Backward against the reference

Deno.test("conv2d input and weight gradients match the float64 reference", async () => {
  const rng = new Rng(0xc2);
  const data = CASES.map((c) => dataOf(rng, c));
  const dys = CASES.map((c, i) => {
    const r = conv2dRef(data[i].x, c.x, data[i].w, data[i].ks, windowOf(c));
    return { dy: rng.floats(r.y.length, -1, 1), shape: r.shape };
  });
  const outs = await computeAll(() =>
    CASES.flatMap((c, i) => {
      const opts = { strides: c.s, dilation: c.d, padding: c.padding };
      const dy = f32(dys[i].dy, dys[i].shape);
      const dx = conv2dInputGrad(dy, f32(data[i].w, data[i].ks), c.x, opts);
      const { dw, db } = conv2dWeightGrad(f32(data[i].x, c.x), dy, data[i].ks, opts);
      return [dx, dw, db];
    })
  );
  CASES.forEach((c, i) => {
    const d = data[i];
    const ref = conv2dGradRef(d.x, c.x, d.w, d.ks, windowOf(c), dys[i].dy);
    const label = caseName(c);
    const [, ho, wo] = dys[i].shape;
    const [dx, dw, db] = outs.slice(3 * i, 3 * i + 3);
    assertShape(dx.shape, c.x, `${label}: dx`);
    assertShape(dw.shape, d.ks, `${label}: dw`);
    assertShape(db.shape, [c.co], `${label}: db`);
    const taps = d.ks[0] * d.ks[1];
    assertClose(
      dx.data,
      ref.dx,
      { atol: sumTol(ref.dxAbs, taps * c.co), rtol: 0 },
      `${label}: dx`,
      c.x,
    );
    const pixels = c.x[0] * ho * wo;
    assertClose(
      dw.data,
      ref.dk,
      { atol: sumTol(ref.dkAbs, pixels), rtol: 0 },
      `${label}: dw`,
      d.ks,
    );
    assertClose(db.data, ref.db, { atol: sumTol(ref.dbAbs, pixels), rtol: 0 }, `${label}: db`);
  });
});

Deno.test("conv2d records its gradients on the tape (dx, dw, db through relu)", async () => {
  const rng = new Rng(0xc3);
  const c: Case = { x: [2, 7, 6, 3], k: [3, 3], co: 5, s: 2, padding: "same", bias: true };
  const d = dataOf(rng, c);
  const win = windowOf(c);
  const fwd = conv2dRef(d.x, c.x, d.w, d.ks, win, d.b);
  const r = rng.floats(fwd.y.length, -1, 1);
  const x = f32(d.x, c.x), w = f32(d.w, d.ks), b = f32(d.b!, [c.co]), rt = f32(r, fwd.shape);
  const grads = await grad(
    () => sum(mul(conv2d(x, w, { strides: 2, padding: "same", bias: b, activation: "relu" }), rt)),
    [x, w, b],
  );
  const [gx, gw, gb] = await Promise.all(grads.map((g) => g.data()));
  for (const t of [...grads, x, w, b, rt]) t.dispose();
  // dz = r where z > 0: no output of this case has |z| below the forward tolerance.
  const dz = r.map((v, i) => (fwd.y[i] > 0 ? v : 0));
  for (let i = 0; i < fwd.y.length; i++) {
    if (Math.abs(fwd.y[i]) < 1e-4) throw new Error("case too close to relu's kink; reseed");
  }
  const ref = conv2dGradRef(d.x, c.x, d.w, d.ks, win, dz);
  const pixels = 2 * fwd.shape[1] * fwd.shape[2];
  assertClose(gx, ref.dx, { atol: sumTol(ref.dxAbs, 9 * c.co), rtol: 0 }, "tape dx", c.x);
  assertClose(gw, ref.dk, { atol: sumTol(ref.dkAbs, pixels), rtol: 0 }, "tape dw", d.ks);
  assertClose(gb, ref.db, { atol: sumTol(ref.dbAbs, pixels), rtol: 0 }, "tape db");
});

// ---------------------------------------------------------------------------------------------
// Gradient checks

const CHECKS: readonly Case[] = [
  { x: [2, 5, 5, 3], k: [3, 3], co: 4, padding: "same", bias: true },
  { x: [1, 7, 6, 2], k: [4, 3], co: 3, s: 2, padding: "same", bias: true },
  { x: [2, 7, 7, 4], k: [3, 3], co: 5, d: 2, padding: "valid", bias: true },
  { x: [1, 5, 5, 1], k: [5, 5], co: 6, padding: "same", bias: true },
  { x: [1, 6, 5, 3], k: [3, 2], co: 2, padding: "same", act: "tanh", bias: true },
];

for (const c of CHECKS) {
  Deno.test(`gradient check: ${caseName(c)}`, async () => {
    const rng = new Rng(0xc4 + c.x[1] * 7 + c.co);
    const d = dataOf(rng, c);
    const win = windowOf(c);
    const act = c.act ?? "linear";
    await gradCheck({
      label: caseName(c),
      inputs: [
        { data: d.x, shape: c.x },
        { data: d.w, shape: d.ks },
        { data: d.b!, shape: [c.co] },
      ],
      gpu: (x: Tensor<"f32">, w: Tensor<"f32">, b: Tensor<"f32">) =>
        conv2d(x, w, { ...optionsOf(c), bias: b }),
      ref: (x, w, b) => {
        const r = conv2dRef(x, c.x, w, d.ks, win, b);
        return { data: activate(act, r.y, new Float64Array(r.y.length)).y, shape: r.shape };
      },
      // tanh: dz = r·tanh′(ẑ) with ẑ off by the forward's error, |tanh″| ≤ 0.77, and exp's ulps.
      ulps: act === "tanh" ? 4 + 2 * (9 * c.x[3] + 2) / 2 + 16 : 4,
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Errors

Deno.test("conv2d rejects bad shapes and options with messages naming the op and shapes", () => {
  const x = f32(new Float32Array(2 * 5 * 5 * 3), [2, 5, 5, 3]);
  const w = f32(new Float32Array(3 * 3 * 3 * 4), [3, 3, 3, 4]);
  const w2 = f32(new Float32Array(3 * 3 * 2 * 4), [3, 3, 2, 4]);
  const x3 = f32(new Float32Array(75), [5, 5, 3]);
  const big = f32(new Float32Array(7 * 7 * 3), [7, 7, 3, 1]);
  try {
    assertWgradError(() => conv2d(x3, w), "shape", ["conv2d", "[5, 5, 3]", "rank 4"], "rank 3");
    assertWgradError(() => conv2d(x, x3), "shape", ["conv2d", "rank 4"], "kernel rank");
    assertWgradError(
      () => conv2d(x, w2),
      "shape",
      ["conv2d", "channel mismatch", "[2, 5, 5, 3]", "[3, 3, 2, 4]"],
      "channels",
    );
    assertWgradError(
      () => conv2d(x, big),
      "shape",
      ["conv2d", "larger", "[2, 5, 5, 3]", "[7, 7, 3, 1]"],
      "kernel larger than the input",
    );
    assertWgradError(
      () => conv2d(x, w, { dilation: 3 }),
      "shape",
      ["conv2d", "valid"],
      "dilated kernel larger than the input",
    );
    assertWgradError(
      () => conv2d(x, w, { strides: 0 }),
      "value",
      ["conv2d", "strides"],
      "stride 0",
    );
    assertWgradError(
      () => conv2d(x, w, { strides: [1, -2] }),
      "value",
      ["conv2d", "strides"],
      "negative stride",
    );
    assertWgradError(
      () => conv2d(x, w, { strides: 2, dilation: 2, padding: "same" }),
      "value",
      ["conv2d", "dilation"],
      "strides with dilation",
    );
    assertWgradError(
      () => conv2d(x, w, { padding: "full" as "same" }),
      "value",
      ["conv2d", "padding"],
      "padding",
    );
    assertWgradError(
      () => conv2d(x, w, { bias: f32([1, 2, 3], [3]) }),
      "shape",
      ["conv2d", "bias", "[4]"],
      "bias shape",
    );
    assertWgradError(
      () => conv2d(x, w, { activation: "softmax" as ConvActivation }),
      "value",
      ["conv2d", "activation"],
      "softmax",
    );
    assertWgradError(
      () => conv2d(f32([], [0, 5, 5, 3]), w),
      "shape",
      ["conv2d", "zero"],
      "empty batch",
    );
    assertWgradError(
      () => conv2dInputGrad(f32(new Float32Array(12), [1, 3, 1, 4]), w, [2, 5, 5, 3]),
      "shape",
      ["conv2dInputGrad", "[2, 3, 3, 4]"],
      "dy shape",
    );
  } finally {
    for (const t of [x, w, w2, x3, big]) t.dispose();
  }
});
