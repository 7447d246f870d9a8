/**
 * A reusable finite-difference gradient check for the ops' gradient (VJP) rules.
 *
 * For an op f with inputs x⁽¹⁾…x⁽ⁿ⁾ (f32 tensors) and a fixed random cotangent r of f's output
 * shape, the checked function is L(x) = Σⱼ f(x)ⱼ·rⱼ.
 *
 * - The analytic gradients come from the GPU: `valueAndGrad(() => sum(mul(f(…), r)), inputs)`,
 *   computed in f32 by the recorded gradient rules.
 * - The numeric gradients are float64 central differences of a float64 CPU reference of f
 *   (tests/reference.ts), evaluated at exactly the f32 values the GPU sees — never differences of
 *   the f32 GPU op, which would be far too noisy. Each input element x is perturbed by ±h, ±h/2
 *   and ±h/4 with h = step·max(|x|, stepFloor) (step 1e-3 relative and stepFloor 0.1 by default),
 *   and pairs of central differences are combined by Richardson extrapolation,
 *   R(h) = (4·D(h/2) − D(h))/3, whose truncation error is O(h⁴) (≈ 1e-12 relative at this step,
 *   where a plain central difference would need h ≈ 1e-5 and lose digits to rounding). The
 *   differences are taken per output element (a column of the Jacobian) before weighting by r,
 *   so that their rounding is relative to each output, not to L.
 *   The numeric gradient is R(h/2); its error is estimated as |R(h) − R(h/2)| plus the rounding
 *   of the reference's outputs (4 float64 ulps of each) through the formula. The check refuses to
 *   judge (it throws "finite differences unreliable") when that estimate exceeds 5% of the
 *   allowance below — e.g. when a step crosses a kink, or a scalar output's rounding swamps a
 *   tiny gradient element — so the float64 side takes at most 5% of the tolerance and the
 *   tolerance measures the GPU's f32 error alone.
 *
 * Tolerance. The GPU gradient of element i is a sum of terms tⱼᵢ = rⱼ·∂fⱼ/∂xᵢ, each computed in f32
 * with a few roundings, summed in f32. Its error is therefore bounded by
 *
 *     allowᵢ = EPS · (ulps + kᵢ − 1) · Mᵢ,   Mᵢ = Σⱼ |rⱼ·∂fⱼ/∂xᵢ|,
 *
 * where EPS = 2⁻²³ is one f32 ulp at 1, `ulps` is the number of ulps each term's own computation
 * may be off by (the roundings of the rule's arithmetic and the WGSL error bounds of its builtins),
 * and kᵢ − 1 is the standard first-order bound of recursive summation of kᵢ nonzero terms. Mᵢ and
 * kᵢ are read off the numeric Jacobian. Where a rule cancels internally (elu's y + α, gelu's
 * Φ + x·φ, a composition summing terms of both signs), |∂fⱼ/∂xᵢ| understates the magnitudes
 * involved; those cases pass their own `allow` (computed from the magnitudes of the terms).
 * The GPU gradient is compared against the numeric one with this allowance, and, when a
 * closed-form float64 VJP is given, against the closed form with the same allowance, while the
 * numeric gradient must match the closed form within 5% of it.
 * @module
 */
import { fmtShape, mul, sum, type Tensor, valueAndGrad } from "../mod.ts";
import { assertClose, EPS, f32, Rng, type Shape, sizeOf } from "./harness.ts";

/** One input of a gradient check: its f32 values and its shape. */
export interface GradInput {
  data: ArrayLike<number>;
  shape: Shape;
}

/** A float64 reference result: flat row-major data and its shape. */
export interface GradRefResult {
  data: ArrayLike<number>;
  shape: Shape;
}

