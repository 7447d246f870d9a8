/**
 * Eager gradients: `grad`, `valueAndGrad` and a `GradientTape` in the spirit of TensorFlow's.
 * @module
 */
import { WgradError } from "../errors.ts";
import { ready } from "../gpu/runtime.ts";
import { add } from "../ops/binary.ts";
import { lazyFill } from "../ops/fill.ts";
import { nextTensorId, scope, type Tensor, zeros } from "../tensor.ts";
import { backward, releaseTape, Tape, withTape } from "./tape.ts";

// The seed is filled only if a gradient rule reads it (a fused loss gradient does not).
const ones = (shape: readonly number[]) => lazyFill(shape, 1);
const zerosF = (shape: readonly number[]) => zeros(shape, "f32");
const addF = (a: Tensor<"f32">, b: Tensor<"f32">) => add(a, b);

function checkSources(sources: readonly Tensor[], where: string): void {
  if (!Array.isArray(sources) || sources.length === 0) {
    throw new WgradError("value", `${where}: pass the tensors to differentiate with respect to`);
  }
  sources.forEach((s, i) => {
    s.assertLive(where);
    if (s.dtype !== "f32") {
      throw new WgradError(
        "dtype",
        `${where}: source ${i} (${s.describe()}) is ${s.dtype}; only f32 tensors have gradients`,
      );
    }
  });
}

/**
 * Records operations on watched tensors and differentiates a result with respect to them.
 *
 * ```ts
 * const tape = new GradientTape();
 * const x = tensor([3]);
 * tape.watch(x);
 * const y = tape.record(() => square(x));
 * const [dx] = await tape.gradient(y, [x]); // [6]
 * tape.dispose();
 * ```
 */
export class GradientTape {
  readonly #tape = new Tape();

  /** Starts recording operations on `t` (and everything computed from it). */
  watch(...tensors: Tensor[]): void {
    for (const t of tensors) {
      t.assertLive("GradientTape.watch");
      this.#tape.watch(t);
    }
  }

  /** Runs `fn` with this tape recording and returns its result. */
  record<T>(fn: () => T): T {
    if (!this.#tape.open) {
      throw new WgradError("value", "GradientTape.record: the tape was already disposed");
    }
    return withTape(this.#tape, fn);
  }

  /**
   * Gradients of `target` (summed over its elements, unless `seed` gives the output gradient)
   * with respect to `sources`. The gradients belong to the caller.
   */
  async gradient(
    target: Tensor,
    sources: readonly Tensor[],
    seed?: Tensor<"f32">,
  ): Promise<Tensor<"f32">[]> {
    const g = this.gradientSync(target, sources, seed);
    await ready();
    return g;
  }

  /** {@linkcode GradientTape.gradient} without waiting for the GPU; errors surface later. */
  gradientSync(target: Tensor, sources: readonly Tensor[], seed?: Tensor<"f32">): Tensor<"f32">[] {
    checkSources(sources, "GradientTape.gradient");
    target.assertLive("GradientTape.gradient");
    return backward(this.#tape, target, sources, ones, zerosF, addF, { seed });
  }

  /** Releases the tensors the tape kept for its gradients. */
  dispose(): void {
    releaseTape(this.#tape);
  }
}

/**
 * The value of `fn()` and its gradients with respect to `params`, synchronously (GPU errors
 * surface at the next `await`). Tensors made inside `fn` are disposed, except the value.
 * `into` gives destinations the gradients may be written to in place (see
 * `BackwardOptions.into` in src/autodiff/tape.ts); a gradient returned as its destination belongs to the caller
 * of this function as the destination did.
 */
export function valueAndGradSync(
  fn: () => Tensor,
  params: readonly Tensor[],
  into?: readonly (Tensor<"f32"> | null)[],
): { value: Tensor; grads: Tensor<"f32">[]; madeByFn: boolean } {
  checkSources(params, "grad");
  const tape = new Tape();
  for (const p of params) tape.watch(p);
  const firstId = nextTensorId();
  try {
    const value = scope(() => withTape(tape, fn));
    if (!value || typeof value !== "object" || !("shape" in value)) {
      throw new WgradError("value", "grad: the function must return a tensor");
    }
    const madeByFn = value.id >= firstId;
    try {
      const grads = backward(tape, value, params, ones, zerosF, addF, { into });
      return { value, grads, madeByFn };
    } catch (e) {
      if (madeByFn) value.dispose();
      throw e;
    }
  } finally {
    releaseTape(tape);
  }
}

/** The value of `fn()` and its gradients with respect to `params`. */
export async function valueAndGrad(
  fn: () => Tensor,
  params: readonly Tensor[],
): Promise<{ value: Tensor; grads: Tensor<"f32">[]; madeByFn: boolean }> {
  const r = valueAndGradSync(fn, params);
  await ready();
  return r;
}

/**
 * Gradients of `fn()` (summed over its elements) with respect to `params`.
 *
 * ```ts
 * const [dw, db] = await grad(() => mean(square(add(matmul(x, w), b))), [w, b]);
 * ```
 */
export async function grad(fn: () => Tensor, params: readonly Tensor[]): Promise<Tensor<"f32">[]> {
  const { value, grads, madeByFn } = valueAndGradSync(fn, params);
  if (madeByFn) value.dispose();
  await ready();
  return grads;
}
