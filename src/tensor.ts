/**
 * Tensors: a shape, a dtype and a region of GPU memory.
 * @module
 */
import { fmtShape, WgradError } from "./errors.ts";
import { currentRuntime, ready, schedule, type Storage } from "./gpu/runtime.ts";
import { describeBytes, SHRINK_HINT } from "./gpu/buffers.ts";
import { generatorFor } from "./random.ts";

/** Element types: 32-bit floats for values, 32-bit integers for labels and indices. */
export type DType = "f32" | "i32" | "u32";

/** The typed array that holds a tensor's elements on the CPU. */
export type TypedArrayFor<D extends DType> = D extends "f32" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

/** Nested number arrays, as `tensor()` takes and `array()` returns them. */
export type NestedArray = number | NestedArray[];

/** Input accepted by {@linkcode tensor}: flat or nested numbers, or a typed array. */
export type TensorLike = NestedArray | readonly number[] | Float32Array | Int32Array | Uint32Array;

let nextId = 1;

/** @internal The id the next tensor will get (ids only increase). */
export function nextTensorId(): number {
  return nextId;
}

/** @internal Hooks set by other modules (the tape defers disposal of tensors it still needs). */
export const hooks: { deferDispose: (t: Tensor) => boolean } = { deferDispose: () => false };

/** Scopes collect the tensors created inside them (see {@linkcode scope}). */
const scopes: Set<Tensor>[] = [];

/**
 * An n-dimensional array of `f32`, `i32` or `u32` elements in GPU memory.
 *
 * Tensors are immutable: ops make new tensors. Call {@linkcode Tensor.dispose} (or use
 * {@linkcode scope}) to give the memory back; reading a disposed tensor is an error.
 */
export class Tensor<D extends DType = DType> {
  /** The tensor's dimensions, outermost first. */
  readonly shape: readonly number[];
  /** The element type. */
  readonly dtype: D;
  /** The number of elements (the product of the shape). */
  readonly size: number;
  /** A process-unique id, shown in messages. */
  readonly id: number = nextId++;
  /** An optional name used in error messages. */
  name?: string;
  #storage: Storage | null = null;
  #disposed = false;
  #lazy: (() => void) | null = null;

  /** @internal Use {@linkcode tensor}, {@linkcode zeros} and the ops to make tensors. */
  constructor(shape: readonly number[], dtype: D) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = shape.reduce((a, b) => a * b, 1);
    scopes[scopes.length - 1]?.add(this as Tensor);
  }

  /** The number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether {@linkcode Tensor.dispose} has been called. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** A short description for messages, e.g. `tensor#4 f32 [2, 3]`. */
  describe(): string {
    return `${this.name ?? `tensor#${this.id}`} ${this.dtype} ${fmtShape(this.shape)}`;
  }

  /** @internal The GPU region; set when the op that makes the tensor has been recorded. */
  get storage(): Storage {
    if (this.#storage === null && this.#lazy) {
      // Made on first use: the work is recorded now, just before the kernel that reads it. (Not
      // after dispose() only: before the device exists, recording runs later than the calls, so
      // a kernel recorded before the disposal may bind the tensor after dispose() returned.)
      const make = this.#lazy;
      this.#lazy = null;
      make();
    }
    if (this.#storage === null) {
      throw new WgradError("disposed", `${this.describe()} has no GPU memory (disposed or failed)`);
    }
    return this.#storage;
  }

  /**
   * @internal Defers the making of the tensor's contents until a kernel first binds it: `make`
   * runs inside that kernel's recording (on the runtime's queue) and must call `setStorage`. A
   * tensor no kernel reads costs nothing (the all-ones seed of a gradient whose rule ignores it).
   */
  setLazy(make: () => void): void {
    this.#lazy = make;
  }

  /** @internal Called by the op that makes the tensor, once its GPU region exists. */
  setStorage(s: Storage): void {
    // Disposal is scheduled in order after the work that makes the tensor, so it releases `s`.
    this.#storage = s;
    s.owner = this; // names the region in messages about GPU memory, once the tensor has a name
  }

  /** Throws a clear error if the tensor was disposed. `op` names the caller. */
  assertLive(op: string): void {
    if (this.#disposed) {
      throw new WgradError("disposed", `${op}: ${this.describe()} was used after dispose()`);
    }
  }

  /** Copies the elements to the CPU, in row-major order. */
  async data(): Promise<TypedArrayFor<D>> {
    this.assertLive("data()");
    if (currentRuntime()?.capturing) {
      throw new WgradError(
        "value",
        `data(): ${this.describe()} cannot be read back while a step is being captured (it has not run)`,
      );
    }
    let held: Storage | null = null;
    schedule(() => {
      held = this.storage.retain();
    });
    const rt = await ready();
    const s = held as Storage | null;
    if (!s) throw new WgradError("disposed", `data(): ${this.describe()} has no GPU memory`);
    try {
      const bytes = await rt.read(s, this.describe());
      return (this.dtype === "f32"
        ? new Float32Array(bytes)
        : this.dtype === "i32"
        ? new Int32Array(bytes)
        : new Uint32Array(bytes)) as TypedArrayFor<D>;
    } finally {
      s.release();
    }
  }

  /** Copies the elements to the CPU as nested arrays (a number for a scalar). */
  async array(): Promise<NestedArray> {
    const flat = Array.from(await this.data() as ArrayLike<number>);
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return flat[offset];
      const inner = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * inner));
    };
    return build(0, 0);
  }

  /** Gives the tensor's GPU memory back. Safe to call more than once. */
  dispose(): void {
    if (this.#disposed) return;
    if (hooks.deferDispose(this as Tensor)) return;
    this.#disposed = true;
    for (const s of scopes) s.delete(this as Tensor);
    try {
      schedule(() => {
        this.#storage?.release();
        this.#storage = null;
      });
    } catch {
      this.#storage = null; // the device is gone: nothing to give back
    }
  }

  /** A one-line description; use {@linkcode Tensor.data} for the values. */
  toString(): string {
    return `Tensor(${this.describe()})`;
  }
}

