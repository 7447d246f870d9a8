/**
 * Optimizers as fused WGSL updates over a {@linkcode ParamArena}: `sgd`, `adam`, `adamw`, `rmsprop`
 * and `adagrad`, with Keras 3's defaults and update formulas, Keras's `clipnorm`,
 * `globalClipnorm`, `clipvalue` and `weightDecay`, and learning-rate schedules.
 *
 * One step is one dispatch over the whole arena (two when a gradient norm is needed first: a
 * reduction, then the update): it reads the gradients and the state, updates the parameters and
 * the state, and clears the gradients. Each invocation of the update handles 64 elements and keeps
 * its own copy of the step counter (Keras's `iterations`) in the optimizer's control buffer; it
 * reads it, computes the scheduled learning rate and Adam's bias correction from it in f32 (with
 * its own exp and cos, accurate to about an ulp on every adapter), and writes it back incremented.
 * So per-step values never come from the CPU, and a recorded step replays as it is (see
 * {@linkcode Optimizer.stepSpecs}). In `fit`'s compiled step, a dense kernel is updated by the
 * product that computes its gradient (the same formulas, in its epilogue; not with clipnorm or
 * globalClipnorm), and the step's dispatch updates the other parameters (one dispatch per 1,024
 * blocks of them). Setting {@linkcode Optimizer.learningRate} (a callback) writes
 * the control buffer with `queue.writeBuffer`, which applies to the steps recorded afterwards.
 *
 * Keras parity. The formulas are Keras 3's (`keras/src/optimizers/*.py`), which are also those of
 * the optimizers Keras 2.11+ made default; Keras 2's older `optimizer_v2` (tf.keras ≤ 2.10, now
 * `keras.optimizers.legacy`) differs:
 * - RMSprop: Keras 3 divides by `√(v + ε)`; optimizer_v2 divided by `√v + ε` without momentum and
 *   by `√(v + ε)` with momentum (TF's fused kernel). Keras 3 accepts any momentum ≥ 0.
 * - Adagrad: Keras 3 divides by `√(acc + ε)`; optimizer_v2 by `√acc + ε`.
 * - Adam: both use `α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)` and `m·α/(√v + ε)` (ε outside the root, on the
 *   uncorrected v, Keras's "epsilon hat"); Keras 3 writes the moments as `m += (g − m)(1 − β₁)`.
 * - SGD: both keep `v = μv − lr·g; w += v` (the learning rate inside the velocity, unlike
 *   PyTorch's `v = μv + g; w −= lr·v`); Nesterov adds `μv − lr·g`.
 * - Weight decay: Keras 3 (all optimizers, AdamW's default 0.004) applies `w −= w·wd·lr` before
 *   the update, with the scheduled learning rate; optimizer_v2 had no weight decay (TF Addons'
 *   AdamW subtracted `wd·w` unscaled by the learning rate). Keras 3 dropped optimizer_v2's `decay`.
 * - Clipping is the same in both: per variable `g·c/max(‖g‖, c)`, global
 *   `g·c·min(1/‖G‖, 1/c)` (NaN everywhere when the global norm is not finite), by value `clip`.
 *   Only one of them may be set; a value of 0 means off, as in Keras.
 * - Schedules are evaluated at `iterations` before the increment (the first step uses step 0);
 *   Adam's bias correction uses `iterations + 1`.
 * Hyperparameters are rounded to f32 where Keras casts them (β, ε, ρ, momentum, the learning
 * rate, `1 − β` computed in float64 first, as Python does). Not implemented: `use_ema`,
 * `loss_scale_factor`, `gradient_accumulation_steps`, callable learning rates, and the other
 * Keras optimizers and schedules. A parameter without a gradient gets a zero gradient (its
 * momentum still decays) where Keras skips it.
 * @module
 */
import fillSrc from "../../shaders/fill.wgsl" with { type: "text" };
import optimSrc from "../../shaders/optim.wgsl" with { type: "text" };
import optimUpdateSrc from "../../shaders/optim_update.wgsl" with { type: "text" };
import { WgradError } from "../errors.ts";
import { type DispatchSpec, ready, type Runtime, schedule, type Storage } from "../gpu/runtime.ts";
import type { WeightUpdate } from "../ops/matmul.ts";
import { grid } from "../ops/util.ts";
import { ARENA_BLOCK, type ParamArena, type ParamValue } from "./arena.ts";
import {
  CosineDecay,
  ExponentialDecay,
  type LearningRate,
  LearningRateSchedule,
  MAX_BOUNDARIES,
  PiecewiseConstantDecay,
} from "./schedules.ts";

const OPTIM = { name: "optim", code: optimUpdateSrc + optimSrc };
const FILL = { name: "fill", code: fillSrc };

// Word offsets in the control buffer (see shaders/optim.wgsl).
const H_LR = 0, H_KIND = 1, H_S0 = 2, H_S1 = 3, H_S2 = 4, H_S3 = 5, H_S4 = 6, H_S5 = 7;
const H_BETA1 = 8, H_BETA2 = 9, H_EPS = 10, H_RHO = 11, H_1MBETA1 = 12, H_1MBETA2 = 13;
const H_LNBETA1 = 14, H_LNBETA2 = 15, H_WD = 16, H_CLIP = 17;
const O_LR = 24;
const PW_TABLE = 32;
const SEG_BASE = 256;
/** Blocks one listed update takes (`p.list` in shaders/optim.wgsl); more take several dispatches. */
const LIST_BLOCKS = 1024;
/** Invocations per workgroup of the update, and blocks (of ARENA_BLOCK elements) per workgroup. */
const WORKGROUP = 64, BLOCKS_PER_WORKGROUP = 16;
/** ln(0) stand-in: beta^t underflows to 0 on the GPU. */
const LN_ZERO = -1e30;

