/**
 * What the image examples share: the common flags, loading Fashion-MNIST (Debian's package, the
 * cache, or the bundled sample), printing a model's feature maps as ASCII shades, and the closing
 * report (plot, test accuracy, optional save).
 * @module
 */
import { parseArgs } from "node:util";
import { datasets, type History, nn, plot, type Tensor } from "../mod.ts";

/** Parsed flags by name. */
export type Flags = Record<string, string | boolean | undefined>;

/** The flags every image example takes, and its own. */
export function exampleFlags(
  extra: Record<string, { type: "string" | "boolean"; default?: string | boolean }>,
  defaults: { epochs: number; batchSize: number; seed?: number },
): Flags {
  return parseArgs({
    args: Deno.args,
    options: {
      epochs: { type: "string", default: String(defaults.epochs) },
      "batch-size": { type: "string", default: String(defaults.batchSize) },
      seed: { type: "string", default: String(defaults.seed ?? 42) },
      "data-dir": { type: "string" },
      sample: { type: "boolean", default: false },
      limit: { type: "string" },
      save: { type: "string" },
      "show-maps": { type: "boolean", default: false },
      verbose: { type: "string", default: "1" },
      "no-verify": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      ...extra,
    },
  }).values as Flags;
}

/** The help text: a title, the common flags with their defaults, and the example's own lines. */
export function helpText(
  title: string,
  defaults: { epochs: number; batchSize: number },
  own: readonly string[],
): string {
  return [
    title,
    "",
    `  --epochs N         epochs (default ${defaults.epochs})`,
    `  --batch-size N     samples per step (default ${defaults.batchSize})`,
    "  --seed N           seed of weights, shuffles and dropout (default 42)",
    "  --data-dir DIR     directory holding the data set's files",
    "  --no-verify        skip the SHA-256 check of local files (your own subsets)",
    "  --sample           use the bundled 3,000-image sample instead of the full set",
    "  --limit N          train on the first N training images only (quick runs)",
    "  --save DIR         save the trained model (model.json + model.safetensors) into DIR",
    "  --show-maps        print the first test image's feature maps as ASCII shades",
    "  --verbose 0|1|2    progress output (default 1)",
    ...own.map((l) => `  ${l}`),
  ].join("\n");
}

/** Options for the loaders from the flags: `--data-dir`, `--no-verify`, no download. */
export function loadOptions(flags: Flags): datasets.LoadOptions {
  return {
    dir: flags["data-dir"] as string | undefined,
    verify: !flags["no-verify"],
    download: false,
  };
}

/** The training split, cut to the first `--limit` images when the flag asks for it. */
export function limitTrain(train: datasets.DataSplit, flags: Flags): datasets.DataSplit {
  const limit = flags.limit ? Number(flags.limit) : 0;
  return limit > 0 && limit < train.length ? train.slice(0, limit) : train;
}

/** Fashion-MNIST as the flags ask for it. */
export async function loadFashion(
  flags: Flags,
): Promise<{ train: datasets.DataSplit; test: datasets.DataSplit; sample: boolean }> {
  const data = await datasets.fashionMnist({
    dir: flags["data-dir"] as string | undefined,
    sample: flags.sample ? true : "fallback",
  });
  const train = limitTrain(data.train, flags);
  console.log(
    `Fashion-MNIST${data.sample ? " (bundled sample)" : ""}: ${train.length} training and ` +
      `${data.test.length} test images`,
  );
  return { train, test: data.test, sample: data.sample };
}

/**
 * Prints the feature maps of every image layer (rank-4 output) for one image, a few channels
 * each: a model over the trained layers with one output per layer, as the seed notebook does.
 */
export async function showFeatureMaps(
  model: nn.Sequential,
  image: Uint8Array,
  channelsPerLayer = 4,
): Promise<void> {
  const layers = model.layers.filter((l) => l.outputShape?.length === 3);
  const maps = nn.model({ inputs: model.input, outputs: layers.map((l) => l.output) });
  const outs = await maps.predict({ data: image, shape: [1, ...model.inputShape] });
  console.log("input image:");
  console.log(plot.shades(image, model.inputShape[0], model.inputShape[1]));
  for (let i = 0; i < layers.length; i++) {
    const [h, w, c] = layers[i].outputShape!;
    const values = await outs[i].data();
    const shown = Math.min(c, channelsPerLayer);
    console.log(`\n${layers[i].name} (${h}×${w}×${c}), channels 0–${shown - 1}:`);
    const blocks = Array.from(
      { length: shown },
      (_, k) => plot.shades(values, h, w, { channels: c, channel: k, width: h > 14 ? 1 : 2 }),
    );
    const rows = blocks.map((b) => b.split("\n"));
    const width = Math.max(...rows.flat().map((r) => r.length), w * (h > 14 ? 1 : 2));
    for (let y = 0; y < h; y++) {
      console.log(rows.map((r) => (r[y] ?? "").padEnd(width)).join(" | "));
    }
  }
  for (const o of outs as Tensor[]) o.dispose();
}

/**
 * The closing report: the throughput over `trainSamples` images per epoch, the plot, the test
 * figures, the time, and a save when asked for.
 */
export async function finish(
  model: nn.Model,
  history: History,
  test: { x: Uint8Array; y: ArrayLike<number> | Float32Array },
  seconds: number,
  flags: Flags,
  trainSamples: number,
): Promise<number> {
  const epochs = history.history.loss?.length ?? 0;
  console.log(
    `trained ${epochs} epochs in ${seconds.toFixed(1)} s (${
      (epochs * trainSamples / seconds).toFixed(0)
    } samples/s)`,
  );
  console.log(plot.history(history));
  const result = await model.evaluate(test as Parameters<nn.Model["evaluate"]>[0], {
    batchSize: 256,
  });
  console.log(`training time: ${seconds.toFixed(1)} s`);
  if (flags.save) {
    await model.save(flags.save as string);
    console.log(`saved to ${flags.save}`);
  }
  console.log(`test loss: ${result.loss.toFixed(4)}`);
  console.log(`test accuracy: ${result.accuracy.toFixed(4)}`);
  return result.accuracy;
}
