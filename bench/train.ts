/**
 * Training throughput: samples per second of compiled training steps (forward, backward, the
 * optimizer, loss and accuracy accumulation; one submit per step) for the seed notebooks' models
 * on Fashion-MNIST: the MLPs at batch 32 and 128, LeNet-5 at batch 128 and the small CNN of
 * examples/cnn_fashion.ts at batch 64. Each figure is the median of 3 timed epochs of `--steps`
 * steps (`--conv-steps` for the convolutional models) after a warm-up epoch; the capture of the
 * step (compile) is excluded.
 *
 * Run: `deno task bench:train` (add `--json=bench/train.json` to write the figures,
 * `--steps N` to change the epoch length, `--profile` to time each command of every compiled
 * training step alone, `--only NAME` to run the workloads whose name contains NAME,
 * `--no-weight-update` to store every gradient and leave all updates to the optimizer's dispatch,
 * as before dense kernels were updated in their gradient products' epilogue).
 * bench/compare.ts imports the workloads and {@linkcode measureWgrad} to run them side by side
 * with TensorFlow.js.
 * @module
 */
import { parseArgs } from "node:util";
import { datasets, gpuInfo, losses, nn, optim } from "../mod.ts";
import { type Plan, ready } from "../src/gpu/runtime.ts";
import { setWeightUpdates } from "../src/train/trainer.ts";
import { lenet } from "../examples/lenet_fashion.ts";
import { smallCnn } from "../examples/cnn_fashion.ts";

/** The architecture of a workload, which bench/tfjs.ts builds again in TensorFlow.js. */
export type Architecture =
  | { kind: "mlp"; widths: readonly number[] }
  | { kind: "lenet" }
  | { kind: "smallCnn" };

/** A training workload: a model, its recipe, and how many steps an epoch of the benchmark has. */
export interface Workload {
  name: string;
  batch: number;
  steps: number;
  /** Whether it is convolutional (slow on llvmpipe: fewer steps). */
  conv: boolean;
  /** One-hot targets (categorical cross-entropy) instead of sparse labels. */
  oneHot: boolean;
  arch: Architecture;
  build: () => nn.Model;
}

/** One measured workload. */
export interface Row {
  model: string;
  batch: number;
  samplesPerSecond: number;
  msPerStep: number;
  /** Steps per timed epoch. */
  steps: number;
  /** The training loss of the last epoch (a check that the model trains). */
  loss: number;
}

/** Fashion-MNIST as `datasets.fashionMnist` returns it. */
export type Fashion = Awaited<ReturnType<typeof datasets.fashionMnist>>;

const mlp = (widths: readonly number[]) => () => {
  const model = nn.sequential([
    nn.flatten(),
    ...widths.map((w) => nn.dense(w, { activation: "relu" })),
    nn.dense(10),
  ], { inputShape: [28, 28], seed: 1 });
  model.compile({
    optimizer: optim.adam(),
    loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
    metrics: ["accuracy"],
  });
  return model;
};

/**
 * The benchmark's workloads: the MLPs 784-128-10 and 784-256-128-64-64-10 (Adam, sparse
 * categorical cross-entropy from logits) at batch 32 and 128 with `steps` steps per epoch, LeNet-5
 * (SGD 0.01, one-hot labels) at batch 128 and the small CNN (Adam) at batch 64 with `convSteps`.
 */
export function trainWorkloads(steps: number, convSteps: number): Workload[] {
  const list: Workload[] = [
    ...[32, 128].map((batch) => ({
      name: "MLP 784-128-10",
      batch,
      steps,
      conv: false,
      oneHot: false,
      arch: { kind: "mlp", widths: [128] } as const,
      build: mlp([128]),
    })),
    ...[32, 128].map((batch) => ({
      name: "MLP 784-256-128-64-64-10",
      batch,
      steps,
      conv: false,
      oneHot: false,
      arch: { kind: "mlp", widths: [256, 128, 64, 64] } as const,
      build: mlp([256, 128, 64, 64]),
    })),
    {
      name: "LeNet-5 (SGD, one-hot)",
      batch: 128,
      steps: convSteps,
      conv: true,
      oneHot: true,
      arch: { kind: "lenet" },
      build: () => {
        const model = lenet({ seed: 1 });
        model.compile({
          optimizer: optim.sgd({ learningRate: 0.01 }),
          loss: losses.categoricalCrossentropy(),
          metrics: ["accuracy"],
        });
        return model;
      },
    },
    {
      name: "small CNN (BN, dropout, Adam)",
      batch: 64,
      steps: convSteps,
      conv: true,
      oneHot: false,
      arch: { kind: "smallCnn" },
      build: () => {
        const model = smallCnn({ seed: 1 });
        model.compile({
          optimizer: optim.adam(),
          loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
          metrics: ["accuracy"],
        });
        return model;
      },
    },
  ];
  return list;
}

/** Whether `--only NAME` selects the workload (NAME is matched against "name bBATCH"). */
export function selected(w: Workload, only: string | undefined): boolean {
  return !only || `${w.name} b${w.batch}`.includes(only);
}

/**
 * Trains the workload in wgrad on the first `steps · batch` training images: a warm-up epoch, then
 * 3 timed epochs (`fit` of one epoch each, timed from its onTrainBegin to its onTrainEnd); the
 * median counts.
 */