/** The optimizer families of the kernel (`OPT` in shaders/optim.wgsl). */
const OPT_CODE = { sgd: 0, adam: 1, rmsprop: 2, adagrad: 3 } as const;

/** Options every optimizer takes (Keras's base optimizer arguments). */
export interface OptimizerOptions {
  /** A name for messages. */
  name?: string;
  /**
   * Decoupled weight decay: before the update, `w -= w · weightDecay · learningRate` (as Keras's
   * `weight_decay`). Off unless given (AdamW defaults to 0.004).
   */
  weightDecay?: number;
  /** Parameters whose names match (a RegExp, or a string read as a RegExp, as Keras) skip weight decay. */
  excludeFromWeightDecay?: readonly (string | RegExp)[];
  /** Clip each parameter's gradient to this L2 norm: `g · c / max(‖g‖, c)`. */
  clipnorm?: number;
  /** Clip all gradients together to this global L2 norm: `g · c · min(1/‖G‖, 1/c)`. */
  globalClipnorm?: number;
  /** Clip every gradient element to [-clipvalue, clipvalue]. */
  clipvalue?: number;
}

/** Optimizer state for checkpoints: the step count and the slot values per parameter. */
export interface OptimizerState {
  /** Steps taken (Keras's `iterations`). */
  iterations: number;
  /** The learning rate when it is a number (callbacks may have changed it); absent for schedules. */
  learningRate?: number;
  /** Slot name (Keras's: `momentum`, `velocity`, …) → one array per parameter, in arena order. */
  slots: Record<string, Float32Array[]>;
}

/** @internal What a subclass tells the base: kernel family, constants, slots and scalars. */
export interface KernelSpec {
  /** Kernel family. */
  opt: keyof typeof OPT_CODE;
  /** Override constants besides OPT, CLIP and DECAY. */
  constants: Record<string, number>;
  /** Slot names at state bindings s0, s1, s2 (null: unused), with their initial value. */
  slots: readonly ({ name: string; init: number } | null)[];
  /** Hyperparameter words (index → f32 value). */
  hyper: readonly (readonly [number, number])[];
}

/** Options of {@linkcode Optimizer.step}. */
export interface StepOptions {
  /**
   * Leave the gradient slots as they are instead of clearing them (default false): for callers
   * that overwrite every slot before the next step.
   */
  keepGradients?: boolean;
  /**
   * @internal Parameters (arena indices) that this step's weight-gradient products have already
   * updated through {@linkcode Optimizer.weightUpdate}: the update leaves them alone.
   */
  updated?: readonly number[];
}

interface GpuState {
  ctl: Storage;
  /** Storages bound as s0, s1, s2 (dummies where unused). */
  bound: Storage[];
  /** Per slot name, its storage. */
  slots: Map<string, Storage>;
  specs: DispatchSpec[];
  /** The same step leaving the gradient slots as they are ({@linkcode StepOptions}). */
  specsKeep: DispatchSpec[];
  /** Word offset of the step counters in the control buffer. */
  counters: number;
  /** Invocations of the update, each with its own step counter. */
  ninv: number;
  /** Per parameter, whether weight decay applies to it. */
  decays: boolean[];
  /** The update's override constants (OPT, CLIP, DECAY and the family's own). */
  constants: Record<string, number>;
}

function checkNumber(op: string, name: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi) {
    const range = hi === Infinity ? (lo === -Infinity ? "" : ` >= ${lo}`) : ` in [${lo}, ${hi}]`;
    throw new WgradError(
      "value",
      `${op}: ${name} must be a finite number${range}, got ${String(v)}`,
    );
  }
  return v;
}

function checkLearningRate(op: string, lr: unknown): LearningRate {
  if (lr instanceof LearningRateSchedule) return lr;
  return checkNumber(op, "learningRate", lr);
}

/** ln of the f32 value of `beta`, as an f32 (Keras raises the f32 beta to the step). */
function lnF32(beta: number): number {
  const b = Math.fround(beta);
  return b === 0 ? LN_ZERO : Math.log(b);
}

/**
 * The WGSL of the optimizer epilogue of shaders/matmul.wgsl: the control buffer at binding 2, the
 * parameter region at 4 and the slots `used` (of s0, s1, s2) at 5.., `prepare_y` (the step's
 * scalars, from invocation 0's step counter) and `st_y`, which updates the parameter elements
 * p.upd_offset + i.. (the first `count`) with `v` as their gradient.
 */
