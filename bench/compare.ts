/**
 * wgrad against TensorFlow.js 4.22 (WebGPU backend) on the same adapter, in the same run: the
 * training workloads of bench/train.ts, each trained first by wgrad (bench/train.ts's
 * `measureWgrad`) and then by TensorFlow.js (bench/tfjs.ts's `measureTfjs`), with the ratio of
 * their samples per second. Both sides time a warm-up epoch and then 3 epochs of N steps and
 * keep the median; compile is excluded. TensorFlow.js steps are the batches of a `model.fit`
 * epoch over tensors resident on the GPU (`--mode batch`: awaited `model.trainOnBatch` calls).
 *
 * Run: `deno task bench:compare` (`--only NAME` for the workloads whose "name bBATCH" contains
 * NAME; `--steps`, `--conv-steps` for wgrad's epoch lengths, `--tfjs-steps`,
 * `--tfjs-conv-steps` for TensorFlow.js's; `--json=bench/compare.json` writes the figures;
 * `--readme` rewrites the rows of README.md's comparison table). If TensorFlow.js's WebGPU
 * backend cannot start, the reason is printed and its CPU backend is measured, labelled as such.
 * @module
 */
import { parseArgs } from "node:util";
import { datasets, gpuInfo } from "../mod.ts";
import { measureWgrad, type Row, selected, trainWorkloads } from "./train.ts";
import { initTfjs, measureTfjs, type TfjsMode, type TfjsSetup } from "./tfjs.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "string" },
    readme: { type: "boolean", default: false },
    only: { type: "string" },
    steps: { type: "string", default: "200" },
    "conv-steps": { type: "string", default: "20" },
    "tfjs-steps": { type: "string", default: "50" },
    "tfjs-conv-steps": { type: "string", default: "2" },
    mode: { type: "string", default: "fit" },
    backend: { type: "string", default: "webgpu" },
  },
});
const mode = flags.mode as TfjsMode;
if (mode !== "fit" && mode !== "batch") throw new Error(`--mode is fit or batch, not ${mode}`);

const info = await gpuInfo();
let tfjs: TfjsSetup;
try {
  tfjs = await initTfjs(flags.backend);
} catch (e) {
  console.log(`${(e as Error).message}\nfalling back to TensorFlow.js's CPU backend`);
  tfjs = await initTfjs("cpu");
}
const tfjsLabel = tfjs.backend === "webgpu" ? "tfjs" : `tfjs (${tfjs.backend} backend)`;
const steps = mode === "fit"
  ? "batches of one model.fit epoch"
  : "awaited model.trainOnBatch calls";
console.log(
  `wgrad vs TensorFlow.js ${tfjs.version} (${tfjs.backend} backend), training samples/s — ` +
    `adapter "${info.description}" (TensorFlow.js: "${tfjs.adapter}"), Deno ${info.deno}\n` +
    `median of 3 timed epochs after a warm-up; TensorFlow.js steps are ${steps}`,
);

const data = await datasets.fashionMnist({ sample: "fallback", quiet: true });
const wgradWorkloads = trainWorkloads(Number(flags.steps), Number(flags["conv-steps"]));
const tfjsWorkloads = trainWorkloads(Number(flags["tfjs-steps"]), Number(flags["tfjs-conv-steps"]));

interface Pair {
  model: string;
  batch: number;
  wgrad: Row;
  tfjs: Row;
  /** wgrad's samples/s over TensorFlow.js's. */
  ratio: number;
}
const pairs: Pair[] = [];
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

console.log(
  `\n${"workload".padEnd(29)} ${"batch".padStart(5)} ${"wgrad/s".padStart(9)} ` +
    `${"ms/step".padStart(8)} ${"tfjs/s".padStart(9)} ${"ms/step".padStart(9)} ` +
    `${"ratio".padStart(7)}   loss wgrad / tfjs`,
);
for (let i = 0; i < wgradWorkloads.length; i++) {
  const w = wgradWorkloads[i];
  if (!selected(w, flags.only)) continue;
  const a = await measureWgrad(w, data);
  const b = await measureTfjs(tfjsWorkloads[i], data, { mode });
  const ratio = a.samplesPerSecond / b.samplesPerSecond;
  pairs.push({ model: w.name, batch: w.batch, wgrad: a, tfjs: b, ratio });
  console.log(
    `${w.name.padEnd(29)} ${String(w.batch).padStart(5)} ${fmt(a.samplesPerSecond).padStart(9)} ` +
      `${a.msPerStep.toFixed(1).padStart(8)} ${fmt(b.samplesPerSecond).padStart(9)} ` +
      `${b.msPerStep.toFixed(1).padStart(9)} ${(ratio.toFixed(1) + "×").padStart(7)}   ` +
      `${a.loss.toFixed(3)} / ${b.loss.toFixed(3)} (${a.steps} / ${b.steps} steps)`,
  );
}

if (flags.json) {
  const out = {
    adapter: info.description,
    tfjsAdapter: tfjs.adapter,
    deno: info.deno,
    tfjs: tfjs.version,
    tfjsBackend: tfjs.backend,
    tfjsMode: mode,
    date: new Date().toISOString(),
    sample: data.sample,
    pairs,
  };
  await Deno.writeTextFile(flags.json + ".tmp", JSON.stringify(out, null, 2));
  await Deno.rename(flags.json + ".tmp", flags.json);
  console.log(`figures written to ${flags.json}`);
}

if (flags.readme) await updateReadme("README.md");

/**
 * Rewrites the comparison table between README.md's `<!-- bench:compare -->` and
 * `<!-- /bench:compare -->` markers: rows measured now replace those of the same workload and
 * batch, other rows stay.
 */
async function updateReadme(path: string): Promise<void> {
  const text = await Deno.readTextFile(path);
  const begin = "<!-- bench:compare -->", end = "<!-- /bench:compare -->";
  const i = text.indexOf(begin), j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${path} has no ${begin} … ${end} section`);
  const cells = (line: string) => line.split("|").slice(1, -1).map((c) => c.trim());
  const kept = new Map<string, string[]>();
  for (const line of text.slice(i + begin.length, j).split("\n")) {
    const c = cells(line);
    if (c.length === 6 && /^\d+$/.test(c[1])) kept.set(`${c[0]} b${c[1]}`, c);
  }
  for (const p of pairs) {
    kept.set(`${p.model} b${p.batch}`, [
      p.model,
      String(p.batch),
      fmt(p.wgrad.samplesPerSecond),
      fmt(p.tfjs.samplesPerSecond),
      `${p.ratio.toFixed(1)}×`,
      info.description,
    ]);
  }
  const order = wgradWorkloads.map((w) => `${w.name} b${w.batch}`);
  const rows = [...kept.entries()].sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([, c]) => c);
  const header = [
    "workload",
    "batch",
    "wgrad samples/s",
    `${tfjsLabel} samples/s`,
    "ratio",
    "adapter",
  ];
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((c) => c[k].length)));
  const line = (c: string[]) => `| ${c.map((x, k) => x.padEnd(widths[k])).join(" | ")} |`;
  const table = [line(header), line(widths.map((n) => "-".repeat(n))), ...rows.map(line)];
  const out = `${text.slice(0, i + begin.length)}\n\n${table.join("\n")}\n\n${text.slice(j)}`;
  await Deno.writeTextFile(path, out);
  console.log(`${path}: comparison table rewritten`);
}
