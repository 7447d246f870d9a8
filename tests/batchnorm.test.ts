/**
 * Batch normalisation (shaders/batchnorm_reduce.wgsl, shaders/batchnorm_finish.wgsl,
 * shaders/batchnorm.wgsl, src/ops/batchnorm.ts) against a float64 reference
 * (tests/reference_conv.ts): training (batch statistics, biased variance, moving averages updated
 * in place as Keras 3 does) and inference (moving statistics); forward values and, through the
 * tape, dx, dγ and dβ against the float64 formulas; gradients against central differences; the
 * errors. Shapes cover C = 1, 3, 6, 32, 37, 64 (vector loads of 4 and 2 channels and scalar ones,
 * more channel groups than a workgroup holds), rows 1, 7, 70, 1000, 12544 and 50176 (not multiples
 * of the 256- and 1024-row blocks, nor of the 8-row tiles), rank 2 and 4, and a data set with a
 * large mean and a small spread (x = 1000 + 0.01·noise) where E[x²] − E[x]² would cancel
 * catastrophically: in f32 its error would be about u·1000²/0.01² ≈ 600 times the variance.
 *
 * Tolerances (u = 2⁻²⁴). Per channel, m and v are the exact mean and biased variance, D the
 * largest |x − m|, K = batchNormSumDepth(R, C) the longest chain of f32 additions in the kernels'
 * sums (tiles, lanes, blocks; K ≤ R + 8 + 64 + R/1024, far smaller than R for large R). Every
 * term the statistics kernels add is a deviation from a centre that is a mean of rows of the same
 * channel (|x − c| ≤ 2D), and the combining identities are exact, so:
 *   |δm| ≤ 2u·|m| + 4(K + 4)·u·D        (the final c₀ + T/R rounds once at |m|; T is small)
 *   |δv| ≤ 16(K + 8)·u·D² + δm²          (Σ(x − m̃)² = Σ(x − m)² + R·δm²: the mean's error
 *                                          enters only squared; no term of size m² appears)
 * (D² ≤ R·v, so this is never worse than a sequential two-pass sum's (R + 3)·u·v.) Then
 * s = 1/√(v + ε) (inverseSqrt: 2 ulps) has |δs| ≤ s·(|δv|/(2(v + ε)) + 3u), and
 * y = (x − m)·s·γ + β: |δy| ≤ |γ|·(s·|δm| + |x − m|·|δs|) + 5u·(|γ·x̂| + |β|). The moving averages
 * mm·momentum + m·(1 − momentum) add 3u of their terms to (1 − momentum)·δm (and δv).
 * Gradients: dβ = Σdy has |δ| ≤ (K + 1)·u·Σ|dy|; dγ = s·Σdy·(x − m) has
 * |δ| ≤ (K + 4)·u·s·A + s·|δm|·|dβ| + |δs|·A with A = Σ|dy|·|x − m|; dx = γs·dy + cx·(x − m) + cb
 * (cx = −γs²·dγ/R, cb = −γs·dβ/R) propagates these errors term by term, plus 3 roundings of its
 * terms (see gradTolerance). Gradient checks use tests/gradcheck.ts with its allowance scaled by
 * the number of rows (each gradient sums R terms and, in training, subtracts means that cancel).
 * @module
 */
import { GradientTape, type Tensor } from "../mod.ts";
import { batchNorm, batchNormSumDepth } from "../src/ops/batchnorm.ts";
import { gradCheck } from "./gradcheck.ts";
import { assertClose, assertShape, assertWgradError, EPS, f32, Rng } from "./harness.ts";
import { batchNormRef } from "./reference_conv.ts";

const U = EPS / 2;

const SHAPES: readonly number[][] = [
  [1, 1],
  [1, 37],
  [7, 3],
  [7, 6],
  [7, 64],
  [2, 5, 7, 3],
  [4, 17],
  [3, 1, 1, 5],
  [6, 1],
  [8, 13, 13, 6],
  [1000, 1],
  [1000, 37],
  [10, 10, 10, 32],
  [1000, 64],
  [50176, 3],
  [16, 28, 28, 64],
  [64, 28, 28, 32],
];

