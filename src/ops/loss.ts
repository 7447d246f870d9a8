/**
 * Losses with Keras's semantics, argument order `(yTrue, yPred)` and reductions. Each returns the
 * mean over the batch (Keras's `"sum_over_batch_size"`) as a scalar f32 tensor unless `reduction`
 * says otherwise, and records its gradient on the tape.
 *
 * Every loss is one kernel launch (two when the batch has more than 4,096 rows): per row it
 * computes the loss and, when a tape records, the loss's gradient with respect to the predictions
 * in the same pass; the reduction over the batch happens in the same launch too. The gradient is
 * kept by the tape, and backward multiplies it by the upstream gradient (one small launch). With
 * `fromLogits: true`, softmax (or sigmoid), the cross-entropy and its gradient are thus one
 * dispatch.
 *
 * Class indices outside [0, C) cannot be detected without reading the labels back: such a row
 * gets a NaN loss (so the batch's loss is NaN and a NaN guard stops training), a zero gradient and
 * counts as incorrect; no memory outside the batch is read. {@linkcode checkLabels} checks labels
 * once, before training.
 *
 * ```ts
 * const logits = tensor([[2, 1, 0.1], [0.5, 2.5, 0.3]]);
 * const labels = tensor([0, 1], [2], "i32");
 * const loss = sparseCategoricalCrossentropy(labels, logits, { fromLogits: true }); // scalar
 * ```
 * @module
 */
import { isOnesSeed, record, recording } from "../autodiff/tape.ts";
import { WgradError } from "../errors.ts";
import type { Tensor } from "../tensor.ts";
import { mul } from "./binary.ts";
import { reshape } from "./transform.ts";
import { neg } from "./unary.ts";
import {
  checkAccumulator,
  denseLayout,
  type RowKind,
  type RowLayout,
  runRows,
  sparseLayout,
} from "./rowwise.ts";

/**
 * How a loss reduces the per-sample losses: `"mean"` (Keras's default `"sum_over_batch_size"`,
 * also accepted by that name) divides their sum by their number, `"sum"` adds them, `"none"`
 * returns one loss per sample (yPred's shape without its last axis).
 */
export type Reduction = "mean" | "sum" | "none" | "sum_over_batch_size";

/** Options every loss takes. */
export interface LossOptions {
  /** How the per-sample losses are reduced (default `"mean"`, i.e. `"sum_over_batch_size"`). */
  reduction?: Reduction;
  /**
   * A persistent f32 accumulator: the same launch adds [sum of the per-sample losses, number of
   * correctly classified samples, number of samples, 1 (a step)] to its elements
   * `accumulateAt` … `+ 3`, in place (not with reduction `"none"`). A training loop keeps one per
   * epoch and reads it back once: the epoch's mean loss is `acc[0] / acc[2]` and its accuracy
   * `acc[1] / acc[2]`. The correct count is the accuracy Keras would pick for the loss: argmax
   * for the categorical losses; for the binary one a probability above 0.5 (a logit above 0),
   * each sample counting the fraction of its outputs that are right; 0 for the regression losses.
   * Sums are exact up to 2²⁴ samples.
   */
  accumulate?: Tensor<"f32">;
  /** The first of the four accumulator elements (default 0). */
  accumulateAt?: number;
}

/** Options of the cross-entropy losses. */
export interface CrossentropyOptions extends LossOptions {
  /**
   * Whether yPred holds logits (softmax or sigmoid not applied) rather than probabilities
   * (default false, as Keras). Logits are more accurate and train better.
   */
  fromLogits?: boolean;
}

/** Options of {@linkcode categoricalCrossentropy} and {@linkcode binaryCrossentropy}. */
export interface SmoothedCrossentropyOptions extends CrossentropyOptions {
  /**
   * Label smoothing in [0, 1] (default 0): categorical targets become `t·(1 − s) + s/C`, binary
   * ones `t·(1 − s) + s/2`, as Keras.
   */
  labelSmoothing?: number;
}

const REDUCTIONS = ["mean", "sum", "none", "sum_over_batch_size"];

