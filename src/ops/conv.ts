/**
 * 2-D convolution in NHWC layout with Keras's kernel layout `[kh, kw, Cin, Cout]`: `conv2d` (with
 * a fused bias and activation), its input gradient and its weight gradient, as implicit GEMMs: no
 * im2col buffer is ever made. The forward pass and stride-1 input gradients run a direct,
 * register-blocked kernel (shaders/conv2d_strip.wgsl) whose block — output rows × pixels along
 * the width × output channels — is chosen per shape when the op is recorded; strided input
 * gradients run the implicit GEMM of shaders/conv2d.wgsl; the weight gradient runs
 * shaders/conv2d_wgrad_strip.wgsl, split along the output rows. `"same"` and `"valid"` padding
 * follow TensorFlow exactly, including the extra row or column at the bottom or right when the
 * total padding is odd. `conv2d` records its gradient on the tape.
 * @module
 */
import activationSrc from "../../shaders/activation_vec4.wgsl" with { type: "text" };
import convSrc from "../../shaders/conv2d.wgsl" with { type: "text" };
import stripSrc from "../../shaders/conv2d_strip.wgsl" with { type: "text" };
import wgradStripSrc from "../../shaders/conv2d_wgrad_strip.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { type Runtime, schedule, type Storage } from "../gpu/runtime.ts";
import { keep, makeTensor, type Tensor } from "../tensor.ts";
import { type Activation, ACTIVATIONS } from "./matmul.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./transform.ts";
import { unaryGrad, type UnaryOp } from "./unary.ts";
import { grid } from "./util.ts";

const CONV = { name: "conv2d", code: activationSrc + convSrc };
const STRIP = { name: "conv2d_strip", code: activationSrc + stripSrc };
const WGRAD_STRIP = { name: "conv2d_wgrad_strip", code: wgradStripSrc };

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
      `${op}: the kernel (${(kh - 1) * dh + 1}×${(kw - 1) * dw + 1}${
        dh > 1 || dw > 1 ? " with dilation" : ""
      }) is larger ` +
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

/** The shape of a direct (strip) kernel's block and its specialisations (shaders/conv2d_strip.wgsl). */
interface StripShape {
  mode: 0 | 1;
  /** Output rows, output pixels along the width and vec4 groups of output channels per block. */
  ry: number;
  rx: number;
  co4: number;
  /** Inner channels per step: 4 (one vec4 load, ci % 4 == 0) or 1. */
  cs: 1 | 4;
  kw: number;
  sw: number;
  dw: number;
  /** Columns of B loaded per block: 4·co4, or co when one block covers all co < 4·co4. */
  ncol: number;
  /** B read as vec4 along o (MODE 0, co % 4 == 0), along c (MODE 1, cs == 4), or scalars. */
  bVec: boolean;
  /** Output stores as vec4 (co % 4 == 0). */
  vecY: boolean;
  keepZ: boolean;
}

