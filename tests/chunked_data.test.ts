/**
 * Data sets larger than one storage binding: `fit`, `evaluate` and `predict` upload them in
 * chunks of whole rows and gather each batch chunk by chunk. The chunk size is lowered here (to
 * a few hundred bytes) so that small sets take that path; training must give bit-for-bit the
 * weights, history, evaluation and predictions of the unchunked set, because every batch holds
 * the same rows in the same order.
 * @module
 */
import { losses, nn, optim, type Tensor } from "../mod.ts";
import { setDataChunkBytes } from "../src/train/trainer.ts";
import { Rng } from "./harness.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function sameBits(a: Float32Array, b: Float32Array, label: string): void {
  assert(a.length === b.length, `${label}: ${a.length} values against ${b.length}`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      throw new Error(`${label}: element ${i} is ${a[i]} with chunks and ${b[i]} without`);
    }
  }
}

interface Run {
  weights: Float32Array[];
  history: Record<string, number[]>;
  evaluation: Record<string, number>;
  predictions: Float32Array;
}

/** Trains a small model on `x`/`y` (2 epochs, shuffled, a validation split) and collects all. */
async function run(
  x: Uint8Array | Float32Array,
  y: Uint8Array | Float32Array,
  inputShape: number[],
  oneHot: boolean,
  chunkBytes: number | null,
): Promise<Run> {
  setDataChunkBytes(chunkBytes);
  try {
    const model = nn.sequential([
      nn.flatten(),
      nn.dense(12, { activation: "relu" }),
      nn.dropout(0.25),
      nn.dense(5, { activation: oneHot ? "softmax" : "linear" }),
    ], { inputShape, seed: 3 });
    model.compile({
      optimizer: optim.adam({ learningRate: 0.01 }),
      loss: oneHot
        ? losses.categoricalCrossentropy()
        : losses.sparseCategoricalCrossentropy({ fromLogits: true }),
      metrics: ["accuracy"],
    });
    const h = await model.fit(x, y, {
      epochs: 2,
      batchSize: 16,
      seed: 11,
      validationSplit: 0.2,
      verbose: 0,
    });
    const evaluation = await model.evaluate(x, y, { batchSize: 32, verbose: 0 });
    const out = await model.predict(x, { batchSize: 32 }) as Tensor;
    const predictions = await out.data() as Float32Array;
    out.dispose();
    const weights = await model.getWeights();
    model.dispose();
    return { weights, history: h.history, evaluation, predictions };
  } finally {
    setDataChunkBytes(null);
  }
}

function compareRuns(a: Run, b: Run, label: string): void {
  a.weights.forEach((w, i) => sameBits(w, b.weights[i], `${label}: weight ${i}`));
  for (const [k, v] of Object.entries(b.history)) {
    sameBits(Float32Array.from(a.history[k]), Float32Array.from(v), `${label}: history ${k}`);
  }
  for (const [k, v] of Object.entries(b.evaluation)) {
    assert(a.evaluation[k] === v, `${label}: evaluate ${k} ${a.evaluation[k]} against ${v}`);
  }
  sameBits(a.predictions, b.predictions, `${label}: predictions`);
}

Deno.test("fit/evaluate/predict: byte images in chunks train exactly as one upload", async () => {
  const rng = new Rng(21);
  const n = 150;
  // Rows of 7 × 3 bytes: not a whole number of words (each chunk is packed from its word 0).
  const x = Uint8Array.from({ length: n * 21 }, () => rng.int(0, 255));
  const y = Uint8Array.from({ length: n }, () => rng.int(0, 4));
  const whole = await run(x, y, [7, 3], false, null);
  // 200 bytes: 9 rows of 21 bytes per chunk (17 chunks); labels 50 per chunk (3 chunks).
  const parts = await run(x, y, [7, 3], false, 200);
  compareRuns(parts, whole, "bytes [7, 3] in 200-byte chunks");
  // Rows of 4 × 4 bytes (whole words): 12 rows per chunk.
  const x2 = Uint8Array.from({ length: n * 16 }, () => rng.int(0, 255));
  compareRuns(
    await run(x2, y, [4, 4], false, 200),
    await run(x2, y, [4, 4], false, null),
    "bytes [4, 4] in 200-byte chunks",
  );
});

Deno.test("fit/evaluate/predict: float inputs and one-hot targets in chunks train exactly as one upload", async () => {
  const rng = new Rng(22);
  const n = 90;
  const x = rng.floats(n * 6, -1, 1);
  const y = new Float32Array(n * 5);
  for (let i = 0; i < n; i++) y[i * 5 + rng.int(0, 4)] = 1;
  // 100 bytes: 4 rows of 6 floats, 5 one-hot rows per chunk.
  compareRuns(
    await run(x, y, [6], true, 100),
    await run(x, y, [6], true, null),
    "f32 [6] and one-hot targets in 100-byte chunks",
  );
});
