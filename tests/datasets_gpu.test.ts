/**
 * Uploading a split to the GPU as bytes: chunks of whole samples within a binding, padded to
 * four bytes, labels as i32; read back and compared byte for byte.
 */
import { datasets, memoryInfo } from "../mod.ts";
import { currentRuntime, ready } from "../src/gpu/runtime.ts";
import { assert, TestRng } from "./datasets_util.ts";

const { DataSplit, toGpu } = datasets;

Deno.test("gpu: a split uploads in chunks of whole samples and reads back exactly", async () => {
  const r = new TestRng(2);
  for (
    const [n, shape, maxChunk] of [[50, [28, 28], 784 * 7 + 3], [33, [3, 5], 64], [
      10,
      [4],
      undefined,
    ]] as const
  ) {
    const per = shape.reduce((a, b) => a * b, 1);
    const split = new DataSplit(
      r.bytes(n * per),
      Uint8Array.from({ length: n }, (_, i) => i % 10),
      shape,
      10,
      {
        name: `toy${n}`,
      },
    );
    const g = await toGpu(split, { maxChunkBytes: maxChunk }).ready();
    const perChunk = maxChunk ? Math.floor(Math.floor(maxChunk / 4) * 4 / per) : n;
    assert.equal(g.perChunk, perChunk);
    assert.equal(g.chunks.length, Math.ceil(n / perChunk));
    assert.equal(g.sampleBytes, per);
    assert.equal(g.count, n);
    const rt = currentRuntime()!;
    for (let k = 0; k < g.chunks.length; k++) {
      const bytes = new Uint8Array(await rt.read(g.chunks[k], `chunk ${k}`));
      const count = Math.min(perChunk, n - k * perChunk);
      assert.equal(bytes.length, Math.ceil(count * per / 4) * 4, `chunk ${k} length`);
      assert.deepEqual(
        bytes.subarray(0, count * per),
        split.x.subarray(k * perChunk * per, (k * perChunk + count) * per),
      );
      assert.ok(bytes.subarray(count * per).every((b) => b === 0), "padding is zero");
    }
    // Sample i is where locate() says.
    for (const i of [0, n - 1, Math.floor(n / 2)]) {
      const { chunk, byteOffset } = g.locate(i);
      const bytes = new Uint8Array(await rt.read(g.chunks[chunk], "chunk"));
      assert.deepEqual(bytes.subarray(byteOffset, byteOffset + per), split.sample(i));
    }
    const labels = new Int32Array(await rt.read(g.labels!, "labels"));
    assert.deepEqual(Array.from(labels), Array.from(split.y));
    g.dispose();
  }
});

Deno.test("gpu: dispose frees the regions; too-large samples are a limit error", async () => {
  await ready();
  const split = new DataSplit(new Uint8Array(4096 * 20), new Uint8Array(20), [64, 64], 1, {
    name: "big",
  });
  const before = memoryInfo().buffersInUse;
  const g = await split.toGpu().ready();
  assert.ok(memoryInfo().buffersInUse >= before + 2);
  g.dispose();
  assert.equal(memoryInfo().buffersInUse, before);
  assert.throws(() => g.chunks, /after dispose/);
  assert.throws(
    () => toGpu(split, { maxChunkBytes: 1000 }),
    /one sample \[64, 64\] is 4096 bytes, more than a chunk may hold \(1000 bytes\)/,
  );
});
