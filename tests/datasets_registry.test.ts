/**
 * The registry's loaders on small fixtures made here (IDX sets, EMNIST's zip, CIFAR-10's tar.gz,
 * notMNIST's PNG folders), the checks that tie image and label files together, and the bundled
 * Fashion-MNIST sample.
 */
import { gzipSync } from "node:zlib";
import { datasets } from "../mod.ts";
import { assert, captureLog, rejectsWith, tempDir, TestRng, zipStored } from "./datasets_util.ts";

const { encodeIdx, writeIdxFile, encodePng, encodeTar, gzip } = datasets;
const r = new TestRng(8);

/** Writes the four files of an MNIST-style set (`n` training, `m` test images) into `dir`. */
async function idxSet(
  dir: string,
  n: number,
  m: number,
  opts: {
    prefix?: (s: "train" | "t10k") => string;
    classes?: number;
    firstLabel?: number;
    plain?: boolean;
  } = {},
): Promise<{ train: Uint8Array; test: Uint8Array; ytrain: Uint8Array; ytest: Uint8Array }> {
  const classes = opts.classes ?? 10, first = opts.firstLabel ?? 0;
  const out = {
    train: r.bytes(n * 784),
    test: r.bytes(m * 784),
    ytrain: Uint8Array.from({ length: n }, (_, i) => first + i % classes),
    ytest: Uint8Array.from({ length: m }, (_, i) => first + (i * 3) % classes),
  };
  const pre = opts.prefix ?? ((s) => s);
  const ext = opts.plain ? "" : ".gz";
  await writeIdxFile(`${dir}/${pre("train")}-images-idx3-ubyte${ext}`, {
    data: out.train,
    shape: [n, 28, 28],
  });
  await writeIdxFile(`${dir}/${pre("train")}-labels-idx1-ubyte${ext}`, {
    data: out.ytrain,
    shape: [n],
  });
  await writeIdxFile(`${dir}/${pre("t10k")}-images-idx3-ubyte${ext}`, {
    data: out.test,
    shape: [m, 28, 28],
  });
  await writeIdxFile(`${dir}/${pre("t10k")}-labels-idx1-ubyte${ext}`, {
    data: out.ytest,
    shape: [m],
  });
  return out;
}

const local = (dir: string, cache: string): datasets.LoadOptions => ({
  dir,
  cacheDir: cache,
  systemDirs: [],
  download: false,
  verify: false,
  quiet: true,
});

Deno.test("registry: MNIST-style sets load from a directory, gzip or plain", async () => {
  await using tmp = await tempDir();
  const data = await idxSet(tmp.dir, 30, 12);
  for (const [load, classNames] of [[datasets.mnist, "0"], [datasets.kmnist, "o"]] as const) {
    const ds = await load(local(tmp.dir, `${tmp.dir}/cache`));
    assert.deepEqual(ds.shape, [28, 28]);
    assert.equal(ds.numClasses, 10);
    assert.equal(ds.classNames[0], classNames);
    assert.equal(ds.train.length, 30);
    assert.equal(ds.test.length, 12);
    assert.deepEqual(ds.train.x, data.train);
    assert.deepEqual(ds.test.y, data.ytest);
    assert.equal(ds.train.name, `${ds.name}/train`);
    assert.ok(ds.files.every((f) => f.origin === "dir" && f.verified === "unverified"));
  }
  // With checksums on, a file in the caller's directory that is not the published one is an error.
  await rejectsWith(
    datasets.mnist({ ...local(tmp.dir, `${tmp.dir}/cache`), verify: true }),
    `${tmp.dir}/train-images-idx3-ubyte.gz: checksum mismatch`,
  );
  // Uncompressed files, under either naming, are accepted (checked by the IDX reader).
  await using plain = await tempDir();
  await idxSet(plain.dir, 5, 5, { plain: true });
  await Deno.rename(`${plain.dir}/train-images-idx3-ubyte`, `${plain.dir}/train-images.idx3-ubyte`);
  const p = await datasets.mnist({ ...local(plain.dir, `${plain.dir}/cache`), verify: true });
  assert.equal(p.train.length, 5);
  assert.equal(p.files[0].path, `${plain.dir}/train-images.idx3-ubyte`);
  assert.equal(p.files[0].verified, "structural");
});

