/**
 * Float64 CPU references for the optimizers and learning-rate schedules, written plainly from
 * Keras 3's source (keras/src/optimizers/{sgd,adam,adamw,rmsprop,adagrad,base_optimizer}.py and
 * schedules/learning_rate_schedule.py), one loop per formula.
 *
 * Keras computes in float32. Schedules take their hyperparameters as given; Keras casts them to
 * float32 first, and the tests that compare with the GPU pass them through `f32`. For the
 * optimizers, where Keras casts a Python float hyperparameter to float32 (the
 * learning-rate variable, `ops.cast(beta_1, dtype)`, `1 - beta_1` computed in Python and then
 * used with a float32 tensor), the reference rounds the same value to float32 with `f32`; all
 * arithmetic is then done in float64, so the reference is Keras's formula without float32 rounding
 * of intermediate results.
 * @module
 */

/** Rounds to the nearest float32 (a Keras cast to the variable's dtype). */
export const f32: (x: number) => number = Math.fround;

// ---------------------------------------------------------------------------------------------
// Schedules (evaluated at `iterations`, before the step increments it)

/** Keras ExponentialDecay. */
export function refExponentialDecay(
  step: number,
  initial: number,
  decaySteps: number,
  decayRate: number,
  staircase: boolean,
): number {
  let p = step / decaySteps;
  if (staircase) p = Math.floor(p);
  return initial * Math.pow(decayRate, p);
}

/** Keras PiecewiseConstantDecay: a sum of indicator functions times values, as Keras writes it. */
export function refPiecewiseConstant(
  step: number,
  boundaries: readonly number[],
  values: readonly number[],
): number {
  let r = 0;
  if (step <= boundaries[0]) r += values[0];
  if (step > boundaries[boundaries.length - 1]) r += values[values.length - 1];
  for (let i = 0; i + 1 < boundaries.length; i++) {
    if (step > boundaries[i] && step <= boundaries[i + 1]) r += values[i + 1];
  }
  return r;
}

/**
 * Keras CosineDecay, with warmup when `warmupTarget` is not null. `cast` is applied where Keras
 * uses `alpha` and `1 - alpha` (Python floats) with float32 tensors.
 */
export function refCosineDecay(
  step: number,
  initial: number,
  decaySteps: number,
  alpha: number,
  warmupTarget: number | null,
  warmupSteps: number,
  cast: (x: number) => number = (x) => x,
): number {
  const decay = (s: number, from: number): number => {
    const completed = s / decaySteps;
    const cosineDecayed = 0.5 * (1 + Math.cos(Math.PI * completed));
    return from * (cast(1 - alpha) * cosineDecayed + cast(alpha));
  };
  if (warmupTarget === null) return decay(Math.min(step, decaySteps), initial);
  const s = Math.min(step, decaySteps + warmupSteps);
  if (s < warmupSteps) return (warmupTarget - initial) * (s / warmupSteps) + initial;
  return decay(s - warmupSteps, warmupTarget);
}

// ---------------------------------------------------------------------------------------------
// Optimizers

/** A reference optimizer's configuration: Keras's arguments, with Keras's defaults. */
export interface RefConfig {
  /** Which update_step. */
  kind: "sgd" | "adam" | "rmsprop" | "adagrad";
  /** A number, or the learning rate at a step (a schedule). */
  learningRate: number | ((step: number) => number);
  /** SGD / RMSprop momentum. */
  momentum?: number;
  /** SGD Nesterov. */
  nesterov?: boolean;
  /** Adam beta_1. */
  beta1?: number;
  /** Adam beta_2. */
  beta2?: number;
  /** Epsilon of Adam, RMSprop, Adagrad. */
  epsilon?: number;
  /** Adam AMSGrad. */
  amsgrad?: boolean;
  /** RMSprop rho. */
  rho?: number;
  /** RMSprop centered. */
  centered?: boolean;
  /** Adagrad initial accumulator value. */
  initialAccumulatorValue?: number;
  /** Weight decay (null: none). */
  weightDecay?: number | null;
  /** Per variable: whether weight decay applies (default all). */
  decayMask?: readonly boolean[];
  /** Per-variable clip norm. */
  clipnorm?: number | null;
  /** Global clip norm. */
  globalClipnorm?: number | null;
  /** Clip value. */
  clipvalue?: number | null;
}

/** Keras 3's optimizer loop over float64 copies of the variables. */
export class RefOptimizer {
  /** The variables. */
  readonly vars: Float64Array[];
  /** Slot name → one array per variable (Keras's names). */
  readonly slots: Record<string, Float64Array[]> = {};
  /** Keras's `iterations`. */
  iterations = 0;
  readonly #c: RefConfig;

  /** Copies the initial values. */
  constructor(config: RefConfig, initial: readonly ArrayLike<number>[]) {
    this.#c = config;
    this.vars = initial.map((v) => Float64Array.from(v));
    const zeros = () => this.vars.map((v) => new Float64Array(v.length));
    const c = config;
    if (c.kind === "sgd" && (c.momentum ?? 0) !== 0) this.slots.momentum = zeros();
    if (c.kind === "adam") {
      this.slots.momentum = zeros();
      this.slots.velocity = zeros();
      if (c.amsgrad) this.slots.velocity_hat = zeros();
    }
    if (c.kind === "rmsprop") {
      this.slots.velocity = zeros();
      if ((c.momentum ?? 0) > 0) this.slots.momentum = zeros();
      if (c.centered) this.slots.average_gradient = zeros();
    }
    if (c.kind === "adagrad") {
      const init = f32(c.initialAccumulatorValue ?? 0.1);
      this.slots.accumulator = this.vars.map((v) => new Float64Array(v.length).fill(init));
    }
  }

