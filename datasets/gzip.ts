/**
 * gzip on the platform's `DecompressionStream`/`CompressionStream`, with errors that name the file.
 *
 * `DecompressionStream("gzip")` checks each stream's CRC-32 and length trailer (RFC 1952), so a
 * corrupt or truncated file is an error, never silently short data. Concatenated gzip members are
 * not supported by the platform; they are reported as trailing data.
 * @module
 */
import { WgradError } from "../src/errors.ts";

/** Whether `bytes` start with the gzip magic number `1f 8b`. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** The fields of a gzip member header (RFC 1952, section 2.3). */
export interface GzipHeader {
  /** Length of the header in bytes; the deflate data starts here. */
  headerBytes: number;
  /** Modification time, seconds since 1970 (0 when unset). */
  mtime: number;
  /** Extra flags (2: best compression, 4: fastest). */
  xfl: number;
  /** Operating system code (3: Unix). */
  os: number;
  /** The original file name, when the header records one. */
  fileName?: string;
}

const FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16;

/**
 * Parses a gzip member header. Returns `null` when `bytes` end before the header does; throws a
 * `value` {@linkcode WgradError} naming `name` when the bytes are not a gzip header.
 */
export function parseGzipHeader(bytes: Uint8Array, name: string): GzipHeader | null {
  if (bytes.length < 10) {
    if (bytes.length >= 1 && bytes[0] !== 0x1f || bytes.length >= 2 && bytes[1] !== 0x8b) {
      throw gzipError(name, "not a gzip file (no 1f 8b magic number)");
    }
    return null;
  }
  if (!isGzip(bytes)) throw gzipError(name, "not a gzip file (no 1f 8b magic number)");
  if (bytes[2] !== 8) throw gzipError(name, `unknown compression method ${bytes[2]} (not deflate)`);
  const flg = bytes[3];
  if (flg & 0xe0) throw gzipError(name, `reserved header flags set (0x${hex2(flg)})`);
  const mtime = (bytes[4] | bytes[5] << 8 | bytes[6] << 16 | bytes[7] << 24) >>> 0;
  let p = 10;
  if (flg & FEXTRA) {
    if (bytes.length < p + 2) return null;
    p += 2 + (bytes[p] | bytes[p + 1] << 8);
  }
  let fileName: string | undefined;
  if (flg & FNAME) {
    const end = bytes.indexOf(0, p);
    if (end < 0) return null;
    fileName = new TextDecoder("latin1").decode(bytes.subarray(p, end));
    p = end + 1;
  }
  if (flg & FCOMMENT) {
    const end = bytes.indexOf(0, p);
    if (end < 0) return null;
    p = end + 1;
  }
  if (flg & FHCRC) p += 2;
  if (bytes.length < p) return null;
  return { headerBytes: p, mtime, xfl: bytes[8], os: bytes[9], fileName };
}

/** Builds a gzip member header with the given fields (no extra field, comment or header CRC). */
export function gzipHeaderBytes(h: Omit<GzipHeader, "headerBytes">): Uint8Array {
  const name = h.fileName === undefined ? null : latin1(h.fileName);
  const out = new Uint8Array(10 + (name ? name.length + 1 : 0));
  out.set([0x1f, 0x8b, 8, name ? FNAME : 0]);
  out[4] = h.mtime & 0xff;
  out[5] = h.mtime >>> 8 & 0xff;
  out[6] = h.mtime >>> 16 & 0xff;
  out[7] = h.mtime >>> 24 & 0xff;
  out[8] = h.xfl;
  out[9] = h.os;
  if (name) out.set(name, 10);
  return out;
}

/**
 * The uncompressed length recorded in the last four bytes of a gzip file (ISIZE: the length
 * modulo 2³²), or `null` if there are fewer than 18 bytes.
 */
export function gzipRecordedSize(tail: Uint8Array): number | null {
  if (tail.length < 4) return null;
  const n = tail.length;
  return (tail[n - 4] | tail[n - 3] << 8 | tail[n - 2] << 16 | tail[n - 1] << 24) >>> 0;
}

