/**
 * A PNG decoder to 8-bit grayscale (every color type and bit depth, Adam7 interlacing, chunk
 * CRCs and the zlib checksum verified) on the platform's `DecompressionStream`, and a small
 * encoder for test images.
 *
 * Color becomes gray as PIL's `convert("L")` does it: `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`.
 * Transparency (an alpha channel or a `tRNS` chunk) is composited over black; 16-bit samples are
 * rounded to 8 bits, and 1-, 2- and 4-bit gray levels are scaled to 0–255.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { crc32 } from "./checksum.ts";
import { bytesStream, inflater } from "./gzip.ts";
import { concatBytes } from "./bytes.ts";

/** A decoded image: `height × width` gray levels, row-major. */
export interface GrayImage {
  /** Pixels per row. */
  width: number;
  /** Rows. */
  height: number;
  /** `width × height` bytes, 0 black to 255 white. */
  data: Uint8Array<ArrayBuffer>;
}

/** Options of {@linkcode decodePngGray}. */
export interface PngDecodeOptions {
  /** Names the image in error messages. */
  name?: string;
  /** Refuse images with more pixels than this (default 2²⁶). */
  maxPixels?: number;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const ADAM7: readonly (readonly [number, number, number, number])[] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];
const CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Readonly<Record<number, readonly number[]>> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

function fail(name: string, what: string): WgradError {
  return new WgradError("value", `${name}: ${what}`);
}

function u32(b: Uint8Array, p: number): number {
  return (b[p] << 24 | b[p + 1] << 16 | b[p + 2] << 8 | b[p + 3]) >>> 0;
}

/** The passes of an image: each pass's width and height (one pass unless interlaced). */
function passes(
  w: number,
  h: number,
  interlace: boolean,
): [number, number, number, number, number, number][] {
  if (!interlace) return [[0, 0, 1, 1, w, h]];
  return ADAM7.map(([x0, y0, dx, dy]) => [
    x0,
    y0,
    dx,
    dy,
    Math.max(0, Math.ceil((w - x0) / dx)),
    Math.max(0, Math.ceil((h - y0) / dy)),
  ]);
}

/**
 * Decodes a PNG file to 8-bit grayscale. Throws a `value` {@linkcode WgradError} naming the image
 * for anything malformed: bad signature, CRC mismatch, missing or misplaced chunks, unsupported
 * header values, a corrupt or short zlib stream, unknown filter types.
 */
