/**
 * 2-D convolution in NHWC layout with Keras's kernel layout `[kh, kw, Cin, Cout]`: `conv2d` (with
 * a fused bias and activation), its input gradient and its weight gradient, all three implicit
 * GEMMs (shaders/conv2d.wgsl, shaders/conv2d_wgrad.wgsl): no im2col buffer is ever made.
 * `"same"` and `"valid"` padding follow TensorFlow exactly, including the extra row or column at
 * the bottom or right when the total padding is odd. `conv2d` records its gradient on the tape.
 * @module
 */
import activationSrc from "../../shaders/activation_vec4.wgsl" with { type: "text" };
import convSrc from "../../shaders/conv2d.wgsl" with { type: "text" };
import wgradSrc from "../../shaders/conv2d_wgrad.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { schedule, type Storage } from "../gpu/runtime.ts";
import { keep, makeTensor, type Tensor } from "../tensor.ts";
import { type Activation, ACTIVATIONS } from "./matmul.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./transform.ts";
import { unaryGrad, type UnaryOp } from "./unary.ts";
import { grid } from "./util.ts";

const CONV = { name: "conv2d", code: activationSrc + convSrc };
const WGRAD = { name: "conv2d_wgrad", code: wgradSrc };

/** A size given once for both spatial axes, or as `[height, width]`. */
export type Size2 = number | readonly [number, number];

/** Padding as in TensorFlow and Keras: `"valid"` (none) or `"same"` (output = ⌈input/stride⌉). */
export type Padding = "same" | "valid";

/** An activation {@linkcode conv2d} fuses into its epilogue (every `linear` one but softmax). */
export type ConvActivation = Exclude<Activation, "softmax">;

/** Options of {@linkcode conv2d}. */
export interface Conv2dOptions {
  /** Strides along height and width (default 1). */
  strides?: Size2;
  /** `"valid"` (default, as Keras) or `"same"`. */
  padding?: Padding;
  /** Dilation rate along height and width (Keras's `dilation_rate`, default 1). */
  dilation?: Size2;
  /** A bias `[Cout]` added to every output pixel, or null (default). */
  bias?: Tensor<"f32"> | null;
  /** The activation applied after the bias (default `"linear"`). */
  activation?: ConvActivation;
  /** Slope of `"elu"` (default 1) and `"leakyRelu"` (default 0.2) for negative inputs. */
  alpha?: number;
}

/** The geometry options shared by the gradient functions. */
export type Conv2dGeometryOptions = Pick<Conv2dOptions, "strides" | "padding" | "dilation">;

/** Padding along one axis: the output size and the rows added before and after. */
export interface AxisPadding {
  /** Output size along the axis. */
  out: number;
  /** Padding before (top or left). */
  before: number;
  /** Padding after (bottom or right); it gets the extra element when the total is odd. */
  after: number;
}

/**
 * The output size and padding along one axis, exactly as TensorFlow computes them: for `"same"`,
 * out = ⌈size/stride⌉ and pad_total = max((out − 1)·stride + (k − 1)·dilation + 1 − size, 0),
 * split as ⌊pad_total/2⌋ before and the rest after; for `"valid"`,
 * out = ⌊(size − (k − 1)·dilation − 1)/stride⌋ + 1 (may be ≤ 0: callers check).
 */
export function axisPadding(
  size: number,
  k: number,
  stride: number,
  dilation: number,
  padding: Padding,
): AxisPadding {
  const eff = (k - 1) * dilation + 1;
  if (padding === "same") {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + eff - size, 0);
    const before = Math.floor(total / 2);
    return { out, before, after: total - before };
  }
  return { out: Math.floor((size - eff) / stride) + 1, before: 0, after: 0 };
}