/** The generated part of shaders/conv2d_strip.wgsl: bindings and `fn main` for one block shape. */
function stripCode(k: StripShape): string {
  const { mode, ry: RY, rx: RX, co4: CO4, cs: CS, kw: KW, sw: SW, dw: DW, ncol: NCOL } = k;
  const used = [...new Set(range(RX).flatMap((x) => range(KW).map((kx) => x * SW + kx * DW)))]
    .sort((a, b) => a - b);
  const arr = (vec: boolean) => (vec ? "array<vec4<f32>>" : "array<f32>");
  let s = `@group(0) @binding(0) var<storage, read> src: ${arr(CS === 4)};
@group(0) @binding(1) var<storage, read> wt: ${arr(k.bVec)};
@group(0) @binding(2) var<storage, read_write> y: ${arr(k.vecY)};
`;
  if (k.keepZ) s += `@group(0) @binding(5) var<storage, read_write> z: ${arr(k.vecY)};\n`;
  s += `@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.x + gid.y * p.stride;
  if (idx >= p.total) {
    return;
  }
  let jb = idx % p.col_blocks;
  var q = idx / p.col_blocks;
  let sx = q % p.strips;
  q = q / p.strips;
  let rb = q % p.row_blocks;
  let n = q / p.row_blocks;
  let oy0 = rb * ${RY}u;
  let ox0 = sx * ${RX}u;
  let o0 = jb * ${4 * CO4}u;
  let ci = p.ci;
  let co = p.co;
  let cico = ci * co;
  let ix0 = i32(ox0 * ${SW}u) - i32(p.pl);
  let wmax = i32(p.src_w) - 1;
  let hmax = i32(p.src_h) - 1;
  let img = n * p.src_h;
`;
  for (const i of used) {
    s += `  let xo${i} = u32(clamp(ix0 + ${i}, 0, wmax)) * ci;\n`;
    s += `  let xv${i} = ix0 + ${i} >= 0 && ix0 + ${i} <= wmax;\n`;
  }
  for (const r of range(RY)) s += `  let iyb${r} = i32((oy0 + ${r}u) * p.sh) - i32(p.pt);\n`;
  // Column offsets of B (clamped to valid columns).
  if (mode === 0 && k.bVec) {
    for (const j of range(CO4)) s += `  let oc${j} = min(o0 + ${4 * j}u, co - 4u);\n`;
  } else {
    for (const e of range(NCOL)) {
      s += mode === 0
        ? `  let oc${e} = min(o0 + ${e}u, co - 1u);\n`
        : `  let oc${e} = min(o0 + ${e}u, co - 1u) * ci;\n`;
    }
  }
  for (const r of range(RY)) {
    for (const x of range(RX)) {
      for (const j of range(CO4)) s += `  var a${r}_${x}_${j} = vec4(0.0);\n`;
    }
  }
  s += `  for (var ky = 0u; ky < p.kh; ky++) {\n`;
  for (const r of range(RY)) {
    s += `    let iy${r} = iyb${r} + i32(ky * p.dh);\n`;
    s += `    let rv${r} = iy${r} >= 0 && iy${r} <= hmax;\n`;
    s += `    let ro${r} = (img + u32(clamp(iy${r}, 0, hmax))) * p.src_w * ci;\n`;
  }
  s += mode === 0
    ? `    let tb = ky * ${KW}u * cico;\n`
    : `    let tb = ((p.kh - 1u - ky) * ${KW}u + ${KW - 1}u) * cico;\n`;
  s += `    for (var c = 0u; c < ci; c += ${CS}u) {\n`;
  const zero = CS === 4 ? "vec4(0.0)" : "0.0";
  for (const r of range(RY)) {
    for (const i of used) {
      const addr = CS === 4 ? `(ro${r} + xo${i} + c) >> 2u` : `ro${r} + xo${i} + c`;
      s += `      let s${r}_${i} = select(${zero}, src[${addr}], rv${r} && xv${i});\n`;
    }
  }
  s += mode === 0 ? `      let wb = tb + c * co;\n` : `      let wb = tb + c;\n`;
  const lane = ["x", "y", "z", "w"];
  for (const kx of range(KW)) {
    const wk = mode === 0 ? `wb + ${kx}u * cico` : `wb - ${kx}u * cico`;
    // B: b{kx}_{s}_{j}, the 4 columns 4j..4j+3 at tap kx and inner channel c + s.
    if (mode === 0 && k.bVec) {
      for (const t of range(CS)) {
        for (const j of range(CO4)) {
          s += `      let b${kx}_${t}_${j} = wt[(${wk} + ${t}u * co + oc${j}) >> 2u];\n`;
        }
      }
    } else if (mode === 1 && k.bVec) {
      // One vec4 (4 inner channels) per column, transposed.
      for (const e of range(NCOL)) s += `      let v${kx}_${e} = wt[(${wk} + oc${e}) >> 2u];\n`;
      for (const t of range(CS)) {
        for (const j of range(CO4)) {
          const comps = range(4).map((q) =>
            4 * j + q < NCOL ? `v${kx}_${4 * j + q}.${lane[t]}` : "0.0"
          );
          s += `      let b${kx}_${t}_${j} = vec4(${comps.join(", ")});\n`;
        }
      }
    } else {
      for (const t of range(CS)) {
        for (const e of range(NCOL)) {
          const addr = mode === 0 ? `${wk} + ${t}u * co + oc${e}` : `${wk} + oc${e} + ${t}u`;
          s += `      let w${kx}_${t}_${e} = wt[${addr}];\n`;
        }
        for (const j of range(CO4)) {
          const comps = range(4).map((
            q,
          ) => (4 * j + q < NCOL ? `w${kx}_${t}_${4 * j + q}` : "0.0"));
          s += `      let b${kx}_${t}_${j} = vec4(${comps.join(", ")});\n`;
        }
      }
    }
  }
  // Each accumulator takes its kw·CS multiply-adds in one chain (loaded and stored once when
  // registers spill).
  for (const r of range(RY)) {
    for (const x of range(RX)) {
      for (const j of range(CO4)) {
        const v = `a${r}_${x}_${j}`;
        let e = v;
        for (const kx of range(KW)) {
          for (const t of range(CS)) {
            const a = `s${r}_${x * SW + kx * DW}${CS === 4 ? `.${lane[t]}` : ""}`;
            e = `fma(vec4(${a}), b${kx}_${t}_${j}, ${e})`;
          }
        }
        s += `      ${v} = ${e};\n`;
      }
    }
  }
  s += `    }\n  }\n`;
  // Epilogue: bias, activation, guarded stores.
  for (const j of range(CO4)) {
    const o = `o0 + ${4 * j}u`;
    s +=
      `  let bv${j} = vec4(bias_at(${o}), bias_at(${o} + 1u), bias_at(${o} + 2u), bias_at(${o} + 3u));\n`;
  }
  for (const r of range(RY)) {
    for (const x of range(RX)) {
      s += `  if (oy0 + ${r}u < p.out_h && ox0 + ${x}u < p.out_w) {\n`;
      s += `    let pb = ((n * p.out_h + oy0 + ${r}u) * p.out_w + ox0 + ${x}u) * co + o0;\n`;
      for (const j of range(CO4)) {
        const zv = `a${r}_${x}_${j} + bv${j}`;
        const lines: string[] = [];
        if (k.vecY) {
          lines.push(`y[(pb + ${4 * j}u) >> 2u] = activate(zz);`);
          if (k.keepZ) lines.push(`z[(pb + ${4 * j}u) >> 2u] = zz;`);
        } else {
          lines.push(`let yy = activate(zz);`);
          for (const e of range(4)) {
            if (4 * j + e >= NCOL) break;
            const guard = NCOL < 4 * CO4 ? "" : `if (o0 + ${4 * j + e}u < co) `;
            lines.push(`${guard}{ y[pb + ${4 * j + e}u] = yy.${lane[e]}; }`);
            if (k.keepZ) lines.push(`${guard}{ z[pb + ${4 * j + e}u] = zz.${lane[e]}; }`);
          }
        }
        s += `    if (o0 + ${4 * j}u < co) {\n      let zz = ${zv};\n` +
          lines.map((l) => `      ${l}\n`).join("") + `    }\n`;
      }
      s += `  }\n`;
    }
  }
  s += `}\n`;
  return s;
}

