/**
 * The launcher of the row kernels (shaders/loss.wgsl) shared by the losses and the metrics: a
 * value per row of the last axis, reduced over the rows in the same launch, with the loss's
 * gradient written alongside. Internal: the public functions are in loss.ts and metrics.ts.
 * @module
 */
import lossSrc from "../../shaders/loss.wgsl" with { type: "text" };
import finishSrc from "../../shaders/loss_finish.wgsl" with { type: "text" };
import { type DType, keep, makeTensor, type Tensor } from "../tensor.ts";
import { schedule, type Storage } from "../gpu/runtime.ts";
import { checkInputs, grid } from "./util.ts";
import { fmtShape, WgradError } from "../errors.ts";

const LOSS = { name: "loss", code: lossSrc };
const FINISH = { name: "loss_finish", code: finishSrc };

/** Row kernel codes, as numbered in `shaders/loss.wgsl`. */
export const ROW_KINDS = {
  sparseLogits: 0,
  sparseProbs: 1,
  categoricalLogits: 2,
  categoricalProbs: 3,
  binaryLogits: 4,
  binaryProbs: 5,
  meanSquaredError: 6,
  meanAbsoluteError: 7,
  sparseAccuracy: 8,
  categoricalAccuracy: 9,
  binaryAccuracy: 10,
} as const;

/** The name of a row kernel. */
export type RowKind = keyof typeof ROW_KINDS;

/** Kinds whose row value is a mean over the row's elements (their gradient carries 1/cols). */
const PER_ELEMENT: ReadonlySet<RowKind> = new Set([
  "binaryLogits",
  "binaryProbs",
  "meanSquaredError",
  "meanAbsoluteError",
]);

/** Up to this many rows (and ROW_ONE_ELEMENTS elements), one workgroup reduces all rows. */
export const ROW_ONE_MAX_ROWS = 4096;
const ROW_ONE_ELEMENTS = 1 << 22;
/** Rows per workgroup, at the least, when the rows are split over workgroups. */
const ROWS_PER_PART = 1024;
const MAX_PARTS = 256;

/** One launch of a row kernel. */
export interface RowSpec {
  /** Names the op and shapes for error messages. */
  label: string;
  kind: RowKind;
  yTrue: Tensor;
  yPred: Tensor<"f32">;
  rows: number;
  cols: number;
  /** The output's shape for reduction "none" (one value per row). */
  rowShape: readonly number[];
  reduce: "none" | "sum" | "mean";
  /** What is written: the loss, or the correct count (metrics). */
  output: "loss" | "correct";
  /** Whether the loss's gradient with respect to yPred is wanted. */
  grad: boolean;
  /** Label smoothing: t' = t·smoothMul + smoothAdd (1 and 0 without smoothing). */
  smoothMul: number;
  smoothAdd: number;
  /** Binary accuracy: a prediction above it is class 1. */
  thresh: number;
  /** Accumulator: [loss sum, correct, rows, 1] are added at `accAt`. */
  acc: Tensor<"f32"> | null;
  accAt: number;
}

/**
 * Launches a row kernel and returns its output (a scalar, or one value per row for "none") and,
 * when `spec.grad`, the gradient of the loss with respect to yPred, scaled for the reduction. The
 * gradient tensor belongs to no scope (the caller hands it to the tape).
 */