/** @internal Makes an output tensor for an op and records its kernel(s) via `record`. */
export function makeTensor<D extends DType>(shape: readonly number[], dtype: D): Tensor<D> {
  return new Tensor(shape, dtype);
}

// ---------------------------------------------------------------------------------------------
// Scopes

/** Every tensor found in a value: the tensor itself, or inside arrays and plain objects. */
function collectTensors(v: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 8 || v === null || typeof v !== "object") return;
  if (v instanceof Tensor) {
    into.add(v);
  } else if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, into, depth + 1);
  } else if (Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collectTensors(x, into, depth + 1);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except the tensors it returns (alone, or
 * in arrays and plain objects) and those passed to {@linkcode keep}. Scopes nest; returned tensors
 * belong to the enclosing scope. `fn` must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result && typeof (result as { then?: unknown }).then === "function") {
    for (const t of created) t.dispose();
    throw new WgradError(
      "value",
      "scope(): the function returned a Promise; scope() takes a synchronous function " +
        "(await outside it, or dispose tensors by hand in async code)",
    );
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of created) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Exempts a tensor from disposal by the scopes it was created in, and returns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Creation

/** Checks a shape: non-negative integer dimensions. `op` names the caller. */
export function checkShape(shape: readonly number[], op: string): void {
  if (!Array.isArray(shape)) {
    throw new WgradError(
      "shape",
      `${op}: shape must be an array of integers, got ${String(shape)}`,
    );
  }
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (!Number.isInteger(d) || d < 0) {
      throw new WgradError(
        "shape",
        `${op}: shape ${fmtShape(shape)} has an invalid dimension ${d} at axis ${i} ` +
          "(dimensions are non-negative integers)",
      );
    }
  }
}

function checkDType(dtype: string, op: string): asserts dtype is DType {
  if (dtype !== "f32" && dtype !== "i32" && dtype !== "u32") {
    throw new WgradError("dtype", `${op}: unknown dtype "${dtype}" (use "f32", "i32" or "u32")`);
  }
}

function inferShape(data: NestedArray, op: string): number[] {
  const shape: number[] = [];
  let v: NestedArray = data;
  while (Array.isArray(v)) {
    shape.push(v.length);
    if (v.length === 0) break;
    v = v[0];
  }
  const check = (x: NestedArray, dim: number, path: string): void => {
    if (dim === shape.length) {
      if (Array.isArray(x)) {
        throw new WgradError("shape", `${op}: ragged nested array at ${path || "the top"}`);
      }
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[dim]) {
      throw new WgradError(
        "shape",
        `${op}: ragged nested array: element ${path || "at the top"} has ${
          Array.isArray(x) ? x.length : "no"
        } entries where ${shape[dim]} were expected (inferred shape ${fmtShape(shape)})`,
      );
    }
    x.forEach((y, i) => check(y, dim + 1, `${path}[${i}]`));
  };
  check(data, 0, "");
  return shape;
}

function flatten(data: NestedArray, out: number[]): void {
  if (Array.isArray(data)) { for (const x of data) flatten(x, out); }
  else out.push(data);
}