function updateEpilogue(used: readonly number[], vec: boolean): string {
  const ty = vec ? "vec4<f32>" : "f32";
  let s = `@group(0) @binding(2) var<storage, read> ctl: array<u32>;
@group(0) @binding(4) var<storage, read_write> upd_w: array<${ty}>;
`;
  used.forEach((k, j) => {
    s += `@group(0) @binding(${5 + j}) var<storage, read_write> upd_s${k}: array<${ty}>;\n`;
  });
  s += `var<private> upd_step: Step;
fn prepare_y() {
  upd_step = step_scalars(ctl[p.upd_counter]);
}
`;
  if (vec) {
    s += `fn st_y(i: u32, v: vec4<f32>, count: u32) {
  let j = (p.upd_offset + i) >> 2u;
  var s: Slots;
${
      used.map((k) => `  s.s${k} = upd_s${k}[j];\n`).join("")
    }  let u = apply_update(v, upd_w[j], s, p.upd_decay == 1u, upd_step);
  upd_w[j] = u.w;
${used.map((k) => `  upd_s${k}[j] = u.s.s${k};\n`).join("")}}
`;
  } else {
    // Lanes past \`count\` read element j again and are not stored.
    const ld = (a: string) => `vec4(${a}[j], ${a}[j1], ${a}[j2], ${a}[j3])`;
    const st = (a: string, v: string) =>
      `  ${a}[j] = ${v}.x;\n  if (count > 1u) { ${a}[j1] = ${v}.y; }\n` +
      `  if (count > 2u) { ${a}[j2] = ${v}.z; }\n  if (count > 3u) { ${a}[j3] = ${v}.w; }\n`;
    s += `fn st_y(i: u32, v: vec4<f32>, count: u32) {
  let j = p.upd_offset + i;
  let j1 = select(j, j + 1u, count > 1u);
  let j2 = select(j, j + 2u, count > 2u);
  let j3 = select(j, j + 3u, count > 3u);
  var s: Slots;
${used.map((k) => `  s.s${k} = ${ld(`upd_s${k}`)};\n`).join("")}  let u = apply_update(v, ${
      ld("upd_w")
    }, s, p.upd_decay == 1u, upd_step);
${st("upd_w", "u.w")}${used.map((k) => st(`upd_s${k}`, `u.s.s${k}`)).join("")}}
`;
  }
  return s;
}

/**
 * The base of the optimizers: learning rate (a number or a schedule), step count, clipping and
 * weight decay, the arena it is built on, and the fused step.
 */
export abstract class Optimizer {
  /** A name for messages. */
  readonly name: string;
  /** Weight decay, or null. */
  readonly weightDecay: number | null;
  /** Per-parameter clip norm, or null. */
  readonly clipnorm: number | null;
  /** Global clip norm, or null. */
  readonly globalClipnorm: number | null;
  /** Clip value, or null. */
  readonly clipvalue: number | null;
  /** Name patterns of the parameters excluded from weight decay. */
  readonly excludeFromWeightDecay: readonly RegExp[];
  #lr: LearningRate;
  #iterations = 0;
  #arena: ParamArena | null = null;
  #gpu: GpuState | null = null;
  #kernel: KernelSpec | null = null;
  #disposed = false;

  /** Checks the options common to every optimizer. */
  constructor(name: string, learningRate: LearningRate, options: OptimizerOptions) {
    this.name = options.name ?? name;
    this.#lr = checkLearningRate(this.name, learningRate);
    const op = this.name;
    const opt = (k: "weightDecay" | "clipnorm" | "globalClipnorm" | "clipvalue") => {
      const v = options[k];
      return v === undefined || v === null ? null : checkNumber(op, k, v, 0);
    };
    this.weightDecay = opt("weightDecay");
    const clips = {
      clipnorm: opt("clipnorm"),
      globalClipnorm: opt("globalClipnorm"),
      clipvalue: opt("clipvalue"),
    };
    const set = Object.entries(clips).filter(([, v]) => v !== null);
    if (set.length > 1) {
      throw new WgradError(
        "value",
        `${op}: only one of clipnorm, clipvalue and globalClipnorm can be set; got ${
          set.map(([k, v]) => `${k}=${v}`).join(", ")
        }`,
      );
    }
    this.clipnorm = clips.clipnorm;
    this.globalClipnorm = clips.globalClipnorm;
    this.clipvalue = clips.clipvalue;
    this.excludeFromWeightDecay = Object.freeze(
      (options.excludeFromWeightDecay ?? []).map((
        p,
      ) => (typeof p === "string" ? new RegExp(p) : p)),
    );
  }

  /** @internal The kernel family, constants, slots and scalars of this optimizer. */
  protected abstract kernelSpec(): KernelSpec;

