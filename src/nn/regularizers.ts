/**
 * Weight regularizers with Keras's semantics: a penalty added to the loss, l1·Σ|w| + l2·Σw².
 * @module
 */
import { WgradError } from "../errors.ts";
import { add, mul } from "../ops/binary.ts";
import { sum } from "../ops/reduce.ts";
import { abs, square } from "../ops/unary.ts";
import type { Tensor } from "../tensor.ts";

/** A penalty on a weight. */
export interface Regularizer {
  /** Keras class name. */
  readonly className: string;
  /** Coefficients. */
  readonly config: { l1: number; l2: number };
  /** The penalty as a scalar tensor (differentiable). */
  penalty(w: Tensor<"f32">): Tensor<"f32">;
}

function check(v: number, name: string): void {
  if (!(v >= 0) || !Number.isFinite(v)) {
    throw new WgradError("value", `regularizers: ${name} must be a finite number ≥ 0, got ${v}`);
  }
}

/** l1·Σ|w| + l2·Σw² (Keras's L1L2). */
export function l1l2(options: { l1?: number; l2?: number } = {}): Regularizer {
  const { l1 = 0, l2 = 0 } = options;
  check(l1, "l1");
  check(l2, "l2");
  return {
    className: "L1L2",
    config: { l1, l2 },
    penalty(w) {
      const parts: Tensor<"f32">[] = [];
      if (l1) {
        const a = abs(w), s = sum(a);
        parts.push(mul(s, l1));
        a.dispose();
        s.dispose();
      }
      if (l2) {
        const q = square(w), s = sum(q);
        parts.push(mul(s, l2));
        q.dispose();
        s.dispose();
      }
      if (parts.length === 0) {
        const s = sum(w), z = mul(s, 0);
        s.dispose();
        return z;
      }
      if (parts.length === 1) return parts[0];
      const r = add(parts[0], parts[1]);
      parts[0].dispose();
      parts[1].dispose();
      return r;
    },
  };
}

/** l1·Σ|w| (Keras's L1; default 0.01). */
export function l1(value = 0.01): Regularizer {
  return { ...l1l2({ l1: value }), className: "L1" };
}

/** l2·Σw² (Keras's L2; default 0.01). */
export function l2(value = 0.01): Regularizer {
  return { ...l1l2({ l2: value }), className: "L2" };
}