/** The block of a strip weight-gradient kernel (shaders/conv2d_wgrad_strip.wgsl). */
interface WgradStripShape {
  /** Kernel rows, channels (4: one vec4 load, cin % 4 == 0; or 1), vec4 groups of outputs. */
  ky: number;
  cs: 1 | 4;
  co4: number;
  /** Output pixels per strip. */
  rx: number;
  kw: number;
  sw: number;
  dw: number;
  /** Columns of dy loaded per block: 4·co4, or cout when one block covers all cout < 4·co4. */
  ncol: number;
  /** dy and the partial sums as vec4 (cout % 4 == 0). */
  vecDy: boolean;
}

/** The generated part of shaders/conv2d_wgrad_strip.wgsl: bindings and `fn main`. */
function wgradStripCode(k: WgradStripShape): string {
  const { ky: KY, cs: CS, co4: CO4, rx: RX, kw: KW, sw: SW, dw: DW, ncol: NCOL } = k;
  const used = [...new Set(range(RX).flatMap((x) => range(KW).map((kx) => x * SW + kx * DW)))]
    .sort((a, b) => a - b);
  const arr = (vec: boolean) => (vec ? "array<vec4<f32>>" : "array<f32>");
  const lane = ["x", "y", "z", "w"];
  let s = `@group(0) @binding(0) var<storage, read> x: ${arr(CS === 4)};
@group(0) @binding(1) var<storage, read> dy: ${arr(k.vecDy)};
@group(0) @binding(2) var<storage, read_write> part: ${arr(k.vecDy)};
@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.x + gid.y * p.stride;
  if (idx >= p.total) {
    return;
  }
  let jb = idx % p.col_blocks;
  var q = idx / p.col_blocks;
  let cb = q % p.c_blocks;
  q = q / p.c_blocks;
  let kb = q % p.ky_blocks;
  let sp = q / p.ky_blocks;
  let o0 = jb * ${4 * CO4}u;
  let c0 = cb * ${CS}u;
  let ky0 = kb * ${KY}u;
  let cin = p.cin;
  let cout = p.cout;
  let wmax = i32(p.w) - 1;
  let hmax = i32(p.h) - 1;
  let xmax = p.wo - 1u;
`;
  if (k.vecDy) {
    for (const j of range(CO4)) s += `  let oc${j} = min(o0 + ${4 * j}u, cout - 4u);\n`;
  } else {
    for (const e of range(NCOL)) s += `  let oc${e} = min(o0 + ${e}u, cout - 1u);\n`;
  }
  for (const y of range(KY)) {
    s += `  let kv${y} = ky0 + ${y}u < p.kh;\n`;
    s += `  let kyo${y} = i32((ky0 + ${y}u) * p.dh) - i32(p.pt);\n`;
  }
  for (const y of range(KY)) {
    for (const x of range(KW)) {
      for (const t of range(CS)) {
        for (const j of range(CO4)) s += `  var a${y}_${x}_${t}_${j} = vec4(0.0);\n`;
      }
    }
  }
  for (const j of range(CO4)) s += `  var cs${j} = vec4(0.0);\n`;
  s += `  let r0 = sp * p.chunk;
  let r1 = min(r0 + p.chunk, p.rows);
  for (var r = r0; r < r1; r++) {
    let n = r / p.ho;
    let oy = r % p.ho;
    let drow = r * p.wo * cout;
`;
  for (const y of range(KY)) {
    s += `    let iy${y} = i32(oy * p.sh) + kyo${y};\n`;
    s += `    let rv${y} = kv${y} && iy${y} >= 0 && iy${y} <= hmax;\n`;
    s += `    let ro${y} = (n * p.h + u32(clamp(iy${y}, 0, hmax))) * p.w * cin + c0;\n`;
  }
  s += `    for (var x0 = 0u; x0 < p.wo; x0 += ${RX}u) {\n`;
  s += `      let ix0 = i32(x0 * ${SW}u) - i32(p.pl);\n`;
  const zero = "vec4(0.0)";
  for (const x of range(RX)) {
    s += `      let dv${x} = x0 + ${x}u <= xmax;\n`;
    s += `      let db${x} = drow + min(x0 + ${x}u, xmax) * cout;\n`;
    if (k.vecDy) {
      for (const j of range(CO4)) {
        s += `      let d${x}_${j} = select(${zero}, dy[(db${x} + oc${j}) >> 2u], dv${x});\n`;
      }
    } else {
      for (const j of range(CO4)) {
        const comps = range(4).map((q) => 4 * j + q < NCOL ? `dy[db${x} + oc${4 * j + q}]` : "0.0");
        s += `      let d${x}_${j} = select(${zero}, vec4(${comps.join(", ")}), dv${x});\n`;
      }
    }
  }
  for (const j of range(CO4)) {
    s += `      cs${j} += ${range(RX).map((x) => `d${x}_${j}`).join(" + ")};\n`;
  }
  const xzero = CS === 4 ? "vec4(0.0)" : "0.0";
  for (const i of used) {
    s += `      let xv${i} = ix0 + ${i} >= 0 && ix0 + ${i} <= wmax;\n`;
    s += `      let xo${i} = u32(clamp(ix0 + ${i}, 0, wmax)) * cin;\n`;
  }
  for (const y of range(KY)) {
    for (const i of used) {
      const addr = CS === 4 ? `(ro${y} + xo${i}) >> 2u` : `ro${y} + xo${i}`;
      s += `      let x${y}_${i} = select(${xzero}, x[${addr}], rv${y} && xv${i});\n`;
    }
  }
  for (const y of range(KY)) {
    for (const kx of range(KW)) {
      for (const t of range(CS)) {
        for (const j of range(CO4)) {
          const v = `a${y}_${kx}_${t}_${j}`;
          let e = v;
          for (const x of range(RX)) {
            const xv = `x${y}_${x * SW + kx * DW}${CS === 4 ? `.${lane[t]}` : ""}`;
            e = `fma(vec4(${xv}), d${x}_${j}, ${e})`;
          }
          s += `      ${v} = ${e};\n`;
        }
      }
    }
  }
  s += `    }\n  }\n`;
  // Guarded stores of the partial sums.
  s += `  let size = p.kh * ${KW}u * cin * cout;\n  let pb = sp * size;\n`;
  const store = (buf: string, base: string, j: number, val: string) => {
    if (k.vecDy) {
      return `if (o0 + ${4 * j}u < cout) { ${buf}[(${base} + o0 + ${4 * j}u) >> 2u] = ${val}; }\n`;
    }
    let t = "";
    for (const e of range(4)) {
      if (4 * j + e >= NCOL) break;
      t += `if (o0 + ${4 * j + e}u < cout) { ${buf}[${base} + o0 + ${4 * j + e}u] = ${val}.${
        lane[e]
      }; }\n`;
    }
    return t;
  };
  s += `  if (kb == 0u && cb == 0u) {\n`;
  for (const j of range(CO4)) {
    for (const e of range(4)) {
      if (4 * j + e >= NCOL) break;
      const o = `o0 + ${4 * j + e}u`;
      s += `    if (${o} < cout) { colsum[sp * cout + ${o}] = cs${j}.${lane[e]}; }\n`;
    }
  }
  s += `  }\n`;
  for (const y of range(KY)) {
    for (const kx of range(KW)) {
      for (const t of range(CS)) {
        s += `  if (kv${y} && c0 + ${t}u < cin) {\n`;
        s += `    let rb = pb + (((ky0 + ${y}u) * ${KW}u + ${kx}u) * cin + c0 + ${t}u) * cout;\n`;
        for (const j of range(CO4)) {
          s += store("part", "rb", j, `a${y}_${kx}_${t}_${j}`).split("\n").filter((l) => l).map((
            l,
          ) => `    ${l}\n`).join("");
        }
        s += `  }\n`;
      }
    }
  }
  s += `}\n`;
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

/** Accumulator floats a strip block may hold (registers spill beyond this on llvmpipe). */
const STRIP_ACC = 448;
/** Relative cost of a vec4 multiply-add against one float loaded from a storage buffer. */
const STRIP_FMA_COST = 0.1;
/** Vec4 multiply-adds a generated block may spell out (bounds the shader's compile time). */
const STRIP_FMA_MAX = 768;
/** Invocations below which a strip layout is penalised (two threads of 8-lane workgroups). */
const STRIP_MIN_INVOCATIONS = 128;

/**
 * Picks the block (RY rows × RX pixels × 4·CO4 channels) of a strip kernel that minimises an
 * estimate of its cost: floats loaded from storage plus a fraction for each vec4 multiply-add,
 * counted over every block of the output (edge blocks in full), with fewer invocations than the
 * machine can keep busy penalised.
 */
function chooseStrip(
  n: number,
  outH: number,
  outW: number,
  ci: number,
  co: number,
  kw: number,
  sw: number,
  dw: number,
  bVec: boolean,
): { ry: number; rx: number; co4: number } {
  const cs = ci % 4 === 0 ? 4 : 1;
  let best = { ry: 1, rx: 1, co4: 1 }, bestCost = Infinity;
  for (let co4 = 1; co4 <= Math.min(8, Math.ceil(co / 4)); co4++) {
    const ncol = 4 * co4 >= co ? co : 4 * co4;
    const bLoads = kw * cs * (bVec ? 4 * Math.ceil(ncol / 4) : ncol);
    for (let ry = 1; ry <= Math.min(4, outH); ry++) {
      for (let rx = 1; rx <= Math.min(32, outW); rx++) {
        if (ry * rx * co4 * 4 > STRIP_ACC || ry * rx * kw * cs * co4 > STRIP_FMA_MAX) break;
        const used = new Set(range(rx).flatMap((x) => range(kw).map((k) => x * sw + k * dw))).size;
        const blocks = n * Math.ceil(outH / ry) * Math.ceil(outW / rx) * Math.ceil(co / (4 * co4));
        const step = ry * used * cs + bLoads + STRIP_FMA_COST * ry * rx * kw * cs * co4;
        const cost = blocks * step * Math.max(1, STRIP_MIN_INVOCATIONS / blocks);
        if (cost < bestCost) {
          bestCost = cost;
          best = { ry, rx, co4 };
        }
      }
    }
  }
  return best;
}

/** Records the strip kernel (shaders/conv2d_strip.wgsl) for convGemm: forward, or stride-1 dx. */
function stripLaunch(
  c: ConvLaunch,
  ys: Storage,
  zs: Storage | null,
  rt: Runtime,
): void {
  const { g, mode } = c;
  const outH = mode === 0 ? g.ho : g.h, outW = mode === 0 ? g.wo : g.w;
  const srcH = mode === 0 ? g.h : g.ho, srcW = mode === 0 ? g.w : g.wo;
  const ci = mode === 0 ? g.cin : g.cout, co = mode === 0 ? g.cout : g.cin;
  const cs = ci % 4 === 0 ? 4 : 1;
  const sw = mode === 0 ? g.sw : 1;
  const bVec = mode === 0 ? co % 4 === 0 : cs === 4;
  const { ry, rx, co4 } = chooseStrip(g.n, outH, outW, ci, co, g.kw, sw, g.dw, bVec);
  const shape: StripShape = {
    mode,
    ry,
    rx,
    co4,
    cs,
    kw: g.kw,
    sw,
    dw: g.dw,
    ncol: 4 * co4 >= co ? co : 4 * co4,
    bVec,
    vecY: co % 4 === 0,
    keepZ: zs !== null,
  };
  const strips = Math.ceil(outW / rx), rowBlocks = Math.ceil(outH / ry);
  const colBlocks = Math.ceil(co / (4 * co4));
  const total = g.n * rowBlocks * strips * colBlocks;
  const gr = grid(total, 8);
  const u = new Uint32Array([
    outH,
    outW,
    srcH,
    srcW,
    ci,
    co,
    g.kh,
    mode === 0 ? g.sh : 1,
    g.dh,
    mode === 0 ? g.pt : (g.kh - 1) * g.dh - g.pt,
    mode === 0 ? g.pl : (g.kw - 1) * g.dw - g.pl,
    strips,
    rowBlocks,
    colBlocks,
    total,
    gr.stride,
    c.bias ? 1 : 0,
    0,
  ]);
  new Float32Array(u.buffer)[17] = c.alpha;
  const bindings = convBindings(c, ys, zs, u);
  rt.dispatch({
    kernel: STRIP,
    prefix: stripCode(shape),
    constants: { ACT: ACTIVATIONS[c.act] },
    bindings,
    workgroups: gr.groups,
    label: c.label,
  });
}

/**
 * The bindings of both forward kernels: source, kernel, output, parameters, bias (without one,
 * binding 4 repeats the source: read-only, never read) and, when kept, the pre-activation.
 */
function convBindings(
  c: ConvLaunch,
  ys: Storage,
  zs: Storage | null,
  u: Uint32Array,
): (Storage | Uint32Array)[] {
  const bindings: (Storage | Uint32Array)[] = [
    c.src.storage,
    c.w.storage,
    ys,
    u,
    (c.bias ?? c.src).storage,
  ];
  if (zs) bindings.push(zs);
  return bindings;
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
    if (mode === 0 || (g.sh === 1 && g.sw === 1)) {
      stripLaunch(c, ys, zs, rt);
      return;
    }
    const vecA = ci % 4 === 0;
    // A strided input gradient: the implicit GEMM of conv2d.wgsl, w read transposed.
    const vecB = ci % 4 === 0;
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
    const bindings = convBindings(c, ys, zs, u);
    rt.dispatch({
      kernel: CONV,
      prefix,
      constants: { C_TAIL: ci % 4 === 0 ? 0 : 1, ACT: ACTIVATIONS[c.act] },
      bindings,
      workgroups: gr.groups,
      label: c.label,
    });
  });
  return { y, z };
}

