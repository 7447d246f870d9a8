/**
 * Feeding data to a model: a split of a data set held as bytes ({@linkcode DataSplit}), seeded
 * shuffling, batches of normalised floats, train/validation splits, one-hot labels and the upload
 * of a whole split to the GPU.
 *
 * Randomness comes from the engine's Philox generator: the same seed gives the same permutation
 * and batches on every machine. An epoch's order depends on `(seed, epoch)` only.
 * @module
 */
import { fmtShape, WgradError } from "../src/errors.ts";
import { generatorFor, Philox } from "../src/random.ts";
import { type GpuDataset, type GpuDatasetOptions, toGpu } from "./gpu.ts";

/**
 * How bytes become floats:
 * - `"unit"`: `x / 255`, in [0, 1] (the default);
 * - `"symmetric"`: `x / 127.5 - 1`, in [-1, 1];
 * - `"none"`: `x` as is, in [0, 255];
 * - `{ mean, std }`: `(x / 255 - mean) / std`, with `mean` and `std` in [0, 1] units as
 *   torchvision's `Normalize` takes them after `ToTensor` (a number, or one per channel).
 */
export type Normalization =
  | "unit"
  | "symmetric"
  | "none"
  | { mean: number | readonly number[]; std: number | readonly number[] };

/** Label encodings of a batch: class indices, or one-hot rows. */
export type LabelEncoding = "sparse" | "onehot";

/** One batch of samples as floats, with their labels. */
export interface Batch<Y extends Int32Array | Float32Array = Int32Array> {
  /** `size × sample` floats, normalised. */
  x: Float32Array<ArrayBuffer>;
  /** Class indices (`Int32Array`, `size`) or one-hot rows (`Float32Array`, `size × classes`). */
  y: Y;
  /** The shape of `x`: `[size, ...sample shape]`. */
  shape: number[];
  /** Samples in the batch. */
  size: number;
  /** Which samples of the split these are. */
  indices: Uint32Array<ArrayBuffer>;
}

/** Options of {@linkcode DataSplit.batches}. */
export interface BatchOptions<L extends LabelEncoding = LabelEncoding> {
  /** Samples per batch (default 32). */
  batchSize?: number;
  /** Visit the samples in a random order (default true). */
  shuffle?: boolean;
  /** Seed of the order (default: drawn from the global seed, see `setSeed`). */
  seed?: number;
  /** Which epoch's order to use; each epoch has its own permutation (default 0). */
  epoch?: number;
  /** Leave out a last batch smaller than `batchSize` (default false). */
  dropRemainder?: boolean;
  /** How bytes become floats (default `"unit"`). */
  normalize?: Normalization;
  /** Label encoding (default `"sparse"`). */
  labels?: L;
}

/** The batches of one epoch: iterable (more than once, in the same order), with a length. */
export interface BatchIterable<Y extends Int32Array | Float32Array = Int32Array>
  extends Iterable<Batch<Y>> {
  /** Number of batches. */
  readonly length: number;
  /** The order in which samples are visited. */
  readonly order: Uint32Array<ArrayBuffer>;
}

/** Per-channel statistics in [0, 1] units, as `{ mean, std }` normalisation takes them. */
export interface SplitStats {
  /** Mean of each channel (one entry for gray images). */
  mean: number[];
  /** Population standard deviation of each channel. */
  std: number[];
}

/** Options of {@linkcode DataSplit.validationSplit}. */
export interface ValidationSplitOptions {
  /**
   * Draw the validation samples at random (seeded). Default false: as Keras's `validationSplit`,
   * the last `fraction` of the samples, in their order.
   */
  shuffle?: boolean;
  /** Keep each class's share the same in both parts (implies `shuffle`). Default false. */
  stratify?: boolean;
  /** Seed for `shuffle`/`stratify` (default: drawn from the global seed). */
  seed?: number;
}

function valueError(msg: string): WgradError {
  return new WgradError("value", msg);
}

function checkSeed(seed: number | undefined, what: string): number {
  if (seed === undefined) return generatorFor(undefined).nextU32();
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw valueError(`${what}: the seed must be a non-negative safe integer, got ${seed}`);
  }
  return seed;
}

