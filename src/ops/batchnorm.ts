/**
 * Batch normalisation over every axis but the last, as Keras's `BatchNormalization` computes it
 * (shaders/batchnorm_reduce.wgsl for the per-channel statistics and gradient sums,
 * shaders/batchnorm.wgsl for the element-wise parts). Nothing is read back to the CPU, so a
 * training step that uses it can be captured and replayed.
 * @module
 */
import reduceSrc from "../../shaders/batchnorm_reduce.wgsl" with { type: "text" };
import bnSrc from "../../shaders/batchnorm.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { type Runtime, schedule, type Storage } from "../gpu/runtime.ts";
import { keep, makeTensor, type Tensor } from "../tensor.ts";
import { grid } from "./util.ts";

const BN_REDUCE = { name: "batchnorm_reduce", code: reduceSrc };
const BN = { name: "batchnorm", code: bnSrc };

/** Options of {@linkcode batchNorm}. */
export interface BatchNormOptions {
  /**
   * Training mode (default false): normalise with the batch's mean and biased variance and update
   * the moving statistics; otherwise normalise with the moving statistics.
   */
  training?: boolean;
  /** The moving mean `[C]`, updated in place in training; required in inference. */
  movingMean?: Tensor<"f32"> | null;
  /** The moving variance `[C]`, updated in place in training; required in inference. */
  movingVar?: Tensor<"f32"> | null;
  /** Weight of the old moving statistics in their update (default 0.99, as Keras). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-3, as Keras). */
  epsilon?: number;
}

function check(op: string, t: unknown, name: string): asserts t is Tensor<"f32"> {
  if (t === null || typeof t !== "object" || !("shape" in t) || !("dtype" in t)) {
    throw new WgradError("value", `${op}: ${name} is not a tensor (got ${String(t)})`);
  }
  const x = t as Tensor;
  x.assertLive(op);
  if (x.dtype !== "f32") {
    throw new WgradError(
      "dtype",
      `${op}: ${name} ${x.describe()} has dtype ${x.dtype}; f32 needed`,
    );
  }
}

/** The per-channel kernel: `prefix` defines first/second/finish and bindings 1…. */
function channelReduce(
  prefix: string,
  bindings: readonly Storage[],
  rows: number,
  c: number,
  eps: number,
  momentum: number,
  label: string,
  rt: Runtime,
): void {
  const u = new Float32Array([0, 0, eps, momentum]);
  const w = new Uint32Array(u.buffer);
  w[0] = rows;
  w[1] = c;
  rt.dispatch({ kernel: BN_REDUCE, prefix, bindings: [u, ...bindings], workgroups: [c], label });
}

function elementwise(
  mode: 0 | 1 | 2,
  invStd: boolean,
  bindings: readonly Storage[],
  total: number,
  c: number,
  eps: number,
  label: string,
  rt: Runtime,
): void {
  const g = grid(total);
  const u = new Uint32Array([total, c, g.stride, 0, 0, 0, 0, 0]);
  const f = new Float32Array(u.buffer);
  f[3] = eps;
  f[4] = 1 / (total / c);
  const [x, out, ...rest] = bindings;
  rt.dispatch({
    kernel: BN,
    constants: { MODE: mode, INV_STD: invStd ? 1 : 0 },
    bindings: [x, out, u, ...rest],
    workgroups: g.groups,
    label,
  });
}

const ldScale = (invStd: boolean) => invStd ? "scale[c]" : "inverseSqrt(scale[c] + p.eps)";

