/**
 * Optimizers as fused WGSL updates over flat parameter arenas, and learning-rate schedules, with
 * Keras 3's names, defaults and formulas.
 *
 * ```ts
 * import { grad, optim, square, sum } from "./mod.ts";
 * const arena = new optim.ParamArena([{ name: "w", value: [1, 2, 3] }]);
 * const opt = optim.adam({ learningRate: 0.1 });
 * const [w] = arena.params;
 * opt.applyGradients(await grad(() => sum(square(w)), [w]), arena); // one fused dispatch
 * ```
 * @module
 */
export {
  ARENA_BLOCK,
  ParamArena,
  type ParamArenaOptions,
  type ParamInit,
  type ParamSpec,
  type ParamValue,
} from "./arena.ts";
export {
  Adagrad,
  adagrad,
  type AdagradOptions,
  Adam,
  adam,
  type AdamOptions,
  AdamW,
  adamw,
  type AdamWOptions,
  type KernelSpec,
  Optimizer,
  type OptimizerOptions,
  type OptimizerState,
  RMSprop,
  rmsprop,
  type RmspropOptions,
  SGD,
  sgd,
  type SgdOptions,
  type StepOptions,
} from "./optimizers.ts";
export {
  CosineDecay,
  cosineDecay,
  type CosineDecayOptions,
  ExponentialDecay,
  exponentialDecay,
  type ExponentialDecayOptions,
  type LearningRate,
  LearningRateSchedule,
  MAX_BOUNDARIES,
  PiecewiseConstantDecay,
  piecewiseConstantDecay,
  type PiecewiseConstantDecayOptions,
} from "./schedules.ts";
