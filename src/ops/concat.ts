/**
 * Concatenation along an axis, and its gradient (each input's slice of the output's gradient).
 * With the axes before `axis` folded into rows and those after it into columns, every input is a
 * block of columns of the output: one block-copy dispatch per input (shaders/copy_cols.wgsl), or a
 * plain buffer copy when the axis is the outermost.
 * @module
 */
import copyColsSrc from "../../shaders/copy_cols.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { type Runtime, schedule, type Storage } from "../gpu/runtime.ts";
import { makeTensor, type Tensor } from "../tensor.ts";
import { checkInputs, grid } from "./util.ts";

const COPY_COLS = { name: "copy_cols", code: copyColsSrc };

/** Copies a block of `cols` columns of `rows` rows between two row-major matrices. */
function copyBlock(
  rt: Runtime,
  src: Storage,
  dst: Storage,
  rows: number,
  cols: number,
  srcCols: number,
  srcOff: number,
  dstCols: number,
  dstOff: number,
  label: string,
): void {
  const total = rows * cols;
  if (total === 0) return;
  if (rows === 1 || (cols === srcCols && cols === dstCols)) {
    rt.copy(src, dst, total * 4, label, srcOff * 4, dstOff * 4);
    return;
  }
  const g = grid(total);
  rt.dispatch({
    kernel: COPY_COLS,
    bindings: [
      src,
      dst,
      new Uint32Array([rows, cols, srcCols, srcOff, dstCols, dstOff, total, g.stride]),
    ],
    workgroups: g.groups,
    label,
  });
}

/**
 * Joins f32 tensors along `axis` (default the last; negative counts from the end), as
 * `tf.concat` and Keras's `Concatenate` do: all other dimensions must be equal. The gradient
 * gives each input its slice of the output's gradient.
 *
 * ```ts
 * const y = concat([a, b], -1); // [n, 3] and [n, 5] → [n, 8]
 * ```
 * @throws {WgradError} `value` for no inputs or an axis out of range; `shape` when ranks or the
 * other dimensions differ; `dtype` for a tensor that is not f32. Messages name every shape.
 */
export function concat(inputs: readonly Tensor<"f32">[], axis = -1): Tensor<"f32"> {
  const xs: readonly Tensor<"f32">[] = inputs;
  if (!Array.isArray(inputs) || xs.length === 0) {
    throw new WgradError("value", "concat: needs at least one tensor");
  }
  const first: Tensor<"f32"> = xs[0];
  checkInputs("concat", xs, ["f32"]);
  const rank = first.rank;
  const shapes = xs.map((x) => fmtShape(x.shape)).join(", ");
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank || rank === 0) {
    throw new WgradError(
      "value",
      `concat: axis ${axis} is out of range for rank ${rank} (shapes ${shapes})`,
    );
  }
  const a = axis < 0 ? axis + rank : axis;
  for (const x of xs) {
    if (x.rank !== rank || x.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new WgradError(
        "shape",
        `concat: shapes ${shapes} differ outside axis ${a} (all dimensions but the joined one ` +
          "must match)",
      );
    }
  }
  const rows = first.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = first.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const widths = xs.map((x) => x.shape[a] * inner);
  const offsets = widths.map((_, k) => widths.slice(0, k).reduce((p, w) => p + w, 0));
  const total = offsets[offsets.length - 1] + widths[widths.length - 1];
  const shape = [...first.shape];
  shape[a] = xs.reduce((p, x) => p + x.shape[a], 0);
  const out = makeTensor(shape, "f32");
  const label = `concat ${shapes} axis ${a}`;
  schedule((rt) => {
    const s = rt.alloc(rows * total * 4, label);
    out.setStorage(s);
    xs.forEach((x, k) =>
      copyBlock(rt, x.storage, s, rows, widths[k], widths[k], 0, total, offsets[k], label)
    );
  });
  if (recording(xs)) {
    const need = xs.map((x) => recording([x]));
    record("concat", xs, out, (dy) =>
      xs.map((x, k) => {
        if (!need[k]) return null;
        const dx = makeTensor(x.shape, "f32");
        const l = `concat gradient ${fmtShape(dy.shape)} → ${fmtShape(x.shape)}`;
        schedule((rt) => {
          const s = rt.alloc(x.size * 4, l);
          dx.setStorage(s);
          copyBlock(rt, dy.storage, s, rows, widths[k], total, offsets[k], widths[k], 0, l);
        });
        return dx;
      }));
  }
  return out;
}
