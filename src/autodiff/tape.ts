/**
 * Reverse-mode automatic differentiation with a tape.
 *
 * Every differentiable op calls {@linkcode recording} and, when it returns true, {@linkcode record}
 * with its inputs, its output and a vector-Jacobian product: a function from the gradient of the
 * output to the gradients of the inputs, written with the ops themselves. Eager gradients
 * (`grad`, `GradientTape`) run those functions once; compiled models run them once while their
 * training step is captured, so backward is derived at compile time and replayed afterwards.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { hooks, Tensor } from "../tensor.ts";

/** Gradients of an op's inputs given the gradient of its output (`null`: no gradient). */
export type VjpFn = (
  dy: Tensor<"f32">,
  into?: readonly (Tensor<"f32"> | undefined)[],
) => readonly (Tensor | null)[];

interface Entry {
  op: string;
  inputs: readonly Tensor[];
  output: Tensor;
  vjp: VjpFn;
}

/** One recording: the ops applied to watched tensors and everything derived from them. */
export class Tape {
  readonly entries: Entry[] = [];
  /** Tensors whose gradient flows back: watched ones and ops' outputs that depend on them. */
  readonly tracked = new Set<Tensor>();
  /** Inputs of recorded ops: their values may be needed by the gradients. */
  readonly saved = new Set<Tensor>();
  /** Tensors made by ops for their gradients alone; disposed with the tape. */
  readonly aux = new Set<Tensor>();
  /** Tensors disposed while the tape was recording: kept until the tape is done. */
  readonly deferred: Tensor[] = [];
  #open = true;

  constructor() {
    live.add(this);
  }

  /** Whether the tape still records. */
  get open(): boolean {
    return this.#open;
  }

  /** Starts tracking `t`: gradients with respect to it can be asked for. */
  watch(t: Tensor): void {
    this.tracked.add(t);
  }

  /** Stops recording. */
  close(): void {
    this.#open = false;
  }
}

/** Tapes being recorded now. */
const active: Tape[] = [];
/** Tapes not yet released: they may still need the tensors they saved. */
const live = new Set<Tape>();
let paused = 0;

/** Whether some open tape would record an op on these inputs. Ops call it before building a VJP. */
export function recording(inputs: readonly Tensor[]): boolean {
  if (paused || active.length === 0) return false;
  for (const tape of active) {
    for (const t of inputs) if (tape.tracked.has(t)) return true;
  }
  return false;
}

/**
 * Records an op on every open tape that tracks one of its inputs. `aux` are tensors the op made
 * for its gradient alone (a saved mask, say): the tape disposes them when it is released.
 */
export function record(
  op: string,
  inputs: readonly Tensor[],
  output: Tensor,
  vjp: VjpFn,
  aux: readonly Tensor[] = [],
): void {
  if (paused) return;
  let used = false;
  for (const tape of active) {
    if (inputs.some((t) => tape.tracked.has(t))) {
      tape.entries.push({ op, inputs, output, vjp });
      tape.tracked.add(output);
      for (const t of inputs) tape.saved.add(t);
      for (const t of aux) tape.aux.add(t);
      used = true;
    }
  }
  if (!used) { for (const t of aux) t.dispose(); }
}

/** Runs `fn` without recording (gradient code, optimizer updates, metrics). */
export function noGrad<T>(fn: () => T): T {
  paused++;
  try {
    return fn();
  } finally {
    paused--;
  }
}

// Disposal of a tensor that a tape needs is deferred until the tape is done.
hooks.deferDispose = (t: Tensor): boolean => {
  for (const tape of live) {
    if (tape.open && (tape.tracked.has(t) || tape.saved.has(t) || tape.aux.has(t))) {
      tape.deferred.push(t);
      return true;
    }
  }
  return false;
};

/** Runs `fn` with `tape` recording. */
export function withTape<T>(tape: Tape, fn: () => T): T {
  active.push(tape);
  try {
    return fn();
  } finally {
    active.splice(active.lastIndexOf(tape), 1);
  }
}

/** Finishes a tape: disposes the tensors whose disposal was deferred. */
export function releaseTape(tape: Tape): void {
  tape.close();
  live.delete(tape);
  const i = active.indexOf(tape);
  if (i >= 0) active.splice(i, 1);
  tape.entries.length = 0;
  tape.tracked.clear();
  tape.saved.clear();
  for (const t of tape.aux) t.dispose();
  tape.aux.clear();
  for (const t of tape.deferred.splice(0)) t.dispose();
}

const onesSeeds = new WeakSet<Tensor>();

/**
 * Whether `t` is the all-ones seed that {@linkcode backward} made for its target: a gradient rule
 * may then skip multiplying by it (a fused loss returns its stored gradient as is).
 */