/** What an `allow` callback receives for one input. */
export interface AllowContext {
  /** Index of the input. */
  input: number;
  /** The inputs, as float64 (exactly the f32 values). */
  xs: readonly Float64Array[];
  /** The cotangent r (flat, exactly the f32 values). */
  r: Float64Array;
  /** Mᵢ = Σⱼ |rⱼ·∂fⱼ/∂xᵢ| from the numeric Jacobian. */
  magnitude: Float64Array;
  /** kᵢ: the number of output elements that depend on xᵢ (nonzero Jacobian entries). */
  terms: Int32Array;
}

/** A gradient check of one op (or composition). */
export interface GradCheckCase {
  /** Names the case in failure messages. */
  label: string;
  /** The inputs (f32 values; they are rounded to f32 if they are not already). */
  inputs: readonly GradInput[];
  /** The op on the GPU. Constants it needs are captured by the closure. */
  gpu: (...xs: Tensor<"f32">[]) => Tensor<"f32">;
  /** The same op in float64 on the CPU (e.g. from tests/reference.ts). */
  ref: (...xs: Float64Array[]) => GradRefResult;
  /** The inputs to differentiate, by index (default: all). */
  wrt?: readonly number[];
  /**
   * The closed-form float64 gradients of L = Σ f ⊙ r, one per input in `wrt` (the VJP), when
   * there is one: the GPU is compared against it too.
   */
  vjp?: (xs: readonly Float64Array[], r: Float64Array) => readonly ArrayLike<number>[];
  /** Ulps each gradient term may be off by (default 4); see the module's tolerance. */
  ulps?: number;
  /** Absolute allowance per element of input `ctx.input`, replacing the default formula. */
  allow?: (ctx: AllowContext) => ArrayLike<number>;
  /** Relative step of the central differences (default 1e-3). */
  step?: number;
  /** The step of an element x is step·max(|x|, stepFloor) (default 0.1). */
  stepFloor?: number;
  /** Seed of the cotangent r (default 1). */
  seed?: number;
  /** The range of r's elements (default [-1, 1)). */
  cotangent?: readonly [number, number];
}

/** What a gradient check measured, per differentiated input. */
export interface GradCheckReport {
  /** The GPU gradients. */
  analytic: Float32Array[];
  /** The float64 numeric gradients. */
  numeric: Float64Array[];
  /** The allowance per element. */
  allowed: Float64Array[];
  /** Per input: max over elements of |GPU − numeric| / allowance (≤ 1 passes). */
  worst: number[];
}

/** Fraction of the allowance that the numeric gradient's own error may take. */
const NUMERIC_SHARE = 0.05;
/** float64's ulp at 1. */
const EPS64 = 2 ** -52;
/** The rounding of a reference's outputs, in float64 ulps of their magnitude. */
const REF_ULPS = 4;

/**
 * Runs a gradient check (see the module documentation) and throws, naming the case, the input
 * and the worst element, if the GPU's gradient is out of tolerance.
 */
