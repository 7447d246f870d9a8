/**
 * Inverted dropout with a counter-based GPU random generator (Philox4x32-10): the mask depends only
 * on the key, the step, a per-layer salt and the element index, so the same seed gives the same
 * masks on every run, and backward regenerates the mask instead of storing it.
 * @module
 */
import dropoutSrc from "../../shaders/dropout.wgsl" with { type: "text" };
import { record, recording } from "../autodiff/tape.ts";
import { WgradError } from "../errors.ts";
import { schedule } from "../gpu/runtime.ts";
import { makeTensor, type Tensor, tensor } from "../tensor.ts";
import { checkInputs, grid } from "./util.ts";

const DROPOUT = { name: "dropout", code: dropoutSrc };

/**
 * A step-state tensor: u32 `[seedLo, seedHi, step, batchStart]`. {@linkcode dropout} draws from
 * the first three, the batch gather reads the fourth. Compiled training keeps one per model and
 * advances `step` (and `batchStart`) each step.
 */
export function rngState(seed: number, step = 0, batchStart = 0): Tensor<"u32"> {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new WgradError(
      "value",
      `rngState: the seed must be a non-negative safe integer, got ${seed}`,
    );
  }
  return tensor(
    new Uint32Array([seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0, step >>> 0, batchStart >>> 0]),
  );
}

/** Options of {@linkcode dropout}. */
export interface DropoutOptions {
  /** Random state from {@linkcode rngState} (default: a fresh state from the global seed). */
  rng?: Tensor<"u32">;
  /** Distinguishes dropout layers that share one random state (default 0). */
  salt?: number;
}

let eagerCalls = 0;

function applyMask(
  x: Tensor<"f32">,
  rng: Tensor<"u32">,
  rate: number,
  salt: number,
  what: string,
): Tensor<"f32"> {
  const out = makeTensor(x.shape, "f32");
  schedule((rt) => {
    const label = `${what} ${x.describe()} rate ${rate}`;
    const s = rt.alloc(x.size * 4, label);
    out.setStorage(s);
    if (x.size === 0) return;
    const g = grid(x.size);
    const u = new Uint32Array([x.size, g.stride, salt >>> 0, 0]);
    new Float32Array(u.buffer)[3] = rate;
    rt.dispatch({
      kernel: DROPOUT,
      bindings: [x.storage, rng.storage, s, u],
      workgroups: g.groups,
      label,
    });
  });
  return out;
}

/**
 * Sets each element to zero with probability `rate` and scales the rest by 1 / (1 − rate)
 * (Keras's `Dropout` in training). Differentiable: the gradient uses the same mask.
 */
export function dropout(
  x: Tensor<"f32">,
  rate: number,
  options: DropoutOptions = {},
): Tensor<"f32"> {
  checkInputs("dropout", [x], ["f32"]);
  if (!(rate >= 0 && rate < 1)) {
    throw new WgradError(
      "value",
      `dropout: rate must be in [0, 1), got ${rate} for ${x.describe()}`,
    );
  }
  const salt = options.salt ?? 0;
  let rng = options.rng;
  let own: Tensor<"u32"> | null = null;
  if (rng) {
    checkInputs("dropout", [rng], ["u32"]);
    if (rng.size !== 4) {
      throw new WgradError(
        "shape",
        `dropout: the random state ${rng.describe()} must have 4 elements`,
      );
    }
  } else {
    own = rng = rngState(0x5eed ^ 0x9e37, ++eagerCalls);
  }
  const y = applyMask(x, rng, rate, salt, "dropout");
  if (recording([x])) {
    const r = rng;
    record(
      "dropout",
      [x],
      y,
      (dy) => [applyMask(dy, r, rate, salt, "dropout gradient")],
      own ? [own] : [],
    );
  } else {
    own?.dispose();
  }
  return y;
}
