/**
 * Matrix products: `matmul` (with transposed operands read in place) and `linear`, a dense layer
 * `act(x·w + b)` whose bias and activation run in the matmul's epilogue. Both record their
 * gradients on the tape; the backward products read the transposed layouts directly, and the bias
 * gradient is summed by the weight-gradient kernel itself.
 * @module
 */
import activationSrc from "../../shaders/activation_vec4.wgsl" with { type: "text" };
import matmulSrc from "../../shaders/matmul.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { fmtShape, WgradError } from "../errors.ts";
import { schedule, type Storage } from "../gpu/runtime.ts";
import { keep, makeTensor, type Tensor } from "../tensor.ts";
import { softmax, softmaxGrad } from "./softmax.ts";
import { unaryGrad, type UnaryOp } from "./unary.ts";

const MATMUL = { name: "matmul", code: activationSrc + matmulSrc };

/** Activation codes of the matmul epilogue, as numbered in `shaders/matmul.wgsl`. */
export const ACTIVATIONS = {
  linear: 0,
  relu: 1,
  sigmoid: 2,
  tanh: 3,
  elu: 4,
  leakyRelu: 5,
  gelu: 6,
  geluTanh: 7,
  softmax: 8,
} as const;

/**
 * An activation that {@linkcode linear} fuses into its matmul: `"linear"` (none), `"relu"`,
 * `"sigmoid"`, `"tanh"`, `"elu"`, `"leakyRelu"`, `"gelu"` (exact, erf-based), `"geluTanh"` (the
 * tanh approximation) or `"softmax"` (over the last axis).
 */
export type Activation = keyof typeof ACTIVATIONS;

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** Use the transpose of `a` (stored `[K, M]`), read in place (default false). */
  transposeA?: boolean;
  /** Use the transpose of `b` (stored `[N, K]`), read in place (default false). */
  transposeB?: boolean;
}

/** Options of {@linkcode linear}. */
export interface LinearOptions {
  /** Slope of `"elu"` (default 1) and `"leakyRelu"` (default 0.2) for negative inputs. */
  alpha?: number;
}

/** Side of an invocation's block of outputs (rows and columns). */
const BLOCK = 16;
/** Invocations per workgroup. */
const LANES = 8;
/** Widths (invocations along the columns) a workgroup may have, with their relative cost. */
const ARRANGEMENTS: readonly { lc: number; cost: number }[] = [
  { lc: 2, cost: 1 },
  { lc: 1, cost: 1 },
  { lc: 4, cost: 1.05 },
  { lc: 8, cost: 1.5 },
];

/**
 * How the workgroup's 8 invocations are arranged: `lc` along the columns, `8 / lc` along the rows.
 * Picks the arrangement with the least padded work (weighted by its measured speed), preferring
 * at least two workgroups so that every core of a CPU adapter has work.
 */
function arrange(m: number, n: number): { lc: number; groups: [number, number] } {
  let best: { lc: number; groups: [number, number] } | null = null;
  let bestScore = Infinity;
  for (const { lc, cost } of ARRANGEMENTS) {
    const rows = (LANES / lc) * BLOCK, cols = lc * BLOCK;
    const gy = Math.ceil(m / rows), gx = Math.ceil(n / cols);
    const score = gx * gy * rows * cols * cost * (gx * gy < 2 ? 2 : 1);
    if (score < bestScore) {
      bestScore = score;
      best = { lc, groups: [gx, gy] };
    }
  }
  return best!;
}