/** Accumulator floats a strip weight-gradient block may hold (each takes RX multiply-adds per load). */
const WGRAD_STRIP_ACC = 640;
/** Vec4 multiply-adds a generated weight-gradient block may spell out. */
const WGRAD_STRIP_FMA_MAX = 1024;

/** Picks the block of the strip weight-gradient kernel, minimising the same estimate as chooseStrip. */
function chooseWgradStrip(g: Conv2dGeometry): WgradStripShape {
  const cs = g.cin % 4 === 0 ? 4 : 1;
  const vecDy = g.cout % 4 === 0;
  let best: WgradStripShape | null = null, bestCost = Infinity;
  for (let co4 = 1; co4 <= Math.min(8, Math.ceil(g.cout / 4)); co4++) {
    const ncol = 4 * co4 >= g.cout ? g.cout : 4 * co4;
    const dyLoads = vecDy ? 4 * co4 : ncol;
    for (let ky = 1; ky <= g.kh; ky++) {
      if (ky * g.kw * cs * co4 * 4 > WGRAD_STRIP_ACC) break;
      for (let rx = 1; rx <= Math.min(32, g.wo); rx++) {
        if (ky * g.kw * cs * co4 * rx > WGRAD_STRIP_FMA_MAX) break;
        const used = new Set(range(rx).flatMap((x) => range(g.kw).map((k) => x * g.sw + k * g.dw)))
          .size;
        const perRow = Math.ceil(g.wo / rx) *
          (rx * dyLoads + ky * used * cs + STRIP_FMA_COST * ky * g.kw * cs * co4 * rx);
        const blocks = Math.ceil(g.kh / ky) * Math.ceil(g.cin / cs) *
          Math.ceil(g.cout / (4 * co4));
        const cost = blocks * perRow;
        if (cost < bestCost) {
          bestCost = cost;
          best = { ky, cs, co4, rx, kw: g.kw, sw: g.sw, dw: g.dw, ncol, vecDy };
        }
      }
    }
  }
  return best!;
}

