/**
 * The gzip, tar, PNG and ZIP readers against fixtures from independent writers (Python's tarfile,
 * zipfile and a plain PNG encoder), their own writers' round trips, and damaged inputs.
 */
import { gzipSync } from "node:zlib";
import { datasets, WgradError } from "../mod.ts";
import { gzipHeaderBytes, parseGzipHeader } from "../datasets/gzip.ts";
import { PNG_CASES, TAR_FILES, TAR_GZ, ZIP } from "./datasets_fixtures.ts";
import { assert, b64, rejectsWith, tempDir, TestRng } from "./datasets_util.ts";

const { gunzip, gunzipChunks, gzip, readTar, encodeTar, decodePngGray, encodePng } = datasets;

async function tarEntries(
  bytes: Uint8Array,
  name = "t.tar",
  select?: (p: string) => boolean,
): Promise<datasets.TarEntry[]> {
  const out: datasets.TarEntry[] = [];
  const src = bytes[0] === 0x1f
    ? gunzipChunks(bytes, name)
    : new Blob([bytes as Uint8Array<ArrayBuffer>]).stream();
  for await (const e of readTar(src, name, { select })) out.push(e);
  return out;
}

Deno.test("gzip: streamed decompression, header fields, and clear errors", async () => {
  const data = new TextEncoder().encode("wgrad ".repeat(10000));
  const gz = gzipSync(data, { level: 9 }); // an independent compressor
  assert.deepEqual(await gunzip(gz, "a.gz"), data);
  const h = parseGzipHeader(gz, "a.gz")!;
  assert.equal(h.headerBytes, 10);
  // A header with a file name, built and parsed back.
  const named = gzipHeaderBytes({
    mtime: 1504176606,
    fileName: "train-images-idx3-ubyte",
    xfl: 0,
    os: 3,
  });
  assert.equal(named.length, 10 + 24);
  assert.deepEqual(parseGzipHeader(named, "n"), {
    headerBytes: 34,
    mtime: 1504176606,
    xfl: 0,
    os: 3,
    fileName: "train-images-idx3-ubyte",
  });
  assert.equal(parseGzipHeader(named.subarray(0, 20), "n"), null); // needs more bytes
  await rejectsWith(gunzip(new Uint8Array(0), "empty.gz"), "empty.gz: empty file");
  await rejectsWith(gunzip(Uint8Array.of(1, 2, 3), "x.gz"), "x.gz: not a gzip file");
  await rejectsWith(gunzip(gz.subarray(0, 6), "h.gz"), "h.gz: truncated gzip header");
  const bad = gz.slice();
  bad[bad.length - 8] ^= 0xff;
  await rejectsWith(gunzip(bad, "crc.gz"), "crc.gz: corrupt gzip stream", "CRC-32");
  // The length trailer (ISIZE) is checked by the platform too.
  const isize = gz.slice();
  isize[isize.length - 1] ^= 0x01;
  await rejectsWith(gunzip(isize, "isize.gz"), "isize.gz: corrupt gzip stream");
  const two = Uint8Array.of(...gzipSync(data.subarray(0, 10)), ...gzipSync(data.subarray(0, 10)));
  await rejectsWith(
    gunzip(two, "two.gz"),
    "two.gz: corrupt gzip stream",
    "concatenated gzip members",
  );
  // Our own compressor round-trips.
  assert.deepEqual(await gunzip(await gzip(data), "b.gz"), data);
  // Errors of the source stream itself pass through unchanged.
  const failing = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(gz.subarray(0, 100));
      c.error(new Deno.errors.Interrupted("disk gone"));
    },
  });
  await assert.rejects(
    gunzip(failing, "s.gz"),
    (e: unknown) => e instanceof Deno.errors.Interrupted,
  );
});

Deno.test("tar: ustar, GNU and pax archives from Python's tarfile read back exactly", async () => {
  for (const [format, archive] of Object.entries(TAR_GZ)) {
    const entries = await tarEntries(b64(archive), `${format}.tar.gz`);
    const files = entries.filter((e) => e.type === "file");
    const expected = Object.entries(TAR_FILES).filter(([p]) =>
      format !== "ustar" ||
      (p.split("/").pop()!.length <= 100 && ![...p].some((ch) => ch.charCodeAt(0) > 127))
    );
    assert.deepEqual(files.map((e) => e.path).sort(), expected.map(([p]) => p).sort(), format);
    for (const [p, data] of expected) {
      const e = files.find((f) => f.path === p)!;
      assert.deepEqual(e.data, b64(data), `${format}: ${p}`);
      assert.equal(e.size, b64(data).length);
      assert.equal(e.mtime, 1500000000);
    }
    assert.ok(entries.some((e) => e.type === "directory" && e.path.replace(/\/$/, "") === "top"));
    assert.ok(entries.some((e) => e.type === "symlink" && e.path === "top/link"));
  }
  // Damage to the gzip trailer is found even though the tar end marker comes before it.
  const damaged = b64(TAR_GZ.gnu);
  damaged[damaged.length - 7] ^= 1;
  await rejectsWith(tarEntries(damaged, "d.tar.gz"), "d.tar.gz: corrupt gzip stream");
  // Selecting skips the data of the others.
  const some = await tarEntries(b64(TAR_GZ.pax), "p", (p) => p.endsWith("a.txt"));
  assert.deepEqual(some.filter((e) => e.data.length).map((e) => e.path), ["top/a.txt"]);
});