/** The largest expansion deflate can achieve (about 1032:1); bounds a header's claims. */
export const MAX_DEFLATE_RATIO = 1032;

/**
 * Decompresses a gzip stream chunk by chunk. Errors are `value` {@linkcode WgradError}s that name
 * `name` and say what is wrong (bad header, failed CRC-32 or length check, data ending early,
 * trailing data); errors of the source stream itself are passed on.
 */
export async function* gunzipChunks(
  source: ReadableStream<Uint8Array> | Uint8Array,
  name: string,
): AsyncGenerator<Uint8Array<ArrayBuffer>, void, undefined> {
  let sourceError: unknown = null;
  let headerChecked = false;
  let head: Uint8Array = new Uint8Array(0);
  const input = source instanceof Uint8Array ? bytesStream(source) : source;
  // The header is checked here first, so that a file that is not gzip gets a clear message.
  const guarded = input.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        if (headerChecked) {
          ctl.enqueue(chunk);
          return;
        }
        head = concat(head, chunk);
        if (parseGzipHeader(head, name) === null && head.length < 64 * 1024) return;
        headerChecked = true;
        ctl.enqueue(head);
        head = new Uint8Array(0);
      },
      flush() {
        if (headerChecked) return;
        if (head.length === 0) throw gzipError(name, "empty file (no gzip header)");
        throw gzipError(name, `truncated gzip header (${head.length} bytes)`);
      },
    }),
  );
  // Errors of the source (and of the header check) are remembered, to tell them from corrupt data.
  const upstream = guarded.getReader();
  const tagged = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      try {
        const { done, value } = await upstream.read();
        if (done) ctl.close();
        else ctl.enqueue(value);
      } catch (e) {
        sourceError = e;
        ctl.error(e);
      }
    },
    cancel(reason) {
      return upstream.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const reader = tagged.pipeThrough(inflater("gzip")).getReader();
  let finished = false;
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        finished = true;
        if (sourceError !== null) throw sourceError;
        throw gzipError(name, describeInflateError(e));
      }
      if (r.done) {
        finished = true;
        return;
      }
      yield r.value as Uint8Array<ArrayBuffer>;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Decompresses gzip bytes whole. Errors as for {@linkcode gunzipChunks}. */
export async function gunzip(
  source: ReadableStream<Uint8Array> | Uint8Array,
  name: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of gunzipChunks(source, name)) {
    parts.push(c);
    n += c.length;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Compresses bytes with `CompressionStream("gzip")` (a header with no name and time 0). */
export async function gzip(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const s = bytesStream(data).pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** A stream that yields `data` in chunks of at most 1 MiB. */
export function bytesStream(data: Uint8Array, chunkBytes = 1 << 20): ReadableStream<Uint8Array> {
  let o = 0;
  return new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (o >= data.length) {
        ctl.close();
        return;
      }
      const end = Math.min(data.length, o + chunkBytes);
      ctl.enqueue(data.subarray(o, end));
      o = end;
    },
  }, { highWaterMark: 0 });
}

/**
 * A `DecompressionStream` typed for `Uint8Array` chunks of any buffer (the platform accepts them).
 */
export function inflater(
  format: "gzip" | "deflate" | "deflate-raw",
): TransformStream<Uint8Array, Uint8Array<ArrayBuffer>> {
  return new DecompressionStream(format) as unknown as TransformStream<
    Uint8Array,
    Uint8Array<ArrayBuffer>
  >;
}

function describeInflateError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/matching checksum/i.test(msg)) {
    return "corrupt gzip stream: the CRC-32 or length check failed, or the data ends early";
  }
  if (/write whole buffer/i.test(msg)) {
    return "corrupt gzip stream: trailing data after the end of the compressed data " +
      "(concatenated gzip members are not supported)";
  }
  return `corrupt gzip stream: ${msg}`;
}

function gzipError(name: string, what: string): WgradError {
  return new WgradError("value", `${name}: ${what}`);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
