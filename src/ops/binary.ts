/**
 * Element-wise binary ops with NumPy broadcasting: add, sub, mul, div, maximum, minimum, pow.
 * @module
 */
import binarySrc from "../../shaders/binary.wgsl" with { type: "text" };
import { fmtShape, WgradError } from "../errors.ts";
import { opLabel, schedule } from "../gpu/runtime.ts";
import { record, recording } from "../autodiff/tape.ts";
import { type DType, makeTensor, scalar, type Tensor } from "../tensor.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./transform.ts";
import { log, neg } from "./unary.ts";
import {
  broadcastShapes,
  broadcastStrides,
  checkInputs,
  checkRank,
  grid,
  mergeAxes,
  putDims,
} from "./util.ts";

const BINARY = { name: "binary", code: binarySrc };

/** Binary op codes, as numbered in `shaders/binary.wgsl`. */
export const BINARY_OPS = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  maximum: 4,
  minimum: 5,
  pow: 6,
  greater: 7,
  greaterEqual: 8,
  less: 9,
  lessEqual: 10,
  equal: 11,
  notEqual: 12,
} as const;

/** The name of a binary op. */
export type BinaryOp = keyof typeof BINARY_OPS;

const POW_F32 = `
fn pow_op(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  let m = pow(abs(a), b);
  if (a >= 0.0) { return m; }
  if (fract(b) != 0.0) { return bitcast<f32>(0x7fc00000u); }
  let odd = fract(b * 0.5) != 0.0;
  return select(m, -m, odd);
}
`;

function prefixFor(dtype: DType): string {
  return `alias T = ${dtype};\n` +
    (dtype === "f32" ? POW_F32 : `fn pow_op(a: ${dtype}, b: ${dtype}) -> ${dtype} { return a; }\n`);
}

/** A tensor operand, or a number that becomes a scalar of the other operand's dtype. */
export type Operand<D extends DType> = Tensor<D> | number;

function toTensor<D extends DType>(
  v: Operand<D>,
  like: DType,
  op: string,
  other: Operand<D>,
): Tensor<D> {
  if (typeof v !== "number") return v;
  const lo = like === "i32" ? -(2 ** 31) : 0;
  const hi = like === "i32" ? 2 ** 31 - 1 : 2 ** 32 - 1;
  if (like !== "f32" && (!Number.isInteger(v) || v < lo || v > hi)) {
    const shape = typeof other === "number" ? "" : ` with ${other.describe()}`;
    throw new WgradError(
      "value",
      `${op}: the number ${v} is not a valid ${like} operand${shape} (an integer in [${lo}, ${hi}])`,
    );
  }
  return scalar(v, like) as Tensor<D>;
}

/** Runs binary op `op` on `a` and `b`, broadcasting their shapes. */
export function binary<D extends DType>(op: BinaryOp, a: Operand<D>, b: Operand<D>): Tensor<D> {
  if (typeof a === "number" && typeof b === "number") {
    throw new WgradError("value", `${op}: at least one operand must be a tensor`);
  }
  const like = typeof a === "number" ? (b as Tensor).dtype : a.dtype;
  const aNum = typeof a === "number", bNum = typeof b === "number";
  if (!aNum) checkInputs(op, [a]);
  if (!bNum) checkInputs(op, [b]);
  const ta = toTensor(a, like, op, b);
  const tb = toTensor(b, like, op, a);
  if (ta.dtype !== tb.dtype) {
    throw new WgradError(
      "dtype",
      `${op}: dtypes differ: ${ta.describe()} and ${tb.describe()} (cast one with cast())`,
    );
  }
  if (op === "pow" && ta.dtype !== "f32") {
    throw new WgradError("dtype", `pow: ${ta.describe()} has dtype ${ta.dtype}; pow takes f32`);
  }
  const shape = broadcastShapes(op, ta.shape, tb.shape);
  const out = makeTensor(shape, ta.dtype as D);
  const size = out.size;
  const m = mergeAxes(shape, [
    broadcastStrides(ta.shape, shape),
    broadcastStrides(tb.shape, shape),
  ]);
  checkRank(op, m.shape.length, [ta.shape, tb.shape]);
  let mode = 3;
  if (ta.size === size && tb.size === size) mode = 0;
  else if (tb.size === 1 && ta.size === size) mode = 1;
  else if (ta.size === 1 && tb.size === size) mode = 2;
  const label = opLabel(op, ta.shape, tb.shape);
  schedule((rt) => {
    const s = rt.alloc(size * 4, `${label} → ${fmtShape(shape)}`);
    out.setStorage(s);
    if (size === 0) return;
    const g = grid(size);
    const u = new Uint32Array(4 + 24);
    u.set([size, g.stride, m.shape.length, 0]);
    putDims(u, 4, m.shape);
    putDims(u, 12, m.strides[0]);
    putDims(u, 20, m.strides[1]);
    rt.dispatch({
      kernel: BINARY,
      prefix: prefixFor(ta.dtype),
      constants: { OP: BINARY_OPS[op], MODE: mode },
      bindings: [ta.storage, tb.storage, s, u],
      workgroups: g.groups,
      label,
    });
  });
  if (ta.dtype === "f32" && op in GRADS && recording([ta, tb])) {
    const fa = ta as Tensor<"f32">, fb = tb as Tensor<"f32">, y = out as Tensor<"f32">;
    record(op, [ta, tb], out, (dy) => GRADS[op]!(fa, fb, y, dy));
  }
  if (aNum) ta.dispose();
  if (bNum) tb.dispose();
  return out;
}