function checkOptions(
  op: string,
  options: SmoothedCrossentropyOptions,
): { reduce: "mean" | "sum" | "none"; fromLogits: boolean; smoothing: number } {
  if (options === null || typeof options !== "object") {
    throw new WgradError("value", `${op}: options must be an object, got ${String(options)}`);
  }
  const r = options.reduction ?? "mean";
  if (!REDUCTIONS.includes(r)) {
    throw new WgradError(
      "value",
      `${op}: unknown reduction "${r}" (use "mean", "sum_over_batch_size", "sum" or "none")`,
    );
  }
  const fromLogits = options.fromLogits ?? false;
  if (typeof fromLogits !== "boolean") {
    throw new WgradError("value", `${op}: fromLogits must be true or false, got ${fromLogits}`);
  }
  const smoothing = options.labelSmoothing ?? 0;
  if (typeof smoothing !== "number" || !(smoothing >= 0 && smoothing <= 1)) {
    throw new WgradError(
      "value",
      `${op}: labelSmoothing must be a number in [0, 1], got ${smoothing}`,
    );
  }
  const reduce = r === "sum_over_batch_size" ? "mean" : r as "mean" | "sum" | "none";
  if (options.accumulate !== undefined) {
    if (reduce === "none") {
      throw new WgradError(
        "value",
        `${op}: accumulate needs a reduced loss; it cannot be used with reduction "none"`,
      );
    }
    checkAccumulator(op, options.accumulate, options.accumulateAt ?? 0, 4);
  }
  return { reduce, fromLogits, smoothing };
}

/** Runs a loss kernel and records its gradient. `dense` losses also differentiate yTrue. */
function lossOp(
  op: string,
  kind: RowKind,
  yTrue: Tensor,
  yPred: Tensor<"f32">,
  layout: RowLayout,
  opts: { reduce: "mean" | "sum" | "none" },
  options: LossOptions,
  smoothMul: number,
  smoothAdd: number,
  thresh: number,
  targetHasGradient: boolean,
): Tensor<"f32"> {
  const inputs = targetHasGradient ? [yTrue, yPred] : [yPred];
  const wantGrad = recording(inputs);
  const { out, grad } = runRows({
    label: `${op} ${yTrue.describe()} ${yPred.describe()}`,
    kind,
    yTrue,
    yPred,
    rows: layout.rows,
    cols: layout.cols,
    rowShape: layout.rowShape,
    reduce: opts.reduce,
    output: "loss",
    grad: wantGrad,
    smoothMul,
    smoothAdd,
    thresh,
    acc: options.accumulate ?? null,
    accAt: options.accumulateAt ?? 0,
  });
  if (grad) {
    const scaled = (dy: Tensor<"f32">): Tensor<"f32"> => {
      if (opts.reduce !== "none") {
        return isOnesSeed(dy) ? reshape(grad, yPred.shape) : mul(grad, dy);
      }
      const rowsDy = reshape(dy, [layout.rows, 1]);
      const flat = reshape(grad, [layout.rows, layout.cols]);
      const g = mul(flat, rowsDy);
      const shaped = reshape(g, yPred.shape);
      rowsDy.dispose();
      flat.dispose();
      g.dispose();
      return shaped;
    };
    record(op, inputs, out, (dy) => {
      const dPred = scaled(dy);
      if (!targetHasGradient) return [dPred];
      const n = neg(dPred);
      const dTrue = reshape(n, yTrue.shape);
      n.dispose();
      return [dTrue, dPred];
    }, [grad]);
  }
  return out;
}

/**
 * Cross-entropy between integer class labels and predicted class scores, Keras's
 * `sparse_categorical_crossentropy`.
 *
 * @param yTrue class indices, i32 or u32, of yPred's shape without its last axis (e.g. [B]), or
 *   with a last axis of 1 ([B, 1])
 * @param yPred f32 [B, C] (or any rank ≥ 1, classes last): probabilities, or logits with
 *   `fromLogits: true`
 *
 * From logits: `log Σ exp(x) − x_y`, computed with the row maximum subtracted, so any finite
 * logits give a finite loss; gradient `softmax(x) − onehot(y)`. From probabilities (as Keras on
 * TensorFlow): `c = clip(p, 1e-7, 1 − 1e-7)`, loss `log Σ c − log c_y`; the gradient is zero
 * where p lies outside the clip range. A label outside [0, C) gives a NaN loss (see the module
 * notes) — call {@linkcode checkLabels} once to find it.
 */
export function sparseCategoricalCrossentropy(
  yTrue: Tensor<"i32"> | Tensor<"u32">,
  yPred: Tensor<"f32">,
  options: CrossentropyOptions = {},
): Tensor<"f32"> {
  const op = "sparseCategoricalCrossentropy";
  const layout = sparseLayout(op, yTrue, yPred);
  const opts = checkOptions(op, options);
  const kind = opts.fromLogits ? "sparseLogits" : "sparseProbs";
  return lossOp(op, kind, yTrue, yPred, layout, opts, options, 1, 0, 0, false);
}

/**
 * Cross-entropy between one-hot (or probability) targets and predicted class scores, Keras's
 * `categorical_crossentropy`: `−Σ t·log p` per sample.
 *
 * @param yTrue f32 targets of yPred's shape
 * @param yPred f32 [B, C] (classes last): probabilities, or logits with `fromLogits: true`
 *
 * From logits: `Σ t·(log Σ exp(x) − x)` with the row maximum subtracted; gradient
 * `softmax(x)·Σt − t`. From probabilities (as Keras): each row is divided by its sum, clipped to
 * [1e-7, 1 − 1e-7], then `−Σ t·log`; the gradient passes through the normalisation and is cut
 * where the normalised value lies outside the clip range. No gradient flows to yTrue.
 */
