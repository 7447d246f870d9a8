/**
 * Allocation failures name the buffer, its size, the limit and the engine's GPU memory: sizes over
 * the device's limits are refused before `createBuffer` (tensors, a model's weights, the parameter
 * arena of a first fit), and an out-of-memory error reported asynchronously by an error scope names
 * the buffer that could not be allocated and the largest ones held (a device stub plays the GPU
 * running out, which llvmpipe never does at sizes a test can afford).
 * @module
 */
import { flush, memoryInfo, nn, resetGpu, tensor, WgradError, zeros } from "../mod.ts";
import { bufferSize, formatBytes, sizeClass } from "../src/gpu/buffers.ts";
import { requestDeviceContext } from "../src/gpu/device.ts";
import { ready, Runtime } from "../src/gpu/runtime.ts";
import { assertRejectsWgrad, assertWgradError } from "./harness.ts";
import { assert } from "./harness_assert.ts";

const rt0 = await ready();
const MAX_BUFFER = rt0.limits.maxBufferSize;
const MAX_BINDING = rt0.limits.maxStorageBufferBindingSize;
/** Tests that fill CPU arrays of maxStorageBufferBindingSize run only where that is small. */
const SMALL_BINDING = MAX_BINDING <= 2 ** 28;

/** What a message says about the engine's memory now. */
function held(): string {
  const m = memoryInfo();
  return `wgrad holds ${formatBytes(m.bytesAllocated)} of GPU buffers (${
    formatBytes(m.bytesInUse)
  } in live tensors, ${formatBytes(m.bytesPooled)} pooled for reuse)`;
}

Deno.test("formatBytes and bufferSize", () => {
  const cases: [number, string][] = [
    [0, "0 bytes"],
    [1023, "1023 bytes"],
    [1024, "1.00 KiB"],
    [144_000_000, "137.33 MiB"],
    [2 ** 31 - 1, "2.00 GiB"],
    [2 ** 41, "2.00 TiB"],
  ];
  for (const [n, s] of cases) {
    assert(formatBytes(n) === s, `formatBytes(${n}) = ${formatBytes(n)}, expected ${s}`);
  }
  // A region under maxBufferSize whose size class is over it gets a buffer of its own size.
  const max = 2 ** 31 - 1;
  assert(sizeClass(2 ** 31 - 4) > max, "the class of 2^31 - 4 bytes exceeds 2^31 - 1");
  assert(bufferSize(2 ** 31 - 4, max) === 2 ** 31 - 4, "exact size under the limit");
  assert(bufferSize(2 ** 31 - 3, max) === sizeClass(2 ** 31 - 3), "over the limit: the class");
  assert(bufferSize(1000, max) === sizeClass(1000), "the size class otherwise");
});

Deno.test("a tensor over maxBufferSize: the error names it, its bytes, the limit and the memory held", async () => {
  await flush();
  const live = zeros([256 * 1024]); // 1 MiB held while the big one fails
  const n = Math.floor(MAX_BUFFER / 4) + 1;
  const bytes = n * 4;
  const before = memoryInfo();
  const e = assertWgradError(() => zeros([n]), "limit", [
    `bytes (${formatBytes(bytes)})`,
    `${bytes} bytes`,
    `maxBufferSize (${MAX_BUFFER} bytes)`,
    held(),
    `; the largest: fill ${live.describe()} (1.00 MiB)`,
    "batch size",
  ], "zeros over maxBufferSize");
  assert(new RegExp(`fill tensor#\\d+ f32 \\[${n}\\]`).test(e.message), e.message);
  assert(memoryInfo().bytesAllocated === before.bytesAllocated, "no buffer was created");
  console.log(`  ${e.message}`);
  live.dispose();
  await flush();
});

Deno.test("a tensor over maxStorageBufferBindingSize: named, sized and the limit given", async () => {
  await flush();
  const n = MAX_BINDING / 4 + 1;
  const before = memoryInfo();
  const e = assertWgradError(() => zeros([n]), "limit", [
    `${n * 4} bytes (${formatBytes(n * 4)}) in one storage binding`,
    `maxStorageBufferBindingSize (${MAX_BINDING} bytes, ${formatBytes(MAX_BINDING)})`,
    held(),
  ], "zeros over the binding limit");
  assert(new RegExp(`fill tensor#\\d+ f32 \\[${n}\\]`).test(e.message), e.message);
  assert(memoryInfo().bytesAllocated === before.bytesAllocated, "no buffer was created");
  console.log(`  ${e.message}`);
  await flush();
});

Deno.test({
  name: "tensor() of data over the binding limit is refused before its upload",
  ignore: !SMALL_BINDING,
}, async () => {
  await flush();
  const n = MAX_BINDING / 4 + 256;
  const e = assertWgradError(() => tensor(new Float32Array(n)), "limit", [
    `tensor() tensor#`,
    `f32 [${n}]`,
    `${n * 4} bytes (${formatBytes(n * 4)})`,
    "maxStorageBufferBindingSize",
  ], "tensor() over the binding limit");
  console.log(`  ${e.message}`);
  await flush();
});

