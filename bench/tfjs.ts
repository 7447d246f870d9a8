/**
 * The training workloads of bench/train.ts in TensorFlow.js 4.22 with its WebGPU backend, on the
 * same adapter: same architectures, initializers (Keras's defaults: glorot-uniform kernels, zero
 * biases), optimizers, losses, batch sizes and Fashion-MNIST images (the first `steps · batch`
 * training images, normalised to [0, 1] floats and resident on the GPU). A "step" is one batch of
 * a `model.fit` epoch (the normal way; `--mode batch` uses `model.trainOnBatch` per step instead,
 * which reads the loss back every step). Each figure is the median of 3 timed epochs of `--steps`
 * steps after a warm-up epoch.
 *
 * TensorFlow.js has no sparse cross-entropy from logits: the MLPs and the small CNN train with
 * `tf.losses.softmaxCrossEntropy` on one-hot labels, which computes the same loss.
 *
 * A development dependency only: nothing in mod.ts or src/ imports TensorFlow.js.
 *
 * Run: `deno task bench:tfjs` (`--only NAME`, `--steps N`, `--conv-steps N`, `--mode fit|batch`,
 * `--backend cpu` for TensorFlow.js's CPU backend). bench/compare.ts runs it beside wgrad.
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import { parseArgs } from "node:util";
import { datasets } from "../mod.ts";
import { type Fashion, type Row, selected, trainWorkloads, type Workload } from "./train.ts";

/** How TensorFlow.js steps are driven. */
export type TfjsMode = "fit" | "batch";

/** The backend TensorFlow.js runs on, and the adapter it reports. */
export interface TfjsSetup {
  backend: string;
  adapter: string;
  version: string;
}

/**
 * Selects TensorFlow.js's backend (`"webgpu"` by default). Throws with TensorFlow.js's reason when
 * the backend cannot be initialised.
 */
export async function initTfjs(backend = "webgpu"): Promise<TfjsSetup> {
  let ok = false;
  try {
    ok = await tf.setBackend(backend);
  } catch (e) {
    throw new Error(`TensorFlow.js backend "${backend}" failed: ${(e as Error).message}`);
  }
  if (!ok || tf.getBackend() !== backend) {
    throw new Error(
      `TensorFlow.js backend "${backend}" did not initialise (navigator.gpu: ${
        "gpu" in navigator ? "present" : "absent"
      }); current backend: ${tf.getBackend()}`,
    );
  }
  await tf.ready();
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  const info = device?.adapterInfo;
  const adapter = info
    ? (info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" "))
    : backend;
  return { backend, adapter, version: tf.version.tfjs };
}

/** Builds and compiles the workload's model in TensorFlow.js. */
export function buildTfjs(w: Workload): tf.LayersModel {
  const softmaxXent = (yTrue: tf.Tensor, yPred: tf.Tensor) =>
    tf.losses.softmaxCrossEntropy(yTrue, yPred);
  const arch = w.arch;
  let model: tf.Sequential;
  if (arch.kind === "mlp") {
    model = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [28, 28] }),
        ...arch.widths.map((units) => tf.layers.dense({ units, activation: "relu" })),
        tf.layers.dense({ units: 10 }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(1e-3), loss: softmaxXent, metrics: ["accuracy"] });
  } else if (arch.kind === "lenet") {
    const conv = (filters: number, padding: "same" | "valid" = "valid") =>
      tf.layers.conv2d({ filters, kernelSize: 5, padding, activation: "tanh" });
    model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [28, 28, 1],
          filters: 6,
          kernelSize: 5,
          padding: "same",
          activation: "tanh",
        }),
        tf.layers.averagePooling2d({ poolSize: 2, strides: 1 }),
        conv(16),
        tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }),
        conv(120),
        tf.layers.flatten(),
        tf.layers.dense({ units: 84, activation: "tanh" }),
        tf.layers.dense({ units: 10, activation: "softmax" }),
      ],
    });
    model.compile({
      optimizer: tf.train.sgd(0.01),
      loss: "categoricalCrossentropy",
      metrics: ["accuracy"],
    });
  } else {
    model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [28, 28, 1],
          filters: 32,
          kernelSize: 3,
          padding: "same",
          activation: "relu",
        }),
        tf.layers.batchNormalization(),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.dropout({ rate: 0.25 }),
        tf.layers.conv2d({ filters: 64, kernelSize: 3, padding: "same", activation: "relu" }),
        tf.layers.batchNormalization(),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.dropout({ rate: 0.25 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 128, activation: "relu" }),
        tf.layers.dropout({ rate: 0.5 }),
        tf.layers.dense({ units: 10 }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(1e-3), loss: softmaxXent, metrics: ["accuracy"] });
  }
  return model;
}