/**
 * Batch normalisation over every axis but the last (Keras's `BatchNormalization` with
 * `axis=-1`): `y = γ·(x − mean)/√(var + ε) + β` per channel.
 *
 * In training (`training: true`) mean and var are the batch's, over all rows `x.shape[:-1]`, with
 * the biased variance (divided by the count), and the moving statistics, when given, are updated
 * in place as Keras 3 does (keras/src/layers/normalization/batch_normalization.py, `call`):
 * `moving_mean = moving_mean·momentum + mean·(1 − momentum)` and
 * `moving_variance = moving_variance·momentum + variance·(1 − momentum)`, where `variance` is the
 * same biased batch variance (`ops.moments`; no Bessel correction, unlike Keras 2's fused path).
 * In inference the moving statistics are used and left alone.
 *
 * Gradients for x, γ and β are recorded on the tape: in training the full backward pass through
 * the batch statistics, dx = γ/√(var + ε)·(dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂,
 * dβ = Σ dy; in inference dx = γ/√(var + ε)·dy. No value is read back to the CPU.
 *
 * @param x `[..., C]`, rank 2 or more
 * @param gamma the scale `[C]`
 * @param beta the offset `[C]`
 * @throws {WgradError} `shape` when x has rank < 2 or no rows, or γ, β or a moving statistic is
 * not `[C]`; `value` for missing moving statistics in inference, a momentum outside [0, 1] or a
 * non-positive epsilon; `dtype` for a tensor that is not f32.
 */
