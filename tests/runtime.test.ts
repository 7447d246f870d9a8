/**
 * The GPU runtime: adapter information, GPU validation errors that name the kernel, size limits
 * checked before GPU work, device loss and recovery, work queued before the device exists, and the
 * recorder's automatic flushing. Device loss and a fresh process run in subprocesses
 * (tests/fixtures/*.ts) so that they do not disturb the device the other tests share.
 * @module
 */
import {
  add,
  clone,
  flush,
  gpuInfo,
  matmul,
  memoryInfo,
  randomNormal,
  relu,
  type Tensor,
  tensor,
  WgradError,
  type WgradErrorKind,
  zeros,
} from "../mod.ts";
import { sizeClass } from "../src/gpu/buffers.ts";
import { ready } from "../src/gpu/runtime.ts";
import type { Observation } from "./fixtures/observe.ts";

// Acquire the device before any test runs, so that its long-lived WebGPU resources are not
// attributed to (and reported by the resource sanitizer of) whichever test happens to run first.
const INFO = await gpuInfo();
/** Tests that allocate a buffer of maxStorageBufferBindingSize run only where that is small. */
const BIG_BINDING_TESTS = INFO.limits.maxStorageBufferBindingSize <= 2 ** 30;

// ---------------------------------------------------------------------------------------------
// Helpers

function fail(msg: string): never {
  throw new Error(msg);
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) fail(msg);
}

function assertEquals(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

function checkWgrad(
  thrown: unknown,
  kind: WgradErrorKind,
  parts: readonly string[],
): WgradError {
  if (thrown === undefined) fail(`expected a WgradError of kind "${kind}", but nothing was thrown`);
  if (!(thrown instanceof WgradError)) {
    fail(`expected a WgradError of kind "${kind}", got ${String(thrown)}`);
  }
  assert(thrown.kind === kind, `expected kind "${kind}", got "${thrown.kind}": ${thrown.message}`);
  for (const p of parts) {
    assert(thrown.message.includes(p), `the message should contain "${p}": ${thrown.message}`);
  }
  return thrown;
}

function assertWgradThrows(
  fn: () => unknown,
  kind: WgradErrorKind,
  parts: readonly string[],
): WgradError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  return checkWgrad(thrown, kind, parts);
}