export async function measureWgrad(
  w: Workload,
  data: Fashion,
  options: { steps?: number; profile?: boolean } = {},
): Promise<Row> {
  const { batch } = w;
  const n = Math.min((options.steps ?? w.steps) * batch, data.train.length);
  const labels = data.train.y.subarray(0, n);
  const split = {
    x: data.train.x.subarray(0, n * 784),
    y: w.oneHot ? datasets.oneHot(labels, 10) : labels,
  };
  const model = w.build();
  const times: number[] = [];
  let t0 = 0;
  let loss = NaN;
  const timer = {
    onTrainBegin: () => void (t0 = performance.now()),
    onTrainEnd: () => void times.push(performance.now() - t0),
  };
  for (let run = 0; run < 4; run++) {
    const h = await model.fit(split, {
      epochs: 1,
      batchSize: batch,
      verbose: 0,
      callbacks: [timer],
    });
    loss = h.history.loss?.at(-1) ?? NaN;
  }
  if (options.profile) await profile(model, split, batch, `${w.name} batch ${batch}`);
  times.shift(); // warm-up
  times.sort((a, b) => a - b);
  const ms = times[1];
  const stepsRun = Math.ceil(n / batch);
  model.dispose();
  return {
    model: w.name,
    batch,
    samplesPerSecond: n / (ms / 1000),
    msPerStep: ms / stepsRun,
    steps: stepsRun,
    loss,
  };
}

/**
 * Times each command of the model's compiled training step: its GPU time from timestamp queries
 * where the device has them (Runtime.profileTimestamps), and its wall time replayed alone, fixed
 * costs included (Runtime.profile).
 */
async function profile(
  model: nn.Model,
  split: { x: Uint8Array; y: Uint8Array | Float32Array },
  batch: number,
  title: string,
): Promise<void> {
  const rt = await ready();
  let plan: Plan | null = null;
  const stop = rt.observePlans((p) => {
    if (p.label.startsWith("train step")) plan = p;
  });
  type Report = Awaited<ReturnType<typeof rt.profile>>;
  let alone: Report | null = null;
  let stamped: Report | null = null;
  const probe = {
    onTrainEnd: async () => {
      if (!plan) return;
      stamped = await rt.profileTimestamps(plan);
      alone = await rt.profile(plan);
    },
  };
  const one = {
    x: split.x.subarray(0, batch * 784),
    y: split.y.subarray(0, batch * (split.y.length / (split.x.length / 784))),
  };
  await model.fit(one, { epochs: 1, batchSize: batch, verbose: 0, callbacks: [probe] });
  stop();
  if (!alone) return;
  const a = alone as Report;
  const t = stamped as Report | null;
  const sum = (r: Report) => r.commands.reduce((s, c) => s + c.us, 0);
  console.log(
    `\n${title}: ${a.commands.length} commands; ` +
      (t
        ? `GPU time (timestamp queries, median of 15 replays) ${sum(t).toFixed(0)} µs in ` +
          `commands, ${t.total.toFixed(0)} µs from the first to the last; `
        : "no timestamp queries on this device; ") +
      `wall time replayed alone ${a.total.toFixed(0)} µs per step`,
  );
  console.log(`${t ? "     GPU µs" : ""}   alone µs  command`);
  a.commands.forEach((c, i) => {
    const g = t ? t.commands[i].us.toFixed(0).padStart(11) : "";
    console.log(`${g}${c.us.toFixed(0).padStart(11)}  ${c.label.slice(0, 100)}`);
  });
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "string" },
      steps: { type: "string", default: "400" },
      profile: { type: "boolean", default: false },
      only: { type: "string" },
      "conv-steps": { type: "string", default: "40" },
      "no-weight-update": { type: "boolean", default: false },
    },
  });
  // For before/after figures: every gradient stored, and the optimizer's one dispatch updating all.
  if (flags["no-weight-update"]) setWeightUpdates(false);
  const info = await gpuInfo();
  console.log(`wgrad training benchmark — adapter "${info.description}", Deno ${info.deno}`);
  const data = await datasets.fashionMnist({ sample: "fallback", quiet: true });
  const rows: Row[] = [];
  for (const w of trainWorkloads(Number(flags.steps), Number(flags["conv-steps"]))) {
    if (!selected(w, flags.only)) continue;
    rows.push(await measureWgrad(w, data, { profile: flags.profile }));
  }

  console.log("\nmodel                         batch   samples/s   ms/step");
  for (const r of rows) {
    console.log(
      `${r.model.padEnd(29)} ${String(r.batch).padStart(5)} ${
        r.samplesPerSecond.toFixed(0).padStart(11)
      } ${r.msPerStep.toFixed(2).padStart(9)}`,
    );
  }
  if (flags.json) {
    const out = {
      adapter: info.description,
      deno: info.deno,
      date: new Date().toISOString(),
      sample: data.sample,
      rows,
    };
    await Deno.writeTextFile(flags.json + ".tmp", JSON.stringify(out, null, 2));
    await Deno.rename(flags.json + ".tmp", flags.json);
    console.log(`figures written to ${flags.json}`);
  }
}
