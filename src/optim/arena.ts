/**
 * Parameter arenas: several parameter tensors back to back in one GPU region, with a gradient
 * region of the same layout, so that one dispatch can update every parameter (see `optimizers.ts`).
 *
 * Layout: parameter `i` starts at element `offsets[i]`, a multiple of {@linkcode ARENA_BLOCK}
 * (256 elements, 1 KiB, a multiple of every device's `minStorageBufferOffsetAlignment`), and
 * occupies `ceil(size / 256)` blocks (at least one); the padding is zero. The gradient region and
 * every optimizer state region have exactly this layout, so element `j` of each belongs to the same
 * parameter element. The tensors handed out are views into the regions: layers use them as
 * ordinary tensors (ops bind them, `data()` reads them), and the optimizer updates them in place.
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { ready, type Runtime, schedule, type Storage } from "../gpu/runtime.ts";
import { checkShape, keep, makeTensor, type Tensor } from "../tensor.ts";

/** Elements per arena block: every parameter starts on a block boundary. */
export const ARENA_BLOCK = 256;

/** A parameter's initial value: a tensor (copied in), or values and a shape. */
export interface ParamSpec {
  /** A name for messages and for weight-decay exclusion (default `param<i>`). */
  name?: string;
  /** The shape; defaults to the tensor's shape, or `[length]` of an array. */
  shape?: readonly number[];
  /** The initial values, copied in (default zeros). */
  value?: Float32Array | readonly number[] | Tensor<"f32">;
}

/** What {@linkcode ParamArena} takes per parameter: an f32 tensor, a Float32Array or a spec. */
export type ParamInit = Tensor<"f32"> | Float32Array | ParamSpec;

/** Values accepted by {@linkcode ParamArena.setWeight} and {@linkcode ParamArena.setGradients}. */
export type ParamValue = Tensor<"f32"> | Float32Array | readonly number[];

/** Options of {@linkcode ParamArena}. */
export interface ParamArenaOptions {
  /** A name for messages (default `"arena"`). */
  name?: string;
}

function isTensor(x: unknown): x is Tensor<"f32"> {
  return x !== null && typeof x === "object" && "shape" in x && "dtype" in x &&
    typeof (x as { data?: unknown }).data === "function";
}

/**
 * Several f32 parameters in one GPU region, with a gradient region of the same layout.
 *
 * ```ts
 * const arena = new ParamArena([{ name: "kernel", shape: [4, 3] }, { name: "bias", value: [0, 0, 0] }]);
 * const [w, b] = arena.params;                 // ordinary tensors (views into the arena)
 * const opt = adam({ learningRate: 1e-2 });
 * const grads = await grad(() => loss(w, b), arena.params);
 * arena.setGradients(grads);                   // copied into the gradient region
 * opt.step(arena);                             // one dispatch updates w and b and clears the gradients
 * ```
 */
export class ParamArena {
  /** A name for messages. */
  readonly name: string;
  /** Parameter names, in arena order. */
  readonly names: readonly string[];
  /** Parameter shapes. */
  readonly shapes: readonly (readonly number[])[];
  /** Parameter element counts. */
  readonly sizes: readonly number[];
  /** First element of each parameter in every region (multiples of {@linkcode ARENA_BLOCK}). */
  readonly offsets: readonly number[];
  /** Elements reserved per parameter, padding included (multiples of {@linkcode ARENA_BLOCK}). */
  readonly paddedSizes: readonly number[];
  /** Elements in each region: the sum of the padded sizes. */
  readonly paddedSize: number;
  /** Real elements: the sum of the sizes. */
  readonly size: number;
  /** The parameters: f32 tensors that are views into the parameter region. */
  readonly params: readonly Tensor<"f32">[];
  /**
   * The gradient slots: f32 tensors that are views into the gradient region, one per parameter.
   * An optimizer step reads them and clears them to zero. Kernels inside the engine may write
   * into their storage in place instead of copying with {@linkcode ParamArena.setGradients}.
   */
  readonly gradients: readonly Tensor<"f32">[];
  #paramRegion: Storage | null = null;
  #gradRegion: Storage | null = null;
  #disposed = false;

