/**
 * Reductions over any set of axes: sum, mean, max, min, argmax, argmin.
 * @module
 */
import reduceSrc from "../../shaders/reduce.wgsl" with { type: "text" };
import { fmtShape, WgradError } from "../errors.ts";
import { record, recording } from "../autodiff/tape.ts";
import { schedule, type Storage } from "../gpu/runtime.ts";
import { div, equal, mul } from "./binary.ts";
import { broadcastTo, reshape } from "./transform.ts";
import { type DType, makeTensor, type Tensor } from "../tensor.ts";
import {
  checkInputs,
  checkRank,
  grid,
  mergeAxes,
  normalizeAxes,
  putDims,
  stridesOf,
} from "./util.ts";

const REDUCE = { name: "reduce", code: reduceSrc };

const CODES = { sum: 0, mean: 0, max: 1, min: 2, argmax: 3, argmin: 4 } as const;
type ReduceOp = keyof typeof CODES;

/** Up to this many inputs per output, one invocation reduces a whole output. */
const SMALL_R = 64;
/** Below this many outputs (with R > SMALL_R), one workgroup reduces each output. */
const WG_OUTPUTS = 1024;
/** From this many inputs per output (with at most 64 outputs), R is split over workgroups. */
const SPLIT_R = 16384;

const LIMITS: Record<DType, [string, string]> = {
  f32: ["bitcast<f32>(0xff800000u)", "bitcast<f32>(0x7f800000u)"],
  i32: ["i32(-2147483648)", "2147483647i"],
  u32: ["0u", "4294967295u"],
};

function prefixFor(t: DType, o: DType): string {
  const [lo, hi] = LIMITS[t];
  const fin = t === "f32" ? `return O(v * p.scale);` : `return O(v);`;
  return `alias T = ${t};\nalias O = ${o};\nfn lowest() -> T { return ${lo}; }\n` +
    `fn highest() -> T { return ${hi}; }\n` +
    `fn finish_sum(v: T) -> O { ${fin} }\n`;
}

/** Options of the reductions. */
export interface ReduceOptions {
  /** Keep reduced axes as size 1 (default false). */
  keepDims?: boolean;
}

function reduce<D extends DType, O extends DType>(
  op: ReduceOp,
  x: Tensor<D>,
  axes: number | readonly number[] | undefined,
  outDtype: O,
  options: ReduceOptions,
): Tensor<O> {
  const ax = normalizeAxes(op, axes, x.shape);
  const keep = options.keepDims ?? false;
  const outShape = keep
    ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !ax.includes(i));
  const r = ax.reduce((acc, i) => acc * x.shape[i], 1);
  if (r === 0 && op !== "sum") {
    throw new WgradError(
      "shape",
      `${op}: cannot reduce ${x.describe()} over axes [${ax.join(", ")}], which hold no elements`,
    );
  }
  const out = makeTensor(outShape, outDtype);
  const nOut = out.size;
  const strides = stridesOf(x.shape);
  const keptDims = x.shape.map((_, i) => i).filter((i) => !ax.includes(i));
  const k = mergeAxes(keptDims.map((i) => x.shape[i]), [keptDims.map((i) => strides[i])]);
  const red = mergeAxes(ax.map((i) => x.shape[i]), [ax.map((i) => strides[i])]);
  checkRank(op, Math.max(k.shape.length, red.shape.length), [x.shape]);
  const label = `${op} ${x.describe()} axes [${ax.join(", ")}] → ${fmtShape(outShape)}`;
  const code = CODES[op];
  // Huge R with few outputs: split R over many workgroups, then reduce the partials.
  const splits = op !== "argmax" && op !== "argmin" && nOut <= 64 && r >= SPLIT_R
    ? Math.min(256, Math.ceil(r / 4096))
    : 1;
  schedule((rt) => {
    const s = rt.alloc(nOut * 4, label);
    out.setStorage(s);
    if (nOut === 0) return;
    const launch = (
      input: Storage,
      output: Storage,
      dtIn: DType,
      dtOut: DType,
      entry: "main" | "main_wg" | "main_split",
      groups: number,
      r: number,
      kept: { shape: number[]; strides: number[][] },
      reduced: { shape: number[]; strides: number[][] },
      opCode: number,
      scale: number,
      chunk = 0,
      splits = 1,
    ) => {
      const g = entry === "main" ? grid(groups) : grid(groups, 1);
      const u = new Uint32Array(8 + 32);
      u.set([nOut, g.stride, r, kept.shape.length, reduced.shape.length, 0, chunk, splits]);
      new Float32Array(u.buffer)[5] = scale;
      putDims(u, 8, kept.shape);
      putDims(u, 16, kept.strides[0]);
      putDims(u, 24, reduced.shape);
      putDims(u, 32, reduced.strides[0]);
      rt.dispatch({
        kernel: REDUCE,
        entry,
        prefix: prefixFor(dtIn, dtOut),
        constants: { OP: opCode },
        bindings: [input, output, u],
        workgroups: g.groups,
        label,
      });
    };
    const scale = op === "mean" ? 1 / r : 1;
    if (splits > 1) {
      const chunk = Math.ceil(r / splits);
      const partial = rt.alloc(nOut * splits * 4, `${label} (partials)`);
      launch(
        x.storage,
        partial,
        x.dtype,
        x.dtype,
        "main_split",
        nOut * splits,
        r,
        k,
        red,
        code,
        1,
        chunk,
        splits,
      );
      const flat = { shape: nOut > 1 ? [nOut] : [], strides: [nOut > 1 ? [splits] : []] };
      launch(
        partial,
        s,
        x.dtype,
        outDtype,
        "main_wg",
        nOut,
        splits,
        flat,
        { shape: [splits], strides: [[1]] },
        code,
        scale,
      );
      partial.release();
    } else if (r > SMALL_R && nOut < WG_OUTPUTS) {
      launch(x.storage, s, x.dtype, outDtype, "main_wg", nOut, r, k, red, code, scale);
    } else {
      launch(x.storage, s, x.dtype, outDtype, "main", nOut, r, k, red, code, scale);
    }
  });
  if (x.dtype === "f32" && op !== "argmax" && op !== "argmin" && recording([x])) {
    const keptShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
    const xf = x as Tensor<"f32">, yf = out as Tensor<"f32">;
    record(op, [x], out, (dy) => [reduceGrad(op, xf, yf, dy, ax, keptShape, r)]);
  }
  return out;
}

