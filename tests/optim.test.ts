/**
 * Optimizers (shaders/optim.wgsl, src/optim/) against float64 references of Keras 3's formulas
 * (tests/reference_optim.ts): every optimizer and option set over several steps on parameters of
 * sizes 1, 7, 33, 127 and 10,000 in one arena, clipping, weight decay, schedules on the CPU and on
 * the GPU, replay of a recorded step, state save/restore, one dispatch per step, cleared
 * gradients, and least-squares fits with `grad`.
 * @module
 */
import {
  add,
  flush,
  grad,
  mean,
  memoryInfo,
  mul,
  optim,
  scope,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
  WgradError,
} from "../mod.ts";
import { ready, schedule } from "../src/gpu/runtime.ts";
import { assertClose, assertEqualArrays, assertWgradError, EPS, Rng } from "./harness.ts";
import {
  f32,
  type RefConfig,
  refCosineDecay,
  refExponentialDecay,
  RefOptimizer,
  refPiecewiseConstant,
} from "./reference_optim.ts";

const { ParamArena } = optim;
const id = (x: number): number => x;
type Optimizer = optim.Optimizer;
type ParamArena = optim.ParamArena;

// Tolerances. EPS = 2⁻²³ is one f32 ulp relative. The GPU rounds every operation to f32 and the
// reference does not, so each step adds about an ulp of each parameter (the subtraction) plus a few
// ulps of the update; errors add up over the steps. Parameters: |Δ| ≤ STEPS · 4 ulps of the
// largest parameter magnitude. State slots are sums of a few rounded terms per step (moving
// averages forget old errors): relative 4·STEPS ulps, plus as much of the slot's own scale in
// absolute terms for elements that nearly cancel.
const STEPS = 5;
const ULPS_PER_STEP = 4;
/** Sizes that the brief names: 1, 7, 33, 127 and 10,000 (as [100, 100]). */
const SHAPES = [[1], [7], [33], [127], [100, 100]];
/** Gradient scales per parameter, so that clipping meets norms on both sides of its threshold. */
const GRAD_SCALES = [0.01, 1, 3, 0.2, 0.05];