  /** Lays out `params` and copies their initial values in. */
  constructor(params: readonly ParamInit[], options: ParamArenaOptions = {}) {
    this.name = options.name ?? "arena";
    const where = `ParamArena "${this.name}"`;
    if (!Array.isArray(params) || params.length === 0) {
      throw new WgradError("value", `${where}: needs at least one parameter`);
    }
    const names: string[] = [];
    const shapes: number[][] = [];
    const values: (Float32Array | Tensor<"f32"> | null)[] = [];
    params.forEach((p, i) => {
      let spec: ParamSpec;
      if (isTensor(p)) spec = { value: p };
      else if (p instanceof Float32Array) spec = { value: p };
      else if (p !== null && typeof p === "object") spec = p as ParamSpec;
      else {
        throw new WgradError(
          "value",
          `${where}: parameter ${i} must be a tensor, a Float32Array or a spec, got ${String(p)}`,
        );
      }
      const name = spec.name ?? (isTensor(spec.value) ? spec.value.name : undefined) ??
        `param${i}`;
      const label = `${where}, parameter ${i} ("${name}")`;
      let shape: number[];
      let value: Float32Array | Tensor<"f32"> | null = null;
      if (isTensor(spec.value)) {
        const t = spec.value;
        t.assertLive(label);
        if (t.dtype !== "f32") {
          throw new WgradError(
            "dtype",
            `${label}: ${t.describe()} is ${t.dtype}; parameters are f32`,
          );
        }
        shape = [...(spec.shape ?? t.shape)];
        value = t;
      } else if (spec.value !== undefined) {
        const arr = spec.value instanceof Float32Array
          ? spec.value
          : Float32Array.from(spec.value as readonly number[]);
        shape = [...(spec.shape ?? [arr.length])];
        value = arr;
      } else {
        if (!spec.shape) {
          throw new WgradError("value", `${label}: give a shape or a value`);
        }
        shape = [...spec.shape];
      }
      checkShape(shape, label);
      const size = shape.reduce((a, b) => a * b, 1);
      const have = value === null
        ? size
        : value instanceof Float32Array
        ? value.length
        : (value as Tensor).size;
      if (have !== size) {
        throw new WgradError(
          "shape",
          `${label}: ${have} values do not fill shape ${fmtShape(shape)} (${size} elements)`,
        );
      }
      names.push(name);
      shapes.push(shape);
      values.push(value);
    });
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const padded = sizes.map((n) => Math.max(1, Math.ceil(n / ARENA_BLOCK)) * ARENA_BLOCK);
    const offsets: number[] = [];
    let total = 0;
    for (const n of padded) {
      offsets.push(total);
      total += n;
    }
    this.names = Object.freeze(names);
    this.shapes = Object.freeze(shapes.map((s) => Object.freeze(s)));
    this.sizes = Object.freeze(sizes);
    this.offsets = Object.freeze(offsets);
    this.paddedSizes = Object.freeze(padded);
    this.paddedSize = total;
    this.size = sizes.reduce((a, b) => a + b, 0);

    const ps = shapes.map((s, i) => {
      const t = keep(makeTensor(s, "f32"));
      t.name = names[i];
      return t;
    });
    const gs = shapes.map((s, i) => {
      const t = keep(makeTensor(s, "f32"));
      t.name = `${names[i]} gradient`;
      return t;
    });
    this.params = Object.freeze(ps);
    this.gradients = Object.freeze(gs);

    // Values from the CPU go up in one upload; tensors are copied in, in order after their making.
    const host = new Float32Array(total);
    values.forEach((v, i) => {
      if (v instanceof Float32Array) host.set(v, offsets[i]);
    });
    schedule((rt) => {
      this.#checkAlignment(rt);
      const pr = rt.upload(host, `${where} parameters`);
      const gr = rt.alloc(total * 4, `${where} gradients`);
      rt.clear(gr, `${where}: clear gradients`);
      this.#paramRegion = pr;
      this.#gradRegion = gr;
      ps.forEach((t, i) => t.setStorage(rt.adopt(pr.view(offsets[i] * 4, sizes[i] * 4))));
      gs.forEach((t, i) => t.setStorage(rt.adopt(gr.view(offsets[i] * 4, sizes[i] * 4))));
      values.forEach((v, i) => {
        if (v !== null && !(v instanceof Float32Array) && sizes[i] > 0) {
          rt.copy(v.storage, pr, sizes[i] * 4, `${where}: copy in ${names[i]}`, 0, offsets[i] * 4);
        }
      });
    });
  }