/**
 * Trains the workload in TensorFlow.js on the first `steps · batch` training images: a warm-up
 * epoch, then 3 timed epochs; the median counts. In `"fit"` mode an epoch is one
 * `model.fit(x, y, { epochs: 1, batchSize, shuffle: true })` over tensors resident on the backend;
 * in `"batch"` mode it is `steps` awaited `model.trainOnBatch` calls on resident batch tensors.
 */
export async function measureTfjs(
  w: Workload,
  data: Fashion,
  options: { steps?: number; mode?: TfjsMode } = {},
): Promise<Row> {
  const { batch } = w;
  const mode = options.mode ?? "fit";
  const n = Math.min((options.steps ?? w.steps) * batch, data.train.length);
  const pixels = new Float32Array(n * 784);
  const bytes = data.train.x;
  for (let i = 0; i < pixels.length; i++) pixels[i] = bytes[i] / 255;
  const shape: [number, number, number] | [number, number, number, number] = w.arch.kind === "mlp"
    ? [n, 28, 28]
    : [n, 28, 28, 1];
  const x = tf.tensor(pixels, shape);
  const y = tf.tensor2d(datasets.oneHot(data.train.y.subarray(0, n), 10), [n, 10]);
  const model = buildTfjs(w);
  const steps = Math.ceil(n / batch);
  const batches = mode === "batch"
    ? Array.from({ length: steps }, (_, i) => {
      const size = Math.min(batch, n - i * batch);
      return [x.slice(i * batch, size), y.slice(i * batch, size)] as const;
    })
    : [];
  const times: number[] = [];
  let loss = NaN;
  for (let run = 0; run < 4; run++) {
    const t0 = performance.now();
    if (mode === "fit") {
      const h = await model.fit(x, y, { epochs: 1, batchSize: batch, shuffle: true, verbose: 0 });
      loss = Number(h.history.loss.at(-1));
    } else {
      let sum = 0;
      for (const [xb, yb] of batches) {
        const r = await model.trainOnBatch(xb, yb);
        sum += Array.isArray(r) ? r[0] : r;
      }
      loss = sum / steps;
    }
    times.push(performance.now() - t0);
  }
  times.shift(); // warm-up
  times.sort((a, b) => a - b);
  const ms = times[1];
  for (const [xb, yb] of batches) tf.dispose([xb, yb]);
  tf.dispose([x, y]);
  model.dispose();
  return {
    model: w.name,
    batch,
    samplesPerSecond: n / (ms / 1000),
    msPerStep: ms / steps,
    steps,
    loss,
  };
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string", default: "100" },
      "conv-steps": { type: "string", default: "5" },
      only: { type: "string" },
      mode: { type: "string", default: "fit" },
      backend: { type: "string", default: "webgpu" },
    },
  });
  const setup = await initTfjs(flags.backend);
  const mode = flags.mode as TfjsMode;
  console.log(
    `TensorFlow.js ${setup.version} training benchmark — backend ${setup.backend}, adapter ` +
      `"${setup.adapter}", Deno ${Deno.version.deno}, steps by model.${
        mode === "fit" ? "fit" : "trainOnBatch"
      }`,
  );
  const data = await datasets.fashionMnist({ sample: "fallback", quiet: true });
  console.log("\nmodel                         batch   samples/s   ms/step   loss");
  for (const w of trainWorkloads(Number(flags.steps), Number(flags["conv-steps"]))) {
    if (!selected(w, flags.only)) continue;
    const r = await measureTfjs(w, data, { mode });
    console.log(
      `${r.model.padEnd(29)} ${String(r.batch).padStart(5)} ${
        r.samplesPerSecond.toFixed(0).padStart(11)
      } ${r.msPerStep.toFixed(2).padStart(9)} ${r.loss.toFixed(3).padStart(6)}`,
    );
  }
}
