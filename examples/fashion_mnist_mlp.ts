/**
 * The first seed notebook: a Fashion-MNIST MLP, Flatten → Dense(128, relu) → Dense(10), Adam
 * (1e-3), batch 32, 5 epochs, sparse categorical cross-entropy from logits. `--layers
 * 256,128,64,64 --epochs 10` gives the notebook's 5-layer variant.
 *
 * Run: deno run --allow-read --allow-env --allow-net=fastly.jsdelivr.net,raw.githubusercontent.com \
 *        --allow-write=$HOME/.cache/wgrad examples/fashion_mnist_mlp.ts --epochs 5
 * (the data comes from Debian's dataset-fashion-mnist package when installed, else the cache or
 * a download; `--sample` uses the bundled 3,000-image sample).
 * @module
 */
import { parseArgs } from "node:util";
import { datasets, losses, nn, optim, plot } from "../mod.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    epochs: { type: "string", default: "5" },
    "batch-size": { type: "string", default: "32" },
    layers: { type: "string", default: "128" },
    lr: { type: "string", default: "0.001" },
    seed: { type: "string", default: "42" },
    "data-dir": { type: "string" },
    sample: { type: "boolean", default: false },
    verbose: { type: "string", default: "1" },
    save: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  console.log(`Fashion-MNIST MLP (the first seed notebook)

  --epochs N         epochs (default 5)
  --batch-size N     samples per step (default 32)
  --layers A,B,...   hidden layer widths (default 128; the 5-layer variant: 256,128,64,64)
  --lr X             Adam learning rate (default 0.001)
  --seed N           seed of weights and shuffles (default 42)
  --data-dir DIR     directory holding the four IDX .gz files
  --sample           use the bundled 3,000-image sample instead of the full set
  --verbose 0|1|2    progress output (default 1)
  --save DIR         save the trained model (model.json + model.safetensors) into DIR`);
  Deno.exit(0);
}

const epochs = Number(flags.epochs), batchSize = Number(flags["batch-size"]);
const widths = flags.layers.split(",").filter((s) => s).map(Number);
const seed = Number(flags.seed);

const data = await datasets.fashionMnist({
  dir: flags["data-dir"],
  sample: flags.sample ? true : "fallback",
});
console.log(
  `Fashion-MNIST${data.sample ? " (bundled sample)" : ""}: ${data.train.length} training and ` +
    `${data.test.length} test images`,
);

const model = nn.sequential([
  nn.flatten(),
  ...widths.map((w) => nn.dense(w, { activation: "relu" })),
  nn.dense(10),
], { inputShape: [28, 28], seed });
model.summary();
model.compile({
  optimizer: optim.adam({ learningRate: Number(flags.lr) }),
  loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
  metrics: ["accuracy"],
});

const t0 = performance.now();
const history = await model.fit(data.train, {
  epochs,
  batchSize,
  seed,
  verbose: Number(flags.verbose) as 0 | 1 | 2,
});
const seconds = (performance.now() - t0) / 1000;
console.log(
  `trained ${epochs} epochs in ${seconds.toFixed(1)} s (${
    (epochs * data.train.length / seconds).toFixed(0)
  } samples/s)`,
);
console.log(plot.history(history));
const result = await model.evaluate(data.test, { batchSize: 256 });
if (flags.save) {
  await model.save(flags.save);
  console.log(`saved to ${flags.save}`);
}
console.log(`test loss: ${result.loss.toFixed(4)}`);
console.log(`test accuracy: ${result.accuracy.toFixed(4)}`);
model.dispose();
