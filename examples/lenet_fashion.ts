/**
 * The LeNet notebook on Fashion-MNIST, the seed's network exactly: Conv 6@5×5 same tanh →
 * AvgPool 2×2 stride 1 → Conv 16@5×5 valid tanh → AvgPool 2×2 stride 2 → Conv 120@5×5 valid
 * tanh → Flatten → Dense 84 tanh → Dense 10 softmax; categorical cross-entropy on one-hot labels,
 * SGD 0.01, batch 128, 3 epochs. `--wide` uses 8×8 kernels (the notebook's width experiment),
 * `--deep` adds three 5×5 convolutions (its depth experiment: two Conv 6@5×5 same after the first
 * convolution and one Conv 16@5×5 same after the second).
 *
 * Run: deno run --allow-read --allow-env examples/lenet_fashion.ts
 * @module
 */
import { datasets, losses, nn, optim } from "../mod.ts";
import { exampleFlags, finish, helpText, loadFashion, showFeatureMaps } from "./common.ts";

const DEFAULTS = { epochs: 3, batchSize: 128 };

/** The seed's LeNet, or its width / depth variant. */
export function lenet(
  options: { wide?: boolean; deep?: boolean; seed?: number } = {},
): nn.Sequential {
  const k = options.wide ? 8 : 5;
  const conv = (filters: number, padding: "same" | "valid" = "valid", size = k) =>
    nn.conv2d(filters, { kernelSize: size, padding, activation: "tanh" });
  return nn.sequential([
    conv(6, "same"),
    ...(options.deep ? [conv(6, "same", 5), conv(6, "same", 5)] : []),
    nn.avgPool2d({ poolSize: 2, strides: 1 }),
    conv(16),
    ...(options.deep ? [conv(16, "same", 5)] : []),
    nn.avgPool2d({ poolSize: 2, strides: 2 }),
    conv(120),
    nn.flatten(),
    nn.dense(84, { activation: "tanh" }),
    nn.dense(10, { activation: "softmax" }),
  ], { inputShape: [28, 28, 1], seed: options.seed, name: "lenet" });
}

if (import.meta.main) {
  const flags = exampleFlags({
    lr: { type: "string", default: "0.01" },
    wide: { type: "boolean", default: false },
    deep: { type: "boolean", default: false },
  }, DEFAULTS);
  if (flags.help) {
    console.log(helpText("LeNet on Fashion-MNIST (the LeNet notebook)", DEFAULTS, [
      "--lr X             SGD learning rate (default 0.01)",
      "--wide             8×8 kernels instead of 5×5 (the width experiment)",
      "--deep             three extra 5×5 convolutions (the depth experiment)",
    ]));
    Deno.exit(0);
  }
  const epochs = Number(flags.epochs), batchSize = Number(flags["batch-size"]);
  const seed = Number(flags.seed);
  const { train, test } = await loadFashion(flags);
  const model = lenet({ wide: !!flags.wide, deep: !!flags.deep, seed });
  model.summary();
  model.compile({
    optimizer: optim.sgd({ learningRate: Number(flags.lr) }),
    loss: losses.categoricalCrossentropy(),
    metrics: ["accuracy"],
  });
  const oneHot = (y: Uint8Array) => datasets.oneHot(y, 10);
  const t0 = performance.now();
  const history = await model.fit(train.x, oneHot(train.y), {
    epochs,
    batchSize,
    seed,
    verbose: Number(flags.verbose) as 0 | 1 | 2,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (flags["show-maps"]) await showFeatureMaps(model, test.sample(0));
  await finish(model, history, { x: test.x, y: oneHot(test.y) }, seconds, flags, train.length);
  model.dispose();
}
