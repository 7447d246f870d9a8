/**
 * The backprop lecture's MNIST MLP (Keras's mnist_mlp): 784-512-512-10, relu, dropout 0.2 after
 * each hidden layer, softmax, categorical cross-entropy, RMSprop (1e-3), batch 128, 5 epochs.
 * `--no-dropout` drops the dropout layers; `--deep-tanh` is the lecture's 2500-2000-1500-1000-500
 * tanh network. Trains on MNIST when its files are found (`--data-dir`, the cache, or
 * /usr/share/datasets/mnist), and on Fashion-MNIST otherwise (it says so).
 *
 * Run: deno run --allow-read --allow-env examples/mnist_mlp.ts
 * @module
 */
import { datasets, losses, nn, optim } from "../mod.ts";
import { exampleFlags, finish, helpText, limitTrain, loadOptions } from "./common.ts";

const DEFAULTS = { epochs: 5, batchSize: 128 };

/** The lecture's MLP (uncompiled). */
export function mnistMlp(
  options: { dropout?: boolean; deepTanh?: boolean; seed?: number } = {},
): nn.Sequential {
  const widths = options.deepTanh ? [2500, 2000, 1500, 1000, 500] : [512, 512];
  const activation = options.deepTanh ? "tanh" : "relu";
  return nn.sequential([
    nn.flatten(),
    ...widths.flatMap((w) => [
      nn.dense(w, { activation }),
      ...(options.dropout === false ? [] : [nn.dropout(0.2)]),
    ]),
    nn.dense(10, { activation: "softmax" }),
  ], { inputShape: [28, 28], seed: options.seed, name: "mnist_mlp" });
}

if (import.meta.main) {
  const flags = exampleFlags({
    lr: { type: "string", default: "0.001" },
    "no-dropout": { type: "boolean", default: false },
    "deep-tanh": { type: "boolean", default: false },
    fashion: { type: "boolean", default: false },
  }, DEFAULTS);
  if (flags.help) {
    console.log(helpText("The MNIST MLP of the backprop lecture", DEFAULTS, [
      "--lr X             RMSprop learning rate (default 0.001)",
      "--no-dropout       without the two dropout layers",
      "--deep-tanh        the 2500-2000-1500-1000-500 tanh variant",
      "--fashion          train on Fashion-MNIST even when MNIST is found",
    ]));
    Deno.exit(0);
  }
  const epochs = Number(flags.epochs), batchSize = Number(flags["batch-size"]);
  const seed = Number(flags.seed);
  let data: datasets.Dataset;
  if (flags.fashion || flags.sample) {
    data = await datasets.fashionMnist({
      ...loadOptions(flags),
      sample: flags.sample ? true : "fallback",
    });
  } else {
    try {
      data = await datasets.mnist(loadOptions(flags));
    } catch (e) {
      if (!(e instanceof datasets.DatasetNotFoundError)) throw e;
      console.log(
        "MNIST is not available here; the same recipe runs on Fashion-MNIST. To get MNIST: " +
          "`deno task datasets mnist` (downloads into ~/.cache/wgrad) or --data-dir DIR with its " +
          "four IDX .gz files.",
      );
      data = await datasets.fashionMnist({ sample: "fallback" });
    }
  }
  const train = limitTrain(data.train, flags);
  console.log(
    `${data.name}${
      data.sample ? " (bundled sample)" : ""
    }: ${train.length} training and ${data.test.length} test images`,
  );
  const model = mnistMlp({ dropout: !flags["no-dropout"], deepTanh: !!flags["deep-tanh"], seed });
  model.summary();
  model.compile({
    optimizer: optim.rmsprop({ learningRate: Number(flags.lr) }),
    loss: losses.categoricalCrossentropy(),
    metrics: ["accuracy"],
  });
  const oneHot = (y: Uint8Array) => datasets.oneHot(y, 10);
  const t0 = performance.now();
  const history = await model.fit(train.x, oneHot(train.y), {
    epochs,
    batchSize,
    seed,
    validationData: [data.test.x, oneHot(data.test.y)],
    verbose: Number(flags.verbose) as 0 | 1 | 2,
  });
  const seconds = (performance.now() - t0) / 1000;
  await finish(
    model,
    history,
    { x: data.test.x, y: oneHot(data.test.y) },
    seconds,
    flags,
    train.length,
  );
  model.dispose();
}
