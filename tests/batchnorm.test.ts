/**
 * Batch normalisation (shaders/batchnorm_reduce.wgsl, shaders/batchnorm.wgsl,
 * src/ops/batchnorm.ts) against a float64 reference (tests/reference_conv.ts): training (batch
 * statistics, biased variance, moving averages updated in place as Keras 3 does) and inference
 * (moving statistics), rank 2 and 4, one channel and odd channel counts, more rows than a
 * workgroup (64); gradients through the tape against central differences; the errors.
 *
 * Tolerances (u = 2⁻²⁴). The batch mean m is a sum of R elements and a division:
 * |δm| ≤ (R + 1)·u·mean|x|. The two-pass variance v = Σ(x − m)²/R: each square carries the
 * mean's error (2|x − m|·|δm|) and 2 roundings, the sum R more: |δv| ≤ (R + 3)·u·v +
 * 2·mean|x − m|·|δm|. s = 1/√(v + ε) (inverseSqrt: 2 ulps) has |δs|/s ≤ |δv|/(2(v + ε)) + 3u.
 * y = (x − m)·s·γ + β adds 4 roundings: |δy| ≤ |γ|·(s·|δm| + |x − m|·|δs|) + 5u·(|γ·x̂| + |β|).
 * The moving averages mm·momentum + m·(1 − momentum) add 3u of their terms to (1 − momentum)·δm
 * (and δv). Gradient checks use tests/gradcheck.ts with its allowance scaled by the number of
 * rows (each gradient sums R terms and, in training, subtracts means that cancel).
 * @module
 */
import { type Tensor } from "../mod.ts";
import { batchNorm } from "../src/ops/batchnorm.ts";
import { gradCheck } from "./gradcheck.ts";
import { assertClose, assertShape, assertWgradError, EPS, f32, Rng } from "./harness.ts";
import { batchNormRef } from "./reference_conv.ts";

const U = EPS / 2;

const SHAPES: readonly number[][] = [[2, 5, 7, 3], [4, 17], [3, 1, 1, 5], [6, 1], [8, 13, 13, 6]];

interface Tols {
  y: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
}

/** The bounds of the module documentation, per element of y and per channel. */
function tolerances(
  x: Float32Array,
  c: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
  ref: { y: Float64Array; mean: Float64Array; variance: Float64Array },
  training: boolean,
): Tols {
  const rows = x.length / c;
  const dm = new Float64Array(c), dv = new Float64Array(c), ds = new Float64Array(c);
  if (training) {
    const absX = new Float64Array(c), absD = new Float64Array(c);
    for (let i = 0; i < x.length; i++) {
      absX[i % c] += Math.abs(x[i]) / rows;
      absD[i % c] += Math.abs(x[i] - ref.mean[i % c]) / rows;
    }
    for (let j = 0; j < c; j++) {
      dm[j] = (rows + 1) * U * absX[j];
      dv[j] = (rows + 3) * U * ref.variance[j] + 2 * absD[j] * dm[j];
    }
  }
  for (let j = 0; j < c; j++) {
    const s = 1 / Math.sqrt(ref.variance[j] + eps);
    ds[j] = s * (dv[j] / (2 * (ref.variance[j] + eps)) + 3 * U);
  }
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    const s = 1 / Math.sqrt(ref.variance[j] + eps);
    const d = Math.abs(x[i] - ref.mean[j]);
    y[i] = Math.abs(gamma[j]) * (s * dm[j] + d * ds[j]) +
      5 * U * (Math.abs(gamma[j]) * d * s + Math.abs(beta[j]));
  }
  return { y, mean: dm, variance: dv };
}

