/**
 * Layout ops: reshape (a view), transpose/permute, clone, cast.
 * @module
 */
import castSrc from "../../shaders/cast.wgsl" with { type: "text" };
import transposeSrc from "../../shaders/transpose.wgsl" with { type: "text" };
import { fmtShape, WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import { checkShape, type DType, makeTensor, type Tensor } from "../tensor.ts";
import { record, recording } from "../autodiff/tape.ts";
import { sumTo } from "./binary.ts";
import {
  broadcastShapes,
  broadcastStrides,
  checkInputs,
  checkRank,
  grid,
  mergeAxes,
  putDims,
  stridesOf,
} from "./util.ts";

const TRANSPOSE = { name: "transpose", code: transposeSrc };
const CAST = { name: "cast", code: castSrc };

/**
 * The same elements under a new shape, sharing GPU memory (no copy). One dimension may be -1 and
 * is then inferred.
 */
export function reshape<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  checkInputs("reshape", [x]);
  const s = [...shape];
  const unknown = s.indexOf(-1);
  if (unknown !== -1) {
    if (s.indexOf(-1, unknown + 1) !== -1) {
      throw new WgradError("shape", `reshape: ${fmtShape(shape)} has more than one -1`);
    }
    const known = s.reduce((a, d, i) => (i === unknown ? a : a * d), 1);
    if (known === 0 || x.size % known !== 0) {
      throw new WgradError(
        "shape",
        `reshape: cannot infer the -1 in ${
          fmtShape(shape)
        } for ${x.describe()} (${x.size} elements)`,
      );
    }
    s[unknown] = x.size / known;
  }
  checkShape(s, "reshape");
  const size = s.reduce((a, b) => a * b, 1);
  if (size !== x.size) {
    throw new WgradError(
      "shape",
      `reshape: ${x.describe()} has ${x.size} elements, shape ${fmtShape(s)} needs ${size}`,
    );
  }
  const out = makeTensor(s, x.dtype);
  schedule(() => out.setStorage(x.storage.retain()));
  if (x.dtype === "f32" && recording([x])) {
    record("reshape", [x], out, (dy) => [reshape(dy, x.shape)]);
  }
  return out;
}

/**
 * Repeats `x` along axes of size 1 (and new leading axes) to `shape`, as NumPy's
 * `broadcast_to`; the result is a new tensor.
 */
export function broadcastTo<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  checkInputs("broadcastTo", [x]);
  checkShape(shape, "broadcastTo");
  const out = broadcastShapes("broadcastTo", x.shape, shape);
  if (fmtShape(out) !== fmtShape(shape)) {
    throw new WgradError(
      "shape",
      `broadcastTo: ${x.describe()} cannot be broadcast to ${fmtShape(shape)}`,
    );
  }
  const y = gatherStrided(
    x,
    shape,
    broadcastStrides(x.shape, shape),
    `broadcastTo ${x.describe()} → ${fmtShape(shape)}`,
  );
  if (x.dtype === "f32" && recording([x])) {
    record("broadcastTo", [x], y, (dy) => [sumTo(dy, x.shape)]);
  }
  return y;
}

/** y[i] = x[Σ coord_k(i) · strides[k]] over the output `shape` (transpose.wgsl). */
function gatherStrided<D extends DType>(
  x: Tensor<D>,
  shape: readonly number[],
  strides: readonly number[],
  label: string,
): Tensor<D> {
  const out = makeTensor(shape, x.dtype);
  const m = mergeAxes(shape, [strides]);
  checkRank(label, m.shape.length, [x.shape, shape]);
  schedule((rt) => {
    const s = rt.alloc(out.size * 4, label);
    out.setStorage(s);
    if (out.size === 0) return;
    if (m.shape.length <= 1 && (m.strides[0][0] ?? 1) === 1 && out.size === x.size) {
      rt.copy(x.storage, s, x.size * 4, label);
      return;
    }
    const g = grid(out.size);
    const u = new Uint32Array(4 + 16);
    u.set([out.size, g.stride, m.shape.length, 0]);
    putDims(u, 4, m.shape);
    putDims(u, 12, m.strides[0]);
    rt.dispatch({
      kernel: TRANSPOSE,
      prefix: `alias T = ${x.dtype};\n`,
      bindings: [x.storage, s, u],
      workgroups: g.groups,
      label,
    });
  });
  return out;
}

