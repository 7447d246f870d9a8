/**
 * The GPU runtime: one lazily acquired device, its buffer pool, pipeline cache, step recorder and
 * readback. Ops describe work as {@linkcode DispatchSpec}s; only this folder calls WebGPU.
 *
 * Work is scheduled synchronously. Before the device exists, scheduled work waits in a queue that
 * runs, in order, as soon as the device arrives; afterwards it is recorded at once. Commands are
 * submitted together when a result is read back, when many have piled up, or on {@linkcode flush}.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import {
  BufferPool,
  bufferSize,
  describeBytes,
  describeHeld,
  formatBytes,
  type LabelledBufferDescriptor,
  type MemoryInfo,
  OOM_HINT,
  type Recycler,
  SHRINK_HINT,
  Storage,
} from "./buffers.ts";
import { type DeviceContext, type GpuInfo, requestDeviceContext } from "./device.ts";
import { Recorder } from "./recorder.ts";

export { type MemoryInfo, Storage };

/** A WGSL compute shader: a name for messages and caching, and its source text. */
export interface Kernel {
  /** Kernel family name, e.g. `"unary"`. */
  readonly name: string;
  /** WGSL source; an entry point named `main`. */
  readonly code: string;
}

/** A uniform block: any 4-byte typed array, padded to 16 bytes by the runtime. */
export type UniformData = Uint32Array | Int32Array | Float32Array;

/** One kernel launch as an op describes it. */
export interface DispatchSpec {
  /** The kernel. */
  kernel: Kernel;
  /** WGSL prepended to the kernel (type aliases, consts); part of the pipeline's cache key. */
  prefix?: string;
  /** Entry point (default `"main"`). */
  entry?: string;
  /** Values for the kernel's `override` constants; part of the pipeline's cache key. */
  constants?: Record<string, number>;
  /** Bindings of group 0 in binding order: storage regions and uniform blocks. */
  bindings: readonly (Storage | UniformData)[];
  /** Workgroup counts. */
  workgroups: readonly [number, number?, number?];
  /** Names the op and shapes for error messages, e.g. `add [2, 3] + [3]`. */
  label: string;
}

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Kernel name with entry point and constants, for messages. */
  name: string;
}

type Command =
  | {
    kind: "dispatch";
    pipeline: GPUComputePipeline;
    bindGroup: GPUBindGroup;
    x: number;
    y: number;
    z: number;
    label: string;
  }
  | {
    kind: "copy";
    src: GPUBuffer;
    srcOffset: number;
    dst: GPUBuffer;
    dstOffset: number;
    bytes: number;
    label: string;
  }
  | { kind: "clear"; buf: GPUBuffer; offset: number; bytes: number; label: string };

/**
 * A recorded sequence of GPU commands that can be replayed: a compiled training or inference
 * step. Made by {@linkcode Runtime.capture}; owns the buffers its commands use (other than those
 * that existed before the capture) and its uniform blocks.
 */
export class Plan {
  #disposed = false;
  /** @internal */
  constructor(
    private readonly rt: Runtime,
    /** The commands, in order. */
    readonly commands: readonly Command[],
    private readonly owned: Map<GPUBuffer, Storage>,
    private readonly uniforms: GPUBuffer[],
    /** A name for messages. */
    readonly label: string,
  ) {}

  /** Number of dispatches in one replay. */
  get dispatches(): number {
    return this.commands.filter((c) => c.kind === "dispatch").length;
  }

  /** Bytes of GPU buffers the plan owns (intermediate tensors). */
  get bytes(): number {
    let n = 0;
    for (const b of this.owned.keys()) n += b.size;
    return n;
  }

  /** Records every command of the plan again, into the current submit. */
  replay(): void {
    if (this.#disposed) {
      throw new WgradError("disposed", `plan "${this.label}" was replayed after dispose()`);
    }
    this.rt.replay(this.commands);
  }

  /** Gives the plan's buffers back. Tensors made during the capture must be disposed first. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.rt.releasePlan(this.owned, this.uniforms);
  }
}

/** Capture state: commands recorded instead of executed, and the buffers handed out meanwhile. */
class Capture implements Recycler {
  readonly commands: Command[] = [];
  /** Every buffer acquired during the capture, with the first region made on it. */
  readonly owned = new Map<GPUBuffer, Storage>();
  /** Buffers whose regions were released during the capture, by size: reusable within it. */
  readonly free = new Map<number, GPUBuffer[]>();
  /** Buffers written from the CPU during the capture (constants): never reused within it. */
  readonly pinned = new Set<GPUBuffer>();
  readonly uniformBuffers: GPUBuffer[] = [];
  uniformCpu: Uint8Array<ArrayBuffer> | null = null;
  uniformUsed = 0;
  open = true;

