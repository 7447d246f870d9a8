/**
 * GPU memory: storage regions handed to tensors, and a pool of buffers in size classes.
 *
 * A buffer released while commands that use it are still being recorded is "dirty": kernels recorded
 * later may reuse it (commands run in order), but a `queue.writeBuffer` upload may not, because the
 * queue runs uploads before the commands still being recorded. After a submit every dirty buffer is
 * clean again.
 * @module
 */
import { WgradError } from "../errors.ts";

/** Usage of every tensor buffer. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** The smallest buffer the pool hands out, in bytes. */
const MIN_CLASS = 256;

/**
 * Rounds a byte size up to its size class: 256 bytes at the least, then four classes per power of two
 * (at most 25% waste), so that varying shapes reuse buffers instead of growing the pool.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_CLASS) return MIN_CLASS;
  const p = 2 ** Math.floor(Math.log2(bytes));
  if (p === bytes) return p;
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

const UNITS = ["KiB", "MiB", "GiB", "TiB"];

/** A byte count for people: `412.00 MiB` (powers of 1024), `96 bytes` below 1 KiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(2)} ${UNITS[i]}`;
}

/** A byte count exact and for people: `432013312 bytes (412.00 MiB)`. */
export function describeBytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : `${bytes} bytes (${formatBytes(bytes)})`;
}

/** What a message about a size over a device limit ends with: what to shrink. */
export const SHRINK_HINT = "Shrink what makes it this large (the batch size, a layer's width or " +
  "the input size) or split it into smaller tensors.";

/** What an out-of-memory message ends with: what to free or shrink. */
export const OOM_HINT = "Dispose of tensors no longer needed (dispose(), scope()), or use a " +
  "smaller batch size or narrower layers.";

/**
 * The engine's GPU memory in one line: `wgrad holds 1.25 MiB of GPU buffers (1.00 MiB in live
 * tensors, 256.00 KiB pooled for reuse)`.
 */
export function describeHeld(i: MemoryInfo): string {
  return `wgrad holds ${formatBytes(i.bytesAllocated)} of GPU buffers (${
    formatBytes(i.bytesInUse)
  } in live tensors, ${formatBytes(i.bytesPooled)} pooled for reuse)`;
}

/**
 * The size of the buffer that holds a region of `bytes` bytes: its size class, or the region's own
 * size (rounded up to 4 bytes) where the class would exceed `maxBufferSize` but the region does not.
 */
export function bufferSize(bytes: number, maxBufferSize: number): number {
  const size = sizeClass(Math.max(4, bytes));
  if (size <= maxBufferSize) return size;
  const exact = Math.ceil(Math.max(4, bytes) / 4) * 4;
  return exact <= maxBufferSize ? exact : size;
}

/** Where a released region's buffer goes: the pool, or a captured plan that owns it. */
export interface Recycler {
  /** Takes back the buffer of a region whose last holder released it. */
  recycle(s: Storage): void;
}

/**
 * A region of a GPU buffer that holds one tensor's elements. Reference-counted: views (reshape)
 * share it, and it returns to its pool when the last holder releases it.
 */
export class Storage {
  #refs = 1;
  /** What the region was allocated for (the op and shapes), for messages. */
  label = "";
  /**
   * The tensor that holds the region, set when it gets it: once the tensor has a name (a layer's
   * weight, `dense/kernel`), messages about GPU memory name the region by it.
   */
  owner: { readonly name?: string; describe(): string } | null = null;
  /** @internal */
  constructor(
    /** The buffer; only `src/gpu` touches it. */
    readonly buffer: GPUBuffer,
    /** Byte offset of the region in the buffer. */
    readonly offset: number,
    /** Byte length of the region. */
    readonly byteLength: number,
    private recycler: Recycler | null,
    /** For a view: the region it lies in, held until the view is released. */
    readonly parent: Storage | null = null,
  ) {}