/** The full geometry of a convolution. */
export interface Conv2dGeometry {
  /** Batch size. */
  n: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Input channels. */
  cin: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Output channels. */
  cout: number;
  /** Output height. */
  ho: number;
  /** Output width. */
  wo: number;
  /** Stride along the height. */
  sh: number;
  /** Stride along the width. */
  sw: number;
  /** Dilation along the height. */
  dh: number;
  /** Dilation along the width. */
  dw: number;
  /** Padding at the top (the bottom gets what remains). */
  pt: number;
  /** Padding at the left (the right gets what remains). */
  pl: number;
}

/** Reads a positive integer pair option. */
export function pair(
  op: string,
  name: string,
  v: Size2 | undefined,
  dflt: number,
): [number, number] {
  const p: readonly unknown[] = v === undefined
    ? [dflt, dflt]
    : typeof v === "number"
    ? [v, v]
    : Array.isArray(v)
    ? v
    : [];
  if (p.length !== 2 || !p.every((d) => typeof d === "number" && Number.isInteger(d) && d > 0)) {
    throw new WgradError(
      "value",
      `${op}: ${name} must be a positive integer or a pair of them, got ${JSON.stringify(v)}`,
    );
  }
  return [p[0] as number, p[1] as number];
}

/** Reads the padding option. */
export function paddingOf(op: string, v: unknown): Padding {
  if (v === undefined) return "valid";
  if (v !== "same" && v !== "valid") {
    throw new WgradError(
      "value",
      `${op}: padding must be "same" or "valid", got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function checkTensor(op: string, t: unknown, name: string): asserts t is Tensor {
  if (t === null || typeof t !== "object" || !("shape" in t) || !("dtype" in t)) {
    throw new WgradError("value", `${op}: ${name} is not a tensor (got ${String(t)})`);
  }
  (t as Tensor).assertLive(op);
  if ((t as Tensor).dtype !== "f32") {
    throw new WgradError(
      "dtype",
      `${op}: ${name} ${(t as Tensor).describe()} has dtype ${(t as Tensor).dtype}; ${op} takes ` +
        `f32 tensors`,
    );
  }
}

/**
 * Validates a convolution's shapes and options and computes its geometry. `xShape` is
 * `[N, H, W, Cin]` and `wShape` `[kh, kw, Cin, Cout]`; `what` describes them for messages.
 */
export function conv2dGeometry(
  op: string,
  xShape: readonly number[],
  wShape: readonly number[],
  options: Conv2dGeometryOptions,
  what = `x ${fmtShape(xShape)} and kernel ${fmtShape(wShape)}`,
): Conv2dGeometry {
  if (xShape.length !== 4) {
    throw new WgradError(
      "shape",
      `${op}: the input must have rank 4 [batch, height, width, channels], got ${what}`,
    );
  }
  if (wShape.length !== 4) {
    throw new WgradError(
      "shape",
      `${op}: the kernel must have rank 4 [kh, kw, in channels, out channels], got ${what}`,
    );
  }
  const [n, h, w, cin] = xShape;
  const [kh, kw, kc, cout] = wShape;
  if ([n, h, w, cin, kh, kw, kc, cout].some((d) => d === 0)) {
    throw new WgradError("shape", `${op}: zero-size dimension in ${what}`);
  }
  if (kc !== cin) {
    throw new WgradError(
      "shape",
      `${op}: channel mismatch: ${what}: the input has ${cin} channels, the kernel expects ${kc}`,
    );
  }
  const [sh, sw] = pair(op, "strides", options.strides, 1);
  const [dh, dw] = pair(op, "dilation", options.dilation, 1);
  if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1)) {
    throw new WgradError(
      "value",
      `${op}: strides ${fmtShape([sh, sw])} > 1 together with dilation ${
        fmtShape([dh, dw])
      } > 1 is not supported (as in TensorFlow)`,
    );
  }
  const padding = paddingOf(op, options.padding);
  const py = axisPadding(h, kh, sh, dh, padding);
  const px = axisPadding(w, kw, sw, dw, padding);
  if (py.out <= 0 || px.out <= 0) {
    throw new WgradError(
      "shape",
      `${op}: the kernel (${(kh - 1) * dh + 1}×${(kw - 1) * dw + 1} with dilation) is larger ` +
        `than the input (${h}×${w}) under "valid" padding: ${what} give an empty output`,
    );
  }
  return {
    n,
    h,
    w,
    cin,
    kh,
    kw,
    cout,
    ho: py.out,
    wo: px.out,
    sh,
    sw,
    dh,
    dw,
    pt: py.before,
    pl: px.before,
  };
}

// ---------------------------------------------------------------------------------------------
// Kernel launches

// Binding helpers (as in src/ops/matmul.ts): a vector binding reads 4 aligned elements per load;
// a scalar one reads 4 elements clamped to `last`.
function loader(fn: string, name: string, binding: number, vec: boolean): string {
  return vec
    ? `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec4<f32>>;
fn ${fn}(i: u32, last: u32) -> vec4<f32> { return ${name}[i >> 2u]; }
`
    : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn ${fn}(i: u32, last: u32) -> vec4<f32> {
  return vec4(${name}[i], ${name}[min(i + 1u, last)], ${name}[min(i + 2u, last)], ${name}[min(i + 3u, last)]);
}
`;
}

function storer(fn: string, name: string, binding: number, vec: boolean): string {
  return vec
    ? `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<vec4<f32>>;
fn ${fn}(i: u32, v: vec4<f32>, count: u32) { ${name}[i >> 2u] = v; }
`
    : `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<f32>;
fn ${fn}(i: u32, v: vec4<f32>, count: u32) {
  ${name}[i] = v.x;
  if (count > 1u) { ${name}[i + 1u] = v.y; }
  if (count > 2u) { ${name}[i + 2u] = v.z; }
  if (count > 3u) { ${name}[i + 3u] = v.w; }
}
`;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const fields = (name: string, n: number, type: string): string =>
  range(n).map((i) => `  ${name}${i}: ${type},\n`).join("");

/**
 * The straight-line part of shaders/conv2d.wgsl for a block of `rows` × 4·`c4` outputs: the
 * structs holding the block in registers and the functions that fill them (documented there).
 */
function convBlockCode(rows: number, c4: number): string {
  const acc = rows * c4;
  const rs = range(rows);
  let s = `const ROWS = ${rows}u;\nconst C4 = ${c4}u;\n`;
  s += `struct Acc {\n${fields("v", acc, "vec4<f32>")}}\n`;
  s += `struct Pix {\n${fields("p", rows, "vec3<u32>")}}\n`;
  s += `struct Offs {\n${fields("o", rows, "i32")}}\n`;
  s += `struct ARows {\n${fields("a", rows, "vec4<f32>")}}\n`;
  s += `struct BTile {\n${fields("g", c4, "Quad")}}\n`;
  s += `fn pixels_of(row0: u32) -> Pix {\n  return Pix(${
    rs.map((r) => `decode(row0 + ${r}u)`).join(", ")
  });\n}\n`;
  s += `fn offsets_of(q: Pix, ky: u32, kx: u32) -> Offs {\n  return Offs(${
    rs.map((r) => `source_pixel(q.p${r}.x, q.p${r}.y, q.p${r}.z, ky, kx)`).join(", ")
  });\n}\n`;
  s += `fn load_rows(o: Offs, c: u32) -> ARows {\n  return ARows(${
    rs.map((r) => `load_row(o.o${r}, c)`).join(", ")
  });\n}\n`;
  s += `fn load_b(t: u32, c: u32, col0: u32) -> BTile {\n  return BTile(${
    range(c4).map((j) => `b_group(t, c, col0 + ${4 * j}u)`).join(", ")
  });\n}\n`;
  s += `fn mac(acc: Acc, a: ARows, b: BTile) -> Acc {\n  var r = acc;\n`;
  for (const r of rs) {
    for (let j = 0; j < c4; j++) {
      const v = `r.v${r * c4 + j}`, x = `a.a${r}`, g = `b.g${j}`;
      s += `  ${v} = fma(vec4(${x}.w), ${g}.k3, fma(vec4(${x}.z), ${g}.k2, fma(vec4(${x}.y), ` +
        `${g}.k1, fma(vec4(${x}.x), ${g}.k0, ${v}))));\n`;
    }
  }
  s += `  return r;\n}\n`;
  s += `fn acc_array(acc: Acc) -> array<vec4<f32>, ${acc}> {\n  return array<vec4<f32>, ${acc}>(${
    range(acc).map((i) => `acc.v${i}`).join(", ")
  });\n}\n`;
  return s;
}

/** The straight-line part of shaders/conv2d_wgrad.wgsl (documented there). */
function wgradBlockCode(rows: number, c4: number, vecX: boolean, vecDy: boolean): string {
  const acc = rows * c4;
  const rs = range(rows), quads = range(rows / 4), js = range(c4);
  let s = `const ROWS = ${rows}u;\nconst C4 = ${c4}u;\nconst VEC_X = ${vecX};\n` +
    `const VEC_DY = ${vecDy};\n`;
  s += `struct Acc {\n${fields("v", acc, "vec4<f32>")}}\n`;
  s += `struct Taps {\n${fields("t", rows, "vec3<i32>")}}\n`;
  s += `struct Quads {\n${fields("q", rows / 4, "vec4<f32>")}}\n`;
  s += `struct BRow {\n${fields("b", c4, "vec4<f32>")}}\n`;
  s += `fn taps_of(row0: u32) -> Taps {\n  return Taps(${
    rs.map((r) => `tap_of(row0 + ${r}u)`).join(", ")
  });\n}\n`;
  const quad = (q: number) =>
    vecX
      ? `x_four(nb, by, bx, t.t${4 * q})`
      : `vec4(${range(4).map((i) => `x_one(nb, by, bx, t.t${4 * q + i})`).join(", ")})`;
  s += `fn load_quads(t: Taps, nb: u32, by: i32, bx: i32) -> Quads {\n  return Quads(${
    quads.map(quad).join(", ")
  });\n}\n`;
  const col = (j: number) =>
    vecDy ? `min(col0 + ${4 * j}u, p.cout - 4u)` : `min(col0 + ${4 * j}u, p.cout - 1u)`;
  s += `fn load_brow(drow: u32, col0: u32) -> BRow {\n  return BRow(${
    js.map((j) => `ld_dy(drow + ${col(j)}, drow + p.cout - 1u)`).join(", ")
  });\n}\n`;
  s += `fn add_brow(a: BRow, b: BRow) -> BRow {\n  return BRow(${
    js.map((j) => `a.b${j} + b.b${j}`).join(", ")
  });\n}\n`;
  s += `fn wmac(acc: Acc, a: Quads, b: BRow) -> Acc {\n  var r = acc;\n`;
  const lane = ["x", "y", "z", "w"];
  for (const r of rs) {
    for (const j of js) {
      const v = `r.v${r * c4 + j}`;
      s += `  ${v} = fma(vec4(a.q${r >> 2}.${lane[r & 3]}), b.b${j}, ${v});\n`;
    }
  }
  s += `  return r;\n}\n`;
  s += `fn acc_array(acc: Acc) -> array<vec4<f32>, ${acc}> {\n  return array<vec4<f32>, ${acc}>(${
    range(acc).map((i) => `acc.v${i}`).join(", ")
  });\n}\n`;
  s += `fn brow_array(b: BRow) -> array<vec4<f32>, ${c4}> {\n  return array<vec4<f32>, ${c4}>(${
    js.map((j) => `b.b${j}`).join(", ")
  });\n}\n`;
  return s;
}

/** Column groups of 4 per invocation for `co` output channels. */
function colGroups(co: number): number {
  return Math.min(4, Math.ceil(co / 4));
}

interface ConvLaunch {
  /** 0: forward (src = x, out = y); 1: input gradient (src = dy, out = dx). */
  mode: 0 | 1;
  src: Tensor;
  w: Tensor;
  bias: Tensor | null;
  g: Conv2dGeometry;
  act: ConvActivation;
  alpha: number;
  keepZ: boolean;
  label: string;
}

/** Records the forward or input-gradient kernel; returns the output (and the pre-activation). */
function convGemm(c: ConvLaunch): { y: Tensor<"f32">; z: Tensor<"f32"> | null } {
  const { g, mode } = c;
  const outH = mode === 0 ? g.ho : g.h, outW = mode === 0 ? g.wo : g.w;
  const srcH = mode === 0 ? g.h : g.ho, srcW = mode === 0 ? g.w : g.wo;
  const ci = mode === 0 ? g.cin : g.cout, co = mode === 0 ? g.cout : g.cin;
  const shape = [g.n, outH, outW, co];
  const y = makeTensor(shape, "f32");
  const z = c.keepZ ? makeTensor(shape, "f32") : null;
  const m = g.n * outH * outW;
  const c4 = colGroups(co);
  const rows = c4 <= 2 ? 16 : 8;
  const colBlocks = Math.ceil(co / (4 * c4));
  const blocks = Math.ceil(m / rows) * colBlocks;
  schedule((rt) => {
    const ys = rt.alloc(m * co * 4, c.label);
    y.setStorage(ys);
    const zs = z ? rt.alloc(m * co * 4, `${c.label} (pre-activation)`) : null;
    if (z && zs) z.setStorage(zs);
    const vecA = ci % 4 === 0;
    const vecB = mode === 0 ? co % 4 === 0 : ci % 4 === 0;
    const vecY = co % 4 === 0;
    const prefix = convBlockCode(rows, c4) + `const VEC_A = ${vecA};\nconst VEC_B = ${vecB};\n` +
      loader("ld_a", "src", 0, vecA) + loader("ld_b", "wt", 1, vecB) +
      storer("st_y", "y", 2, vecY) +
      (zs ? storer("st_z", "z", 5, vecY) : `fn st_z(i: u32, v: vec4<f32>, count: u32) {}\n`);
    const gr = grid(blocks, 8);
    const u = new Uint32Array([
      outH,
      outW,
      srcH,
      srcW,
      ci,
      co,
      g.kh,
      g.kw,
      g.sh,
      g.sw,
      g.dh,
      g.dw,
      g.pt,
      g.pl,
      m,
      colBlocks,
      blocks,
      gr.stride,
      c.bias ? 1 : 0,
      0,
    ]);
    new Float32Array(u.buffer)[19] = c.alpha;
    // Without a bias, binding 4 repeats the source (read-only, never read).
    const bindings: (Storage | Uint32Array)[] = [
      c.src.storage,
      c.w.storage,
      ys,
      u,
      (c.bias ?? c.src).storage,
    ];
    if (zs) bindings.push(zs);
    rt.dispatch({
      kernel: CONV,
      prefix,
      constants: { MODE: mode, C_TAIL: ci % 4 === 0 ? 0 : 1, ACT: ACTIVATIONS[c.act] },
      bindings,
      workgroups: gr.groups,
      label: c.label,
    });
  });
  return { y, z };
}

/** Rows of dw per invocation of the weight-gradient kernel. */
const WGRAD_ROWS = 8;
/** Invocations the weight-gradient kernel aims for (split along the pixels to get them). */
const WGRAD_TARGET = 512;
/** The fewest pixels an invocation of the weight-gradient kernel sums. */
const WGRAD_MIN_CHUNK = 32;

/**
 * Records the weight-gradient kernel and the reduction of its partial sums: dw `[kh, kw, Cin,
 * Cout]` and db `[Cout]` (the column sums of dy).
 */
function weightGrad(
  x: Tensor,
  dy: Tensor,
  g: Conv2dGeometry,
  label: string,
): { dw: Tensor<"f32">; db: Tensor<"f32"> } {
  const rowsTotal = g.kh * g.kw * g.cin;
  const pixels = g.n * g.ho * g.wo;
  const c4 = colGroups(g.cout);
  const colBlocks = Math.ceil(g.cout / (4 * c4));
  const blocks = Math.ceil(rowsTotal / WGRAD_ROWS) * colBlocks;
  let splits = Math.max(
    1,
    Math.min(Math.ceil(WGRAD_TARGET / blocks), Math.ceil(pixels / WGRAD_MIN_CHUNK)),
  );
  const chunk = Math.ceil(pixels / splits);
  splits = Math.ceil(pixels / chunk);
  const part = makeTensor([splits, rowsTotal * g.cout], "f32");
  const colsum = makeTensor([splits, g.cout], "f32");
  const total = blocks * splits;
  schedule((rt) => {
    const ps = rt.alloc(splits * rowsTotal * g.cout * 4, `${label} (partial sums)`);
    part.setStorage(ps);
    const cs = rt.alloc(splits * g.cout * 4, `${label} (partial bias sums)`);
    colsum.setStorage(cs);
    const vecX = g.cin % 4 === 0;
    const vecDy = g.cout % 4 === 0;
    const prefix = wgradBlockCode(WGRAD_ROWS, c4, vecX, vecDy) +
      (vecX
        ? `@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
fn x_at(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn x_quad(i: u32) -> vec4<f32> { return x[i >> 2u]; }
`
        : `@group(0) @binding(0) var<storage, read> x: array<f32>;
fn x_at(i: u32) -> f32 { return x[i]; }
fn x_quad(i: u32) -> vec4<f32> { return vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }
`) +
      loader("ld_dy", "dy", 1, vecDy);
    const gr = grid(total, 8);
    const u = new Uint32Array([
      g.h,
      g.w,
      g.cin,
      g.ho,
      g.wo,
      g.cout,
      g.kw,
      g.sh,
      g.sw,
      g.dh,
      g.dw,
      g.pt,
      g.pl,
      rowsTotal,
      pixels,
      chunk,
      colBlocks,
      blocks,
      total,
      gr.stride,
    ]);
    rt.dispatch({
      kernel: WGRAD,
      prefix,
      bindings: [x.storage, dy.storage, ps, u, cs],
      workgroups: gr.groups,
      label,
    });
  });
  const wShape = [g.kh, g.kw, g.cin, g.cout];
  let dw: Tensor<"f32">, db: Tensor<"f32">;
  if (splits === 1) {
    dw = reshape(part, wShape);
    db = reshape(colsum, [g.cout]);
  } else {
    const s = sum(part, 0);
    dw = reshape(s, wShape);
    s.dispose();
    db = sum(colsum, 0);
  }
  part.dispose();
  colsum.dispose();
  return { dw, db };
}

// ---------------------------------------------------------------------------------------------
// Public ops

/** The unary op whose gradient kernel serves each element-wise activation. */
const UNARY_OF: Partial<Record<ConvActivation, UnaryOp>> = {
  relu: "relu",
  sigmoid: "sigmoid",
  tanh: "tanh",
  elu: "elu",
  leakyRelu: "leakyRelu",
  gelu: "gelu",
  geluTanh: "geluTanh",
};

/** Whether the activation's gradient needs the pre-activation (as in src/ops/matmul.ts). */
function needsZ(act: ConvActivation, alpha: number): boolean {
  switch (act) {
    case "linear":
    case "relu":
      return false;
    case "elu":
    case "leakyRelu":
      return !(alpha > 0);
    default:
      return true;
  }
}

function describeConv(op: string, x: Tensor, w: Tensor, g: Conv2dGeometry): string {
  return `${op} ${fmtShape(x.shape)} * ${fmtShape(w.shape)} (strides ${g.sh}×${g.sw}, ` +
    `dilation ${g.dh}×${g.dw}, pad ${g.pt},${g.pl})`;
}

/**
 * A 2-D convolution, `act(conv(x, w) + bias)`, as Keras's `Conv2D` computes it (channels last).
 *
 * `x` is `[N, H, W, Cin]`, `w` is `[kh, kw, Cin, Cout]` (Keras's kernel layout), the result is
 * `[N, Ho, Wo, Cout]`. With `padding: "valid"` (the default) Ho = ⌊(H − (kh − 1)·dilation − 1) /
 * stride⌋ + 1; with `"same"` Ho = ⌈H/stride⌉ and the padding is placed as TensorFlow places it
 * (⌊total/2⌋ at the top, the rest at the bottom; the same along the width). The bias add and the
 * activation run in the kernel's epilogue.
 *
 * The kernel is an implicit GEMM, [N·Ho·Wo, kh·kw·Cin] · [kh·kw·Cin, Cout], whose left operand is
 * gathered from `x` as it is read. The gradient is recorded on the tape: the activation's
 * gradient, then dx (the transposed convolution, {@linkcode conv2dInputGrad}), dw and db
 * ({@linkcode conv2dWeightGrad}, one kernel for both).
 *
 * ```ts
 * const y = conv2d(x, w, { padding: "same", bias: b, activation: "relu" });
 * ```
 * @throws {WgradError} `shape` when a rank is not 4, the channels of `x` and `w` differ, the bias
 * is not `[Cout]`, a dimension is 0, or the kernel does not fit the input under `"valid"`;
 * `value` for a non-positive stride or dilation, strides > 1 with dilation > 1, an unknown
 * padding or activation; `dtype` for a tensor that is not f32. Messages name the op and shapes.
 */
export function conv2d(
  x: Tensor<"f32">,
  w: Tensor<"f32">,
  options: Conv2dOptions = {},
): Tensor<"f32"> {
  checkTensor("conv2d", x, "x");
  checkTensor("conv2d", w, "w");
  const bias = options.bias ?? null;
  if (bias !== null) checkTensor("conv2d", bias, "bias");
  const activation = options.activation ?? "linear";
  if (!Object.hasOwn(ACTIVATIONS, activation) || activation === ("softmax" as string)) {
    throw new WgradError(
      "value",
      `conv2d: unknown activation ${JSON.stringify(activation)}; known activations: ${
        Object.keys(UNARY_OF).concat("linear").map((s) => `"${s}"`).join(", ")
      }`,
    );
  }
  const alpha = options.alpha ?? (activation === "elu" ? 1 : 0.2);
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) {
    throw new WgradError("value", `conv2d: alpha must be a finite number, got ${String(alpha)}`);
  }
  const g = conv2dGeometry(
    "conv2d",
    x.shape,
    w.shape,
    options,
    `x ${x.describe()} and w ${w.describe()}`,
  );
  if (bias !== null && (bias.rank !== 1 || bias.shape[0] !== g.cout)) {
    throw new WgradError(
      "shape",
      `conv2d: the bias ${bias.describe()} must have shape [${g.cout}] for x ${x.describe()} ` +
        `and w ${w.describe()}`,
    );
  }
  const inputs = bias ? [x, w, bias] : [x, w];
  const rec = recording(inputs);
  const label = describeConv(
    `conv2d${activation === "linear" ? "" : ` (${activation})`}`,
    x,
    w,
    g,
  );
  const r = convGemm({
    mode: 0,
    src: x,
    w,
    bias,
    g,
    act: activation,
    alpha,
    keepZ: rec && needsZ(activation, alpha),
    label,
  });
  const y = r.y;
  const z = r.z ? keep(r.z) : null;
  if (rec) {
    const needX = recording([x]),
      needW = recording([w]),
      needB = bias !== null && recording([bias]);
    record("conv2d", inputs, y, (dy) => {
      const op = UNARY_OF[activation];
      const dz = op ? unaryGrad(op, z ?? y, y, dy, alpha) : dy;
      const dx = needX ? inputGradOf(dz, w, g) : null;
      let dw: Tensor<"f32"> | null = null, db: Tensor<"f32"> | null = null;
      if (needW || needB) {
        const wg = weightGrad(x, dz, g, describeConv("conv2d weight gradient", x, w, g));
        dw = wg.dw;
        db = wg.db;
        if (!needW) {
          dw.dispose();
          dw = null;
        }
        if (!needB) {
          db.dispose();
          db = null;
        }
      }
      if (dz !== dy) dz.dispose();
      return bias ? [dx, dw, db] : [dx, dw];
    }, z ? [z] : []);
  }
  return y;
}

function inputGradOf(dy: Tensor, w: Tensor, g: Conv2dGeometry): Tensor<"f32"> {
  return convGemm({
    mode: 1,
    src: dy,
    w,
    bias: null,
    g,
    act: "linear",
    alpha: 0,
    keepZ: false,
    label: `conv2d input gradient ${fmtShape(dy.shape)} * ${fmtShape(w.shape)}ᵀ → ` +
      `${fmtShape([g.n, g.h, g.w, g.cin])}`,
  }).y;
}

function checkGradShape(op: string, dy: Tensor, g: Conv2dGeometry, what: string): void {
  const want = [g.n, g.ho, g.wo, g.cout];
  if (fmtShape(dy.shape) !== fmtShape(want)) {
    throw new WgradError(
      "shape",
      `${op}: dy ${dy.describe()} must have the convolution's output shape ${
        fmtShape(want)
      } for ${what}`,
    );
  }
}

/**
 * The gradient of a convolution's input: given `dy` `[N, Ho, Wo, Cout]` (the gradient of
 * `conv2d(x, w, options)` for an `x` of shape `inputShape`), returns dx `[N, H, W, Cin]`. This is
 * the transposed convolution of `dy` with `w`, computed as an implicit GEMM
 * [N·H·W, kh·kw·Cout] · [kh·kw·Cout, Cin] that gathers, for each input pixel, the output pixels it
 * contributed to (strides, dilation and padding included).
 * @throws {WgradError} as {@linkcode conv2d}, and `shape` when `dy` is not the output's shape.
 */
export function conv2dInputGrad(
  dy: Tensor<"f32">,
  w: Tensor<"f32">,
  inputShape: readonly number[],
  options: Conv2dGeometryOptions = {},
): Tensor<"f32"> {
  const op = "conv2dInputGrad";
  checkTensor(op, dy, "dy");
  checkTensor(op, w, "w");
  const what = `input ${fmtShape(inputShape)} and w ${w.describe()}`;
  const g = conv2dGeometry(op, inputShape, w.shape, options, what);
  checkGradShape(op, dy, g, what);
  return inputGradOf(dy, w, g);
}

/**
 * The gradients of a convolution's kernel and bias: given the input `x` and `dy` (the gradient of
 * `conv2d(x, w, options)` for a `w` of shape `kernelShape`), returns dw `[kh, kw, Cin, Cout]` =
 * im2col(x)ᵀ · dy and db `[Cout]` (the sums of dy over batch and pixels), from one implicit-GEMM
 * kernel split along the N·Ho·Wo pixels, plus a reduction of its partial sums when it was split.
 * @throws {WgradError} as {@linkcode conv2d}, and `shape` when `dy` is not the output's shape.
 */
export function conv2dWeightGrad(
  x: Tensor<"f32">,
  dy: Tensor<"f32">,
  kernelShape: readonly number[],
  options: Conv2dGeometryOptions = {},
): { dw: Tensor<"f32">; db: Tensor<"f32"> } {
  const op = "conv2dWeightGrad";
  checkTensor(op, x, "x");
  checkTensor(op, dy, "dy");
  const what = `x ${x.describe()} and kernel ${fmtShape(kernelShape)}`;
  const g = conv2dGeometry(op, x.shape, kernelShape, options, what);
  checkGradShape(op, dy, g, what);
  return weightGrad(
    x,
    dy,
    g,
    `conv2d weight gradient ${fmtShape(x.shape)} ⋆ ${fmtShape(dy.shape)}`,
  );
}