export function batchNorm(
  x: Tensor<"f32">,
  gamma: Tensor<"f32">,
  beta: Tensor<"f32">,
  options: BatchNormOptions = {},
): Tensor<"f32"> {
  const op = "batchNorm";
  check(op, x, "x");
  check(op, gamma, "gamma");
  check(op, beta, "beta");
  const training = options.training ?? false;
  const momentum = options.momentum ?? 0.99;
  const eps = options.epsilon ?? 1e-3;
  if (typeof momentum !== "number" || !(momentum >= 0 && momentum <= 1)) {
    throw new WgradError("value", `${op}: momentum must be in [0, 1], got ${String(momentum)}`);
  }
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    throw new WgradError("value", `${op}: epsilon must be a positive number, got ${String(eps)}`);
  }
  if (x.rank < 2) {
    throw new WgradError(
      "shape",
      `${op}: x must have rank 2 or more (rows × channels), got ${x.describe()}`,
    );
  }
  const c = x.shape[x.rank - 1];
  const rows = x.size / Math.max(c, 1);
  if (x.size === 0) {
    throw new WgradError("shape", `${op}: x ${x.describe()} has no elements to normalise`);
  }
  const mm = options.movingMean ?? null, mv = options.movingVar ?? null;
  if (mm) check(op, mm, "movingMean");
  if (mv) check(op, mv, "movingVar");
  if ((mm === null) !== (mv === null) || (!training && mm === null)) {
    throw new WgradError(
      "value",
      `${op}: ${
        training
          ? "give both movingMean and movingVar, or neither"
          : "inference needs movingMean and movingVar"
      } (x ${x.describe()})`,
    );
  }
  for (
    const [t, name] of [[gamma, "gamma"], [beta, "beta"], [mm, "movingMean"], [
      mv,
      "movingVar",
    ]] as const
  ) {
    if (t && (t.rank !== 1 || t.shape[0] !== c)) {
      throw new WgradError(
        "shape",
        `${op}: ${name} ${t.describe()} must have shape [${c}] for x ${x.describe()}`,
      );
    }
  }
  const label = `${op}${training ? " (training)" : ""} ${fmtShape(x.shape)}`;
  const y = makeTensor(x.shape, "f32");
  const rec = recording([x, gamma, beta]);
  // Training: the batch mean and 1/√(var + ε), kept for the gradient.
  const mean = training ? makeTensor([c], "f32") : null;
  const inv = training ? makeTensor([c], "f32") : null;
  schedule((rt) => {
    const ys = rt.alloc(x.size * 4, label);
    y.setStorage(ys);
    if (mean && inv) {
      const ms = rt.alloc(c * 4, `${label} (batch mean)`);
      const is = rt.alloc(c * 4, `${label} (batch 1/std)`);
      mean.setStorage(ms);
      inv.setStorage(is);
      const update = mm !== null && mv !== null;
      const prefix = `const TWO_PASS = true;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> inv_std: array<f32>;
${
        update
          ? `@group(0) @binding(4) var<storage, read_write> moving_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> moving_var: array<f32>;`
          : ""
      }
fn first(i: u32, c: u32) -> vec2<f32> { return vec2(x[i * p.c + c], 0.0); }
fn second(i: u32, c: u32, a: vec2<f32>) -> vec2<f32> {
  let d = x[i * p.c + c] - a.x / f32(p.rows);
  return vec2(d * d, 0.0);
}
fn finish(c: u32, a: vec2<f32>, b: vec2<f32>) {
  let m = a.x / f32(p.rows);
  let v = b.x / f32(p.rows);
  mean[c] = m;
  inv_std[c] = inverseSqrt(v + p.eps);
  ${
        update
          ? `moving_mean[c] = moving_mean[c] * p.momentum + m * (1.0 - p.momentum);
  moving_var[c] = moving_var[c] * p.momentum + v * (1.0 - p.momentum);`
          : ""
      }
}
`;
      const b = [x.storage, ms, is];
      if (update) b.push(mm!.storage, mv!.storage);
      channelReduce(prefix, b, rows, c, eps, momentum, `${label} statistics`, rt);
      elementwise(
        0,
        true,
        [x.storage, ys, ms, is, gamma.storage, beta.storage, ms, is],
        x.size,
        c,
        eps,
        label,
        rt,
      );
    } else {
      const m = mm!.storage, v = mv!.storage;
      elementwise(
        0,
        false,
        [x.storage, ys, m, v, gamma.storage, beta.storage, m, v],
        x.size,
        c,
        eps,
        label,
        rt,
      );
    }
  });
  if (rec) {
    const statMean = mean ? keep(mean) : mm!;
    const statScale = inv ? keep(inv) : mv!;
    // In inference the moving statistics are inputs too (without gradients), so that the tape
    // keeps them alive until the backward pass has read them.
    const inputs = training ? [x, gamma, beta] : [x, gamma, beta, statMean, statScale];
    record(op, inputs, y, (dy) => {
      const dgamma = makeTensor([c], "f32"), dbeta = makeTensor([c], "f32");
      const dx = makeTensor(x.shape, "f32");
      const glabel = `${op} gradient ${fmtShape(x.shape)}`;
      schedule((rt) => {
        const sdy = rt.alloc(c * 4, `${glabel} (dβ)`);
        const sdyx = rt.alloc(c * 4, `${glabel} (dγ)`);
        dbeta.setStorage(sdy);
        dgamma.setStorage(sdyx);
        const prefix = `const TWO_PASS = false;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum_dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> sum_dyx: array<f32>;
fn first(i: u32, c: u32) -> vec2<f32> {
  let j = i * p.c + c;
  let g = dy[j];
  return vec2(g, g * (x[j] - mean[c]) * ${ldScale(training)});
}
fn second(i: u32, c: u32, a: vec2<f32>) -> vec2<f32> { return vec2(0.0); }
fn finish(c: u32, a: vec2<f32>, b: vec2<f32>) {
  sum_dy[c] = a.x;
  sum_dyx[c] = a.y;
}
`;
        const ms = statMean.storage, ss = statScale.storage;
        channelReduce(
          prefix,
          [x.storage, dy.storage, ms, ss, sdy, sdyx],
          rows,
          c,
          eps,
          momentum,
          `${glabel} sums`,
          rt,
        );
        const dxs = rt.alloc(x.size * 4, glabel);
        dx.setStorage(dxs);
        elementwise(
          training ? 1 : 2,
          training,
          [x.storage, dxs, ms, ss, gamma.storage, dy.storage, sdy, sdyx],
          x.size,
          c,
          eps,
          glabel,
          rt,
        );
      });
      return training ? [dx, dgamma, dbeta] : [dx, dgamma, dbeta, null, null];
    }, training ? [statMean, statScale] : []);
  } else {
    mean?.dispose();
    inv?.dispose();
  }
  return y;
}