/** Invocations the weight-gradient kernel aims for (split along the output rows to get them). */
const WGRAD_TARGET = 512;

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
  const size = g.kh * g.kw * g.cin * g.cout;
  const rows = g.n * g.ho;
  const k = chooseWgradStrip(g);
  const kyBlocks = Math.ceil(g.kh / k.ky), cBlocks = Math.ceil(g.cin / k.cs);
  const colBlocks = Math.ceil(g.cout / (4 * k.co4));
  const blocks = kyBlocks * cBlocks * colBlocks;
  let splits = Math.max(1, Math.min(Math.ceil(WGRAD_TARGET / blocks), rows));
  const chunk = Math.ceil(rows / splits);
  splits = Math.ceil(rows / chunk);
  const part = makeTensor([splits, size], "f32");
  const colsum = makeTensor([splits, g.cout], "f32");
  const total = blocks * splits;
  schedule((rt) => {
    const ps = rt.alloc(splits * size * 4, `${label} (partial sums)`);
    part.setStorage(ps);
    const cs = rt.alloc(splits * g.cout * 4, `${label} (partial bias sums)`);
    colsum.setStorage(cs);
    const gr = grid(total, 8);
    const u = new Uint32Array([
      g.h,
      g.w,
      g.cin,
      g.ho,
      g.wo,
      g.cout,
      g.kh,
      g.sh,
      g.dh,
      g.pt,
      g.pl,
      rows,
      chunk,
      kyBlocks,
      cBlocks,
      colBlocks,
      total,
      gr.stride,
    ]);
    rt.dispatch({
      kernel: WGRAD_STRIP,
      prefix: wgradStripCode(k),
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
 * kernel split along the N·Ho output rows, plus a reduction of its partial sums when it was split.
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