export function categoricalCrossentropy(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options: SmoothedCrossentropyOptions = {},
): Tensor<"f32"> {
  const op = "categoricalCrossentropy";
  const layout = denseLayout(op, yTrue, yPred, false);
  const opts = checkOptions(op, options);
  const s = opts.smoothing;
  const kind = opts.fromLogits ? "categoricalLogits" : "categoricalProbs";
  return lossOp(op, kind, yTrue, yPred, layout, opts, options, 1 - s, s / layout.cols, 0, false);
}

/**
 * Binary cross-entropy, Keras's `binary_crossentropy`: the mean over the last axis of
 * `−(t·log p + (1 − t)·log(1 − p))` per sample.
 *
 * @param yTrue f32 targets in [0, 1] of yPred's shape ([B] and [B, 1] match each other)
 * @param yPred f32 probabilities, or logits with `fromLogits: true`
 *
 * From logits: `max(x, 0) − x·t + log(1 + e^−|x|)`, finite for any x; gradient `sigmoid(x) − t`.
 * From probabilities: clipped to [1e-7, 1 − 1e-7] as Keras, the gradient zero outside that
 * range. No gradient flows to yTrue.
 */
export function binaryCrossentropy(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options: SmoothedCrossentropyOptions = {},
): Tensor<"f32"> {
  const op = "binaryCrossentropy";
  const layout = denseLayout(op, yTrue, yPred, true, "outputs");
  const opts = checkOptions(op, options);
  const s = opts.smoothing;
  const kind = opts.fromLogits ? "binaryLogits" : "binaryProbs";
  const thresh = opts.fromLogits ? 0 : 0.5;
  return lossOp(op, kind, yTrue, yPred, layout, opts, options, 1 - s, s / 2, thresh, false);
}

/**
 * Mean squared error, Keras's `mean_squared_error`: the mean over the last axis of
 * `(yTrue − yPred)²` per sample. Both arguments get gradients.
 *
 * @param yTrue f32 targets of yPred's shape ([B] and [B, 1] match each other)
 * @param yPred f32 predictions
 */
export function meanSquaredError(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options: LossOptions = {},
): Tensor<"f32"> {
  const op = "meanSquaredError";
  const layout = denseLayout(op, yTrue, yPred, true, "outputs");
  const opts = checkOptions(op, options);
  return lossOp(op, "meanSquaredError", yTrue, yPred, layout, opts, options, 1, 0, 0, true);
}

/**
 * Mean absolute error, Keras's `mean_absolute_error`: the mean over the last axis of
 * `|yTrue − yPred|` per sample. Both arguments get gradients (`sign(yPred − yTrue)`, 0 where
 * they are equal).
 *
 * @param yTrue f32 targets of yPred's shape ([B] and [B, 1] match each other)
 * @param yPred f32 predictions
 */
export function meanAbsoluteError(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options: LossOptions = {},
): Tensor<"f32"> {
  const op = "meanAbsoluteError";
  const layout = denseLayout(op, yTrue, yPred, true, "outputs");
  const opts = checkOptions(op, options);
  return lossOp(op, "meanAbsoluteError", yTrue, yPred, layout, opts, options, 1, 0, 0, true);
}

/**
 * Checks that every label is a class index in [0, numClasses), reading the labels back once, and
 * throws a `value` {@linkcode WgradError} naming the first bad index and its value. Use it before
 * training: inside a training step a bad label only shows as a NaN loss.
 */
export async function checkLabels(labels: Tensor, numClasses: number): Promise<void> {
  const op = "checkLabels";
  labels.assertLive(op);
  if (labels.dtype !== "i32" && labels.dtype !== "u32") {
    throw new WgradError(
      "dtype",
      `${op}: the labels ${labels.describe()} must be class indices of dtype i32 or u32`,
    );
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new WgradError(
      "value",
      `${op}: numClasses must be a positive integer, got ${numClasses}`,
    );
  }
  const data = await labels.data();
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < 0 || v >= numClasses) {
      const idx: number[] = [];
      let rem = i;
      for (let d = labels.rank - 1; d >= 0; d--) {
        idx.unshift(rem % labels.shape[d]);
        rem = Math.floor(rem / labels.shape[d]);
      }
      const at = labels.rank > 1 ? `index [${idx.join(", ")}] (flat ${i})` : `index ${i}`;
      throw new WgradError(
        "value",
        `${op}: label ${v} at ${at} of ${labels.describe()} is outside [0, ${numClasses}) ` +
          `(${numClasses} classes)`,
      );
    }
  }
}