interface Stats {
  mean: Float64Array;
  variance: Float64Array;
}

interface Tols {
  y: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
  /** |δs| per channel. */
  scale: Float64Array;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The bounds of the module documentation, per element of y and per channel. */
function tolerances(
  x: Float32Array,
  c: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
  ref: Stats,
  training: boolean,
): Tols {
  const rows = x.length / c;
  const k = batchNormSumDepth(rows, c, "statistics");
  const dm = new Float64Array(c), dv = new Float64Array(c), ds = new Float64Array(c);
  if (training) {
    const dMax = new Float64Array(c);
    for (let i = 0; i < x.length; i++) {
      dMax[i % c] = Math.max(dMax[i % c], Math.abs(x[i] - ref.mean[i % c]));
    }
    for (let j = 0; j < c; j++) {
      dm[j] = 2 * U * Math.abs(ref.mean[j]) + 4 * (k + 4) * U * dMax[j];
      dv[j] = 16 * (k + 8) * U * dMax[j] ** 2 + dm[j] ** 2;
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
  return { y, mean: dm, variance: dv, scale: ds };
}

/** dx, dγ, dβ of Σ dy·y in float64, from the exact statistics. */
function gradRef(
  x: Float32Array,
  dy: Float32Array,
  c: number,
  gamma: Float32Array,
  eps: number,
  ref: Stats,
  training: boolean,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const rows = x.length / c;
  const s = Float64Array.from(ref.variance, (v) => 1 / Math.sqrt(v + eps));
  const dgamma = new Float64Array(c), dbeta = new Float64Array(c);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    dbeta[j] += dy[i];
    dgamma[j] += dy[i] * (x[i] - ref.mean[j]) * s[j];
  }
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    const xh = (x[i] - ref.mean[j]) * s[j];
    dx[i] = training
      ? gamma[j] * s[j] * (dy[i] - dbeta[j] / rows - xh * dgamma[j] / rows)
      : gamma[j] * s[j] * dy[i];
  }
  return { dx, dgamma, dbeta };
}

/** The gradient bounds of the module documentation. */
function gradTolerance(
  x: Float32Array,
  dy: Float32Array,
  c: number,
  gamma: Float32Array,
  eps: number,
  ref: Stats,
  tol: Tols,
  g: { dgamma: Float64Array; dbeta: Float64Array },
  training: boolean,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const rows = x.length / c;
  const k = batchNormSumDepth(rows, c, "gradient");
  const sumAbs = new Float64Array(c), a = new Float64Array(c);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    sumAbs[j] += Math.abs(dy[i]);
    a[j] += Math.abs(dy[i]) * Math.abs(x[i] - ref.mean[j]);
  }
  const s = Float64Array.from(ref.variance, (v) => 1 / Math.sqrt(v + eps));
  const dbeta = Float64Array.from(sumAbs, (t) => (k + 1) * U * t);
  const dgamma = Float64Array.from(
    s,
    (sj, j) =>
      (k + 4) * U * sj * a[j] + sj * tol.mean[j] * Math.abs(g.dbeta[j]) + tol.scale[j] * a[j],
  );
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % c;
    const ga = Math.abs(gamma[j]), sj = s[j], ds = tol.scale[j], dm = tol.mean[j];
    const d = Math.abs(x[i] - ref.mean[j]), gy = Math.abs(dy[i]);
    const eg = ga * (ds + 2 * U * sj);
    const e1 = gy * eg + U * ga * sj * gy;
    if (!training) {
      dx[i] = e1;
      continue;
    }
    const cx = ga * sj * sj * Math.abs(g.dgamma[j]) / rows;
    const ecx = ga * (2 * sj * ds + 4 * U * sj * sj) * Math.abs(g.dgamma[j]) / rows +
      ga * sj * sj * dgamma[j] / rows;
    const e2 = ecx * d + cx * (dm + U * d);
    const cb = ga * sj * Math.abs(g.dbeta[j]) / rows;
    const ecb = eg * Math.abs(g.dbeta[j]) / rows +
      ga * sj * (dbeta[j] + 3 * U * Math.abs(g.dbeta[j])) / rows;
    dx[i] = e1 + e2 + ecb + 3 * U * (ga * sj * gy + cx * d + cb);
  }
  return { dx, dgamma, dbeta };
}