Deno.test("tar: the writer round-trips; damage is reported with the archive's name", async () => {
  const r = new TestRng(3);
  const input: datasets.TarInput[] = [
    { path: "d", type: "directory" },
    { path: "d/small", data: r.bytes(3) },
    { path: "d/" + "x".repeat(150), data: r.bytes(1024) },
    { path: "d/zero", data: new Uint8Array(0) },
  ];
  const tar = encodeTar(input);
  const back = await tarEntries(tar);
  assert.deepEqual(back.map((e) => e.path), ["d/", "d/small", "d/" + "x".repeat(150), "d/zero"]);
  assert.deepEqual(back[2].data, input[2].data);
  // A flipped header byte fails the checksum.
  const bad = tar.slice();
  bad[512 + 3] ^= 1;
  await rejectsWith(
    tarEntries(bad, "bad.tar"),
    "bad.tar: corrupt tar header at byte 512: checksum mismatch",
  );
  // Cut inside a file's data, and inside a header.
  await rejectsWith(
    tarEntries(tar.subarray(0, 512 * 2 + 2), "cut.tar"),
    "cut.tar: truncated archive",
    "d/small",
  );
  await rejectsWith(
    tarEntries(tar.subarray(0, 512 + 100), "cut2.tar"),
    "cut2.tar: truncated archive",
    "a header",
  );
  // An archive without its end marker is accepted (as GNU tar and Python do).
  assert.equal((await tarEntries(tar.subarray(0, tar.length - 1024))).length, 4);
  // A huge size field: refused by the entry limit, not allocated.
  const huge = encodeTar([{ path: "h", data: new Uint8Array(1) }]);
  huge.set(new TextEncoder().encode("77777777777"), 124);
  huge.fill(0x20, 148, 156);
  const sum = huge.subarray(0, 512).reduce((a, b) => a + b, 0);
  huge.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  const out: datasets.TarEntry[] = [];
  await assert.rejects(
    async () => {
      for await (
        const e of readTar(new Blob([huge]).stream(), "huge.tar", { maxEntryBytes: 1 << 20 })
      ) out.push(e);
    },
    (e: unknown) =>
      e instanceof WgradError && e.message.includes("huge.tar: h: entry of 8589934591 bytes"),
  );
});

Deno.test("PNG: every color type, bit depth and interlacing decodes to the expected gray levels", async () => {
  for (const c of PNG_CASES) {
    const img = await decodePngGray(b64(c.png), { name: c.name });
    assert.equal(img.width, c.width, c.name);
    assert.equal(img.height, c.height, c.name);
    assert.deepEqual(Array.from(img.data), c.gray, c.name);
  }
});

Deno.test("PNG: the encoder round-trips through the decoder with every filter", async () => {
  const r = new TestRng(11);
  for (const interlace of [false, true]) {
    for (const [ct, depth] of [[0, 8], [0, 4], [0, 16], [2, 8], [4, 8], [6, 16]] as const) {
      const ch = { 0: 1, 2: 3, 4: 2, 6: 4 }[ct];
      const w = r.int(1, 13), h = r.int(1, 13);
      const max = 2 ** depth - 1;
      const samples = Array.from({ length: w * h * ch }, () => r.int(0, max));
      const png = await encodePng({
        width: w,
        height: h,
        samples,
        colorType: ct,
        bitDepth: depth,
        interlace,
        filter: "cycle",
      });
      const img = await decodePngGray(png);
      const to8 = (v: number) => depth === 16 ? Math.floor((v * 255 + 32767) / 65535) : v;
      const luma = (a: number, b: number, c: number) =>
        (19595 * a + 38470 * b + 7471 * c + 0x8000) >>> 16;
      for (let i = 0; i < w * h; i++) {
        const s = samples.slice(i * ch, i * ch + ch);
        const want = ct === 0
          ? (depth < 8 ? Math.floor(s[0] * 255 / max) : to8(s[0]))
          : ct === 2
          ? luma(s[0], s[1], s[2])
          : ct === 4
          ? Math.round(s[0] * s[1] / 255)
          : Math.round(luma(to8(s[0]), to8(s[1]), to8(s[2])) * s[3] / 65535);
        assert.equal(
          img.data[i],
          want,
          `ct ${ct} depth ${depth} interlace ${interlace} pixel ${i}`,
        );
      }
    }
  }
});