export function runRows(spec: RowSpec): { out: Tensor<"f32">; grad: Tensor<"f32"> | null } {
  const { rows, cols, reduce } = spec;
  const out = makeTensor(reduce === "none" ? spec.rowShape : [], "f32");
  const grad = spec.grad ? keep(makeTensor(spec.yPred.shape, "f32")) : null;
  const perElement = PER_ELEMENT.has(spec.kind);
  const gscale = (reduce === "mean" && rows > 0 ? 1 / rows : 1) / (perElement ? cols : 1);
  const one = rows <= ROW_ONE_MAX_ROWS && rows * cols <= ROW_ONE_ELEMENTS;
  const parts = reduce === "none" || one ? 1 : Math.min(MAX_PARTS, Math.ceil(rows / ROWS_PER_PART));
  // The accumulator is added to by the single reducing workgroup, or by the finishing pass.
  const accInMain = spec.acc !== null && reduce !== "none" && one;
  const yTrue = spec.yTrue, yPred = spec.yPred, acc = spec.acc;
  schedule((rt) => {
    const label = spec.label;
    const s = rt.alloc(out.size * 4, label);
    out.setStorage(s);
    let gs: Storage | null = null;
    if (grad) {
      gs = rt.alloc(yPred.size * 4, `${label} (gradient)`);
      grad.setStorage(gs);
    }
    const u = new Uint32Array(12);
    const f = new Float32Array(u.buffer);
    u[0] = rows;
    u[1] = cols;
    f[4] = gscale;
    f[5] = spec.smoothMul;
    f[6] = spec.smoothAdd;
    f[7] = spec.thresh;
    u[8] = spec.accAt;
    const entry = reduce === "none" ? "per_row" : one ? "reduce_one" : "reduce_part";
    let workgroups: [number, number] = [1, 1];
    if (reduce === "none") {
      const g = grid(rows);
      u[2] = g.stride;
      workgroups = g.groups;
    } else if (!one) {
      u[3] = parts;
      workgroups = [parts, 1];
    }
    let next = 4;
    let prefix = `alias L = ${yTrue.dtype};\nconst KIND = ${ROW_KINDS[spec.kind]}u;\n` +
      `const OUT = ${spec.output === "correct" ? 1 : 0}u;\n` +
      `const MEAN = ${reduce === "mean"};\nconst GRAD = ${grad !== null};\n`;
    const bindings = [u, yPred.storage, yTrue.storage];
    const partial = entry === "reduce_part" ? rt.alloc(parts * 16, `${label} (partials)`) : null;
    bindings.push(partial ?? s);
    if (gs) {
      prefix += `@group(0) @binding(${next++}) var<storage, read_write> grad: array<f32>;\n` +
        "fn put_grad(i: u32, v: f32) { grad[i] = v; }\n";
      bindings.push(gs);
    } else {
      prefix += "fn put_grad(i: u32, v: f32) {}\n";
    }
    if (accInMain && acc) {
      prefix += `@group(0) @binding(${next++}) var<storage, read_write> acc: array<f32>;\n` +
        "fn add_acc(loss: f32, correct: f32) {\n" +
        "  acc[p.acc_at] += loss;\n  acc[p.acc_at + 1u] += correct;\n" +
        "  acc[p.acc_at + 2u] += f32(p.rows);\n  acc[p.acc_at + 3u] += 1.0;\n}\n";
      bindings.push(acc.storage);
    } else {
      prefix += "fn add_acc(loss: f32, correct: f32) {}\n";
    }
    if (rows === 0 && reduce === "none") return;
    rt.dispatch({ kernel: LOSS, prefix, entry, bindings, workgroups, label });
    if (partial) {
      const fu = new Uint32Array([parts, rows, spec.accAt, 0]);
      rt.dispatch({
        kernel: FINISH,
        entry: acc ? "main_acc" : "main",
        constants: {
          OUT: spec.output === "correct" ? 1 : 0,
          MEAN: reduce === "mean" ? 1 : 0,
        },
        bindings: acc ? [fu, partial, s, acc.storage] : [fu, partial, s],
        workgroups: [1],
        label: `${label} (final sum)`,
      });
      partial.release();
    }
  });
  return { out, grad };
}

// ---------------------------------------------------------------------------------------------
// Shape rules shared by the losses and the metrics.

/** Rows and row length of a row kernel, and the shape of one value per row. */
export interface RowLayout {
  rows: number;
  cols: number;
  rowShape: number[];
}

function describeBoth(yTrue: Tensor, yPred: Tensor): string {
  return `yTrue ${yTrue.describe()}, yPred ${yPred.describe()}`;
}

/** Checks yPred: f32, rank ≥ 1, a non-empty last axis. */
export function checkPredictions(op: string, yPred: Tensor, what = "classes"): void {
  checkInputs(op, [yPred], ["f32"]);
  if (yPred.rank === 0 || yPred.shape[yPred.rank - 1] === 0) {
    throw new WgradError(
      "shape",
      `${op}: yPred ${yPred.describe()} needs a last axis of ${what} with at least one element ` +
        `(e.g. [batch, ${what}])`,
    );
  }
}

/**
 * Sparse targets: class indices (i32 or u32) of yPred's shape without its last axis, or with a
 * last axis of 1 (Keras squeezes it).
 */
