/**
 * Weight initializers with Keras's definitions. Values are computed on the CPU from a seeded
 * Philox stream, so a model's initial weights are the same on every adapter.
 * @module
 */
import { WgradError } from "../errors.ts";
import { Philox } from "../random.ts";

/** Fan-in and fan-out of a weight shape, as Keras computes them. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 0) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0], fanOut: shape[0] };
  if (shape.length === 2) return { fanIn: shape[0], fanOut: shape[1] };
  // Convolution kernels [kh, kw, in, out]: the receptive field multiplies both fans.
  const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return {
    fanIn: shape[shape.length - 2] * receptive,
    fanOut: shape[shape.length - 1] * receptive,
  };
}

/** An initializer: fills `size` values for a weight of `shape` from the generator. */
export interface Initializer {
  /** The Keras class name, e.g. `"GlorotUniform"`. */
  readonly className: string;
  /** Keras-style configuration. */
  readonly config: Record<string, number>;
  /** The initial values of a weight of `shape`. */
  values(shape: readonly number[], g: Philox): Float32Array;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Normal samples truncated to two standard deviations (resampled), as Keras's TruncatedNormal. */
function truncatedNormal(n: number, stddev: number, g: Philox, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = g.nextNormal();
    while (Math.abs(z) > 2) z = g.nextNormal();
    out[i] = mean + stddev * z;
  }
  return out;
}

function uniform(n: number, limit: number, g: Philox, lo = -limit): Float32Array {
  const out = new Float32Array(n);
  const span = limit - lo;
  for (let i = 0; i < n; i++) out[i] = lo + span * g.nextUnit();
  return out;
}

const make = (
  className: string,
  config: Record<string, number>,
  values: (shape: readonly number[], g: Philox) => Float32Array,
): Initializer => ({ className, config, values });

/** Keras's TruncatedNormal correction: the stddev of a unit normal truncated to ±2. */
const TRUNC = 0.87962566103423978;

/** Uniform in ±sqrt(6 / (fanIn + fanOut)): Keras's default kernel initializer. */
export function glorotUniform(): Initializer {
  return make("GlorotUniform", {}, (shape, g) => {
    const { fanIn, fanOut } = fans(shape);
    return uniform(sizeOf(shape), Math.sqrt(6 / (fanIn + fanOut)), g);
  });
}

/** Truncated normal with stddev sqrt(2 / (fanIn + fanOut)). */
export function glorotNormal(): Initializer {
  return make("GlorotNormal", {}, (shape, g) => {
    const { fanIn, fanOut } = fans(shape);
    return truncatedNormal(sizeOf(shape), Math.sqrt(2 / (fanIn + fanOut)) / TRUNC, g);
  });
}

/** Truncated normal with stddev sqrt(2 / fanIn). */
export function heNormal(): Initializer {
  return make("HeNormal", {}, (shape, g) => {
    const { fanIn } = fans(shape);
    return truncatedNormal(sizeOf(shape), Math.sqrt(2 / fanIn) / TRUNC, g);
  });
}

/** Uniform in ±sqrt(6 / fanIn). */
export function heUniform(): Initializer {
  return make("HeUniform", {}, (shape, g) => {
    const { fanIn } = fans(shape);
    return uniform(sizeOf(shape), Math.sqrt(6 / fanIn), g);
  });
}

/** Truncated normal with stddev sqrt(1 / fanIn). */
export function lecunNormal(): Initializer {
  return make("LecunNormal", {}, (shape, g) => {
    const { fanIn } = fans(shape);
    return truncatedNormal(sizeOf(shape), Math.sqrt(1 / fanIn) / TRUNC, g);
  });
}

/** All zeros: Keras's default bias initializer. */
export function zeros(): Initializer {
  return make("Zeros", {}, (shape) => new Float32Array(sizeOf(shape)));
}

/** All ones. */
export function ones(): Initializer {
  return make("Ones", {}, (shape) => new Float32Array(sizeOf(shape)).fill(1));
}

/** Every value equal to `value`. */
export function constant(value = 0): Initializer {
  if (!Number.isFinite(value)) {
    throw new WgradError("value", `initializers.constant: value must be finite, got ${value}`);
  }
  return make("Constant", { value }, (shape) => new Float32Array(sizeOf(shape)).fill(value));
}

/** Normal samples (Keras's RandomNormal; defaults mean 0, stddev 0.05). */
export function randomNormal(options: { mean?: number; stddev?: number } = {}): Initializer {
  const { mean = 0, stddev = 0.05 } = options;
  return make("RandomNormal", { mean, stddev }, (shape, g) => {
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = mean + stddev * g.nextNormal();
    return out;
  });
}

/** Uniform samples in [minval, maxval) (Keras's RandomUniform; defaults ±0.05). */
export function randomUniform(options: { minval?: number; maxval?: number } = {}): Initializer {
  const { minval = -0.05, maxval = 0.05 } = options;
  return make(
    "RandomUniform",
    { minval, maxval },
    (shape, g) => uniform(sizeOf(shape), maxval, g, minval),
  );
}

/** Truncated normal (Keras's TruncatedNormal; defaults mean 0, stddev 0.05). */
export function truncatedNormalInit(options: { mean?: number; stddev?: number } = {}): Initializer {
  const { mean = 0, stddev = 0.05 } = options;
  return make(
    "TruncatedNormal",
    { mean, stddev },
    (shape, g) => truncatedNormal(sizeOf(shape), stddev, g, mean),
  );
}

const BY_NAME: Record<string, () => Initializer> = {
  glorot_uniform: glorotUniform,
  glorot_normal: glorotNormal,
  he_normal: heNormal,
  he_uniform: heUniform,
  lecun_normal: lecunNormal,
  zeros,
  ones,
  random_normal: () => randomNormal(),
  random_uniform: () => randomUniform(),
  truncated_normal: () => truncatedNormalInit(),
};

/** An initializer or one of Keras's names for one ("glorot_uniform", "he_normal", "zeros", …). */
export type InitializerLike = Initializer | string;

/** Resolves an initializer spelling, or throws naming `where` and the known names. */
export function resolveInitializer(i: InitializerLike, where: string): Initializer {
  if (typeof i !== "string") return i;
  const key = i.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
  const f = BY_NAME[key];
  if (!f) {
    throw new WgradError(
      "value",
      `${where}: unknown initializer "${i}"; known: ${Object.keys(BY_NAME).join(", ")}`,
    );
  }
  return f();
}

/** A deterministic seed for one weight from the model's seed and the weight's position. */
export function weightSeed(modelSeed: number, layerIndex: number, weightIndex: number): number {
  const g = new Philox(modelSeed, layerIndex * 64 + weightIndex + 1);
  return g.nextU32() * 2 ** 21 + (g.nextU32() >>> 11);
}