// ---------------------------------------------------------------------------------------------
// Models

/** A Dense layer whose kernel is `rows × units` f32, just over one binding. */
function hugeDenseShape(): [number, number] {
  const units = 8192;
  return [Math.floor(MAX_BINDING / 4 / units) + 1, units];
}

Deno.test({
  name: "a model whose weight exceeds the binding limit fails at build, naming the weight's shape",
  ignore: !SMALL_BINDING,
}, async () => {
  await flush();
  const [rows, units] = hugeDenseShape();
  const bytes = rows * units * 4;
  const before = memoryInfo();
  let thrown: unknown;
  try {
    nn.sequential([nn.dense(units, { kernelInitializer: "zeros" })], { inputShape: [rows] });
  } catch (e) {
    thrown = e;
  }
  assert(thrown instanceof WgradError, `expected a WgradError, got ${String(thrown)}`);
  for (
    const p of [
      `f32 [${rows}, ${units}]`,
      `${bytes} bytes (${formatBytes(bytes)})`,
      `maxStorageBufferBindingSize (${MAX_BINDING} bytes`,
      "wgrad holds",
    ]
  ) assert(thrown.message.includes(p), `the message should mention "${p}": ${thrown.message}`);
  assert(thrown.kind === "limit", `kind ${thrown.kind}`);
  console.log(`  ${thrown.message}`);
  await flush();
  assert(memoryInfo().bytesInUse === before.bytesInUse, "the failed build holds no GPU memory");
});

Deno.test({
  name: "a model built before the device exists reports its weight by name at the first await",
  ignore: !SMALL_BINDING,
  // A new device is acquired inside this test (its WebGPU resources outlive it).
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await resetGpu();
  const [rows, units] = hugeDenseShape();
  const bytes = rows * units * 4;
  // Built while no device exists: the weights are uploaded once it arrives, named by then.
  nn.sequential([nn.dense(units, { kernelInitializer: "zeros", name: "wide" })], {
    inputShape: [rows],
  });
  const e = await assertRejectsWgrad(() => flush(), "limit", [
    `wide/kernel f32 [${rows}, ${units}]`,
    `${bytes} bytes (${formatBytes(bytes)}) in one storage binding`,
    `maxStorageBufferBindingSize (${MAX_BINDING} bytes`,
    "wgrad holds",
  ], "first await after building");
  console.log(`  ${e.message}`);
  await flush();
});

Deno.test({
  name: "weights that fit one by one but not in one arena fail at the first fit, sized",
  ignore: !SMALL_BINDING,
}, async () => {
  await flush();
  // Two kernels of half a binding each: the parameter arena holding both is over the limit.
  const width = Math.floor(Math.sqrt(MAX_BINDING / 8));
  const model = nn.sequential([
    nn.dense(width, { kernelInitializer: "zeros" }),
    nn.dense(width, { kernelInitializer: "zeros" }),
  ], { inputShape: [width] });
  model.compile({ optimizer: "sgd", loss: "mse" });
  const x = zeros([2, width]);
  const padded = (n: number) => Math.ceil(n / 256) * 256;
  const bytes = 2 * (padded(width * width) + padded(width)) * 4;
  const e = await assertRejectsWgrad(
    () => model.fit(x, x, { epochs: 1, batchSize: 2, verbose: 0 }),
    "limit",
    [
      `ParamArena "${model.name}" parameters: needs ${bytes} bytes (${formatBytes(bytes)}) ` +
      "in one storage binding",
      `maxStorageBufferBindingSize (${MAX_BINDING} bytes`,
      // The weights already on the GPU are the largest buffers held.
      `; the largest: `,
      `dense/kernel f32 [${width}, ${width}] (${formatBytes(width * width * 4)}), ` +
      `dense_1/kernel f32 [${width}, ${width}] (${formatBytes(width * width * 4)})`,
    ],
    "first fit",
  );
  console.log(`  ${e.message}`);
  x.dispose();
  for (const l of model.layers) for (const w of l.weights) w.dispose();
  await flush();
});

// ---------------------------------------------------------------------------------------------
// Out of memory, reported asynchronously by an error scope (a stubbed device)

/**
 * A runtime on a device of its own whose error scopes report out of memory on demand: for a
 * buffer created larger than `oomAbove` bytes, or for the next out-of-memory scope popped after
 * `failNextScope()`. `failNextValidation()` likewise reports a validation error.
 */
