/**
 * The fill kernel behind `fill`, `zeros` and `ones`.
 * @module
 */
import fillSrc from "../../shaders/fill.wgsl" with { type: "text" };
import { schedule } from "../gpu/runtime.ts";
import { registerFill, type Tensor } from "../tensor.ts";
import { grid } from "./util.ts";

const FILL = { name: "fill", code: fillSrc };

/** Records a fill of `out` with the 32-bit pattern `bits`. */
export function fillInto(out: Tensor, bits: number): void {
  schedule((rt) => {
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
  });
}

registerFill(fillInto);