Deno.test("registry: image and label files must agree; labels must be classes", async () => {
  await using tmp = await tempDir();
  const o = local(tmp.dir, `${tmp.dir}/cache`);
  await idxSet(tmp.dir, 20, 10);
  const labels = `${tmp.dir}/train-labels-idx1-ubyte.gz`;
  const images = `${tmp.dir}/train-images-idx3-ubyte.gz`;
  await writeIdxFile(labels, { data: new Uint8Array(19), shape: [19] });
  await rejectsWith(
    datasets.fashionMnist(o),
    `${labels}: image and label counts differ: 19 labels here, 20 images in ${images}`,
  );
  await writeIdxFile(labels, {
    data: Uint8Array.from({ length: 20 }, (_, i) => i === 3 ? 10 : 1),
    shape: [20],
  });
  await rejectsWith(
    datasets.fashionMnist(o),
    `${labels}: label 10 at index 3 is out of range [0, 10)`,
  );
  await writeIdxFile(labels, { data: new Int32Array(20), shape: [20] });
  await rejectsWith(
    datasets.fashionMnist(o),
    `${labels}: expected u8 labels of shape [N], the file holds i32 [20]`,
  );
  await writeIdxFile(labels, { data: new Uint8Array(20), shape: [20] });
  await writeIdxFile(images, { data: new Uint8Array(20 * 32 * 32), shape: [20, 32, 32] });
  await rejectsWith(
    datasets.fashionMnist(o),
    `${images}: expected u8 images of shape [N, 28, 28], the file holds u8 [20, 32, 32]`,
  );
  // A truncated gzip file in the set is reported by name.
  const gz = await gzip(encodeIdx({ data: r.bytes(20 * 784), shape: [20, 28, 28] }));
  await Deno.writeFile(images, gz.subarray(0, gz.length - 10));
  await rejectsWith(datasets.fashionMnist(o), `${images}:`);
});

Deno.test("registry: EMNIST is extracted from its zip into the cache, transposed upright", async () => {
  await using tmp = await tempDir();
  await using src = await tempDir();
  const data = await idxSet(src.dir, 8, 4, {
    prefix: (s) => `emnist-letters-${s === "t10k" ? "test" : s}`,
    classes: 26,
    firstLabel: 1,
  });
  const entries = [];
  for await (const e of Deno.readDir(src.dir)) {
    entries.push({ name: `gzip/${e.name}`, data: await Deno.readFile(`${src.dir}/${e.name}`) });
  }
  entries.push({
    name: "gzip/emnist-letters-mapping.txt",
    data: new TextEncoder().encode("1 65 97\n"),
  });
  await Deno.writeFile(`${tmp.dir}/gzip.zip`, zipStored(entries));
  const cache = `${tmp.dir}/cache`;
  const ds = await datasets.emnist({ ...local(tmp.dir, cache), split: "letters" });
  assert.equal(ds.name, "emnist-letters");
  assert.equal(ds.numClasses, 27);
  assert.equal(ds.classNames[1], "a");
  assert.equal(ds.train.length, 8);
  assert.deepEqual(ds.train.y, data.ytrain);
  // Image 2, pixel (row 3, column 5) is the file's (row 5, column 3).
  assert.equal(ds.train.x[2 * 784 + 3 * 28 + 5], data.train[2 * 784 + 5 * 28 + 3]);
  assert.equal(ds.test.x[784 + 27 * 28], data.test[784 + 27]);
  const cached = (await Array.fromAsync(Deno.readDir(`${cache}/emnist`))).map((e) => e.name).sort();
  assert.deepEqual(cached, [
    "SHA256SUMS",
    "emnist-letters-test-images-idx3-ubyte.gz",
    "emnist-letters-test-labels-idx1-ubyte.gz",
    "emnist-letters-train-images-idx3-ubyte.gz",
    "emnist-letters-train-labels-idx1-ubyte.gz",
  ]);
  // The next load takes the extracted files from the cache, checked against their record.
  const again = await datasets.emnist({
    ...local(`${tmp.dir}/none`, cache),
    split: "letters",
    verify: true,
    transpose: false,
  });
  assert.ok(again.files.every((f) => f.origin === "cache" && f.verified === "recorded"));
  assert.equal(again.train.x[2 * 784 + 5 * 28 + 3], data.train[2 * 784 + 5 * 28 + 3]);
  await rejectsWith(
    datasets.emnist({ split: "nope" as datasets.EmnistSplit }),
    'unknown split "nope"',
  );
});

