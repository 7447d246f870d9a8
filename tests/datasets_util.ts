/**
 * Helpers for the dataset tests: temporary directories, a local HTTP server, an independent
 * reference IDX parser, a minimal ZIP writer, and error assertions. Nothing here touches the GPU.
 * @module
 */
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { WgradError } from "../mod.ts";
import { Philox } from "../src/random.ts";

export { assert };

/** Decodes base64 to bytes. */
export function b64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A temporary directory under /tmp, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgrad-datasets-" });
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Lists a directory's file names, sorted. */
export async function ls(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch {
    return [];
  }
  return out.sort();
}

/** What a route of {@linkcode serve} answers. */
export type Route =
  | Uint8Array<ArrayBuffer>
  | { status: number }
  | { truncateAt: number; body: Uint8Array<ArrayBuffer> }
  | { delayMs: number; body: Uint8Array<ArrayBuffer> };

/** A local HTTP server on 127.0.0.1 answering `routes` by path; counts requests per path. */
export function serve(routes: Record<string, Route>): {
  base: string;
  hits: Map<string, number>;
  [Symbol.asyncDispose](): Promise<void>;
} {
  const hits = new Map<string, number>();
  const rawServers: Deno.Listener[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const r = routes[path];
    if (!r) return new Response("not found", { status: 404 });
    if (r instanceof Uint8Array) return new Response(r);
    if ("status" in r) return new Response("no", { status: r.status });
    if ("delayMs" in r) {
      await new Promise((ok) => setTimeout(ok, r.delayMs));
      return new Response(r.body);
    }
    // Announce the full length, send part of the body, then close the connection: a raw server
    // does that (Deno.serve would log the failure), reached through a redirect.
    const raw = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    rawServers.push(raw);
    (async () => {
      for await (const conn of raw) {
        await conn.read(new Uint8Array(4096));
        const head =
          `HTTP/1.1 200 OK\r\ncontent-length: ${r.body.length}\r\nconnection: close\r\n\r\n`;
        await conn.write(new TextEncoder().encode(head));
        await conn.write(r.body.subarray(0, r.truncateAt));
        conn.close();
      }
    })().catch(() => {});
    return Response.redirect(`http://127.0.0.1:${raw.addr.port}/`, 302);
  });
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    hits,
    async [Symbol.asyncDispose]() {
      for (const l of rawServers) l.close();
      await server.shutdown();
    },
  };
}

/**
 * An independent reference parser of plain IDX bytes, written plainly with a DataView: the
 * elements as numbers and the shape, or null if the bytes are not a consistent IDX file.
 */
export function refParseIdx(
  b: Uint8Array,
): { shape: number[]; values: number[]; code: number } | null {
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0) return null;
  const sizes: Record<number, number> = { 8: 1, 9: 1, 11: 2, 12: 4, 13: 4, 14: 8 };
  const code = b[2];
  if (!(code in sizes)) return null;
  const nd = b[3];
  if (b.length < 4 + 4 * nd) return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const shape: number[] = [];
  let n = 1;
  for (let i = 0; i < nd; i++) {
    shape.push(dv.getUint32(4 + 4 * i, false));
    n *= shape[i];
  }
  const off = 4 + 4 * nd;
  if (b.length !== off + n * sizes[code]) return null;
  const values: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = off + i * sizes[code];
    values.push(
      code === 8
        ? dv.getUint8(p)
        : code === 9
        ? dv.getInt8(p)
        : code === 11
        ? dv.getInt16(p, false)
        : code === 12
        ? dv.getInt32(p, false)
        : code === 13
        ? dv.getFloat32(p, false)
        : dv.getFloat64(p, false),
    );
  }
  return { shape, values, code };
}

/** A ZIP archive of stored entries (for EMNIST-like fixtures). */
export function zipStored(entries: readonly { name: string; data: Uint8Array }[]): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const crc = crc32(e.data) >>> 0;
    const lh = new Uint8Array(30 + name.length);
    const lv = new DataView(lh.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, e.data.length, true);
    lv.setUint32(22, e.data.length, true);
    lv.setUint16(26, name.length, true);
    lh.set(name, 30);
    const ch = new Uint8Array(46 + name.length);
    const cv = new DataView(ch.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, e.data.length, true);
    cv.setUint32(24, e.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    ch.set(name, 46);
    locals.push(lh, e.data);
    central.push(ch);
    offset += lh.length + e.data.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const parts = [...locals, ...central, eocd];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Asserts that `p` rejects with a `value` WgradError whose message contains every fragment. */
export async function rejectsWith(
  p: Promise<unknown>,
  ...fragments: string[]
): Promise<WgradError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WgradError, `expected a WgradError, got ${e}`);
    for (const f of fragments) {
      assert.ok(e.message.includes(f), `message lacks "${f}":\n${e.message}`);
    }
    return e;
  }
  throw new assert.AssertionError({ message: `expected a rejection with ${fragments.join(", ")}` });
}

/** Asserts that `fn` throws a WgradError whose message contains every fragment. */
export function throwsWith(fn: () => unknown, ...fragments: string[]): WgradError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof WgradError, `expected a WgradError, got ${e}`);
    for (const f of fragments) {
      assert.ok(e.message.includes(f), `message lacks "${f}":\n${e.message}`);
    }
    return e;
  }
  throw new assert.AssertionError({ message: `expected a throw with ${fragments.join(", ")}` });
}

/** Runs `fn` with `console.log` captured; returns the lines and `fn`'s result. */
export async function captureLog<T>(fn: () => Promise<T>): Promise<{ lines: string[]; value: T }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    return { lines, value: await fn() };
  } finally {
    console.log = orig;
  }
}

/** A seeded generator for test inputs (the engine's Philox). */
export class TestRng {
  readonly #p: Philox;
  constructor(seed: number) {
    this.#p = new Philox(seed, 0x7e57);
  }
  /** A uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#p.nextUnit() * (hi - lo + 1));
  }
  /** A float in [0, 1). */
  unit(): number {
    return this.#p.nextUnit();
  }
  /** Random bytes. */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.#p.nextU32() & 0xff;
    return out;
  }
  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
}
