/**
 * Learning-rate schedules with Keras 3's semantics: `exponentialDecay`, `piecewiseConstantDecay`
 * and `cosineDecay` (with optional linear warmup). A schedule is evaluated at the optimizer's
 * `iterations` before the step increments it, as Keras does, so the first step uses `at(0)`.
 *
 * The optimizer kernel evaluates schedules on the GPU from its own step counter (so a recorded
 * step can be replayed without any CPU work); {@linkcode LearningRateSchedule.at} is the same
 * formula in float64 on the CPU.
 * @module
 */
import { WgradError } from "../errors.ts";

/** The largest number of boundaries a piecewise-constant schedule may have. */
export const MAX_BOUNDARIES = 100;

/** A learning-rate schedule: a function of the optimizer step, evaluated on the GPU. */
export abstract class LearningRateSchedule {
  /** The schedule's kind, as Keras names the class. */
  abstract readonly kind: "ExponentialDecay" | "PiecewiseConstantDecay" | "CosineDecay";

  /** The learning rate at optimizer step `step` (0 for the first step), in float64. */
  abstract at(step: number): number;

  /** Keras-style configuration (the options the schedule was made with). */
  abstract getConfig(): Record<string, unknown>;
}

/** Options of {@linkcode exponentialDecay}. */
export interface ExponentialDecayOptions {
  /** The learning rate at step 0. */
  initialLearningRate: number;
  /** Steps per decay period; must be positive. */
  decaySteps: number;
  /** The factor per period. */
  decayRate: number;
  /** Decay at whole periods only (`floor(step / decaySteps)`), default false. */
  staircase?: boolean;
}

/** `initialLearningRate · decayRate ^ (step / decaySteps)` (Keras's `ExponentialDecay`). */
export class ExponentialDecay extends LearningRateSchedule {
  /** The kind. */
  readonly kind = "ExponentialDecay" as const;
  /** The learning rate at step 0. */
  readonly initialLearningRate: number;
  /** Steps per decay period. */
  readonly decaySteps: number;
  /** The factor per period. */
  readonly decayRate: number;
  /** Whether the exponent is floored. */
  readonly staircase: boolean;

  /** Checks and keeps the options. */
  constructor(options: ExponentialDecayOptions) {
    super();
    const { initialLearningRate, decaySteps, decayRate, staircase = false } = options;
    finite("exponentialDecay", { initialLearningRate, decaySteps, decayRate });
    if (!(decaySteps > 0)) {
      throw new WgradError(
        "value",
        `exponentialDecay: decaySteps must be > 0, got ${decaySteps}`,
      );
    }
    if (!(decayRate > 0)) {
      throw new WgradError("value", `exponentialDecay: decayRate must be > 0, got ${decayRate}`);
    }
    this.initialLearningRate = initialLearningRate;
    this.decaySteps = decaySteps;
    this.decayRate = decayRate;
    this.staircase = staircase;
  }

  /** The learning rate at `step`. */
  at(step: number): number {
    let p = step / this.decaySteps;
    if (this.staircase) p = Math.floor(p);
    return this.initialLearningRate * this.decayRate ** p;
  }

  /** The options. */
  getConfig(): Record<string, unknown> {
    const { initialLearningRate, decaySteps, decayRate, staircase } = this;
    return { initialLearningRate, decaySteps, decayRate, staircase };
  }
}

/** Options of {@linkcode piecewiseConstantDecay}. */
export interface PiecewiseConstantDecayOptions {
  /** Strictly increasing step numbers (non-negative integers). */
  boundaries: readonly number[];
  /** One more value than boundaries. */
  values: readonly number[];
}

/**
 * `values[0]` while `step <= boundaries[0]`, `values[k]` while
 * `boundaries[k-1] < step <= boundaries[k]`, and the last value after the last boundary
 * (Keras's `PiecewiseConstantDecay`).
 */
export class PiecewiseConstantDecay extends LearningRateSchedule {
  /** The kind. */
  readonly kind = "PiecewiseConstantDecay" as const;
  /** The boundaries. */
  readonly boundaries: readonly number[];
  /** The values. */
  readonly values: readonly number[];

  /** Checks and keeps the options. */
  constructor(options: PiecewiseConstantDecayOptions) {
    super();
    const { boundaries, values } = options;
    if (!Array.isArray(boundaries) || !Array.isArray(values)) {
      throw new WgradError("value", "piecewiseConstantDecay: boundaries and values must be arrays");
    }
    if (boundaries.length !== values.length - 1) {
      throw new WgradError(
        "value",
        `piecewiseConstantDecay: the length of boundaries should be 1 less than the length of ` +
          `values; got ${boundaries.length} boundaries and ${values.length} values`,
      );
    }
    if (boundaries.length > MAX_BOUNDARIES) {
      throw new WgradError(
        "limit",
        `piecewiseConstantDecay: at most ${MAX_BOUNDARIES} boundaries, got ${boundaries.length}`,
      );
    }
    boundaries.forEach((b, i) => {
      if (!Number.isInteger(b) || b < 0 || b > 2 ** 32 - 1) {
        throw new WgradError(
          "value",
          `piecewiseConstantDecay: boundary ${i} must be a step number (an integer >= 0), got ${b}`,
        );
      }
      if (i > 0 && !(b > boundaries[i - 1])) {
        throw new WgradError(
          "value",
          `piecewiseConstantDecay: boundaries must increase strictly; ${b} follows ${
            boundaries[i - 1]
          }`,
        );
      }
    });
    values.forEach((v, i) => {
      if (!Number.isFinite(v)) {
        throw new WgradError("value", `piecewiseConstantDecay: value ${i} is not finite (${v})`);
      }
    });
    this.boundaries = Object.freeze([...boundaries]);
    this.values = Object.freeze([...values]);
  }

