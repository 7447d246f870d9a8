/**
 * The step recorder: every dispatch and copy goes into one command encoder, with one compute pass
 * kept open across dispatches, and a single `queue.submit` when the work is flushed. Uniform blocks
 * are gathered on the CPU and uploaded once per submit.
 * @module
 */
import type { LabelledBufferDescriptor } from "./buffers.ts";

interface UniformChunk {
  gpu: GPUBuffer;
  cpu: Uint8Array<ArrayBuffer>;
  used: number;
}

/** Uniform blocks for the commands of one submit, packed into 64 KiB buffers. */
class UniformArena {
  #chunks: UniformChunk[] = [];
  #current = 0;
  readonly chunkBytes: number;

  constructor(
    device: GPUDevice,
    private readonly align: number,
    private readonly create: (desc: LabelledBufferDescriptor) => GPUBuffer,
  ) {
    this.chunkBytes = Math.min(65536, device.limits.maxUniformBufferBindingSize);
  }

  /** Places a uniform block; returns where it will live once the submit uploads it. */
  alloc(data: ArrayBufferView): GPUBufferBinding {
    const size = Math.ceil(data.byteLength / 16) * 16;
    let chunk = this.#chunks[this.#current];
    if (!chunk || chunk.used + size > this.chunkBytes) {
      if (chunk) this.#current++;
      chunk = this.#chunks[this.#current];
      if (!chunk) {
        chunk = {
          gpu: this.create({
            size: this.chunkBytes,
            usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
            label: "wgrad uniforms",
          }),
          cpu: new Uint8Array(this.chunkBytes),
          used: 0,
        };
        this.#chunks.push(chunk);
      }
    }
    const offset = chunk.used;
    chunk.cpu.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    chunk.used = Math.ceil((offset + size) / this.align) * this.align;
    return { buffer: chunk.gpu, offset, size };
  }

  /** Uploads the blocks of this submit and starts over. */
  upload(queue: GPUQueue): void {
    for (let i = 0; i <= this.#current && i < this.#chunks.length; i++) {
      const c = this.#chunks[i];
      if (c.used) queue.writeBuffer(c.gpu, 0, c.cpu, 0, Math.min(c.used, this.chunkBytes));
      c.used = 0;
    }
    this.#current = 0;
  }
}

/** One command encoder, many dispatches, one submit. */
export class Recorder {
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #labels: string[] = [];
  #commands = 0;
  #scopeOpen = false;
  readonly uniforms: UniformArena;

  /** @param create makes the uniform buffers (the runtime's creation, which names failures) */
  constructor(
    private readonly device: GPUDevice,
    create: (desc: LabelledBufferDescriptor) => GPUBuffer = (d) => device.createBuffer(d),
  ) {
    this.uniforms = new UniformArena(
      device,
      Math.max(16, device.limits.minUniformBufferOffsetAlignment),
      create,
    );
  }

  /** Number of commands recorded since the last submit. */
  get pending(): number {
    return this.#commands;
  }

  /**
   * Opens the validation and out-of-memory error scopes that cover everything recorded until the
   * next submit (bind groups, commands, the submit itself), once per submit.
   */
  openScope(): void {
    if (this.#scopeOpen) return;
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    this.#scopeOpen = true;
  }

  #enc(): GPUCommandEncoder {
    this.openScope();
    return this.#encoder ??= this.device.createCommandEncoder({ label: "wgrad step" });
  }

  #note(label: string): void {
    this.#commands++;
    if (this.#labels.length < 32) this.#labels.push(label);
  }

  /** Records a dispatch into the open compute pass. */
  dispatch(
    pipeline: GPUComputePipeline,
    bindGroup: GPUBindGroup,
    x: number,
    y: number,
    z: number,
    label: string,
  ): void {
    this.#pass ??= this.#enc().beginComputePass({ label: "wgrad pass" });
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bindGroup);
    this.#pass.dispatchWorkgroups(x, y, z);
    this.#note(label);
  }

  #endPass(): GPUCommandEncoder {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    return this.#enc();
  }

  /** Records a buffer-to-buffer copy (closes the open compute pass). */
  copy(
    src: GPUBuffer,
    srcOffset: number,
    dst: GPUBuffer,
    dstOffset: number,
    bytes: number,
    label: string,
  ): void {
    this.#endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.#note(label);
  }

  /** Records a clear to zero (closes the open compute pass). */
  clear(buf: GPUBuffer, offset: number, bytes: number, label: string): void {
    this.#endPass().clearBuffer(buf, offset, bytes);
    this.#note(label);
  }

  /**
   * Submits everything recorded, inside validation and out-of-memory error scopes.
   * Returns the labels of the submitted commands and a promise of the first GPU error, if any.
   */
  submit(): { labels: string[]; count: number; errors: Promise<GPUError | null> } | null {
    if (!this.#encoder) return null;
    const enc = this.#endPass();
    this.#encoder = null;
    const labels = this.#labels;
    const count = this.#commands;
    this.#labels = [];
    this.#commands = 0;
    this.openScope();
    this.uniforms.upload(this.device.queue);
    this.device.queue.submit([enc.finish()]);
    this.#scopeOpen = false;
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    const errors = Promise.all([validation, oom]).then(([v, o]) => v ?? o);
    return { labels, count, errors };
  }
}
