/**
 * Helpers shared by the op families: launch grids, dtype checks, axis and broadcast rules.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import type { DType, Tensor } from "../tensor.ts";

/** Invocations per workgroup of the element-wise kernels. */
export const WG = 256;

/** The largest workgroup count per dimension that every WebGPU device accepts. */
const MAX_GROUPS = 65535;

/** Maximum rank of the strided kernels (after merging adjacent axes). */
export const MAX_RANK = 8;

/**
 * A 1-D launch of `n` invocations folded into a 2-D grid when it exceeds one dimension's limit.
 * Kernels compute their index as `g.x + g.y * stride`.
 */
export function grid(n: number, wg = WG): { groups: [number, number]; stride: number } {
  const total = Math.max(1, Math.ceil(n / wg));
  const x = Math.min(total, MAX_GROUPS);
  const y = Math.ceil(total / x);
  return { groups: [x, y], stride: x * wg };
}

/** The WGSL scalar type of a dtype. */
export function wgslType(dtype: DType): string {
  return dtype;
}

/** Throws unless every input is live and, when `dtypes` is given, of one of those dtypes. */
export function checkInputs(
  op: string,
  inputs: readonly Tensor[],
  dtypes?: readonly DType[],
): void {
  inputs.forEach((t, i) => {
    if (t === null || typeof t !== "object" || !("shape" in t)) {
      throw new WgradError("value", `${op}: input ${i} is not a tensor (got ${String(t)})`);
    }
    t.assertLive(op);
    if (dtypes && !dtypes.includes(t.dtype)) {
      throw new WgradError(
        "dtype",
        `${op}: ${t.describe()} has dtype ${t.dtype}; ${op} takes ${dtypes.join(" or ")}`,
      );
    }
  });
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** The broadcast shape of two shapes under NumPy's rules, or an error naming the op and shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new WgradError(
        "shape",
        `${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together ` +
          `(axis ${i} of the result: ${da} vs ${db}; sizes must match or one must be 1)`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of `shape` seen through the broadcast `out` shape: 0 along broadcast axes. */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = stridesOf(shape);
  const off = out.length - shape.length;
  return out.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : own[i - off]));
}

/**
 * Merges adjacent axes that every operand traverses contiguously (stride[i] = stride[i+1] ·
 * shape[i+1] for each stride list) and drops axes of size 1. Returns the merged shape and strides.
 */
export function mergeAxes(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = outShape.length - 1;
    if (
      last >= 0 &&
      strides.every((s, k) => outStrides[k][last] === s[i] * shape[i])
    ) {
      outShape[last] *= shape[i];
      strides.forEach((s, k) => (outStrides[k][last] = s[i]));
    } else {
      outShape.push(shape[i]);
      strides.forEach((s, k) => outStrides[k].push(s[i]));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/** Normalises axes (negative counts from the end); rejects duplicates and out-of-range axes. */
export function normalizeAxes(
  op: string,
  axes: number | readonly number[] | undefined,
  shape: readonly number[],
): number[] {
  const rank = shape.length;
  if (axes === undefined) return shape.map((_, i) => i);
  const list = typeof axes === "number" ? [axes] : [...axes];
  const out: number[] = [];
  for (const a of list) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      throw new WgradError(
        "shape",
        `${op}: axis ${a} is out of range for shape ${fmtShape(shape)} (rank ${rank})`,
      );
    }
    const n = a < 0 ? a + rank : a;
    if (out.includes(n)) {
      throw new WgradError("shape", `${op}: axis ${a} is given twice for shape ${fmtShape(shape)}`);
    }
    out.push(n);
  }
  return out.sort((x, y) => x - y);
}

/** Writes up to 8 dims into a uniform block at `offset` (in u32 words), as two vec4<u32>. */
export function putDims(u: Uint32Array, offset: number, dims: readonly number[]): void {
  for (let i = 0; i < MAX_RANK; i++) u[offset + i] = dims[i] ?? 1;
}

/** Throws when a merged rank exceeds what the strided kernels take. */
export function checkRank(op: string, rank: number, shapes: readonly (readonly number[])[]): void {
  if (rank > MAX_RANK) {
    throw new WgradError(
      "shape",
      `${op}: unsupported broadcast or layout for shapes ${shapes.map(fmtShape).join(" and ")}: ` +
        `${rank} axes remain after merging, and the kernel takes at most ${MAX_RANK}`,
    );
  }
}
