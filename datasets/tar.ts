/**
 * A streaming reader for tar archives (POSIX ustar, with GNU long names and pax extended headers),
 * and a small writer. Every header's checksum is verified; an archive that ends inside a header or
 * an entry's data is an error naming the archive and the entry.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { ByteQueue, concatBytes } from "./bytes.ts";

/** What a tar entry is. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** One entry of a tar archive. */
export interface TarEntry {
  /** The path inside the archive (`./` prefixes kept as written). */
  path: string;
  /** What the entry is. */
  type: TarEntryType;
  /** Bytes of data. */
  size: number;
  /** Modification time, seconds since 1970. */
  mtime: number;
  /** The contents of a regular file that was selected; empty otherwise. */
  data: Uint8Array<ArrayBuffer>;
}

/** Options of {@linkcode readTar}. */
export interface TarReadOptions {
  /** Which regular files to read the data of (default: all); the others are skipped. */
  select?: (path: string) => boolean;
  /** Refuse entries larger than this many bytes (default 2 GiB). */
  maxEntryBytes?: number;
}

const BLOCK = 512;

function fail(name: string, what: string): WgradError {
  return new WgradError("value", `${name}: ${what}`);
}

/** Reads a NUL-terminated (or full-width) ASCII/UTF-8 field. */
function str(h: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && h[end] !== 0) end++;
  return new TextDecoder().decode(h.subarray(off, end));
}

/** Parses an octal number field (or GNU base-256 when the high bit is set); NaN if malformed. */
function num(h: Uint8Array, off: number, len: number): number {
  if (h[off] & 0x80) {
    let v = h[off] & 0x3f;
    if (h[off] & 0x40) return NaN; // negative
    for (let i = 1; i < len; i++) v = v * 256 + h[off + i];
    return v;
  }
  let i = off;
  const end = off + len;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = h[i];
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return NaN;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : v;
}

