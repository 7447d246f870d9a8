/**
 * Batch gather for training from GPU-resident data sets: the batch's rows are picked through a
 * permutation on the GPU, bytes are converted and normalised on the way, so that a training step
 * moves no data from the CPU.
 * @module
 */
import gatherSrc from "../../shaders/gather.wgsl" with { type: "text" };
import { fmtShape, WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import { type DType, makeTensor, type Tensor } from "../tensor.ts";
import { checkInputs, grid } from "./util.ts";

const GATHER = { name: "gather", code: gatherSrc };

/** Where the rows come from. */
export interface GatherSource {
  /**
   * The rows, back to back: bytes packed four per u32 word (`"u8"`), or 32-bit values. A list
   * holds the rows in chunks, for sets larger than one storage binding: chunk `c` holds rows
   * `[c · perChunk, (c + 1) · perChunk)` (the last one the rest), each chunk starting at word 0.
   */
  data: Tensor | readonly Tensor[];
  /** Rows per chunk when `data` is a list. */
  perChunk?: number;
  /** `"u8"`: bytes normalised to f32; otherwise the element type of `data`. */
  kind: "u8" | DType;
  /** Number of rows. */
  rows: number;
  /** The shape of one row (e.g. [28, 28]). */
  rowShape: readonly number[];
}

/** Options of {@linkcode gatherRows}. */
export interface GatherOptions {
  /** For bytes: out = byte · scale + shift (default 1/255 and 0: [0, 1]). */
  scale?: number;
  /** See `scale`. */
  shift?: number;
}

/**
 * Rows `perm[step[3] + b]` for b < `batch`, as a tensor `[batch, ...rowShape]`. `perm` is a u32
 * permutation of the rows; `step` the u32 step state `[seedLo, seedHi, step, batchStart]`
 * (updated per step with `Runtime.write` when replayed; see `rngState` in dropout.ts).
 */
export function gatherRows(
  src: GatherSource,
  perm: Tensor<"u32">,
  step: Tensor<"u32">,
  batch: number,
  options: GatherOptions = {},
): Tensor {
  const chunks: readonly Tensor[] = Array.isArray(src.data) ? src.data : [src.data as Tensor];
  checkInputs("gatherRows", [...chunks, perm, step]);
  if (perm.dtype !== "u32" || step.dtype !== "u32") {
    throw new WgradError(
      "dtype",
      `gatherRows: perm and step must be u32, got ${perm.describe()}, ${step.describe()}`,
    );
  }
  const features = src.rowShape.reduce((a, b) => a * b, 1);
  const perChunk = chunks.length > 1 ? src.perChunk ?? 0 : src.rows;
  if (
    chunks.length > 1 &&
    (!Number.isInteger(perChunk) || perChunk < 1 || (chunks.length - 1) * perChunk >= src.rows ||
      chunks.length * perChunk < src.rows)
  ) {
    throw new WgradError(
      "value",
      `gatherRows: ${chunks.length} chunks (${chunks.map((t) => t.describe()).join(", ")}) of ${
        src.perChunk === undefined ? "an unstated number of" : src.perChunk
      } rows each cannot hold ${src.rows} rows of ${fmtShape(src.rowShape)} (perChunk must be a ` +
        "positive integer with all chunks but the last full)",
    );
  }
  chunks.forEach((t, c) => {
    const rows = Math.min(perChunk, src.rows - c * perChunk);
    const words = src.kind === "u8" ? Math.ceil(rows * features / 4) : rows * features;
    if (t.size < words) {
      throw new WgradError(
        "shape",
        `gatherRows: ${t.describe()} holds fewer than ${rows} rows of ${fmtShape(src.rowShape)}${
          chunks.length > 1 ? ` (chunk ${c} of ${chunks.length})` : ""
        }`,
      );
    }
  });
  if (!Number.isInteger(batch) || batch < 1 || batch > perm.size) {
    throw new WgradError(
      "value",
      `gatherRows: batch ${batch} must be an integer in [1, ${perm.size}]`,
    );
  }
  for (const t of chunks) {
    if (src.kind !== "u8" && t.dtype !== src.kind) {
      throw new WgradError(
        "dtype",
        `gatherRows: rows of kind ${src.kind} cannot be read from ${t.describe()}`,
      );
    }
    if (src.kind === "u8" && t.dtype !== "u32") {
      throw new WgradError(
        "dtype",
        `gatherRows: bytes must come packed in a u32 tensor, got ${t.describe()}`,
      );
    }
  }
  const outType: DType = src.kind === "u8" ? "f32" : src.kind;
  const out = makeTensor([batch, ...src.rowShape], outType);
  const n = batch * features;
  const byWord = src.kind === "u8" && features % 4 === 0;
  // Words per invocation of `main_words`: 4 when a row holds a multiple of 4 words.
  const wpi = byWord ? (features % 16 === 0 ? 4 : 1) : 1;
  const invocations = byWord ? n / (4 * wpi) : n;
  const { scale = 1 / 255, shift = 0 } = options;
  schedule((rt) => {
    const from = chunks.length > 1
      ? `${chunks.length} chunks (${chunks.map((t) => t.describe()).join(", ")})`
      : chunks[0].describe();
    const label = `gather ${batch} rows of ${fmtShape(src.rowShape)} from ${from}`;
    const s = rt.alloc(n * 4, label);
    out.setStorage(s);
    const g = grid(invocations, byWord ? 64 : 256);
    // One dispatch per chunk, each writing the batch rows that lie in its chunk.
    chunks.forEach((t, c) => {
      const first = c * perChunk;
      const u = new Uint32Array([invocations, g.stride, features, src.rows, 0, 0, first, 0]);
      u[7] = Math.min(perChunk, src.rows - first);
      const f = new Float32Array(u.buffer);
      f[4] = scale;
      f[5] = shift;
      rt.dispatch({
        kernel: GATHER,
        prefix: `alias T = ${outType};\n`,
        ...(byWord ? { entry: "main_words", constants: { WPI: wpi } } : {
          constants: { MODE: src.kind === "u8" ? 0 : 1 },
        }),
        bindings: [t.storage, perm.storage, step.storage, s, u],
        workgroups: g.groups,
        label: chunks.length > 1 ? `${label}, chunk ${c}` : label,
      });
    });
  });
  return out;
}
