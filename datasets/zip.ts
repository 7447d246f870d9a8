/**
 * Reads entries of a ZIP archive on disk (as distributed: EMNIST's `gzip.zip`) without loading the
 * archive: the central directory is read from the end of the file, and a selected entry is
 * streamed out (stored or deflated) with its CRC-32 and length checked. ZIP64 and encrypted
 * archives are refused with a clear error.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { crc32 } from "./checksum.ts";
import { inflater } from "./gzip.ts";

/** An entry of a ZIP archive's central directory. */
export interface ZipEntry {
  /** The path inside the archive. */
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  /** CRC-32 of the uncompressed data. */
  crc32: number;
  /** Compressed bytes. */
  compressedSize: number;
  /** Uncompressed bytes. */
  size: number;
  /** Where the entry's local header starts. */
  localHeaderOffset: number;
}

function fail(name: string, what: string): WgradError {
  return new WgradError("value", `${name}: ${what}`);
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

/** Lists the entries of the ZIP archive at `path` from its central directory. */
export async function listZip(path: string): Promise<ZipEntry[]> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    if (size < 22) throw fail(path, `not a ZIP archive (${size} bytes)`);
    const tailLen = Math.min(size, 22 + 65535);
    const tail = await readAt(file, size - tailLen, tailLen);
    const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (
        dv.getUint32(i, true) === 0x06054b50 && i + 22 + dv.getUint16(i + 20, true) <= tail.length
      ) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw fail(path, "not a ZIP archive (no end-of-central-directory record)");
    const count = dv.getUint16(eocd + 10, true);
    const cdSize = dv.getUint32(eocd + 12, true);
    const cdOffset = dv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw fail(path, "ZIP64 archives are not supported");
    }
    if (cdOffset + cdSize > size) {
      throw fail(
        path,
        "truncated ZIP archive: the central directory lies past the end of the file",
      );
    }
    const cd = await readAt(file, cdOffset, cdSize);
    const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cv.getUint32(p, true) !== 0x02014b50) {
        throw fail(path, `corrupt ZIP central directory at entry ${i}`);
      }
      const flags = cv.getUint16(p + 8, true);
      const nameLen = cv.getUint16(p + 28, true);
      const extraLen = cv.getUint16(p + 30, true);
      const commentLen = cv.getUint16(p + 32, true);
      if (p + 46 + nameLen > cd.length) {
        throw fail(path, `corrupt ZIP central directory at entry ${i}`);
      }
      const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
      if (flags & 1) throw fail(path, `${name}: encrypted entries are not supported`);
      entries.push({
        name,
        method: cv.getUint16(p + 10, true),
        crc32: cv.getUint32(p + 16, true),
        compressedSize: cv.getUint32(p + 20, true),
        size: cv.getUint32(p + 24, true),
        localHeaderOffset: cv.getUint32(p + 42, true),
      });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  } finally {
    file.close();
  }
}

/**
 * Streams one entry of the ZIP archive at `path` into `sink` (chunk by chunk), checking its
 * CRC-32 and length at the end. A failed check throws after the last chunk, so a caller writing
 * to a temporary file must discard it on error.
 */
export async function extractZipEntry(
  path: string,
  entry: ZipEntry,
  sink: (chunk: Uint8Array) => Promise<void> | void,
): Promise<void> {
  const label = `${path} (${entry.name})`;
  if (entry.method !== 0 && entry.method !== 8) {
    throw fail(label, `unsupported compression method ${entry.method}`);
  }
  const file = await Deno.open(path, { read: true });
  let closed = false;
  try {
    const lh = await readAt(file, entry.localHeaderOffset, 30);
    const lv = new DataView(lh.buffer, lh.byteOffset, lh.byteLength);
    if (lh.length < 30 || lv.getUint32(0, true) !== 0x04034b50) {
      throw fail(label, "corrupt ZIP archive: bad local header");
    }
    const start = entry.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    const size = (await file.stat()).size;
    if (start + entry.compressedSize > size) {
      throw fail(label, "truncated ZIP archive: the entry's data lies past the end of the file");
    }
    await file.seek(start, Deno.SeekMode.Start);
    let left = entry.compressedSize;
    const raw = file.readable.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          if (left <= 0) return;
          const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
          left -= part.length;
          ctl.enqueue(part);
          if (left === 0) ctl.terminate();
        },
      }),
    );
    closed = true;
    const data = entry.method === 8 ? raw.pipeThrough(inflater("deflate-raw")) : raw;
    let crc = 0, n = 0;
    try {
      for await (const chunk of data) {
        crc = crc32(chunk, crc) >>> 0;
        n += chunk.length;
        if (n > entry.size) throw fail(label, `more data than the ${entry.size} bytes recorded`);
        await sink(chunk);
      }
    } catch (e) {
      if (e instanceof WgradError) throw e;
      throw fail(label, `corrupt compressed data: ${e instanceof Error ? e.message : e}`);
    }
    if (n !== entry.size) throw fail(label, `truncated entry: ${n} of ${entry.size} bytes`);
    if (crc !== entry.crc32) throw fail(label, "CRC-32 mismatch: the entry is corrupt");
  } finally {
    if (!closed) file.close();
  }
}