function checksumOk(h: Uint8Array): boolean {
  const stored = num(h, 148, 8);
  let unsigned = 0, signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(h: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/** Parses pax extended header records: `"<len> <key>=<value>\n"` each. */
function parsePax(data: Uint8Array, name: string): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    let sp = p;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number(new TextDecoder().decode(data.subarray(p, sp)));
    if (!Number.isInteger(len) || len <= sp - p || p + len > data.length) {
      if (data.subarray(p).every((b) => b === 0)) break;
      throw fail(name, `malformed pax extended header record at byte ${p}`);
    }
    const rec = new TextDecoder().decode(data.subarray(sp + 1, p + len - 1));
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

/**
 * Reads a tar archive from a stream (for a `.tar.gz`, pass the decompressed stream), yielding its
 * entries in order. The data of each selected regular file is read whole into memory.
 * @param name names the archive in error messages
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  name: string,
  options: TarReadOptions = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const q = new ByteQueue(source);
  const maxEntry = options.maxEntryBytes ?? 2 ** 31;
  let longName: string | null = null;
  let pax = new Map<string, string>();
  let globalPax = new Map<string, string>();
  try {
    for (;;) {
      const at = q.position;
      const h = await q.read(BLOCK);
      if (h.length === 0) return; // end of stream at a block boundary (no end marker): accepted
      if (h.length < BLOCK) {
        throw fail(name, `truncated archive: a header at byte ${at} has ${h.length} of 512 bytes`);
      }
      if (isZeroBlock(h)) {
        // The end-of-archive marker. The rest (padding) is still read, so that a compressed
        // source reaches its end and checks its CRC before the caller trusts what it was given.
        await q.forEach(Infinity, () => {});
        return;
      }
      if (!checksumOk(h)) {
        throw fail(name, `corrupt tar header at byte ${at}: checksum mismatch`);
      }
      const flag = String.fromCharCode(h[156] || 0x30);
      let size = num(h, 124, 12);
      const mtime = num(h, 136, 12);
      if (!Number.isSafeInteger(size) || size < 0) {
        throw fail(name, `corrupt tar header at byte ${at}: bad size field`);
      }
      let path = str(h, 0, 100);
      const magic = str(h, 257, 6);
      if (magic === "ustar") {
        const prefix = str(h, 345, 155);
        if (prefix) path = `${prefix}/${path}`;
      }
      if (longName !== null) path = longName;
      const p = pax.get("path") ?? globalPax.get("path");
      if (p !== undefined) path = p;
      const paxSize = pax.get("size");
      if (paxSize !== undefined && flag !== "x" && flag !== "g") {
        const s = Number(paxSize);
        if (!Number.isSafeInteger(s) || s < 0) {
          throw fail(name, `bad pax size "${paxSize}" for ${path}`);
        }
        size = s;
      }
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      const meta = flag === "L" || flag === "K" || flag === "x" || flag === "g";
      if (meta) {
        if (size > 1 << 20) throw fail(name, `extended header of ${size} bytes at byte ${at}`);
        const data = await q.read(padded);
        if (data.length < padded) throw truncated(name, path, size, data.length);
        const body = data.subarray(0, size);
        if (flag === "L") longName = str(body, 0, body.length);
        else if (flag === "x") pax = parsePax(body, name);
        else if (flag === "g") globalPax = new Map([...globalPax, ...parsePax(body, name)]);
        // "K" (long link name) is not needed.
        continue;
      }
      longName = null;
      pax = new Map();
      const type: TarEntryType = flag === "0" || flag === "7"
        ? "file"
        : flag === "5"
        ? "directory"
        : flag === "2"
        ? "symlink"
        : flag === "1"
        ? "hardlink"
        : "other";
      let data: Uint8Array<ArrayBuffer> = new Uint8Array(0);
      if (type === "file" && (options.select?.(path) ?? true)) {
        if (size > maxEntry) {
          throw fail(name, `${path}: entry of ${size} bytes, more than the ${maxEntry}-byte limit`);
        }
        const parts: Uint8Array[] = [];
        const got = await q.forEach(size, (c) => parts.push(c.slice()));
        if (got < size) throw truncated(name, path, size, got);
        data = concatBytes(parts, size);
        const pad = padded - size;
        if ((await q.forEach(pad, () => {})) < pad) throw truncated(name, path, size, size);
      } else if (!"123456".includes(flag)) {
        // Links, devices, directories and FIFOs carry no data; anything else is skipped whole.
        const got = await q.forEach(padded, () => {});
        if (got < padded) throw truncated(name, path, size, Math.min(got, size));
      }
      yield { path, type, size: "123456".includes(flag) ? 0 : size, mtime, data };
    }
  } finally {
    await q.close();
  }
}

function truncated(name: string, path: string, size: number, got: number): WgradError {
  return fail(
    name,
    `truncated archive: ${path} should have ${size} bytes, the archive ends after ${got}`,
  );
}

/** One entry for {@linkcode encodeTar}. */
export interface TarInput {
  /** The path inside the archive. */
  path: string;
  /** The contents (omit for a directory). */
  data?: Uint8Array;
  /** `"file"` (default when there is data) or `"directory"`. */
  type?: "file" | "directory";
  /** Modification time, seconds since 1970 (default 0). */
  mtime?: number;
}

/**
 * Encodes entries as a ustar archive (GNU long-name entries for paths over 100 bytes), ending with
 * two zero blocks.
 */
export function encodeTar(entries: readonly TarInput[]): Uint8Array<ArrayBuffer> {
  const blocks: Uint8Array[] = [];
  const enc = new TextEncoder();
  const header = (path: string, size: number, flag: string, mtime: number): Uint8Array => {
    const h = new Uint8Array(BLOCK);
    const p = enc.encode(path);
    h.set(p.subarray(0, 100), 0);
    const oct = (v: number, off: number, len: number) => {
      h.set(enc.encode(v.toString(8).padStart(len - 1, "0")), off);
    };
    oct(flag === "5" ? 0o755 : 0o644, 100, 8);
    oct(0, 108, 8);
    oct(0, 116, 8);
    oct(size, 124, 12);
    oct(mtime, 136, 12);
    h[156] = flag.charCodeAt(0);
    h.set(enc.encode("ustar\u000000"), 257);
    h.fill(0x20, 148, 156);
    const sum = h.reduce((a, b) => a + b, 0);
    h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\u0000 "), 148);
    return h;
  };
  const pushData = (d: Uint8Array) => {
    blocks.push(d);
    const pad = (BLOCK - d.length % BLOCK) % BLOCK;
    if (pad) blocks.push(new Uint8Array(pad));
  };
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = e.data ?? new Uint8Array(0);
    const path = type === "directory" && !e.path.endsWith("/") ? e.path + "/" : e.path;
    const bytes = enc.encode(path);
    if (bytes.length > 100) {
      const long = new Uint8Array(bytes.length + 1);
      long.set(bytes);
      blocks.push(header("././@LongLink", long.length, "L", 0));
      pushData(long);
    }
    blocks.push(
      header(path, type === "file" ? data.length : 0, type === "file" ? "0" : "5", e.mtime ?? 0),
    );
    if (type === "file") pushData(data);
  }
  blocks.push(new Uint8Array(2 * BLOCK));
  return concatBytes(blocks);
}