Deno.test("PNG: damaged images are rejected with their name", async () => {
  const good = await encodePng({ width: 4, height: 3, samples: new Array(12).fill(100) });
  const idatAt = 8 + 25; // after the signature and IHDR
  const flip = (i: number) => {
    const b = good.slice();
    b[i] ^= 0x40;
    return b;
  };
  const cases: [Uint8Array, string][] = [
    [good.subarray(0, 7), "not a PNG file"],
    [flip(0), "not a PNG file"],
    [flip(20), "CRC mismatch in the IHDR chunk"],
    [flip(idatAt + 9), "CRC mismatch in the IDAT chunk"],
    [good.subarray(0, good.length - 14), "truncated file"],
    [new Uint8Array(0), "not a PNG file"],
  ];
  for (const [bytes, msg] of cases) {
    await rejectsWith(decodePngGray(bytes, { name: "img.png" }), "img.png: " + msg);
  }
  // Valid chunks with bad contents: an unknown filter type, a short zlib stream, a huge size.
  const rows = Uint8Array.of(7, 1, 2, 3, 4);
  const png = (ihdr: number[], idat: Uint8Array) => chunkedPng(ihdr, idat);
  await rejectsWith(
    decodePngGray(await png([0, 0, 0, 4, 0, 0, 0, 1, 8, 0, 0, 0, 0], await deflate(rows)), {
      name: "f.png",
    }),
    "f.png: unknown filter type 7 on row 0",
  );
  await rejectsWith(
    decodePngGray(
      await png(
        [0, 0, 0, 4, 0, 0, 0, 2, 8, 0, 0, 0, 0],
        await deflate(Uint8Array.of(0, 1, 2, 3, 4)),
      ),
      { name: "s.png" },
    ),
    "s.png: truncated image data: 5 of 10 bytes",
  );
  await rejectsWith(
    decodePngGray(await png([0, 1, 0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0], await deflate(rows)), {
      name: "h.png",
    }),
    "h.png: 65536×65536 pixels, more than",
  );
  await rejectsWith(
    decodePngGray(await png([0, 0, 0, 4, 0, 0, 0, 1, 3, 0, 0, 0, 0], await deflate(rows)), {
      name: "d.png",
    }),
    "d.png: unsupported color type 0 with bit depth 3",
  );
  const z = await deflate(Uint8Array.of(0, 1, 2, 3, 4));
  z[z.length - 1] ^= 1; // the Adler-32 checksum
  await rejectsWith(
    decodePngGray(await png([0, 0, 0, 4, 0, 0, 0, 1, 8, 0, 0, 0, 0], z), { name: "z.png" }),
    "z.png: corrupt image data",
  );
});

async function deflate(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const s = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** A PNG with the given IHDR bytes and IDAT data (valid chunk CRCs). */
async function chunkedPng(ihdr: number[], idat: Uint8Array): Promise<Uint8Array> {
  const { crc32 } = await import("node:zlib");
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
    return out;
  };
  const parts = [
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    chunk("IHDR", Uint8Array.from(ihdr)),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  return Uint8Array.from(parts.flatMap((p) => Array.from(p)));
}

Deno.test("ZIP: stored and deflated entries from Python's zipfile; CRC damage is caught", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/a.zip`;
  const zip = b64(ZIP);
  await Deno.writeFile(path, zip);
  const entries = await datasets.listZip(path);
  assert.deepEqual(entries.map((e) => [e.name, e.method]), [
    ["gzip/stored.bin", 0],
    ["gzip/deflated.txt", 8],
    ["gzip/empty", 8],
  ]);
  const read = async (p: string, e: datasets.ZipEntry) => {
    const parts: number[] = [];
    await datasets.extractZipEntry(p, e, (c) => void parts.push(...c));
    return Uint8Array.from(parts);
  };
  assert.deepEqual(
    await read(path, entries[0]),
    Uint8Array.from({ length: 1024 }, (_, i) => i % 256),
  );
  assert.equal(new TextDecoder().decode(await read(path, entries[1])), "deflate me ".repeat(300));
  assert.equal((await read(path, entries[2])).length, 0);
  // Damage inside the stored entry's data: the CRC-32 check fails at the end.
  const bad = zip.slice();
  bad[entries[0].localHeaderOffset + 30 + "gzip/stored.bin".length + 500] ^= 1;
  await Deno.writeFile(`${tmp.dir}/bad.zip`, bad);
  await rejectsWith(
    read(`${tmp.dir}/bad.zip`, entries[0]),
    "bad.zip (gzip/stored.bin): CRC-32 mismatch",
  );
  // Not a ZIP at all, and a cut archive.
  await Deno.writeFile(`${tmp.dir}/no.zip`, new Uint8Array(100));
  await rejectsWith(datasets.listZip(`${tmp.dir}/no.zip`), "no.zip: not a ZIP archive");
  await Deno.writeFile(`${tmp.dir}/cut.zip`, zip.subarray(0, zip.length - 30));
  await rejectsWith(datasets.listZip(`${tmp.dir}/cut.zip`), "cut.zip: not a ZIP archive");
});
