/**
 * Seeded random numbers: Philox4x32-10, a counter-based generator. The same seed gives the same
 * numbers on every machine, because initial values are computed on the CPU in float64 and rounded
 * to float32 once.
 * @module
 */

const M0 = 0xD2511F53;
const M1 = 0xCD9E8D57;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;

/** High 32 bits of the 64-bit product of two unsigned 32-bit integers. */
export function mulhi32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16;
  const b0 = b & 0xffff, b1 = b >>> 16;
  const lo = a0 * b0;
  const mid1 = a1 * b0 + (lo >>> 16);
  const mid2 = a0 * b1 + (mid1 & 0xffff);
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16)) >>> 0;
}

/**
 * One Philox4x32-10 block: four 32-bit words for counter (c0..c3) under key (k0, k1),
 * written to `out`.
 */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi32(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** A stream of random 32-bit words from a 64-bit seed and a 64-bit stream number. */
export class Philox {
  readonly #k0: number;
  readonly #k1: number;
  readonly #s0: number;
  readonly #s1: number;
  #counter = 0;
  #buf = new Uint32Array(4);
  #pos = 4;

  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`random seed must be a non-negative safe integer, got ${seed}`);
    }
    this.#k0 = seed >>> 0;
    this.#k1 = Math.floor(seed / 2 ** 32) >>> 0;
    this.#s0 = stream >>> 0;
    this.#s1 = Math.floor(stream / 2 ** 32) >>> 0;
  }

  /** The next 32-bit word. */
  nextU32(): number {
    if (this.#pos === 4) {
      philox4x32(
        this.#counter >>> 0,
        Math.floor(this.#counter / 2 ** 32) >>> 0,
        this.#s0,
        this.#s1,
        this.#k0,
        this.#k1,
        this.#buf,
      );
      this.#counter++;
      this.#pos = 0;
    }
    return this.#buf[this.#pos++];
  }

  /** A float64 uniform in [0, 1) with 24 random bits, so it is exact in float32. */
  nextUnit(): number {
    return (this.nextU32() >>> 8) * 2 ** -24;
  }

  /** A standard normal sample (Box–Muller on two fresh words; the second output is discarded). */
  nextNormal(): number {
    const u1 = ((this.nextU32() >>> 8) + 1) * 2 ** -24; // (0, 1]
    const u2 = (this.nextU32() >>> 8) * 2 ** -24;
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

let globalSeed = 0x5eed;
let globalStream = 0;

/**
 * Sets the global seed. Random ops called without their own `seed` draw from successive streams
 * of this seed, so a script that sets the seed once gets the same numbers on every run.
 */
export function setSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`setSeed: the seed must be a non-negative safe integer, got ${seed}`);
  }
  globalSeed = seed;
  globalStream = 0;
}

/** A generator for one random op: its own seed, or the next stream of the global seed. */
export function generatorFor(seed: number | undefined): Philox {
  if (seed !== undefined) return new Philox(seed, 0);
  return new Philox(globalSeed, ++globalStream);
}
