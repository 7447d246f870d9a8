/**
 * Losses and metrics for `compile`, Keras-style: each loss is a function that computes the loss
 * when given tensors — `losses.sparseCategoricalCrossentropy(yTrue, yPred, { fromLogits })` — and
 * makes a loss configuration for `compile` when given only options —
 * `losses.sparseCategoricalCrossentropy({ fromLogits: true })`. Strings name them as Keras does.
 * @module
 */
import { WgradError } from "../errors.ts";
import * as ops from "../ops/loss.ts";
import { type AccuracyKind, correctCount } from "../ops/metrics.ts";
import type { Tensor } from "../tensor.ts";

export {
  checkLabels,
  type CrossentropyOptions,
  type LossOptions,
  type Reduction,
} from "../ops/loss.ts";

/** A loss as `compile` uses it. */
export interface LossSpec {
  /** Keras's name, e.g. `"sparse_categorical_crossentropy"`. */
  readonly name: string;
  /** Targets: integer labels (`"sparse"`) or one value per output (`"dense"`). */
  readonly labels: "sparse" | "dense";
  /** Whether predictions are logits. */
  readonly fromLogits: boolean;
  /**
   * The mean loss of a batch as a scalar. With `acc`, the same launch adds [loss sum, correct
   * count, samples, 1] into `acc` (see {@linkcode ops.LossOptions.accumulate}).
   */
  fn(yTrue: Tensor, yPred: Tensor<"f32">, acc?: Tensor<"f32">): Tensor<"f32">;
  /** The options it was made with. */
  readonly config: Record<string, unknown>;
  /**
   * The accuracy that `fn` counts into `acc` (absent: it counts none): the "accuracy" metric of
   * this loss, taken from the loss launch itself without a dispatch of its own.
   */
  readonly accuracy?: { readonly kind: AccuracyKind; readonly threshold: number };
}

/** A loss configuration or a Keras name. */
export type LossLike = LossSpec;

/** Options of the loss configurations. */
export interface LossConfigOptions {
  /** Predictions are logits (default false, as Keras). */
  fromLogits?: boolean;
  /** Label smoothing (categorical and binary cross-entropy). */
  labelSmoothing?: number;
}

function isTensor(v: unknown): v is Tensor {
  return v !== null && typeof v === "object" && "shape" in v && "dtype" in v && "storage" in v;
}

function spec(
  name: string,
  labels: "sparse" | "dense",
  options: LossConfigOptions,
  compute: (
    yTrue: Tensor,
    yPred: Tensor<"f32">,
    o: ops.CrossentropyOptions & { labelSmoothing?: number },
  ) => Tensor<"f32">,
  accuracy: AccuracyKind | null,
): LossSpec {
  const fromLogits = options.fromLogits ?? false;
  return {
    name,
    labels,
    fromLogits,
    config: { ...options },
    // The loss kernels threshold a binary prediction at probability 0.5 (logit 0 from logits);
    // the threshold means nothing to the argmax accuracies.
    ...(accuracy
      ? { accuracy: { kind: accuracy, threshold: accuracy === "binary" && fromLogits ? 0 : 0.5 } }
      : {}),
    fn: (yTrue, yPred, acc) =>
      compute(yTrue, yPred, {
        fromLogits,
        labelSmoothing: options.labelSmoothing,
        ...(acc ? { accumulate: acc } : {}),
      }),
  };
}

const sparseCompute = (y: Tensor, p: Tensor<"f32">, o: ops.CrossentropyOptions) =>
  ops.sparseCategoricalCrossentropy(y as Tensor<"i32">, p, o);
const catCompute = (y: Tensor, p: Tensor<"f32">, o: ops.SmoothedCrossentropyOptions) =>
  ops.categoricalCrossentropy(y as Tensor<"f32">, p, o);
const binCompute = (y: Tensor, p: Tensor<"f32">, o: ops.SmoothedCrossentropyOptions) =>
  ops.binaryCrossentropy(y as Tensor<"f32">, p, o);
const mseCompute = (y: Tensor, p: Tensor<"f32">, o: ops.LossOptions) =>
  ops.meanSquaredError(y as Tensor<"f32">, p, { reduction: o.reduction, accumulate: o.accumulate });
const maeCompute = (y: Tensor, p: Tensor<"f32">, o: ops.LossOptions) =>
  ops.meanAbsoluteError(y as Tensor<"f32">, p, {
    reduction: o.reduction,
    accumulate: o.accumulate,
  });