for (const training of [true, false]) {
  Deno.test(`batchNorm ${training ? "training" : "inference"} matches the float64 reference`, async () => {
    const rng = new Rng(training ? 0xb0 : 0xb1);
    for (const shape of SHAPES) {
      const c = shape[shape.length - 1];
      const n = shape.reduce((a, b) => a * b, 1);
      const x = rng.floats(n, -2, 3);
      const gamma = rng.floats(c, 0.5, 2), beta = rng.floats(c, -1, 1);
      const mm0 = rng.floats(c, -1, 1), mv0 = rng.floats(c, 0.5, 2);
      const momentum = 0.9, eps = 1e-3;
      const label = `batchNorm ${training ? "training" : "inference"} [${shape.join(", ")}]`;
      const xt = f32(x, shape), g = f32(gamma, [c]), b = f32(beta, [c]);
      const mm = f32(mm0, [c]), mv = f32(mv0, [c]);
      const y = batchNorm(xt, g, b, {
        training,
        movingMean: mm,
        movingVar: mv,
        momentum,
        epsilon: eps,
      });
      const [yd, mmd, mvd] = await Promise.all([y.data(), mm.data(), mv.data()]);
      for (const t of [xt, g, b, mm, mv, y]) t.dispose();
      const ref = batchNormRef(
        x,
        c,
        gamma,
        beta,
        eps,
        training ? null : { mean: mm0, variance: mv0 },
      );
      const tol = tolerances(x, c, gamma, beta, eps, ref, training);
      assertShape(y.shape, shape, label);
      assertClose(yd, ref.y, { atol: tol.y, rtol: 0 }, `${label}: y`, shape);
      if (training) {
        // Keras 3: moving = moving·momentum + batch·(1 − momentum), the biased batch variance.
        const em = mm0.map((m, j) => m * momentum + ref.mean[j] * (1 - momentum));
        const ev = mv0.map((v, j) => v * momentum + ref.variance[j] * (1 - momentum));
        const tm = Float64Array.from(
          mm0,
          (m, j) => 3 * U * (Math.abs(m) + Math.abs(ref.mean[j])) + (1 - momentum) * tol.mean[j],
        );
        const tv = Float64Array.from(
          mv0,
          (v, j) => 3 * U * (Math.abs(v) + ref.variance[j]) + (1 - momentum) * tol.variance[j],
        );
        assertClose(mmd, em, { atol: tm, rtol: 0 }, `${label}: moving mean`);
        assertClose(mvd, ev, { atol: tv, rtol: 0 }, `${label}: moving variance`);
      } else {
        assertClose(mmd, mm0, { atol: 0, rtol: 0 }, `${label}: moving mean unchanged`);
        assertClose(mvd, mv0, { atol: 0, rtol: 0 }, `${label}: moving variance unchanged`);
      }
    }
  });
}

const CHECKS: readonly number[][] = [[2, 3, 4, 3], [7, 2], [5, 1]];

for (const training of [true, false]) {
  for (const shape of CHECKS) {
    Deno.test(
      `gradient check: batchNorm ${training ? "training" : "inference"} [${shape.join(", ")}]`,
      async () => {
        const rng = new Rng(0xb2 + shape.length * 3 + (training ? 1 : 0));
        const c = shape[shape.length - 1];
        const n = shape.reduce((a, b) => a * b, 1);
        const rows = n / c;
        const mm0 = rng.floats(c, -0.5, 0.5), mv0 = rng.floats(c, 0.5, 2);
        const eps = 1e-3;
        const stats: Tensor<"f32">[] = [];
        await gradCheck({
          label: `batchNorm ${training ? "training" : "inference"} [${shape.join(", ")}]`,
          inputs: [
            { data: rng.floats(n, -2, 2), shape },
            { data: rng.floats(c, 0.5, 2), shape: [c] },
            { data: rng.floats(c, -1, 1), shape: [c] },
          ],
          gpu: (x, g, b) => {
            const mm = f32(mm0, [c]), mv = f32(mv0, [c]);
            stats.push(mm, mv);
            return batchNorm(x, g, b, { training, movingMean: mm, movingVar: mv, epsilon: eps });
          },
          ref: (x, g, b) => ({
            data: batchNormRef(x, c, g, b, eps, training ? null : { mean: mm0, variance: mv0 }).y,
            shape,
          }),
          // Each gradient sums R terms; in training dx subtracts two means of R terms each, whose
          // cancellation the Jacobian's magnitudes do not show.
          ulps: training ? 4 * rows + 16 : 8,
        });
        for (const t of stats) t.dispose();
      },
    );
  }
}

Deno.test("batchNorm rejects bad shapes and options with messages naming the op and shapes", () => {
  const x = f32(new Float32Array(24), [2, 3, 4]);
  const g = f32([1, 1, 1, 1], [4]), b = f32([0, 0, 0, 0], [4]);
  const g3 = f32([1, 1, 1], [3]);
  try {
    assertWgradError(
      () => batchNorm(f32([1, 2], [2]), g, b, { training: true }),
      "shape",
      ["batchNorm", "rank 2"],
      "rank 1",
    );
    assertWgradError(
      () => batchNorm(x, g3, b, { training: true }),
      "shape",
      ["batchNorm", "gamma", "[4]", "[2, 3, 4]"],
      "gamma shape",
    );
    assertWgradError(
      () => batchNorm(x, g, b, {}),
      "value",
      ["batchNorm", "inference needs movingMean"],
      "inference without statistics",
    );
    assertWgradError(
      () => batchNorm(x, g, b, { training: true, momentum: 1.5 }),
      "value",
      ["batchNorm", "momentum"],
      "momentum",
    );
    assertWgradError(
      () => batchNorm(x, g, b, { training: true, epsilon: 0 }),
      "value",
      ["batchNorm", "epsilon"],
      "epsilon",
    );
    assertWgradError(
      () => batchNorm(x, g, b, { training: false, movingMean: g, movingVar: g3 }),
      "shape",
      ["batchNorm", "movingVar", "[4]"],
      "moving variance shape",
    );
  } finally {
    for (const t of [x, g, b, g3]) t.dispose();
  }
});
