/**
 * A whole split on the GPU as bytes, for the engine's on-GPU batch gather: the samples in one or
 * more storage regions ("chunks", each within one storage binding) and the labels as `i32`.
 *
 * Layout, for a kernel: sample `i` lies in chunk `k = i / perChunk` (integer division), starting
 * at byte `(i - k * perChunk) * sampleBytes`; every chunk holds `perChunk` whole samples except
 * the last. Chunks are bound as `array<u32>`: byte `b` of a chunk is
 * `(words[b >> 2] >> ((b & 3) * 8)) & 0xff` (little-endian words; each chunk is zero-padded to a
 * multiple of 4 bytes).
 * @module
 */
import { fmtShape, WgradError } from "../src/errors.ts";
import { ready, schedule, type Storage } from "../src/gpu/runtime.ts";
import type { DataSplit } from "./feed.ts";

export type { Storage };

/** Options of {@linkcode toGpu}. */
export interface GpuDatasetOptions {
  /**
   * The largest chunk in bytes (default and upper bound: the device's
   * `maxStorageBufferBindingSize`). Smaller chunks are useful in tests.
   */
  maxChunkBytes?: number;
  /** Upload the labels as `i32` too (default true). */
  labels?: boolean;
}

/** Where sample `i` lies: its chunk and its byte offset in the chunk. */
export interface GpuSampleLocation {
  /** Index into {@linkcode GpuDataset.chunks}. */
  chunk: number;
  /** Byte offset of the sample in that chunk. */
  byteOffset: number;
}

/**
 * A split uploaded to the GPU. The regions exist once the upload has run: at once if the device
 * is ready, else when it is (work scheduled after {@linkcode toGpu} sees them); `await ready()`
 * waits for that. Call {@linkcode GpuDataset.dispose} to free the memory.
 */
export class GpuDataset {
  /** The split's name. */
  readonly name: string;
  /** Number of samples. */
  readonly count: number;
  /** Bytes per sample. */
  readonly sampleBytes: number;
  /** Shape of one sample. */
  readonly sampleShape: readonly number[];
  /** Number of classes. */
  readonly numClasses: number;
  #chunks: Storage[] | null = null;
  #labels: Storage | null = null;
  #perChunk = 0;
  #disposed = false;

  /** @internal Use {@linkcode toGpu}. */
  constructor(split: DataSplit) {
    this.name = split.name;
    this.count = split.length;
    this.sampleBytes = split.sampleSize;
    this.sampleShape = split.shape;
    this.numClasses = split.numClasses;
  }

  #need(what: string): void {
    if (this.#disposed) {
      throw new WgradError("disposed", `${this.name} on the GPU: ${what} after dispose()`);
    }
    if (!this.#chunks) {
      throw new WgradError(
        "value",
        `${this.name} on the GPU: ${what} before the upload ran (use it in GPU work scheduled ` +
          "after toGpu(), or await ready() first)",
      );
    }
  }

  /** Whether the upload has run. */
  get uploaded(): boolean {
    return this.#chunks !== null;
  }

  /** The regions holding the samples' bytes. */
  get chunks(): readonly Storage[] {
    this.#need("chunks");
    return this.#chunks!;
  }

  /** Samples per chunk (every chunk but the last holds exactly this many). */
  get perChunk(): number {
    this.#need("perChunk");
    return this.#perChunk;
  }

  /** The labels as `i32`, one per sample (null if not uploaded). */
  get labels(): Storage | null {
    this.#need("labels");
    return this.#labels;
  }

  /** Where sample `i` lies. */
  locate(i: number): GpuSampleLocation {
    this.#need("locate");
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new WgradError(
        "value",
        `${this.name} on the GPU: sample ${i} is outside [0, ${this.count})`,
      );
    }
    const chunk = Math.floor(i / this.#perChunk);
    return { chunk, byteOffset: (i - chunk * this.#perChunk) * this.sampleBytes };
  }

  /** @internal Runs inside scheduled GPU work. */
  setRegions(chunks: Storage[], perChunk: number, labels: Storage | null): void {
    this.#chunks = chunks;
    this.#perChunk = perChunk;
    this.#labels = labels;
  }

  /** Waits until the device exists and the upload has run; resolves to this object. */
  async ready(): Promise<this> {
    await ready();
    this.#need("ready()");
    return this;
  }

  /** Frees the GPU memory (after GPU work already recorded that uses it). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      schedule(() => {
        for (const s of this.#chunks ?? []) s.release();
        this.#labels?.release();
        this.#chunks = null;
        this.#labels = null;
      });
    } catch {
      // The device is gone: there is nothing to free.
    }
  }
}

/**
 * Uploads a split's samples (as bytes) and labels (as `i32`) to the GPU, in chunks of whole
 * samples that each fit one storage binding. The upload is scheduled like other GPU work.
 * Throws a `limit` error if one sample is larger than a binding.
 */
export function toGpu(split: DataSplit, options: GpuDatasetOptions = {}): GpuDataset {
  const out = new GpuDataset(split);
  const max = options.maxChunkBytes;
  if (max !== undefined && !(Number.isInteger(max) && max >= 4)) {
    throw new WgradError("value", `toGpu: maxChunkBytes must be an integer ≥ 4, got ${max}`);
  }
  const withLabels = options.labels ?? true;
  schedule((rt) => {
    const limit = Math.min(
      max ?? Infinity,
      rt.limits.maxStorageBufferBindingSize,
      rt.limits.maxBufferSize,
    );
    const sb = split.sampleSize;
    const perChunk = Math.min(split.length, Math.floor(Math.floor(limit / 4) * 4 / sb));
    if (perChunk < 1 && split.length > 0) {
      throw new WgradError(
        "limit",
        `toGpu(${split.name}): one sample ${fmtShape(split.shape)} is ${sb} bytes, more than ` +
          `a chunk may hold (${limit} bytes)`,
      );
    }
    const chunks: Storage[] = [];
    try {
      for (let start = 0; start < split.length; start += perChunk) {
        const end = Math.min(split.length, start + perChunk);
        let bytes = split.x.subarray(start * sb, end * sb);
        if (bytes.byteLength % 4) {
          const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
          padded.set(bytes);
          bytes = padded;
        }
        chunks.push(rt.upload(bytes, `${split.name} samples ${start}…${end - 1}`));
      }
      if (chunks.length === 0) chunks.push(rt.upload(new Uint8Array(4), `${split.name} (empty)`));
      const labels = withLabels
        ? rt.upload(Int32Array.from(split.y), `${split.name} labels (i32)`)
        : null;
      out.setRegions(chunks, Math.max(1, perChunk), labels);
    } catch (e) {
      for (const s of chunks) s.release();
      throw e;
    }
  });
  return out;
}
