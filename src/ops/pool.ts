/**
 * Pooling over the spatial axes of NHWC tensors, as Keras computes it: `maxPool2d` and
 * `avgPool2d` (shaders/pool.wgsl, gradients in shaders/pool_grad.wgsl), with TensorFlow's
 * `"same"`/`"valid"` padding, and `globalAvgPool2d`/`globalMaxPool2d` (reductions over height and
 * width). All record their gradients on the tape.
 * @module
 */
import poolSrc from "../../shaders/pool.wgsl" with { type: "text" };
import poolParamsSrc from "../../shaders/pool_params.wgsl" with { type: "text" };
import poolGradSrc from "../../shaders/pool_grad.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { schedule, type Storage } from "../gpu/runtime.ts";
import { keep, makeTensor, type Tensor } from "../tensor.ts";
import { axisPadding, type Padding, paddingOf, pair, type Size2 } from "./conv.ts";
import { max, mean } from "./reduce.ts";
import { grid } from "./util.ts";

const POOL = { name: "pool", code: poolParamsSrc + poolSrc };
const POOL_GRAD = { name: "pool_grad", code: poolParamsSrc + poolGradSrc };

/** Options of {@linkcode maxPool2d} and {@linkcode avgPool2d}. */
export interface Pool2dOptions {
  /** Window height and width (default 2, as Keras). */
  poolSize?: Size2;
  /** Strides (default: the pool size, as Keras). */
  strides?: Size2;
  /** `"valid"` (default) or `"same"`, as TensorFlow pads. */
  padding?: Padding;
}

interface PoolGeometry {
  n: number;
  h: number;
  w: number;
  c: number;
  ho: number;
  wo: number;
  ph: number;
  pw: number;
  sh: number;
  sw: number;
  pt: number;
  pl: number;
}

function checkF32(op: string, x: unknown): asserts x is Tensor<"f32"> {
  if (x === null || typeof x !== "object" || !("shape" in x) || !("dtype" in x)) {
    throw new WgradError("value", `${op}: x is not a tensor (got ${String(x)})`);
  }
  const t = x as Tensor;
  t.assertLive(op);
  if (t.dtype !== "f32") {
    throw new WgradError("dtype", `${op}: x ${t.describe()} has dtype ${t.dtype}; ${op} takes f32`);
  }
}

function checkRank4(op: string, x: Tensor): void {
  if (x.rank !== 4) {
    throw new WgradError(
      "shape",
      `${op}: x must have rank 4 [batch, height, width, channels], got ${x.describe()}`,
    );
  }
  if (x.shape.some((d) => d === 0)) {
    throw new WgradError("shape", `${op}: x ${x.describe()} has a zero-size dimension`);
  }
}

function poolGeometry(op: string, x: Tensor, options: Pool2dOptions): PoolGeometry {
  checkF32(op, x);
  checkRank4(op, x);
  const [ph, pw] = pair(op, "poolSize", options.poolSize, 2);
  const [sh, sw] = options.strides === undefined
    ? [ph, pw]
    : pair(op, "strides", options.strides, 1);
  const padding = paddingOf(op, options.padding);
  const [n, h, w, c] = x.shape;
  const py = axisPadding(h, ph, sh, 1, padding);
  const px = axisPadding(w, pw, sw, 1, padding);
  if (py.out <= 0 || px.out <= 0) {
    throw new WgradError(
      "shape",
      `${op}: the pool window ${ph}×${pw} is larger than the input ${h}×${w} of x ${x.describe()} ` +
        `under "valid" padding (the output would be empty)`,
    );
  }
  return { n, h, w, c, ho: py.out, wo: px.out, ph, pw, sh, sw, pt: py.before, pl: px.before };
}

/** Channels per invocation: up to 8, so a pixel's index arithmetic is shared by its channels. */
function channelsPerInvocation(c: number): { cpi: number; chunks: number } {
  const chunks = Math.ceil(c / 8);
  return { cpi: Math.ceil(c / chunks), chunks };
}

function params(g: PoolGeometry, total: number, stride: number, chunks: number): Uint32Array {
  return new Uint32Array([
    g.h,
    g.w,
    g.c,
    g.ho,
    g.wo,
    g.ph,
    g.pw,
    g.sh,
    g.sw,
    g.pt,
    g.pl,
    total,
    stride,
    chunks,
    0,
    0,
  ]);
}

const WG = 64;

