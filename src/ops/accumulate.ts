/**
 * Accumulation of a training step's loss and correct count into a GPU-resident running total,
 * so that an epoch needs one small readback instead of one per step.
 * @module
 */
import accumulateSrc from "../../shaders/accumulate.wgsl" with { type: "text" };
import { WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import type { Tensor } from "../tensor.ts";
import { checkInputs } from "./util.ts";

const ACCUMULATE = { name: "accumulate", code: accumulateSrc };

/**
 * Adds `loss · batch`, `correct` (when given), `batch` and one step into the first four words of
 * `acc` (f32 [n ≥ 4]) in place: `acc = [lossSum, correctSum, samples, steps, …]`.
 */
export function accumulateInto(
  acc: Tensor<"f32">,
  loss: Tensor<"f32">,
  correct: Tensor<"f32"> | null,
  batch: number,
): void {
  checkInputs("accumulateInto", correct ? [acc, loss, correct] : [acc, loss], ["f32"]);
  if (!(batch >= 0) || !Number.isFinite(batch)) {
    throw new WgradError(
      "value",
      `accumulateInto: batch must be a finite number ≥ 0, got ${batch}`,
    );
  }
  if (acc.rank !== 1 || acc.size < 4 || loss.size !== 1 || (correct && correct.size !== 1)) {
    throw new WgradError(
      "shape",
      `accumulateInto: needs acc [n ≥ 4] and scalar loss and correct, got ${acc.describe()}, ${loss.describe()}${
        correct ? `, ${correct.describe()}` : ""
      }`,
    );
  }
  schedule((rt) => {
    const u = new Uint32Array([0, correct ? 1 : 0, 0, 0]);
    new Float32Array(u.buffer)[0] = batch;
    rt.dispatch({
      kernel: ACCUMULATE,
      bindings: [acc.storage, loss.storage, (correct ?? loss).storage, u],
      workgroups: [1],
      label: `accumulate ${loss.describe()} into ${acc.describe()}`,
    });
  });
}