export async function decodePngGray(
  bytes: Uint8Array,
  options: PngDecodeOptions = {},
): Promise<GrayImage> {
  const name = options.name ?? "PNG image";
  const maxPixels = options.maxPixels ?? 2 ** 26;
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw fail(name, "not a PNG file (bad signature)");
  }
  let p = 8;
  let ihdr: Uint8Array | null = null;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let idatDone = false;
  let ended = false;
  while (!ended) {
    if (p + 12 > bytes.length) throw fail(name, `truncated file: chunk header at byte ${p}`);
    const len = u32(bytes, p);
    const type = String.fromCharCode(...bytes.subarray(p + 4, p + 8));
    if (!/^[A-Za-z]{4}$/.test(type)) throw fail(name, `malformed chunk type at byte ${p}`);
    if (len > 0x7fffffff || p + 12 + len > bytes.length) {
      throw fail(name, `truncated file: ${type} chunk of ${len} bytes at byte ${p}`);
    }
    const data = bytes.subarray(p + 8, p + 8 + len);
    const crc = u32(bytes, p + 8 + len);
    if ((crc32(bytes.subarray(p + 4, p + 8 + len)) >>> 0) !== crc) {
      throw fail(name, `CRC mismatch in the ${type} chunk at byte ${p}`);
    }
    p += 12 + len;
    if (!ihdr && type !== "IHDR") throw fail(name, `the first chunk is ${type}, not IHDR`);
    if (type !== "IDAT" && idat.length) idatDone = true;
    switch (type) {
      case "IHDR":
        if (ihdr) throw fail(name, "two IHDR chunks");
        if (len !== 13) throw fail(name, `IHDR of ${len} bytes (13 expected)`);
        ihdr = data;
        break;
      case "PLTE":
        if (len % 3 || len === 0 || len > 768) throw fail(name, `PLTE of ${len} bytes`);
        if (idat.length) throw fail(name, "PLTE after IDAT");
        palette = data;
        break;
      case "tRNS":
        trns = data;
        break;
      case "IDAT":
        if (idatDone) throw fail(name, "IDAT chunks are not consecutive");
        idat.push(data);
        break;
      case "IEND":
        ended = true;
        break;
      default:
        if (type.charCodeAt(0) < 0x61) throw fail(name, `unknown critical chunk ${type}`);
    }
  }
  if (!ihdr) throw fail(name, "no IHDR chunk");
  const width = u32(ihdr, 0), height = u32(ihdr, 4);
  const depth = ihdr[8], ct = ihdr[9];
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw fail(name, `bad image size ${width}×${height}`);
  }
  if (width * height > maxPixels) {
    throw fail(name, `${width}×${height} pixels, more than the ${maxPixels}-pixel limit`);
  }
  if (!(ct in DEPTHS) || !DEPTHS[ct].includes(depth)) {
    throw fail(name, `unsupported color type ${ct} with bit depth ${depth}`);
  }
  if (ihdr[10] !== 0 || ihdr[11] !== 0) throw fail(name, "unknown compression or filter method");
  if (ihdr[12] > 1) throw fail(name, `unknown interlace method ${ihdr[12]}`);
  if (ct === 3 && !palette) throw fail(name, "palette image without a PLTE chunk");
  if (idat.length === 0) throw fail(name, "no IDAT chunk");

  const channels = CHANNELS[ct];
  const bitsPerPixel = channels * depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const layout = passes(width, height, ihdr[12] === 1);
  let expected = 0;
  for (const [, , , , pw, ph] of layout) {
    if (pw && ph) expected += ph * (1 + Math.ceil(pw * bitsPerPixel / 8));
  }
  const raw = await inflate(concatBytes(idat), expected, name);

  // Gray level of each palette entry (alpha from tRNS composited over black).
  let lut: Uint8Array | null = null;
  if (ct === 3) {
    lut = new Uint8Array(256);
    for (let i = 0; i < palette!.length / 3; i++) {
      const g = luma(palette![3 * i], palette![3 * i + 1], palette![3 * i + 2]);
      const a = trns && i < trns.length ? trns[i] : 255;
      lut[i] = Math.round(g * a / 255);
    }
  }
  const transparent = trns && (ct === 0 || ct === 2) && trns.length >= (ct === 0 ? 2 : 6)
    ? Array.from({ length: ct === 0 ? 1 : 3 }, (_, i) => trns![2 * i] << 8 | trns![2 * i + 1])
    : null;

  const out = new Uint8Array(width * height);
  let r = 0;
  for (const [x0, y0, dx, dy, pw, ph] of layout) {
    if (pw === 0 || ph === 0) continue;
    const stride = Math.ceil(pw * bitsPerPixel / 8);
    let prev = new Uint8Array(stride);
    let cur = new Uint8Array(stride);
    for (let y = 0; y < ph; y++) {
      const f = raw[r];
      cur.set(raw.subarray(r + 1, r + 1 + stride));
      r += 1 + stride;
      unfilter(f, cur, prev, bpp, name, y);
      const row = (y0 + y * dy) * width;
      for (let x = 0; x < pw; x++) {
        out[row + x0 + x * dx] = grayAt(cur, x, ct, depth, lut, transparent);
      }
      [prev, cur] = [cur, prev];
    }
  }
  return { width, height, data: out };
}

function luma(r: number, g: number, b: number): number {
  return (19595 * r + 38470 * g + 7471 * b + 0x8000) >>> 16;
}

function to8(v: number): number {
  return Math.floor((v * 255 + 32767) / 65535);
}

/** The gray level of pixel `x` of a reconstructed row. */
function grayAt(
  row: Uint8Array,
  x: number,
  ct: number,
  depth: number,
  lut: Uint8Array | null,
  transparent: number[] | null,
): number {
  if (depth < 8) {
    const perByte = 8 / depth;
    const byte = row[Math.floor(x / perByte)];
    const shift = 8 - depth * (x % perByte + 1);
    const v = byte >> shift & (1 << depth) - 1;
    if (ct === 3) return lut![v];
    if (transparent && v === transparent[0]) return 0;
    return v * 255 / ((1 << depth) - 1) | 0;
  }
  const channels = CHANNELS[ct];
  const s = depth / 8;
  const sample = (c: number): number => {
    const o = (x * channels + c) * s;
    return s === 1 ? row[o] : row[o] << 8 | row[o + 1];
  };
  const max = s === 1 ? 255 : 65535;
  const eight = (v: number) => s === 1 ? v : to8(v);
  switch (ct) {
    case 0: {
      const v = sample(0);
      return transparent && v === transparent[0] ? 0 : eight(v);
    }
    case 3:
      return lut![row[x]];
    case 2: {
      const [R, G, B] = [sample(0), sample(1), sample(2)];
      if (transparent && R === transparent[0] && G === transparent[1] && B === transparent[2]) {
        return 0;
      }
      return luma(eight(R), eight(G), eight(B));
    }
    case 4:
      return Math.round(eight(sample(0)) * sample(1) / max);
    default: // 6
      return Math.round(
        luma(eight(sample(0)), eight(sample(1)), eight(sample(2))) * sample(3) / max,
      );
  }
}

