/**
 * The LeNet notebook's experiments on Fashion-MNIST, one table: the seed's LeNet-5 (SGD 0.01,
 * batch 128, one-hot labels), its width variant (8×8 kernels), its depth variant (three extra 5×5
 * convolutions), and the dense comparison (Flatten → Dense 256 relu → Dense 10 softmax, Adam,
 * inputs scaled to [-1, 1]). Each variant trains for the same epochs; the table gives test
 * accuracy, training time and parameters, and a chart the test accuracy per epoch.
 *
 * Run: deno run --allow-read --allow-env examples/lenet_experiments.ts
 * @module
 */
import { datasets, type History, losses, nn, optim, plot } from "../mod.ts";
import { exampleFlags, helpText, loadFashion } from "./common.ts";
import { lenet } from "./lenet_fashion.ts";

const DEFAULTS = { epochs: 3, batchSize: 128 };
const VARIANTS = ["lenet", "wide", "deep", "dense"] as const;
type Variant = typeof VARIANTS[number];

const DESCRIPTION: Record<Variant, string> = {
  lenet: "LeNet-5, 5×5 kernels, SGD 0.01",
  wide: "LeNet-5, 8×8 kernels, SGD 0.01",
  deep: "LeNet-5 + three 5×5 convs, SGD 0.01",
  dense: "Dense 256 relu, Adam, inputs in [-1, 1]",
};

function build(v: Variant, seed: number): nn.Sequential {
  if (v !== "dense") {
    const model = lenet({ wide: v === "wide", deep: v === "deep", seed });
    model.compile({
      optimizer: optim.sgd({ learningRate: 0.01 }),
      loss: losses.categoricalCrossentropy(),
      metrics: ["accuracy"],
    });
    return model;
  }
  const model = nn.sequential([
    nn.flatten(),
    nn.dense(256, { activation: "relu" }),
    nn.dense(10, { activation: "softmax" }),
  ], { inputShape: [28, 28, 1], seed, name: "dense" });
  model.compile({
    optimizer: optim.adam(),
    loss: losses.categoricalCrossentropy(),
    metrics: ["accuracy"],
  });
  return model;
}

if (import.meta.main) {
  const flags = exampleFlags({
    variants: { type: "string", default: VARIANTS.join(",") },
  }, DEFAULTS);
  if (flags.help) {
    console.log(helpText("The LeNet notebook's width, depth and dense experiments", DEFAULTS, [
      `--variants A,B     which to run, of ${VARIANTS.join(", ")} (default all)`,
    ]));
    Deno.exit(0);
  }
  const chosen = String(flags.variants).split(",").filter((s) => s) as Variant[];
  const unknown = chosen.filter((v) => !VARIANTS.includes(v));
  if (unknown.length || chosen.length === 0) {
    console.error(`--variants: unknown ${unknown.join(", ")}; choose from ${VARIANTS.join(", ")}`);
    Deno.exit(2);
  }
  const epochs = Number(flags.epochs), batchSize = Number(flags["batch-size"]);
  const seed = Number(flags.seed);
  const { train, test } = await loadFashion(flags);
  const oneHot = (y: Uint8Array) => datasets.oneHot(y, 10);
  const yTrain = oneHot(train.y), yTest = oneHot(test.y);
  const rows: { v: Variant; accuracy: number; seconds: number; params: number; h: History }[] = [];
  for (const v of chosen) {
    console.log(`\n== ${v}: ${DESCRIPTION[v]}`);
    const model = build(v, seed);
    // The dense comparison scales inputs to [-1, 1]; the LeNets take [0, 1].
    const scaling = v === "dense" ? { scale: 2 / 255, shift: -1 } : {};
    const t0 = performance.now();
    const h = await model.fit(train.x, yTrain, {
      epochs,
      batchSize,
      seed,
      validationData: [test.x, yTest],
      verbose: Number(flags.verbose) as 0 | 1 | 2,
      ...scaling,
    });
    const seconds = (performance.now() - t0) / 1000;
    const r = await model.evaluate(test.x, yTest, { batchSize: 256, ...scaling });
    rows.push({ v, accuracy: r.accuracy, seconds, params: model.countParams(), h });
    if (flags.save) await model.save(`${flags.save}/${v}`);
    model.dispose();
  }
  console.log(
    "\n" + plot.lineChart(rows.map((r) => r.h.history.val_accuracy), {
      height: 10,
      names: rows.map((r) => r.v),
      title: "test accuracy per epoch",
    }),
  );
  console.log(
    `\nvariant  model                                     params   epochs  test acc   time`,
  );
  for (const r of rows) {
    console.log(
      `${r.v.padEnd(8)} ${DESCRIPTION[r.v].padEnd(40)} ${
        r.params.toLocaleString("en-US").padStart(8)
      } ${String(epochs).padStart(7)}  ${r.accuracy.toFixed(4).padStart(8)} ${
        r.seconds.toFixed(0).padStart(5)
      } s`,
    );
  }
  const best = rows.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
  console.log(`best: ${best.v}`);
  console.log(`test accuracy: ${best.accuracy.toFixed(4)}`);
}