  #checkAlignment(rt: Runtime): void {
    const align = rt.limits.minStorageBufferOffsetAlignment;
    if ((ARENA_BLOCK * 4) % align !== 0) {
      throw new WgradError(
        "limit",
        `ParamArena "${this.name}": this device's minStorageBufferOffsetAlignment (${align} bytes) ` +
          `does not divide the arena's block of ${ARENA_BLOCK * 4} bytes`,
      );
    }
  }

  /** The number of parameters. */
  get length(): number {
    return this.params.length;
  }

  /** Whether {@linkcode ParamArena.dispose} has been called. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** Throws a clear error if the arena was disposed. `op` names the caller. */
  assertLive(op: string): void {
    if (this.#disposed) {
      throw new WgradError("disposed", `${op}: ParamArena "${this.name}" was used after dispose()`);
    }
  }

  /** The index of a parameter given by index or name; throws if there is none. */
  indexOf(param: number | string, op = "ParamArena"): number {
    const i = typeof param === "number" ? param : this.names.indexOf(param);
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new WgradError(
        "value",
        `${op}: ParamArena "${this.name}" has no parameter ${JSON.stringify(param)} ` +
          `(it has ${this.length}: ${this.names.join(", ")})`,
      );
    }
    return i;
  }

  /** The parameter tensor `param` (an index or a name). */
  param(param: number | string): Tensor<"f32"> {
    return this.params[this.indexOf(param, "ParamArena.param")];
  }

  /** The gradient slot of `param` (an index or a name). */
  gradient(param: number | string): Tensor<"f32"> {
    return this.gradients[this.indexOf(param, "ParamArena.gradient")];
  }

  /** @internal The parameter region (inside scheduled GPU work only). */
  get paramRegion(): Storage {
    return this.#region(this.#paramRegion, "parameter");
  }

  /** @internal The gradient region (inside scheduled GPU work only). */
  get gradRegion(): Storage {
    return this.#region(this.#gradRegion, "gradient");
  }

  #region(s: Storage | null, what: string): Storage {
    if (s === null) {
      throw new WgradError(
        "disposed",
        `ParamArena "${this.name}" has no ${what} region (disposed or failed)`,
      );
    }
    return s;
  }

  /** Copies every parameter to the CPU (one readback), in arena order. */
  getWeights(): Promise<Float32Array[]> {
    this.assertLive("ParamArena.getWeights");
    return this.#readAll(() => this.paramRegion, "parameters");
  }

  /** Copies one parameter (an index or a name) to the CPU. */
  async getWeight(param: number | string): Promise<Float32Array> {
    const i = this.indexOf(param, "ParamArena.getWeight");
    this.assertLive("ParamArena.getWeight");
    return await this.params[i].data();
  }

  /** Copies every gradient slot to the CPU (one readback), in arena order. */
  getGradients(): Promise<Float32Array[]> {
    this.assertLive("ParamArena.getGradients");
    return this.#readAll(() => this.gradRegion, "gradients");
  }

  async #readAll(region: () => Storage, what: string): Promise<Float32Array[]> {
    let held: Storage | null = null;
    schedule(() => {
      held = region().retain();
    });
    const rt = await ready();
    const s = held as Storage | null;
    if (!s) throw new WgradError("disposed", `ParamArena "${this.name}" has no ${what} region`);
    try {
      const all = new Float32Array(await rt.read(s, `ParamArena "${this.name}" ${what}`));
      return this.offsets.map((o, i) => all.slice(o, o + this.sizes[i]));
    } finally {
      s.release();
    }
  }

  #checkValue(i: number, v: ParamValue, op: string): Float32Array | Tensor<"f32"> {
    const label = `${op}: parameter ${i} ("${this.names[i]}", shape ${fmtShape(this.shapes[i])})`;
    if (isTensor(v)) {
      v.assertLive(label);
      if (v.dtype !== "f32") {
        throw new WgradError("dtype", `${label}: ${v.describe()} is ${v.dtype}, not f32`);
      }
      const same = v.shape.length === this.shapes[i].length &&
        v.shape.every((d, k) => d === this.shapes[i][k]);
      if (!same) {
        throw new WgradError("shape", `${label}: got ${v.describe()}`);
      }
      return v;
    }
    const arr = v instanceof Float32Array ? v : Float32Array.from(v as readonly number[]);
    if (arr.length !== this.sizes[i]) {
      throw new WgradError(
        "shape",
        `${label}: got ${arr.length} values where ${this.sizes[i]} were expected`,
      );
    }
    return arr;
  }

  #put(region: () => Storage, i: number, v: Float32Array | Tensor<"f32">, label: string): void {
    if (this.sizes[i] === 0) return;
    if (v instanceof Float32Array) {
      const copy = v.slice();
      schedule((rt) => rt.write(region(), copy, label, this.offsets[i] * 4));
    } else {
      schedule((rt) =>
        rt.copy(v.storage, region(), this.sizes[i] * 4, label, 0, this.offsets[i] * 4)
      );
    }
  }

  /**
   * Overwrites one parameter (an index or a name): a tensor is copied on the GPU in order with
   * the recorded work; CPU values are written after the work recorded so far.
   */
  setWeight(param: number | string, value: ParamValue): void {
    const i = this.indexOf(param, "ParamArena.setWeight");
    this.assertLive("ParamArena.setWeight");
    const v = this.#checkValue(i, value, "ParamArena.setWeight");
    this.#put(() => this.paramRegion, i, v, `set ${this.names[i]}`);
  }

  /** Overwrites every parameter, in arena order (see {@linkcode ParamArena.setWeight}). */
  setWeights(values: readonly ParamValue[]): void {
    this.assertLive("ParamArena.setWeights");
    if (!Array.isArray(values) || values.length !== this.length) {
      throw new WgradError(
        "value",
        `ParamArena.setWeights: "${this.name}" has ${this.length} parameters, got ${
          Array.isArray(values) ? values.length : String(values)
        } values`,
      );
    }
    const checked = values.map((v, i) => this.#checkValue(i, v, "ParamArena.setWeights"));
    checked.forEach((v, i) => this.#put(() => this.paramRegion, i, v, `set ${this.names[i]}`));
  }

  /**
   * Puts gradients into the gradient slots, in arena order: a tensor is copied on the GPU (a
   * recorded copy, ordered after the kernels that made it), CPU values are written, and `null`
   * clears the slot (Keras skips a variable without a gradient; a fused step updates it with a
   * zero gradient instead, so that momentum still decays).
   */
  setGradients(grads: readonly (ParamValue | null)[]): void {
    this.assertLive("ParamArena.setGradients");
    if (!Array.isArray(grads) || grads.length !== this.length) {
      throw new WgradError(
        "value",
        `ParamArena.setGradients: "${this.name}" has ${this.length} parameters, got ${
          Array.isArray(grads) ? grads.length : String(grads)
        } gradients`,
      );
    }
    const checked = grads.map((g, i) =>
      g === null ? null : this.#checkValue(i, g, "ParamArena.setGradients")
    );
    checked.forEach((g, i) => {
      const label = `gradient of ${this.names[i]}`;
      // A gradient written in place into its slot is there already.
      if (g === this.gradients[i]) return;
      if (g === null) {
        schedule((rt) => rt.clear(this.gradients[i].storage, `clear ${label}`));
      } else {
        this.#put(() => this.gradRegion, i, g, label);
      }
    });
  }

  /** Clears every gradient slot to zero (a recorded clear). */
  zeroGradients(): void {
    this.assertLive("ParamArena.zeroGradients");
    schedule((rt) => rt.clear(this.gradRegion, `ParamArena "${this.name}": clear gradients`));
  }

  /**
   * @internal A region with this arena's layout (`paddedSize` f32 elements), for optimizer state.
   * Call inside scheduled GPU work; the caller owns (and releases) it.
   */
  allocLike(rt: Runtime, label: string): Storage {
    return rt.alloc(this.paddedSize * 4, `ParamArena "${this.name}" ${label}`);
  }

  /** Gives the arena's GPU memory back; its parameter and gradient tensors are disposed too. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.params) t.dispose();
    for (const t of this.gradients) t.dispose();
    try {
      schedule(() => {
        this.#paramRegion?.release();
        this.#gradRegion?.release();
        this.#paramRegion = null;
        this.#gradRegion = null;
      });
    } catch {
      this.#paramRegion = null;
      this.#gradRegion = null;
    }
  }
}