export async function gradCheck(c: GradCheckCase): Promise<GradCheckReport> {
  const xs = c.inputs.map((inp) => Float64Array.from(inp.data, Math.fround));
  c.inputs.forEach((inp, k) => {
    if (xs[k].length !== sizeOf(inp.shape)) {
      throw new Error(
        `${c.label}: input ${k} has ${xs[k].length} values for ${fmtShape(inp.shape)}`,
      );
    }
  });
  const wrt = c.wrt ?? c.inputs.map((_, k) => k);
  const out = c.ref(...xs);
  const outShape = [...out.shape];
  const m = sizeOf(outShape);
  if (out.data.length !== m) {
    throw new Error(`${c.label}: the reference gave ${out.data.length} values for ${outShape}`);
  }
  const [rlo, rhi] = c.cotangent ?? [-1, 1];
  const r32 = new Rng(c.seed ?? 1).floats(m, rlo, rhi);
  const r = Float64Array.from(r32);

  // Analytic gradients on the GPU.
  const tensors = c.inputs.map((inp, k) => f32(Float32Array.from(xs[k]), inp.shape));
  const rT = f32(r32, outShape);
  let analytic: Float32Array[];
  let value: number;
  try {
    const { value: v, grads } = await valueAndGrad(() => {
      const y = c.gpu(...tensors);
      if (fmtShape(y.shape) !== fmtShape(outShape)) {
        throw new Error(
          `${c.label}: the op gave shape ${fmtShape(y.shape)}, the reference ${fmtShape(outShape)}`,
        );
      }
      return sum(mul(y, rT));
    }, wrt.map((k) => tensors[k]));
    try {
      grads.forEach((g, n) => {
        if (fmtShape(g.shape) !== fmtShape(c.inputs[wrt[n]].shape)) {
          throw new Error(
            `${c.label}: the gradient of input ${wrt[n]} has shape ${fmtShape(g.shape)}, ` +
              `the input ${fmtShape(c.inputs[wrt[n]].shape)}`,
          );
        }
      });
      const read = await Promise.all([v.data(), ...grads.map((g) => g.data())]);
      value = (read[0] as Float32Array)[0];
      analytic = read.slice(1) as Float32Array[];
    } finally {
      v.dispose();
      for (const g of grads) g.dispose();
    }
  } finally {
    for (const t of tensors) t.dispose();
    rT.dispose();
  }

  // The value of L, loosely: a guard against a reference that is not the op's.
  let lRef = 0, lAbs = 0, rAbs = 0;
  for (let j = 0; j < m; j++) {
    lRef += out.data[j] * r[j];
    lAbs += Math.abs(out.data[j] * r[j]);
    rAbs += Math.abs(r[j]);
  }
  assertClose(
    [value],
    [lRef],
    { atol: (m + 64) * EPS * lAbs + 16 * EPS * rAbs, rtol: 0 },
    `${c.label}: the value of Σ f·r against the float64 reference`,
  );

  const step = c.step ?? 1e-3;
  const stepFloor = c.stepFloor ?? 0.1;
  const report: GradCheckReport = { analytic, numeric: [], allowed: [], worst: [] };
  const closed = c.vjp?.(xs, r);
  if (closed && closed.length !== wrt.length) {
    throw new Error(`${c.label}: the closed-form VJP gave ${closed.length} gradients`);
  }
  wrt.forEach((k, n) => {
    const x = xs[k];
    const shape = c.inputs[k].shape;
    const num = new Float64Array(x.length);
    const est = new Float64Array(x.length);
    const mag = new Float64Array(x.length);
    const terms = new Int32Array(x.length);
    const evalAt = (i: number, d: number): ArrayLike<number> => {
      const saved = x[i];
      x[i] = saved + d;
      try {
        return c.ref(...xs).data;
      } finally {
        x[i] = saved;
      }
    };
    for (let i = 0; i < x.length; i++) {
      const h = step * Math.max(Math.abs(x[i]), stepFloor);
      // Central differences with steps h, h/2 and h/4, per output element.
      const ps = [h, h / 2, h / 4].map((d) => [evalAt(i, d), evalAt(i, -d)] as const);
      let r1 = 0, r2 = 0, a = 0, t = 0, round = 0;
      for (let j = 0; j < m; j++) {
        const [d1, d2, d4] = ps.map(([p, q], s) => (p[j] - q[j]) / ((2 * h) / 2 ** s));
        // Richardson: (4·D(h/2) − D(h))/3 and (4·D(h/4) − D(h/2))/3, both O(h⁴).
        const e1 = (4 * d2 - d1) / 3, e2 = (4 * d4 - d2) / 3;
        r1 += r[j] * e1;
        r2 += r[j] * e2;
        a += Math.abs(r[j] * e2);
        if (e2 !== 0) t++;
        const [[p2, q2], [p4, q4]] = [ps[1], ps[2]];
        if (p4[j] !== q4[j]) {
          // The reference's rounding (REF_ULPS ulps of each output) through the second formula.
          const s2 = (Math.abs(p2[j]) + Math.abs(q2[j])) / h;
          const s4 = (Math.abs(p4[j]) + Math.abs(q4[j])) / (h / 2);
          round += (Math.abs(r[j]) * REF_ULPS * EPS64 * (4 * s4 + s2)) / 3;
        }
      }
      num[i] = r2;
      est[i] = Math.abs(r1 - r2) + round;
      mag[i] = a;
      terms[i] = t;
    }
    const ctx: AllowContext = { input: k, xs, r, magnitude: mag, terms };
    const allowed = Float64Array.from(
      c.allow ? c.allow(ctx) : mag.map((mi, i) => EPS * ((c.ulps ?? 4) + terms[i] - 1) * mi),
    );
    const where = `${c.label}: d/d(input ${k}) ${fmtShape(shape)}`;
    // The numeric gradient must be far more accurate than what is asked of the GPU.
    for (let i = 0; i < x.length; i++) {
      if (!(est[i] <= NUMERIC_SHARE * allowed[i])) {
        throw new Error(
          `${where}: finite differences unreliable at flat index ${i} (x = ${x[i]}): ` +
            `their estimated error ${est[i]} (|R(h) − R(h/2)| and rounding) exceeds ` +
            `${NUMERIC_SHARE} of the allowance ${allowed[i]} (a step crossing a kink, a step ` +
            `too small for the outputs' magnitude, or too large for the function's curvature)`,
        );
      }
    }
    assertClose(
      analytic[n],
      num,
      { atol: allowed, rtol: 0 },
      `${where}: GPU gradient vs float64 central differences`,
      shape,
    );
    if (closed) {
      const cf = closed[n];
      assertClose(
        num,
        cf,
        { atol: allowed.map((v) => NUMERIC_SHARE * v), rtol: 0 },
        `${where}: central differences vs the closed form (the check itself)`,
        shape,
      );
      assertClose(
        analytic[n],
        cf,
        { atol: allowed, rtol: 0 },
        `${where}: GPU gradient vs the float64 closed form`,
        shape,
      );
    }
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const e = Math.abs(analytic[n][i] - num[i]);
      worst = Math.max(worst, e === 0 ? 0 : e / allowed[i]);
    }
    report.numeric.push(num);
    report.allowed.push(allowed);
    report.worst.push(worst);
  });
  return report;
}