function toTyped(
  values: ArrayLike<number>,
  dtype: DType,
  op: string,
): Float32Array | Int32Array | Uint32Array {
  if (dtype === "f32") return values instanceof Float32Array ? values : Float32Array.from(values);
  const lo = dtype === "i32" ? -(2 ** 31) : 0;
  const hi = dtype === "i32" ? 2 ** 31 - 1 : 2 ** 32 - 1;
  if (
    !(values instanceof Int32Array && dtype === "i32") &&
    !(values instanceof Uint32Array && dtype === "u32")
  ) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new WgradError(
          "value",
          `${op}: value ${v} at flat index ${i} is not a valid ${dtype} (an integer in [${lo}, ${hi}])`,
        );
      }
    }
  }
  return dtype === "i32" ? Int32Array.from(values) : Uint32Array.from(values);
}

function upload<D extends DType>(
  values: Float32Array | Int32Array | Uint32Array,
  shape: readonly number[],
  dtype: D,
  op: string,
): Tensor<D> {
  const out = makeTensor(shape, dtype);
  const copy = values.slice();
  schedule((rt) => out.setStorage(rt.upload(copy, `${op} ${out.describe()}`)));
  return out;
}

/**
 * Makes a tensor from numbers. `shape` defaults to the nesting of `data`; `dtype` defaults to the
 * typed array's type, else `"f32"`.
 *
 * ```ts
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);         // f32 [2, 3]
 * const y = tensor([0, 2, 1], [3], "i32");           // labels
 * ```
 */
