/**
 * Matmul benchmarks: GFLOP/s of the register-tiled matmul kernel for the shapes of the example
 * networks and square products, forward (`x·w`, and the fused `linear` with bias and relu) and
 * the two backward products of a dense layer (`dx = dy·wᵀ`, `dw = xᵀ·dy`). Each figure is the
 * median of 7 timed runs after a warm-up; a run records many products into one submit and ends
 * with one readback, so that the fixed costs of submit and readback are amortised.
 *
 * Run: `deno run --allow-env=XDG_RUNTIME_DIR bench/matmul.ts` (add `--allow-write=bench
 * --json=bench/matmul.json` to write the figures, `--allow-sys=loadavg` to print the system
 * load, `--quick` for fewer, shorter runs).
 * @module
 */
import { flush, gpuInfo, linear, matmul, randomNormal, type Tensor } from "../mod.ts";

interface Row {
  /** What is computed, e.g. `x·w`. */
  op: string;
  /** The layer or product the shape comes from. */
  case: string;
  /** M×K·K×N. */
  shape: string;
  ms: number;
  gflops: number;
}

const info = await gpuInfo();
const jsonArg = Deno.args.find((a) => a.startsWith("--json"));
const quick = Deno.args.includes("--quick");
console.log(`wgrad matmul benchmarks — adapter "${info.description}", Deno ${info.deno}`);

/** The 1-minute load average where `--allow-sys=loadavg` is granted (a CPU adapter shares it). */
function loadAverage(): number | null {
  const sys = { name: "sys", kind: "loadavg" } as const;
  return Deno.permissions.querySync(sys).state === "granted" ? Deno.loadavg()[0] : null;
}
const loadBefore = loadAverage();

/** Median time of one op in ms: `reps` ops per submit, one readback per run. */
async function time(reps: number, op: () => Tensor): Promise<number> {
  const runOnce = async () => {
    const t0 = performance.now();
    const outs: Tensor[] = [];
    for (let i = 0; i < reps; i++) outs.push(op());
    await outs[outs.length - 1].data();
    const ms = performance.now() - t0;
    for (const o of outs) o.dispose();
    return ms;
  };
  await runOnce(); // warm-up: pipeline creation, buffers
  const samples: number[] = [];
  for (let i = 0; i < (quick ? 5 : 7); i++) samples.push(await runOnce());
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1] / reps;
}

const rows: Row[] = [];

async function bench(
  op: string,
  name: string,
  m: number,
  k: number,
  n: number,
  fn: () => Tensor,
): Promise<void> {
  const flops = 2 * m * n * k;
  // Enough products per run for ~0.2 s of work at 10 GFLOP/s (at least 3, at most 50).
  const reps = Math.max(3, Math.min(50, Math.round((quick ? 5e8 : 2e9) / flops)));
  const ms = await time(reps, fn);
  const row = { op, case: name, shape: `${m}×${k}·${k}×${n}`, ms, gflops: flops / ms / 1e6 };
  rows.push(row);
  console.log(
    `${op.padEnd(14)} ${name.padEnd(22)} ${row.shape.padEnd(18)} ${ms.toFixed(3).padStart(9)} ms ${
      row.gflops.toFixed(2).padStart(7)
    } GFLOP/s`,
  );
}

/** A dense layer [batch, in] → [batch, out]: forward, fused forward, and both backward products. */
async function layer(name: string, batch: number, inputs: number, outputs: number): Promise<void> {
  const x = randomNormal([batch, inputs], { seed: 1 });
  const w = randomNormal([inputs, outputs], { seed: 2 });
  const b = randomNormal([outputs], { seed: 3 });
  const dy = randomNormal([batch, outputs], { seed: 4 });
  await flush();
  await bench("x·w", name, batch, inputs, outputs, () => matmul(x, w));
  await bench("relu(x·w + b)", name, batch, inputs, outputs, () => linear(x, w, b, "relu"));
  await bench(
    "dx = dy·wᵀ",
    name,
    batch,
    outputs,
    inputs,
    () => matmul(dy, w, { transposeB: true }),
  );
  await bench(
    "dw = xᵀ·dy",
    name,
    inputs,
    batch,
    outputs,
    () => matmul(x, dy, { transposeA: true }),
  );
  for (const t of [x, w, b, dy]) t.dispose();
}

/** A square product, plain and with each operand transposed. */
async function square(n: number): Promise<void> {
  const a = randomNormal([n, n], { seed: 5 });
  const b = randomNormal([n, n], { seed: 6 });
  await flush();
  await bench("a·b", `square ${n}`, n, n, n, () => matmul(a, b));
  await bench("a·bᵀ", `square ${n}`, n, n, n, () => matmul(a, b, { transposeB: true }));
  await bench("aᵀ·b", `square ${n}`, n, n, n, () => matmul(a, b, { transposeA: true }));
  a.dispose();
  b.dispose();
}

console.log(
  `\n${"op".padEnd(14)} ${"case".padEnd(22)} ${"M×K·K×N".padEnd(18)}      time    GFLOP/s`,
);
await layer("MLP dense 784→128 b32", 32, 784, 128);
await layer("MLP dense 784→256 b128", 128, 784, 256);
await layer("LeNet dense 5880→84", 128, 5880, 84);
await square(512);
if (!quick) await square(1024);

const loadAfter = loadAverage();
if (loadBefore !== null && loadAfter !== null) {
  console.log(
    `\nsystem load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after ` +
      `(on a CPU adapter, other processes share the cores the kernels run on)`,
  );
}

if (jsonArg) {
  const path = jsonArg.includes("=")
    ? jsonArg.slice(jsonArg.indexOf("=") + 1)
    : "bench/matmul.json";
  const out = {
    adapter: info.description,
    deno: info.deno,
    date: new Date().toISOString(),
    loadAverage: loadAfter,
    rows,
  };
  await Deno.writeTextFile(path, JSON.stringify(out, null, 2) + "\n");
  console.log(`figures written to ${path}`);
}
