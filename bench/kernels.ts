/**
 * Kernel benchmarks: throughput of the element-wise, reduction and layout kernels, and the fixed
 * cost of a dispatch, on the current WebGPU adapter. Each figure is the median of 5 timed runs
 * after a warm-up; a run records `reps` dispatches into one submit and ends with a readback.
 *
 * Run: `deno task bench` (add `--json=bench/kernels.json` to write the figures).
 * @module
 */
import {
  add,
  exp,
  flush,
  gpuInfo,
  randomNormal,
  sum,
  type Tensor,
  tensor,
  transpose,
} from "../mod.ts";

interface Row {
  kernel: string;
  shape: string;
  msPerOp: number;
  gbPerS: number;
}

const info = await gpuInfo();
const jsonArg = Deno.args.find((a) => a.startsWith("--json"));
console.log(`wgrad kernel benchmarks — adapter "${info.description}", Deno ${info.deno}`);

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
  await runOnce(); // warm-up: pipelines, buffers
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) samples.push(await runOnce());
  samples.sort((a, b) => a - b);
  return samples[2] / reps;
}

const rows: Row[] = [];
async function bench(kernel: string, shape: number[], bytesPerOp: number, op: () => Tensor) {
  const reps = 20;
  const ms = await time(reps, op);
  rows.push({ kernel, shape: `[${shape.join(", ")}]`, msPerOp: ms, gbPerS: bytesPerOp / ms / 1e6 });
}

for (const n of [1 << 16, 1 << 20, 1 << 22]) {
  const x = randomNormal([n], { seed: 1 });
  const y = randomNormal([n], { seed: 2 });
  await bench("add (same shape)", [n], 12 * n, () => add(x, y));
  await bench("exp", [n], 8 * n, () => exp(x));
  await bench("sum (all)", [n], 4 * n, () => sum(x));
  x.dispose();
  y.dispose();
}
{
  const [r, c] = [4096, 256];
  const x = randomNormal([r, c], { seed: 3 });
  const b = randomNormal([c], { seed: 4 });
  await bench("add (bias broadcast)", [r, c], 8 * r * c, () => add(x, b));
  await bench("sum (axis 0)", [r, c], 4 * r * c, () => sum(x, 0));
  await bench("sum (axis 1)", [r, c], 4 * r * c, () => sum(x, 1));
  await bench("transpose", [r, c], 8 * r * c, () => transpose(x));
  x.dispose();
  b.dispose();
}

// Fixed cost: many tiny dispatches in one submit.
const one = tensor([1]);
await flush();
const perDispatch = await time(500, () => add(one, one));
one.dispose();

console.log("\nkernel                  shape            ms/op     GB/s");
for (const r of rows) {
  console.log(
    `${r.kernel.padEnd(23)} ${r.shape.padEnd(15)} ${r.msPerOp.toFixed(3).padStart(7)} ${
      r.gbPerS.toFixed(2).padStart(8)
    }`,
  );
}
console.log(
  `\nfixed cost per tiny dispatch (recorded in one submit): ${(perDispatch * 1000).toFixed(1)} µs`,
);

if (jsonArg) {
  const path = jsonArg.includes("=")
    ? jsonArg.slice(jsonArg.indexOf("=") + 1)
    : "bench/kernels.json";
  const out = {
    adapter: info.description,
    deno: info.deno,
    date: new Date().toISOString(),
    rows,
    perDispatchUs: perDispatch * 1000,
  };
  await Deno.writeTextFile(path + ".tmp", JSON.stringify(out, null, 2));
  await Deno.rename(path + ".tmp", path);
  console.log(`figures written to ${path}`);
}
