/**
 * Feeding the engine: seeded permutations, batches, normalisation, one-hot labels, train and
 * validation splits and statistics, each against a plain float64 computation.
 */
import { datasets, setSeed } from "../mod.ts";
import { assert, TestRng, throwsWith } from "./datasets_util.ts";

const { DataSplit, permutation, oneHot, normalizeBytes } = datasets;

/** A split of `n` random samples of `shape` with labels cycling through `classes`. */
function makeSplit(n: number, shape: number[], classes: number, seed = 1): datasets.DataSplit {
  const r = new TestRng(seed);
  const per = shape.reduce((a, b) => a * b, 1);
  const y = Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 3)) % classes);
  return new DataSplit(r.bytes(n * per), y, shape, classes, { name: "toy" });
}

Deno.test("feed: permutations are permutations, seeded, and uniform", () => {
  for (const n of [0, 1, 2, 7, 1000]) {
    const p = permutation(n, 42);
    assert.deepEqual(Array.from(p).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  }
  assert.deepEqual(permutation(100, 3), permutation(100, 3));
  assert.notDeepEqual(permutation(100, 3), permutation(100, 4));
  assert.notDeepEqual(permutation(100, 3, 0), permutation(100, 3, 1));
  // Where element 0 lands over 20,000 permutations of 10: each position ~2,000 times. A chi-square
  // with 9 degrees of freedom exceeds 27.9 with probability 0.001.
  const counts = new Array(10).fill(0);
  for (let s = 0; s < 20000; s++) counts[permutation(10, 7, s).indexOf(0)]++;
  const chi2 = counts.reduce((a, c) => a + (c - 2000) ** 2 / 2000, 0);
  assert.ok(chi2 < 27.9, `chi-square ${chi2.toFixed(1)} for ${counts}`);
  throwsWith(() => permutation(5, -1), "seed must be a non-negative safe integer");
});

Deno.test("feed: an epoch's batches visit every sample once, in the order of (seed, epoch)", () => {
  const s = makeSplit(103, [2, 3], 5);
  const b = s.batches({ batchSize: 10, seed: 9 });
  assert.equal(b.length, 11);
  const batches = [...b];
  assert.deepEqual(batches.map((x) => x.size), [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
  assert.deepEqual(batches[0].shape, [10, 2, 3]);
  const seen = batches.flatMap((x) => Array.from(x.indices)).sort((a, c) => a - c);
  assert.deepEqual(seen, Array.from({ length: 103 }, (_, i) => i));
  assert.deepEqual(Array.from(b.order), Array.from(permutation(103, 9, 0)));
  // Iterating again gives the same batches; another epoch another order.
  assert.deepEqual(
    [...b].map((x) => Array.from(x.indices)),
    batches.map((x) => Array.from(x.indices)),
  );
  assert.notDeepEqual(Array.from(s.batches({ seed: 9, epoch: 1 }).order), Array.from(b.order));
  // Without shuffling, in order; with dropRemainder, no short batch.
  const plain = [...s.batches({ batchSize: 50, shuffle: false, dropRemainder: true })];
  assert.equal(plain.length, 2);
  assert.deepEqual(Array.from(plain[1].indices), Array.from({ length: 50 }, (_, i) => 50 + i));
  // Values and labels are those of the chosen samples.
  const first = batches[0];
  for (let k = 0; k < first.size; k++) {
    const i = first.indices[k];
    assert.equal(first.y[k], s.y[i]);
    for (let j = 0; j < 6; j++) assert.equal(first.x[k * 6 + j], Math.fround(s.x[i * 6 + j] / 255));
  }
  // Unseeded batches follow the global seed.
  setSeed(123);
  const u1 = Array.from(s.batches().order);
  setSeed(123);
  assert.deepEqual(Array.from(s.batches().order), u1);
  throwsWith(() => s.batches({ batchSize: 0 }), "batchSize must be a positive integer");
});

Deno.test("feed: normalisation to [0, 1], [-1, 1], raw, and by mean and std per channel", () => {
  const bytes = Uint8Array.from({ length: 256 * 3 }, (_, i) => (i * 37) % 256);
  const close = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
  const unit = normalizeBytes(bytes);
  const sym = normalizeBytes(bytes, "symmetric");
  const raw = normalizeBytes(bytes, "none");
  const mean = [0.4914, 0.4822, 0.4465], std = [0.247, 0.243, 0.261];
  const ms = normalizeBytes(bytes, { mean, std }, 3);
  for (let i = 0; i < bytes.length; i++) {
    close(unit[i], bytes[i] / 255, "unit");
    close(sym[i], bytes[i] / 127.5 - 1, "symmetric");
    assert.equal(raw[i], bytes[i]);
    close(ms[i], (bytes[i] / 255 - mean[i % 3]) / std[i % 3], "mean/std");
  }
  assert.equal(Math.min(...unit), 0);
  assert.equal(Math.max(...unit), 1);
  throwsWith(
    () => normalizeBytes(bytes, { mean: [0, 0], std: 1 }, 3),
    "mean has 2 entries, the data has 3 channels",
  );
  throwsWith(() => normalizeBytes(bytes, { mean: 0, std: 0 }), "std must be positive");
  // A split's batch applies per-channel statistics to channels-last samples.
  const s = makeSplit(4, [2, 2, 3], 2);
  const x = s.batch([3], { normalize: { mean, std } }).x;
  for (let j = 0; j < 12; j++) close(x[j], (s.x[36 + j] / 255 - mean[j % 3]) / std[j % 3], "batch");
});

Deno.test("feed: one-hot labels", () => {
  assert.deepEqual(Array.from(oneHot([2, 0, 1], 3)), [0, 0, 1, 1, 0, 0, 0, 1, 0]);
  throwsWith(() => oneHot([3], 3), "label 3 at index 0 is outside [0, 3)");
  const s = makeSplit(10, [4], 4);
  const b = s.batch([1, 2, 3], { labels: "onehot" });
  assert.ok(b.y instanceof Float32Array);
  assert.equal(b.y.length, 12);
  for (let k = 0; k < 3; k++) assert.equal(b.y[k * 4 + s.y[k + 1]], 1);
  const [first] = s.batches({ batchSize: 4, labels: "onehot", seed: 1 });
  assert.equal(first.y.length, 16);
});

Deno.test("feed: validation splits — Keras's last fraction, seeded random, stratified", () => {
  const s = makeSplit(1000, [3], 10);
  const keras = s.validationSplit(0.1);
  assert.equal(keras.validation.length, 100);
  assert.equal(keras.train.length, 900);
  assert.deepEqual(keras.validation.y, s.y.subarray(900));
  assert.deepEqual(keras.validation.x, s.x.subarray(2700));
  const rnd = s.validationSplit(0.25, { shuffle: true, seed: 4 });
  assert.equal(rnd.validation.length, 250);
  assert.deepEqual(
    rnd.validation.y,
    s.validationSplit(0.25, { shuffle: true, seed: 4 }).validation.y,
  );
  // Every sample lands in exactly one part (samples are distinct 3-byte rows here with high odds;
  // compare multisets of rows).
  const rows = (d: datasets.DataSplit) =>
    Array.from({ length: d.length }, (_, i) => d.sample(i).join(","));
  assert.deepEqual([...rows(rnd.train), ...rows(rnd.validation)].sort(), rows(s).sort());
  // Stratified: each class's share is the same in both parts (100 per class here).
  const balanced = new DataSplit(s.x, Uint8Array.from({ length: 1000 }, (_, i) => i % 10), [3], 10);
  const strat = balanced.validationSplit(0.1, { stratify: true, seed: 1 });
  assert.deepEqual(strat.validation.classCounts(), new Array(10).fill(10));
  assert.deepEqual(strat.train.classCounts(), new Array(10).fill(90));
  // Uneven classes: the total is still n − floor(n · (1 − fraction)) (Keras's rounding: 300 of
  // 997 at 0.3, where floor(997 · 0.3) would be 299), each class within one of its share.
  const uneven = makeSplit(997, [1], 7).validationSplit(0.3, { stratify: true, seed: 2 });
  assert.equal(uneven.validation.length, 300);
  const all = makeSplit(997, [1], 7).classCounts();
  uneven.validation.classCounts().forEach((c, k) =>
    assert.ok(Math.abs(c - all[k] * 0.3) < 1, `class ${k}`)
  );
  throwsWith(() => s.validationSplit(1), "fraction must be in (0, 1)");
  throwsWith(() => makeSplit(3, [1], 2).validationSplit(0.9), "3 samples are not enough");
});

Deno.test("feed: statistics, selection, slicing, shuffling and checks", () => {
  const s = makeSplit(50, [4, 4, 3], 3);
  const st = s.stats();
  for (let c = 0; c < 3; c++) {
    let sum = 0, sq = 0, n = 0;
    for (let i = c; i < s.x.length; i += 3) {
      sum += s.x[i] / 255;
      n++;
    }
    const m = sum / n;
    for (let i = c; i < s.x.length; i += 3) sq += (s.x[i] / 255 - m) ** 2;
    assert.ok(Math.abs(st.mean[c] - m) < 1e-12 && Math.abs(st.std[c] - Math.sqrt(sq / n)) < 1e-12);
  }
  const sel = s.select([4, 2]);
  assert.deepEqual(sel.sample(0), s.sample(4));
  assert.equal(sel.label(1), s.label(2));
  const sl = s.slice(10, 20);
  assert.equal(sl.length, 10);
  assert.equal(sl.x.buffer, s.x.buffer); // a view
  assert.deepEqual(s.slice(-5).y, s.y.subarray(45));
  const sh = s.shuffle(3);
  assert.deepEqual(sh.classCounts(), s.classCounts());
  assert.deepEqual(sh.y, s.select(permutation(50, 3)).y);
  assert.deepEqual(
    Array.from(s.toFloat32()).slice(0, 5),
    Array.from(s.x.subarray(0, 5), (v) => Math.fround(v / 255)),
  );
  throwsWith(
    () => new DataSplit(new Uint8Array(5), new Uint8Array(2), [3], 2),
    "5 bytes of samples do not match 2 labels",
  );
  throwsWith(
    () => new DataSplit(new Uint8Array(2), Uint8Array.of(0, 4), [1], 4, { name: "n" }),
    "n: label 4 of sample 1 is out of range [0, 4)",
  );
  throwsWith(() => s.sample(50), "sample index 50 is outside [0, 50)");
});