Deno.test("registry: CIFAR-10 from its binary tar.gz (and extracted batches), channels last", async () => {
  await using tmp = await tempDir();
  const record = (b: number, i: number) => (b * 10000 + i) % 251;
  const batches = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
  ]
    .map((name, b) => {
      const data = new Uint8Array(10000 * 3073);
      for (let i = 0; i < 10000; i++) {
        const o = i * 3073, v = record(b, i);
        data[o] = v % 10;
        // R plane = v, G plane = v + pixel index, B plane = 255 - v.
        data.fill(v, o + 1, o + 1025);
        for (let p = 0; p < 1024; p++) data[o + 1025 + p] = (v + p) & 0xff;
        data.fill(255 - v, o + 2049, o + 3073);
      }
      return { path: `cifar-10-batches-bin/${name}`, data };
    });
  const tar = encodeTar([{ path: "cifar-10-batches-bin", type: "directory" }, ...batches]);
  await Deno.writeFile(`${tmp.dir}/cifar-10-binary.tar.gz`, gzipSync(tar, { level: 1 }));
  const check = (ds: datasets.Dataset) => {
    assert.deepEqual(ds.shape, [32, 32, 3]);
    assert.equal(ds.train.length, 50000);
    assert.equal(ds.test.length, 10000);
    for (
      const [split, b, i] of [[ds.train, 0, 0], [ds.train, 3, 1234], [ds.test, 5, 9999]] as const
    ) {
      const k = split === ds.train ? b * 10000 + i : i;
      const v = record(b, i);
      assert.equal(split.y[k], v % 10);
      const px = split.sample(k);
      for (const p of [0, 33, 1023]) {
        assert.deepEqual(Array.from(px.subarray(3 * p, 3 * p + 3)), [v, (v + p) & 0xff, 255 - v]);
      }
    }
  };
  check(await datasets.cifar10(local(tmp.dir, `${tmp.dir}/cache`)));
  // Extracted batches in the caller's directory serve as well.
  await Deno.mkdir(`${tmp.dir}/x/cifar-10-batches-bin`, { recursive: true });
  for (const b of batches) await Deno.writeFile(`${tmp.dir}/x/${b.path}`, b.data);
  check(await datasets.cifar10(local(`${tmp.dir}/x`, `${tmp.dir}/cache`)));
  // A short batch is an error naming it.
  await Deno.writeFile(
    `${tmp.dir}/x/cifar-10-batches-bin/test_batch.bin`,
    batches[5].data.subarray(3073),
  );
  await rejectsWith(
    datasets.cifar10(local(`${tmp.dir}/x`, `${tmp.dir}/cache`)),
    "test_batch.bin: expected 10000 records of 3073 bytes (30730000), got 30726927 bytes",
  );
});