  /**
   * A view of `byteLength` bytes at `byteOffset` inside this region (a parameter in a flat arena,
   * say). It holds this region until it is released. Offsets must be multiples of the device's
   * `minStorageBufferOffsetAlignment` to be bound.
   */
  view(byteOffset: number, byteLength: number): Storage {
    if (byteOffset < 0 || byteLength < 0 || byteOffset + byteLength > this.byteLength) {
      throw new Error(
        `internal: view [${byteOffset}, ${
          byteOffset + byteLength
        }) outside a region of ${this.byteLength} bytes`,
      );
    }
    this.retain();
    return new Storage(this.buffer, this.offset + byteOffset, byteLength, null, this);
  }

  /** Whether the region has been returned to its pool. */
  get released(): boolean {
    return this.#refs === 0;
  }

  /** @internal Changes where the buffer goes when the region is released. */
  setRecycler(r: Recycler | null): void {
    this.recycler = r;
  }

  /** Adds a holder. */
  retain(): this {
    if (this.#refs === 0) throw new Error("internal: retain of a released storage");
    this.#refs++;
    return this;
  }

  /** Drops a holder; the last one returns the buffer to its pool. */
  release(): void {
    if (this.#refs === 0) return;
    if (--this.#refs === 0) {
      if (this.parent) this.parent.release();
      else this.recycler?.recycle(this);
    }
  }
}

/** Figures about the engine's GPU memory, from {@linkcode memoryInfo}. */
export interface MemoryInfo {
  /** Bytes in buffers that the pool created and has not destroyed. */
  bytesAllocated: number;
  /** Bytes in buffers that hold live tensors (rounded up to size classes). */
  bytesInUse: number;
  /** Bytes in buffers kept for reuse. */
  bytesPooled: number;
  /** Number of buffers that hold live tensors. */
  buffersInUse: number;
  /** Number of buffers kept for reuse. */
  buffersPooled: number;
}

/** A buffer descriptor with the label every engine buffer carries (it names the buffer in errors). */
export type LabelledBufferDescriptor = GPUBufferDescriptor & { label: string };

/** A pool of storage buffers in size classes, with a cap on the bytes it keeps unused. */
export class BufferPool implements Recycler {
  #clean = new Map<number, GPUBuffer[]>();
  #dirty = new Map<number, GPUBuffer[]>();
  /** Every buffer the pool created and has not destroyed, with the latest region made on it. */
  #holders = new Map<GPUBuffer, Storage>();
  #bytesAllocated = 0;
  #bytesPooled = 0;
  #buffersInUse = 0;
  #buffersPooled = 0;
  /** Set by the recorder: true while commands are recorded but not submitted. */
  pendingWork: () => boolean = () => false;
  /** Called when an upload needs a clean buffer that only exists dirty: submits pending work. */
  flush: () => void = () => {};
  /** Creates a buffer (the runtime wraps creation in error scopes that name the buffer). */
  createBuffer: (desc: LabelledBufferDescriptor) => GPUBuffer = (desc) =>
    this.device.createBuffer(desc);

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
    /** Bytes of unused buffers kept for reuse; beyond it released buffers are destroyed. */
    readonly capBytes: number,
  ) {}

  /** Memory figures. */
  info(): MemoryInfo {
    return {
      bytesAllocated: this.#bytesAllocated,
      bytesInUse: this.#bytesAllocated - this.#bytesPooled,
      bytesPooled: this.#bytesPooled,
      buffersInUse: this.#buffersInUse,
      buffersPooled: this.#buffersPooled,
    };
  }

  /** The engine's GPU memory now, for messages (see {@linkcode describeHeld}). */
  held(): string {
    return describeHeld(this.info());
  }

  /**
   * The memory held and its `n` largest buffers, for messages about allocations that failed:
   * `wgrad holds … ; the largest: dense/kernel f32 [784, 128] (392.00 KiB), …`.
   */
  report(n = 5): string {
    const largest = this.largest(n);
    return `${this.held()}${largest.length ? `; the largest: ${largest.join(", ")}` : ""}`;
  }

  /**
   * The `n` largest buffers the pool holds, for an out-of-memory message: `label (412.00 MiB)`,
   * marked `pooled` when no tensor uses them. Costs a sort of every buffer: for errors only.
   */
  largest(n = 5): string[] {
    const pooled = new Set<GPUBuffer>();
    for (const map of [this.#clean, this.#dirty]) {
      for (const list of map.values()) for (const b of list) pooled.add(b);
    }
    return [...this.#holders].sort((a, b) => b[0].size - a[0].size).slice(0, n).map(
      ([b, s]) => {
        const name = s.owner?.name !== undefined ? s.owner.describe() : s.label;
        return `${name} (${formatBytes(b.size)}${pooled.has(b) ? ", pooled" : ""})`;
      },
    );
  }

  #destroy(b: GPUBuffer): void {
    this.#holders.delete(b);
    b.destroy();
  }

  /**
   * A region of at least `bytes` bytes. With `forUpload`, the buffer is one that no unsubmitted
   * command uses, so that `queue.writeBuffer` into it is safe.
   * @param what names the tensor for an error message
   */
  acquire(bytes: number, what: string, forUpload = false): Storage {
    const size = bufferSize(bytes, this.maxBufferSize);
    if (size > this.maxBufferSize) {
      throw new WgradError(
        "limit",
        `${what}: needs a GPU buffer of ${describeBytes(bytes)}, more than this device's ` +
          `maxBufferSize (${this.maxBufferSize} bytes); ${this.report(3)}. ${SHRINK_HINT}`,
      );
    }
    let buf = this.#take(this.#clean, size);
    if (!buf && this.#dirty.get(size)?.length) {
      if (forUpload) {
        this.flush();
        buf = this.#take(this.#clean, size);
      } else {
        buf = this.#take(this.#dirty, size);
      }
    }
    if (!buf) {
      buf = this.createBuffer({ size, usage: STORAGE_USAGE, label: what });
      this.#bytesAllocated += size;
    } else {
      this.#bytesPooled -= size;
      this.#buffersPooled--;
    }
    this.#buffersInUse++;
    const s = new Storage(buf, 0, bytes, this);
    s.label = what;
    this.#holders.set(buf, s);
    return s;
  }

  #take(map: Map<number, GPUBuffer[]>, size: number): GPUBuffer | undefined {
    return map.get(size)?.pop();
  }