interface Case {
  label: string;
  shape: readonly number[];
  x: Float32Array;
  training: boolean;
  momentum: number;
  eps: number;
}

/** Runs batchNorm forward and backward (seed dy) and checks everything against float64. */
async function checkCase(cs: Case, rng: Rng): Promise<Stats> {
  const { label, shape, x, training, momentum, eps } = cs;
  const c = shape[shape.length - 1];
  const gamma = rng.floats(c, 0.5, 2), beta = rng.floats(c, -1, 1);
  const mm0 = rng.floats(c, -1, 1), mv0 = rng.floats(c, 0.5, 2);
  const dy = rng.floats(x.length, -1, 1);
  const xt = f32(x, shape), g = f32(gamma, [c]), b = f32(beta, [c]);
  const mm = f32(mm0, [c]), mv = f32(mv0, [c]), seed = f32(dy, shape);
  const tape = new GradientTape();
  tape.watch(xt, g, b);
  const y = tape.record(() =>
    batchNorm(xt, g, b, { training, movingMean: mm, movingVar: mv, momentum, epsilon: eps })
  );
  const [dx, dg, db] = await tape.gradient(y, [xt, g, b], seed);
  tape.dispose();
  const [yd, mmd, mvd, dxd, dgd, dbd] = await Promise.all(
    [y, mm, mv, dx, dg, db].map((t) => t.data() as Promise<Float32Array>),
  );
  for (const t of [xt, g, b, mm, mv, seed, y, dx, dg, db]) t.dispose();
  const ref = batchNormRef(x, c, gamma, beta, eps, training ? null : { mean: mm0, variance: mv0 });
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
  const gr = gradRef(x, dy, c, gamma, eps, ref, training);
  const gt = gradTolerance(x, dy, c, gamma, eps, ref, tol, gr, training);
  assertClose(dbd, gr.dbeta, { atol: gt.dbeta, rtol: 0 }, `${label}: dβ`);
  assertClose(dgd, gr.dgamma, { atol: gt.dgamma, rtol: 0 }, `${label}: dγ`);
  assertClose(dxd, gr.dx, { atol: gt.dx, rtol: 0 }, `${label}: dx`, shape);
  return ref;
}

for (const training of [true, false]) {
  Deno.test(`batchNorm ${training ? "training" : "inference"} matches the float64 reference`, async () => {
    const rng = new Rng(training ? 0xb0 : 0xb1);
    for (const shape of SHAPES) {
      const label = `batchNorm ${training ? "training" : "inference"} [${shape.join(", ")}]`;
      const x = rng.floats(sizeOf(shape), -2, 3);
      await checkCase({ label, shape, x, training, momentum: 0.9, eps: 1e-3 }, rng);
    }
  });
}

Deno.test("batchNorm statistics of a large mean and a small spread (no E[x²] − E[x]² cancellation)", async () => {
  const rng = new Rng(0xb7);
  for (const shape of [[64, 28, 28, 32], [1000, 37], [7, 6]]) {
    const label = `batchNorm training, x = 1000 + 0.01·noise [${shape.join(", ")}]`;
    const x = Float32Array.from(rng.floats(sizeOf(shape), -1, 1), (e) => 1000 + 0.01 * e);
    // Momentum 0: the moving statistics become the batch's mean and variance, checked directly;
    // ε well below the variance (~3e-5), so that s depends on it.
    const ref = await checkCase({ label, shape, x, training: true, momentum: 0, eps: 1e-8 }, rng);
    for (const v of ref.variance) {
      if (!(v > 1e-5 && v < 1e-4)) throw new Error(`${label}: the data's variance is ${v}`);
    }
  }
});

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