Deno.test("registry: notMNIST reads PNG folders A–J, skips unreadable images and says how many", async () => {
  await using tmp = await tempDir();
  const entries: datasets.TarInput[] = [];
  const letters = "ABCDEFGHIJ";
  for (let c = 0; c < 10; c++) {
    for (let k = 0; k < 6; k++) {
      const samples = Array.from({ length: 784 }, (_, i) => (c * 25 + k + i) & 0xff);
      entries.push({
        path: `notMNIST_small/${letters[c]}/img${k}.png`,
        data: await encodePng({ width: 28, height: 28, samples }),
      });
    }
  }
  const good = entries[0].data!;
  entries.push({ path: "notMNIST_small/A/empty.png", data: new Uint8Array(0) });
  entries.push({ path: "notMNIST_small/B/cut.png", data: good.subarray(0, 60) });
  entries.push({
    path: "notMNIST_small/C/small.png",
    data: await encodePng({ width: 10, height: 10, samples: new Array(100).fill(0) }),
  });
  await Deno.writeFile(`${tmp.dir}/notMNIST_small.tar.gz`, await gzip(encodeTar(entries)));
  const { lines, value: ds } = await captureLog(() =>
    datasets.notMnist({
      ...local(tmp.dir, `${tmp.dir}/cache`),
      quiet: false,
      testFraction: 0.5,
      seed: 3,
    })
  );
  assert.deepEqual(lines, [
    "notmnist: skipped 3 unreadable of 63 images in notMNIST_small.tar.gz (see .skipped)",
  ]);
  assert.deepEqual(ds.skipped.map((s) => s.path), [
    "notMNIST_small/A/empty.png",
    "notMNIST_small/B/cut.png",
    "notMNIST_small/C/small.png",
  ]);
  assert.ok(ds.skipped[2].reason.includes("10×10 pixels, not 28×28"));
  assert.equal(ds.train.length + ds.test.length, 60);
  assert.deepEqual(ds.test.classCounts(), new Array(10).fill(3));
  assert.deepEqual(ds.classNames, letters.split(""));
  // Each image decoded to its pixels: find class C's image 4 by its first pixel.
  const all = [ds.train, ds.test];
  const first = 2 * 25 + 4;
  const hit = all.flatMap((s) => Array.from({ length: s.length }, (_, i) => s.sample(i))).find((
    x,
  ) => x[0] === first && x[1] === first + 1);
  assert.ok(hit);
  assert.equal(hit[783], (first + 783) & 0xff);
});

Deno.test("registry: notMNIST large trains on the large tarball and tests on all of the small one", async () => {
  await using tmp = await tempDir();
  const tarOf = async (root: string, perClass: number, bad: boolean) => {
    const entries: datasets.TarInput[] = [];
    for (let c = 0; c < 10; c++) {
      for (let k = 0; k < perClass; k++) {
        const samples = Array.from({ length: 784 }, (_, i) => (c * 25 + k * 3 + i) & 0xff);
        entries.push({
          path: `${root}/${"ABCDEFGHIJ"[c]}/img${k}.png`,
          data: await encodePng({ width: 28, height: 28, samples }),
        });
      }
    }
    if (bad) entries.push({ path: `${root}/D/broken.png`, data: new Uint8Array(10) });
    return await gzip(encodeTar(entries));
  };
  const opts = { ...local(tmp.dir, `${tmp.dir}/cache`) };
  await Deno.writeFile(`${tmp.dir}/notMNIST_small.tar.gz`, await tarOf("notMNIST_small", 2, false));
  // Only the small tarball: the large variant says which file is missing.
  await rejectsWith(datasets.notMnist({ ...opts, variant: "large" }), "notMNIST_large.tar.gz");
  await Deno.writeFile(`${tmp.dir}/notMNIST_large.tar.gz`, await tarOf("notMNIST_large", 7, true));
  const { lines, value: ds } = await captureLog(() =>
    datasets.notMnist({ ...opts, quiet: false, variant: "large" })
  );
  assert.deepEqual(lines, [
    "notmnist: skipped 1 unreadable of 71 images in notMNIST_large.tar.gz (see .skipped)",
  ]);
  assert.deepEqual(ds.skipped.map((s) => s.path), ["notMNIST_large/D/broken.png"]);
  assert.equal(ds.train.length, 70);
  assert.equal(ds.test.length, 20);
  assert.deepEqual(ds.train.classCounts(), new Array(10).fill(7));
  assert.deepEqual(ds.test.classCounts(), new Array(10).fill(2));
  assert.deepEqual(ds.files.map((f) => f.path.slice(f.path.lastIndexOf("/") + 1)), [
    "notMNIST_large.tar.gz",
    "notMNIST_small.tar.gz",
  ]);
  // The test split is the small tarball's images (k · 3 = 0 or 3 for its two per class).
  for (let i = 0; i < ds.test.length; i++) {
    const c = ds.test.label(i), x = ds.test.sample(i);
    assert.ok(x[0] === ((c * 25) & 0xff) || x[0] === ((c * 25 + 3) & 0xff));
  }
  await rejectsWith(
    datasets.notMnist({ ...opts, variant: "medium" as "large" }),
    'variant must be "small" or "large", got "medium"',
  );
});