// The WGSL prefix: bindings and their access helpers (see shaders/matmul.wgsl). A vector binding
// reads 4 aligned elements per load; a scalar one reads 4 elements clamped to `last`.
function loader(name: string, binding: number, vec: boolean): string {
  return vec
    ? `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec4<f32>>;
fn ld_${name}(i: u32, last: u32) -> vec4<f32> { return ${name}[i >> 2u]; }
`
    : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn ld_${name}(i: u32, last: u32) -> vec4<f32> {
  return vec4(${name}[i], ${name}[min(i + 1u, last)], ${name}[min(i + 2u, last)], ${name}[min(i + 3u, last)]);
}
`;
}

function storer(name: string, binding: number, vec: boolean): string {
  return vec
    ? `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<vec4<f32>>;
fn st_${name}(i: u32, v: vec4<f32>, count: u32) { ${name}[i >> 2u] = v; }
`
    : `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<f32>;
fn st_${name}(i: u32, v: vec4<f32>, count: u32) {
  ${name}[i] = v.x;
  if (count > 1u) { ${name}[i + 1u] = v.y; }
  if (count > 2u) { ${name}[i + 2u] = v.z; }
  if (count > 3u) { ${name}[i + 3u] = v.w; }
}
`;
}

interface PrefixOptions {
  vecA: boolean;
  vecB: boolean;
  vecY: boolean;
  z: boolean;
  colSum: boolean;
  update?: WeightUpdate;
}

/**
 * @internal An optimizer update applied by the epilogue of the weight-gradient product of a dense
 * layer (shaders/matmul.wgsl): the product's result is the gradient of a parameter that lives in
 * an optimizer's arena, and instead of storing it the epilogue updates the parameter and the
 * optimizer's state. Made by `Optimizer.weightUpdate`; a compiled training step registers one per
 * gradient slot with {@linkcode setWeightUpdate}.
 */
export interface WeightUpdate {
  /** Names the update in labels, e.g. `Adam update`. */
  label: string;
  /**
   * WGSL declaring binding 2 (the control buffer) and bindings 4.. (`bindings`), and defining
   * `prepare_y` and `st_y` (for array<vec4<f32>> regions when `vec`, else array<f32>).
   */
  wgsl(vec: boolean): string;
  /** Bound at binding 2. */
  control: Storage;
  /** Bound at bindings 4, 5, …: the parameter region, then the optimizer's slots in use. */
  bindings: readonly Storage[];
  /** The update's override constants. */
  constants: Record<string, number>;
  /** The parameter's first element in its region. */
  offset: number;
  /** The word of the step counter in the control buffer. */
  counter: number;
  /** Whether weight decay applies to the parameter. */
  decay: boolean;
  /** Called when a product has recorded the update (once: the registration is then dropped). */
  applied(): void;
}

const weightUpdates = new WeakMap<Tensor, WeightUpdate>();

/**
 * @internal Registers (or with null, drops) the update that a weight-gradient product writing
 * into `slot` applies instead of storing the gradient. Only the dense layer's dW = Xᵀ·dZ product
 * writes into a caller's destination, so only it consults the registry.
 */
export function setWeightUpdate(slot: Tensor, update: WeightUpdate | null): void {
  if (update) weightUpdates.set(slot, update);
  else weightUpdates.delete(slot);
}

const BIAS = `@group(0) @binding(4) var<storage, read> bias: array<f32>;
fn bias_at(n: u32) -> f32 {
  return select(0.0, bias[min(n, arrayLength(&bias) - 1u)], p.has_bias == 1u);
}
fn prepare_y() {}
`;

function prefixFor(o: PrefixOptions): string {
  let s = `const VEC_A = ${o.vecA};\nconst VEC_B = ${o.vecB};\n` + loader("a", 0, o.vecA) +
    loader("b", 1, o.vecB);
  let next: number;
  if (o.update) {
    // The optimizer's update replaces the store of y, and there is no bias.
    s += o.update.wgsl(o.vecY) + `fn bias_at(n: u32) -> f32 { return 0.0; }\n`;
    next = 4 + o.update.bindings.length;
  } else {
    s += storer("y", 2, o.vecY) + BIAS;
    next = 5;
  }
  s += o.z ? storer("z", next++, o.vecY) : `fn st_z(i: u32, v: vec4<f32>, count: u32) {}\n`;
  s += o.colSum
    ? `@group(0) @binding(${next++}) var<storage, read_write> colsum: array<f32>;
fn st_colsum(n0: u32, s: Row) {
  let n = arrayLength(&colsum);
  let v = array<vec4<f32>, 4>(s.c0, s.c1, s.c2, s.c3);
  for (var j = 0u; j < 16u; j++) {
    if (n0 + j < n) { colsum[n0 + j] = v[j >> 2u][j & 3u]; }
  }
}
`
    : `fn st_colsum(n0: u32, s: Row) {}\n`;
  return s;
}

/** One product as the kernel sees it. */
interface Gemm {
  a: Tensor;
  b: Tensor;
  bias: Tensor | null;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  act: Activation;
  alpha: number;
  /** Shape of the result (m·n elements). */
  shape: readonly number[];
  /** Also return the pre-activation (x·w + b). */
  keepZ: boolean;
  /** Also return the column sums of op(B) (n elements). */
  colSum: boolean;
  label: string;
  /** Write the result into this tensor (of `shape`) instead of a new one. */
  out?: Tensor<"f32">;
  /** Write the column sums into this tensor (n elements) instead of a new one. */
  colSumOut?: Tensor<"f32">;
  /** `out` may be a gradient slot with a registered {@linkcode WeightUpdate} to apply instead. */
  update?: boolean;
}

interface GemmResult {
  y: Tensor<"f32">;
  z: Tensor<"f32"> | null;
  colSum: Tensor<"f32"> | null;
}

/**
 * Records the matmul kernel. A `"softmax"` activation must have n ≤ 16 (one invocation's block
 * holds whole rows); {@linkcode linear} normalises longer rows with a second pass.
 */
function gemm(g: Gemm): GemmResult {
  const y = g.out ?? makeTensor(g.shape, "f32");
  const z = g.keepZ ? makeTensor(g.shape, "f32") : null;
  const cs = g.colSum ? g.colSumOut ?? makeTensor([g.n], "f32") : null;
  const { m, n, k } = g;
  schedule((rt) => {
    let ys: Storage;
    if (g.out) ys = g.out.storage;
    else {
      ys = rt.alloc(m * n * 4, g.label);
      y.setStorage(ys);
    }
    const zs = z ? rt.alloc(m * n * 4, `${g.label} (pre-activation)`) : null;
    if (z && zs) z.setStorage(zs);
    let css: Storage | null = null;
    if (cs && g.colSumOut) css = g.colSumOut.storage;
    else if (cs) {
      css = rt.alloc(n * 4, `${g.label} (column sums)`);
      cs.setStorage(css);
    }
    if (n === 0) return;
    if (m === 0) {
      if (css) rt.clear(css, `${g.label} (column sums)`);
      return;
    }
    const { lc, groups } = g.act === "softmax"
      ? { lc: 1, groups: [1, Math.ceil(m / (LANES * BLOCK))] as [number, number] }
      : arrange(m, n);
    const vecA = k > 0 && (g.transA ? m % 4 === 0 : k % 4 === 0);
    const vecB = k > 0 && (g.transB ? k % 4 === 0 : n % 4 === 0);
    // A registered optimizer update of the destination replaces the store (plain products only).
    let update = g.out && g.update && g.act === "linear" && !g.bias && !zs
      ? weightUpdates.get(g.out)
      : undefined;
    // An operand in the parameter region or a slot (a custom layer's product of two parameters)
    // cannot be bound next to it read-write: such a gradient is stored and the optimizer's
    // dispatch updates the parameter.
    if (update) {
      const written = [update.control, ...update.bindings].map((s) => s.buffer);
      if (written.includes(g.a.storage.buffer) || written.includes(g.b.storage.buffer)) {
        update = undefined;
      }
    }
    const prefix = prefixFor({
      vecA,
      vecB,
      vecY: n % 4 === 0,
      z: zs !== null,
      colSum: css !== null,
      update,
    });
    const u = new Uint32Array(12);
    u.set([m, n, k, lc, 0, g.bias ? 1 : 0]);
    new Float32Array(u.buffer)[4] = g.alpha;
    // Without a bias, binding 4 repeats `a` (read-only, never read).
    const bindings: (Storage | Uint32Array)[] = update
      ? [g.a.storage, g.b.storage, update.control, u, ...update.bindings]
      : [g.a.storage, g.b.storage, ys, u, (g.bias ?? g.a).storage];
    if (update) u.set([update.offset, update.counter, update.decay ? 1 : 0], 6);
    if (zs) bindings.push(zs);
    if (css) bindings.push(css);
    rt.dispatch({
      kernel: MATMUL,
      prefix,
      constants: {
        TRANS_A: g.transA ? 1 : 0,
        TRANS_B: g.transB ? 1 : 0,
        // (K = 0 takes the tail variant too: no step runs, and it shares the unaligned pipeline.)
        K_TAIL: k % 4 === 0 && k > 0 ? 0 : 1,
        ACT: ACTIVATIONS[g.act],
        COL_SUM: css ? 1 : 0,
        ...update?.constants,
      },
      bindings,
      workgroups: groups,
      label: update ? `${g.label} + ${update.label}` : g.label,
    });
    if (update) {
      weightUpdates.delete(g.out!);
      update.applied();
    }
  });
  return { y, z, colSum: cs };
}

// ---------------------------------------------------------------------------------------------
// Validation

function checkF32(op: string, tensors: readonly (Tensor | null)[], names: readonly string[]): void {
  tensors.forEach((t, i) => {
    if (t === null) return;
    if (typeof t !== "object" || !("shape" in t) || !("dtype" in t)) {
      throw new WgradError("value", `${op}: ${names[i]} is not a tensor (got ${String(t)})`);
    }
    t.assertLive(op);
  });
  const all = tensors.filter((t): t is Tensor => t !== null);
  const bad = all.find((t) => t.dtype !== "f32");
  if (bad) {
    throw new WgradError(
      "dtype",
      `${op}: ${all.map((t) => t.describe()).join(", ")}: ${bad.describe()} has dtype ` +
        `${bad.dtype}; ${op} takes f32 tensors`,
    );
  }
}

function mark(t: Tensor, trans: boolean): string {
  return `${t.describe()}${trans ? "ᵀ" : ""}`;
}

/** Shapes of a product: rows, columns and the inner size, with `a`'s leading axes folded. */
function productDims(
  op: string,
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  names: [string, string],
): { m: number; n: number; k: number; shape: number[] } {
  const both = `${mark(a, transA)} and ${mark(b, transB)}`;
  if (b.rank !== 2) {
    throw new WgradError(
      "shape",
      `${op}: ${names[1]} must have rank 2, got ${b.describe()} (with ${names[0]} ${a.describe()})`,
    );
  }
  if (a.rank < 2) {
    throw new WgradError(
      "shape",
      `${op}: ${names[0]} must have rank 2 or more, got ${a.describe()} (with ${names[1]} ` +
        `${b.describe()})`,
    );
  }
  if (a.rank > 2 && transA) {
    throw new WgradError(
      "shape",
      `${op}: transposeA needs a rank-2 ${names[0]}, got ${a.describe()} (with ${names[1]} ` +
        `${b.describe()})`,
    );
  }
  const ka = transA ? a.shape[0] : a.shape[a.rank - 1];
  const m = transA ? a.shape[1] : a.shape.slice(0, -1).reduce((x, y) => x * y, 1);
  const kb = transB ? b.shape[1] : b.shape[0];
  const n = transB ? b.shape[0] : b.shape[1];
  if (ka !== kb) {
    throw new WgradError(
      "shape",
      `${op}: inner dimensions differ: ${both} (${ka} vs ${kb}); the last axis of ${names[0]}` +
        `${transA ? "ᵀ" : ""} must match the first axis of ${names[1]}${transB ? "ᵀ" : ""}`,
    );
  }
  const shape = transA ? [m, n] : [...a.shape.slice(0, -1), n];
  return { m, n, k: ka, shape };
}

// ---------------------------------------------------------------------------------------------
// matmul

function productLabel(op: string, a: Tensor, b: Tensor, transA: boolean, transB: boolean): string {
  return `${op} ${fmtShape(a.shape)}${transA ? "ᵀ" : ""} · ${fmtShape(b.shape)}${
    transB ? "ᵀ" : ""
  }`;
}

/** The product without validation or recording (also used by the gradients). */
function product(
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  shape: readonly number[],
): Tensor<"f32"> {
  return gemm({
    a,
    b,
    bias: null,
    m,
    n,
    k,
    transA,
    transB,
    act: "linear",
    alpha: 0,
    shape,
    keepZ: false,
    colSum: false,
    label: productLabel("matmul", a, b, transA, transB),
  }).y;
}

/**
 * The matrix product `op(a) · op(b)` of f32 tensors, where `op` transposes an operand when
 * `transposeA`/`transposeB` is set. Transposed operands are read in place, never copied.
 *
 * `b` has rank 2. `a` has rank 2, or more without `transposeA`: its leading axes are then batch
 * axes folded into the rows, as a Keras `Dense` layer applies to the last axis
 * (`[B, T, K] · [K, N] → [B, T, N]`).
 *
 * ```ts
 * const y = matmul(x, w);                        // [M, K] · [K, N] → [M, N]
 * const dx = matmul(dy, w, { transposeB: true }); // [M, N] · [K, N]ᵀ → [M, K]
 * const dw = matmul(x, dy, { transposeA: true }); // [M, K]ᵀ · [M, N] → [K, N]
 * ```
 * @throws {WgradError} `shape` when the inner dimensions differ or a rank is wrong, `dtype` when
 * an operand is not f32; both name the op and the two shapes.
 */
export function matmul(
  a: Tensor<"f32">,
  b: Tensor<"f32">,
  options: MatmulOptions = {},
): Tensor<"f32"> {
  const transA = options.transposeA ?? false;
  const transB = options.transposeB ?? false;
  checkF32("matmul", [a, b], ["a", "b"]);
  const { m, n, k, shape } = productDims("matmul", a, b, transA, transB, ["a", "b"]);
  const out = product(a, b, transA, transB, m, n, k, shape);
  if (recording([a, b])) {
    const needA = recording([a]), needB = recording([b]);
    record("matmul", [a, b], out, (g) => {
      // C = op(A)·op(B); G = dC is [m, n]. Each gradient is one product in the layout that
      // avoids any transposition of memory.
      let da: Tensor<"f32"> | null = null, db: Tensor<"f32"> | null = null;
      if (needA) {
        da = transA
          // A stored [k, m]: dA = op(B)·Gᵀ
          ? product(b, g, transB, true, k, m, n, a.shape)
          // A stored [m, k]: dA = G·op(B)ᵀ
          : product(g, b, false, !transB, m, k, n, a.shape);
      }
      if (needB) {
        db = transB
          // B stored [n, k]: dB = Gᵀ·op(A)
          ? product(g, a, true, transA, n, k, m, b.shape)
          // B stored [k, n]: dB = op(A)ᵀ·G
          : product(a, g, !transA, false, k, n, m, b.shape);
      }
      return [da, db];
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// linear

/** The unary op whose gradient kernel serves each element-wise activation. */
const UNARY_OF: Partial<Record<Activation, UnaryOp>> = {
  relu: "relu",
  sigmoid: "sigmoid",
  tanh: "tanh",
  elu: "elu",
  leakyRelu: "leakyRelu",
  gelu: "gelu",
  geluTanh: "geluTanh",
};

/**
 * Whether the activation's gradient needs the pre-activation z. relu, and elu and leaky relu
 * with a positive alpha, are exact from their output (y > 0 exactly where z > 0, and elu's
 * y + alpha = alpha·eᶻ); sigmoid, tanh and gelu are computed from z, which stays accurate where
 * they saturate; softmax's comes from y.
 */
function needsZ(act: Activation, alpha: number): boolean {
  switch (act) {
    case "linear":
    case "relu":
    case "softmax":
      return false;
    case "elu":
    case "leakyRelu":
      return !(alpha > 0);
    default:
      return true;
  }
}

/**
 * A dense layer: `act(x · w + b)`, with the bias add and the activation fused into the matrix
 * product's epilogue (one kernel).
 *
 * `x` is `[..., K]` (leading axes are batch axes), `w` is `[K, N]`, `b` is `[N]` or `null`; the
 * result is `[..., N]`. `activation` is one of {@linkcode Activation} (default `"linear"`), with
 * the same formulas as the element-wise ops (`relu`, `sigmoid`, `tanh`, `elu`, `leakyRelu`,
 * `gelu`). `"softmax"` normalises each row over its N outputs: inside the product's epilogue when
 * N ≤ 16, otherwise in a second, row-wise pass over the result.
 *
 * Gradients are recorded on the tape: the activation's gradient (from the pre-activation where
 * the output alone would lose accuracy), then `dx = dz·wᵀ` and `dw = xᵀ·dz`, whose kernel also
 * sums `db` over the batch.
 *
 * ```ts
 * const h = linear(x, w1, b1, "relu");
 * const p = linear(h, w2, b2, "softmax");
 * ```
 * @throws {WgradError} `shape` when the inner dimensions differ, a rank is wrong or the bias is
 * not `[N]`; `dtype` when a tensor is not f32; `value` for an unknown activation (the message
 * lists the known ones) or a non-finite alpha.
 */
export function linear(
  x: Tensor<"f32">,
  w: Tensor<"f32">,
  b: Tensor<"f32"> | null,
  activation: Activation = "linear",
  options: LinearOptions = {},
): Tensor<"f32"> {
  if (!Object.hasOwn(ACTIVATIONS, activation)) {
    throw new WgradError(
      "value",
      `linear: unknown activation ${JSON.stringify(activation)}; known activations: ${
        Object.keys(ACTIVATIONS).map((s) => `"${s}"`).join(", ")
      }`,
    );
  }
  const alpha = options.alpha ?? (activation === "elu" ? 1 : 0.2);
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) {
    throw new WgradError("value", `linear: alpha must be a finite number, got ${String(alpha)}`);
  }
  checkF32("linear", [x, w, b], ["x", "w", "b"]);
  const { m, n, k, shape } = productDims("linear", x, w, false, false, ["x", "w"]);
  if (b !== null && (b.rank !== 1 || b.shape[0] !== n)) {
    throw new WgradError(
      "shape",
      `linear: the bias ${b.describe()} must have shape [${n}] for x ${x.describe()} and w ` +
        `${w.describe()}`,
    );
  }
  const inputs = b ? [x, w, b] : [x, w];
  const rec = recording(inputs);
  const keepZ = rec && needsZ(activation, alpha);
  const label = `linear${activation === "linear" ? "" : ` (${activation})`} ${
    fmtShape(x.shape)
  } · ${fmtShape(w.shape)}${b ? ` + ${fmtShape(b.shape)}` : ""}`;
  // Softmax over rows longer than one invocation's block is a second, row-wise pass.
  const twoPass = activation === "softmax" && n > BLOCK;
  const fused = gemm({
    a: x,
    b: w,
    bias: b,
    m,
    n,
    k,
    transA: false,
    transB: false,
    act: twoPass ? "linear" : activation,
    alpha,
    shape,
    keepZ,
    colSum: false,
    label,
  });
  let y = fused.y;
  // The pre-activation belongs to the tape alone (it disposes it when released), not to the
  // caller's scope.
  const z = fused.z ? keep(fused.z) : null;
  if (twoPass) {
    const logits = y;
    y = softmax(logits, -1);
    logits.dispose();
  }
  if (rec) {
    const needX = recording([x]), needW = recording([w]), needB = b !== null && recording([b]);
    record("linear", inputs, y, (dy, into) => {
      let dz: Tensor<"f32">;
      const op = UNARY_OF[activation];
      if (activation === "softmax") dz = softmaxGrad("softmax", y, dy, -1);
      else if (op) dz = unaryGrad(op, z ?? y, y, dy, alpha);
      else dz = dy;
      const dx = needX ? product(dz, w, false, true, m, k, n, x.shape) : null;
      let dw: Tensor<"f32"> | null = null, db: Tensor<"f32"> | null = null;
      if (needW || needB) {
        // dW = Xᵀ·dZ; the same kernel sums dZ's columns into db.
        const r = gemm({
          a: x,
          b: dz,
          bias: null,
          m: k,
          n,
          k: m,
          transA: true,
          transB: false,
          act: "linear",
          alpha: 0,
          shape: w.shape,
          keepZ: false,
          colSum: needB,
          label: productLabel("linear weight gradient", x, dz, true, false),
          // Straight into the caller's destinations (a compiled step's arena slots) if given.
          out: needW ? into?.[1] : undefined,
          colSumOut: needB ? into?.[2] : undefined,
          update: true,
        });
        dw = r.y;
        db = r.colSum;
        if (!needW) {
          dw.dispose();
          dw = null;
        }
      }
      if (dz !== dy) dz.dispose();
      return b ? [dx, dw, db] : [dx, dw];
    }, z ? [z] : []);
  }
  return y;
}
