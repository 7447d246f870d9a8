/**
 * Convolution benchmarks: GFLOP/s of the implicit-GEMM kernels (src/ops/conv.ts) for the forward
 * pass (with bias and relu fused), the input gradient and the weight gradient (with the bias
 * gradient), on the layers of LeNet-5 (conv2 after a 2×2 pooling, as in the paper, and after a
 * 2×2 stride-1 pooling, with conv3 after the next pooling), of a small CNN (3×3 convolutions at
 * batch 64) and one wider 3×3 layer. FLOPs are 2·N·Ho·Wo·Cout·kh·kw·Cin for each (padding taps
 * counted, as is usual). Each figure is the median of 7 timed runs after a warm-up
 * (which also creates the pipelines); a run records several ops into one submit and ends with one
 * readback.
 *
 * Run: `deno run --allow-env=XDG_RUNTIME_DIR bench/conv.ts` (`--quick` for fewer, shorter runs;
 * `--only=TEXT` for the layers whose name contains TEXT).
 * @module
 */
import { flush, gpuInfo, randomNormal, type Tensor } from "../mod.ts";
import { conv2d, conv2dInputGrad, conv2dWeightGrad, type Padding } from "../src/ops/conv.ts";

const info = await gpuInfo();
const quick = Deno.args.includes("--quick");
const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7) ?? "";
console.log(`wgrad conv2d benchmarks — adapter "${info.description}", Deno ${info.deno}`);

/** Median time of one op in ms (`reps` ops per submit, one readback per run), and the warm-up. */
async function time(reps: number, op: () => Tensor[]): Promise<{ ms: number; firstMs: number }> {
  const runOnce = async () => {
    const t0 = performance.now();
    const outs: Tensor[] = [];
    for (let i = 0; i < reps; i++) outs.push(...op());
    await outs[outs.length - 1].data();
    const ms = performance.now() - t0;
    for (const o of outs) o.dispose();
    return ms;
  };
  const firstMs = await runOnce();
  const samples: number[] = [];
  for (let i = 0; i < (quick ? 3 : 7); i++) samples.push(await runOnce());
  samples.sort((a, b) => a - b);
  return { ms: samples[samples.length >> 1] / reps, firstMs };
}

async function layer(
  name: string,
  xShape: [number, number, number, number],
  k: number,
  cout: number,
  padding: Padding,
): Promise<void> {
  if (!name.includes(only)) return;
  const [n, h, w, cin] = xShape;
  const ho = padding === "same" ? h : h - k + 1, wo = padding === "same" ? w : w - k + 1;
  const x = randomNormal(xShape, { seed: 1 });
  const wt = randomNormal([k, k, cin, cout], { seed: 2 });
  const b = randomNormal([cout], { seed: 3 });
  const dy = randomNormal([n, ho, wo, cout], { seed: 4 });
  await flush();
  const flops = 2 * n * ho * wo * cout * k * k * cin;
  const reps = Math.max(2, Math.min(20, Math.round((quick ? 2e8 : 1e9) / flops)));
  const ops: [string, () => Tensor[]][] = [
    ["forward", () => [conv2d(x, wt, { padding, bias: b, activation: "relu" })]],
    ["input grad", () => [conv2dInputGrad(dy, wt, xShape, { padding })]],
    ["weight grad", () => {
      const r = conv2dWeightGrad(x, dy, [k, k, cin, cout], { padding });
      return [r.db, r.dw];
    }],
  ];
  for (const [op, fn] of ops) {
    const { ms, firstMs } = await time(reps, fn);
    console.log(
      `${name.padEnd(42)} ${op.padEnd(12)} ${ms.toFixed(3).padStart(9)} ms ${
        (flops / ms / 1e6).toFixed(2).padStart(7)
      } GFLOP/s   (first run ${firstMs.toFixed(0)} ms)`,
    );
  }
  for (const t of [x, wt, b, dy]) t.dispose();
}

console.log(`\n${"layer".padEnd(42)} ${"op".padEnd(12)}      time    GFLOP/s`);
await layer("LeNet conv1 128×28×28×1 → 6@5×5 same", [128, 28, 28, 1], 5, 6, "same");
await layer("LeNet conv2 128×14×14×6 → 16@5×5 valid", [128, 14, 14, 6], 5, 16, "valid");
await layer("LeNet conv2 128×27×27×6 → 16@5×5 valid", [128, 27, 27, 6], 5, 16, "valid");
await layer("LeNet conv3 128×11×11×16 → 120@5×5 valid", [128, 11, 11, 16], 5, 120, "valid");
await layer("CNN conv1 64×28×28×1 → 32@3×3 same", [64, 28, 28, 1], 3, 32, "same");
await layer("CNN conv2 64×14×14×32 → 64@3×3 same", [64, 14, 14, 32], 3, 64, "same");
await layer("CNN 64×28×28×32 → 64@3×3 same", [64, 28, 28, 32], 3, 64, "same");