async function stubbedRuntime(oomAbove: number) {
  const ctx = await requestDeviceContext();
  const real = ctx.device;
  const filters: GPUErrorFilter[] = [];
  let oom = false;
  let invalid = false;
  const device = new Proxy(real, {
    get(target, key) {
      if (key === "createBuffer") {
        return (d: GPUBufferDescriptor) => {
          if (d.size > oomAbove) oom = true;
          return target.createBuffer(d);
        };
      }
      if (key === "pushErrorScope") {
        return (f: GPUErrorFilter) => {
          filters.push(f);
          target.pushErrorScope(f);
        };
      }
      if (key === "popErrorScope") {
        return () => {
          const f = filters.pop();
          const p = target.popErrorScope();
          if (f === "out-of-memory" && oom) {
            oom = false;
            // Reported late (after any validation error the stub reports), as a GPU may.
            return p.then(() => new Promise((ok) => setTimeout(ok, 20))).then(
              () => new GPUOutOfMemoryError("stub: not enough memory"),
            );
          }
          if (f === "validation" && invalid) {
            invalid = false;
            p.catch(() => {});
            return Promise.resolve(new GPUValidationError("stub: the buffer is invalid"));
          }
          return p;
        };
      }
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const rt = new Runtime({ device, info: ctx.info, limits: ctx.limits });
  return {
    rt,
    failNextScope: () => void (oom = true),
    failNextValidation: () => void (invalid = true),
  };
}

const MiB = 2 ** 20;

Deno.test({
  name: "out of memory from createBuffer names the buffer, its size and the largest buffers held",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { rt } = await stubbedRuntime(32 * MiB);
  try {
    const weights = rt.alloc(MiB, "dense/kernel f32 [512, 512]");
    const small = rt.alloc(1000, "dense/bias f32 [250]");
    await rt.settle(); // nothing failed so far
    const before = rt.pool.held();
    assert(before.startsWith("wgrad holds 1.00 MiB of GPU buffers"), before);
    // Returned at once; the GPU reports the failure asynchronously.
    const big = rt.alloc(64 * MiB, "matmul [16384, 512] [512, 1024] → [16384, 1024]");
    const e = await assertRejectsWgrad(() => rt.settle(), "gpu-out-of-memory", [
      "GPU out of memory: the device could not allocate matmul [16384, 512] [512, 1024] → " +
      "[16384, 1024], a buffer of 67108864 bytes (64.00 MiB)",
      `before it ${before}`,
      "the largest: matmul [16384, 512] [512, 1024] → [16384, 1024] (64.00 MiB), " +
      "dense/kernel f32 [512, 512] (1.00 MiB), dense/bias f32 [250] (1.00 KiB)",
      "batch size",
      "stub: not enough memory",
    ], "settle after the failed allocation");
    console.log(`  ${e.message}`);
    await rt.settle(); // reported once
    // Released buffers are listed as pooled; destroyed ones are forgotten.
    big.release();
    assert(rt.pool.largest(1)[0].endsWith("(64.00 MiB, pooled)"), rt.pool.largest(1)[0]);
    rt.pool.trim();
    assert(rt.pool.largest().length === 2, rt.pool.largest().join("; "));
    weights.release();
    small.release();
  } finally {
    rt.destroy();
  }
});

Deno.test({
  name: "out of memory in a submit names the commands and the largest buffers held",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { rt, failNextScope } = await stubbedRuntime(Infinity);
  try {
    const a = rt.alloc(4 * MiB, "conv2d [8, 64, 64, 32] (partial sums)");
    const b = rt.alloc(2 * MiB, "gradient of dense/kernel");
    rt.clear(a, "clear the partial sums");
    failNextScope();
    rt.flush();
    const e = await assertRejectsWgrad(() => rt.settle(), "gpu-out-of-memory", [
      "GPU out of memory in a submit of 1 commands (clear the partial sums)",
      "stub: not enough memory",
      "wgrad holds 6.00 MiB of GPU buffers (6.00 MiB in live tensors, 0 bytes pooled for reuse)",
      "the largest: conv2d [8, 64, 64, 32] (partial sums) (4.00 MiB), gradient of dense/kernel " +
      "(2.00 MiB)",
    ], "settle after the failed submit");
    console.log(`  ${e.message}`);
    a.release();
    b.release();
  } finally {
    rt.destroy();
  }
});

Deno.test({
  name: "an out-of-memory error takes precedence over the validation error it causes",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { rt, failNextValidation } = await stubbedRuntime(8 * MiB);
  try {
    // The validation error (of a command using the invalid buffer, say) is reported first.
    const a = rt.alloc(MiB, "first");
    rt.clear(a, "clear first");
    failNextValidation();
    rt.flush();
    const big = rt.alloc(16 * MiB, "the big one");
    await assertRejectsWgrad(() => rt.settle(), "gpu-out-of-memory", [
      "could not allocate the big one, a buffer of 16777216 bytes (16.00 MiB)",
    ], "settle");
    a.release();
    big.release();
  } finally {
    rt.destroy();
  }
});
