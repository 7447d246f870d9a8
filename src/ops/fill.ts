/**
 * The fill kernel behind `fill`, `zeros` and `ones`.
 * @module
 */
import fillSrc from "../../shaders/fill.wgsl" with { type: "text" };
import { currentRuntime, type Runtime, schedule } from "../gpu/runtime.ts";
import { makeTensor, registerFill, type Tensor } from "../tensor.ts";
import { grid } from "./util.ts";

const FILL = { name: "fill", code: fillSrc };

function record(rt: Runtime, out: Tensor, bits: number): void {
  const label = `fill ${out.describe()}`;
  const s = rt.alloc(out.size * 4, label);
  out.setStorage(s);
  if (out.size === 0) return;
  const g = grid(out.size);
  rt.dispatch({
    kernel: FILL,
    bindings: [s, new Uint32Array([out.size, g.stride, bits, 0])],
    workgroups: g.groups,
    label,
  });
}

/** Records a fill of `out` with the 32-bit pattern `bits`. */
export function fillInto(out: Tensor, bits: number): void {
  schedule((rt) => record(rt, out, bits));
}

/**
 * An f32 tensor of `value`s whose fill is recorded only when a kernel first reads it (see
 * `Tensor.setLazy`): a gradient's all-ones seed, which fused loss gradients never read.
 */
export function lazyFill(shape: readonly number[], value: number): Tensor<"f32"> {
  const out = makeTensor(shape, "f32");
  const bits = new Uint32Array(new Float32Array([value]).buffer)[0];
  out.setLazy(() => {
    const rt = currentRuntime();
    if (!rt) throw new Error(`internal: ${out.describe()} was bound with no runtime`);
    record(rt, out, bits);
  });
  return out;
}

registerFill(fillInto);