  recycle(s: Storage): void {
    if (!this.open || this.pinned.has(s.buffer)) return;
    let list = this.free.get(s.buffer.size);
    if (!list) this.free.set(s.buffer.size, list = []);
    list.push(s.buffer);
  }
}

const MAX_PENDING_COMMANDS = 2048;

/** Whether a GPU error is an out-of-memory error. */
function isOutOfMemory(err: GPUError): boolean {
  return (typeof GPUOutOfMemoryError === "function" && err instanceof GPUOutOfMemoryError) ||
    err.constructor.name === "GPUOutOfMemoryError";
}
const POOL_CAP_BYTES = 512 * 1024 * 1024;

let nextRuntimeId = 1;

/** The device and everything built on it. */
export class Runtime {
  readonly id = nextRuntimeId++;
  readonly device: GPUDevice;
  readonly info: GpuInfo;
  readonly limits: GPUSupportedLimits;
  readonly pool: BufferPool;
  readonly recorder: Recorder;
  #pipelines = new Map<string, CachedPipeline>();
  #modules = new Map<string, GPUShaderModule>();
  #staging = new Map<number, GPUBuffer[]>();
  #scopes: Promise<void>[] = [];
  #error: WgradError | null = null;
  #lost: GPUDeviceLostInfo | null = null;
  #lostPromise: Promise<GPUDeviceLostInfo>;
  #storages = new WeakSet<Storage>();
  readonly #maxBinding: number;
  readonly #maxGroups: number;
  #capture: Capture | null = null;
  /**
   * Running counts since the runtime started: `queue.submit` calls, readbacks through a staging
   * buffer, and dispatches recorded (directly or by a plan's replay); tests check a training
   * step's budget with them.
   */
  readonly counters = { submits: 0, readbacks: 0, dispatches: 0 };

