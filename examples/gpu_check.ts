/**
 * GPU self-check: names the WebGPU adapter, runs each kernel family on random data, compares the
 * results with a float64 CPU computation and prints the largest error and the time taken.
 *
 * Run: `deno run --allow-env=XDG_RUNTIME_DIR examples/gpu_check.ts`.
 * @module
 */
import {
  add,
  argmax,
  exp,
  flush,
  gpuInfo,
  memoryInfo,
  mul,
  randomNormal,
  scope,
  sum,
  type Tensor,
  transpose,
} from "../mod.ts";

const info = await gpuInfo();
console.log(`wgrad self-check on "${info.description}" (Deno ${info.deno})`);
console.log(
  `  fallback adapter: ${info.isFallbackAdapter}; max storage binding: ${
    info.limits.maxStorageBufferBindingSize / 2 ** 20
  } MiB; features: ${info.features.join(", ") || "none"}`,
);

const [rows, cols] = [257, 129];
const a = randomNormal([rows, cols], { seed: 1 });
const b = randomNormal([cols], { seed: 2 });
const [av, bv] = [await a.data(), await b.data()];

interface Check {
  name: string;
  run: () => Tensor;
  ref: () => ArrayLike<number>;
}

const checks: Check[] = [
  {
    name: "broadcast add [257,129]+[129]",
    run: () => add(a, b),
    ref: () => Array.from(av, (v, i) => v + bv[i % cols]),
  },
  {
    name: "exp ∘ mul",
    run: () => exp(mul(a, 0.5)),
    ref: () => Array.from(av, (v) => Math.exp(v * 0.5)),
  },
  {
    name: "sum over axis 0",
    run: () => sum(a, 0),
    ref: () =>
      Array.from({ length: cols }, (_, j) => {
        let s = 0;
        for (let i = 0; i < rows; i++) s += av[i * cols + j];
        return s;
      }),
  },
  {
    name: "argmax over axis 1",
    run: () => argmax(a, 1),
    ref: () =>
      Array.from({ length: rows }, (_, i) => {
        let best = 0;
        for (let j = 1; j < cols; j++) if (av[i * cols + j] > av[i * cols + best]) best = j;
        return best;
      }),
  },
  {
    name: "transpose [257,129]",
    run: () => transpose(a),
    ref: () =>
      Array.from({ length: rows * cols }, (_, k) => av[(k % rows) * cols + Math.floor(k / rows)]),
  },
];

let failed = 0;
for (const c of checks) {
  const t0 = performance.now();
  const out = scope(c.run);
  const got = await out.data();
  const ms = performance.now() - t0;
  out.dispose();
  const want = c.ref();
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  }
  const ok = got.length === want.length && err < 1e-5;
  if (!ok) failed++;
  console.log(
    `  ${ok ? "ok  " : "FAIL"} ${c.name.padEnd(30)} max rel. error ${err.toExponential(2)}  ` +
      `${ms.toFixed(1)} ms (incl. readback)`,
  );
}

// Throughput of a memory-bound kernel, 50 dispatches in one submit.
const big = randomNormal([1 << 20], { seed: 3 });
await flush();
const t0 = performance.now();
let acc = big;
for (let i = 0; i < 50; i++) {
  const next = add(acc, 1);
  if (acc !== big) acc.dispose();
  acc = next;
}
await acc.data();
const secs = (performance.now() - t0) / 1000;
console.log(
  `  add on 1M elements: ${(50 * 3 * 4 * (1 << 20) / secs / 1e9).toFixed(2)} GB/s ` +
    `(${(50 / secs).toFixed(0)} dispatches/s incl. one readback)`,
);
acc.dispose();
big.dispose();
a.dispose();
b.dispose();
console.log(`  GPU memory in use after the run: ${memoryInfo().bytesInUse} bytes`);
console.log(failed ? `self-check FAILED (${failed} kernels)` : "self-check passed");
if (failed) Deno.exit(1);