/**
 * One set of gradient terms for {@linkcode termAllow}: output element j of some op contributes a
 * term of magnitude `mag[j]` (|rⱼ|·the magnitudes inside the rule, absolute) to input element
 * `index[j]` (null: j itself), computed in f32 with an absolute error of at most `err[j]`.
 */
export interface TermGroup {
  index: ArrayLike<number> | null;
  err: ArrayLike<number>;
  mag: ArrayLike<number>;
}

/**
 * The allowance of a gradient made of f32 terms summed in f32: for input element i,
 * Σₜ errₜ + EPS·(kᵢ − 1)·Σₜ magₜ over the terms t that reach i, kᵢ being their number (the
 * first-order bound of recursive summation). Several groups give the terms of an input used more
 * than once (mul(x, x)) or reached along several paths (a diamond).
 */
export function termAllow(size: number, groups: readonly TermGroup[]): Float64Array {
  const k = new Int32Array(size);
  const magSum = new Float64Array(size);
  const out = new Float64Array(size);
  for (const g of groups) {
    for (let j = 0; j < g.mag.length; j++) {
      const i = g.index ? g.index[j] : j;
      if (g.mag[j] !== 0) k[i]++;
      magSum[i] += Math.abs(g.mag[j]);
      out[i] += g.err[j];
    }
  }
  for (let i = 0; i < size; i++) out[i] += EPS * Math.max(k[i] - 1, 0) * magSum[i];
  return out;
}