export function isOnesSeed(t: Tensor): boolean {
  return onesSeeds.has(t);
}

/** Options of {@linkcode backward}. */
export interface BackwardOptions {
  /** The gradient of the target (default: ones, i.e. the gradient of the sum of the target). */
  seed?: Tensor<"f32">;
  /**
   * Destinations for the sources' gradients, aligned with `sources` (null: none): tensors of the
   * sources' shapes. A gradient rule may write a source's gradient straight into its destination
   * (a compiled training step's arena slots) and return that tensor, when the source is an input
   * of exactly one op on the tape and so needs no sum. The caller owns the destinations: the
   * gradient returned for such a source is the destination itself.
   */
  into?: readonly (Tensor<"f32"> | null)[];
}

/**
 * Propagates gradients from `target` back through the tape and returns the gradients of
 * `sources`, in order. A source that `target` does not depend on gets zeros. Intermediate
 * gradients are disposed; the returned ones belong to the caller.
 * @param ones makes the default seed: a tensor of ones of the target's shape
 */
export function backward(
  tape: Tape,
  target: Tensor,
  sources: readonly Tensor[],
  makeOnes: (shape: readonly number[]) => Tensor<"f32">,
  makeZeros: (shape: readonly number[]) => Tensor<"f32">,
  add: (a: Tensor<"f32">, b: Tensor<"f32">) => Tensor<"f32">,
  options: BackwardOptions = {},
): Tensor<"f32">[] {
  if (target.dtype !== "f32") {
    throw new WgradError("dtype", `gradient: the target ${target.describe()} must be f32`);
  }
  return noGrad(() => {
    const grads = new Map<Tensor, Tensor<"f32">>();
    const seed = options.seed ?? makeOnes(target.shape);
    if (options.seed && fmtShape(options.seed.shape) !== fmtShape(target.shape)) {
      throw new WgradError(
        "shape",
        `gradient: seed ${options.seed.describe()} does not match the target ${target.describe()}`,
      );
    }
    if (!options.seed) onesSeeds.add(seed);
    grads.set(target, seed);
    const keep = new Set<Tensor>(sources);
    if (options.seed) keep.add(options.seed);
    // Sources that may take their gradient in place: one use on the tape, a destination given.
    const dest = new Map<Tensor, Tensor<"f32">>();
    if (options.into) {
      const uses = new Map<Tensor, number>();
      for (const e of tape.entries) for (const x of e.inputs) uses.set(x, (uses.get(x) ?? 0) + 1);
      sources.forEach((s, k) => {
        const d = options.into![k];
        if (d && s !== target && uses.get(s) === 1 && fmtShape(d.shape) === fmtShape(s.shape)) {
          dest.set(s, d);
        }
      });
    }
    const destinations = new Set<Tensor>(dest.values());
    for (let i = tape.entries.length - 1; i >= 0; i--) {
      const e = tape.entries[i];
      const dy = grads.get(e.output);
      if (!dy) continue;
      const into = dest.size ? e.inputs.map((x) => dest.get(x)) : undefined;
      const dxs = e.vjp(dy, into);
      if (dxs.length !== e.inputs.length) {
        throw new Error(`internal: the gradient of ${e.op} returned ${dxs.length} values`);
      }
      // The output's gradient is consumed: nothing earlier on the tape produces this output.
      // A source's gradient stays for the caller; the caller's seed is never freed here.
      if (!keep.has(e.output)) {
        grads.delete(e.output);
        if (dy !== options.seed) dy.dispose();
      }
      e.inputs.forEach((x, k) => {
        const dx = dxs[k];
        if (!dx) return;
        if (!tape.tracked.has(x)) {
          if (!destinations.has(dx)) dx.dispose();
          return;
        }
        if (fmtShape(dx.shape) !== fmtShape(x.shape)) {
          throw new Error(
            `internal: the gradient of ${e.op} for input ${k} has shape ${
              fmtShape(dx.shape)
            }, the input ${x.describe()}`,
          );
        }
        const prev = grads.get(x);
        if (prev) {
          grads.set(x, add(prev, dx as Tensor<"f32">));
          prev.dispose();
          dx.dispose();
        } else {
          grads.set(x, dx as Tensor<"f32">);
        }
      });
    }
    const out = sources.map((s) => {
      const g = grads.get(s);
      if (g) {
        grads.delete(s);
        return g;
      }
      if (s === target) return seed;
      return makeZeros(s.shape);
    });
    const outSet = new Set<Tensor>(out);
    for (const g of grads.values()) if (!outSet.has(g) && !destinations.has(g)) g.dispose();
    if (!outSet.has(seed) && !options.seed) seed.dispose();
    return out;
  });
}

export { Tensor };
