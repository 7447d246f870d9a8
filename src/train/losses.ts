/**
 * Losses and metrics for `compile`, Keras-style: each loss is a function that computes the loss
 * when given tensors — `losses.sparseCategoricalCrossentropy(yTrue, yPred, { fromLogits })` — and
 * makes a loss configuration for `compile` when given only options —
 * `losses.sparseCategoricalCrossentropy({ fromLogits: true })`. Strings name them as Keras does.
 * @module
 */
import { WgradError } from "../errors.ts";
import * as ops from "../ops/loss.ts";
import { correctCount } from "../ops/metrics.ts";
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
): LossSpec {
  const fromLogits = options.fromLogits ?? false;
  return {
    name,
    labels,
    fromLogits,
    config: { ...options },
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
  return spec(
    "sparse_categorical_crossentropy",
    "sparse",
    (a as LossConfigOptions) ?? {},
    sparseCompute,
  );
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
  return spec("categorical_crossentropy", "dense", (a as LossConfigOptions) ?? {}, catCompute);
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
  return spec("binary_crossentropy", "dense", (a as LossConfigOptions) ?? {}, binCompute);
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
  return spec("mean_squared_error", "dense", {}, mseCompute);
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
  return spec("mean_absolute_error", "dense", {}, maeCompute);
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
  /** The name in logs and History (`"accuracy"`). */
  readonly name: string;
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

/** Resolves metric names; "accuracy" follows the loss, as in Keras. */
export function resolveMetrics(
  names: readonly string[],
  loss: LossSpec,
  where: string,
): MetricSpec[] {
  return names.map((n) => {
    const key = String(n).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
    if (!METRICS.includes(key)) {
      throw new WgradError(
        "value",
        `${where}: unknown metric "${n}"; known: ${METRICS.join(", ")}`,
      );
    }
    const kind = key === "sparse_categorical_accuracy"
      ? "sparse"
      : key === "categorical_accuracy"
      ? "categorical"
      : key === "binary_accuracy" || loss.name === "binary_crossentropy"
      ? "binary"
      : undefined;
    return {
      name: key === "acc" ? "accuracy" : key,
      count: (yTrue: Tensor, yPred: Tensor<"f32">) =>
        correctCount(yTrue, yPred, kind ? { kind } : {}),
    };
  });
}
