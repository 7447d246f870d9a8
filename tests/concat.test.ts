/**
 * concat (src/ops/concat.ts): against a float64 reference on random shapes along every axis
 * (block copies and whole-buffer copies), finite-difference gradient checks, and errors.
 * @module
 */
import { concat, type Tensor } from "../mod.ts";
import { assertClose, assertShape, assertWgradError, compute, EXACT, f32, Rng } from "./harness.ts";
import { gradCheck } from "./gradcheck.ts";

/** Concatenation in float64 (row-major), the reference. */
function concatRef(
  xs: readonly ArrayLike<number>[],
  shapes: readonly number[][],
  axis: number,
): { data: Float64Array; shape: number[] } {
  const a = axis < 0 ? axis + shapes[0].length : axis;
  const rows = shapes[0].slice(0, a).reduce((p, d) => p * d, 1);
  const inner = shapes[0].slice(a + 1).reduce((p, d) => p * d, 1);
  const shape = [...shapes[0]];
  shape[a] = shapes.reduce((p, s) => p + s[a], 0);
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    xs.forEach((x, k) => {
      const w = shapes[k][a] * inner;
      for (let c = 0; c < w; c++) out.push(x[r * w + c]);
    });
  }
  return { data: Float64Array.from(out), shape };
}

Deno.test("concat matches the reference along every axis (a copy: exact)", async () => {
  const rng = new Rng(3);
  const cases: { shapes: number[][]; axis: number }[] = [
    { shapes: [[3, 4], [3, 5]], axis: -1 },
    { shapes: [[2, 3], [5, 3], [1, 3]], axis: 0 }, // outermost: whole-buffer copies
    { shapes: [[2, 7, 7, 3], [2, 7, 7, 5]], axis: 3 }, // channels of NHWC maps
    { shapes: [[2, 3, 5, 1], [2, 4, 5, 1]], axis: 1 },
    { shapes: [[1, 1], [1, 6]], axis: 1 },
    { shapes: [[4, 3, 2]], axis: 2 }, // one input: a copy
  ];
  for (const { shapes, axis } of cases) {
    const data = shapes.map((s) => rng.floats(s.reduce((p, d) => p * d, 1)));
    const want = concatRef(data, shapes, axis);
    const got = await compute(() => concat(data.map((d, k) => f32(d, shapes[k])), axis));
    assertShape(got.shape, want.shape, `concat ${JSON.stringify(shapes)} axis ${axis}`);
    assertClose(got.data, want.data, EXACT, `concat ${JSON.stringify(shapes)} axis ${axis}`);
  }
});

Deno.test("concat: gradient checks", async () => {
  const rng = new Rng(9);
  for (
    const { shapes, axis } of [
      { shapes: [[2, 3], [2, 2]], axis: 1 },
      { shapes: [[2, 2, 3], [1, 2, 3]], axis: 0 },
      { shapes: [[1, 3, 2, 2], [1, 3, 2, 1], [1, 3, 2, 3]], axis: -1 },
    ]
  ) {
    await gradCheck({
      label: `concat ${JSON.stringify(shapes)} axis ${axis}`,
      inputs: shapes.map((s) => ({ data: rng.floats(s.reduce((p, d) => p * d, 1)), shape: s })),
      gpu: (...xs: Tensor<"f32">[]) => concat(xs, axis),
      ref: (...xs: Float64Array[]) => concatRef(xs, shapes, axis),
    });
  }
});

Deno.test("concat: errors name the shapes", () => {
  const a = f32(new Float32Array(6), [2, 3]), b = f32(new Float32Array(8), [4, 2]);
  assertWgradError(() => concat([a, b], 1), "shape", ["concat", "[2, 3]", "[4, 2]"], "mismatch");
  assertWgradError(() => concat([a], 2), "value", ["axis 2", "rank 2"], "axis out of range");
  assertWgradError(() => concat([]), "value", ["at least one"], "no inputs");
  a.dispose();
  b.dispose();
});
