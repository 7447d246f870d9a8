/**
 * The four-pixel camera: a 2 × 2 image of black (−1) and white (+1) pixels is solid, vertical,
 * diagonal or horizontal. A network of Dense 4 tanh → Dense 4 tanh → Dense 8 relu → Dense 4
 * softmax, first with hand-set weights (each layer's job readable in its weights), then trained
 * from scratch with RMSprop and with Adagrad until it classifies every pattern.
 *
 * With the hand-set weights the horizontal pattern gives (0.178, 0.178, 0.178, 0.465).
 *
 * Run: deno run examples/four_pixel_camera.ts [--epochs N] [--seed N]
 * @module
 */
import { parseArgs } from "node:util";
import { losses, nn, optim, tensor } from "../mod.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    epochs: { type: "string", default: "300" },
    seed: { type: "string", default: "3" },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  console.log(`Four-pixel camera: hand-set weights, then RMSprop and Adagrad from scratch.
  --epochs N   training epochs for each optimizer (default 300)
  --seed N     seed of the initial weights (default 3)`);
  Deno.exit(0);
}

const CLASSES = ["solid", "vertical", "diagonal", "horizontal"];
// Pixels in the order top-left, top-right, bottom-left, bottom-right.
const PATTERNS: [number[], number][] = [
  [[1, 1, 1, 1], 0],
  [[-1, -1, -1, -1], 0],
  [[1, -1, 1, -1], 1],
  [[-1, 1, -1, 1], 1],
  [[1, -1, -1, 1], 2],
  [[-1, 1, 1, -1], 2],
  [[1, 1, -1, -1], 3],
  [[-1, -1, 1, 1], 3],
];

function camera(seed: number) {
  return nn.sequential([
    nn.dense(4, { activation: "tanh" }),
    nn.dense(4, { activation: "tanh" }),
    nn.dense(8, { activation: "relu" }),
    nn.dense(4, { activation: "softmax" }),
  ], { inputShape: [4], seed, name: "four_pixel_camera" });
}

// Layer 1: each unit sums the pixels with the signs of one pattern (×0.5): solid, vertical,
// diagonal, horizontal. Layer 2 sharpens each (×2). Layer 3 splits each into its positive and
// negative halves; layer 4 adds the halves back, so each class scores |its pattern's match|.
const SIGNS = [[1, 1, 1, 1], [1, -1, 1, -1], [1, -1, -1, 1], [1, 1, -1, -1]];
const w1 = [0, 1, 2, 3].map((p) => SIGNS.map((s) => 0.5 * s[p])); // [in 4, out 4]
const w2 = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => (i === j ? 2 : 0)));
const w3 = [0, 1, 2, 3].map((i) =>
  Array.from({ length: 8 }, (_, j) => (j === 2 * i ? 1 : j === 2 * i + 1 ? -1 : 0))
);
const w4 = Array.from(
  { length: 8 },
  (_, i) => [0, 1, 2, 3].map((c) => (Math.floor(i / 2) === c ? 1 : 0)),
);
const zeros = (n: number) => new Array(n).fill(0);

const hand = camera(Number(flags.seed));
hand.setWeights([w1, zeros(4), w2, zeros(4), w3, zeros(8), w4, zeros(4)]);
const horizontal = tensor([[1, 1, -1, -1]]);
const p = await (await hand.predict(horizontal)).data();
console.log(
  `hand-set weights, horizontal pattern → ${
    CLASSES.map((c, i) => `${c} ${p[i].toFixed(3)}`).join(", ")
  }`,
);

const x = tensor(PATTERNS.map(([px]) => px));
const y = tensor(PATTERNS.map(([, c]) => c), [PATTERNS.length], "i32");
const epochs = Number(flags.epochs);
for (
  const [name, opt] of [
    ["RMSprop", optim.rmsprop({ learningRate: 0.01 })],
    ["Adagrad", optim.adagrad({ learningRate: 0.1 })],
  ] as const
) {
  const model = camera(Number(flags.seed));
  model.compile({
    optimizer: opt,
    loss: losses.sparseCategoricalCrossentropy(),
    metrics: ["accuracy"],
  });
  const h = await model.fit(x, y, { epochs, batchSize: 8, verbose: 0 });
  const r = await model.evaluate(x, y);
  console.log(
    `${name}: ${epochs} epochs, loss ${h.history.loss.at(-1)!.toFixed(4)} → evaluate: loss ` +
      `${r.loss.toFixed(4)}, accuracy ${r.accuracy.toFixed(4)}`,
  );
  model.dispose();
}
