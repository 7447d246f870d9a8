/**
 * The library's own SHA-256 and CRC-32 (it imports no Node built-ins) against published test
 * vectors and against Node's crypto and zlib, over every length around the block boundaries and
 * in chunks of every size.
 */
import { createHash } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { crc32, Sha256, sha256Digest, sha256Hex } from "../datasets/checksum.ts";
import { assert, TestRng } from "./datasets_util.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("checksum: SHA-256 test vectors (FIPS 180-4 examples)", async () => {
  assert.equal(
    sha256Hex(enc("")),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    sha256Hex(enc("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    sha256Hex(enc("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
  const million = new Uint8Array(1_000_000).fill(0x61);
  assert.equal(
    sha256Hex(million),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
  assert.equal(
    await sha256Digest(million),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
  assert.equal(crc32(enc("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("checksum: SHA-256 and CRC-32 agree with Node's for all lengths and chunkings", () => {
  const r = new TestRng(17);
  const lengths = [...Array.from({ length: 200 }, (_, i) => i), 511, 512, 513, 4095, 4096, 70_001];
  for (const n of lengths) {
    const d = r.bytes(n);
    const want = createHash("sha256").update(d).digest("hex");
    assert.equal(sha256Hex(d), want, `sha256 of ${n} bytes`);
    const chunk = 1 + (n % 67);
    const h = new Sha256();
    for (let i = 0; i < n; i += chunk) h.update(d.subarray(i, i + chunk));
    assert.equal(h.hex(), want, `sha256 of ${n} bytes in chunks of ${chunk}`);
    assert.equal(crc32(d), zlibCrc32(d) >>> 0, `crc32 of ${n} bytes`);
    const cut = Math.floor(n / 3);
    assert.equal(
      crc32(d.subarray(cut), crc32(d.subarray(0, cut))),
      zlibCrc32(d) >>> 0,
      `crc32 continued at ${cut}`,
    );
  }
  assert.throws(() => {
    const h = new Sha256();
    h.digest();
    h.update(new Uint8Array(1));
  }, /after digest/);
});
