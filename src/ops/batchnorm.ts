/**
 * Batch normalisation over every axis but the last, as Keras's `BatchNormalization` computes it
 * (shaders/batchnorm_reduce.wgsl for the per-channel statistics and gradient sums,
 * shaders/batchnorm.wgsl for the element-wise parts). Nothing is read back to the CPU, so a
 * training step that uses it can be captured and replayed.
 * @module
 */
import reduceSrc from "../../shaders/batchnorm_reduce.wgsl" with { type: "text" };
import bnSrc from "../../shaders/batchnorm.wgsl" with { type: "text" };
import finishSrc from "../../shaders/batchnorm_finish.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { type Runtime, schedule, type Storage } from "../gpu/runtime.ts";
import { keep, makeTensor, type Tensor } from "../tensor.ts";

const BN_REDUCE = { name: "batchnorm_reduce", code: reduceSrc };
const BN_FINISH = { name: "batchnorm_finish", code: finishSrc };
const BN = { name: "batchnorm", code: bnSrc };

/** Rows per block of the reductions and of the element-wise kernel (more where the grid needs it). */
const REDUCE_BLOCK = 1024, ELEMENT_BLOCK = 256;
/** Rows per tile of the statistics kernel (`TILE` in shaders/batchnorm_reduce.wgsl). */
const TILE = 8;
/** Workgroups per grid dimension that every WebGPU device allows. */
const MAX_GROUPS = 65535;

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

/**
 * How the kernels split a [rows, C] tensor: channel groups of W (4 when C % 4 = 0, 2 when
 * C % 2 = 0, else 1) loaded as one vector, GW groups per workgroup, L row lanes (every L-th row of
 * a block), blocks of `block` contiguous rows along x and channel chunks along y.
 */
interface Blocks {
  groups: number;
  lanes: number;
  block: number;
  blocks: number;
  workgroups: [number, number];
  /** `alias V`, `const GW`, `const L`, `const WG` for the kernels. */
  prefix: string;
}

function blocks(rows: number, c: number, rowsPerBlock: number): Blocks {
  const w = c % 4 === 0 ? 4 : c % 2 === 0 ? 2 : 1;
  const groups = c / w;
  const gw = Math.min(groups, 64);
  const l = Math.floor(64 / gw);
  const block = rowsPerBlock * Math.ceil(Math.ceil(rows / rowsPerBlock) / MAX_GROUPS);
  const n = Math.ceil(rows / block);
  const prefix = `alias V = ${w === 1 ? "f32" : `vec${w}<f32>`};
const GW: u32 = ${gw}u;
const L: u32 = ${l}u;
const WG: u32 = ${gw * l}u;
const TILE: u32 = ${TILE}u;
`;
  return { groups, lanes: l, block, blocks: n, workgroups: [n, Math.ceil(groups / gw)], prefix };
}

/**
 * @internal The longest chain of f32 additions from one element to its channel's total in the
 * reductions of {@linkcode batchNorm} over `rows` rows of C = `c` channels (`statistics`: tiles of
 * TILE rows, a lane's tiles, the workgroup's row lanes, the blocks; `gradient`: a lane's rows, the
 * lanes, the blocks). The tests' error bounds grow with it, where a sequential sum's grow with R.
 */
export function batchNormSumDepth(
  rows: number,
  c: number,
  what: "statistics" | "gradient",
): number {
  const b = blocks(rows, c, REDUCE_BLOCK);
  const perLane = Math.ceil(Math.min(b.block, rows) / b.lanes);
  return what === "statistics"
    ? TILE + Math.ceil(perLane / TILE) + b.lanes + b.blocks
    : perLane + b.lanes + b.blocks;
}

/**
 * The per-block partial sums (shaders/batchnorm_reduce.wgsl) and their per-channel finish
 * (shaders/batchnorm_finish.wgsl, entry `finish`): the batch statistics (mode 0) or the
 * gradient's sums (mode 1). `inputs` are x, dy, mean, scale; `outputs` the finish's bindings.
 */
function channelReduce(
  mode: 0 | 1,
  invStd: boolean,
  inputs: readonly Storage[],
  finish: "stats" | "stats_update" | "grad",
  outputs: readonly Storage[],
  rows: number,
  c: number,
  eps: number,
  momentum: number,
  label: string,
  rt: Runtime,
): void {
  const b = blocks(rows, c, REDUCE_BLOCK);
  const terms = mode === 0 ? 3 : 2;
  const partial = rt.alloc(b.blocks * terms * c * 4, `${label} (partial sums)`);
  const u = new Uint32Array([rows, b.groups, b.block, 0]);
  new Float32Array(u.buffer)[3] = eps;
  rt.dispatch({
    kernel: BN_REDUCE,
    prefix: b.prefix,
    constants: { MODE: mode, INV_STD: invStd ? 1 : 0 },
    bindings: [u, ...inputs, partial],
    workgroups: b.workgroups,
    label: `${label} (blocks)`,
  });
  const f = new Uint32Array([rows, c, b.block, b.blocks, 0, 0, 0, 0]);
  const ff = new Float32Array(f.buffer);
  ff[4] = eps;
  ff[5] = momentum;
  rt.dispatch({
    kernel: BN_FINISH,
    entry: finish,
    bindings: [f, partial, ...outputs],
    workgroups: [Math.ceil(c / 64)],
    label,
  });
  partial.release();
}

/** The element-wise kernel; `bindings` are x, out, mean, scale, gamma, other, Σdy, Σdy·x̂. */
function elementwise(
  mode: 0 | 1 | 2,
  invStd: boolean,
  bindings: readonly Storage[],
  rows: number,
  c: number,
  eps: number,
  label: string,
  rt: Runtime,
): void {
  const b = blocks(rows, c, ELEMENT_BLOCK);
  const u = new Uint32Array([rows, b.groups, b.block, 0, 0, 0, 0, 0]);
  const f = new Float32Array(u.buffer);
  f[3] = eps;
  f[4] = 1 / rows;
  rt.dispatch({
    kernel: BN,
    prefix: b.prefix,
    constants: { MODE: mode, INV_STD: invStd ? 1 : 0 },
    bindings: [u, ...bindings],
    workgroups: b.workgroups,
    label,
  });
}

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
    const g = gamma.storage, bt = beta.storage;
    if (mean && inv) {
      const ms = rt.alloc(c * 4, `${label} (batch mean)`);
      const is = rt.alloc(c * 4, `${label} (batch 1/std)`);
      mean.setStorage(ms);
      inv.setStorage(is);
      const update = mm !== null && mv !== null;
      channelReduce(
        0,
        true,
        // dy, mean and scale are not read by the statistics: any buffers of their sizes.
        [x.storage, x.storage, g, bt],
        update ? "stats_update" : "stats",
        update ? [ms, is, mm!.storage, mv!.storage] : [ms, is],
        rows,
        c,
        eps,
        momentum,
        `${label} statistics`,
        rt,
      );
      elementwise(0, true, [x.storage, ys, ms, is, g, bt, g, bt], rows, c, eps, label, rt);
    } else {
      const m = mm!.storage, v = mv!.storage;
      elementwise(0, false, [x.storage, ys, m, v, g, bt, g, bt], rows, c, eps, label, rt);
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
        const ms = statMean.storage, ss = statScale.storage;
        channelReduce(
          1,
          training,
          [x.storage, dy.storage, ms, ss],
          "grad",
          [sdy, sdyx],
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
          rows,
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