export function sparseLayout(op: string, yTrue: Tensor, yPred: Tensor): RowLayout {
  checkPredictions(op, yPred);
  checkInputs(op, [yTrue]);
  if (yTrue.dtype !== "i32" && yTrue.dtype !== "u32") {
    throw new WgradError(
      "dtype",
      `${op}: the labels ${yTrue.describe()} must be class indices of dtype i32 or u32 ` +
        `(with yPred ${yPred.describe()}; cast float labels with cast(labels, "i32"))`,
    );
  }
  const lead = yPred.shape.slice(0, -1);
  const cols = yPred.shape[yPred.rank - 1];
  const t = yTrue.shape;
  const squeezed = t.length === lead.length + 1 && t[t.length - 1] === 1 ? t.slice(0, -1) : t;
  if (squeezed.length !== lead.length) {
    throw new WgradError(
      "shape",
      `${op}: ${describeBoth(yTrue, yPred)}: the labels must have shape ${fmtShape(lead)} ` +
        `(or ${fmtShape([...lead, 1])}), one class index per row of yPred` +
        (t.length === yPred.rank ? "; for one-hot targets use categoricalCrossentropy" : ""),
    );
  }
  const at = squeezed.findIndex((d, i) => d !== lead[i]);
  if (at >= 0) {
    throw new WgradError(
      "shape",
      `${op}: ${at === 0 ? "batch sizes differ" : `axis ${at} differs`}: ` +
        `${describeBoth(yTrue, yPred)} (the labels must have shape ${fmtShape(lead)})`,
    );
  }
  return { rows: sizeOf(lead), cols, rowShape: lead };
}

/**
 * Dense targets (f32) of yPred's shape. With `squeeze` (the element-wise losses), shapes whose
 * ranks differ by one where the longer ends in 1 are matched as Keras's
 * `squeeze_or_expand_to_same_rank` does ([B] with [B, 1]).
 */
export function denseLayout(
  op: string,
  yTrue: Tensor,
  yPred: Tensor,
  squeeze: boolean,
  what = "classes",
  dtypes: readonly DType[] = ["f32"],
): RowLayout {
  checkPredictions(op, yPred, what);
  checkInputs(op, [yTrue]);
  if (!dtypes.includes(yTrue.dtype)) {
    throw new WgradError(
      "dtype",
      `${op}: the targets ${yTrue.describe()} must be ${dtypes.join(" or ")} ` +
        `(with yPred ${yPred.describe()}; ` +
        `cast them with cast(yTrue, "f32")${
          what === "classes" ? ", or use sparseCategoricalCrossentropy for class indices" : ""
        })`,
    );
  }
  let t = [...yTrue.shape], p = [...yPred.shape];
  let common = p;
  if (squeeze && t.length === p.length + 1 && t[t.length - 1] === 1) {
    t = t.slice(0, -1);
    common = p.length === 1 ? [...p, 1] : p;
  } else if (squeeze && p.length === t.length + 1 && p[p.length - 1] === 1) {
    p = p.slice(0, -1);
    common = t.length === 1 ? [...t, 1] : t;
  }
  if (t.length !== p.length) {
    throw new WgradError(
      "shape",
      `${op}: ranks differ: ${describeBoth(yTrue, yPred)} (the targets must have yPred's shape)`,
    );
  }
  const at = t.findIndex((d, i) => d !== p[i]);
  if (at >= 0) {
    const which = at === t.length - 1
      ? `${what === "classes" ? "class" : "feature"} counts differ (${t[at]} vs ${p[at]})`
      : at === 0
      ? `batch sizes differ (${t[0]} vs ${p[0]})`
      : `axis ${at} differs (${t[at]} vs ${p[at]})`;
    throw new WgradError("shape", `${op}: ${which}: ${describeBoth(yTrue, yPred)}`);
  }
  if (common.length === 0 || common[common.length - 1] === 0) {
    throw new WgradError(
      "shape",
      `${op}: ${describeBoth(yTrue, yPred)} need a non-empty last axis`,
    );
  }
  const rowShape = common.slice(0, -1);
  return { rows: sizeOf(rowShape), cols: common[common.length - 1], rowShape };
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Checks an accumulator: a live f32 tensor with `count` elements from `at`. */
export function checkAccumulator(op: string, acc: Tensor, at: number, count: number): void {
  checkInputs(op, [acc], ["f32"]);
  if (!Number.isInteger(at) || at < 0 || at + count > acc.size) {
    throw new WgradError(
      "shape",
      `${op}: the accumulator ${acc.describe()} has ${acc.size} elements; ${count} are added ` +
        `at offset ${at}, which needs at least ${at + count}`,
    );
  }
}