async function assertWgradRejects(
  fn: () => Promise<unknown>,
  kind: WgradErrorKind,
  parts: readonly string[],
): Promise<WgradError> {
  let thrown: unknown;
  try {
    await fn();
  } catch (e) {
    thrown = e;
  }
  return checkWgrad(thrown, kind, parts);
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * After a test that provoked GPU errors: lets late error reports arrive and throws them away, so
 * that a failure of one test cannot leak into the next.
 */
async function drainGpuErrors(): Promise<void> {
  await delay(100);
  for (let i = 0; i < 3; i++) await flush().catch(() => {});
}

/** A valid kernel that writes 7 into the first word of binding 0. */
const WRITE7 = `@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(1) fn main() { y[0] = 7u; }`;

/** Runs a fixture script in a fresh `deno run` and returns its observations (the RESULT line). */
async function runFixture(
  script: string,
  args: string[] = [],
  opts: { env?: Record<string, string>; permissions?: string[] } = {},
): Promise<Record<string, unknown>> {
  const cmd = new Deno.Command("deno", {
    args: ["run", "--no-prompt", ...(opts.permissions ?? []), script, ...args],
    cwd: new URL("../", import.meta.url).pathname, // the repository root, where deno.json is
    env: { XDG_RUNTIME_DIR: "/tmp", NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  });
  const out = await cmd.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  assert(
    out.code === 0 && line !== undefined,
    `${script} ${args.join(" ")} exited with code ${out.code} (signal ${out.signal}) ` +
      `without a RESULT line.\nstdout:\n${stdout}\nstderr:\n${stderr}`,
  );
  return JSON.parse(line.slice("RESULT ".length));
}

/** Asserts an observation is a success with `value`. */
function assertOk(o: unknown, value: unknown, what: string): void {
  const obs = o as Observation;
  assert(obs && obs.ok, `${what}: expected success, got ${JSON.stringify(obs)}`);
  if (value !== undefined) assertEquals(obs.value, value, what);
}

/** Asserts an observation is a WgradError of `kind` (thrown synchronously when `sync` is set). */
function assertFailed(
  o: unknown,
  kind: WgradErrorKind,
  parts: readonly string[],
  what: string,
  sync?: boolean,
): void {
  const obs = o as Observation;
  assert(obs && !obs.ok, `${what}: expected a "${kind}" WgradError, got ${JSON.stringify(obs)}`);
  assert(
    obs.wgrad && obs.kind === kind,
    `${what}: expected a WgradError of kind "${kind}", got ${obs.name} ` +
      `(kind ${obs.kind}): ${obs.message}`,
  );
  for (const p of parts) {
    assert(obs.message.includes(p), `${what}: the message should contain "${p}": ${obs.message}`);
  }
  if (sync !== undefined) {
    assert(obs.sync === sync, `${what}: expected a ${sync ? "synchronous throw" : "rejection"}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Adapter information and memory figures

Deno.test("gpuInfo() names the adapter and lists the device's limits and features", async () => {
  const info = await gpuInfo();
  assert(
    typeof info.description === "string" && info.description.length > 0,
    `description: ${info.description}`,
  );
  assertEquals(info.deno, Deno.version.deno, "deno version");
  const limits = [
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxComputeWorkgroupsPerDimension",
    "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupStorageSize",
    "maxStorageBuffersPerShaderStage",
    "maxUniformBufferBindingSize",
  ];
  for (const name of limits) {
    const v = info.limits[name];
    assert(Number.isInteger(v) && v > 0, `limits.${name} = ${v}`);
  }
  // WebGPU's guaranteed minimums: the engine requests at least these.
  assert(info.limits.maxStorageBufferBindingSize >= 128 * 2 ** 20, "≥ 128 MiB per binding");
  assert(info.limits.maxBufferSize >= 256 * 2 ** 20, "≥ 256 MiB per buffer");
  assert(info.limits.maxComputeWorkgroupsPerDimension >= 65535, "≥ 65535 workgroups");
  assert(info.limits.maxStorageBufferBindingSize <= info.limits.maxBufferSize, "binding ≤ buffer");
  // The device got the limits that gpuInfo reports.
  const rt = await ready();
  for (const name of limits) {
    const granted = (rt.device.limits as unknown as Record<string, number>)[name];
    assertEquals(granted, info.limits[name], `device.limits.${name}`);
  }
  // Granted features are a subset of what the adapter offers.
  for (const f of info.features) {
    assert(info.adapterFeatures.includes(f), `feature ${f} is offered by the adapter`);
    assert(rt.device.features.has(f as GPUFeatureName), `feature ${f} is granted`);
  }
  assertEquals(typeof info.isFallbackAdapter, "boolean", "isFallbackAdapter");
  assert((await gpuInfo()) === info, "gpuInfo() reports the same device every time");
});

Deno.test("size classes: at least 256 bytes, at most 25% waste, few classes", () => {
  assertEquals([0, 1, 4, 255, 256].map(sizeClass), [256, 256, 256, 256, 256], "small sizes");
  assertEquals(
    [257, 320, 321, 512, 513, 1000, 1024, 1025].map(sizeClass),
    [320, 320, 384, 512, 640, 1024, 1024, 1280],
    "classes between 256 and 1280",
  );
  const classes = new Set<number>();
  for (let bytes = 1; bytes <= 2 ** 22; bytes += 1 + (bytes >> 6)) {
    const c = sizeClass(bytes);
    classes.add(c);
    assert(c >= bytes, `sizeClass(${bytes}) = ${c} is smaller than the request`);
    assert(bytes <= 256 || c <= bytes * 1.25, `sizeClass(${bytes}) = ${c} wastes over 25%`);
    assert(c % 4 === 0, `sizeClass(${bytes}) = ${c} is a multiple of 4`);
  }
  // 1 byte .. 4 MiB: 1 class up to 256 bytes, then 4 per power of two.
  assert(classes.size <= 1 + 4 * 14, `${classes.size} classes for 1 B .. 4 MiB`);
  assertEquals(sizeClass(2 ** 30 + 1), 2 ** 30 + 2 ** 28, "a class above 1 GiB");
});

Deno.test("memoryInfo() counts live tensors and gives them back on dispose", async () => {
  await flush();
  const before = memoryInfo();
  const t = zeros([1000]); // 4,000 bytes → the 4,096-byte class
  const after = memoryInfo();
  assertEquals(after.buffersInUse, before.buffersInUse + 1, "buffersInUse");
  assertEquals(after.bytesInUse - before.bytesInUse, 4096, "bytesInUse grows by the size class");
  assertEquals(
    after.bytesAllocated,
    after.bytesInUse + after.bytesPooled,
    "allocated = in use + pooled",
  );
  await t.data();
  t.dispose();
  await flush();
  const end = memoryInfo();
  assertEquals(end.buffersInUse, before.buffersInUse, "buffersInUse after dispose");
  assertEquals(end.bytesInUse, before.bytesInUse, "bytesInUse after dispose");
  assert(end.bytesPooled >= 4096, "the buffer is pooled for reuse");
});

// ---------------------------------------------------------------------------------------------
// GPU validation errors

Deno.test("an invalid WGSL kernel is reported at the next flush, naming the kernel and label", async () => {
  const rt = await ready();
  const s = rt.alloc(16, "scratch for test_broken_wgsl");
  try {
    rt.dispatch({
      kernel: { name: "test_broken_wgsl", code: "this is not WGSL" },
      bindings: [s],
      workgroups: [1],
      label: "broken op [3, 4]",
    });
    await assertWgradRejects(() => flush(), "gpu-validation", [
      'kernel "test_broken_wgsl"',
      "broken op [3, 4]",
    ]);
  } finally {
    s.release();
    await drainGpuErrors();
  }
});

Deno.test("after a reported validation error the runtime recovers: no stale errors later", async () => {
  const x = tensor([1, 2, 3]);
  const rt = await ready();
  const s = rt.alloc(16, "scratch for test_broken_wgsl_2");
  try {
    rt.dispatch({
      kernel: { name: "test_broken_wgsl_2", code: "fn main( {" },
      bindings: [s],
      workgroups: [1],
      label: "broken op 2",
    });
    await assertWgradRejects(() => flush(), "gpu-validation", ['"test_broken_wgsl_2"']);
    // The error has been reported once. Later, unrelated work must succeed: a second report of
    // the same failure (e.g. an uncaptured error from the bind group made with the invalid
    // pipeline) must not surface at an unrelated op.
    await delay(100);
    let later: unknown = null;
    try {
      await flush();
      const y = add(x, 1);
      assertEquals(Array.from(await y.data()), [2, 3, 4], "an op after the error");
      y.dispose();
    } catch (e) {
      later = e;
    }
    assert(
      later === null,
      `an unrelated op after the reported error failed with: ${(later as Error)?.message}`,
    );
  } finally {
    s.release();
    x.dispose();
    await drainGpuErrors();
  }
});

Deno.test("a bind group that does not fit the kernel is reported naming the kernel and label", async () => {
  const rt = await ready();
  try {
    // Binding 0 is a storage buffer in the kernel, but a uniform block is passed.
    rt.dispatch({
      kernel: { name: "test_binding_mismatch", code: WRITE7 },
      bindings: [new Uint32Array(4)],
      workgroups: [1],
      label: "mismatch op [5]",
    });
    // Whichever entry point reports it first, the error must name the kernel and the label.
    let thrown: unknown;
    try {
      await flush();
      await delay(100);
      await flush();
    } catch (e) {
      thrown = e;
    }
    checkWgrad(thrown, "gpu-validation", ['"test_binding_mismatch"', "mismatch op [5]"]);
  } finally {
    await drainGpuErrors();
  }
});

Deno.test("a valid kernel dispatched through the runtime runs (control for the error tests)", async () => {
  const rt = await ready();
  const out = zeros([4], "u32");
  await out.data();
  rt.dispatch({
    kernel: { name: "test_write7", code: WRITE7 },
    bindings: [out.storage],
    workgroups: [1],
    label: "write7 [4]",
  });
  assertEquals(Array.from(await out.data()), [7, 0, 0, 0], "kernel output");
  out.dispose();
});

// ---------------------------------------------------------------------------------------------
// Limits, checked before GPU work

Deno.test({
  name: "a binding over maxStorageBufferBindingSize throws a limit error naming the kernel",
  ignore: !BIG_BINDING_TESTS,
}, async () => {
  const rt = await ready();
  const maxBinding = rt.limits.maxStorageBufferBindingSize;
  await flush();
  const before = memoryInfo();
  const big = rt.alloc(maxBinding + 4, "test big region", false);
  try {
    assertWgradThrows(
      () =>
        rt.dispatch({
          kernel: { name: "test_write7", code: WRITE7 },
          bindings: [big],
          workgroups: [1],
          label: "write7 big",
        }),
      "limit",
      [
        "write7 big",
        'kernel "test_write7"',
        `${maxBinding + 4} bytes at binding 0`,
        "maxStorageBufferBindingSize",
        `(${maxBinding} bytes)`,
      ],
    );
  } finally {
    big.release();
  }
  await flush(); // nothing was recorded, so nothing fails on the GPU
  assertEquals(memoryInfo().buffersInUse, before.buffersInUse, "buffers in use");
});

Deno.test({
  name: "an op whose output exceeds maxStorageBufferBindingSize throws before GPU work, no leak",
  ignore: !BIG_BINDING_TESTS,
}, async () => {
  const rt = await ready();
  const n = rt.limits.maxStorageBufferBindingSize / 4 + 1;
  await flush();
  const before = memoryInfo();
  assertWgradThrows(() => zeros([n]), "limit", [
    "fill",
    `[${n}]`,
    "maxStorageBufferBindingSize",
  ]);
  await flush();
  const after = memoryInfo();
  // The failed op returned no tensor, so nobody could dispose its buffer: it must not hold one.
  assertEquals(after.buffersInUse, before.buffersInUse, "buffers in use after the failed op");
  assertEquals(after.bytesInUse, before.bytesInUse, "bytes in use after the failed op");
});

Deno.test("a tensor over maxBufferSize throws a limit error naming the op and shape", async () => {
  const info = await gpuInfo();
  const maxBuffer = info.limits.maxBufferSize;
  const n = Math.floor(maxBuffer / 4) + 1;
  await flush();
  const before = memoryInfo();
  assertWgradThrows(() => zeros([n]), "limit", [
    "fill",
    `[${n}]`,
    "maxBufferSize",
    `(${maxBuffer} bytes)`,
  ]);
  assertEquals(memoryInfo().bytesAllocated, before.bytesAllocated, "no buffer was created");
  await flush();
});

Deno.test("too many workgroups throws a limit error naming the kernel and label", async () => {
  const rt = await ready();
  const out = zeros([4], "u32");
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  await out.data();
  assertWgradThrows(
    () =>
      rt.dispatch({
        kernel: { name: "test_write7", code: WRITE7 },
        bindings: [out.storage],
        workgroups: [max + 1],
        label: "write7 wide",
      }),
    "limit",
    ["write7 wide", 'kernel "test_write7"', `${max + 1}×1×1`, `(${max})`],
  );
  await flush();
  out.dispose();
});

// ---------------------------------------------------------------------------------------------
// The recorder

Deno.test("5,000 dispatches without a read give the right results (the recorder auto-flushes)", async () => {
  const rt = await ready();
  await flush();
  const one = tensor(new Float32Array(33).fill(1));
  let acc: Tensor<"f32"> = zeros([33]);
  let halfway: Tensor<"f32"> | null = null;
  let maxPending = 0, flushes = 0, lastPending = 0;
  for (let i = 1; i <= 5000; i++) {
    const next = add(acc, one);
    if (i === 2500) halfway = acc = next;
    else {
      if (acc !== halfway) acc.dispose();
      acc = next;
    }
    const p = rt.recorder.pending;
    if (p < lastPending) flushes++;
    lastPending = p;
    maxPending = Math.max(maxPending, p);
  }
  assert(flushes >= 2, `the recorder should have flushed by itself, flushed ${flushes} times`);
  assert(maxPending <= 2048, `at most 2048 commands pile up, saw ${maxPending}`);
  const d = await acc.data();
  assert(d.every((v) => v === 5000), `after 5,000 adds: ${Array.from(d.slice(0, 4))}…`);
  const h = await halfway!.data();
  assert(h.every((v) => v === 2500), `a tensor from dispatch 2,500: ${Array.from(h.slice(0, 4))}…`);
  for (const t of [acc, halfway!, one]) t.dispose();
});

// ---------------------------------------------------------------------------------------------
// Subprocesses: a fresh process, device loss

Deno.test("ops queued before the device exists give the right results on the first await", async () => {
  const r = await runFixture("tests/fixtures/queued.ts", ["ops"]);
  assertEquals(
    r.memoryBefore,
    { bytesAllocated: 0, bytesInUse: 0, bytesPooled: 0, buffersInUse: 0, buffersPooled: 0 },
    "memoryInfo() before the device exists",
  );
  assertEquals(r.deviceBeforeAwait, false, "no device before the first await");
  assertOk(r.b, [[11, 22, 33], [14, 25, 36]], "add with a tensor disposed after it");
  assertOk(r.c, [282], "sum(mul(b, 2))");
  assertOk(r.t, [[11, 33, 25], [22, 14, 36]], "transpose(reshape(b))");
  assertOk(r.s, [12, 23, 34, 15, 26, 37], "a result kept from a scope");
  assertOk(r.z, [0, 0, 0, 0], "zeros i32");
  assertEquals(r.aDisposed, true, "the disposed input");
  assertEquals(r.deviceAfterAwait, true, "the device exists after the first await");
});

Deno.test("a limit error of an op queued before the device exists surfaces at the first await", async () => {
  const r = await runFixture("tests/fixtures/queued.ts", ["deferred-error"]);
  assertFailed(r.firstAwait, "limit", ["fill", "[536870912]", "maxBufferSize"], "first await");
  assertOk(r.secondAwait, [2, 3], "the other queued op, at the next await");
});

Deno.test("no adapter: gpu-unavailable with instructions, at the first await and after", async () => {
  // A backend this OS does not have, so that requestAdapter() returns null.
  const backend = Deno.build.os === "windows" ? "metal" : "dx12";
  const r = await runFixture("tests/fixtures/queued.ts", ["no-adapter"], {
    env: { DENO_WEBGPU_BACKEND: backend },
    permissions: ["--allow-env=DENO_WEBGPU_BACKEND"],
  });
  assertOk(r.queued, undefined, "an op queued before the failure is accepted");
  assertFailed(
    r.gpuInfo,
    "gpu-unavailable",
    ["No WebGPU adapter found", "How to fix", `DENO_WEBGPU_BACKEND is set to "${backend}"`],
    "gpuInfo()",
  );
  assertFailed(r.afterFailure, "gpu-unavailable", ["No WebGPU adapter"], "tensor() after", true);
  assertFailed(r.retry, "gpu-unavailable", ["No WebGPU adapter"], "gpuInfo() again");
});

Deno.test("device loss: gpu-lost errors instead of hangs, then resetGpu() recovers", async (t) => {
  const r = await runFixture("tests/fixtures/device_lost.ts");
  const lost = ["GPU device was lost", "resetGpu()"];
  // Steps, so that every group of checks reports on its own.
  await t.step("before the loss, and a read in flight when the device is destroyed", () => {
    assertOk(r.before, [2, 3, 4], "before the loss");
    // The read may finish before the device goes (then it must be right), or fail gpu-lost.
    const inFlight = r.readInFlight as Observation;
    if (inFlight.ok) assertOk(inFlight, "correct", "a read that finished before the loss");
    else assertFailed(inFlight, "gpu-lost", lost, "a read in flight when the device goes");
    assertOk(r.beforeLoss, [2, 3, 4], "on the second device");
    assertEquals(r.lostReason, "destroyed", "device-lost reason");
  });
  await t.step("right after destroy(), before the loss is reported, reads reject gpu-lost", () => {
    // The op itself may be recorded (the loss is not known yet) or throw gpu-lost.
    const op = r.immediateOp as Observation;
    if (!op.ok) assertFailed(op, "gpu-lost", lost, "add() right after destroy()", true);
    else assertFailed(r.immediateData, "gpu-lost", lost, "data() right after destroy()");
    assertFailed(r.recordedData, "gpu-lost", lost, "data() of an op recorded before destroy()");
  });
  await t.step("once the loss is known, every entry point fails at once", () => {
    assertFailed(r.opAfterLoss, "gpu-lost", lost, "add() after the loss", true);
    assertFailed(r.dataAfterLoss, "gpu-lost", lost, "data() after the loss", false);
    assertFailed(r.tensorAfterLoss, "gpu-lost", lost, "tensor() after the loss", true);
    assertFailed(r.zerosAfterLoss, "gpu-lost", lost, "zeros() after the loss", true);
    assertFailed(r.flushAfterLoss, "gpu-lost", lost, "flush() after the loss");
    assertFailed(r.gpuInfoAfterLoss, "gpu-lost", lost, "gpuInfo() after the loss");
    assertOk(r.disposeAfterLoss, undefined, "dispose() after the loss");
  });
  await t.step("nothing waits for a device that is gone", () => {
    for (const k of Object.keys(r)) {
      const o = r[k] as Observation;
      if (o && typeof o === "object" && "ms" in o && k !== "before" && k !== "newDevice") {
        assert(o.ms < 4000, `${k} took ${o.ms} ms`);
        if (!o.ok) assert(o.name !== "Timeout", `${k} did not settle: ${o.message}`);
      }
    }
  });
  await t.step("resetGpu() starts over on a new device; old tensors stay unusable", () => {
    assertOk(r.reset, undefined, "resetGpu()");
    assertOk(r.newDevice, [9], "an op on the new device");
    assertEquals(r.newDeviceIsAnother, true, "a new runtime");
    assertOk(r.gpuInfoAfterReset, undefined, "gpuInfo() after reset");
    assertFailed(
      r.oldTensorInNewOp,
      "gpu-lost",
      ["add [3] [3]", "earlier GPU device"],
      "an old tensor in a new op",
      true,
    );
    assertFailed(r.oldTensorData, "gpu-lost", ["earlier GPU device"], "data() of an old tensor");
  });
});

Deno.test("profileTimestamps: the GPU time of each command of a plan from timestamp queries", async () => {
  const rt = await ready();
  const a = randomNormal([256, 256], { seed: 1 });
  const b = randomNormal([256, 256], { seed: 2 });
  const small = randomNormal([8], { seed: 3 });
  await flush();
  const kept: Tensor[] = [];
  // A 256³ product (33 MFLOP), a copy and an 8-element op: one plan of three commands.
  const plan = rt.capture("profile probe", () => {
    const y = matmul(a, b);
    kept.push(y, clone(y), relu(small));
  });
  try {
    const r = await rt.profileTimestamps(plan, 5);
    if (!rt.device.features.has("timestamp-query")) {
      if (r !== null) throw new Error("a device without timestamp-query must give null");
      return;
    }
    if (!r) throw new Error("a device with timestamp-query must give times");
    const labels = plan.commands.map((c) => c.label);
    if (!plan.commands.some((c) => c.kind === "copy")) {
      throw new Error(`the probe has no copy to time between passes: ${labels.join("; ")}`);
    }
    if (r.commands.length !== labels.length) {
      throw new Error(`${r.commands.length} times for ${labels.length} commands`);
    }
    r.commands.forEach((c, i) => {
      if (c.label !== labels[i] || !(c.us >= 0 && Number.isFinite(c.us))) {
        throw new Error(`command ${i} "${c.label}": ${c.us} µs`);
      }
    });
    const mm = r.commands.find((c) => c.label.includes("matmul"))!;
    const tiny = r.commands.find((c) => c.label.includes("relu"))!;
    if (!(mm.us > tiny.us)) {
      throw new Error(`the 256³ product (${mm.us} µs) is not slower than 8 relus (${tiny.us} µs)`);
    }
    if (!(r.total >= mm.us)) throw new Error(`total ${r.total} µs < the product's ${mm.us} µs`);
  } finally {
    for (const t of kept) t.dispose();
    plan.dispose();
    for (const t of [a, b, small]) t.dispose();
  }
});

Deno.test("profileTimestamps: an empty plan, and a plan of more commands than one query set holds", async () => {
  const rt = await ready();
  if (!rt.device.features.has("timestamp-query")) return;
  const empty = rt.capture("empty probe", () => {});
  try {
    const r = await rt.profileTimestamps(empty, 1);
    if (!r || r.total !== 0 || r.commands.length !== 0) {
      throw new Error(`empty plan: ${JSON.stringify(r)}`);
    }
  } finally {
    empty.dispose();
  }
  // 2,100 dispatches: 4,200 stamps, more than the 4,096 of one query set.
  const x = randomNormal([16], { seed: 4 });
  await flush();
  const kept: Tensor[] = [];
  const plan = rt.capture("long probe", () => {
    for (let i = 0; i < 2100; i++) kept.push(relu(x));
  });
  try {
    const r = await rt.profileTimestamps(plan, 1);
    if (!r || r.commands.length !== 2100) throw new Error(`${r?.commands.length} times`);
    const bad = r.commands.findIndex((c) => !(c.us >= 0 && Number.isFinite(c.us)));
    if (bad >= 0) throw new Error(`command ${bad}: ${r.commands[bad].us} µs`);
    // Stamps from both query sets are real: the second set's commands take time too.
    const late = r.commands.slice(2048).reduce((a, c) => a + c.us, 0);
    if (!(late > 0)) throw new Error(`commands 2048… sum to ${late} µs`);
    await flush(); // no GPU error was left behind
  } finally {
    for (const t of kept) t.dispose();
    plan.dispose();
    x.dispose();
  }
});
