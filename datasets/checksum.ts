/**
 * Checksums written in plain TypeScript, so that the library needs no Node built-ins (it is
 * importable by URL with nothing but Web APIs): streaming SHA-256 (FIPS 180-4) for data that does
 * not fit Web Crypto's whole-buffer digests, and CRC-32 (ISO-HDLC, as gzip, PNG and ZIP use it).
 * @module
 */

const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** An incremental SHA-256: `update` with chunks of any size, then `hex()` or `digest()`. */
export class Sha256 {
  readonly #h = new Int32Array([
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19,
  ]);
  readonly #w = new Int32Array(64);
  readonly #buf = new Uint8Array(64);
  #bufLen = 0;
  #bytes = 0;
  #done = false;

  /** Adds bytes to the message. */
  update(data: Uint8Array): this {
    if (this.#done) throw new Error("Sha256.update after digest");
    this.#bytes += data.length;
    let i = 0;
    if (this.#bufLen) {
      const take = Math.min(64 - this.#bufLen, data.length);
      this.#buf.set(data.subarray(0, take), this.#bufLen);
      this.#bufLen += take;
      i = take;
      if (this.#bufLen < 64) return this;
      this.#block(this.#buf, 0);
      this.#bufLen = 0;
    }
    const end = data.length - 64;
    for (; i <= end; i += 64) this.#block(data, i);
    if (i < data.length) {
      this.#buf.set(data.subarray(i), 0);
      this.#bufLen = data.length - i;
    }
    return this;
  }

  /** Ends the message and returns the 32-byte digest. */
  digest(): Uint8Array<ArrayBuffer> {
    if (!this.#done) {
      const bits = this.#bytes * 8;
      const pad = new Uint8Array((this.#bufLen < 56 ? 56 : 120) - this.#bufLen + 8);
      pad[0] = 0x80;
      const n = pad.length;
      const hi = Math.floor(bits / 2 ** 32), lo = bits >>> 0;
      pad[n - 8] = hi >>> 24;
      pad[n - 7] = hi >>> 16;
      pad[n - 6] = hi >>> 8;
      pad[n - 5] = hi;
      pad[n - 4] = lo >>> 24;
      pad[n - 3] = lo >>> 16;
      pad[n - 2] = lo >>> 8;
      pad[n - 1] = lo;
      const bytes = this.#bytes;
      this.update(pad);
      this.#bytes = bytes;
      this.#done = true;
    }
    const out = new Uint8Array(32);
    for (let k = 0; k < 8; k++) {
      const v = this.#h[k];
      out[4 * k] = v >>> 24;
      out[4 * k + 1] = v >>> 16;
      out[4 * k + 2] = v >>> 8;
      out[4 * k + 3] = v;
    }
    return out;
  }

  /** Ends the message and returns the digest as lowercase hex. */
  hex(): string {
    return toHex(this.digest());
  }

  #block(d: Uint8Array, p: number): void {
    const w = this.#w, h = this.#h;
    for (let t = 0; t < 16; t++, p += 4) {
      w[t] = d[p] << 24 | d[p + 1] << 16 | d[p + 2] << 8 | d[p + 3];
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15], b = w[t - 2];
      const s0 = (a >>> 7 | a << 25) ^ (a >>> 18 | a << 14) ^ a >>> 3;
      const s1 = (b >>> 17 | b << 15) ^ (b >>> 19 | b << 13) ^ b >>> 10;
      w[t] = w[t - 16] + s0 + w[t - 7] + s1 | 0;
    }
    let a = h[0], b = h[1], c = h[2], e = h[4], f = h[5], g = h[6], dd = h[3], hh = h[7];
    for (let t = 0; t < 64; t++) {
      const S1 = (e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7);
      const ch = e & f ^ ~e & g;
      const t1 = hh + S1 + ch + K[t] + w[t] | 0;
      const S0 = (a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10);
      const maj = a & b ^ a & c ^ b & c;
      const t2 = S0 + maj | 0;
      hh = g;
      g = f;
      f = e;
      e = dd + t1 | 0;
      dd = c;
      c = b;
      b = a;
      a = t1 + t2 | 0;
    }
    h[0] = h[0] + a | 0;
    h[1] = h[1] + b | 0;
    h[2] = h[2] + c | 0;
    h[3] = h[3] + dd | 0;
    h[4] = h[4] + e | 0;
    h[5] = h[5] + f | 0;
    h[6] = h[6] + g | 0;
    h[7] = h[7] + hh | 0;
  }
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, "0");
  return s;
}

/** The SHA-256 (hex) of bytes in memory. */
export function sha256Hex(data: Uint8Array): string {
  return new Sha256().update(data).hex();
}

/** The SHA-256 (hex) of bytes in memory, by Web Crypto (fast, whole buffer). */
export async function sha256Digest(data: Uint8Array): Promise<string> {
  const buf = data.buffer instanceof ArrayBuffer ? data as Uint8Array<ArrayBuffer> : data.slice();
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)));
}

/** Eight 256-entry tables for slicing-by-8 CRC-32 (reflected polynomial 0xEDB88320). */
const CRC_TABLES: Int32Array[] = (() => {
  const t = Array.from({ length: 8 }, () => new Int32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ c >>> 1 : c >>> 1;
    t[0][n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k][n] = t[k - 1][n] >>> 8 ^ t[0][t[k - 1][n] & 0xff];
  }
  return t;
})();

/** The CRC-32 of `data`, continuing from `crc` (the CRC of what came before; 0 to start). */
export function crc32(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES;
  let c = ~crc;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    c ^= data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24;
    const hi = data[i + 4] | data[i + 5] << 8 | data[i + 6] << 16 | data[i + 7] << 24;
    c = t7[c & 0xff] ^ t6[c >>> 8 & 0xff] ^ t5[c >>> 16 & 0xff] ^ t4[c >>> 24] ^
      t3[hi & 0xff] ^ t2[hi >>> 8 & 0xff] ^ t1[hi >>> 16 & 0xff] ^ t0[hi >>> 24];
  }
  for (; i < n; i++) c = t0[(c ^ data[i]) & 0xff] ^ c >>> 8;
  return ~c >>> 0;
}
