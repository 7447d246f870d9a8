/**
 * Fuzzing the IDX reader with seeded random and mutated files: plain bytes, gzip bytes, streams
 * in random chunks, and files on disk. For every case the reader must either throw a
 * `WgradError` naming the input, or return exactly what an independent reference parser reads
 * from the (decompressed) bytes; it must never hang, crash, allocate absurd sizes or return data
 * from an inconsistent file. Each case is bounded in time.
 *
 * A mutation inside the element data of a plain file is indistinguishable from valid data, so
 * "bad" here means structurally inconsistent; for gzip, the CRC-32 and length trailer make any
 * damage to the compressed bytes detectable (Node's zlib, an independent inflater, is the oracle).
 */
import { gunzipSync } from "node:zlib";
import { datasets, WgradError } from "../mod.ts";
import { assert, refParseIdx, tempDir, TestRng } from "./datasets_util.ts";

const { encodeIdx, readIdx, readIdxFile, gzip } = datasets;

const CASES_PLAIN = 3000;
const CASES_GZIP = 600;
const CASES_FILES = 200;
const CASE_LIMIT_MS = 1000;

/** A small valid IDX file of a random type and shape. */
function validFile(r: TestRng): Uint8Array {
  const codes = ["u8", "i8", "i16", "i32", "f32", "f64"] as const;
  const dtype = r.pick(codes);
  const shape = Array.from({ length: r.int(0, 4) }, () => r.int(0, 6));
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = r.bytes(n * 8);
  const buf = bytes.buffer;
  const data = dtype === "u8"
    ? new Uint8Array(buf, 0, n)
    : dtype === "i8"
    ? new Int8Array(buf, 0, n)
    : dtype === "i16"
    ? new Int16Array(buf, 0, n)
    : dtype === "i32"
    ? new Int32Array(buf, 0, n)
    : dtype === "f32"
    ? new Float32Array(buf, 0, n)
    : new Float64Array(buf, 0, n);
  return encodeIdx({ data, shape });
}

/** One mutation: bit flips, truncation, extension, header rewrites, huge dimensions. */
function mutate(r: TestRng, src: Uint8Array): Uint8Array {
  let b = src.slice();
  const kind = r.int(0, 7);
  const headerEnd = Math.min(b.length, 4 + 4 * (b[3] ?? 0));
  switch (kind) {
    case 0: // flip bits anywhere
      for (let k = r.int(1, 3); k > 0 && b.length; k--) {
        b[r.int(0, b.length - 1)] ^= 1 << r.int(0, 7);
      }
      break;
    case 1: // flip bits in the header
      for (let k = r.int(1, 2); k > 0 && headerEnd; k--) {
        b[r.int(0, headerEnd - 1)] ^= 1 << r.int(0, 7);
      }
      break;
    case 2: // truncate
      b = b.subarray(0, r.int(0, Math.max(0, b.length - 1)));
      break;
    case 3: // extend
      b = Uint8Array.of(...b, ...r.bytes(r.int(1, 9)));
      break;
    case 4: // a random type code
      if (b.length > 2) b[2] = r.int(0, 255);
      break;
    case 5: // a random number of dimensions
      if (b.length > 3) b[3] = r.int(0, 255);
      break;
    case 6: { // a huge dimension
      if (headerEnd >= 8) {
        const i = r.int(0, (headerEnd - 4) / 4 - 1);
        new DataView(b.buffer, b.byteOffset).setUint32(
          4 + 4 * i,
          r.pick([0xffffffff, 0x80000000, 1 << 20, 65536 + r.int(0, 99)]),
        );
      }
      break;
    }
    default: // several at once
      return mutate(r, mutate(r, b));
  }
  return b;
}