Deno.test("registry: load() by name, and the catalog of published files", async () => {
  const s = await datasets.load("fashion-mnist", { sample: true });
  assert.ok(s.sample);
  await rejectsWith(datasets.load("nope" as datasets.DatasetName), 'unknown data set "nope"');
  for (const [name, files] of Object.entries(datasets.CATALOG)) {
    for (const f of files) {
      assert.ok(f.size! > 0 && f.urls.length > 0, `${name}/${f.name}`);
      // Every file has its published SHA-256 and where it is published, except notMNIST's large
      // tarball, for which none is published (checked by size, then recorded on first use).
      if (f.name === "notMNIST_large.tar.gz") {
        assert.equal(f.sha256, undefined);
        continue;
      }
      assert.match(f.sha256!, /^[0-9a-f]{64}$/, `${name}/${f.name}`);
      assert.ok(f.checksumSource, `${name}/${f.name}`);
    }
  }
});

Deno.test("registry: the bundled Fashion-MNIST sample: balanced, verified, cut from the full set", async () => {
  const ds = await datasets.fashionMnist({ sample: true });
  assert.ok(ds.sample);
  assert.equal(ds.train.length, 3000);
  assert.equal(ds.test.length, 1000);
  assert.deepEqual(ds.train.classCounts(), new Array(10).fill(300));
  assert.deepEqual(ds.test.classCounts(), new Array(10).fill(100));
  assert.ok(ds.files.every((f) => f.origin === "bundled" && f.verified === "sha256"));
  // Pixel sums of the files, computed independently (Python's gzip module).
  assert.equal(ds.train.x.reduce((a, b) => a + b, 0), 170626209);
  assert.equal(ds.test.x.reduce((a, b) => a + b, 0), 58018536);
  // The indices file says where each image came from; where the full set is installed, compare.
  const full = await datasets.fashionMnist({
    systemDirs: ["/usr/share/datasets/fashion-mnist"],
    download: false,
    quiet: true,
  })
    .catch(() => null);
  if (!full) {
    console.log(
      "  (full Fashion-MNIST absent: the sample's origin in the full set is not checked)",
    );
    return;
  }
  for (
    const [split, fullSplit, file] of [[ds.train, full.train, "train"], [
      ds.test,
      full.test,
      "t10k",
    ]] as const
  ) {
    const idx = await datasets.readIdxFile(
      new URL(`../datasets/fashion-mnist-sample/${file}-indices-idx1-i32.gz`, import.meta.url),
    );
    const again = fullSplit.select(idx.data);
    assert.deepEqual(again.x, split.x);
    assert.deepEqual(again.y, split.y);
  }
});

Deno.test("registry: with sample: 'fallback', a missing full set gives the sample and says so", async () => {
  await using tmp = await tempDir();
  const { lines, value } = await captureLog(() =>
    datasets.fashionMnist({
      sample: "fallback",
      cacheDir: tmp.dir,
      systemDirs: [],
      download: false,
    })
  );
  assert.ok(value.sample);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^fashion-mnist: the full set is not available here .* using the bundled sample: 3000 training and 1000 test images$/,
  );
  // Other errors are not hidden behind the sample.
  await idxSet(tmp.dir, 2, 2);
  await rejectsWith(
    datasets.fashionMnist({ sample: "fallback", dir: tmp.dir, systemDirs: [], download: false }),
    "checksum mismatch",
  );
});
