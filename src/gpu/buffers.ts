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

/** A pool of storage buffers in size classes, with a cap on the bytes it keeps unused. */
export class BufferPool implements Recycler {
  #clean = new Map<number, GPUBuffer[]>();
  #dirty = new Map<number, GPUBuffer[]>();
  #bytesAllocated = 0;
  #bytesPooled = 0;
  #buffersInUse = 0;
  #buffersPooled = 0;
  /** Set by the recorder: true while commands are recorded but not submitted. */
  pendingWork: () => boolean = () => false;
  /** Called when an upload needs a clean buffer that only exists dirty: submits pending work. */
  flush: () => void = () => {};

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

  /**
   * A region of at least `bytes` bytes. With `forUpload`, the buffer is one that no unsubmitted
   * command uses, so that `queue.writeBuffer` into it is safe.
   * @param what names the tensor for an error message
   */
  acquire(bytes: number, what: string, forUpload = false): Storage {
    const size = sizeClass(Math.max(4, bytes));
    if (size > this.maxBufferSize) {
      throw new WgradError(
        "limit",
        `${what}: needs a GPU buffer of ${bytes} bytes, more than this device's maxBufferSize ` +
          `(${this.maxBufferSize} bytes)`,
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
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label: what });
      this.#bytesAllocated += size;
    } else {
      this.#bytesPooled -= size;
      this.#buffersPooled--;
    }
    this.#buffersInUse++;
    return new Storage(buf, 0, bytes, this);
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
        s.buffer.destroy();
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
        list.pop()!.destroy();
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
        b.destroy();
        this.#bytesAllocated -= size;
        this.#bytesPooled -= size;
        this.#buffersPooled--;
      }
    }
    this.#clean.clear();
  }
}
