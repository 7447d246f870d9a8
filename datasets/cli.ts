/**
 * Loads data sets (downloading them into the cache if needed) and prints what was loaded: where
 * each file came from and how it was verified, the sizes, the class balance, the statistics and
 * the first training image.
 *
 * ```sh
 * deno task datasets                      # Fashion-MNIST (the bundled sample if the set is absent)
 * deno task datasets mnist cifar-10       # any of: mnist fashion-mnist kmnist emnist cifar-10 notmnist
 * deno task datasets emnist --split letters
 * deno task datasets notmnist --variant large   # notMNIST_large.tar.gz too (247 MB)
 * deno run --allow-read=DIR datasets/cli.ts mnist --dir DIR --offline
 * ```
 * @module
 */
import { type Dataset, type DatasetName, load } from "./registry.ts";
import type { EmnistSplit } from "./registry.ts";

const NAMES: readonly DatasetName[] = [
  "mnist",
  "fashion-mnist",
  "kmnist",
  "emnist",
  "cifar-10",
  "notmnist",
];

/** An image as text, darker pixels as denser characters (channels averaged). */
export function asciiImage(pixels: Uint8Array, shape: readonly number[]): string {
  const [h, w] = shape;
  const c = shape.length === 3 ? shape[2] : 1;
  const ramp = " .:-=+*#%@";
  const lines: string[] = [];
  for (let y = 0; y < h; y++) {
    let line = "";
    for (let x = 0; x < w; x++) {
      let v = 0;
      for (let k = 0; k < c; k++) v += pixels[(y * w + x) * c + k];
      line += ramp[Math.min(ramp.length - 1, Math.floor(v / c / 256 * ramp.length))].repeat(2);
    }
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}

/** A few lines that describe a loaded data set. */
export function summarize(ds: Dataset, ms?: number): string {
  const out: string[] = [];
  out.push(
    `${ds.name}${ds.sample ? " (bundled sample)" : ""}: ${ds.train.length} training and ` +
      `${ds.test.length} test samples of [${ds.shape.join(", ")}], ${ds.numClasses} classes` +
      (ms === undefined ? "" : ` (loaded in ${(ms / 1000).toFixed(2)} s)`),
  );
  for (const f of ds.files) out.push(`  ${f.path}: ${f.origin}, ${f.verified}`);
  const tr = ds.train.classCounts(), te = ds.test.classCounts();
  out.push(
    "  classes (train/test): " +
      ds.classNames.map((n, i) => `${n} ${tr[i]}/${te[i]}`).filter((_, i) => tr[i] || te[i]).join(
        ", ",
      ),
  );
  const st = ds.train.stats();
  out.push(
    `  training pixels: mean ${st.mean.map((v) => v.toFixed(4)).join(", ")}; ` +
      `std ${st.std.map((v) => v.toFixed(4)).join(", ")}`,
  );
  if (ds.skipped.length) out.push(`  skipped ${ds.skipped.length} unreadable images`);
  if (ds.train.length) {
    const y = ds.train.label(0);
    out.push(`  first training sample (class ${y}, ${ds.classNames[y]}):`);
    out.push(
      asciiImage(ds.train.sample(0), ds.shape).split("\n").map((l) => "    " + l).join("\n"),
    );
  }
  return out.join("\n");
}

if (import.meta.main) {
  const args = [...Deno.args];
  const take = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
  };
  const dir = take("--dir");
  const split = take("--split") as EmnistSplit | undefined;
  const variant = take("--variant") as "small" | "large" | undefined;
  const offline = args.includes("--offline");
  const names = args.filter((a) => !a.startsWith("--"));
  for (const n of names) {
    if (!NAMES.includes(n as DatasetName)) {
      console.error(`unknown data set "${n}" (one of ${NAMES.join(", ")})`);
      Deno.exit(2);
    }
  }
  for (const name of (names.length ? names : ["fashion-mnist"]) as DatasetName[]) {
    const t0 = performance.now();
    try {
      const ds = await load(name, {
        dir,
        split,
        variant,
        download: offline ? false : undefined,
        sample: name === "fashion-mnist" && !names.length ? "fallback" : false,
      });
      console.log(summarize(ds, performance.now() - t0));
    } catch (e) {
      console.error(e instanceof Error ? e.message : String(e));
      Deno.exitCode = 1;
    }
  }
}