function pool2d(kind: 0 | 1, op: string, x: Tensor<"f32">, options: Pool2dOptions): Tensor<"f32"> {
  const g = poolGeometry(op, x, options);
  const shape = [g.n, g.ho, g.wo, g.c];
  const y = makeTensor(shape, "f32");
  const total = g.n * g.ho * g.wo * g.c;
  const rec = recording([x]);
  // The argmax of each window (max pooling), kept for the gradient alone.
  const arg = kind === 0 && rec ? keep(makeTensor(shape, "u32")) : null;
  const label = `${op} ${fmtShape(x.shape)} window ${g.ph}×${g.pw} strides ${g.sh}×${g.sw} ` +
    `pad ${g.pt},${g.pl}`;
  schedule((rt) => {
    const ys = rt.alloc(total * 4, label);
    y.setStorage(ys);
    const as = arg ? rt.alloc(total * 4, `${label} (argmax)`) : null;
    if (arg && as) arg.setStorage(as);
    const { cpi, chunks } = channelsPerInvocation(g.c);
    const invocations = g.n * g.ho * g.wo * chunks;
    const gr = grid(invocations, WG);
    const bindings: (Storage | Uint32Array)[] = [
      x.storage,
      ys,
      params(g, invocations, gr.stride, chunks),
    ];
    if (as) bindings.push(as);
    rt.dispatch({
      kernel: POOL,
      prefix: as
        ? `@group(0) @binding(3) var<storage, read_write> arg: array<u32>;
fn st_arg(o: u32, i: u32) { arg[o] = i; }
`
        : `fn st_arg(o: u32, i: u32) {}\n`,
      constants: { KIND: kind, CPI: cpi },
      bindings,
      workgroups: gr.groups,
      label,
    });
  });
  if (rec) {
    record(op, [x], y, (dy) => [poolGrad(kind, op, dy, arg, g)], arg ? [arg] : []);
  }
  return y;
}

function poolGrad(
  kind: 0 | 1,
  op: string,
  dy: Tensor,
  arg: Tensor | null,
  g: PoolGeometry,
): Tensor<"f32"> {
  const shape = [g.n, g.h, g.w, g.c];
  const dx = makeTensor(shape, "f32");
  const total = g.n * g.h * g.w * g.c;
  const label = `${op} gradient ${fmtShape(dy.shape)} → ${fmtShape(shape)}`;
  schedule((rt) => {
    const s = rt.alloc(total * 4, label);
    dx.setStorage(s);
    const { cpi, chunks } = channelsPerInvocation(g.c);
    const invocations = g.n * g.h * g.w * chunks;
    const gr = grid(invocations, WG);
    const bindings: (Storage | Uint32Array)[] = [
      dy.storage,
      s,
      params(g, invocations, gr.stride, chunks),
    ];
    if (arg) bindings.push(arg.storage);
    rt.dispatch({
      kernel: POOL_GRAD,
      prefix: arg
        ? `@group(0) @binding(3) var<storage, read> arg: array<u32>;
fn ld_arg(o: u32) -> u32 { return arg[o]; }
`
        : `fn ld_arg(o: u32) -> u32 { return 0u; }\n`,
      constants: { KIND: kind, CPI: cpi },
      bindings,
      workgroups: gr.groups,
      label,
    });
  });
  return dx;
}

/**
 * Max pooling over windows of height × width (Keras's `MaxPooling2D`): `x` `[N, H, W, C]` →
 * `[N, Ho, Wo, C]`, with `poolSize` default 2, `strides` default `poolSize`, and TensorFlow's
 * `"valid"` (default) or `"same"` padding (padded positions never win). The gradient goes to the
 * element that was chosen: the first maximum of its window in row-major order when there are ties.
 * @throws {WgradError} `shape` when x is not rank 4, has a zero dimension, or the window does not
 * fit under `"valid"`; `value` for a non-positive pool size or stride or an unknown padding;
 * `dtype` when x is not f32.
 */
export function maxPool2d(x: Tensor<"f32">, options: Pool2dOptions = {}): Tensor<"f32"> {
  return pool2d(0, "maxPool2d", x, options);
}

/**
 * Average pooling (Keras's `AveragePooling2D`), with the options of {@linkcode maxPool2d}. Under
 * `"same"` padding each window's sum is divided by the number of its elements inside the input,
 * as TensorFlow does; the gradient spreads each output's gradient evenly over those elements.
 * @throws {WgradError} as {@linkcode maxPool2d}.
 */
export function avgPool2d(x: Tensor<"f32">, options: Pool2dOptions = {}): Tensor<"f32"> {
  return pool2d(1, "avgPool2d", x, options);
}

/**
 * The mean over height and width (Keras's `GlobalAveragePooling2D`): `[N, H, W, C]` → `[N, C]`.
 * @throws {WgradError} `shape` when x is not rank 4 or has a zero dimension; `dtype` unless f32.
 */
export function globalAvgPool2d(x: Tensor<"f32">): Tensor<"f32"> {
  checkF32("globalAvgPool2d", x);
  checkRank4("globalAvgPool2d", x);
  return mean(x, [1, 2]);
}

/**
 * The maximum over height and width (Keras's `GlobalMaxPooling2D`): `[N, H, W, C]` → `[N, C]`.
 * Its gradient is shared equally among tied maxima, as TensorFlow's `reduce_max` does.
 * @throws {WgradError} as {@linkcode globalAvgPool2d}.
 */
export function globalMaxPool2d(x: Tensor<"f32">): Tensor<"f32"> {
  checkF32("globalMaxPool2d", x);
  checkRank4("globalMaxPool2d", x);
  return max(x, [1, 2]);
}