/** The gradient of a reduction, broadcast back to the input's shape. */
function reduceGrad(
  op: ReduceOp,
  x: Tensor<"f32">,
  y: Tensor<"f32">,
  dy: Tensor<"f32">,
  axes: number[],
  keptShape: number[],
  r: number,
): Tensor<"f32"> {
  const dyk = reshape(dy, keptShape);
  const g = broadcastTo(dyk, x.shape);
  dyk.dispose();
  if (op === "sum") return g;
  if (op === "mean") {
    const m = mul(g, 1 / r);
    g.dispose();
    return m;
  }
  // max/min: the gradient goes to the elements equal to the extreme, shared equally among ties.
  const yk = reshape(y, keptShape);
  const mask = equal(x, yk);
  const count = sum(mask, axes, { keepDims: true });
  const share = div(mask, count);
  const out = mul(g, share);
  for (const t of [yk, mask, count, share, g]) t.dispose();
  return out;
}

/** Sum over `axes` (all axes when omitted). */
export function sum<D extends DType>(
  x: Tensor<D>,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor<D> {
  checkInputs("sum", [x]);
  return reduce("sum", x, axes, x.dtype, options);
}

/** Mean over `axes` (all axes when omitted); f32 only. */
export function mean(
  x: Tensor<"f32">,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor<"f32"> {
  checkInputs("mean", [x], ["f32"]);
  return reduce("mean", x, axes, "f32", options);
}

/** Maximum over `axes` (all axes when omitted). */
export function max<D extends DType>(
  x: Tensor<D>,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor<D> {
  checkInputs("max", [x]);
  return reduce("max", x, axes, x.dtype, options);
}

/** Minimum over `axes` (all axes when omitted). */
export function min<D extends DType>(
  x: Tensor<D>,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor<D> {
  checkInputs("min", [x]);
  return reduce("min", x, axes, x.dtype, options);
}

/**
 * Index of the maximum along `axis` (of the flattened tensor when omitted), as i32. Ties go to
 * the first occurrence, as in NumPy.
 */
export function argmax(x: Tensor, axis?: number, options: ReduceOptions = {}): Tensor<"i32"> {
  checkInputs("argmax", [x]);
  return reduce("argmax", x, axis, "i32", options);
}

/** Index of the minimum along `axis` (of the flattened tensor when omitted), as i32. */
export function argmin(x: Tensor, axis?: number, options: ReduceOptions = {}): Tensor<"i32"> {
  checkInputs("argmin", [x]);
  return reduce("argmin", x, axis, "i32", options);
}