  /** The learning rate of the current step (a float32 in Keras). */
  learningRate(): number {
    const lr = this.#c.learningRate;
    return f32(typeof lr === "number" ? lr : lr(this.iterations));
  }

  /** Sets a constant learning rate (a callback). */
  setLearningRate(lr: number): void {
    (this.#c as { learningRate: number }).learningRate = lr;
  }

  /** BaseOptimizer._clip_gradients. */
  #clip(grads: Float64Array[]): Float64Array[] {
    const c = this.#c;
    if (c.clipnorm && c.clipnorm > 0) {
      const cn = f32(c.clipnorm);
      return grads.map((g) => {
        let l2sum = 0;
        for (const x of g) l2sum += x * x;
        const l2norm = l2sum > 0 ? Math.sqrt(l2sum) : l2sum;
        return g.map((x) => (x * cn) / Math.max(l2norm, cn));
      });
    }
    if (c.globalClipnorm && c.globalClipnorm > 0) {
      const cn = f32(c.globalClipnorm);
      let sq = 0;
      for (const g of grads) for (const x of g) sq += x * x;
      const useNorm = Math.sqrt(sq);
      const scale = cn * Math.min(1 / useNorm, 1 / cn) + (useNorm - useNorm);
      return grads.map((g) => g.map((x) => x * scale));
    }
    if (c.clipvalue && c.clipvalue > 0) {
      const v = f32(c.clipvalue);
      return grads.map((g) => g.map((x) => Math.min(Math.max(x, -v), v)));
    }
    return grads;
  }

  /** One `apply`: clip, weight decay, update_step for every variable, iterations += 1. */
  step(gradients: readonly ArrayLike<number>[]): void {
    const c = this.#c;
    const grads = this.#clip(gradients.map((g) => Float64Array.from(g)));
    const lr = this.learningRate();
    if (c.weightDecay !== undefined && c.weightDecay !== null) {
      const wd = f32(c.weightDecay);
      this.vars.forEach((v, k) => {
        if (c.decayMask && !c.decayMask[k]) return;
        for (let i = 0; i < v.length; i++) v[i] = v[i] - v[i] * wd * lr;
      });
    }
    this.vars.forEach((v, k) => this.#update(k, v, grads[k], lr));
    this.iterations++;
  }

  #update(k: number, w: Float64Array, g: Float64Array, lr: number): void {
    const c = this.#c;
    const n = w.length;
    if (c.kind === "sgd") {
      const momentum = c.momentum ?? 0;
      if (momentum !== 0) {
        const mu = f32(momentum);
        const m = this.slots.momentum[k];
        for (let i = 0; i < n; i++) {
          m[i] = m[i] * mu - g[i] * lr;
          if (c.nesterov) w[i] += m[i] * mu - g[i] * lr;
          else w[i] += m[i];
        }
      } else {
        for (let i = 0; i < n; i++) w[i] -= g[i] * lr;
      }
    } else if (c.kind === "adam") {
      const b1 = c.beta1 ?? 0.9, b2 = c.beta2 ?? 0.999;
      const localStep = this.iterations + 1;
      const b1Power = Math.pow(f32(b1), localStep);
      const b2Power = Math.pow(f32(b2), localStep);
      const alpha = lr * Math.sqrt(1 - b2Power) / (1 - b1Power);
      const oneMinusB1 = f32(1 - b1), oneMinusB2 = f32(1 - b2);
      const eps = f32(c.epsilon ?? 1e-7);
      const m = this.slots.momentum[k], v = this.slots.velocity[k];
      for (let i = 0; i < n; i++) {
        m[i] += (g[i] - m[i]) * oneMinusB1;
        v[i] += (g[i] * g[i] - v[i]) * oneMinusB2;
        let vv = v[i];
        if (c.amsgrad) {
          const vh = this.slots.velocity_hat[k];
          vh[i] = Math.max(vh[i], v[i]);
          vv = vh[i];
        }
        w[i] -= (m[i] * alpha) / (Math.sqrt(vv) + eps);
      }
    } else if (c.kind === "rmsprop") {
      const rho = f32(c.rho ?? 0.9), oneMinusRho = f32(1 - (c.rho ?? 0.9));
      const eps = f32(c.epsilon ?? 1e-7);
      const momentum = c.momentum ?? 0;
      const vel = this.slots.velocity[k];
      for (let i = 0; i < n; i++) {
        vel[i] = rho * vel[i] + oneMinusRho * (g[i] * g[i]);
        let denominator: number;
        if (c.centered) {
          const a = this.slots.average_gradient[k];
          a[i] = rho * a[i] + oneMinusRho * g[i];
          denominator = vel[i] - a[i] * a[i] + eps;
        } else {
          denominator = vel[i] + eps;
        }
        const increment = (lr * g[i]) / Math.sqrt(denominator);
        if (momentum > 0) {
          const mom = this.slots.momentum[k];
          mom[i] = f32(momentum) * mom[i] + increment;
          w[i] -= mom[i];
        } else {
          w[i] -= increment;
        }
      }
    } else {
      const eps = f32(c.epsilon ?? 1e-7);
      const acc = this.slots.accumulator[k];
      for (let i = 0; i < n; i++) {
        acc[i] += g[i] * g[i];
        w[i] -= (lr * g[i]) / Math.sqrt(acc[i] + eps);
      }
    }
  }
}