  /** The learning rate at `step`. */
  at(step: number): number {
    let k = 0;
    while (k < this.boundaries.length && step > this.boundaries[k]) k++;
    return this.values[k];
  }

  /** The options. */
  getConfig(): Record<string, unknown> {
    return { boundaries: [...this.boundaries], values: [...this.values] };
  }
}

/** Options of {@linkcode cosineDecay}. */
export interface CosineDecayOptions {
  /** The learning rate at step 0 (the warmup's start when warming up). */
  initialLearningRate: number;
  /** Steps of the cosine decay (after the warmup); must be positive. */
  decaySteps: number;
  /** The final learning rate as a fraction of the decay's start (default 0). */
  alpha?: number;
  /** Warm up linearly from `initialLearningRate` to this value first (default: no warmup). */
  warmupTarget?: number;
  /** Steps of the warmup (default 0). */
  warmupSteps?: number;
}

/**
 * Cosine decay from `initialLearningRate` (or, after a linear warmup, from `warmupTarget`) to
 * `alpha` times that over `decaySteps` steps, constant afterwards (Keras's `CosineDecay`).
 */
export class CosineDecay extends LearningRateSchedule {
  /** The kind. */
  readonly kind = "CosineDecay" as const;
  /** The learning rate at step 0. */
  readonly initialLearningRate: number;
  /** Steps of the decay. */
  readonly decaySteps: number;
  /** The final fraction. */
  readonly alpha: number;
  /** The warmup's target, or null for no warmup. */
  readonly warmupTarget: number | null;
  /** Steps of the warmup. */
  readonly warmupSteps: number;

  /** Checks and keeps the options. */
  constructor(options: CosineDecayOptions) {
    super();
    const { initialLearningRate, decaySteps, alpha = 0, warmupTarget, warmupSteps = 0 } = options;
    finite("cosineDecay", { initialLearningRate, decaySteps, alpha, warmupSteps });
    if (!(decaySteps > 0)) {
      throw new WgradError("value", `cosineDecay: decaySteps must be > 0, got ${decaySteps}`);
    }
    if (warmupTarget !== undefined && warmupTarget !== null && !Number.isFinite(warmupTarget)) {
      throw new WgradError(
        "value",
        `cosineDecay: warmupTarget must be finite, got ${warmupTarget}`,
      );
    }
    if (!(warmupSteps >= 0)) {
      throw new WgradError("value", `cosineDecay: warmupSteps must be >= 0, got ${warmupSteps}`);
    }
    this.initialLearningRate = initialLearningRate;
    this.decaySteps = decaySteps;
    this.alpha = alpha;
    this.warmupTarget = warmupTarget ?? null;
    this.warmupSteps = warmupSteps;
  }

  #decayed(fraction: number): number {
    return (1 - this.alpha) * (0.5 * (1 + Math.cos(Math.PI * fraction))) + this.alpha;
  }

  /** The learning rate at `step`. */
  at(step: number): number {
    if (this.warmupTarget === null) {
      const s = Math.min(step, this.decaySteps);
      return this.initialLearningRate * this.#decayed(s / this.decaySteps);
    }
    const s = Math.min(step, this.decaySteps + this.warmupSteps);
    if (s < this.warmupSteps) {
      return (this.warmupTarget - this.initialLearningRate) * (s / this.warmupSteps) +
        this.initialLearningRate;
    }
    return this.warmupTarget * this.#decayed((s - this.warmupSteps) / this.decaySteps);
  }

  /** The options. */
  getConfig(): Record<string, unknown> {
    const { initialLearningRate, decaySteps, alpha, warmupTarget, warmupSteps } = this;
    return { initialLearningRate, decaySteps, alpha, warmupTarget, warmupSteps };
  }
}

function finite(op: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new WgradError("value", `${op}: ${k} must be a finite number, got ${String(v)}`);
    }
  }
}

/**
 * Exponential decay, as Keras's `ExponentialDecay`:
 * `initialLearningRate · decayRate ^ (step / decaySteps)` (the exponent floored with `staircase`).
 *
 * ```ts
 * const opt = sgd({ learningRate: exponentialDecay({ initialLearningRate: 0.1, decaySteps: 1000, decayRate: 0.96 }) });
 * ```
 */
export function exponentialDecay(options: ExponentialDecayOptions): ExponentialDecay {
  return new ExponentialDecay(options);
}

/** Piecewise-constant decay, as Keras's `PiecewiseConstantDecay`. */
export function piecewiseConstantDecay(
  options: PiecewiseConstantDecayOptions,
): PiecewiseConstantDecay {
  return new PiecewiseConstantDecay(options);
}

/** Cosine decay with an optional linear warmup, as Keras's `CosineDecay`. */
export function cosineDecay(options: CosineDecayOptions): CosineDecay {
  return new CosineDecay(options);
}

/** A learning rate: a number or a schedule. */
export type LearningRate = number | LearningRateSchedule;
