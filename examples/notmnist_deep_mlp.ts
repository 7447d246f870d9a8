/**
 * The notMNIST lab: flattened 28×28 letters A–J, a deep MLP trained with SGD, then L2 (Keras
 * semantics, `l2 · Σw²` added to the loss) and dropout against overfitting, then momentum and a
 * decaying learning rate. Every ingredient is a flag, so the lab's stages run one by one:
 *
 *   --hidden 1024 --l2 0 --dropout 0 --momentum 0 --decay 1     plain SGD, one hidden layer
 *   --hidden 1024 --l2 0.001                                     + L2
 *   --hidden 1024 --l2 0.001 --dropout 0.5                       + dropout
 *   --hidden 1024,300,50 --momentum 0.9 --decay 0.9              deeper, momentum, decay
 *   --hidden 5000,5000,5000,5000,5000                            the notebook's 5×5000 network
 *
 * The data is `notMNIST_small.tar.gz` (about 18,700 images) from `--data-dir`, the cache or
 * /usr/share/datasets/notmnist; a seeded, stratified 15 % of each letter is the test split. With
 * `--large` it trains on `notMNIST_large.tar.gz` (about 530,000 images, uploaded to the GPU in
 * chunks) and tests on all of the small set, as the course did; its best reported figure is
 * 97.1 %.
 *
 * Run: deno run --allow-read --allow-env examples/notmnist_deep_mlp.ts --data-dir DIR
 * @module
 */
import { datasets, losses, nn, optim } from "../mod.ts";
import { ACTIVATIONS } from "../src/nn/activations.ts";
import { exampleFlags, finish, helpText, limitTrain, loadOptions } from "./common.ts";

const DEFAULTS = { epochs: 10, batchSize: 128 };

/** The lab's MLP for the flags' widths, activation, L2 and dropout (uncompiled). */
export function notMnistMlp(options: {
  hidden: number[];
  activation: string;
  l2: number;
  dropout: number;
  seed?: number;
}): nn.Sequential {
  const reg = options.l2 > 0 ? nn.regularizers.l2(options.l2) : undefined;
  return nn.sequential([
    nn.flatten(),
    ...options.hidden.flatMap((w) => [
      nn.dense(w, { activation: options.activation, kernelRegularizer: reg }),
      ...(options.dropout > 0 ? [nn.dropout(options.dropout)] : []),
    ]),
    nn.dense(10, { kernelRegularizer: reg }),
  ], { inputShape: [28, 28], seed: options.seed, name: "notmnist_mlp" });
}

if (import.meta.main) {
  const flags = exampleFlags({
    hidden: { type: "string", default: "1024,300" },
    activation: { type: "string", default: "relu" },
    lr: { type: "string", default: "0.05" },
    l2: { type: "string", default: "0.0001" },
    dropout: { type: "string", default: "0.3" },
    momentum: { type: "string", default: "0.9" },
    decay: { type: "string", default: "0.9" },
    large: { type: "boolean", default: false },
  }, DEFAULTS);
  if (flags.help) {
    console.log(
      helpText("The notMNIST lab: a deep MLP with SGD, L2, dropout and momentum", DEFAULTS, [
        "--hidden A,B,...   hidden layer widths, 1 to 5 layers (default 1024,300)",
        `--activation NAME  hidden activation: ${
          ACTIVATIONS.filter((a) => a !== "softmax").join(", ")
        } (default relu)`,
        "--lr X             initial SGD learning rate (default 0.05)",
        "--l2 X             L2 penalty on every kernel, l2·Σw² (default 0.0001; 0 for none)",
        "--dropout X        dropout after each hidden layer (default 0.3; 0 for none)",
        "--momentum X       SGD momentum (default 0.9; 0 for plain SGD)",
        "--decay X          learning rate × X each epoch (exponential decay; default 0.9, 1 for none)",
        "--large            train on notMNIST_large.tar.gz (about 530,000 images) and test on all",
        "                   of notMNIST_small.tar.gz, as the course did (both files needed)",
      ]),
    );
    Deno.exit(0);
  }
  const hidden = String(flags.hidden).split(",").filter((s) => s).map(Number);
  if (hidden.length < 1 || hidden.length > 5 || hidden.some((w) => !(w >= 1))) {
    console.error(`--hidden: give 1 to 5 positive widths, got "${flags.hidden}"`);
    Deno.exit(2);
  }
  const epochs = Number(flags.epochs), batchSize = Number(flags["batch-size"]);
  const seed = Number(flags.seed);
  let data: datasets.Dataset;
  try {
    data = await datasets.notMnist({
      ...loadOptions(flags),
      variant: flags.large ? "large" : "small",
    });
  } catch (e) {
    if (!(e instanceof datasets.DatasetNotFoundError)) throw e;
    console.error(e.message);
    console.error(
      flags.large
        ? "\nnotMNIST is not bundled. Get notMNIST_large.tar.gz (247 MB) and " +
          "notMNIST_small.tar.gz (8.5 MB) with `deno task datasets notmnist --variant large` on a " +
          "machine with network access, or copy both into a directory and pass --data-dir DIR."
        : "\nnotMNIST is not bundled. Get notMNIST_small.tar.gz (8.5 MB) with " +
          "`deno task datasets notmnist` on a machine with network access, or copy it into a " +
          "directory and pass --data-dir DIR.",
    );
    Deno.exit(1);
  }
  const train = limitTrain(data.train, flags);
  console.log(`notMNIST: ${train.length} training and ${data.test.length} test images`);
  const model = notMnistMlp({
    hidden,
    activation: String(flags.activation),
    l2: Number(flags.l2),
    dropout: Number(flags.dropout),
    seed,
  });
  model.summary();
  const stepsPerEpoch = Math.ceil(train.length / batchSize);
  const decay = Number(flags.decay);
  model.compile({
    optimizer: optim.sgd({
      learningRate: decay === 1 ? Number(flags.lr) : optim.exponentialDecay({
        initialLearningRate: Number(flags.lr),
        decaySteps: stepsPerEpoch,
        decayRate: decay,
      }),
      momentum: Number(flags.momentum),
    }),
    loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
    metrics: ["accuracy"],
  });
  const t0 = performance.now();
  const history = await model.fit(train, {
    epochs,
    batchSize,
    seed,
    validationData: data.test,
    verbose: Number(flags.verbose) as 0 | 1 | 2,
  });
  const seconds = (performance.now() - t0) / 1000;
  await finish(model, history, data.test, seconds, flags, train.length);
  model.dispose();
}