/**
 * Permutes the axes: output axis i is input axis `perm[i]`. Without `perm`, reverses the axes
 * (a matrix transpose for rank 2).
 */
export function transpose<D extends DType>(x: Tensor<D>, perm?: readonly number[]): Tensor<D> {
  checkInputs("transpose", [x]);
  const rank = x.rank;
  const p = perm ? [...perm] : x.shape.map((_, i) => rank - 1 - i);
  const seen = new Set(p);
  if (
    p.length !== rank || seen.size !== rank ||
    p.some((a) => !Number.isInteger(a) || a < 0 || a >= rank)
  ) {
    throw new WgradError(
      "shape",
      `transpose: [${p.join(", ")}] is not a permutation of the ${rank} axes of ${x.describe()}`,
    );
  }
  const outShape = p.map((a) => x.shape[a]);
  const inStrides = stridesOf(x.shape);
  const out = gatherStrided(
    x,
    outShape,
    p.map((a) => inStrides[a]),
    `transpose ${x.describe()} perm [${p.join(", ")}]`,
  );
  if (x.dtype === "f32" && recording([x])) {
    const inverse = new Array<number>(rank);
    p.forEach((a, i) => (inverse[a] = i));
    record("transpose", [x], out, (dy) => [transpose(dy, inverse)]);
  }
  return out;
}

/** A copy of `x` in new GPU memory. */
export function clone<D extends DType>(x: Tensor<D>): Tensor<D> {
  checkInputs("clone", [x]);
  const out = makeTensor(x.shape, x.dtype);
  schedule((rt) => {
    const label = `clone ${x.describe()}`;
    const s = rt.alloc(x.size * 4, label);
    out.setStorage(s);
    rt.copy(x.storage, s, x.size * 4, label);
  });
  if (x.dtype === "f32" && recording([x])) {
    record("clone", [x], out, (dy) => [reshape(dy, x.shape)]);
  }
  return out;
}

/** The WGSL conversion for cast: saturating at the full integer range for float → int. */
function convFor(from: DType, to: DType): string {
  if (from === "f32" && to === "i32") {
    return "fn conv(v: f32) -> i32 { return select(i32(v), 2147483647i, v >= 2147483648.0); }\n";
  }
  if (from === "f32" && to === "u32") {
    return "fn conv(v: f32) -> u32 { return select(u32(v), 4294967295u, v >= 4294967296.0); }\n";
  }
  return `fn conv(v: ${from}) -> ${to} { return ${to}(v); }\n`;
}

/**
 * Converts to another dtype. Float to integer rounds toward zero and saturates at the integer
 * type's range (negative floats become 0 as u32).
 */
export function cast<D extends DType>(x: Tensor, dtype: D): Tensor<D> {
  checkInputs("cast", [x]);
  if (dtype !== "f32" && dtype !== "i32" && dtype !== "u32") {
    throw new WgradError("dtype", `cast: unknown dtype "${dtype}" for ${x.describe()}`);
  }
  if (x.dtype === dtype) return clone(x as Tensor<D>);
  const out = makeTensor(x.shape, dtype);
  schedule((rt) => {
    const label = `cast ${x.describe()} → ${dtype}`;
    const s = rt.alloc(x.size * 4, label);
    out.setStorage(s);
    if (x.size === 0) return;
    const g = grid(x.size);
    rt.dispatch({
      kernel: CAST,
      prefix: `alias S = ${x.dtype};\nalias D = ${dtype};\n${convFor(x.dtype, dtype)}`,
      bindings: [x.storage, s, new Uint32Array([x.size, g.stride, 0, 0])],
      workgroups: g.groups,
      label,
    });
  });
  return out;
}
