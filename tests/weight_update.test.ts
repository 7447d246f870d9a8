/**
 * The optimizer epilogue of the weight-gradient product (shaders/matmul.wgsl with
 * shaders/optim_update.wgsl, `Optimizer.weightUpdate`): a compiled training step updates each
 * dense kernel as it computes its gradient, and the optimizer's dispatch skips those kernels.
 * It must train exactly as storing the gradients and stepping does: the same formulas on the same
 * values, so the weights and every optimizer slot are compared bit for bit with a run that has
 * the epilogue off, for every optimizer family and option it takes (momentum, Nesterov,
 * AMSGrad, centered, clipvalue, weight decay with exclusions, a schedule), with kernels whose rows
 * are a multiple of 4 long (vector path) and not (scalar path), and a last partial batch.
 * The optimizers themselves are checked against float64 references in tests/optim.test.ts, and
 * fit's steps against eager steps in tests/train.test.ts.
 * @module
 */
import { linear, losses, nn, optim, type Tensor, tensor } from "../mod.ts";
import { setWeightUpdates } from "../src/train/trainer.ts";
import { assertEqualArrays, Rng } from "./harness.ts";

interface Run {
  weights: Float32Array[];
  slots: Record<string, Float32Array[]>;
  iterations: number;
  /** Labels of the commands of the captured full-batch training step. */
  commands: string[];
}

type MakeOptimizer = () => optim.Optimizer;

/** A low-rank dense layer, x · (P · W): the product P · W has a parameter as its operand. */
class LowRank extends nn.Layer {
  readonly className = "LowRank";
  constructor(readonly units: number, readonly rank: number) {
    super();
  }
  computeOutputShape(input: readonly number[]): number[] {
    return [...input.slice(0, -1), this.units];
  }
  override weightSpecs(input: readonly number[]): nn.WeightSpec[] {
    const init = nn.initializers.glorotUniform();
    return [
      {
        name: "p",
        shape: [input[input.length - 1], this.rank],
        initializer: init,
        trainable: true,
      },
      { name: "w", shape: [this.rank, this.units], initializer: init, trainable: true },
    ];
  }
  call(x: Tensor<"f32">): Tensor<"f32"> {
    const [p, w] = this.weights as Tensor<"f32">[];
    const pw = linear(p, w, null);
    const y = linear(x, pw, null);
    pw.dispose();
    return y;
  }
  getConfig(): Record<string, unknown> {
    return { units: this.units, rank: this.rank };
  }
}

async function train(
  make: MakeOptimizer,
  fused: boolean,
  widths: readonly number[],
  inputs: number,
  options: { l2?: boolean; lowRank?: boolean } = {},
): Promise<Run> {
  const { ready } = await import("../src/gpu/runtime.ts");
  const rt = await ready();
  const plans: string[][] = [];
  const stop = rt.observePlans((p) => {
    if (p.label.startsWith("train step")) plans.push(p.commands.map((c) => c.label));
  });
  setWeightUpdates(fused);
  const rng = new Rng(21);
  const n = 50, classes = widths[widths.length - 1];
  const x = tensor(rng.floats(n * inputs), [n, inputs]);
  const y = tensor(new Int32Array(n).map((_, i) => (i * 7) % classes), [n]);
  const opt = make();
  const layers: nn.Layer[] = widths.map((w, k) =>
    nn.dense(w, {
      activation: k === widths.length - 1 ? "linear" : k % 2 ? "tanh" : "relu",
      kernelRegularizer: options.l2 && k === 0 ? nn.regularizers.l2(0.01) : undefined,
    })
  );
  if (options.lowRank) layers.unshift(new LowRank(9, 3));
  const model = nn.sequential(layers, { inputShape: [inputs], seed: 4 });
  try {
    model.compile({
      optimizer: opt,
      loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
    });
    await model.fit(x, y, { epochs: 2, batchSize: 16, verbose: 0, seed: 3 });
    const weights = await model.getWeights();
    const state = await opt.getState();
    // fit leaves every gradient slot zero (those of kernels updated by their products were never
    // written).
    const grads = await opt.arena!.getGradients();
    grads.forEach((g, k) => {
      if (g.some((v) => v !== 0)) throw new Error(`gradient slot ${k} is not zero after fit`);
    });
    return { weights, slots: state.slots, iterations: state.iterations, commands: plans[0] };
  } finally {
    stop();
    setWeightUpdates(true);
    for (const t of [x, y] as Tensor[]) t.dispose();
    model.dispose();
    opt.dispose();
  }
}

function assertSameRun(a: Run, b: Run, label: string): void {
  if (a.iterations !== b.iterations) {
    throw new Error(`${label}: iterations ${a.iterations} and ${b.iterations}`);
  }
  a.weights.forEach((w, k) => assertEqualArrays(w, b.weights[k], `${label}: weight ${k}`));
  const names = Object.keys(a.slots);
  if (names.join() !== Object.keys(b.slots).join()) {
    throw new Error(`${label}: slots ${names} and ${Object.keys(b.slots)}`);
  }
  for (const s of names) {
    a.slots[s].forEach((v, k) => assertEqualArrays(v, b.slots[s][k], `${label}: ${s} ${k}`));
  }
}

/** The commands whose label says they applied an optimizer update, and the optimizer's dispatch. */
function fusedCommands(run: Run, name: string): { fused: string[]; step: string } {
  // Labels end with the kernel's name: `linear weight gradient … + Adam update (kernel "matmul …")`.
  const fused = run.commands.filter((c) => c.includes(`+ ${name} update (kernel`));
  const step = run.commands.find((c) => c.startsWith(`${name} step`));
  if (!step) throw new Error(`no ${name} step among:\n${run.commands.join("\n")}`);
  return { fused, step };
}