export function tensor(data: Int32Array, shape?: readonly number[]): Tensor<"i32">;
/** Makes a u32 tensor from a Uint32Array. */
export function tensor(data: Uint32Array, shape?: readonly number[]): Tensor<"u32">;
/** Makes a tensor of the given dtype (default f32) from numbers. */
export function tensor<D extends DType = "f32">(
  data: TensorLike,
  shape?: readonly number[],
  dtype?: D,
): Tensor<D>;
export function tensor<D extends DType = "f32">(
  data: TensorLike,
  shape?: readonly number[],
  dtype?: D,
): Tensor<D> {
  const op = "tensor()";
  const dt = (dtype ??
    (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32")) as D;
  checkDType(dt, op);
  let flat: ArrayLike<number>;
  let inferred: number[];
  if (ArrayBuffer.isView(data)) {
    flat = data;
    inferred = [data.length];
  } else if (typeof data === "number") {
    flat = [data];
    inferred = [];
  } else if (Array.isArray(data)) {
    inferred = inferShape(data as NestedArray, op);
    const out: number[] = [];
    flatten(data as NestedArray, out);
    flat = out;
  } else {
    throw new WgradError("value", `${op}: data must be numbers, nested arrays or a typed array`);
  }
  const s = shape ?? inferred;
  checkShape(s, op);
  const size = s.reduce((a, b) => a * b, 1);
  if (size !== flat.length) {
    throw new WgradError(
      "shape",
      `${op}: ${flat.length} values do not fill shape ${fmtShape(s)} (${size} elements)`,
    );
  }
  return upload(toTyped(flat, dt, `${op} with shape ${fmtShape(s)}`), s, dt, op);
}

/** A scalar (rank-0) tensor. */
export function scalar<D extends DType = "f32">(value: number, dtype?: D): Tensor<D> {
  return tensor(value, [], dtype);
}

/** The IEEE bit pattern of `value` as `dtype`, for the fill kernel. */
function bitsOf(value: number, dtype: DType, op: string): number {
  if (dtype === "f32") return new Uint32Array(new Float32Array([value]).buffer)[0];
  return toTyped([value], dtype, op)[0] >>> 0;
}

/**
 * A tensor of `shape` with every element `value`. @internal The fill kernel is in ops/fill.ts and
 * registers itself here, so that creation does not import the op layer.
 */
export let fillImpl: (out: Tensor, bits: number) => void = (): void => {
  throw new Error("internal: fill kernel not registered");
};

/** @internal Registers the fill kernel. */
export function registerFill(fn: (out: Tensor, bits: number) => void): void {
  fillImpl = fn;
}

/** A tensor of `shape` with every element equal to `value`. */
export function fill<D extends DType = "f32">(
  shape: readonly number[],
  value: number,
  dtype?: D,
): Tensor<D> {
  return fillAs("fill()", shape, value, dtype);
}

function fillAs<D extends DType>(
  op: string,
  shape: readonly number[],
  value: number,
  dtype?: D,
): Tensor<D> {
  const dt = (dtype ?? "f32") as D;
  checkDType(dt, op);
  checkShape(shape, op);
  const bits = bitsOf(value, dt, `${op} with shape ${fmtShape(shape)}`);
  const out = makeTensor(shape, dt);
  fillImpl(out, bits);
  return out;
}

/** A tensor of zeros. */
export function zeros<D extends DType = "f32">(shape: readonly number[], dtype?: D): Tensor<D> {
  return fillAs("zeros()", shape, 0, dtype);
}

/** A tensor of ones. */
export function ones<D extends DType = "f32">(shape: readonly number[], dtype?: D): Tensor<D> {
  return fillAs("ones()", shape, 1, dtype);
}

/**
 * Rejects element counts that cannot fit one storage binding, before CPU work is spent on them
 * (the device's limit once it exists, else WebGPU's largest plausible 4 GiB).
 */
function checkBindable(size: number, shape: readonly number[], op: string): void {
  const limit = currentRuntime()?.limits.maxStorageBufferBindingSize ?? 2 ** 32;
  if (size * 4 > limit) {
    throw new WgradError(
      "limit",
      `${op}: shape ${fmtShape(shape)} needs ${describeBytes(size * 4)} in one binding, more ` +
        `than this device's maxStorageBufferBindingSize (${limit} bytes). ${SHRINK_HINT}`,
    );
  }
}

/** Options of {@linkcode randomUniform}. */
export interface RandomUniformOptions<D extends DType> {
  /** Lower bound, inclusive (default 0). */
  minval?: number;
  /** Upper bound, exclusive (default 1). */
  maxval?: number;
  /** A seed of its own; without it, the next stream of the global seed (see `setSeed`). */
  seed?: number;
  /** `"f32"` (default) or `"i32"` for integers in [minval, maxval). */
  dtype?: D;
}

/**
 * Uniform random numbers in [minval, maxval). The same seed gives the same numbers on any adapter.
 */
export function randomUniform<D extends "f32" | "i32" = "f32">(
  shape: readonly number[],
  options: RandomUniformOptions<D> = {},
): Tensor<D> {
  const op = "randomUniform()";
  checkShape(shape, op);
  const { minval = 0, maxval = 1, seed } = options;
  const dtype = (options.dtype ?? "f32") as D;
  if (dtype !== "f32" && dtype !== "i32") {
    throw new WgradError("dtype", `${op}: dtype must be "f32" or "i32", got "${dtype}"`);
  }
  if (!(maxval > minval) || !Number.isFinite(minval) || !Number.isFinite(maxval)) {
    throw new WgradError(
      "value",
      `${op}: needs finite minval < maxval, got [${minval}, ${maxval})`,
    );
  }
  if (dtype === "i32" && (!Number.isInteger(minval) || !Number.isInteger(maxval))) {
    throw new WgradError("value", `${op}: i32 bounds must be integers, got [${minval}, ${maxval})`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  checkBindable(size, shape, op);
  const g = generatorFor(seed);
  if (dtype === "i32") {
    const out = new Int32Array(size);
    const span = maxval - minval;
    for (let i = 0; i < size; i++) out[i] = minval + Math.floor(g.nextUnit() * span);
    return upload(out, shape, dtype, op);
  }
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    let v = Math.fround(minval + g.nextUnit() * (maxval - minval));
    if (v >= maxval) v = Math.fround(minval); // rounding reached the open end
    out[i] = v;
  }
  return upload(out, shape, dtype, op);
}

/** Options of {@linkcode randomNormal}. */
export interface RandomNormalOptions {
  /** Mean (default 0). */
  mean?: number;
  /** Standard deviation (default 1). */
  stddev?: number;
  /** A seed of its own; without it, the next stream of the global seed (see `setSeed`). */
  seed?: number;
}

/** Normally distributed random numbers. The same seed gives the same numbers on any adapter. */
export function randomNormal(
  shape: readonly number[],
  options: RandomNormalOptions = {},
): Tensor<"f32"> {
  const op = "randomNormal()";
  checkShape(shape, op);
  const { mean = 0, stddev = 1, seed } = options;
  if (!Number.isFinite(mean) || !Number.isFinite(stddev) || stddev < 0) {
    throw new WgradError(
      "value",
      `${op}: needs a finite mean and stddev >= 0, got ${mean}, ${stddev}`,
    );
  }
  const size = shape.reduce((a, b) => a * b, 1);
  checkBindable(size, shape, op);
  const g = generatorFor(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = mean + stddev * g.nextNormal();
  return upload(out, shape, "f32", op);
}
