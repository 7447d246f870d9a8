/**
 * Optimizer resolution for `compile`: an optimizer object or one of Keras's names.
 * @module
 */
import { WgradError } from "../errors.ts";
import type { ParamArena } from "../optim/arena.ts";
import type { WeightUpdate } from "../ops/matmul.ts";
import { adagrad, adam, adamw, rmsprop, sgd } from "../optim/optimizers.ts";

/** What `compile` needs of an optimizer. */
export interface OptimizerLike {
  /**
   * Records one update of every parameter in the arena from its gradients (but those in
   * `updated`, which the step's products already updated); with `keepGradients` the gradient
   * slots may be left as they are (the caller overwrites them all, or never reads them).
   */
  step(
    arena: ParamArena,
    options?: { keepGradients?: boolean; updated?: readonly number[] },
  ): void;
  /** The current learning rate (settable by callbacks). */
  learningRate: number;
  /**
   * The update of one parameter as the epilogue of the product that computes its gradient, or
   * null (the built-in optimizers have it; see `Optimizer.weightUpdate`).
   */
  weightUpdate?(arena: ParamArena, index: number, applied: () => void): WeightUpdate | null;
}

const BY_NAME: Record<string, () => OptimizerLike> = {
  adam: () => adam(),
  adamw: () => adamw(),
  sgd: () => sgd(),
  rmsprop: () => rmsprop(),
  adagrad: () => adagrad(),
};

/** Resolves an optimizer or a Keras name ("adam", "sgd", "rmsprop", "adagrad", "adamw"). */
export function resolveOptimizer(o: OptimizerLike | string, where: string): OptimizerLike {
  if (typeof o === "string") {
    const f = BY_NAME[o.toLowerCase()];
    if (!f) {
      throw new WgradError(
        "value",
        `${where}: unknown optimizer "${o}"; known: ${Object.keys(BY_NAME).join(", ")}`,
      );
    }
    return f();
  }
  if (!o || typeof (o as OptimizerLike).step !== "function") {
    throw new WgradError(
      "value",
      `${where}: optimizer must be an optimizer object (optim.adam(…)) or a name, got ${String(o)}`,
    );
  }
  return o;
}