/**
 * Sparse categorical cross-entropy: `(yTrue, yPred, options)` computes it; `(options)` makes the
 * configuration for `compile`.
 */
export function sparseCategoricalCrossentropy(options?: LossConfigOptions): LossSpec;
/** Computes the loss of integer labels against predicted class scores. */
export function sparseCategoricalCrossentropy(
  yTrue: Tensor<"i32"> | Tensor<"u32">,
  yPred: Tensor<"f32">,
  options?: ops.CrossentropyOptions,
): Tensor<"f32">;
export function sparseCategoricalCrossentropy(
  a?: LossConfigOptions | Tensor<"i32"> | Tensor<"u32">,
  b?: Tensor<"f32">,
  c?: ops.CrossentropyOptions,
): LossSpec | Tensor<"f32"> {
  if (isTensor(a)) return ops.sparseCategoricalCrossentropy(a as Tensor<"i32">, b!, c);
  const options = (a as LossConfigOptions) ?? {};
  if (options.labelSmoothing !== undefined && options.labelSmoothing !== 0) {
    // Keras's sparse cross-entropy has no label smoothing either; smoothing needs one-hot targets.
    throw new WgradError(
      "value",
      `sparseCategoricalCrossentropy: labelSmoothing (${options.labelSmoothing}) needs one-hot ` +
        "targets; use categoricalCrossentropy({ labelSmoothing }) with datasets.oneHot(labels, classes)",
    );
  }
  return spec("sparse_categorical_crossentropy", "sparse", options, sparseCompute, "sparse");
}

/** Categorical cross-entropy: `(yTrue, yPred, options)` computes it; `(options)` configures it. */
export function categoricalCrossentropy(options?: LossConfigOptions): LossSpec;
/** Computes the loss of one-hot (or probability) targets against predictions. */
export function categoricalCrossentropy(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options?: ops.SmoothedCrossentropyOptions,
): Tensor<"f32">;
export function categoricalCrossentropy(
  a?: LossConfigOptions | Tensor<"f32">,
  b?: Tensor<"f32">,
  c?: ops.SmoothedCrossentropyOptions,
): LossSpec | Tensor<"f32"> {
  if (isTensor(a)) return ops.categoricalCrossentropy(a, b!, c);
  return spec(
    "categorical_crossentropy",
    "dense",
    (a as LossConfigOptions) ?? {},
    catCompute,
    "categorical",
  );
}

/** Binary cross-entropy: `(yTrue, yPred, options)` computes it; `(options)` configures it. */
export function binaryCrossentropy(options?: LossConfigOptions): LossSpec;
/** Computes the loss of 0/1 targets against probabilities (or logits). */
export function binaryCrossentropy(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options?: ops.SmoothedCrossentropyOptions,
): Tensor<"f32">;
export function binaryCrossentropy(
  a?: LossConfigOptions | Tensor<"f32">,
  b?: Tensor<"f32">,
  c?: ops.SmoothedCrossentropyOptions,
): LossSpec | Tensor<"f32"> {
  if (isTensor(a)) return ops.binaryCrossentropy(a, b!, c);
  return spec("binary_crossentropy", "dense", (a as LossConfigOptions) ?? {}, binCompute, "binary");
}

/** Mean squared error: `(yTrue, yPred, options)` computes it; `()` configures it. */
export function meanSquaredError(): LossSpec;
/** Computes the mean squared error. */
export function meanSquaredError(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options?: ops.LossOptions,
): Tensor<"f32">;
export function meanSquaredError(
  a?: Tensor<"f32">,
  b?: Tensor<"f32">,
  c?: ops.LossOptions,
): LossSpec | Tensor<"f32"> {
  if (isTensor(a)) return ops.meanSquaredError(a, b!, c);
  return spec("mean_squared_error", "dense", {}, mseCompute, null);
}

/** Mean absolute error: `(yTrue, yPred, options)` computes it; `()` configures it. */
export function meanAbsoluteError(): LossSpec;
/** Computes the mean absolute error. */
export function meanAbsoluteError(
  yTrue: Tensor<"f32">,
  yPred: Tensor<"f32">,
  options?: ops.LossOptions,
): Tensor<"f32">;
export function meanAbsoluteError(
  a?: Tensor<"f32">,
  b?: Tensor<"f32">,
  c?: ops.LossOptions,
): LossSpec | Tensor<"f32"> {
  if (isTensor(a)) return ops.meanAbsoluteError(a, b!, c);
  return spec("mean_absolute_error", "dense", {}, maeCompute, null);
}

