/**
 * Softmax and log-softmax along any axis, numerically stable (the row maximum is subtracted before
 * `exp`), with their gradients.
 * @module
 */
import softmaxSrc from "../../shaders/softmax.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { schedule } from "../gpu/runtime.ts";
import { makeTensor, type Tensor } from "../tensor.ts";
import { checkInputs, grid, normalizeAxes } from "./util.ts";
import { WgradError } from "../errors.ts";

const SOFTMAX = { name: "softmax", code: softmaxSrc };

/** Rows at least this long, with few rows, get one workgroup per row instead of one invocation. */
const WG_ROW_LENGTH = 256;
/** ... when there are at most this many rows. */
const WG_ROW_MAX_ROWS = 1024;

/** How a tensor splits into rows along `axis`: rows × a elements, `inner` apart. */
interface Rows {
  rows: number;
  a: number;
  inner: number;
}

function rowsOf(shape: readonly number[], axis: number): Rows {
  const a = shape[axis];
  const inner = shape.slice(axis + 1).reduce((x, y) => x * y, 1);
  const outer = shape.slice(0, axis).reduce((x, y) => x * y, 1);
  return { rows: outer * inner, a, inner };
}

function resolveAxis(op: string, x: Tensor, axis: number): number {
  if (x.rank === 0) {
    throw new WgradError("shape", `${op}: ${x.describe()} is a scalar; ${op} needs an axis`);
  }
  if (typeof axis !== "number") {
    throw new WgradError("shape", `${op}: axis must be one integer, got ${String(axis)}`);
  }
  return normalizeAxes(op, axis, x.shape)[0];
}

/** Records one softmax-family kernel: `fwd` reads x; `bwd` reads y and dy. */
function launch(
  entry: "fwd" | "bwd",
  log: boolean,
  x: Tensor<"f32">,
  dy: Tensor<"f32"> | null,
  r: Rows,
  out: Tensor<"f32">,
  label: string,
): void {
  schedule((rt) => {
    const s = rt.alloc(x.size * 4, label);
    out.setStorage(s);
    if (x.size === 0) return;
    const wg = r.a >= WG_ROW_LENGTH && r.rows <= WG_ROW_MAX_ROWS;
    const g = wg ? grid(r.rows, 1) : grid(r.rows, 64);
    const u = new Uint32Array([r.rows, r.a, r.inner, g.stride]);
    const bindings = dy ? [u, x.storage, s, dy.storage] : [u, x.storage, s];
    rt.dispatch({
      kernel: SOFTMAX,
      entry: wg ? `${entry}_wg` : entry,
      constants: { LOG: log ? 1 : 0 },
      bindings,
      workgroups: g.groups,
      label,
    });
  });
}

function softmaxFamily(
  op: "softmax" | "logSoftmax",
  x: Tensor<"f32">,
  axis: number,
): Tensor<"f32"> {
  checkInputs(op, [x], ["f32"]);
  const ax = resolveAxis(op, x, axis);
  const r = rowsOf(x.shape, ax);
  const log = op === "logSoftmax";
  const out = makeTensor(x.shape, "f32");
  launch("fwd", log, x, null, r, out, `${op} ${x.describe()} axis ${ax}`);
  if (recording([x])) {
    record(op, [x], out, (dy) => [softmaxGrad(op, out, dy, ax)]);
  }
  return out;
}

/**
 * The gradient of softmax (`y · (dy − Σ dy·y)`) or log-softmax (`dy − exp(y) · Σ dy`) along
 * `axis`, from the op's output `y` and the output's gradient `dy`. One kernel launch.
 */
export function softmaxGrad(
  op: "softmax" | "logSoftmax",
  y: Tensor<"f32">,
  dy: Tensor<"f32">,
  axis: number,
): Tensor<"f32"> {
  const name = `${op} gradient`;
  checkInputs(name, [y, dy], ["f32"]);
  if (y.shape.length !== dy.shape.length || y.shape.some((d, i) => d !== dy.shape[i])) {
    throw new WgradError(
      "shape",
      `${name}: the output ${y.describe()} and its gradient ${dy.describe()} differ in shape`,
    );
  }
  const ax = resolveAxis(name, y, axis);
  const out = makeTensor(y.shape, "f32");
  launch("bwd", op === "logSoftmax", y, dy, rowsOf(y.shape, ax), out, `${name} ${y.describe()}`);
  return out;
}

/**
 * Softmax along `axis` (default the last): `exp(x − max) / Σ exp(x − max)`, so any finite logits
 * (±80, ±1e30) give finite probabilities. Rows along the last axis are contiguous (the fast path);
 * other axes are read with a stride, without a transpose. One kernel launch forward and one
 * backward.
 *
 * ```ts
 * const p = softmax(tensor([[1, 2, 3]])); // [[0.090, 0.245, 0.665]]
 * ```
 */
export function softmax(x: Tensor<"f32">, axis = -1): Tensor<"f32"> {
  return softmaxFamily("softmax", x, axis);
}

/**
 * Log-softmax along `axis` (default the last): `x − max − log Σ exp(x − max)`, accurate where
 * `log(softmax(x))` would underflow to −∞. One kernel launch forward and one backward.
 */
export function logSoftmax(x: Tensor<"f32">, axis = -1): Tensor<"f32"> {
  return softmaxFamily("logSoftmax", x, axis);
}
