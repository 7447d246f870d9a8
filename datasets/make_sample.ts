/**
 * Cuts the bundled Fashion-MNIST sample from the full set: a fixed number of images of each class
 * from the training and test sets, chosen with a seeded permutation per class and kept in their
 * original order, written as gzip IDX files to `datasets/fashion-mnist-sample/` with the indices
 * they came from. The same full set and options give byte-identical files.
 *
 * ```sh
 * deno run --allow-read=/usr/share/datasets,datasets --allow-write=datasets \
 *   datasets/make_sample.ts [--dir DIR] [--train 300] [--test 100] [--seed 20170825]
 * ```
 *
 * `--dir` names a directory holding the four full-set files (default: the places
 * `datasets.fashionMnist()` looks, without downloading). It prints the files' SHA-256 sums, which
 * `registry.ts` records.
 * @module
 */
import { fashionMnist } from "./registry.ts";
import type { DataSplit } from "./feed.ts";
import { permutation } from "./feed.ts";
import { writeIdxFile } from "./idx.ts";
import { sha256File } from "./fetch.ts";

/** The sample's parameters. */
export interface SampleOptions {
  /** Training images per class. */
  trainPerClass: number;
  /** Test images per class. */
  testPerClass: number;
  /** Seed of the per-class permutations. */
  seed: number;
}

/** The indices of `perClass` images of each class, chosen by a seeded permutation, ascending. */
export function pickBalanced(split: DataSplit, perClass: number, seed: number): Uint32Array {
  const byClass: number[][] = Array.from({ length: split.numClasses }, () => []);
  for (let i = 0; i < split.length; i++) byClass[split.y[i]].push(i);
  const picked: number[] = [];
  byClass.forEach((members, c) => {
    if (members.length < perClass) {
      throw new Error(`${split.name}: class ${c} has ${members.length} images, ${perClass} wanted`);
    }
    const order = permutation(members.length, seed, c);
    for (let k = 0; k < perClass; k++) picked.push(members[order[k]]);
  });
  return Uint32Array.from(picked.sort((a, b) => a - b));
}

/** Writes the sample's files into `outDir`; returns their paths. */
export async function writeSample(
  full: { train: DataSplit; test: DataSplit },
  outDir: string,
  options: SampleOptions,
): Promise<string[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const paths: string[] = [];
  for (
    const [prefix, split, perClass] of [
      ["train", full.train, options.trainPerClass],
      ["t10k", full.test, options.testPerClass],
    ] as const
  ) {
    const idx = pickBalanced(split, perClass, options.seed);
    const part = split.select(idx);
    const files: [string, Parameters<typeof writeIdxFile>[1]][] = [
      [`${prefix}-images-idx3-ubyte.gz`, { data: part.x, shape: [part.length, 28, 28] }],
      [`${prefix}-labels-idx1-ubyte.gz`, { data: part.y, shape: [part.length] }],
      [`${prefix}-indices-idx1-i32.gz`, { data: Int32Array.from(idx), shape: [idx.length] }],
    ];
    for (const [name, array] of files) {
      const path = `${outDir}/${name}`;
      await writeIdxFile(path, array);
      paths.push(path);
    }
  }
  return paths;
}

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

if (import.meta.main) {
  const options: SampleOptions = {
    trainPerClass: Number(arg("train", "300")),
    testPerClass: Number(arg("test", "100")),
    seed: Number(arg("seed", "20170825")),
  };
  const dir = arg("dir", "");
  const full = await fashionMnist({ dir: dir || undefined, download: false, quiet: true });
  console.log(
    `full set: ${full.train.length} training and ${full.test.length} test images from ` +
      full.files.map((f) => `${f.path} (${f.verified})`).join(", "),
  );
  const outDir = new URL("./fashion-mnist-sample", import.meta.url).pathname;
  const paths = await writeSample(full, outDir, options);
  let total = 0;
  for (const p of paths) {
    const size = (await Deno.stat(p)).size;
    total += size;
    console.log(`${await sha256File(p)}  ${p.slice(outDir.length + 1)}  (${size} bytes)`);
  }
  console.log(
    `sample: ${options.trainPerClass} training and ${options.testPerClass} test images per class, ` +
      `seed ${options.seed}; ${total} bytes in all`,
  );
}