/** Reverses a scanline filter in place (PNG spec, section 9). */
function unfilter(
  f: number,
  cur: Uint8Array,
  prev: Uint8Array,
  bpp: number,
  name: string,
  y: number,
): void {
  const n = cur.length;
  switch (f) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) cur[i] = cur[i] + cur[i - bpp];
      return;
    case 2:
      for (let i = 0; i < n; i++) cur[i] = cur[i] + prev[i];
      return;
    case 3:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? cur[i - bpp] : 0;
        cur[i] = cur[i] + (a + prev[i] >> 1);
      }
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? cur[i - bpp] : 0;
        const b = prev[i];
        const c = i >= bpp ? prev[i - bpp] : 0;
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        cur[i] = cur[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      return;
    default:
      throw fail(name, `unknown filter type ${f} on row ${y}`);
  }
}

/** Inflates a zlib stream, requiring at least `expected` bytes and not much more. */
async function inflate(data: Uint8Array, expected: number, name: string): Promise<Uint8Array> {
  const reader = bytesStream(data).pipeThrough(inflater("deflate")).getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      n += value.length;
      if (n > expected + 65536) {
        await reader.cancel();
        throw fail(name, `more image data than a ${expected}-byte image holds`);
      }
    }
  } catch (e) {
    if (e instanceof WgradError) throw e;
    throw fail(name, `corrupt image data (zlib): ${e instanceof Error ? e.message : e}`);
  }
  if (n < expected) throw fail(name, `truncated image data: ${n} of ${expected} bytes`);
  return concatBytes(parts, n);
}

/** What {@linkcode encodePng} takes. */
export interface PngInput {
  /** Pixels per row. */
  width: number;
  /** Rows. */
  height: number;
  /** Samples, row-major, `channels` per pixel (palette indices for color type 3). */
  samples: ArrayLike<number>;
  /** 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA (default 0). */
  colorType?: 0 | 2 | 3 | 4 | 6;
  /** Bits per sample (default 8). */
  bitDepth?: 1 | 2 | 4 | 8 | 16;
  /** RGB triples for color type 3. */
  palette?: Uint8Array;
  /** A tRNS chunk's contents. */
  transparency?: Uint8Array;
  /** Adam7 interlacing (default false). */
  interlace?: boolean;
  /** The filter type of every row, or `"cycle"` for 0, 1, 2, 3, 4, 0, … (default 0). */
  filter?: 0 | 1 | 2 | 3 | 4 | "cycle";
}

/** Encodes a PNG (for tests and fixtures). */
export async function encodePng(img: PngInput): Promise<Uint8Array<ArrayBuffer>> {
  const ct = img.colorType ?? 0, depth = img.bitDepth ?? 8;
  if (!DEPTHS[ct].includes(depth)) throw new WgradError("value", `encodePng: bad type/depth`);
  const channels = CHANNELS[ct];
  const bits = channels * depth;
  const bpp = Math.max(1, bits >> 3);
  const rows: Uint8Array[] = [];
  let rowIndex = 0;
  for (const [x0, y0, dx, dy, pw, ph] of passes(img.width, img.height, img.interlace ?? false)) {
    if (!pw || !ph) continue;
    const stride = Math.ceil(pw * bits / 8);
    let prev = new Uint8Array(stride);
    for (let y = 0; y < ph; y++) {
      const line = new Uint8Array(stride);
      for (let x = 0; x < pw; x++) {
        for (let c = 0; c < channels; c++) {
          const v = img.samples[((y0 + y * dy) * img.width + x0 + x * dx) * channels + c];
          if (depth === 16) {
            line[(x * channels + c) * 2] = v >> 8;
            line[(x * channels + c) * 2 + 1] = v & 0xff;
          } else if (depth === 8) line[x * channels + c] = v;
          else line[Math.floor(x * depth / 8)] |= v << 8 - depth * (x % (8 / depth) + 1);
        }
      }
      const f = img.filter === "cycle" ? rowIndex % 5 : img.filter ?? 0;
      rowIndex++;
      const out = new Uint8Array(stride + 1);
      out[0] = f;
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? line[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        const pred = f === 0
          ? 0
          : f === 1
          ? a
          : f === 2
          ? b
          : f === 3
          ? (a + b) >> 1
          : pa <= pb && pa <= pc
          ? a
          : pb <= pc
          ? b
          : c;
        out[i + 1] = line[i] - pred;
      }
      rows.push(out);
      prev = line;
    }
  }
  const z = new Uint8Array(
    await new Response(
      bytesStream(concatBytes(rows)).pipeThrough(
        new CompressionStream("deflate") as unknown as TransformStream<Uint8Array, Uint8Array>,
      ),
    ).arrayBuffer(),
  );
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, img.width);
  dv.setUint32(4, img.height);
  ihdr.set([depth, ct, 0, 0, img.interlace ? 1 : 0], 8);
  const chunks = [chunk("IHDR", ihdr)];
  if (img.palette) chunks.push(chunk("PLTE", img.palette));
  if (img.transparency) chunks.push(chunk("tRNS", img.transparency));
  chunks.push(chunk("IDAT", z), chunk("IEND", new Uint8Array(0)));
  return concatBytes([new Uint8Array(SIGNATURE), ...chunks]);
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}
