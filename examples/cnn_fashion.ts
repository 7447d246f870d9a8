/**
 * A modern small CNN on Fashion-MNIST: two conv-pool blocks with relu and batch normalisation,
 * dropout, a dense head, Adam. Conv 32@3×3 same relu → BatchNorm → MaxPool 2×2 → Dropout 0.25 →
 * Conv 64@3×3 same relu → BatchNorm → MaxPool 2×2 → Dropout 0.25 → Flatten → Dense 128 relu →
 * Dropout 0.5 → Dense 10 (logits); sparse categorical cross-entropy, Adam 1e-3, batch 64.
 *
 * Run: deno run --allow-read --allow-env examples/cnn_fashion.ts
 * @module
 */
import { losses, nn, optim } from "../mod.ts";
import { exampleFlags, finish, helpText, loadFashion, showFeatureMaps } from "./common.ts";

const DEFAULTS = { epochs: 8, batchSize: 64 };

/** The small CNN (uncompiled). */
export function smallCnn(options: { seed?: number } = {}): nn.Sequential {
  return nn.sequential([
    nn.conv2d(32, { kernelSize: 3, padding: "same", activation: "relu" }),
    nn.batchNorm(),
    nn.maxPool2d(),
    nn.dropout(0.25),
    nn.conv2d(64, { kernelSize: 3, padding: "same", activation: "relu" }),
    nn.batchNorm(),
    nn.maxPool2d(),
    nn.dropout(0.25),
    nn.flatten(),
    nn.dense(128, { activation: "relu" }),
    nn.dropout(0.5),
    nn.dense(10),
  ], { inputShape: [28, 28, 1], seed: options.seed, name: "small_cnn" });
}

if (import.meta.main) {
  const flags = exampleFlags({ lr: { type: "string", default: "0.001" } }, DEFAULTS);
  if (flags.help) {
    console.log(helpText("A small CNN with batch norm and dropout on Fashion-MNIST", DEFAULTS, [
      "--lr X             Adam learning rate (default 0.001)",
    ]));
    Deno.exit(0);
  }
  const epochs = Number(flags.epochs), batchSize = Number(flags["batch-size"]);
  const seed = Number(flags.seed);
  const { train, test } = await loadFashion(flags);
  const model = smallCnn({ seed });
  model.summary();
  model.compile({
    optimizer: optim.adam({ learningRate: Number(flags.lr) }),
    loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
    metrics: ["accuracy"],
  });
  const t0 = performance.now();
  const history = await model.fit(train, {
    epochs,
    batchSize,
    seed,
    validationData: test,
    verbose: Number(flags.verbose) as 0 | 1 | 2,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (flags["show-maps"]) await showFeatureMaps(model, test.sample(0));
  await finish(model, history, test, seconds, flags, train.length);
  model.dispose();
}
