/**
 * Accuracy metrics with Keras's semantics, computed on the GPU in one launch each, and an
 * in-place accumulator for summing them (and losses) across batches without reading back. No
 * gradients.
 *
 * ```ts
 * const acc = zeros([4]);              // [loss sum, correct, samples, steps] for one epoch
 * // per step:
 * const loss = sparseCategoricalCrossentropy(y, logits, { fromLogits: true, accumulate: acc });
 * // once per epoch:
 * const [lossSum, correct, n, steps] = await acc.data();
 * ```
 * @module
 */
import accumulateSrc from "../../shaders/accumulate_scalars.wgsl" with { type: "text" };
import { WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import type { Tensor } from "../tensor.ts";
import { checkInputs } from "./util.ts";
import {
  checkAccumulator,
  denseLayout,
  type RowKind,
  type RowLayout,
  runRows,
  sparseLayout,
} from "./rowwise.ts";

const ACCUMULATE = { name: "accumulate_scalars", code: accumulateSrc };

/** Which accuracy: class indices, one-hot targets, or thresholded binary outputs. */
export type AccuracyKind = "sparse" | "categorical" | "binary";

/** Options of {@linkcode correctCount}. */
export interface CorrectCountOptions {
  /** The accuracy to count (default: chosen from the arguments as {@linkcode accuracy} does). */
  kind?: AccuracyKind;
  /** Binary accuracy: a prediction above it is class 1 (default 0.5). */
  threshold?: number;
}

function pickKind(op: string, yTrue: Tensor, yPred: Tensor): AccuracyKind {
  checkInputs(op, [yTrue, yPred]);
  const last = yPred.shape[yPred.rank - 1];
  const sameRank = yTrue.rank === yPred.rank;
  if (last === 1 && (sameRank || yTrue.rank === yPred.rank - 1)) return "binary";
  if (yTrue.dtype !== "f32") return "sparse";
  if (!sameRank || yTrue.shape[yTrue.rank - 1] === 1) return "sparse";
  return "categorical";
}

function layoutFor(
  op: string,
  kind: AccuracyKind,
  yTrue: Tensor,
  yPred: Tensor,
): { layout: RowLayout; row: RowKind } {
  switch (kind) {
    case "sparse":
      return { layout: sparseLayout(op, yTrue, yPred), row: "sparseAccuracy" };
    case "categorical":
      return { layout: denseLayout(op, yTrue, yPred, false), row: "categoricalAccuracy" };
    case "binary":
      // Integer 0/1 targets are compared as they are (Keras casts the prediction to them).
      return {
        layout: denseLayout(op, yTrue, yPred, true, "outputs", ["f32", "i32", "u32"]),
        row: "binaryAccuracy",
      };
    default:
      throw new WgradError(
        "value",
        `${op}: unknown accuracy kind "${kind}" (use "sparse", "categorical" or "binary")`,
      );
  }
}

function metric(
  op: string,
  kind: AccuracyKind,
  yTrue: Tensor,
  yPred: Tensor<"f32">,
  threshold: number,
  reduce: "sum" | "mean",
): Tensor<"f32"> {
  if (typeof threshold !== "number" || !Number.isFinite(threshold)) {
    throw new WgradError("value", `${op}: threshold must be a finite number, got ${threshold}`);
  }
  const { layout, row } = layoutFor(op, kind, yTrue, yPred);
  return runRows({
    label: `${op} ${yTrue.describe()} ${yPred.describe()}`,
    kind: row,
    yTrue,
    yPred,
    rows: layout.rows,
    cols: layout.cols,
    rowShape: layout.rowShape,
    reduce,
    output: "correct",
    grad: false,
    smoothMul: 1,
    smoothAdd: 0,
    thresh: threshold,
    acc: null,
    accAt: 0,
  }).out;
}

/**
 * The fraction of correctly classified samples, as a scalar f32 tensor. The kind follows Keras's
 * choice for `metrics: ["accuracy"]`: binary accuracy (threshold 0.5) when yPred's last axis is 1;
 * sparse categorical accuracy when yTrue holds class indices (i32/u32, shape [B] or [B, 1]);
 * categorical accuracy (argmax of yTrue against argmax of yPred) for f32 targets of yPred's shape.
 * Argmax takes the first of tied maxima. Empty batches give 0.
 */
export function accuracy(yTrue: Tensor, yPred: Tensor<"f32">): Tensor<"f32"> {
  const kind = pickKind("accuracy", yTrue, yPred);
  return metric("accuracy", kind, yTrue, yPred, 0.5, "mean");
}

/**
 * Keras's `sparse_categorical_accuracy`: the fraction of rows whose argmax (the first on ties)
 * equals the class index in yTrue (i32/u32, shape [B] or [B, 1]). A label outside [0, C) counts
 * as incorrect.
 */
export function sparseCategoricalAccuracy(yTrue: Tensor, yPred: Tensor<"f32">): Tensor<"f32"> {
  return metric("sparseCategoricalAccuracy", "sparse", yTrue, yPred, 0.5, "mean");
}

/**
 * Keras's `categorical_accuracy`: the fraction of rows where the argmax of yPred equals the argmax
 * of the f32 targets yTrue (the first on ties, in both).
 */
export function categoricalAccuracy(yTrue: Tensor<"f32">, yPred: Tensor<"f32">): Tensor<"f32"> {
  return metric("categoricalAccuracy", "categorical", yTrue, yPred, 0.5, "mean");
}

/**
 * Keras's `binary_accuracy`: the fraction of elements where `yPred > threshold`, as 0 or 1,
 * equals yTrue (averaged per sample over the last axis, then over the samples). For logits pass
 * `threshold` 0.
 */
export function binaryAccuracy(
  yTrue: Tensor,
  yPred: Tensor<"f32">,
  threshold = 0.5,
): Tensor<"f32"> {
  return metric("binaryAccuracy", "binary", yTrue, yPred, threshold, "mean");
}

/**
 * The number of correctly classified samples in the batch, as a scalar f32 tensor (the accuracy
 * times the number of samples; for binary accuracy each sample counts the fraction of its
 * outputs that are right). Add it up across batches on the GPU with {@linkcode accumulate}.
 */
export function correctCount(
  yTrue: Tensor,
  yPred: Tensor<"f32">,
  options: CorrectCountOptions = {},
): Tensor<"f32"> {
  const op = "correctCount";
  const kind = options.kind ?? pickKind(op, yTrue, yPred);
  return metric(op, kind, yTrue, yPred, options.threshold ?? 0.5, "sum");
}

/** The most values {@linkcode accumulate} adds in one launch. */
export const MAX_ACCUMULATE = 6;

/**
 * Adds scalars to a persistent f32 accumulator in place, on the GPU: `acc[at + i] += values[i]`.
 * One launch, no readback, so a training loop can sum batch losses and correct counts over an
 * epoch and read `acc` back once. Each value is a one-element f32 tensor (a loss, a
 * {@linkcode correctCount}). Unlike other ops this one writes into its argument: work recorded
 * earlier sees the old contents, work recorded later the new ones.
 */
export function accumulate(acc: Tensor<"f32">, values: readonly Tensor<"f32">[], at = 0): void {
  const op = "accumulate";
  if (!Array.isArray(values) || values.length === 0 || values.length > MAX_ACCUMULATE) {
    throw new WgradError(
      "value",
      `${op}: pass between 1 and ${MAX_ACCUMULATE} values, got ${
        Array.isArray(values) ? values.length : String(values)
      }`,
    );
  }
  checkAccumulator(op, acc, at, values.length);
  checkInputs(op, values, ["f32"]);
  values.forEach((v, i) => {
    if (v.size !== 1) {
      throw new WgradError(
        "shape",
        `${op}: value ${i} (${v.describe()}) must hold one element to be added to ${acc.describe()}`,
      );
    }
    if (v === acc) {
      throw new WgradError("value", `${op}: the accumulator ${acc.describe()} is also value ${i}`);
    }
  });
  const decls = values.map((_, i) =>
    `@group(0) @binding(${i + 2}) var<storage, read> v${i}: array<f32>;\n`
  ).join("");
  const adds = values.map((_, i) => `  acc[p.at + ${i}u] += v${i}[0];\n`).join("");
  const prefix = `${decls}fn add_values() {\n${adds}}\n`;
  const label = `${op} ${acc.describe()} at ${at} += ${values.map((v) => v.describe()).join(", ")}`;
  schedule((rt) => {
    rt.dispatch({
      kernel: ACCUMULATE,
      prefix,
      bindings: [new Uint32Array([at, 0, 0, 0]), acc.storage, ...values.map((v) => v.storage)],
      workgroups: [1],
      label,
    });
  });
}