function maxAbs(arrays: readonly ArrayLike<number>[]): number {
  let m = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

interface Case {
  label: string;
  make: () => Optimizer;
  ref: RefConfig;
  /** Parameter names (for weight-decay exclusion); default p0, p1, … */
  names?: string[];
  /** Gradients all zero (the global norm is 0). */
  zeroGrads?: boolean;
  /** Parameter shapes and gradient scales (default SHAPES, GRAD_SCALES). */
  shapes?: number[][];
  scales?: number[];
}

/**
 * Many parameters of odd sizes around block boundaries (256 elements) and workgroup boundaries
 * (1,024), for the per-parameter tables.
 */
const ODD_SHAPES = [[255], [256], [257], [1], [31, 33], [1025], [3], [4097], [2, 2, 2], [511]];
const ODD_SCALES = [0.1, 0.05, 2, 5, 0.01, 0.02, 1, 0.03, 0.5, 0.08];

/** Random initial values and per-step gradients for `shapes`, each scaled by `scales`. */
function problem(
  seed: number,
  zeroGrads = false,
  shapes = SHAPES,
  scales = GRAD_SCALES,
): { init: Float32Array[]; grads: Float32Array[][] } {
  const rng = new Rng(seed);
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const init = sizes.map((n) => rng.floats(n, -1, 1));
  const grads = Array.from({ length: STEPS }, () =>
    sizes.map((n, k) => {
      const g = rng.floats(n, -1, 1);
      for (let i = 0; i < n; i++) g[i] = zeroGrads ? 0 : Math.fround(g[i] * scales[k]);
      return g;
    }));
  return { init, grads };
}

function makeArena(init: Float32Array[], names?: string[], shapes = SHAPES): ParamArena {
  return new ParamArena(
    init.map((v, i) => ({ name: names?.[i] ?? `p${i}`, shape: shapes[i], value: v })),
    { name: "test" },
  );
}

/** Compares the GPU's parameters and slots with the reference after the same steps. */
async function compareWithReference(
  label: string,
  opt: Optimizer,
  arena: ParamArena,
  ref: RefOptimizer,
  steps: number,
): Promise<void> {
  const weights = await arena.getWeights();
  const scale = maxAbs(ref.vars);
  const tol = { atol: steps * ULPS_PER_STEP * EPS * scale, rtol: 0 };
  weights.forEach((w, k) => assertClose(w, ref.vars[k], tol, `${label}: parameter ${k}`));
  const state = await opt.getState();
  if (state.iterations !== ref.iterations) {
    throw new Error(`${label}: iterations ${state.iterations}, expected ${ref.iterations}`);
  }
  const names = Object.keys(ref.slots).sort();
  if (JSON.stringify(Object.keys(state.slots).sort()) !== JSON.stringify(names)) {
    throw new Error(`${label}: slots ${Object.keys(state.slots)}, expected ${names}`);
  }
  for (const name of names) {
    const slotScale = maxAbs(ref.slots[name]);
    const stol = {
      atol: steps * ULPS_PER_STEP * EPS * slotScale,
      rtol: steps * ULPS_PER_STEP * EPS,
    };
    state.slots[name].forEach((s, k) =>
      assertClose(s, ref.slots[name][k], stol, `${label}: slot ${name} of parameter ${k}`)
    );
  }
}

async function runCase(c: Case, seed: number): Promise<void> {
  const { init, grads } = problem(seed, c.zeroGrads, c.shapes, c.scales);
  const arena = makeArena(init, c.names, c.shapes);
  const opt = c.make();
  const ref = new RefOptimizer(c.ref, init);
  try {
    for (let s = 0; s < STEPS; s++) {
      opt.applyGradients(grads[s], arena);
      ref.step(grads[s]);
    }
    if (opt.iterations !== STEPS) throw new Error(`${c.label}: iterations ${opt.iterations}`);
    await compareWithReference(c.label, opt, arena, ref, STEPS);
    // The step clears the gradients (rule 5).
    const left = await arena.getGradients();
    left.forEach((g, k) =>
      assertEqualArrays(g, new Float32Array(g.length), `${c.label}: gradient ${k} after the step`)
    );
  } finally {
    opt.dispose();
    arena.dispose();
  }
}

const CASES: Case[] = [
  {
    label: "sgd nesterov clipnorm, 10 parameters of odd sizes",
    shapes: ODD_SHAPES,
    scales: ODD_SCALES,
    make: () => optim.sgd({ learningRate: 0.1, momentum: 0.9, nesterov: true, clipnorm: 0.7 }),
    ref: { kind: "sgd", learningRate: 0.1, momentum: 0.9, nesterov: true, clipnorm: 0.7 },
  },
  {
    label: "adamw globalClipnorm, 10 parameters of odd sizes",
    shapes: ODD_SHAPES,
    scales: ODD_SCALES,
    names: ODD_SHAPES.map((_, i) => (i % 3 === 0 ? `dense/bias${i}` : `dense/kernel${i}`)),
    make: () =>
      optim.adamw({
        learningRate: 0.02,
        weightDecay: 0.2,
        globalClipnorm: 1,
        excludeFromWeightDecay: [/bias/],
      }),
    ref: {
      kind: "adam",
      learningRate: 0.02,
      weightDecay: 0.2,
      globalClipnorm: 1,
      decayMask: ODD_SHAPES.map((_, i) => i % 3 !== 0),
    },
  },
  { label: "sgd defaults", make: () => optim.sgd(), ref: { kind: "sgd", learningRate: 0.01 } },
  {
    label: "sgd momentum 0.9",
    make: () => optim.sgd({ learningRate: 0.1, momentum: 0.9 }),
    ref: { kind: "sgd", learningRate: 0.1, momentum: 0.9 },
  },
  {
    label: "sgd nesterov",
    make: () => optim.sgd({ learningRate: 0.1, momentum: 0.7, nesterov: true }),
    ref: { kind: "sgd", learningRate: 0.1, momentum: 0.7, nesterov: true },
  },
  {
    label: "sgd weight decay",
    make: () => optim.sgd({ learningRate: 0.1, weightDecay: 0.3 }),
    ref: { kind: "sgd", learningRate: 0.1, weightDecay: 0.3 },
  },
  { label: "adam defaults", make: () => optim.adam(), ref: { kind: "adam", learningRate: 0.001 } },
  {
    label: "adam amsgrad, own betas and epsilon",
    make: () =>
      optim.adam({ learningRate: 0.05, beta1: 0.8, beta2: 0.95, epsilon: 1e-3, amsgrad: true }),
    ref: {
      kind: "adam",
      learningRate: 0.05,
      beta1: 0.8,
      beta2: 0.95,
      epsilon: 1e-3,
      amsgrad: true,
    },
  },
  {
    label: "adamw defaults",
    make: () => optim.adamw(),
    ref: { kind: "adam", learningRate: 0.001, weightDecay: 0.004 },
  },
  {
    label: "adamw excluding biases",
    names: ["scale", "bias_a", "kernel", "bias_b", "kernel2"],
    make: () =>
      optim.adamw({ learningRate: 0.05, weightDecay: 0.5, excludeFromWeightDecay: ["bias"] }),
    ref: {
      kind: "adam",
      learningRate: 0.05,
      weightDecay: 0.5,
      decayMask: [true, false, true, false, true],
    },
  },
  {
    label: "rmsprop defaults",
    make: () => optim.rmsprop(),
    ref: { kind: "rmsprop", learningRate: 0.001 },
  },
  {
    label: "rmsprop momentum",
    make: () => optim.rmsprop({ learningRate: 0.01, momentum: 0.5, rho: 0.8 }),
    ref: { kind: "rmsprop", learningRate: 0.01, momentum: 0.5, rho: 0.8 },
  },
  {
    label: "rmsprop centered",
    make: () => optim.rmsprop({ learningRate: 0.01, centered: true }),
    ref: { kind: "rmsprop", learningRate: 0.01, centered: true },
  },
  {
    label: "rmsprop centered with momentum",
    make: () => optim.rmsprop({ learningRate: 0.01, centered: true, momentum: 0.9, epsilon: 1e-4 }),
    ref: { kind: "rmsprop", learningRate: 0.01, centered: true, momentum: 0.9, epsilon: 1e-4 },
  },
  {
    label: "adagrad defaults",
    make: () => optim.adagrad(),
    ref: { kind: "adagrad", learningRate: 0.001 },
  },
  {
    label: "adagrad own accumulator and epsilon",
    make: () => optim.adagrad({ learningRate: 0.1, initialAccumulatorValue: 0.5, epsilon: 1e-3 }),
    ref: { kind: "adagrad", learningRate: 0.1, initialAccumulatorValue: 0.5, epsilon: 1e-3 },
  },
  // Clipping: the gradient scales put some parameters' norms below the threshold, some above.
  {
    label: "sgd clipnorm",
    make: () => optim.sgd({ learningRate: 0.1, clipnorm: 1 }),
    ref: { kind: "sgd", learningRate: 0.1, clipnorm: 1 },
  },
  {
    label: "adam clipnorm",
    make: () => optim.adam({ learningRate: 0.01, clipnorm: 0.5 }),
    ref: { kind: "adam", learningRate: 0.01, clipnorm: 0.5 },
  },
  {
    label: "sgd globalClipnorm",
    make: () => optim.sgd({ learningRate: 0.1, momentum: 0.5, globalClipnorm: 2 }),
    ref: { kind: "sgd", learningRate: 0.1, momentum: 0.5, globalClipnorm: 2 },
  },
  {
    label: "rmsprop globalClipnorm above the norm (no effect)",
    make: () => optim.rmsprop({ learningRate: 0.01, globalClipnorm: 1e4 }),
    ref: { kind: "rmsprop", learningRate: 0.01, globalClipnorm: 1e4 },
  },
  {
    label: "adagrad clipvalue",
    make: () => optim.adagrad({ learningRate: 0.1, clipvalue: 0.3 }),
    ref: { kind: "adagrad", learningRate: 0.1, clipvalue: 0.3 },
  },
  {
    label: "sgd globalClipnorm with zero gradients",
    zeroGrads: true,
    make: () => optim.sgd({ learningRate: 0.1, globalClipnorm: 1, weightDecay: 0.1 }),
    ref: { kind: "sgd", learningRate: 0.1, globalClipnorm: 1, weightDecay: 0.1 },
  },
  {
    label: "adam clipnorm with zero gradients",
    zeroGrads: true,
    make: () => optim.adam({ learningRate: 0.01, clipnorm: 1 }),
    ref: { kind: "adam", learningRate: 0.01, clipnorm: 1 },
  },
];

CASES.forEach((c, i) => {
  Deno.test(`optim: ${c.label} matches Keras's formula over ${STEPS} steps`, async () => {
    await runCase(c, 1000 + i);
  });
});

Deno.test("optim: single-parameter arenas of sizes 1, 7, 33, 127, 10,000 (adam, rmsprop)", async () => {
  const rng = new Rng(7);
  for (const n of [1, 7, 33, 127, 10000]) {
    for (const kind of ["adam", "rmsprop"] as const) {
      const init = rng.floats(n, -2, 2);
      const arena = new ParamArena([init]);
      const opt = kind === "adam"
        ? optim.adam({ learningRate: 0.02 })
        : optim.rmsprop({ learningRate: 0.02, centered: true });
      const ref = new RefOptimizer({ kind, learningRate: 0.02, centered: true }, [init]);
      for (let s = 0; s < STEPS; s++) {
        const g = rng.floats(n, -1, 1);
        opt.applyGradients([g], arena);
        ref.step([g]);
      }
      await compareWithReference(`${kind} [${n}]`, opt, arena, ref, STEPS);
      opt.dispose();
      arena.dispose();
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Schedules

/** Schedules under test, each with its float64 reference. */
const SCHEDULES: {
  label: string;
  make: () => optim.LearningRateSchedule;
  /** The reference at step s; `c` casts the hyperparameters (identity, or f32 as Keras does). */
  ref: (s: number, c?: (x: number) => number) => number;
}[] = [
  {
    label: "exponentialDecay",
    make: () => optim.exponentialDecay({ initialLearningRate: 0.1, decaySteps: 4, decayRate: 0.5 }),
    ref: (s, c = id) => refExponentialDecay(s, c(0.1), c(4), c(0.5), false),
  },
  {
    label: "exponentialDecay staircase",
    make: () =>
      optim.exponentialDecay({
        initialLearningRate: 0.3,
        decaySteps: 3,
        decayRate: 0.9,
        staircase: true,
      }),
    ref: (s, c = id) => refExponentialDecay(s, c(0.3), c(3), c(0.9), true),
  },
  {
    label: "piecewiseConstantDecay",
    make: () =>
      optim.piecewiseConstantDecay({ boundaries: [3, 7, 8], values: [1, 0.5, 0.25, 0.1] }),
    ref: (s, c = id) => refPiecewiseConstant(s, [3, 7, 8], [1, 0.5, 0.25, 0.1].map(c)),
  },
  {
    label: "cosineDecay",
    make: () => optim.cosineDecay({ initialLearningRate: 0.2, decaySteps: 10, alpha: 0.1 }),
    ref: (s, c = id) => refCosineDecay(s, c(0.2), c(10), 0.1, null, 0, c),
  },
  {
    label: "cosineDecay with warmup",
    make: () =>
      optim.cosineDecay({
        initialLearningRate: 0,
        decaySteps: 8,
        warmupTarget: 0.5,
        warmupSteps: 4,
      }),
    ref: (s, c = id) => refCosineDecay(s, 0, c(8), 0, c(0.5), c(4), c),
  },
];

Deno.test("optim: schedules give Keras's documented values at given steps (CPU)", () => {
  const close = (a: number, e: number, what: string) => {
    if (Math.abs(a - e) > 1e-15 * Math.max(1, Math.abs(e))) {
      throw new Error(`${what}: ${a}, expected ${e}`);
    }
  };
  const e = optim.exponentialDecay({ initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.5 });
  close(e.at(0), 0.1, "exponential at 0");
  close(e.at(10), 0.05, "exponential at 10");
  close(e.at(5), 0.1 * Math.SQRT1_2, "exponential at 5");
  const es = optim.exponentialDecay({
    initialLearningRate: 0.1,
    decaySteps: 10,
    decayRate: 0.5,
    staircase: true,
  });
  close(es.at(19), 0.05, "staircase at 19");
  close(es.at(20), 0.025, "staircase at 20");
  // Keras's docstring: 1.0 for the first 100001 steps, 0.5 for the next 10000, then 0.1.
  const pw = optim.piecewiseConstantDecay({ boundaries: [100000, 110000], values: [1, 0.5, 0.1] });
  for (const [s, v] of [[0, 1], [100000, 1], [100001, 0.5], [110000, 0.5], [110001, 0.1]]) {
    close(pw.at(s), v, `piecewise at ${s}`);
  }
  const c = optim.cosineDecay({ initialLearningRate: 0.1, decaySteps: 1000, alpha: 0.2 });
  close(c.at(0), 0.1, "cosine at 0");
  close(c.at(500), 0.1 * (0.8 * 0.5 + 0.2), "cosine at 500");
  close(c.at(1000), 0.02, "cosine at 1000");
  close(c.at(5000), 0.02, "cosine after the end");
  const w = optim.cosineDecay({
    initialLearningRate: 0,
    decaySteps: 1000,
    warmupTarget: 0.1,
    warmupSteps: 100,
  });
  close(w.at(0), 0, "warmup at 0");
  close(w.at(50), 0.05, "warmup at 50");
  close(w.at(100), 0.1, "warmup end");
  close(w.at(600), 0.05, "decay midpoint");
  close(w.at(1100), 0, "decay end");
  for (const sch of SCHEDULES) {
    for (let s = 0; s < 40; s++) close(sch.make().at(s), sch.ref(s), `${sch.label} at ${s}`);
  }
});

// The GPU evaluates schedules in f32 from its step counter with its own exp and cos (about an ulp
// each): relative error of a few ulps, growing with the exponent for exponential decay
// (|x| ulps for x = (step/decaySteps)·ln(decayRate)), plus the f32 rounding of the hyperparameters.
const LR_TOL = { atol: 1e-12, rtol: 8 * EPS };

Deno.test("optim: the GPU's scheduled learning rate matches the reference at every step", async () => {
  for (const sch of SCHEDULES) {
    const arena = new ParamArena([new Float32Array([0])]);
    const opt = optim.sgd({ learningRate: sch.make() });
    const got: number[] = [], want: number[] = [], cpu: number[] = [];
    for (let s = 0; s < 14; s++) {
      cpu.push(opt.learningRate);
      opt.applyGradients([new Float32Array([1])], arena);
      got.push(await opt.readLearningRate());
      want.push(f32(sch.ref(s, f32)));
    }
    assertClose(got, want, LR_TOL, `${sch.label} on the GPU, steps 0..13`);
    assertClose(cpu, want, LR_TOL, `${sch.label}: optimizer.learningRate, steps 0..13`);
    // SGD with gradient 1 moves the parameter by the learning rate of each step.
    let expect = 0;
    for (const v of want) expect -= v;
    assertClose(await arena.getWeight(0), [expect], { atol: 1e-6, rtol: 0 }, `${sch.label}: w`);
    opt.dispose();
    arena.dispose();
  }
});

Deno.test("optim: schedules at large step counts (restored iterations) on the GPU", async () => {
  const cases: [optim.LearningRateSchedule, (s: number) => number, number[]][] = [
    [
      optim.piecewiseConstantDecay({ boundaries: [100000, 110000], values: [1, 0.5, 0.1] }),
      (s) => refPiecewiseConstant(s, [100000, 110000], [1, 0.5, 0.1].map(f32)),
      [99999, 100000, 100001, 110000, 110001, 4000000],
    ],
    [
      optim.exponentialDecay({ initialLearningRate: 1, decaySteps: 10000, decayRate: 0.96 }),
      (s) => refExponentialDecay(s, 1, 10000, f32(0.96), false),
      [0, 12345, 100000, 1000000],
    ],
    [
      optim.cosineDecay({ initialLearningRate: 0.5, decaySteps: 100000, alpha: 0.01 }),
      (s) => refCosineDecay(s, 0.5, 100000, 0.01, null, 0, f32),
      [1, 25000, 50000, 99999, 100000, 200000],
    ],
  ];
  for (const [sch, ref, steps] of cases) {
    const arena = new ParamArena([new Float32Array([0])]);
    const opt = optim.sgd({ learningRate: sch });
    const got: number[] = [];
    for (const s of steps) {
      opt.setState({ iterations: s, slots: {} }, arena);
      opt.applyGradients([new Float32Array([1])], arena);
      got.push(await opt.readLearningRate());
    }
    // Exponential decay at step 1e6: x = 100·ln 0.96 ≈ −4.1, a few more ulps.
    assertClose(got, steps.map((s) => f32(ref(s))), LR_TOL, `${sch.kind} at ${steps.join(", ")}`);
    opt.dispose();
    arena.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Replay, dispatch count, state

Deno.test("optim: replaying one recorded step N times equals N eager steps (and the reference)", async () => {
  const { init, grads } = problem(77);
  const make = () =>
    optim.adam({
      learningRate: optim.exponentialDecay({
        initialLearningRate: 0.05,
        decaySteps: 2,
        decayRate: 0.7,
      }),
      clipnorm: 1,
      amsgrad: true,
    });
  const eagerArena = makeArena(init), replayArena = makeArena(init);
  const eager = make(), replay = make();
  replay.build(replayArena);
  await flush();
  const specs = replay.stepSpecs();
  if (specs.length !== 2) throw new Error(`clipnorm: expected 2 dispatches, got ${specs.length}`);
  const ref = new RefOptimizer({
    kind: "adam",
    learningRate: (s) => refExponentialDecay(s, 0.05, 2, 0.7, false),
    clipnorm: 1,
    amsgrad: true,
  }, init);
  for (let s = 0; s < STEPS; s++) {
    eager.applyGradients(grads[s], eagerArena);
    replayArena.setGradients(grads[s]);
    schedule((rt) => {
      for (const spec of specs) rt.dispatch(spec); // the same specs: same bindings and uniforms
    });
    replay.advance();
    ref.step(grads[s]);
  }
  if (replay.stepSpecs() !== specs) throw new Error("stepSpecs() must return the recorded specs");
  const [a, b] = [await eagerArena.getWeights(), await replayArena.getWeights()];
  a.forEach((w, k) => assertEqualArrays(b[k], w, `replayed vs eager, parameter ${k}`));
  await compareWithReference("replayed adam", replay, replayArena, ref, STEPS);
  if ((await replay.readIterations()) !== STEPS || replay.iterations !== STEPS) {
    throw new Error("the GPU's step counter must count the replayed steps");
  }
  for (const x of [eager, replay, eagerArena, replayArena]) x.dispose();
});

Deno.test("optim: a learning rate set between replayed steps takes effect (callbacks)", async () => {
  const { init, grads } = problem(78);
  const arena = makeArena(init);
  const opt = optim.rmsprop({ learningRate: 0.01, momentum: 0.5 });
  opt.build(arena);
  await flush();
  const specs = opt.stepSpecs();
  const ref = new RefOptimizer({ kind: "rmsprop", learningRate: 0.01, momentum: 0.5 }, init);
  for (let s = 0; s < STEPS; s++) {
    if (s === 2) {
      opt.learningRate = 0.003;
      ref.setLearningRate(0.003);
    }
    arena.setGradients(grads[s]);
    schedule((rt) => {
      for (const spec of specs) rt.dispatch(spec);
    });
    opt.advance();
    ref.step(grads[s]);
  }
  if (opt.learningRate !== 0.003) throw new Error(`learningRate reads ${opt.learningRate}`);
  await compareWithReference("rmsprop with a changed learning rate", opt, arena, ref, STEPS);
  opt.dispose();
  arena.dispose();
});

Deno.test("optim: one step is one dispatch (two with a norm), whatever the number of parameters", async () => {
  const rt = await ready();
  const { init, grads } = problem(79);
  const cases: [string, () => Optimizer, number][] = [
    ["sgd", () => optim.sgd({ momentum: 0.9 }), 1],
    ["adam", () => optim.adam({ amsgrad: true }), 1],
    ["adamw", () => optim.adamw(), 1],
    ["rmsprop", () => optim.rmsprop({ centered: true, momentum: 0.1 }), 1],
    ["adagrad", () => optim.adagrad({ clipvalue: 1 }), 1],
    ["sgd clipnorm", () => optim.sgd({ clipnorm: 1 }), 2],
    ["adam globalClipnorm", () => optim.adam({ globalClipnorm: 1 }), 2],
  ];
  for (const [label, make, expected] of cases) {
    const arena = makeArena(init);
    const opt = make();
    opt.build(arena);
    arena.setGradients(grads[0]);
    await flush();
    const before = rt.recorder.pending;
    if (before !== 0) throw new Error(`${label}: ${before} commands pending after flush()`);
    opt.step(arena);
    const n = rt.recorder.pending - before;
    if (n !== expected) {
      throw new Error(`${label}: one step over ${arena.length} parameters recorded ${n} commands`);
    }
    opt.dispose();
    arena.dispose();
  }
});

Deno.test("optim: getState/setState round-trips and training continues identically", async () => {
  const { init, grads } = problem(80);
  const arena = makeArena(init);
  const opt = optim.adam({ learningRate: 0.01, amsgrad: true });
  for (let s = 0; s < 3; s++) opt.applyGradients(grads[s], arena);
  const state = await opt.getState();
  if (state.iterations !== 3) throw new Error(`iterations ${state.iterations}`);
  if (Object.keys(state.slots).join() !== "momentum,velocity,velocity_hat") {
    throw new Error(`slots ${Object.keys(state.slots)}`);
  }
  // A second arena and optimizer restored from the first.
  const arena2 = makeArena(await arena.getWeights());
  const opt2 = optim.adam({ learningRate: 0.01, amsgrad: true });
  opt2.setState(state, arena2);
  if (opt2.iterations !== 3) throw new Error(`restored iterations ${opt2.iterations}`);
  for (let s = 3; s < STEPS; s++) {
    opt.applyGradients(grads[s], arena);
    opt2.applyGradients(grads[s], arena2);
  }
  const [a, b] = [await arena.getWeights(), await arena2.getWeights()];
  a.forEach((w, k) => assertEqualArrays(b[k], w, `restored run, parameter ${k}`));
  const [s1, s2] = [await opt.getState(), await opt2.getState()];
  for (const name of Object.keys(s1.slots)) {
    s1.slots[name].forEach((v, k) => assertEqualArrays(s2.slots[name][k], v, `${name} ${k}`));
  }
  if (s2.iterations !== STEPS) throw new Error(`iterations after restore ${s2.iterations}`);
  assertWgradError(
    () => opt2.setState({ iterations: 1, slots: { momentum: [] } }),
    "value",
    ["slots", "velocity"],
    "setState with missing slots",
  );
  for (const x of [opt, opt2, arena, arena2]) x.dispose();
});

// ---------------------------------------------------------------------------------------------
// The arena

Deno.test("optim: arena tensors are ordinary tensors (views) that follow the updates", async () => {
  const w0 = tensor([[1, 2], [3, 4]]);
  const arena = new ParamArena([
    { name: "w", value: w0 },
    { name: "b", value: [0.5, -0.5] },
    { name: "z", shape: [3] },
    new Float32Array([9]),
  ]);
  w0.dispose(); // copied in
  const [w, b, z, s] = arena.params;
  if (w.shape.join() !== "2,2" || z.shape.join() !== "3" || s.shape.join() !== "1") {
    throw new Error(`shapes ${arena.shapes.map((x) => `[${x}]`).join(" ")}`);
  }
  if (arena.offsets.some((o) => o % optim.ARENA_BLOCK !== 0)) throw new Error(`${arena.offsets}`);
  const rt = await ready();
  if (arena.offsets.some((o) => (o * 4) % rt.limits.minStorageBufferOffsetAlignment !== 0)) {
    throw new Error("offsets must be multiples of minStorageBufferOffsetAlignment");
  }
  assertEqualArrays(await add(w, 1).data(), [2, 3, 4, 5], "an op on a parameter view");
  assertEqualArrays(await b.data(), [0.5, -0.5], "b.data()");
  assertEqualArrays(await z.data(), [0, 0, 0], "zeros by default");
  const opt = optim.sgd({ learningRate: 1 });
  opt.applyGradients([tensor([[1, 1], [1, 1]]), null, [1, 2, 3], [0.5]], arena);
  assertEqualArrays(await w.data(), [0, 1, 2, 3], "w after a step, read through the tensor");
  assertEqualArrays(await z.data(), [-1, -2, -3], "z after a step");
  assertEqualArrays(await arena.getWeight("b"), [0.5, -0.5], "b had no gradient");
  arena.setWeight("w", [5, 6, 7, 8]);
  arena.setWeight(3, tensor([2]));
  const all = await arena.getWeights();
  assertEqualArrays(all[0], [5, 6, 7, 8], "setWeight from numbers");
  assertEqualArrays(all[3], [2], "setWeight from a tensor");
  arena.setWeights([[1, 1, 1, 1], [2, 2], [3, 3, 3], [4]]);
  assertEqualArrays((await arena.getWeights()).flatMap((x) => [...x]), [
    1,
    1,
    1,
    1,
    2,
    2,
    3,
    3,
    3,
    4,
  ], "setWeights");
  // Gradient slots are views too: a producer may write them in place.
  arena.setGradients([null, [1, 2], null, null]);
  assertEqualArrays(await arena.gradient("b").data(), [1, 2], "gradient slot view");
  arena.zeroGradients();
  assertEqualArrays(await arena.gradient(1).data(), [0, 0], "zeroGradients");
  opt.dispose();
  arena.dispose();
  if (!w.isDisposed) throw new Error("disposing the arena disposes its tensors");
});

Deno.test("optim: keepGradients leaves the slots as they are and updates identically", async () => {
  const rng = new Rng(7);
  const init = [rng.floats(300), rng.floats(5)];
  const grads = [rng.floats(300), rng.floats(5)];
  const results: Float32Array[][] = [];
  const left: Float32Array[] = [];
  for (const keep of [false, true]) {
    const arena = new ParamArena([{ name: "w", value: init[0] }, { name: "b", value: init[1] }]);
    const opt = optim.adam({ learningRate: 0.01 });
    for (let s = 0; s < 3; s++) {
      arena.setGradients(grads);
      opt.step(arena, { keepGradients: keep });
    }
    results.push(await arena.getWeights());
    left.push(await arena.gradient("w").data() as Float32Array);
    opt.dispose();
    arena.dispose();
  }
  assertEqualArrays(results[1][0], results[0][0], "w with keepGradients");
  assertEqualArrays(results[1][1], results[0][1], "b with keepGradients");
  assertEqualArrays(left[0], new Float32Array(300), "slots cleared by default");
  assertEqualArrays(left[1], grads[0], "slots kept");
});

Deno.test("optim: arenas and optimizers give their GPU memory back", async () => {
  await flush();
  const before = memoryInfo().bytesInUse;
  const arena = new ParamArena([{ shape: [1000] }, { shape: [3, 3] }]);
  const opt = optim.adam();
  opt.applyGradients([new Float32Array(1000), new Float32Array(9)], arena);
  await flush();
  if (memoryInfo().bytesInUse <= before) throw new Error("the arena should hold GPU memory");
  opt.dispose();
  arena.dispose();
  await flush();
  const after = memoryInfo().bytesInUse;
  if (after !== before) throw new Error(`bytes in use ${before} → ${after} after dispose`);
});

Deno.test("optim: errors name the optimizer, the arena and the values", () => {
  assertWgradError(
    () => optim.sgd({ clipnorm: 1, clipvalue: 1 }),
    "value",
    ["only one of", "clipnorm=1", "clipvalue=1"],
    "two clip options",
  );
  assertWgradError(() => optim.sgd({ momentum: 1.5 }), "value", ["SGD", "momentum"], "momentum");
  assertWgradError(() => optim.adam({ beta1: 1 }), "value", ["Adam", "beta1"], "beta1 = 1");
  assertWgradError(
    () => optim.adam({ learningRate: NaN }),
    "value",
    ["learningRate"],
    "NaN learning rate",
  );
  assertWgradError(
    () => optim.piecewiseConstantDecay({ boundaries: [1, 2], values: [1, 2] }),
    "value",
    ["1 less"],
    "piecewise lengths",
  );
  assertWgradError(
    () => optim.piecewiseConstantDecay({ boundaries: [5, 2], values: [1, 2, 3] }),
    "value",
    ["increase"],
    "piecewise order",
  );
  assertWgradError(
    () => optim.exponentialDecay({ initialLearningRate: 1, decaySteps: 0, decayRate: 0.5 }),
    "value",
    ["decaySteps"],
    "decaySteps",
  );
  assertWgradError(
    () => optim.cosineDecay({ initialLearningRate: 1, decaySteps: -1 }),
    "value",
    ["decaySteps"],
    "cosine decaySteps",
  );
  const scheduled = optim.sgd({
    learningRate: optim.cosineDecay({ initialLearningRate: 1, decaySteps: 10 }),
  });
  assertWgradError(
    () => (scheduled.learningRate = 0.1),
    "value",
    ["schedule"],
    "a number replacing a schedule",
  );
  const arena = new ParamArena([{ name: "w", shape: [2, 3] }], { name: "net" });
  assertWgradError(
    () => arena.setGradients([new Float32Array(5)]),
    "shape",
    ["w", "[2, 3]", "5 values"],
    "gradient size",
  );
  assertWgradError(
    () => arena.setGradients([tensor([[1, 2], [3, 4], [5, 6]])]),
    "shape",
    ["w", "[2, 3]", "[3, 2]"],
    "gradient shape",
  );
  assertWgradError(() => arena.setGradients([]), "value", ["net", "1 parameters"], "count");
  assertWgradError(() => arena.param("v"), "value", ["net", "v", "w"], "unknown name");
  assertWgradError(
    () => new ParamArena([{ name: "k", shape: [2], value: [1, 2, 3] }]),
    "shape",
    ["k", "3 values", "[2]"],
    "initial value size",
  );
  const opt = optim.sgd();
  opt.build(arena);
  const other = new ParamArena([{ shape: [1] }], { name: "other" });
  assertWgradError(() => opt.step(other), "value", ["net", "other"], "a second arena");
  opt.dispose();
  assertWgradError(() => opt.step(), "disposed", ["SGD"], "a disposed optimizer");
  arena.dispose();
  assertWgradError(() => arena.setGradients([null]), "disposed", ["net"], "a disposed arena");
  other.dispose();
  if (!(new WgradError("value", "x") instanceof Error)) throw new Error("unreachable");
});

// ---------------------------------------------------------------------------------------------
// A realistic minimisation: least squares with `grad`

Deno.test("optim: every optimizer fits a least-squares problem with grad()", async () => {
  const rng = new Rng(2024);
  const m = 64, d = 8;
  const X = rng.floats(m * d, -1, 1);
  const wTrue = rng.floats(d, -2, 2);
  const bTrue = 0.7;
  const y = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    let s = bTrue;
    for (let j = 0; j < d; j++) s += X[i * d + j] * wTrue[j];
    y[i] = s;
  }
  const x = tensor(X, [m, d]), yt = tensor(y, [m]);
  const loss = (w: Tensor<"f32">, b: Tensor<"f32">) =>
    mean(square(sub(add(sum(mul(x, w), 1), b), yt)));
  const lossValue = async (w: Tensor<"f32">, b: Tensor<"f32">) => {
    const l = scope(() => loss(w, b));
    try {
      return (await l.data())[0];
    } finally {
      l.dispose();
    }
  };
  const cases: [string, () => Optimizer, number, number][] = [
    // [label, optimizer, steps, bound on the final loss]
    ["sgd", () => optim.sgd({ learningRate: 0.1, momentum: 0.9 }), 150, 1e-5],
    [
      "sgd nesterov clipnorm",
      () => optim.sgd({ learningRate: 0.1, momentum: 0.9, nesterov: true, clipnorm: 5 }),
      150,
      1e-4,
    ],
    ["adam", () => optim.adam({ learningRate: 0.05 }), 150, 1e-4],
    ["adamw", () => optim.adamw({ learningRate: 0.05, weightDecay: 1e-3 }), 150, 1e-4],
    ["rmsprop momentum", () => optim.rmsprop({ learningRate: 0.03, momentum: 0.5 }), 150, 1e-3],
    ["adagrad", () => optim.adagrad({ learningRate: 0.5 }), 150, 1e-5],
  ];
  for (const [label, make, steps, bound] of cases) {
    const arena = new ParamArena([{ name: "w", shape: [d] }, { name: "b", shape: [1] }]);
    const [w, b] = arena.params;
    const opt = make();
    const first = await lossValue(w, b);
    for (let s = 0; s < steps; s++) {
      const grads = await grad(() => loss(w, b), [w, b]);
      opt.applyGradients(grads, arena);
      for (const g of grads) g.dispose();
    }
    const last = await lossValue(w, b);
    if (!(last < bound) || !(last < first / 1000)) {
      throw new Error(`${label}: loss ${first} → ${last} after ${steps} steps (bound ${bound})`);
    }
    opt.dispose();
    arena.dispose();
  }
  x.dispose();
  yt.dispose();
});