  constructor(ctx: DeviceContext) {
    this.device = ctx.device;
    this.info = ctx.info;
    this.limits = ctx.limits;
    this.#maxBinding = ctx.limits.maxStorageBufferBindingSize;
    this.#maxGroups = ctx.limits.maxComputeWorkgroupsPerDimension;
    this.pool = new BufferPool(this.device, this.limits.maxBufferSize, POOL_CAP_BYTES);
    this.recorder = new Recorder(this.device, (desc) => this.#createBuffer(desc));
    this.pool.pendingWork = () => this.recorder.pending > 0;
    this.pool.flush = () => this.flush();
    this.pool.createBuffer = (desc) => this.#createBuffer(desc);
    this.#lostPromise = this.device.lost.then((info) => {
      this.#lost = info;
      return info;
    });
    this.device.addEventListener("uncapturederror", (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.#fail(
        isOutOfMemory(e)
          ? new WgradError(
            "gpu-out-of-memory",
            `GPU out of memory (outside the engine's error scopes): ${e.message}; ` +
              `${this.#memoryReport()}`,
          )
          : new WgradError("gpu-validation", `uncaptured GPU error: ${e.message}`),
      );
    });
  }

  /**
   * Remembers the first asynchronous GPU error; it is thrown at the next entry point. An
   * out-of-memory error replaces a validation error still pending: a buffer that could not be
   * allocated makes the commands that use it invalid, and the allocation is the cause to report.
   */
  #fail(e: WgradError): void {
    if (
      !this.#error ||
      (this.#error.kind === "gpu-validation" && e.kind === "gpu-out-of-memory")
    ) this.#error = e;
  }

  /** The engine's GPU memory now and its largest buffers, for out-of-memory messages. */
  #memoryReport(): string {
    return `${this.pool.report()}. ${OOM_HINT}`;
  }

  /**
   * Creates a buffer inside its own out-of-memory and validation error scopes, so that a failed
   * allocation, reported asynchronously, names the buffer (its label), its size and what the
   * engine held when it was asked for. Buffers are created rarely (the pool and captured plans
   * reuse them), so the two scopes cost nothing on the hot path.
   */
  #createBuffer(desc: LabelledBufferDescriptor): GPUBuffer {
    const before = this.pool.info();
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    const buffer = this.device.createBuffer(desc);
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    this.#scopes.push(
      Promise.all([validation, oom]).then(([v, o]) => {
        if (o) {
          this.#fail(
            new WgradError(
              "gpu-out-of-memory",
              `GPU out of memory: the device could not allocate ${desc.label}, a buffer of ` +
                `${describeBytes(desc.size)}; before it ${describeHeld(before)}. Now ` +
                `${this.#memoryReport()} ` +
                `(the device said: ${o.message})`,
            ),
          );
        } else if (v) {
          this.#fail(
            new WgradError(
              "gpu-validation",
              `creating the GPU buffer for ${desc.label} (${describeBytes(desc.size)}) failed: ` +
                v.message,
            ),
          );
        }
      }),
    );
    return buffer;
  }

  /** The device-lost information, once the device is gone. */
  get lost(): GPUDeviceLostInfo | null {
    return this.#lost;
  }

  /** Registers a view made with {@linkcode Storage.view} so that kernels may bind it. */
  adopt(view: Storage): Storage {
    if (!view.parent || !this.#storages.has(view.parent)) {
      throw new Error("internal: adopt() takes a view of a region of this runtime");
    }
    this.#storages.add(view);
    return view;
  }

  /**
   * Overwrites a region from the CPU with `queue.writeBuffer`. Recorded commands are submitted
   * first, so that none of them sees the new contents.
   */
  write(dst: Storage, data: ArrayBufferView, label: string, byteOffset = 0): void {
    this.check();
    this.#assertOwned(dst, label);
    if (byteOffset + data.byteLength > dst.byteLength) {
      throw new Error(`internal: write of ${data.byteLength} bytes overruns ${label}`);
    }
    if (this.recorder.pending) this.flush();
    this.#capture?.pinned.add(dst.buffer);
    this.device.queue.writeBuffer(
      dst.buffer,
      dst.offset + byteOffset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Throws if the device is lost or an earlier asynchronous GPU error is pending. */
  check(): void {
    if (this.#lost) {
      throw new WgradError(
        "gpu-lost",
        `the GPU device was lost (${this.#lost.reason}): ${this.#lost.message || "no message"}. ` +
          "Tensors on it are gone; call resetGpu() to start over on a new device.",
      );
    }
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      throw e;
    }
  }

  /** Whether `s` was allocated on this runtime's device. */
  owns(s: Storage): boolean {
    return this.#storages.has(s);
  }

  #assertOwned(s: Storage, what: string): void {
    if (!this.#storages.has(s)) {
      throw new WgradError(
        "gpu-lost",
        `${what}: a tensor was created on an earlier GPU device that has since been lost or reset`,
      );
    }
    if (s.released) {
      throw new WgradError("disposed", `${what}: a tensor's GPU memory was already released`);
    }
  }

  /**
   * Throws a `limit` error, before any GPU work, if a region of `bytes` cannot be bound. The
   * message names the region, its size, the limit and what the engine holds.
   */
  #checkBindable(bytes: number, what: string): void {
    if (bytes > this.limits.maxBufferSize) {
      throw new WgradError(
        "limit",
        `${what}: needs a GPU buffer of ${describeBytes(bytes)}, more than this device's ` +
          `maxBufferSize (${this.limits.maxBufferSize} bytes); ${this.pool.report(3)}. ` +
          SHRINK_HINT,
      );
    }
    if (bytes > this.#maxBinding) {
      throw new WgradError(
        "limit",
        `${what}: needs ${describeBytes(bytes)} in one storage binding, more than this device's ` +
          `maxStorageBufferBindingSize (${this.#maxBinding} bytes, ${
            formatBytes(this.#maxBinding)
          }); ${this.pool.report(3)}. ${SHRINK_HINT}`,
      );
    }
  }

  /**
   * A region of `bytes` bytes for a kernel to write. Unless `bindable` is false, the region must
   * fit one storage binding (every tensor's storage is bound whole).
   */
  alloc(bytes: number, what: string, bindable = true): Storage {
    this.check();
    if (bindable) this.#checkBindable(bytes, what);
    const c = this.#capture;
    let s: Storage;
    if (c) {
      const reuse = c.free.get(bufferSize(bytes, this.limits.maxBufferSize))?.pop();
      if (reuse) {
        s = new Storage(reuse, 0, bytes, c);
      } else {
        s = this.pool.acquire(bytes, what);
        s.setRecycler(c);
        c.owned.set(s.buffer, s);
      }
      let holders = this.#captureHolders.get(s.buffer);
      if (!holders) this.#captureHolders.set(s.buffer, holders = new Set());
      holders.add(s);
    } else {
      s = this.pool.acquire(bytes, what);
    }
    this.#storages.add(s);
    return s;
  }

  /** A region holding `data`, uploaded with `queue.writeBuffer`. */
  upload(data: ArrayBufferView<ArrayBuffer>, what: string): Storage {
    this.check();
    this.#checkBindable(data.byteLength, what);
    const c = this.#capture;
    const s = this.pool.acquire(data.byteLength, what, true);
    if (c) {
      // A constant of the captured step: written once now, never reused within the capture.
      s.setRecycler(c);
      c.owned.set(s.buffer, s);
      c.pinned.add(s.buffer);
    }
    this.#storages.add(s);
    if (data.byteLength) {
      this.device.queue.writeBuffer(
        s.buffer,
        s.offset,
        data.buffer,
        data.byteOffset,
        data.byteLength,
      );
    }
    return s;
  }

  #pipeline(spec: DispatchSpec): CachedPipeline {
    const consts = spec.constants ? JSON.stringify(spec.constants) : "";
    const entry = spec.entry ?? "main";
    const key = `${spec.kernel.name}\u0000${spec.prefix ?? ""}\u0000${consts}\u0000${entry}`;
    let p = this.#pipelines.get(key);
    if (p) return p;
    const modKey = `${spec.kernel.name}\u0000${spec.prefix ?? ""}`;
    const name = `${spec.kernel.name}${entry === "main" ? "" : "." + entry}${
      consts ? " " + consts : ""
    }`;
    this.device.pushErrorScope("validation");
    let module = this.#modules.get(modKey);
    if (!module) {
      module = this.device.createShaderModule({
        code: (spec.prefix ?? "") + spec.kernel.code,
        label: spec.kernel.name,
      });
      this.#modules.set(modKey, module);
    }
    const pipeline = this.device.createComputePipeline({
      layout: "auto",
      label: name,
      compute: { module, entryPoint: entry, constants: spec.constants },
    });
    const layout = pipeline.getBindGroupLayout(0);
    this.#scopes.push(
      this.device.popErrorScope().then((err) => {
        if (err) {
          this.#fail(
            new WgradError(
              "gpu-validation",
              `kernel "${name}" was rejected by the WebGPU implementation (first used by ${spec.label}):\n${err.message}`,
            ),
          );
        }
      }),
    );
    p = { pipeline, layout, name };
    this.#pipelines.set(key, p);
    return p;
  }

  /** Records one kernel launch. */
  dispatch(spec: DispatchSpec): void {
    this.check();
    const maxBinding = this.#maxBinding;
    const [x, y = 1, z = 1] = spec.workgroups;
    const maxGroups = this.#maxGroups;
    if (x > maxGroups || y > maxGroups || z > maxGroups) {
      throw new WgradError(
        "limit",
        `${spec.label}: kernel "${spec.kernel.name}" needs ${x}×${y}×${z} workgroups, more than ` +
          `this device allows per dimension (${maxGroups})`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    const entries: GPUBindGroupEntry[] = [];
    for (let i = 0; i < spec.bindings.length; i++) {
      const b = spec.bindings[i];
      if (b instanceof Storage) {
        this.#assertOwned(b, spec.label);
        if (b.byteLength > maxBinding) {
          throw new WgradError(
            "limit",
            `${spec.label}: kernel "${spec.kernel.name}" binds ${b.byteLength} bytes at binding ${i} ` +
              `(${formatBytes(b.byteLength)}), more than this device's ` +
              `maxStorageBufferBindingSize (${maxBinding} bytes)`,
          );
        }
        entries.push({
          binding: i,
          resource: { buffer: b.buffer, offset: b.offset, size: Math.max(4, b.byteLength) },
        });
      } else {
        entries.push({
          binding: i,
          resource: this.#capture ? this.#captureUniform(b) : this.recorder.uniforms.alloc(b),
        });
      }
    }
    const p = this.#pipeline(spec);
    const label = `${spec.label} (kernel "${p.name}")`;
    this.recorder.openScope();
    const bindGroup = this.device.createBindGroup({ layout: p.layout, entries, label });
    if (this.#capture) {
      this.#capture.commands.push({
        kind: "dispatch",
        pipeline: p.pipeline,
        bindGroup,
        x,
        y,
        z,
        label,
      });
      return;
    }
    this.recorder.dispatch(p.pipeline, bindGroup, x, y, z, label);
    this.counters.dispatches++;
    if (this.recorder.pending >= MAX_PENDING_COMMANDS) this.flush();
  }

  /** Records a copy of `bytes` bytes between regions. */
  copy(src: Storage, dst: Storage, bytes: number, label: string, srcByte = 0, dstByte = 0): void {
    this.check();
    this.#assertOwned(src, label);
    this.#assertOwned(dst, label);
    if (bytes === 0) return;
    if (this.#capture) {
      this.#capture.commands.push({
        kind: "copy",
        src: src.buffer,
        srcOffset: src.offset + srcByte,
        dst: dst.buffer,
        dstOffset: dst.offset + dstByte,
        bytes,
        label,
      });
      return;
    }
    this.recorder.copy(
      src.buffer,
      src.offset + srcByte,
      dst.buffer,
      dst.offset + dstByte,
      bytes,
      label,
    );
  }

  /** Records a clear of a region to zero bytes. */
  clear(dst: Storage, label: string): void {
    this.check();
    this.#assertOwned(dst, label);
    if (dst.byteLength === 0) return;
    const bytes = Math.ceil(dst.byteLength / 4) * 4;
    if (this.#capture) {
      this.#capture.commands.push({
        kind: "clear",
        buf: dst.buffer,
        offset: dst.offset,
        bytes,
        label,
      });
      return;
    }
    this.recorder.clear(dst.buffer, dst.offset, bytes, label);
  }

  /**
   * Submits what has been recorded. The returned promise settles once the GPU has reported on the
   * submit's error scopes, and rejects with an error naming the kernels if any failed.
   */
  flush(): Promise<void> {
    if (this.#lost) return Promise.resolve();
    const sub = this.recorder.submit();
    this.pool.afterSubmit();
    if (!sub) return Promise.resolve();
    this.counters.submits++;
    const p = sub.errors.then((err) => {
      if (!err) return;
      const more = sub.count > sub.labels.length
        ? ` and ${sub.count - sub.labels.length} more`
        : "";
      const commands = `a submit of ${sub.count} commands (${sub.labels.join("; ")}${more})`;
      this.#fail(
        isOutOfMemory(err)
          ? new WgradError(
            "gpu-out-of-memory",
            `GPU out of memory in ${commands}: ${err.message}; ${this.#memoryReport()}`,
          )
          : new WgradError("gpu-validation", `GPU validation error in ${commands}: ${err.message}`),
      );
    });
    this.#scopes.push(p);
    return p;
  }

  /** Waits for every pending error report, then throws the first error, if any. */
  async settle(): Promise<void> {
    while (this.#scopes.length) {
      const scopes = this.#scopes;
      this.#scopes = [];
      await Promise.all(scopes);
    }
    this.check();
  }

  /** Reads a region back to the CPU through a staging buffer. */
  async read(s: Storage, label: string): Promise<ArrayBuffer> {
    this.check();
    if (this.#capture) {
      throw new WgradError(
        "value",
        `read ${label}: data cannot be read back while a step is being captured (it has not run)`,
      );
    }
    this.#assertOwned(s, label);
    const bytes = s.byteLength;
    if (bytes === 0) return new ArrayBuffer(0);
    this.counters.readbacks++;
    const size = bufferSize(bytes, this.limits.maxBufferSize);
    const staging = this.#staging.get(size)?.pop() ??
      this.#createBuffer({
        size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: `the readback of ${label}`,
      });
    this.recorder.copy(s.buffer, s.offset, staging, 0, bytes, `read ${label}`);
    this.flush();
    const mapped = staging.mapAsync(GPUMapMode.READ, 0, Math.ceil(bytes / 4) * 4).then(
      () => "mapped" as const,
      (e: Error) => e,
    );
    const lost = this.#lostPromise.then(() => "lost" as const);
    const r = await Promise.race([mapped, lost]);
    if (r !== "mapped") {
      // The device went away (the lost promise may trail the failed map by a moment).
      await Promise.race([this.#lostPromise, new Promise((ok) => setTimeout(ok, 100))]);
      this.check();
      await this.settle();
      throw new WgradError(
        "gpu-validation",
        `reading ${label} back failed: ${r === "lost" ? "device lost" : r.message}`,
      );
    }
    let out: ArrayBuffer;
    try {
      await this.settle();
      out = staging.getMappedRange(0, Math.ceil(bytes / 4) * 4).slice(0, bytes);
    } finally {
      staging.unmap();
    }
    let list = this.#staging.get(size);
    if (!list) this.#staging.set(size, list = []);
    if (list.length < 4) list.push(staging);
    else staging.destroy();
    return out;
  }

  #captureUniform(data: UniformData): GPUBufferBinding {
    const c = this.#capture!;
    const align = Math.max(16, this.limits.minUniformBufferOffsetAlignment);
    const chunk = 65536;
    const size = Math.ceil(data.byteLength / 16) * 16;
    if (!c.uniformCpu || c.uniformUsed + size > chunk) {
      this.#sealUniforms(c);
      c.uniformBuffers.push(
        this.#createBuffer({
          size: chunk,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          label: "wgrad plan uniforms",
        }),
      );
      c.uniformCpu = new Uint8Array(chunk);
      c.uniformUsed = 0;
    }
    const offset = c.uniformUsed;
    c.uniformCpu.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    c.uniformUsed = Math.ceil((offset + size) / align) * align;
    return { buffer: c.uniformBuffers[c.uniformBuffers.length - 1], offset, size };
  }

  #sealUniforms(c: Capture): void {
    if (c.uniformCpu && c.uniformUsed) {
      const buf = c.uniformBuffers[c.uniformBuffers.length - 1];
      this.device.queue.writeBuffer(buf, 0, c.uniformCpu, 0, Math.min(c.uniformUsed, buf.size));
    }
    c.uniformCpu = null;
  }

  /**
   * Captures the GPU commands that `fn` records, without running them, into a {@linkcode Plan}
   * to replay later (a compiled training step). Buffers allocated during the capture belong to
   * the plan; regions released during it are reused within it, as a memory plan; data uploaded
   * during it is written once and kept. Nothing may be read back during a capture.
   */
  capture(label: string, fn: () => void): Plan {
    this.check();
    if (this.#capture) throw new Error("internal: captures do not nest");
    this.flush();
    const c = new Capture();
    this.#capture = c;
    try {
      fn();
    } catch (e) {
      this.#capture = null;
      c.open = false;
      this.releasePlan(c.owned, c.uniformBuffers);
      throw e;
    }
    this.#capture = null;
    c.open = false;
    this.#sealUniforms(c);
    const plan = new Plan(this, c.commands, c.owned, c.uniformBuffers, label);
    for (const fn of this.#planObservers) fn(plan);
    return plan;
  }

  #planObservers = new Set<(plan: Plan) => void>();

  /**
   * @internal Calls `fn` with every plan captured from now on (the benchmarks' `--profile` uses
   * it to time the kernels of a compiled training step). Returns the function that stops it.
   */
  observePlans(fn: (plan: Plan) => void): () => void {
    this.#planObservers.add(fn);
    return () => void this.#planObservers.delete(fn);
  }

  /**
   * @internal Times each command of a live plan alone: `reps` replays of the one command in one
   * submit, waited for with `onSubmittedWorkDone`, the median of 3 such runs, in microseconds of
   * wall time per command (the GPU's work plus its fixed cost per command). Also times the whole
   * plan the same way. The plan's buffers are overwritten with whatever the commands compute.
   */
  async profile(
    plan: Plan,
    reps = 50,
  ): Promise<{ total: number; commands: { label: string; us: number }[] }> {
    const time = async (commands: readonly Command[]): Promise<number> => {
      const run = () => {
        for (let r = 0; r < reps; r++) this.replay(commands);
        this.flush();
      };
      run();
      await this.device.queue.onSubmittedWorkDone();
      const ts: number[] = [];
      for (let k = 0; k < 3; k++) {
        const t0 = performance.now();
        run();
        await this.device.queue.onSubmittedWorkDone();
        ts.push(((performance.now() - t0) / reps) * 1000);
      }
      await this.settle();
      return ts.sort((a, b) => a - b)[1];
    };
    const total = await time(plan.commands);
    const commands: { label: string; us: number }[] = [];
    for (const c of plan.commands) commands.push({ label: c.label, us: await time([c]) });
    return { total, commands };
  }

  /**
   * @internal GPU time of each command of a live plan from the device's timestamp queries (null
   * when the device lacks `timestamp-query`): the plan is replayed `reps` times, one submit each,
   * with every dispatch in a compute pass of its own whose beginning and end are stamped (a copy
   * or clear is timed from the end of an empty pass before it to the beginning of one after it).
   * Per command the median over the replays, in microseconds; `total` is the median of the time
   * from the first stamp to the last, which includes the gaps between passes. Stamps are read as
   * nanoseconds, as WebGPU defines them (llvmpipe's are; an implementation that resolved raw ticks
   * of another period would scale every figure by it). The plan's buffers are overwritten with
   * whatever the commands compute.
   */
  async profileTimestamps(
    plan: Plan,
    reps = 15,
  ): Promise<{ total: number; commands: { label: string; us: number }[] } | null> {
    if (!this.device.features.has("timestamp-query")) return null;
    this.flush();
    await this.settle();
    const cmds = plan.commands;
    const n = cmds.length;
    if (n === 0) return { total: 0, commands: [] };
    // A query set holds at most 4,096 stamps: 2,048 commands each.
    const PER_SET = 2048;
    const sets = Array.from(
      { length: Math.ceil(n / PER_SET) },
      (_, k) =>
        this.device.createQuerySet({
          type: "timestamp",
          count: 2 * Math.min(PER_SET, n - k * PER_SET),
        }),
    );
    const resolve = this.device.createBuffer({
      size: 16 * n,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = this.device.createBuffer({
      size: 16 * n,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const perCommand: number[][] = cmds.map(() => []);
    const totals: number[] = [];
    try {
      for (let r = 0; r < reps + 1; r++) {
        const enc = this.device.createCommandEncoder({ label: "wgrad profile" });
        cmds.forEach((c, i) => {
          const querySet = sets[Math.floor(i / PER_SET)];
          const q = 2 * (i % PER_SET);
          if (c.kind === "dispatch") {
            const pass = enc.beginComputePass({
              timestampWrites: {
                querySet,
                beginningOfPassWriteIndex: q,
                endOfPassWriteIndex: q + 1,
              },
            });
            pass.setPipeline(c.pipeline);
            pass.setBindGroup(0, c.bindGroup);
            pass.dispatchWorkgroups(c.x, c.y, c.z);
            pass.end();
            return;
          }
          enc.beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: q } }).end();
          if (c.kind === "copy") {
            enc.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes);
          } else enc.clearBuffer(c.buf, c.offset, c.bytes);
          enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: q + 1 } })
            .end();
        });
        sets.forEach((set, k) => {
          const count = 2 * Math.min(PER_SET, n - k * PER_SET);
          enc.resolveQuerySet(set, 0, count, resolve, 16 * PER_SET * k);
        });
        enc.copyBufferToBuffer(resolve, 0, staging, 0, 16 * n);
        this.device.queue.submit([enc.finish()]);
        await staging.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(staging.getMappedRange().slice(0));
        staging.unmap();
        if (r === 0) continue; // the first replay warms the caches
        for (let i = 0; i < n; i++) perCommand[i].push(Number(t[2 * i + 1] - t[2 * i]) / 1000);
        totals.push(Number(t[2 * n - 1] - t[0]) / 1000);
      }
    } finally {
      for (const set of sets) set.destroy();
      resolve.destroy();
      staging.destroy();
    }
    const median = (v: number[]) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
    return {
      total: median(totals),
      commands: cmds.map((c, i) => ({ label: c.label, us: median(perCommand[i]) })),
    };
  }

  /** Whether a capture is in progress. */
  get capturing(): boolean {
    return this.#capture !== null;
  }

  /** @internal Records captured commands into the current submit. */
  replay(commands: readonly Command[]): void {
    this.check();
    if (this.#capture) {
      this.#capture.commands.push(...commands);
      return;
    }
    const r = this.recorder;
    for (const c of commands) {
      if (c.kind === "dispatch") {
        r.dispatch(c.pipeline, c.bindGroup, c.x, c.y, c.z, c.label);
        this.counters.dispatches++;
      } else if (c.kind === "copy") {
        r.copy(c.src, c.srcOffset, c.dst, c.dstOffset, c.bytes, c.label);
      } else r.clear(c.buf, c.offset, c.bytes, c.label);
    }
    if (r.pending >= MAX_PENDING_COMMANDS) this.flush();
  }

  /**
   * @internal Returns a plan's buffers to the pool. A buffer that a live tensor still holds (a
   * tensor made during the capture and kept) goes back when that tensor releases it.
   */
  releasePlan(owned: Map<GPUBuffer, Storage>, uniforms: GPUBuffer[]): void {
    if (this.recorder.pending) this.flush();
    for (const [buf, first] of owned) {
      const holders = this.#captureHolders.get(buf);
      const live = holders ? [...holders].filter((s) => !s.released) : [];
      if (!first.released && !live.includes(first)) live.push(first);
      if (live.length) {
        // The last live region releases the buffer to the pool.
        let left = live.length;
        const back: Recycler = {
          recycle: () => {
            if (--left === 0) this.pool.recycleBuffer(buf);
          },
        };
        for (const s of live) s.setRecycler(back);
      } else {
        this.pool.recycleBuffer(buf);
      }
      this.#captureHolders.delete(buf);
    }
    for (const u of uniforms) u.destroy();
  }

  /** Regions made on capture-owned buffers, so that a released plan can find live holders. */
  #captureHolders = new Map<GPUBuffer, Set<Storage>>();

  /** Releases the device. Tensors created on it become unusable. */
  destroy(): void {
    this.device.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// The process-wide runtime, acquired lazily.

let runtime: Runtime | null = null;
let starting: Promise<Runtime> | null = null;
let startError: unknown = null;
let waiting: ((rt: Runtime) => void)[] = [];

function start(): Promise<Runtime> {
  if (starting) return starting;
  startError = null;
  starting = requestDeviceContext().then(
    (ctx) => {
      const rt = new Runtime(ctx);
      runtime = rt;
      const queued = waiting;
      waiting = [];
      for (const fn of queued) {
        try {
          fn(rt);
        } catch (e) {
          deferredError ??= e;
        }
      }
      return rt;
    },
    (e) => {
      startError = e;
      waiting = [];
      starting = null;
      throw e;
    },
  );
  starting.catch(() => {}); // reported by ready() and schedule()
  return starting;
}

let deferredError: unknown = null;

/**
 * Runs GPU work now if the device is ready, or queues it to run in order once it is.
 * Validation that needs no device belongs before this call, so that errors are thrown at once.
 */
export function schedule(fn: (rt: Runtime) => void): void {
  if (runtime && waiting.length === 0) {
    fn(runtime);
    return;
  }
  if (startError) throw startError;
  waiting.push(fn);
  void start();
}

/** The runtime once the device is ready and all queued work is recorded. */
export async function ready(): Promise<Runtime> {
  const rt = runtime ?? await start();
  if (deferredError) {
    const e = deferredError;
    deferredError = null;
    throw e;
  }
  rt.check();
  return rt;
}

/** The runtime if the device is ready, else null. */
export function currentRuntime(): Runtime | null {
  return runtime;
}

/**
 * Acquires the WebGPU adapter and device if that has not happened yet, and reports them.
 * Throws a `gpu-unavailable` {@linkcode WgradError} that says how to fix the set-up when there is
 * no WebGPU adapter.
 */
export async function gpuInfo(): Promise<GpuInfo> {
  return (await ready()).info;
}

/** Figures about the engine's GPU memory (all zero before the device exists). */
export function memoryInfo(): MemoryInfo {
  return runtime?.pool.info() ??
    { bytesAllocated: 0, bytesInUse: 0, bytesPooled: 0, buffersInUse: 0, buffersPooled: 0 };
}

/** Submits all recorded GPU work now and waits until the GPU has reported errors, if any. */
export async function flush(): Promise<void> {
  const rt = await ready();
  rt.flush();
  await rt.settle();
}

/**
 * Drops the current device (destroying it unless it is already lost), so that the next GPU work
 * acquires a new one. Tensors created before become unusable.
 */
export async function resetGpu(): Promise<void> {
  const rt = runtime;
  runtime = null;
  starting = null;
  startError = null;
  deferredError = null;
  if (rt && !rt.lost) {
    rt.destroy();
    await rt.device.lost;
  }
}

/** Formats a label naming an op and its operand shapes. */
export function opLabel(op: string, ...shapes: readonly (readonly number[])[]): string {
  return `${op} ${shapes.map(fmtShape).join(" ")}`;
}
