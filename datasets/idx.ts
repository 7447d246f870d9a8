/**
 * The IDX file format of MNIST and its relatives, read and written to the letter:
 *
 * ```
 * offset 0   two zero bytes
 * offset 2   type code: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
 * offset 3   number of dimensions n
 * offset 4   n sizes, big-endian unsigned 32-bit
 * then       the elements, row-major, big-endian
 * ```
 *
 * Readers take bytes, a stream or a file, plain or gzip (detected by its magic number, decompressed
 * as a stream into one buffer of the final size). The header is checked against every size known
 * before any large allocation: a plain file's length, a gzip file's recorded length (ISIZE) and the
 * most a gzip file of its size can expand to. A file that fails a check is an error that names it
 * and says what is wrong; no data is ever returned from it.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { gunzipChunks, gzip, gzipRecordedSize, isGzip, MAX_DEFLATE_RATIO } from "./gzip.ts";

/** Element types of IDX files. */
export type IdxDType = "u8" | "i8" | "i16" | "i32" | "f32" | "f64";

/** The typed arrays that hold IDX elements. */
export type IdxData =
  | Uint8Array<ArrayBuffer>
  | Int8Array<ArrayBuffer>
  | Int16Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Float32Array<ArrayBuffer>
  | Float64Array<ArrayBuffer>;

/** An n-dimensional array read from (or to be written to) an IDX file. */
export interface IdxArray<T extends IdxData = IdxData> {
  /** The elements in row-major order, in the host's byte order. */
  data: T;
  /** The sizes of the dimensions, outermost first. */
  shape: number[];
  /** The element type. */
  dtype: IdxDType;
}

/** The IDX type code of each element type. */
export const IDX_TYPE_CODES: Readonly<Record<IdxDType, number>> = Object.freeze({
  u8: 0x08,
  i8: 0x09,
  i16: 0x0b,
  i32: 0x0c,
  f32: 0x0d,
  f64: 0x0e,
});

const BY_CODE: ReadonlyMap<number, IdxDType> = new Map(
  Object.entries(IDX_TYPE_CODES).map(([k, v]) => [v, k as IdxDType]),
);

/** Bytes per element of each IDX element type. */
export const IDX_ELEMENT_BYTES: Readonly<Record<IdxDType, number>> = Object.freeze({
  u8: 1,
  i8: 1,
  i16: 2,
  i32: 4,
  f32: 4,
  f64: 8,
});

/** The default upper bound on an IDX payload: 2 GiB. */
export const DEFAULT_MAX_IDX_BYTES = 2 ** 31;

/** A parsed IDX header. */
export interface IdxHeader {
  /** The element type. */
  dtype: IdxDType;
  /** The sizes of the dimensions. */
  shape: number[];
  /** Bytes in the header: 4 + 4 × the number of dimensions. */
  headerBytes: number;
  /** Bytes of element data the header announces. */
  payloadBytes: number;
}

/** Options of the IDX readers. */
export interface IdxReadOptions {
  /** The name used in error messages (default: the path, or `"IDX data"`). */
  name?: string;
  /** Refuse payloads larger than this many bytes (default {@linkcode DEFAULT_MAX_IDX_BYTES}). */
  maxBytes?: number;
}

/** What the decoder knows about the length of the IDX stream before reading it. */
export interface IdxLengthHints {
  /** The exact length in bytes (a plain file's size). */
  exactBytes?: number;
  /** The length modulo 2³² (a gzip file's ISIZE trailer). */
  recordedBytes?: number;
  /** The largest length possible (for gzip: about 1032 × the compressed size). */
  atMostBytes?: number;
  /** What the bound `atMostBytes` comes from, for messages. */
  atMostReason?: string;
  /** Upper bound on the payload (default {@linkcode DEFAULT_MAX_IDX_BYTES}). */
  maxBytes?: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(name: string, what: string): WgradError {
  return new WgradError("value", `${name}: ${what}`);
}

function hex2(n: number): string {
  return "0x" + n.toString(16).toUpperCase().padStart(2, "0");
}

/** `60000×28×28 = 47040000 bytes`, or with the element size for multi-byte types. */
function describeSize(h: IdxHeader): string {
  const dims = h.shape.length ? h.shape.join("×") : "1 (no dimensions)";
  const per = IDX_ELEMENT_BYTES[h.dtype];
  const total = Number.isFinite(h.payloadBytes) ? `${h.payloadBytes}` : "more than 2^53";
  return per === 1
    ? `${dims} = ${total} bytes`
    : `${dims} ${h.dtype} (${per} bytes each) = ${total} bytes`;
}

/**
 * Decodes an IDX stream pushed to it chunk by chunk. It checks the header as soon as it is
 * complete, against the length hints, before allocating the data buffer (exactly the announced
 * size when the length is known; otherwise grown as bytes arrive, so that a lying header cannot
 * make it allocate more than twice what it received).
 */
export class IdxDecoder {
  readonly #name: string;
  readonly #hints: IdxLengthHints;
  #head = new Uint8Array(4 + 4 * 255);
  #headLen = 0;
  #header: IdxHeader | null = null;
  #buf: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  #received = 0;
  #done = false;