/** A uniform integer in [0, bound) from a Philox stream, without modulo bias. */
export function uniformInt(rng: Philox, bound: number): number {
  if (!(bound >= 1 && bound <= 2 ** 32)) throw new RangeError(`uniformInt: bound ${bound}`);
  const limit = 2 ** 32 - 2 ** 32 % bound;
  for (;;) {
    const v = rng.nextU32();
    if (v < limit) return v % bound;
  }
}

/**
 * A random permutation of `0 … n-1` (Fisher–Yates on Philox stream `stream` of `seed`).
 * The same `(seed, stream)` gives the same permutation everywhere.
 */
export function permutation(n: number, seed: number, stream = 0): Uint32Array<ArrayBuffer> {
  if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 32) {
    throw valueError(`permutation: n must be an integer in [0, 2^32], got ${n}`);
  }
  const rng = new Philox(checkSeed(seed, "permutation"), stream);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = uniformInt(rng, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** One-hot rows (`labels.length × numClasses` floats) for class indices. */
export function oneHot(
  labels: ArrayLike<number>,
  numClasses: number,
  out?: Float32Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> {
  const n = labels.length;
  const y = out ?? new Float32Array(n * numClasses);
  if (y.length !== n * numClasses) {
    throw valueError(`oneHot: out has ${y.length} floats, ${n}×${numClasses} needed`);
  }
  if (out) y.fill(0);
  for (let i = 0; i < n; i++) {
    const c = labels[i];
    if (!(Number.isInteger(c) && c >= 0 && c < numClasses)) {
      throw valueError(`oneHot: label ${c} at index ${i} is outside [0, ${numClasses})`);
    }
    y[i * numClasses + c] = 1;
  }
  return y;
}

/** A 256-entry table per channel mapping a byte to its normalised float. */
function lookupTable(norm: Normalization, channels: number): Float32Array {
  const lut = new Float32Array(256 * channels);
  const pick = (v: number | readonly number[], c: number, what: string): number => {
    if (typeof v === "number") return v;
    if (v.length === 1) return v[0];
    if (v.length !== channels) {
      throw valueError(
        `normalize: ${what} has ${v.length} entries, the data has ${channels} channels`,
      );
    }
    return v[c];
  };
  for (let c = 0; c < channels; c++) {
    let scale = 1 / 255, shift = 0;
    if (norm === "none") scale = 1;
    else if (norm === "symmetric") {
      scale = 1 / 127.5;
      shift = -1;
    } else if (typeof norm === "object") {
      const m = pick(norm.mean, c, "mean"), s = pick(norm.std, c, "std");
      if (!(s > 0) || !Number.isFinite(m)) {
        throw valueError(
          `normalize: std must be positive and mean finite, got mean ${m}, std ${s}`,
        );
      }
      scale = 1 / (255 * s);
      shift = -m / s;
    } else if (norm !== "unit") {
      throw valueError(`normalize: unknown normalisation ${JSON.stringify(norm)}`);
    }
    for (let b = 0; b < 256; b++) lut[c * 256 + b] = b * scale + shift;
  }
  return lut;
}

/**
 * Converts bytes to normalised floats. `channels` is the size of the innermost (channel)
 * dimension that per-channel `{ mean, std }` refer to (1 for gray images).
 */
export function normalizeBytes(
  bytes: Uint8Array,
  normalize: Normalization = "unit",
  channels = 1,
  out?: Float32Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> {
  const y = out ?? new Float32Array(bytes.length);
  if (y.length < bytes.length) throw valueError(`normalizeBytes: out is too small`);
  const lut = lookupTable(normalize, channels);
  if (channels === 1) {
    for (let i = 0; i < bytes.length; i++) y[i] = lut[bytes[i]];
  } else {
    for (let i = 0; i < bytes.length; i++) y[i] = lut[(i % channels) * 256 + bytes[i]];
  }
  return y;
}

/** Options of the {@linkcode DataSplit} constructor. */
export interface DataSplitOptions {
  /** Names the split in messages, e.g. `"fashion-mnist/train"`. */
  name?: string;
  /** A name for each class. */
  classNames?: readonly string[];
}

/**
 * One split of a data set (training or test samples): the samples as bytes, row-major
 * (`length × shape`, channels last), and their class labels.
 */
export class DataSplit {
  /** The samples' bytes: `length × product(shape)`. */
  readonly x: Uint8Array<ArrayBuffer>;
  /** The class of each sample. */
  readonly y: Uint8Array<ArrayBuffer>;
  /** The shape of one sample, e.g. `[28, 28]` or `[32, 32, 3]`. */
  readonly shape: readonly number[];
  /** The number of classes; every label is below it. */
  readonly numClasses: number;
  /** The name used in messages. */
  readonly name: string;
  /** A name for each class, if known. */
  readonly classNames?: readonly string[];

  /**
   * Makes a split, checking that the sizes agree and every label is a valid class.
   * @param x the samples' bytes
   * @param y one label per sample
   * @param shape the shape of one sample
   * @param numClasses labels must lie in `[0, numClasses)`
   */
  constructor(
    x: Uint8Array<ArrayBuffer>,
    y: Uint8Array<ArrayBuffer>,
    shape: readonly number[],
    numClasses: number,
    options: DataSplitOptions = {},
  ) {
    this.name = options.name ?? "data";
    const per = shape.reduce((a, b) => a * b, 1);
    if (!shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new WgradError("shape", `${this.name}: bad sample shape ${fmtShape(shape)}`);
    }
    if (x.length !== y.length * per) {
      throw new WgradError(
        "shape",
        `${this.name}: ${x.length} bytes of samples do not match ${y.length} labels × ` +
          `${fmtShape(shape)} (${y.length * per} bytes)`,
      );
    }
    if (options.classNames && options.classNames.length !== numClasses) {
      throw valueError(
        `${this.name}: ${options.classNames.length} class names for ${numClasses} classes`,
      );
    }
    for (let i = 0; i < y.length; i++) {
      if (y[i] >= numClasses) {
        throw valueError(
          `${this.name}: label ${y[i]} of sample ${i} is out of range [0, ${numClasses})`,
        );
      }
    }
    this.x = x;
    this.y = y;
    this.shape = Object.freeze([...shape]);
    this.numClasses = numClasses;
    this.classNames = options.classNames;
  }

  /** The number of samples. */
  get length(): number {
    return this.y.length;
  }

  /** Bytes per sample (the product of `shape`). */
  get sampleSize(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Channels per pixel: the last dimension of a rank-3 sample shape, else 1. */
  get channels(): number {
    return this.shape.length === 3 ? this.shape[2] : 1;
  }

  /** The bytes of sample `i` (a view, not a copy). */
  sample(i: number): Uint8Array<ArrayBuffer> {
    this.#checkIndex(i);
    const n = this.sampleSize;
    return this.x.subarray(i * n, (i + 1) * n);
  }

  /** The label of sample `i`. */
  label(i: number): number {
    this.#checkIndex(i);
    return this.y[i];
  }

  #checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw valueError(`${this.name}: sample index ${i} is outside [0, ${this.length})`);
    }
  }

  #derive(x: Uint8Array<ArrayBuffer>, y: Uint8Array<ArrayBuffer>, name: string): DataSplit {
    return new DataSplit(x, y, this.shape, this.numClasses, { name, classNames: this.classNames });
  }

  /** A new split of the samples at `indices` (copied), in that order. */
  select(indices: ArrayLike<number>, name = `${this.name}[selection]`): DataSplit {
    const n = this.sampleSize;
    const x = new Uint8Array(indices.length * n);
    const y = new Uint8Array(indices.length);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      this.#checkIndex(i);
      x.set(this.x.subarray(i * n, (i + 1) * n), k * n);
      y[k] = this.y[i];
    }
    return this.#derive(x, y, name);
  }

  /** Samples `start … end-1` as a new split sharing this one's memory. */
  slice(start = 0, end = this.length): DataSplit {
    const s = Math.max(0, Math.min(this.length, start < 0 ? this.length + start : start));
    const e = Math.max(s, Math.min(this.length, end < 0 ? this.length + end : end));
    const n = this.sampleSize;
    return this.#derive(
      this.x.subarray(s * n, e * n),
      this.y.subarray(s, e),
      `${this.name}[${s}:${e}]`,
    );
  }

  /** The samples in a seeded random order, as a new split. */
  shuffle(seed?: number): DataSplit {
    const s = checkSeed(seed, `${this.name}.shuffle`);
    return this.select(permutation(this.length, s), `${this.name}[shuffled]`);
  }

  /**
   * Splits off a validation part of `fraction` of the samples: as Keras, the first
   * floor(n · (1 − fraction)) train and the rest validate.
   * By default the last samples, in order, as Keras's `validationSplit`; see the options for a
   * seeded random or stratified split.
   */
  validationSplit(
    fraction: number,
    options: ValidationSplitOptions = {},
  ): { train: DataSplit; validation: DataSplit } {
    if (!(fraction > 0 && fraction < 1)) {
      throw valueError(`${this.name}.validationSplit: fraction must be in (0, 1), got ${fraction}`);
    }
    // Keras: floor(n · (1 − fraction)) samples train, the rest validate.
    const nVal = this.length - Math.floor(this.length * (1 - fraction));
    if (nVal === 0 || nVal === this.length) {
      throw valueError(
        `${this.name}.validationSplit: ${this.length} samples are not enough to split into ` +
          `training and validation parts with fraction ${fraction}`,
      );
    }
    if (!options.shuffle && !options.stratify) {
      const cut = this.length - nVal;
      return {
        train: this.#derive(
          this.x.subarray(0, cut * this.sampleSize),
          this.y.subarray(0, cut),
          `${this.name}/train`,
        ),
        validation: this.#derive(
          this.x.subarray(cut * this.sampleSize),
          this.y.subarray(cut),
          `${this.name}/validation`,
        ),
      };
    }
    const seed = checkSeed(options.seed, `${this.name}.validationSplit`);
    const order = permutation(this.length, seed);
    let valIdx: number[];
    if (options.stratify) {
      // Per class, the first round(share) samples of the permutation go to validation; the
      // rounding remainder is settled so that the total is exactly nVal.
      const byClass: number[][] = Array.from({ length: this.numClasses }, () => []);
      for (const i of order) byClass[this.y[i]].push(i);
      const want = byClass.map((c) => c.length * fraction);
      const take = want.map(Math.floor);
      let left = nVal - take.reduce((a, b) => a + b, 0);
      const byRemainder = want.map((w, c) => [w - Math.floor(w), c]).sort((a, b) =>
        b[0] - a[0] || a[1] - b[1]
      );
      for (const [, c] of byRemainder) {
        if (left <= 0) break;
        if (take[c] < byClass[c].length) {
          take[c]++;
          left--;
        }
      }
      valIdx = byClass.flatMap((c, k) => c.slice(0, take[k]));
    } else {
      valIdx = Array.from(order.subarray(0, nVal));
    }
    valIdx.sort((a, b) => a - b);
    const inVal = new Uint8Array(this.length);
    for (const i of valIdx) inVal[i] = 1;
    const trainIdx: number[] = [];
    for (let i = 0; i < this.length; i++) if (!inVal[i]) trainIdx.push(i);
    return {
      train: this.select(trainIdx, `${this.name}/train`),
      validation: this.select(valIdx, `${this.name}/validation`),
    };
  }

  /** How many samples each class has. */
  classCounts(): number[] {
    const counts = new Array<number>(this.numClasses).fill(0);
    for (let i = 0; i < this.y.length; i++) counts[this.y[i]]++;
    return counts;
  }

  /** Per-channel mean and standard deviation of the samples, in [0, 1] units (exact). */
  stats(): SplitStats {
    const c = this.channels;
    const hist = new Float64Array(256 * c);
    const x = this.x;
    if (c === 1) { for (let i = 0; i < x.length; i++) hist[x[i]]++; }
    else for (let i = 0; i < x.length; i++) hist[(i % c) * 256 + x[i]]++;
    const mean: number[] = [], std: number[] = [];
    for (let k = 0; k < c; k++) {
      let n = 0, s = 0;
      for (let b = 0; b < 256; b++) {
        n += hist[k * 256 + b];
        s += b * hist[k * 256 + b];
      }
      const m = n ? s / n : 0;
      let v = 0;
      for (let b = 0; b < 256; b++) v += hist[k * 256 + b] * (b - m) ** 2;
      mean.push(m / 255);
      std.push(n ? Math.sqrt(v / n) / 255 : 0);
    }
    return { mean, std };
  }

  /** All samples as normalised floats, `length × shape`. */
  toFloat32(normalize: Normalization = "unit"): Float32Array<ArrayBuffer> {
    return normalizeBytes(this.x, normalize, this.channels);
  }

  /** The samples at `indices` as one batch. */
  batch<L extends LabelEncoding = "sparse">(
    indices: ArrayLike<number>,
    options: { normalize?: Normalization; labels?: L } = {},
  ): Batch<L extends "onehot" ? Float32Array<ArrayBuffer> : Int32Array<ArrayBuffer>> {
    const n = this.sampleSize;
    const size = indices.length;
    const x = new Float32Array(size * n);
    const lut = lookupTable(options.normalize ?? "unit", this.channels);
    const c = this.channels;
    const idx = new Uint32Array(size);
    const sparse = new Int32Array(size);
    for (let k = 0; k < size; k++) {
      const i = indices[k];
      this.#checkIndex(i);
      idx[k] = i;
      sparse[k] = this.y[i];
      const src = i * n, dst = k * n;
      if (c === 1) { for (let j = 0; j < n; j++) x[dst + j] = lut[this.x[src + j]]; }
      else for (let j = 0; j < n; j++) x[dst + j] = lut[(j % c) * 256 + this.x[src + j]];
    }
    const y = options.labels === "onehot" ? oneHot(sparse, this.numClasses) : sparse;
    return {
      x,
      y: y as L extends "onehot" ? Float32Array<ArrayBuffer> : Int32Array<ArrayBuffer>,
      shape: [size, ...this.shape],
      size,
      indices: idx,
    };
  }

  /**
   * The batches of one epoch. With `shuffle` (the default), epoch `e` visits the samples in the
   * permutation given by `(seed, e)`; without, in order. The last batch is smaller unless
   * `dropRemainder`.
   */
  batches<L extends LabelEncoding = "sparse">(
    options: BatchOptions<L> = {},
  ): BatchIterable<L extends "onehot" ? Float32Array<ArrayBuffer> : Int32Array<ArrayBuffer>> {
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw valueError(
        `${this.name}.batches: batchSize must be a positive integer, got ${batchSize}`,
      );
    }
    const epoch = options.epoch ?? 0;
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      throw valueError(`${this.name}.batches: epoch must be a non-negative integer, got ${epoch}`);
    }
    const shuffle = options.shuffle ?? true;
    const order = shuffle
      ? permutation(this.length, checkSeed(options.seed, `${this.name}.batches`), epoch)
      : Uint32Array.from({ length: this.length }, (_, i) => i);
    const full = Math.floor(this.length / batchSize);
    const length = options.dropRemainder || this.length % batchSize === 0 ? full : full + 1;
    const opts = { normalize: options.normalize, labels: options.labels };
    lookupTable(opts.normalize ?? "unit", this.channels); // reject bad options now, not mid-epoch
    // deno-lint-ignore no-this-alias
    const split = this;
    return {
      length,
      order,
      *[Symbol.iterator]() {
        for (let b = 0; b < length; b++) {
          yield split.batch(
            order.subarray(b * batchSize, Math.min(split.length, (b + 1) * batchSize)),
            opts,
          );
        }
      },
    };
  }

  /**
   * Uploads the whole split to the GPU as bytes, for the engine's on-GPU batch gather.
   * See {@linkcode GpuDataset}.
   */
  toGpu(options: GpuDatasetOptions = {}): GpuDataset {
    return toGpu(this, options);
  }
}