const CASES: { label: string; name: string; make: MakeOptimizer }[] = [
  { label: "sgd", name: "SGD", make: () => optim.sgd({ learningRate: 0.1 }) },
  {
    label: "sgd momentum nesterov clipvalue",
    name: "SGD",
    make: () => optim.sgd({ learningRate: 0.05, momentum: 0.9, nesterov: true, clipvalue: 0.05 }),
  },
  { label: "adam", name: "Adam", make: () => optim.adam({ learningRate: 0.01 }) },
  {
    label: "adamw amsgrad, the first kernel excluded from decay",
    name: "AdamW",
    make: () =>
      optim.adamw({
        learningRate: 0.01,
        amsgrad: true,
        weightDecay: 0.1,
        excludeFromWeightDecay: ["^dense/kernel$"],
      }),
  },
  {
    label: "rmsprop centered momentum, exponential decay",
    name: "RMSprop",
    make: () =>
      optim.rmsprop({
        learningRate: optim.exponentialDecay({
          initialLearningRate: 0.01,
          decaySteps: 2,
          decayRate: 0.5,
        }),
        momentum: 0.5,
        centered: true,
      }),
  },
  { label: "adagrad", name: "Adagrad", make: () => optim.adagrad({ learningRate: 0.1 }) },
];

for (const c of CASES) {
  Deno.test(`weight update: ${c.label} trains bit for bit as without the epilogue`, async () => {
    // Kernels [37, 13], [13, 6], [6, 5] (rows not a multiple of 4) and [20, 16], [16, 8] (vec4).
    for (const [widths, inputs] of [[[13, 6, 5], 37], [[16, 8], 20]] as const) {
      const on = await train(c.make, true, widths, inputs);
      const off = await train(c.make, false, widths, inputs);
      const shape = `${inputs}-${widths.join("-")}`;
      assertSameRun(on, off, `${c.label}, ${shape}`);
      const { fused, step } = fusedCommands(on, c.name);
      if (fused.length !== widths.length) {
        throw new Error(
          `${c.label}, ${shape}: ${fused.length} products applied the update, expected ` +
            `${widths.length}:\n${on.commands.join("\n")}`,
        );
      }
      if (!step.includes(`, ${widths.length} updated by their gradient products (kernel`)) {
        throw new Error(`${c.label}, ${shape}: the optimizer's dispatch is "${step}"`);
      }
      if (fusedCommands(off, c.name).fused.length !== 0) {
        throw new Error(`${c.label}, ${shape}: the epilogue ran while off`);
      }
    }
  });
}

Deno.test("weight update: a norm clip or a regularized kernel keeps the stored gradient", async () => {
  // clipnorm and globalClipnorm need each whole gradient before any element is updated.
  for (
    const make of [
      () => optim.adam({ learningRate: 0.01, clipnorm: 0.1 }),
      () => optim.adam({ learningRate: 0.01, globalClipnorm: 0.1 }),
    ]
  ) {
    const on = await train(make, true, [13, 5], 37);
    const off = await train(make, false, [13, 5], 37);
    assertSameRun(on, off, "norm clip");
    const { fused, step } = fusedCommands(on, "Adam");
    if (fused.length !== 0 || step.includes("updated by")) {
      throw new Error(`a norm clip took the epilogue:\n${on.commands.join("\n")}`);
    }
  }
  // An L2 penalty on the first kernel adds a second gradient to it: only the other kernel fuses.
  const make = () => optim.adam({ learningRate: 0.01 });
  const on = await train(make, true, [13, 5], 37, { l2: true });
  const off = await train(make, false, [13, 5], 37, { l2: true });
  assertSameRun(on, off, "l2 on the first kernel");
  // The optimizer's dispatch lists the blocks left to update, 1,024 per dispatch: a regularized
  // [700, 400] kernel leaves 1,094 blocks, two dispatches (the second reads the step counter
  // that the first incremented).
  const big = await train(make, true, [400, 5], 700, { l2: true });
  const bigOff = await train(make, false, [400, 5], 700, { l2: true });
  assertSameRun(big, bigOff, "l2 on a [700, 400] kernel");
  const steps = big.commands.filter((c) => c.startsWith("Adam step"));
  if (steps.length !== 2 || fusedCommands(big, "Adam").fused.length !== 1) {
    throw new Error(
      `expected two listed updates and one fused kernel:\n${big.commands.join("\n")}`,
    );
  }
  const { fused, step } = fusedCommands(on, "Adam");
  if (
    fused.length !== 1 || !fused[0].includes("[16, 13]ᵀ") ||
    !step.includes(", 1 updated by their gradient products (kernel")
  ) {
    throw new Error(`expected only the second kernel fused:\n${on.commands.join("\n")}`);
  }
});

Deno.test("weight update: a product whose operand is a parameter stores its gradient", async () => {
  // x · (P · W): W's gradient is Pᵀ · d(P·W), and P lives in the parameter region the epilogue
  // binds read-write, so W takes the stored gradient; the dense layers after it still fuse.
  const make = () => optim.adam({ learningRate: 0.01 });
  const on = await train(make, true, [6, 5], 12, { lowRank: true });
  const off = await train(make, false, [6, 5], 12, { lowRank: true });
  assertSameRun(on, off, "low-rank layer");
  const { fused, step } = fusedCommands(on, "Adam");
  if (fused.length !== 2 || !step.includes(", 2 updated by their gradient products (kernel")) {
    throw new Error(`expected the two dense kernels fused:\n${on.commands.join("\n")}`);
  }
});