type F = Tensor<"f32">;
/** Gradients of the differentiable binary ops at the output shape, reduced to each input's shape. */
const GRADS: Partial<Record<BinaryOp, (a: F, b: F, y: F, dy: F) => [F | null, F | null]>> = {
  add: (a, b, _y, dy) => [sumTo(dy, a.shape), sumTo(dy, b.shape)],
  sub: (a, b, _y, dy) => [sumTo(dy, a.shape), sumToOwned(neg(dy), b.shape)],
  mul: (a, b, _y, dy) => [sumToOwned(mul(dy, b), a.shape), sumToOwned(mul(dy, a), b.shape)],
  div: (a, b, y, dy) => {
    const da = div(dy, b);
    const t = mul(da, y);
    const db = neg(t);
    t.dispose();
    return [sumToOwned(da, a.shape), sumToOwned(db, b.shape)];
  },
  maximum: (a, b, _y, dy) => maskGrads(binary("greaterEqual", a, b), a, b, dy),
  minimum: (a, b, _y, dy) => maskGrads(binary("lessEqual", a, b), a, b, dy),
  pow: (a, b, y, dy) => {
    // d/da a^b = b·a^(b−1); d/db a^b = a^b·ln a, taken as 0 where a ≤ 0 (as TensorFlow does).
    const bm1 = sub(b, 1);
    const p = pow(a, bm1);
    const t1 = mul(p, b);
    const da = mul(dy, t1);
    const pos = binary("greater", a, 0);
    const safe = maximum(a, 1e-30);
    const ln = log(safe);
    const lnm = mul(ln, pos);
    const t2 = mul(y, lnm);
    const db = mul(dy, t2);
    for (const t of [bm1, p, t1, pos, safe, ln, lnm, t2]) t.dispose();
    return [sumToOwned(da, a.shape), sumToOwned(db, b.shape)];
  },
};

function maskGrads(mask: F, a: F, b: F, dy: F): [F, F] {
  const da = mul(dy, mask);
  const db = sub(dy, da);
  mask.dispose();
  return [sumToOwned(da, a.shape), sumToOwned(db, b.shape)];
}

/** Sums a gradient over the axes that broadcasting added or stretched, back to `shape`. */
export function sumTo(g: Tensor<"f32">, shape: readonly number[]): Tensor<"f32"> {
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return reshape(g, shape);
  const s = sum(g, axes);
  const r = reshape(s, shape);
  s.dispose();
  return r;
}

/** {@linkcode sumTo}, disposing `g` (a temporary). */
function sumToOwned(g: F, shape: readonly number[]): F {
  const r = sumTo(g, shape);
  g.dispose();
  return r;
}

/** 1 where a > b, else 0 (broadcasting). */
export function greater<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("greater", a, b);
}
/** 1 where a ≥ b, else 0 (broadcasting). */
export function greaterEqual<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("greaterEqual", a, b);
}
/** 1 where a < b, else 0 (broadcasting). */
export function less<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("less", a, b);
}
/** 1 where a ≤ b, else 0 (broadcasting). */
export function lessEqual<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("lessEqual", a, b);
}
/** 1 where a = b, else 0 (broadcasting). */
export function equal<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("equal", a, b);
}
/** 1 where a ≠ b, else 0 (broadcasting). */
export function notEqual<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("notEqual", a, b);
}

/** a + b, broadcasting. */
export function add<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("add", a, b);
}
/** a − b, broadcasting. */
export function sub<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("sub", a, b);
}
/** a · b, broadcasting. */
export function mul<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("mul", a, b);
}
/** a / b, broadcasting. Integer division truncates toward zero. */
export function div<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("div", a, b);
}
/** Element-wise maximum, broadcasting. */
export function maximum<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("maximum", a, b);
}
/** Element-wise minimum, broadcasting. */
export function minimum<D extends DType>(a: Operand<D>, b: Operand<D>): Tensor<D> {
  return binary("minimum", a, b);
}
/**
 * aᵇ, broadcasting (f32). Negative bases with integer exponents keep their sign; with fractional
 * exponents the result is NaN; x⁰ is 1.
 */
export function pow(a: Operand<"f32">, b: Operand<"f32">): Tensor<"f32"> {
  return binary("pow", a, b);
}