  #spec(): KernelSpec {
    return this.#kernel ??= this.kernelSpec();
  }

  /** Keras's slot names of this optimizer's state, in order (e.g. `momentum`, `velocity`). */
  get slotNames(): string[] {
    const names: string[] = [];
    for (const s of this.#spec().slots) if (s) names.push(s.name);
    return names;
  }

  /** Steps taken (Keras's `iterations`), as counted on the CPU (see {@linkcode readIterations}). */
  get iterations(): number {
    return this.#iterations;
  }

  /** The learning rate the next step uses (a schedule is evaluated at `iterations`). */
  get learningRate(): number {
    const lr = this.#lr;
    return typeof lr === "number" ? lr : lr.at(this.#iterations);
  }

  /**
   * Sets the learning rate (a callback's `reduceLrOnPlateau`, say) or replaces the schedule; steps
   * recorded afterwards use it. As in Keras, a number cannot replace a schedule.
   */
  set learningRate(value: LearningRate) {
    const v = checkLearningRate(this.name, value);
    if (typeof v === "number" && this.#lr instanceof LearningRateSchedule) {
      throw new WgradError(
        "value",
        `${this.name}: this optimizer was created with a learning-rate schedule, so its learning ` +
          "rate is not settable to a number; create the optimizer with a number instead",
      );
    }
    this.#lr = v;
    if (this.#arena) this.#writeHeader();
  }

  /** The schedule, or null when the learning rate is a number. */
  get schedule(): LearningRateSchedule | null {
    return this.#lr instanceof LearningRateSchedule ? this.#lr : null;
  }

  /** The arena this optimizer was built on, or null. */
  get arena(): ParamArena | null {
    return this.#arena;
  }

  #assertLive(op: string): void {
    if (this.#disposed) {
      throw new WgradError("disposed", `${op}: optimizer "${this.name}" was used after dispose()`);
    }
  }

  /** The control buffer's header: hyperparameters, schedule and the piecewise table. */
  #header(): Uint32Array<ArrayBuffer> {
    const words = new Uint32Array(SEG_BASE);
    const f = new Float32Array(words.buffer);
    const lr = this.#lr;
    if (typeof lr === "number") {
      f[H_LR] = lr;
      words[H_KIND] = 0;
    } else if (lr instanceof ExponentialDecay) {
      const e = lr;
      f[H_LR] = e.initialLearningRate;
      words[H_KIND] = 1;
      f[H_S0] = e.decaySteps;
      f[H_S1] = lnF32(e.decayRate);
      words[H_S2] = e.staircase ? 1 : 0;
    } else if (lr instanceof PiecewiseConstantDecay) {
      const pw = lr;
      const n = pw.boundaries.length;
      if (n > MAX_BOUNDARIES) throw new Error("internal: too many boundaries");
      words[H_KIND] = 2;
      words[H_S0] = n;
      pw.boundaries.forEach((b, k) => (words[PW_TABLE + k] = b));
      pw.values.forEach((v, k) => (f[PW_TABLE + n + k] = v));
    } else if (lr instanceof CosineDecay) {
      const c = lr;
      f[H_LR] = c.initialLearningRate;
      words[H_KIND] = 3;
      f[H_S0] = c.decaySteps;
      f[H_S1] = c.alpha;
      f[H_S5] = 1 - c.alpha;
      if (c.warmupTarget !== null) {
        f[H_S2] = c.warmupTarget;
        f[H_S3] = c.warmupSteps;
        words[H_S4] = 1;
      }
    } else {
      throw new WgradError(
        "value",
        `${this.name}: unknown learning-rate schedule ${String(lr)} (use exponentialDecay, ` +
          "piecewiseConstantDecay or cosineDecay)",
      );
    }
    for (const [k, v] of this.#spec().hyper) f[k] = v;
    if (this.weightDecay !== null) f[H_WD] = this.weightDecay;
    f[H_CLIP] = this.clipnorm ?? this.globalClipnorm ?? this.clipvalue ?? 0;
    return words;
  }

  #writeHeader(): void {
    const words = this.#header();
    schedule((rt) => {
      const gpu = this.#gpu;
      if (!gpu) return;
      // Two ranges: the output word O_LR (the last step's learning rate) stays.
      rt.write(gpu.ctl, words.slice(0, O_LR), `${this.name}: learning rate`, 0);
      rt.write(gpu.ctl, words.slice(PW_TABLE), `${this.name}: learning rate`, PW_TABLE * 4);
    });
  }

  #clipCode(): number {
    return this.clipvalue !== null && this.clipvalue > 0
      ? 1
      : this.clipnorm !== null && this.clipnorm > 0
      ? 2
      : this.globalClipnorm !== null && this.globalClipnorm > 0
      ? 3
      : 0;
  }

  /**
   * Creates the optimizer's state for `arena` (zeros, or Adagrad's initial accumulator). Done by
   * the first {@linkcode step}; an optimizer serves one arena.
   */
  build(arena: ParamArena): void {
    this.#assertLive(`${this.name}.build`);
    arena.assertLive(`${this.name}.build`);
    if (this.#arena === arena) return;
    if (this.#arena) {
      throw new WgradError(
        "value",
        `${this.name}: this optimizer was built for ParamArena "${this.#arena.name}"; ` +
          `make a new optimizer for ParamArena "${arena.name}"`,
      );
    }
    const spec = this.#spec();
    const nseg = arena.length;
    const blocks = arena.paddedSize / ARENA_BLOCK;
    if (this.#clipCode() >= 2 && nseg > 65535) {
      throw new WgradError(
        "limit",
        `${this.name}: clipping by norm handles at most 65,535 parameters per arena, ` +
          `ParamArena "${arena.name}" has ${nseg}`,
      );
    }
    this.#arena = arena;
    const blockSeg = SEG_BASE + 4 * nseg;
    const counters = blockSeg + blocks;
    const ninv = Math.ceil(blocks / BLOCKS_PER_WORKGROUP) * WORKGROUP;
    const ctl = new Uint32Array(counters + ninv);
    ctl.set(this.#header());
    const decays = arena.names.map((name) =>
      !this.excludeFromWeightDecay.some((re) => name.search(re) >= 0)
    );
    arena.names.forEach((_, i) => {
      ctl[SEG_BASE + i] = decays[i] ? 1 : 0;
      ctl[SEG_BASE + nseg + i] = arena.offsets[i];
      ctl[SEG_BASE + 2 * nseg + i] = arena.paddedSizes[i];
      const first = arena.offsets[i] / ARENA_BLOCK;
      const count = arena.paddedSizes[i] / ARENA_BLOCK;
      ctl.fill(i, blockSeg + first, blockSeg + first + count);
    });
    ctl.fill(this.#iterations, counters);
    const constants: Record<string, number> = {
      OPT: OPT_CODE[spec.opt],
      CLIP: this.#clipCode(),
      DECAY: this.weightDecay !== null && this.weightDecay !== 0 ? 1 : 0,
      ...spec.constants,
    };
    const name = this.name;
    schedule((rt) => {
      const ctlS = rt.upload(ctl, `${name} control`);
      const slots = new Map<string, Storage>();
      const bound = spec.slots.map((slot, k) => {
        if (slot === null) return rt.alloc(16, `${name} unused slot ${k}`);
        const s = arena.allocLike(rt, `${name} ${slot.name}`);
        this.#fillSlot(rt, s, slot.init, `${name}: initialise ${slot.name}`);
        slots.set(slot.name, s);
        return s;
      });
      while (bound.length < 3) bound.push(rt.alloc(16, `${name} unused slot ${bound.length}`));
      const g = grid(ninv, WORKGROUP);
      // blocks, stride, nseg, ninv, then the listed update's fields (unused here; see `#record`).
      const u = new Uint32Array(8 + LIST_BLOCKS);
      u.set([blocks, g.stride, nseg, ninv]);
      const label = `${name} step (ParamArena "${arena.name}": ${nseg} parameters, ${arena.size} ` +
        `elements)`;
      const specs: DispatchSpec[] = [];
      if (constants.CLIP >= 2) {
        specs.push({
          kernel: OPTIM,
          entry: "sumsq",
          bindings: [ctlS, u, arena.gradRegion],
          workgroups: [nseg],
          label: `${name} gradient norms (ParamArena "${arena.name}")`,
        });
      }
      specs.push({
        kernel: OPTIM,
        constants,
        bindings: [ctlS, u, arena.gradRegion, arena.paramRegion, ...bound],
        workgroups: g.groups,
        label,
      });
      const specsKeep = specs.map((s) =>
        s.constants ? { ...s, constants: { ...s.constants, CLEAR: 0 } } : s
      );
      this.#gpu = {
        ctl: ctlS,
        bound,
        slots,
        specs,
        specsKeep,
        counters,
        ninv,
        decays,
        constants,
      };
    });
  }

  #fillSlot(rt: Runtime, s: Storage, value: number, label: string): void {
    if (value === 0) {
      rt.clear(s, label);
      return;
    }
    const n = s.byteLength / 4;
    const g = grid(n);
    const bits = new Uint32Array(new Float32Array([value]).buffer)[0];
    rt.dispatch({
      kernel: FILL,
      bindings: [s, new Uint32Array([n, g.stride, bits, 0])],
      workgroups: g.groups,
      label,
    });
  }

  #built(op: string): GpuState {
    const gpu = this.#gpu;
    if (!gpu) {
      throw new WgradError(
        "value",
        `${op}: optimizer "${this.name}" has no GPU state yet (build it on an arena first)`,
      );
    }
    return gpu;
  }

  #arenaFor(arena: ParamArena | undefined, op: string): ParamArena {
    const a = arena ?? this.#arena;
    if (!a) {
      throw new WgradError("value", `${op}: optimizer "${this.name}" has no arena; pass one`);
    }
    return a;
  }

  /**
   * Records one update of every parameter of `arena` (default: the arena it was built on) from the
   * gradient slots, and clears them: one dispatch, two with clipnorm or globalClipnorm (with
   * `updated`, of the parameters left: one dispatch per 1,024 of their blocks).
   * With `{ keepGradients: true }` the slots are left as they are, which saves a store per
   * element when the caller overwrites every slot before the next step (a compiled training step
   * does).
   */
  step(arena?: ParamArena, options: StepOptions = {}): void {
    const op = `${this.name}.step`;
    this.#assertLive(op);
    const a = this.#arenaFor(arena, op);
    a.assertLive(op);
    this.build(a);
    const updated = options.updated ?? [];
    for (const i of updated) {
      if (!Number.isInteger(i) || i < 0 || i >= a.length) {
        throw new Error(`internal: ${op}: updated parameter ${i} out of range`);
      }
    }
    if (updated.length > 0 && this.#clipCode() >= 2) {
      throw new Error(`internal: ${op}: a norm clip needs every gradient`);
    }
    this.#iterations++;
    const keep = options.keepGradients === true;
    schedule((rt) => this.#record(rt, op, keep, updated));
  }

  #record(rt: Runtime, op: string, keep = false, updated: readonly number[] = []): void {
    this.#assertLive(op);
    this.#arena?.assertLive(op);
    const gpu = this.#built(op);
    for (const s of keep ? gpu.specsKeep : gpu.specs) {
      if (updated.length === 0 || s.entry === "sumsq") {
        rt.dispatch(s);
        continue;
      }
      // The blocks of the parameters left to update, LIST_BLOCKS per dispatch (at least one
      // dispatch: the first increments the step counters).
      const arena = this.#arena!;
      const skip = new Set(updated);
      const list: number[] = [];
      arena.offsets.forEach((offset, i) => {
        if (skip.has(i)) return;
        const first = offset / ARENA_BLOCK;
        for (let b = 0; b < arena.paddedSizes[i] / ARENA_BLOCK; b++) list.push(first + b);
      });
      const base = s.bindings[1] as Uint32Array;
      for (let start = 0; start === 0 || start < list.length; start += LIST_BLOCKS) {
        const chunk = list.slice(start, start + LIST_BLOCKS);
        const launched = Math.max(1, Math.ceil(chunk.length / BLOCKS_PER_WORKGROUP)) * WORKGROUP;
        const g = grid(launched, WORKGROUP);
        const u = new Uint32Array(base);
        u[1] = g.stride;
        u.set([chunk.length, launched, start === 0 ? 1 : 0], 4);
        u.set(chunk, 8);
        const bindings = [...s.bindings];
        bindings[1] = u;
        rt.dispatch({
          ...s,
          constants: { ...s.constants, SKIP: 1 },
          bindings,
          workgroups: g.groups,
          label: `${s.label}, ${updated.length} updated by their gradient products`,
        });
      }
    }
  }

  /**
   * @internal The update of parameter `index` of `arena` (the arena this optimizer is built on)
   * as an epilogue of the product that computes its gradient (see `WeightUpdate` in
   * src/ops/matmul.ts), or null where the update needs more than the element's own gradient
   * (clipping by a norm). A compiled training step registers it on the gradient slot, then calls
   * {@linkcode step} with the parameters that took it as `updated`; `applied` is called when a
   * product records it. The epilogue runs the same WGSL formulas on the same values as the
   * arena update (on llvmpipe the results are bit-identical; another compiler may contract
   * multiply-adds differently in the two pipelines).
   */
  weightUpdate(arena: ParamArena, index: number, applied: () => void): WeightUpdate | null {
    const gpu = this.#gpu;
    if (this.#disposed || this.#arena !== arena || !gpu || arena.isDisposed) return null;
    if (this.#clipCode() >= 2 || index < 0 || index >= arena.length) return null;
    const spec = this.#spec();
    const used: number[] = [];
    spec.slots.forEach((slot, k) => {
      if (slot) used.push(k);
    });
    return {
      label: `${this.name} update`,
      wgsl: (vec) => optimUpdateSrc + updateEpilogue(used, vec),
      control: gpu.ctl,
      bindings: [arena.paramRegion, ...used.map((k) => gpu.bound[k])],
      constants: gpu.constants,
      offset: arena.offsets[index],
      counter: gpu.counters,
      decay: gpu.decays[index],
      applied,
    };
  }

  /**
   * Puts `grads` into the arena's gradient slots ({@linkcode ParamArena.setGradients}) and
   * records a {@linkcode step}.
   */
  applyGradients(grads: readonly (ParamValue | null)[], arena?: ParamArena): void {
    const a = this.#arenaFor(arena, `${this.name}.applyGradients`);
    a.setGradients(grads);
    this.step(a);
  }

  /**
   * Records the step's dispatches (the same specs every time) and counts the step. For code that
   * records GPU work itself (inside `schedule`); {@linkcode step} calls it.
   */
  encodeStep(rt: Runtime): void {
    this.#record(rt, `${this.name}.encodeStep`);
    this.#iterations++;
  }

  /**
   * The dispatches of one step, for capture and replay: dispatching them again (same bindings,
   * same uniform block) takes another step, since every per-step value lives on the GPU. Call
   * {@linkcode advance} for the replayed steps so that the CPU's count follows. Available once
   * the build has been recorded (after `await flush()`, say).
   */
  stepSpecs(): readonly DispatchSpec[] {
    return this.#built(`${this.name}.stepSpecs`).specs;
  }

  /**
   * @internal The GPU regions a step changes besides the parameters: the step counters and every
   * slot (not the hyperparameters, which follow the CPU's settings). Empty before the build.
   * `fit` keeps a copy of them to put back with the weights when the loss becomes NaN.
   */
  stateRegions(): { storage: Storage; byteOffset: number; byteLength: number }[] {
    const gpu = this.#gpu;
    if (!gpu) return [];
    return [
      { storage: gpu.ctl, byteOffset: gpu.counters * 4, byteLength: gpu.ninv * 4 },
      ...[...gpu.slots.values()].map((s) => ({
        storage: s,
        byteOffset: 0,
        byteLength: s.byteLength,
      })),
    ];
  }

  /** Counts `n` steps replayed from {@linkcode stepSpecs} (the GPU counts them itself). */
  advance(n = 1): void {
    if (!Number.isInteger(n) || n < 0) {
      throw new WgradError("value", `${this.name}.advance: n must be an integer >= 0, got ${n}`);
    }
    this.#iterations += n;
  }

  async #readControl(op: string): Promise<Uint32Array> {
    this.#assertLive(op);
    const rt = await ready();
    const gpu = this.#built(op);
    return new Uint32Array(await rt.read(gpu.ctl, `${this.name} control`));
  }

  /** Reads the step count from the GPU and sets {@linkcode iterations} to it. */
  async readIterations(): Promise<number> {
    const op = `${this.name}.readIterations`;
    const ctl = await this.#readControl(op);
    const gpu = this.#built(op);
    const t = ctl[gpu.counters];
    for (let k = 1; k < gpu.ninv; k++) {
      if (ctl[gpu.counters + k] !== t) {
        throw new Error(
          `internal: ${op}: invocation ${k} counts ${ctl[gpu.counters + k]} steps, not ${t}`,
        );
      }
    }
    this.#iterations = t;
    return t;
  }

  /** The learning rate the last step used, as the GPU computed it (f32). */
  async readLearningRate(): Promise<number> {
    const ctl = await this.#readControl(`${this.name}.readLearningRate`);
    return new Float32Array(ctl.buffer, ctl.byteOffset, ctl.length)[O_LR];
  }

  /** The step count and every slot's values, for checkpoints. */
  async getState(): Promise<OptimizerState> {
    const op = `${this.name}.getState`;
    this.#assertLive(op);
    const rt = await ready();
    const gpu = this.#built(op);
    const arena = this.#arena!;
    const iterations = await this.readIterations();
    const slots: Record<string, Float32Array[]> = {};
    for (const [name, s] of gpu.slots) {
      const all = new Float32Array(await rt.read(s, `${this.name} ${name}`));
      slots[name] = arena.offsets.map((o, i) => all.slice(o, o + arena.sizes[i]));
    }
    const state: OptimizerState = { iterations, slots };
    if (typeof this.#lr === "number") state.learningRate = this.#lr;
    return state;
  }

  /**
   * Restores {@linkcode getState}'s result (building on `arena` first if needed). Steps recorded
   * afterwards continue from it.
   */
  setState(state: OptimizerState, arena?: ParamArena): void {
    const op = `${this.name}.setState`;
    this.#assertLive(op);
    const a = this.#arenaFor(arena, op);
    const it = state?.iterations;
    if (!Number.isInteger(it) || it < 0 || it > 2 ** 32 - 1) {
      throw new WgradError("value", `${op}: iterations must be an integer >= 0, got ${it}`);
    }
    const names = this.slotNames;
    const given = Object.keys(state.slots ?? {});
    const missing = names.filter((n) => !given.includes(n));
    const extra = given.filter((n) => !names.includes(n));
    if (missing.length || extra.length) {
      throw new WgradError(
        "value",
        `${op}: ${this.name} has slots [${names.join(", ")}]; the state has [${given.join(", ")}]`,
      );
    }
    const padded = new Map<string, Float32Array<ArrayBuffer>>();
    for (const name of names) {
      const arrays = state.slots[name];
      if (!Array.isArray(arrays) || arrays.length !== a.length) {
        throw new WgradError(
          "value",
          `${op}: slot ${name} needs ${a.length} arrays (one per parameter of ParamArena ` +
            `"${a.name}"), got ${Array.isArray(arrays) ? arrays.length : String(arrays)}`,
        );
      }
      const host = new Float32Array(a.paddedSize);
      arrays.forEach((arr, i) => {
        if (!(arr instanceof Float32Array) || arr.length !== a.sizes[i]) {
          throw new WgradError(
            "shape",
            `${op}: slot ${name} of parameter ${i} ("${a.names[i]}") needs ${a.sizes[i]} values, ` +
              `got ${arr instanceof Float32Array ? arr.length : String(arr)}`,
          );
        }
        host.set(arr, a.offsets[i]);
      });
      padded.set(name, host);
    }
    if (state.learningRate !== undefined && typeof this.#lr === "number") {
      this.learningRate = state.learningRate;
    }
    this.build(a);
    this.#iterations = it;
    schedule((rt) => {
      const gpu = this.#gpu!;
      const counts = new Uint32Array(gpu.ninv).fill(it);
      for (const [name, host] of padded) rt.write(gpu.slots.get(name)!, host, `${op} ${name}`);
      rt.write(gpu.ctl, counts, `${op} iterations`, gpu.counters * 4);
    });
  }

  /** Gives the optimizer's GPU memory back. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      schedule(() => {
        const gpu = this.#gpu;
        if (!gpu) return;
        gpu.ctl.release();
        for (const s of gpu.bound) s.release();
        this.#gpu = null;
      });
    } catch {
      this.#gpu = null;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The optimizers

/** Options of {@linkcode sgd}. */
export interface SgdOptions extends OptimizerOptions {
  /** Default 0.01. */
  learningRate?: LearningRate;
  /** In [0, 1]; 0 (default) is plain gradient descent. */
  momentum?: number;
  /** Nesterov momentum (default false). */
  nesterov?: boolean;
}

/**
 * Gradient descent with optional momentum, as Keras 3's `SGD`:
 * `v = momentum·v − lr·g; w += v` (Nesterov: `w += momentum·v − lr·g`), or `w −= lr·g`.
 */
export class SGD extends Optimizer {
  /** Momentum. */
  readonly momentum: number;
  /** Nesterov momentum. */
  readonly nesterov: boolean;

  /** Checks the options; see {@linkcode sgd}. */
  constructor(options: SgdOptions = {}) {
    super("SGD", options.learningRate ?? 0.01, options);
    this.momentum = checkNumber(this.name, "momentum", options.momentum ?? 0, 0, 1);
    this.nesterov = options.nesterov ?? false;
  }

  /** @internal */
  protected kernelSpec(): KernelSpec {
    const m = this.momentum !== 0;
    return {
      opt: "sgd",
      constants: { MOMENTUM: m ? 1 : 0, NESTEROV: this.nesterov ? 1 : 0 },
      slots: [m ? { name: "momentum", init: 0 } : null],
      hyper: [[H_BETA1, this.momentum]],
    };
  }
}

/** Options of {@linkcode adam}. */
export interface AdamOptions extends OptimizerOptions {
  /** Default 0.001. */
  learningRate?: LearningRate;
  /** Decay of the first moment (default 0.9), in [0, 1). */
  beta1?: number;
  /** Decay of the second moment (default 0.999), in [0, 1). */
  beta2?: number;
  /** Added to √v (default 1e-7, Keras's "epsilon hat"). */
  epsilon?: number;
  /** Use the AMSGrad variant (default false). */
  amsgrad?: boolean;
}

/**
 * Adam, as Keras 3's `Adam`: `m += (g − m)(1 − β₁)`, `v += (g² − v)(1 − β₂)`,
 * `w −= m·α / (√v + ε)` with `α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`, t the 1-based step.
 */
export class Adam extends Optimizer {
  /** β₁. */
  readonly beta1: number;
  /** β₂. */
  readonly beta2: number;
  /** ε. */
  readonly epsilon: number;
  /** AMSGrad. */
  readonly amsgrad: boolean;

  /** Checks the options; see {@linkcode adam}. */
  constructor(options: AdamOptions = {}, name = "Adam") {
    super(name, options.learningRate ?? 0.001, options);
    this.beta1 = checkNumber(this.name, "beta1", options.beta1 ?? 0.9, 0, 1);
    this.beta2 = checkNumber(this.name, "beta2", options.beta2 ?? 0.999, 0, 1);
    for (const [k, v] of [["beta1", this.beta1], ["beta2", this.beta2]] as const) {
      if (v === 1) throw new WgradError("value", `${this.name}: ${k} must be < 1, got 1`);
    }
    this.epsilon = checkNumber(this.name, "epsilon", options.epsilon ?? 1e-7, 0);
    this.amsgrad = options.amsgrad ?? false;
  }

  /** @internal */
  protected kernelSpec(): KernelSpec {
    return {
      opt: "adam",
      constants: { AMSGRAD: this.amsgrad ? 1 : 0 },
      slots: [
        { name: "momentum", init: 0 },
        { name: "velocity", init: 0 },
        this.amsgrad ? { name: "velocity_hat", init: 0 } : null,
      ],
      hyper: [
        [H_BETA1, this.beta1],
        [H_BETA2, this.beta2],
        [H_EPS, this.epsilon],
        [H_1MBETA1, 1 - this.beta1],
        [H_1MBETA2, 1 - this.beta2],
        [H_LNBETA1, lnF32(this.beta1)],
        [H_LNBETA2, lnF32(this.beta2)],
      ],
    };
  }
}

/** Options of {@linkcode adamw}: Adam's, with weight decay on by default. */
export interface AdamWOptions extends AdamOptions {
  /** Default 0.004. */
  weightDecay?: number;
}

/** Adam with decoupled weight decay, as Keras 3's `AdamW` (weight decay 0.004 by default). */
export class AdamW extends Adam {
  /** Checks the options; see {@linkcode adamw}. */
  constructor(options: AdamWOptions = {}) {
    super({ ...options, weightDecay: options.weightDecay ?? 0.004 }, "AdamW");
  }
}

/** Options of {@linkcode rmsprop}. */
export interface RmspropOptions extends OptimizerOptions {
  /** Default 0.001. */
  learningRate?: LearningRate;
  /** Discount of the mean square (default 0.9). */
  rho?: number;
  /** Momentum (default 0: none). */
  momentum?: number;
  /** Added to the mean square inside the square root (default 1e-7). */
  epsilon?: number;
  /** Divide by the estimated variance instead of the mean square (default false). */
  centered?: boolean;
}

/**
 * RMSprop, as Keras 3's `RMSprop`: `v = ρv + (1 − ρ)g²`, `inc = lr·g / √(v + ε)` (centered:
 * `√(v − ā² + ε)` with `ā = ρā + (1 − ρ)g`), `w −= inc`, or with momentum `m = μm + inc; w −= m`.
 */
export class RMSprop extends Optimizer {
  /** ρ. */
  readonly rho: number;
  /** Momentum. */
  readonly momentum: number;
  /** ε. */
  readonly epsilon: number;
  /** Centered. */
  readonly centered: boolean;

  /** Checks the options; see {@linkcode rmsprop}. */
  constructor(options: RmspropOptions = {}) {
    super("RMSprop", options.learningRate ?? 0.001, options);
    this.rho = checkNumber(this.name, "rho", options.rho ?? 0.9, 0, 1);
    this.momentum = checkNumber(this.name, "momentum", options.momentum ?? 0, 0);
    this.epsilon = checkNumber(this.name, "epsilon", options.epsilon ?? 1e-7, 0);
    this.centered = options.centered ?? false;
  }

  /** @internal */
  protected kernelSpec(): KernelSpec {
    const m = this.momentum > 0;
    return {
      opt: "rmsprop",
      constants: { MOMENTUM: m ? 1 : 0, CENTERED: this.centered ? 1 : 0 },
      slots: [
        { name: "velocity", init: 0 },
        m ? { name: "momentum", init: 0 } : null,
        this.centered ? { name: "average_gradient", init: 0 } : null,
      ],
      hyper: [
        [H_RHO, this.rho],
        [H_1MBETA2, 1 - this.rho],
        [H_BETA1, this.momentum],
        [H_EPS, this.epsilon],
      ],
    };
  }
}

/** Options of {@linkcode adagrad}. */
export interface AdagradOptions extends OptimizerOptions {
  /** Default 0.001. */
  learningRate?: LearningRate;
  /** The accumulators' starting value (default 0.1), >= 0. */
  initialAccumulatorValue?: number;
  /** Added to the accumulator inside the square root (default 1e-7). */
  epsilon?: number;
}

/** Adagrad, as Keras 3's `Adagrad`: `acc += g²; w −= lr·g / √(acc + ε)`. */
export class Adagrad extends Optimizer {
  /** The accumulators' starting value. */
  readonly initialAccumulatorValue: number;
  /** ε. */
  readonly epsilon: number;

  /** Checks the options; see {@linkcode adagrad}. */
  constructor(options: AdagradOptions = {}) {
    super("Adagrad", options.learningRate ?? 0.001, options);
    this.initialAccumulatorValue = checkNumber(
      this.name,
      "initialAccumulatorValue",
      options.initialAccumulatorValue ?? 0.1,
      0,
    );
    this.epsilon = checkNumber(this.name, "epsilon", options.epsilon ?? 1e-7, 0);
  }

  /** @internal */
  protected kernelSpec(): KernelSpec {
    return {
      opt: "adagrad",
      constants: {},
      slots: [{ name: "accumulator", init: this.initialAccumulatorValue }],
      hyper: [[H_EPS, this.epsilon]],
    };
  }
}

/**
 * Stochastic gradient descent (Keras 3's `SGD`; learning rate 0.01, momentum 0, no Nesterov).
 *
 * ```ts
 * const opt = sgd({ learningRate: 0.1, momentum: 0.9, nesterov: true });
 * ```
 */
export function sgd(options: SgdOptions = {}): SGD {
  return new SGD(options);
}

/** Adam (Keras 3's `Adam`; learning rate 0.001, β₁ 0.9, β₂ 0.999, ε 1e-7). */
export function adam(options: AdamOptions = {}): Adam {
  return new Adam(options);
}

/** AdamW (Keras 3's `AdamW`; Adam's defaults and weight decay 0.004). */
export function adamw(options: AdamWOptions = {}): AdamW {
  return new AdamW(options);
}

/** RMSprop (Keras 3's `RMSprop`; learning rate 0.001, ρ 0.9, momentum 0, ε 1e-7, not centered). */
export function rmsprop(options: RmspropOptions = {}): RMSprop {
  return new RMSprop(options);
}

/** Adagrad (Keras 3's `Adagrad`; learning rate 0.001, initial accumulator 0.1, ε 1e-7). */
export function adagrad(options: AdagradOptions = {}): Adagrad {
  return new Adagrad(options);
}