/** Runs one case with a deadline; returns the result or the error. */
async function run<T>(what: string, fn: () => Promise<T>): Promise<T | WgradError> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, no) => {
    timer = setTimeout(
      () => no(new Error(`${what}: took longer than ${CASE_LIMIT_MS} ms`)),
      CASE_LIMIT_MS,
    );
  });
  try {
    return await Promise.race([fn(), deadline]);
  } catch (e) {
    if (e instanceof WgradError) {
      assert.ok(e.message.startsWith(what + ":"), `error does not name ${what}: ${e.message}`);
      return e;
    }
    throw new Error(`${what}: not a WgradError (${e}) after ${performance.now() - t0} ms`);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that a result agrees with the reference reading of `plain` (null: must be an error). */
function agree(what: string, got: datasets.IdxArray | WgradError, plain: Uint8Array | null): void {
  const ref = plain ? refParseIdx(plain) : null;
  if (got instanceof WgradError) {
    assert.equal(ref, null, `${what}: rejected a consistent file: ${got.message}`);
    return;
  }
  assert.ok(ref, `${what}: returned data from an inconsistent file (shape ${got.shape})`);
  assert.deepEqual(got.shape, ref.shape, what);
  assert.equal(got.data.length, ref.values.length, what);
  for (let i = 0; i < ref.values.length; i++) {
    if (!Object.is(got.data[i], ref.values[i])) {
      assert.fail(`${what}: element ${i}: ${got.data[i]} ≠ ${ref.values[i]}`);
    }
  }
}

function chunked(data: Uint8Array, r: TestRng): ReadableStream<Uint8Array> {
  let o = 0;
  return new ReadableStream({
    pull(ctl) {
      if (o >= data.length) return ctl.close();
      const n = r.int(1, 40);
      ctl.enqueue(data.slice(o, o + n));
      o += n;
    },
  });
}

Deno.test(`IDX fuzz: ${CASES_PLAIN} random and mutated plain files, as bytes and as streams`, async () => {
  const r = new TestRng(20240601);
  let rejected = 0;
  for (let c = 0; c < CASES_PLAIN; c++) {
    const bytes = c % 10 === 0
      ? r.bytes(r.int(0, 40))
      : c % 10 === 1
      ? validFile(r)
      : mutate(r, validFile(r));
    const name = `case${c}`;
    const a = await run(name, () => readIdx(bytes, { name }));
    agree(name, a, bytes);
    const b = await run(name, () => readIdx(chunked(bytes, r), { name }));
    agree(`${name} (stream)`, b, bytes);
    if (a instanceof WgradError) rejected++;
  }
  // The mix must exercise both outcomes.
  assert.ok(rejected > CASES_PLAIN / 2 && rejected < CASES_PLAIN, `${rejected} rejected`);
});

Deno.test(`IDX fuzz: ${CASES_GZIP} mutated gzip files (zlib as the oracle)`, async () => {
  const r = new TestRng(7);
  let rejected = 0;
  for (let c = 0; c < CASES_GZIP; c++) {
    const plain = c % 3 === 0 ? validFile(r) : mutate(r, validFile(r));
    let gz: Uint8Array = await gzip(plain);
    if (c % 2 === 0) gz = mutate(r, gz); // damage the compressed bytes
    let oracle: Uint8Array | null = null;
    try {
      oracle = gunzipSync(gz);
    } catch {
      oracle = null;
    }
    const name = `gz${c}`;
    const a = await run(name, () => readIdx(gz, { name }));
    agree(name, a, oracle);
    const b = await run(name, () => readIdx(chunked(gz, r), { name }));
    agree(`${name} (stream)`, b, oracle);
    if (a instanceof WgradError) rejected++;
  }
  assert.ok(rejected > CASES_GZIP / 3, `${rejected} rejected`);
});

Deno.test(`IDX fuzz: ${CASES_FILES} mutated files on disk, plain and gzip`, async () => {
  await using tmp = await tempDir();
  const r = new TestRng(99);
  for (let c = 0; c < CASES_FILES; c++) {
    const plain = mutate(r, validFile(r));
    const gz = c % 2 ? mutate(r, await gzip(validFile(r))) : null;
    const bytes = gz ?? plain;
    const path = `${tmp.dir}/f${c}${gz ? ".gz" : ""}`;
    await Deno.writeFile(path, bytes);
    let oracle: Uint8Array | null = plain;
    if (gz) {
      try {
        oracle = gunzipSync(gz);
      } catch {
        oracle = null;
      }
    }
    agree(path, await run(path, () => readIdxFile(path)), oracle);
  }
});