  /** Returns a released region's buffer to the pool (or destroys it beyond the cap). */
  recycle(s: Storage): void {
    this.recycleBuffer(s.buffer);
  }

  /** Returns a buffer that this pool handed out to the pool. */
  recycleBuffer(buffer: GPUBuffer): void {
    const s = { buffer };
    const size = s.buffer.size;
    this.#buffersInUse--;
    if (this.#bytesPooled + size > this.capBytes) {
      if (!this.pendingWork()) {
        this.#destroy(s.buffer);
        this.#bytesAllocated -= size;
        return;
      }
      // Still used by unsubmitted commands: keep it until the next submit trims the pool.
    }
    const map = this.pendingWork() ? this.#dirty : this.#clean;
    let list = map.get(size);
    if (!list) map.set(size, list = []);
    list.push(s.buffer);
    this.#bytesPooled += size;
    this.#buffersPooled++;
  }

  /** After a submit: dirty buffers become clean, and the pool is trimmed to its cap. */
  afterSubmit(): void {
    for (const [size, list] of this.#dirty) {
      let clean = this.#clean.get(size);
      if (!clean) this.#clean.set(size, clean = []);
      clean.push(...list);
    }
    this.#dirty.clear();
    if (this.#bytesPooled <= this.capBytes) return;
    const sizes = [...this.#clean.keys()].sort((a, b) => b - a);
    for (const size of sizes) {
      const list = this.#clean.get(size)!;
      while (list.length && this.#bytesPooled > this.capBytes) {
        this.#destroy(list.pop()!);
        this.#bytesPooled -= size;
        this.#bytesAllocated -= size;
        this.#buffersPooled--;
      }
    }
  }

  /** Destroys every pooled buffer (the live ones stay with their tensors). */
  trim(): void {
    this.flush();
    this.afterSubmit();
    for (const [size, list] of this.#clean) {
      for (const b of list) {
        this.#destroy(b);
        this.#bytesAllocated -= size;
        this.#bytesPooled -= size;
        this.#buffersPooled--;
      }
    }
    this.#clean.clear();
  }
}