const BY_NAME: Record<string, () => LossSpec> = {
  sparse_categorical_crossentropy: () => sparseCategoricalCrossentropy(),
  categorical_crossentropy: () => categoricalCrossentropy(),
  binary_crossentropy: () => binaryCrossentropy(),
  mean_squared_error: () => meanSquaredError(),
  mse: () => meanSquaredError(),
  mean_absolute_error: () => meanAbsoluteError(),
  mae: () => meanAbsoluteError(),
};

/** Resolves a loss configuration or a Keras name; throws naming `where` and the known names. */
export function resolveLoss(l: LossLike | string, where: string): LossSpec {
  if (typeof l === "string") {
    const f = BY_NAME[l.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()];
    if (!f) {
      throw new WgradError(
        "value",
        `${where}: unknown loss "${l}"; known: ${Object.keys(BY_NAME).join(", ")} ` +
          "(or losses.sparseCategoricalCrossentropy({ fromLogits: true }) and the like)",
      );
    }
    return f();
  }
  if (typeof l === "function") {
    throw new WgradError(
      "value",
      `${where}: pass a loss configuration such as losses.sparseCategoricalCrossentropy({ fromLogits: true }), ` +
        "not the loss function itself",
    );
  }
  if (!l || typeof l.fn !== "function") {
    throw new WgradError("value", `${where}: unknown loss ${String(l)}`);
  }
  return l;
}

/** A metric as `compile` uses it: the number of correct samples in a batch. */
export interface MetricSpec {
  /** The name in logs and History (`"accuracy"`, or `"acc"` when compiled with that name). */
  readonly name: string;
  /**
   * The accuracy it counts, or null when it is chosen from the shapes of the targets and
   * predictions ("accuracy" with a regression loss: binary for one output, else categorical).
   */
  readonly kind: AccuracyKind | null;
  /** Binary accuracy: a prediction above it is class 1. */
  readonly threshold: number;
  /** The count of correct samples of a batch, as a scalar f32. */
  count(yTrue: Tensor, yPred: Tensor<"f32">): Tensor<"f32">;
}

const METRICS = [
  "accuracy",
  "acc",
  "sparse_categorical_accuracy",
  "categorical_accuracy",
  "binary_accuracy",
];

/**
 * Resolves metric names. "accuracy" (or "acc") counts what the loss counts, as in Keras: sparse
 * categorical accuracy for integer labels, categorical accuracy for one-hot targets, binary
 * accuracy for binary cross-entropy; with a regression loss it follows the shapes. Binary
 * accuracy thresholds the prediction at 0.5, and, with binary cross-entropy from logits, the
 * logit at 0 (probability 0.5), where Keras thresholds the logit at 0.5 (probability 0.62).
 */
export function resolveMetrics(
  names: readonly string[],
  loss: LossSpec,
  where: string,
): MetricSpec[] {
  const seen = new Set<string>();
  return names.map((n) => {
    const key = String(n).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
    if (!METRICS.includes(key)) {
      throw new WgradError(
        "value",
        `${where}: unknown metric "${n}"; known: ${METRICS.join(", ")}`,
      );
    }
    if (seen.has(key)) {
      throw new WgradError("value", `${where}: metric "${n}" is listed twice`);
    }
    seen.add(key);
    const binaryThreshold = loss.accuracy?.kind === "binary" ? loss.accuracy.threshold : 0.5;
    const kind: AccuracyKind | null = key === "sparse_categorical_accuracy"
      ? "sparse"
      : key === "categorical_accuracy"
      ? "categorical"
      : key === "binary_accuracy"
      ? "binary"
      : loss.accuracy?.kind ?? null;
    const threshold = kind === "binary" ? binaryThreshold : 0.5;
    return {
      name: key,
      kind,
      threshold,
      count: (yTrue: Tensor, yPred: Tensor<"f32">) =>
        correctCount(yTrue, yPred, kind ? { kind, threshold } : { threshold }),
    };
  });
}

/** Whether the loss launch itself counts `m` (so that `m` needs no dispatch of its own). */
export function countedByLoss(m: MetricSpec, loss: LossSpec): boolean {
  return loss.accuracy !== undefined && m.kind === loss.accuracy.kind &&
    (m.kind !== "binary" || m.threshold === loss.accuracy.threshold);
}
