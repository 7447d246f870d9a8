/**
 * The IDX reader and writer: exact layout (hand-written bytes), round trips of every element type
 * through bytes, streams and files (plain and gzip), and each kind of malformed file rejected with
 * a message that names the file and says what is wrong.
 */
import { datasets } from "../mod.ts";
import { assert, refParseIdx, rejectsWith, tempDir, TestRng, throwsWith } from "./datasets_util.ts";

const { encodeIdx, parseIdx, readIdx, readIdxFile, writeIdxFile, gzip, IdxDecoder } = datasets;

/** A stream of `data` in chunks of `size` bytes (1 exercises every boundary). */
function chunked(data: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let o = 0;
  return new ReadableStream({
    pull(ctl) {
      if (o >= data.length) return ctl.close();
      ctl.enqueue(data.slice(o, o + size));
      o += size;
    },
  });
}

Deno.test("IDX: a hand-written u8 file and an i16 file decode to the letter", () => {
  // 2×3 u8: magic 00 00, type 08, 2 dims; sizes 2 and 3 big-endian; then 6 bytes.
  const u8 = new Uint8Array([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 251, 252]);
  const a = parseIdx(u8, "hand.idx");
  assert.equal(a.dtype, "u8");
  assert.deepEqual(a.shape, [2, 3]);
  assert.deepEqual(Array.from(a.data), [1, 2, 3, 250, 251, 252]);
  // i16 [2]: 0x0102 = 258 and 0xFFFE = -2, big-endian.
  const i16 = new Uint8Array([0, 0, 0x0b, 1, 0, 0, 0, 2, 0x01, 0x02, 0xff, 0xfe]);
  const b = parseIdx(i16, "hand16.idx");
  assert.ok(b.data instanceof Int16Array);
  assert.deepEqual(Array.from(b.data), [258, -2]);
  // The writer produces exactly these bytes.
  assert.deepEqual(encodeIdx({ data: new Int16Array([258, -2]), shape: [2] }), i16);
  assert.deepEqual(
    encodeIdx({ data: new Uint8Array([1, 2, 3, 250, 251, 252]), shape: [2, 3] }),
    u8,
  );
  // f64 1.5 is 3F F8 00 … big-endian; i32 -1 is FF FF FF FF.
  const f64 = encodeIdx({ data: new Float64Array([1.5]), shape: [1] });
  assert.deepEqual(Array.from(f64.subarray(8)), [0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
  assert.equal(f64[2], 0x0e);
  const i32 = encodeIdx({ data: new Int32Array([-1, 0x01020304]), shape: [2] });
  assert.deepEqual(Array.from(i32.subarray(8)), [255, 255, 255, 255, 1, 2, 3, 4]);
});

const ARRAYS = {
  u8: (n: number, r: TestRng) => Uint8Array.from({ length: n }, () => r.int(0, 255)),
  i8: (n: number, r: TestRng) => Int8Array.from({ length: n }, () => r.int(-128, 127)),
  i16: (n: number, r: TestRng) => Int16Array.from({ length: n }, () => r.int(-32768, 32767)),
  i32: (n: number, r: TestRng) =>
    Int32Array.from({ length: n }, () => r.int(-(2 ** 31), 2 ** 31 - 1)),
  f32: (n: number, r: TestRng) =>
    Float32Array.from(
      { length: n },
      (_, i) => i === 0 ? NaN : i === 1 ? -Infinity : (r.unit() - 0.5) * 1e6,
    ),
  f64: (n: number, r: TestRng) =>
    Float64Array.from({ length: n }, (_, i) => i === 0 ? -0 : (r.unit() - 0.5) * 1e300),
};

Deno.test("IDX: every element type round-trips through bytes, gzip, 1-byte streams and files", async () => {
  await using tmp = await tempDir();
  const r = new TestRng(1);
  const shapes = [[7], [1, 33], [3, 0, 5], [2, 3, 4, 5], [127, 3], []];
  for (const [dtype, make] of Object.entries(ARRAYS)) {
    for (const shape of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = make(n, r);
      const bytes = encodeIdx({ data, shape });
      const ref = refParseIdx(bytes)!;
      assert.ok(ref, `reference rejects ${dtype} ${shape}`);
      const check = (got: datasets.IdxArray, how: string) => {
        assert.equal(got.dtype, dtype, how);
        assert.deepEqual(got.shape, shape, how);
        assert.equal(got.data.constructor, data.constructor, how);
        assert.deepEqual(Array.from(got.data), Array.from(data), `${dtype} ${shape} via ${how}`);
        assert.deepEqual(Array.from(got.data), ref.values, `${dtype} ${shape} vs reference`);
      };
      check(parseIdx(bytes), "parseIdx");
      const gz = await gzip(bytes);
      check(await readIdx(gz), "readIdx(gzip bytes)");
      check(await readIdx(chunked(bytes, 1)), "plain stream, 1-byte chunks");
      check(await readIdx(chunked(gz, 1)), "gzip stream, 1-byte chunks");
      const plain = `${tmp.dir}/a-${dtype}.idx`, packed = `${tmp.dir}/a-${dtype}.idx.gz`;
      await writeIdxFile(plain, { data, shape });
      await writeIdxFile(packed, { data, shape });
      check(await readIdxFile(plain), "plain file");
      check(await readIdxFile(packed), "gzip file");
    }
  }
  // The writer leaves no temporary files behind.
  for await (const e of Deno.readDir(tmp.dir)) assert.ok(!e.name.includes(".tmp"), e.name);
});

Deno.test("IDX: malformed plain files are rejected with the file's name and what is wrong", async () => {
  await using tmp = await tempDir();
  const good = encodeIdx({ data: new Uint8Array(60).fill(9), shape: [3, 4, 5] });
  const cases: [string, Uint8Array, string[]][] = [
    ["magic.idx", Uint8Array.of(1, ...good.subarray(1)), [
      "wrong magic number 0x01 0x00 0x08 0x03",
    ]],
    ["type.idx", Uint8Array.of(0, 0, 0x0a, ...good.subarray(3)), ["unknown IDX type code 0x0A"]],
    ["header.idx", good.subarray(0, 9), [
      "truncated header: 3 dimensions need 16 header bytes, file has 9",
    ]],
    ["short.idx", good.subarray(0, 3), ["truncated header: 3 bytes"]],
    ["empty.idx", new Uint8Array(0), ["empty file"]],
    ["payload.idx", good.subarray(0, good.length - 1), [
      "truncated payload: header says 3×4×5 = 60 bytes, file has 59",
    ]],
    ["trailing.idx", Uint8Array.of(...good, 0, 0), [
      "sizes do not match the byte length",
      "3×4×5 = 60 bytes",
    ]],
    ["i32.idx", Uint8Array.of(0, 0, 0x0c, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0), [
      "truncated payload: header says 3 i32 (4 bytes each) = 12 bytes, file has 7",
    ]],
    ["gz.idx", await gzip(good), ["this is gzip data"]],
  ];
  for (const [name, bytes, msgs] of cases) {
    const path = `${tmp.dir}/${name}`;
    await Deno.writeFile(path, bytes);
    if (name !== "gz.idx") await rejectsWith(readIdxFile(path), path + ":", ...msgs);
    throwsWith(() => parseIdx(bytes, name), name + ":", ...msgs);
    if (name !== "gz.idx" && name !== "trailing.idx") {
      // A stream has no length to check against up front: the same errors come at its end.
      await rejectsWith(readIdx(chunked(bytes, 5), { name }), name + ":", ...msgs);
    }
  }
  await rejectsWith(
    readIdx(chunked(Uint8Array.of(...good, 7), 5), { name: "s" }),
    "s:",
    "sizes do not match",
  );
});

Deno.test("IDX: gzip problems are caught: corrupt stream, truncation, trailing data, lying sizes", async () => {
  await using tmp = await tempDir();
  const good = encodeIdx({ data: new Uint8Array(600).map((_, i) => i * 7), shape: [6, 10, 10] });
  const gz = await gzip(good);
  const crc = gz.slice();
  crc[crc.length - 6] ^= 1; // a bit of the CRC-32
  const body = gz.slice();
  body[20] ^= 0x10; // a bit of the deflate data
  const cut = gz.subarray(0, gz.length - 5);
  const trailing = Uint8Array.of(...gz, 1, 2, 3);
  // A valid gzip stream of a truncated IDX: its header claims more than the recorded size.
  const lying = await gzip(good.subarray(0, 100));
  const cases: [string, Uint8Array, string][] = [
    ["crc.gz", crc, "corrupt gzip stream"],
    ["body.gz", body, ""], // the size check or the CRC-32 check, whichever sees it first
    ["cut.gz", cut, ""],
    ["trailing.gz", trailing, ""],
    ["lying.gz", lying, "the gzip trailer records 100 uncompressed bytes"],
    [
      "notgz.gz",
      Uint8Array.of(0x1f, 0x8b, 9, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
      "unknown compression method 9",
    ],
  ];
  for (const [name, bytes, msg] of cases) {
    const path = `${tmp.dir}/${name}`;
    await Deno.writeFile(path, bytes);
    await rejectsWith(readIdxFile(path), path + ":", msg);
    await rejectsWith(readIdx(bytes, { name }), name + ":", msg);
    await rejectsWith(readIdx(chunked(bytes, 7), { name }), name + ":");
  }
  // Through a stream the lying header is only found out at the end of the data.
  await rejectsWith(
    readIdx(chunked(lying, 7), { name: "s.gz" }),
    "s.gz: truncated payload",
    "file has 84",
  );
});

Deno.test("IDX: absurd sizes are refused before any large allocation, quickly", async () => {
  await using tmp = await tempDir();
  const header = (dims: number[], code = 0x08) => {
    const b = new Uint8Array(4 + 4 * dims.length + 16);
    const dv = new DataView(b.buffer);
    b[2] = code;
    b[3] = dims.length;
    dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d));
    return b;
  };
  const huge = header([0xffffffff, 0xffffffff, 0xffffffff], 0x0e);
  const big = header([1 << 30, 1 << 30]);
  const t0 = performance.now();
  const path = `${tmp.dir}/huge.idx`;
  await Deno.writeFile(path, huge);
  await rejectsWith(readIdxFile(path), path, "truncated payload", "more than 2^53");
  throwsWith(
    () => parseIdx(big, "big"),
    "big: truncated payload: header says 1073741824×1073741824",
  );
  // A stream with no known length: refused by the payload limit…
  await rejectsWith(
    readIdx(chunked(big, 64), { name: "s" }),
    "s: header says",
    "more than the 2147483648-byte limit",
  );
  // …and a claim under the limit grows the buffer only as bytes arrive.
  const claim = header([1 << 30]);
  await rejectsWith(
    readIdx(chunked(claim, 64), { name: "c" }),
    "c: truncated payload",
    "file has 16",
  );
  // gzip: a claim beyond what the compressed size could hold (1032:1) or beyond ISIZE.
  const gz = await gzip(big);
  const gzPath = `${tmp.dir}/big.gz`;
  await Deno.writeFile(gzPath, gz);
  await rejectsWith(readIdxFile(gzPath), gzPath, "sizes do not match the byte length");
  await rejectsWith(readIdx(gz, { name: "g" }), "g: sizes do not match the byte length");
  await rejectsWith(readIdx(chunked(gz, 9), { name: "g" }), "g: header says", "limit");
  // A small limit by option.
  const ok = encodeIdx({ data: new Uint8Array(100), shape: [100] });
  throwsWith(
    () => parseIdx(ok, "lim", { maxBytes: 99 }),
    "lim: header says 100 = 100 bytes, more than the 99-byte limit",
  );
  assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
});

Deno.test("IDX: the decoder checks the header against every length hint", () => {
  const bytes = encodeIdx({ data: new Uint8Array(10), shape: [10] });
  const d1 = new IdxDecoder("x", { recordedBytes: 18, exactBytes: 18, atMostBytes: 18 });
  d1.push(bytes);
  assert.equal(d1.finish().data.length, 10);
  const d2 = new IdxDecoder("y", { recordedBytes: 17 });
  throwsWith(() => d2.push(bytes), "y: sizes do not match", "records 17");
  const d3 = new IdxDecoder("z", { atMostBytes: 17, atMostReason: "what 1 byte can hold" });
  throwsWith(() => d3.push(bytes), "z: sizes do not match", "more than what 1 byte can hold");
});

Deno.test("IDX: encodeIdx rejects inconsistent input", () => {
  throwsWith(
    () => encodeIdx({ data: new Uint8Array(5), shape: [2, 3] }),
    "holds 6 elements, data has 5",
  );
  throwsWith(() => encodeIdx({ data: new Uint8Array(1), shape: [1.5] }), "not an integer");
  throwsWith(
    () => encodeIdx({ data: new Uint16Array(1) as unknown as Uint8Array<ArrayBuffer>, shape: [1] }),
    "must be a Uint8",
  );
});