  /**
   * Makes a decoder.
   * @param name names the file in error messages
   * @param hints what is known about the stream's length
   */
  constructor(name: string, hints: IdxLengthHints = {}) {
    this.#name = name;
    this.#hints = hints;
  }

  /** The header, once it has been read. */
  get header(): IdxHeader | null {
    return this.#header;
  }

  /** Feeds the next bytes of the stream. Throws at the first inconsistency. */
  push(chunk: Uint8Array): void {
    if (this.#done) throw new Error("internal: IdxDecoder.push after finish");
    let off = 0;
    if (!this.#header) {
      while (off < chunk.length && !this.#header) {
        const need = this.#headLen < 4 ? 4 : 4 + 4 * this.#head[3];
        const take = Math.min(need - this.#headLen, chunk.length - off);
        this.#head.set(chunk.subarray(off, off + take), this.#headLen);
        this.#headLen += take;
        off += take;
        if (this.#headLen === 4) this.#checkMagic();
        if (this.#headLen >= 4 && this.#headLen === 4 + 4 * this.#head[3]) this.#start();
      }
      if (!this.#header) return;
    }
    const h = this.#header;
    const n = chunk.length - off;
    if (n === 0) return;
    const room = h.payloadBytes - this.#received;
    if (n > room) {
      throw fail(
        this.#name,
        `sizes do not match the byte length: header says ${describeSize(h)}, ` +
          `file has at least ${this.#received + n} bytes after the ${h.headerBytes}-byte header`,
      );
    }
    if (this.#received + n > this.#buf.length) this.#grow(this.#received + n);
    this.#buf.set(chunk.subarray(off), this.#received);
    this.#received += n;
  }

  /** Ends the stream: checks that it was complete and returns the array. */
  finish(): IdxArray {
    this.#done = true;
    const h = this.#header;
    if (!h) {
      if (this.#headLen === 0) throw fail(this.#name, "empty file (no IDX header)");
      if (this.#headLen < 4) {
        throw fail(this.#name, `truncated header: ${this.#headLen} bytes, an IDX header needs 4+`);
      }
      const nd = this.#head[3];
      throw fail(
        this.#name,
        `truncated header: ${nd} dimensions need ${
          4 + 4 * nd
        } header bytes, file has ${this.#headLen}`,
      );
    }
    if (this.#received < h.payloadBytes) {
      throw fail(
        this.#name,
        `truncated payload: header says ${describeSize(h)}, file has ${this.#received}`,
      );
    }
    let buf = this.#buf;
    if (buf.length !== h.payloadBytes) buf = buf.slice(0, h.payloadBytes);
    this.#buf = new Uint8Array(0);
    return { data: viewAs(buf.buffer, h.dtype, true), shape: h.shape, dtype: h.dtype };
  }

  #checkMagic(): void {
    const b = this.#head;
    if (b[0] !== 0 || b[1] !== 0) {
      const gz = b[0] === 0x1f && b[1] === 0x8b ? " (this is gzip data: decompress it first)" : "";
      throw fail(
        this.#name,
        `not an IDX file: wrong magic number ${hex2(b[0])} ${hex2(b[1])} ${hex2(b[2])} ${
          hex2(b[3])
        } (an IDX file starts with two zero bytes, a type code and the number of dimensions)${gz}`,
      );
    }
    if (!BY_CODE.has(b[2])) {
      throw fail(
        this.#name,
        `unknown IDX type code ${hex2(b[2])} (known: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, ` +
          `0x0D f32, 0x0E f64)`,
      );
    }
  }

  #start(): void {
    const b = this.#head;
    const dtype = BY_CODE.get(b[2])!;
    const nd = b[3];
    const shape: number[] = [];
    let elements = 1;
    for (let i = 0; i < nd; i++) {
      const p = 4 + 4 * i;
      const d = (b[p] << 24 | b[p + 1] << 16 | b[p + 2] << 8 | b[p + 3]) >>> 0;
      shape.push(d);
      elements *= d;
    }
    const headerBytes = 4 + 4 * nd;
    let payloadBytes = elements * IDX_ELEMENT_BYTES[dtype];
    if (!(payloadBytes <= Number.MAX_SAFE_INTEGER)) payloadBytes = Infinity;
    const h: IdxHeader = { dtype, shape, headerBytes, payloadBytes };
    const { exactBytes, recordedBytes, atMostBytes, atMostReason } = this.#hints;
    const maxBytes = this.#hints.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
    const total = headerBytes + payloadBytes;
    if (exactBytes !== undefined && total !== exactBytes) {
      const has = exactBytes - headerBytes;
      throw fail(
        this.#name,
        has < payloadBytes
          ? `truncated payload: header says ${describeSize(h)}, file has ${Math.max(0, has)}`
          : `sizes do not match the byte length: header says ${describeSize(h)}, file has ${has} ` +
            `bytes after the ${headerBytes}-byte header`,
      );
    }
    if (recordedBytes !== undefined && total % 2 ** 32 !== recordedBytes) {
      throw fail(
        this.#name,
        `sizes do not match the byte length: header says ${describeSize(h)} ` +
          `(${total} with the header), but the gzip trailer records ${recordedBytes} ` +
          `uncompressed bytes`,
      );
    }
    if (atMostBytes !== undefined && total > atMostBytes) {
      throw fail(
        this.#name,
        `sizes do not match the byte length: header says ${describeSize(h)}, more than ` +
          `${atMostReason ?? `the ${atMostBytes} bytes available`}`,
      );
    }
    if (payloadBytes > maxBytes) {
      throw fail(
        this.#name,
        `header says ${describeSize(h)}, more than the ${maxBytes}-byte limit (option maxBytes)`,
      );
    }
    this.#header = h;
    const known = exactBytes !== undefined || recordedBytes !== undefined;
    this.#buf = new Uint8Array(known ? payloadBytes : Math.min(payloadBytes, 1 << 20));
  }

  #grow(need: number): void {
    const h = this.#header!;
    const size = Math.min(h.payloadBytes, Math.max(need, this.#buf.length * 2));
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#received));
    this.#buf = next;
  }
}

/**
 * Views a buffer of big-endian (`bigEndian`) or host-order elements as the typed array of `dtype`,
 * converting big-endian data to host order in place.
 */
function viewAs(buf: ArrayBuffer, dtype: IdxDType, bigEndian: boolean): IdxData {
  if (bigEndian && LITTLE_ENDIAN) swapBytes(buf, IDX_ELEMENT_BYTES[dtype]);
  switch (dtype) {
    case "u8":
      return new Uint8Array(buf);
    case "i8":
      return new Int8Array(buf);
    case "i16":
      return new Int16Array(buf);
    case "i32":
      return new Int32Array(buf);
    case "f32":
      return new Float32Array(buf);
    case "f64":
      return new Float64Array(buf);
  }
}

/** Reverses the bytes of each `width`-byte element of `buf` in place. */
function swapBytes(buf: ArrayBuffer, width: number): void {
  if (width === 2) {
    const a = new Uint16Array(buf);
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      a[i] = v >>> 8 | (v & 0xff) << 8;
    }
  } else if (width === 4) {
    const a = new Uint32Array(buf);
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      a[i] = v >>> 24 | (v >>> 8 & 0xff00) | (v & 0xff00) << 8 | v << 24;
    }
  } else if (width === 8) {
    const a = new Uint32Array(buf);
    for (let i = 0; i < a.length; i += 2) {
      const lo = a[i], hi = a[i + 1];
      a[i] = hi >>> 24 | (hi >>> 8 & 0xff00) | (hi & 0xff00) << 8 | hi << 24;
      a[i + 1] = lo >>> 24 | (lo >>> 8 & 0xff00) | (lo & 0xff00) << 8 | lo << 24;
    }
  }
}

/**
 * Parses a plain (not gzip) IDX file held in memory. The data is copied, so `bytes` may be reused.
 * @param bytes the whole file
 * @param name names the file in error messages
 */
export function parseIdx(
  bytes: Uint8Array,
  name = "IDX data",
  options: IdxReadOptions = {},
): IdxArray {
  if (isGzip(bytes)) {
    throw fail(
      name,
      "this is gzip data: read it with readIdx() or readIdxFile(), which decompress",
    );
  }
  const dec = new IdxDecoder(name, { exactBytes: bytes.length, maxBytes: options.maxBytes });
  dec.push(bytes);
  return dec.finish();
}

/**
 * Reads an IDX array from bytes or a stream, plain or gzip (detected by its magic number).
 * A gzip stream is decompressed chunk by chunk into the final buffer.
 */
export async function readIdx(
  source: Uint8Array | ReadableStream<Uint8Array>,
  options: IdxReadOptions = {},
): Promise<IdxArray> {
  const name = options.name ?? "IDX data";
  if (source instanceof Uint8Array) {
    if (!isGzip(source)) return parseIdx(source, name, options);
    return await decodeGzip(source, name, {
      recordedBytes: gzipRecordedSize(source) ?? undefined,
      atMostBytes: source.length * MAX_DEFLATE_RATIO,
      atMostReason: `a gzip file of ${source.length} bytes can hold`,
      maxBytes: options.maxBytes,
    });
  }
  // A stream: look at the first bytes to tell gzip from plain IDX.
  const reader = source.getReader();
  let first: Uint8Array = new Uint8Array(0);
  try {
    while (first.length < 2) {
      const { done, value } = await reader.read();
      if (done) break;
      const next = new Uint8Array(first.length + value.length);
      next.set(first);
      next.set(value, first.length);
      first = next;
    }
  } catch (e) {
    reader.releaseLock();
    throw e;
  }
  reader.releaseLock();
  const rest = prepend(first, source);
  if (isGzip(first)) return await decodeGzip(rest, name, { maxBytes: options.maxBytes });
  const dec = new IdxDecoder(name, { maxBytes: options.maxBytes });
  for await (const chunk of rest) dec.push(chunk);
  return dec.finish();
}

async function decodeGzip(
  source: Uint8Array | ReadableStream<Uint8Array>,
  name: string,
  hints: IdxLengthHints,
): Promise<IdxArray> {
  const dec = new IdxDecoder(name, hints);
  const chunks = gunzipChunks(source, name);
  try {
    for await (const chunk of chunks) dec.push(chunk);
  } finally {
    await chunks.return(undefined);
  }
  return dec.finish();
}

/** A stream that yields `head`, then the rest of `source`. */
function prepend(head: Uint8Array, source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let sentHead = head.length === 0;
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (!sentHead) {
        sentHead = true;
        ctl.enqueue(head);
        return;
      }
      reader ??= source.getReader();
      const { done, value } = await reader.read();
      if (done) ctl.close();
      else ctl.enqueue(value);
    },
    cancel(reason) {
      return reader ? reader.cancel(reason) : source.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads an IDX file, plain or gzip (by magic number, not by name), from a path or a `file:`,
 * `http:` or `https:` URL. For a local file, the header is checked against the file's size (plain)
 * or its recorded uncompressed size (gzip) before anything large is allocated.
 */
export async function readIdxFile(
  path: string | URL,
  options: IdxReadOptions = {},
): Promise<IdxArray> {
  if (path instanceof URL && path.protocol !== "file:") {
    const name = options.name ?? path.href;
    const res = await fetch(path);
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw fail(name, `HTTP ${res.status} ${res.statusText}`);
    }
    return await readIdx(res.body, { ...options, name });
  }
  const name = options.name ?? (path instanceof URL ? decodeURIComponent(path.pathname) : path);
  const file = await Deno.open(path, { read: true });
  let closed = false;
  try {
    const size = (await file.stat()).size;
    const head = await readAt(file, 0, Math.min(size, 2));
    if (!isGzip(head)) {
      const dec = new IdxDecoder(name, { exactBytes: size, maxBytes: options.maxBytes });
      await file.seek(0, Deno.SeekMode.Start);
      closed = true; // the stream closes the file
      for await (const chunk of file.readable) dec.push(chunk);
      return dec.finish();
    }
    const tail = await readAt(file, Math.max(0, size - 4), Math.min(size, 4));
    await file.seek(0, Deno.SeekMode.Start);
    closed = true;
    return await decodeGzip(file.readable, name, {
      recordedBytes: size >= 18 ? gzipRecordedSize(tail) ?? undefined : undefined,
      atMostBytes: size * MAX_DEFLATE_RATIO,
      atMostReason: `a gzip file of ${size} bytes can hold`,
      maxBytes: options.maxBytes,
    });
  } finally {
    if (!closed) file.close();
  }
}

async function readAt(file: Deno.FsFile, pos: number, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  await file.seek(pos, Deno.SeekMode.Start);
  let got = 0;
  while (got < n) {
    const r = await file.read(out.subarray(got));
    if (r === null) break;
    got += r;
  }
  return out.subarray(0, got);
}

/** The IDX element type that a typed array holds. */
export function idxDTypeOf(data: IdxData): IdxDType {
  if (data instanceof Uint8Array) return "u8";
  if (data instanceof Int8Array) return "i8";
  if (data instanceof Int16Array) return "i16";
  if (data instanceof Int32Array) return "i32";
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Float64Array) return "f64";
  throw new WgradError(
    "dtype",
    "IDX data must be a Uint8, Int8, Int16, Int32, Float32 or Float64 array",
  );
}

/** What {@linkcode encodeIdx} takes: elements and a shape whose product is their number. */
export interface IdxInput {
  /** The elements, row-major. */
  data: IdxData;
  /** The sizes of the dimensions (each < 2³², at most 255 of them). */
  shape: readonly number[];
}

/** Encodes an array as an IDX file (big-endian). */
export function encodeIdx(array: IdxInput): Uint8Array<ArrayBuffer> {
  const { data, shape } = array;
  const dtype = idxDTypeOf(data);
  if (shape.length > 255) {
    throw new WgradError("shape", `encodeIdx: ${shape.length} dimensions, IDX allows at most 255`);
  }
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d >= 2 ** 32) {
      throw new WgradError("shape", `encodeIdx: dimension ${d} is not an integer in [0, 2³²)`);
    }
    n *= d;
  }
  if (n !== data.length) {
    throw new WgradError(
      "shape",
      `encodeIdx: shape [${shape.join(", ")}] holds ${n} elements, data has ${data.length}`,
    );
  }
  const headerBytes = 4 + 4 * shape.length;
  const out = new Uint8Array(headerBytes + data.byteLength);
  const dv = new DataView(out.buffer);
  out[2] = IDX_TYPE_CODES[dtype];
  out[3] = shape.length;
  shape.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  const payload = out.subarray(headerBytes);
  payload.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (LITTLE_ENDIAN && IDX_ELEMENT_BYTES[dtype] > 1) {
    const aligned = payload.slice(); // the payload's offset need not be aligned
    swapBytes(aligned.buffer, IDX_ELEMENT_BYTES[dtype]);
    payload.set(aligned);
  }
  return out;
}

/** Options of {@linkcode writeIdxFile}. */
export interface IdxWriteOptions {
  /** Compress with gzip (default: when the path ends in `.gz`). */
  gzip?: boolean;
}

/**
 * Writes an IDX file, gzip-compressed when the path ends in `.gz`. The file is written under a
 * temporary name and renamed into place, so that a reader never sees half of it.
 */
export async function writeIdxFile(
  path: string,
  array: IdxInput,
  options: IdxWriteOptions = {},
): Promise<void> {
  let bytes: Uint8Array = encodeIdx(array);
  if (options.gzip ?? path.endsWith(".gz")) bytes = await gzip(bytes);
  const tmp = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
