/**
 * Checkpoints and the robustness of `fit`: resuming from `model.save` + `nn.loadModel` with
 * `initialEpoch` gives bit-identical weights to an uninterrupted run (Adam with a schedule,
 * dropout, shuffling, a partial last batch); a NaN loss puts the weights of the epoch's start
 * back before fit throws; `callbacks.modelCheckpoint` (path templates, keepLast, saveBestOnly,
 * saveWeightsOnly); the same seed gives the same weights; GPU memory does not grow over 2,000
 * steps and 200 evaluate/predict calls; Ctrl-C (SIGINT) during fit saves a checkpoint that loads.
 * @module
 */
import { callbacks, flush, losses, memoryInfo, nn, optim, WgradError } from "../mod.ts";
import { readSafetensors } from "../src/io/safetensors.ts";
import { assertRejectsWgrad, Rng } from "./harness.ts";
import { assert } from "./harness_assert.ts";

const FEATURES = 4, CLASSES = 3;

function makeData(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  const x = rng.floats(n * FEATURES, -2, 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = (x[i * FEATURES] > 0 ? 1 : 0) + (x[i * FEATURES + 1] > 0.5 ? 1 : 0);
  }
  return { x, y };
}

function model(seed: number, dropout = 0.25): nn.Sequential {
  return nn.sequential([
    nn.dense(6, { activation: "relu" }),
    ...(dropout ? [nn.dropout(dropout)] : []),
    nn.dense(CLASSES),
  ], { inputShape: [FEATURES], seed });
}

function compile(m: nn.Sequential, optimizer: optim.Optimizer): void {
  m.compile({
    optimizer,
    loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
    metrics: ["accuracy"],
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_ckpt_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertBitwise(a: Float32Array[], b: Float32Array[], label: string): void {
  assert(a.length === b.length, `${label}: ${a.length} vs ${b.length} weights`);
  a.forEach((w, k) => {
    const x = new Uint32Array(w.buffer, w.byteOffset, w.length);
    const y = new Uint32Array(b[k].buffer, b[k].byteOffset, b[k].length);
    assert(x.length === y.length, `${label}: weight ${k} length`);
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== y[i]) throw new Error(`${label}: weight ${k}[${i}] ${w[i]} vs ${b[k][i]}`);
    }
  });
}

const adamScheduled = () =>
  optim.adam({
    learningRate: optim.exponentialDecay({
      initialLearningRate: 0.02,
      decaySteps: 3,
      decayRate: 0.8,
    }),
  });

// ---------------------------------------------------------------------------------------------
// Resume

Deno.test("checkpoint: 2 epochs + save + loadModel + 2 epochs (initialEpoch 2) equals 4 epochs, bit for bit", async () => {
  const { x, y } = makeData(20, 1); // batch 8: steps of 8, 8 and 4
  const fitOptions = { batchSize: 8, seed: 7, verbose: 0 as const };
  await withTempDir(async (dir) => {
    const straight = model(3);
    let resumed: nn.Model | null = null;
    const first = model(3);
    try {
      compile(straight, adamScheduled());
      await straight.fit(x, y, { ...fitOptions, epochs: 4 });
      const want = await straight.getWeights();

      compile(first, adamScheduled());
      await first.fit(x, y, { ...fitOptions, epochs: 2 });
      assert(first.epochsTrained === 2, `epochsTrained ${first.epochsTrained}`);
      await first.save(`${dir}/m`);
      const file = await readSafetensors(`${dir}/m/model.safetensors`);
      const names = [...file.tensors.keys()].sort();
      for (
        const n of ["optimizer/momentum/dense/kernel", "optimizer/velocity/dense_1/bias"]
      ) assert(names.includes(n), `${n} in ${names.join(", ")}`);
      const meta = JSON.parse(file.metadata!.training_state);
      assert(meta.epoch === 2 && meta.global_step === 6, `state ${JSON.stringify(meta)}`);
      assert(meta.optimizer.iterations === 6, `iterations ${meta.optimizer.iterations}`);
      const json = JSON.parse(await Deno.readTextFile(`${dir}/m/model.json`));
      assert(json.training_state.epoch === 2, "model.json has the training state");

      resumed = await nn.loadModel(`${dir}/m`);
      assert(resumed.epochsTrained === 2, `loaded epochsTrained ${resumed.epochsTrained}`);
      // loadWeights passes over the optimizer's tensors.
      await resumed.loadWeights(`${dir}/m/model.safetensors`);
      await resumed.fit(x, y, { ...fitOptions, epochs: 4, initialEpoch: resumed.epochsTrained });
      assertBitwise(await resumed.getWeights(), want, "resumed vs straight");
      assert((resumed.epochsTrained as number) === 4, "epochsTrained after resuming");
    } finally {
      straight.dispose();
      first.dispose();
      resumed?.dispose();
    }
  });
});

Deno.test("checkpoint: the same seed gives bit-identical weights after one epoch (dropout, shuffle)", async () => {
  const { x, y } = makeData(30, 2);
  const run = async () => {
    const m = model(5, 0.4);
    try {
      compile(m, optim.adam({ learningRate: 0.01 }));
      await m.fit(x, y, { epochs: 1, batchSize: 8, seed: 9, verbose: 0 });
      return await m.getWeights();
    } finally {
      m.dispose();
    }
  };
  assertBitwise(await run(), await run(), "two runs with seed 9");
});

// ---------------------------------------------------------------------------------------------
// NaN

Deno.test("checkpoint: a NaN loss restores the weights of the epoch's start, then fit throws naming epoch and step", async () => {
  const { x, y } = makeData(40, 3);
  const m = model(4, 0);
  const opt = optim.sgd({ learningRate: 0.05 });
  try {
    compile(m, opt);
    await m.fit(x, y, { epochs: 1, batchSize: 4, seed: 1, verbose: 0 });
    const good = await m.getWeights();
    opt.learningRate = 1e30;
    const e = await assertRejectsWgrad(
      () => m.fit(x, y, { epochs: 3, batchSize: 4, seed: 1, verbose: 0 }),
      "value",
      ["epoch 1", "step", "restored"],
      "learning rate 1e30",
    );
    assert(/loss became (NaN|Infinity)/.test(e.message), e.message);
    assertBitwise(await m.getWeights(), good, "weights after the NaN");

    // terminateOnNaN: false trains on and reports the loss as it is.
    const h = await m.fit(x, y, {
      epochs: 1,
      batchSize: 4,
      seed: 1,
      verbose: 0,
      terminateOnNaN: false,
    });
    assert(!Number.isFinite(h.history.loss[0]), `loss ${h.history.loss[0]}`);
  } finally {
    m.dispose();
    opt.dispose();
  }
});

Deno.test("checkpoint: a NaN loss also restores the optimizer's moments and steps, the moving statistics and the dropout stream", async () => {
  const { x, y } = makeData(40, 3);
  const build = () =>
    nn.sequential([
      nn.dense(6, { activation: "relu" }),
      nn.batchNorm(),
      nn.dropout(0.3),
      nn.dense(CLASSES),
    ], { inputShape: [FEATURES], seed: 5 });
  const a = build(), b = build();
  const optA = optim.adam({ learningRate: 0.01 }), optB = optim.adam({ learningRate: 0.01 });
  const fo = { epochs: 1, batchSize: 4, seed: 1, verbose: 0 as const };
  try {
    compile(a, optA);
    compile(b, optB);
    await a.fit(x, y, fo);
    await b.fit(x, y, fo);
    const weights = await a.getWeights(); // with the moving mean and variance
    const state = await optA.getState();
    optA.learningRate = 1e30;
    await assertRejectsWgrad(
      () => a.fit(x, y, fo),
      "value",
      ["epoch 1", "restored", "optimizer's state", "moving statistics"],
      "Adam at learning rate 1e30",
    );
    assertBitwise(await a.getWeights(), weights, "weights and moving statistics after the NaN");
    const after = await optA.getState();
    assert(
      after.iterations === state.iterations,
      `iterations ${after.iterations} after the NaN, ${state.iterations} before`,
    );
    for (const name of optA.slotNames) {
      assertBitwise(after.slots[name], state.slots[name], `Adam's ${name} after the NaN`);
    }
    // Training goes on as if the failed epoch had not run (dropout masks included).
    optA.learningRate = 0.01;
    await a.fit(x, y, fo);
    await b.fit(x, y, fo);
    assertBitwise(await a.getWeights(), await b.getWeights(), "the epoch after the NaN");
  } finally {
    a.dispose();
    b.dispose();
    optA.dispose();
    optB.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// modelCheckpoint

Deno.test("checkpoint: formatCheckpointPath follows Python's format specs", () => {
  const f = callbacks.formatCheckpointPath;
  const logs = { loss: 0.123456, val_loss: 1.5, accuracy: 0.5 };
  assert(f("m-{epoch}", 3, logs) === "m-3", "epoch");
  assert(f("m-{epoch:02d}", 3, logs) === "m-03", "02d");
  assert(f("m-{epoch:03d}-{val_loss:.4f}", 12, logs) === "m-012-1.5000", ".4f");
  assert(f("{loss:.2e}", 1, logs) === "1.23e-01", `.2e: ${f("{loss:.2e}", 1, logs)}`);
  assert(f("{accuracy:.1%}", 1, logs) === "50.0%", "%");
  assert(f("{accuracy}", 1, logs) === "0.5", "plain");
  let threw = false;
  try {
    f("{val_accuracy}", 1, logs);
  } catch (e) {
    threw = e instanceof WgradError && e.message.includes("val_accuracy");
  }
  assert(threw, "a missing figure is an error naming it");
  assert(f("{val_accuracy:.3f}", 1, logs, "nan") === "nan", "missing → placeholder");
  // Python's g: 6 significant digits, scientific below 1e-4 and from 10^precision on.
  const g: [number, string, string][] = [
    [1234567, "g", "1.23457e+06"],
    [1.234e-5, "g", "1.234e-05"],
    [0.5, "g", "0.5"],
    [123.456, ".2g", "1.2e+02"],
    [0.0001, "g", "0.0001"],
    [100000, "g", "100000"],
    [1e6, "g", "1e+06"],
    [0.123456789, ".0g", "0.1"],
    [-0.00012345, ".3g", "-0.000123"],
    [2.5, "08.3g", "000002.5"],
  ];
  for (const [v, spec, want] of g) {
    const got = f(`{x:${spec}}`, 1, { x: v });
    assert(got === want, `{x:${spec}} of ${v}: ${got}, Python writes ${want}`);
  }
  // {batch}: 1-based, given for checkpoints saved every saveFreq steps; an error otherwise.
  assert(f("e{epoch}-b{batch:03d}", 2, logs, undefined, 17) === "e2-b017", "batch");
  threw = false;
  try {
    f("e{epoch}-b{batch}", 2, logs);
  } catch (e) {
    threw = e instanceof WgradError && e.message.includes("saveFreq");
  }
  assert(threw, "{batch} at an epoch's end is an error naming saveFreq");
});

Deno.test("checkpoint: modelCheckpoint with a numeric saveFreq saves every n steps, named by {batch}", async () => {
  const { x, y } = makeData(400, 5); // 50 steps of 8
  await withTempDir(async (dir) => {
    const m = model(7);
    try {
      compile(m, optim.adam({ learningRate: 0.01 }));
      const ckpt = callbacks.modelCheckpoint(`${dir}/e{epoch}-b{batch:03d}.safetensors`, {
        saveFreq: 16,
        saveWeightsOnly: true,
      });
      await m.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: [ckpt] });
      // The running figures come back after steps 8, 16, 24 and 32 (then every ~100 ms): the
      // first two checkpoints are after batches 16 and 32; later ones depend on the timing.
      const names = ckpt.saved.map((p) => p.slice(dir.length + 1));
      assert(
        names[0] === "e1-b016.safetensors" && names[1] === "e1-b032.safetensors",
        `checkpoints: ${names.join(", ")}`,
      );
      for (const p of ckpt.saved) {
        const t = await readSafetensors(p);
        assert(t.tensors.size > 0, `${p} holds weights`);
      }
    } finally {
      m.dispose();
    }
  });
});

Deno.test("checkpoint: modelCheckpoint writes {epoch:02d} directories, keeps the last 2, and they load", async () => {
  const { x, y } = makeData(16, 4);
  await withTempDir(async (dir) => {
    const m = model(6);
    const loaded: nn.Model[] = [];
    try {
      compile(m, optim.adam({ learningRate: 0.01 }));
      const ckpt = callbacks.modelCheckpoint(`${dir}/e{epoch:02d}-{loss:.3f}`, { keepLast: 2 });
      const best = callbacks.modelCheckpoint(`${dir}/best.safetensors`, {
        monitor: "loss",
        saveBestOnly: true,
        saveWeightsOnly: true,
      });
      const h = await m.fit(x, y, {
        epochs: 3,
        batchSize: 8,
        verbose: 0,
        callbacks: [ckpt, best],
      });
      const listed = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      const want = h.history.loss.slice(1).map((l, i) => `e0${i + 2}-${l.toFixed(3)}`);
      assert(
        JSON.stringify(listed) === JSON.stringify(["best.safetensors", ...want]),
        `files: ${listed.join(", ")}; expected best.safetensors, ${want.join(", ")}`,
      );
      assert(ckpt.saved.length === 2, `saved ${ckpt.saved}`);
      assert(best.best === Math.min(...h.history.loss), `best ${best.best}`);
      const last = await nn.loadModel(ckpt.saved[1]);
      loaded.push(last);
      assert(last.epochsTrained === 3, `epochsTrained ${last.epochsTrained}`);
      assertBitwise(await last.getWeights(), await m.getWeights(), "last checkpoint");
      const fromBest = model(99);
      loaded.push(fromBest);
      await fromBest.loadWeights(`${dir}/best.safetensors`);
      // No stray temporary files.
      for (const d of ckpt.saved) {
        for (const e of Deno.readDirSync(d)) assert(!e.name.endsWith(".tmp"), e.name);
      }
    } finally {
      m.dispose();
      for (const l of loaded) l.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Memory

Deno.test("checkpoint: 2,000 training steps and 200 evaluate/predict calls do not grow GPU memory", async () => {
  const { x, y } = makeData(800, 5); // batch 8: 100 steps per epoch
  const m = model(7);
  const opt = optim.adam({ learningRate: 0.001 });
  try {
    compile(m, opt);
    await m.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    await m.evaluate(x.subarray(0, 40 * FEATURES), y.subarray(0, 40), { batchSize: 8 });
    (await m.predict(x.subarray(0, 40 * FEATURES), { batchSize: 8 })).dispose();
    await flush();
    const before = memoryInfo().bytesInUse;
    await m.fit(x, y, { epochs: 20, batchSize: 8, verbose: 0 });
    await flush();
    const afterFit = memoryInfo().bytesInUse;
    for (let i = 0; i < 100; i++) {
      await m.evaluate(x.subarray(0, 40 * FEATURES), y.subarray(0, 40), { batchSize: 8 });
      (await m.predict(x.subarray(0, 40 * FEATURES), { batchSize: 8 })).dispose();
    }
    await flush();
    const afterEval = memoryInfo().bytesInUse;
    assert(
      afterFit === before && afterEval === before,
      `bytes in use: ${before} before, ${afterFit} after 2,000 steps, ${afterEval} after 200 ` +
        "evaluate/predict calls",
    );
  } finally {
    m.dispose();
    opt.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// SIGINT

Deno.test({
  name: "checkpoint: Ctrl-C (SIGINT) during fit saves the checkpoint, fit throws Interrupted",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      const script = new URL("./fixtures/sigint_fit.ts", import.meta.url).pathname;
      const child = new Deno.Command("deno", {
        args: [
          "run",
          "--quiet",
          "--allow-read=.,/tmp",
          `--allow-write=${dir}`,
          "--allow-env",
          script,
          `${dir}/ckpt`,
        ],
        stdout: "piped",
        stderr: "piped",
        env: { XDG_RUNTIME_DIR: "/tmp" },
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes("training")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      assert(out.includes("training"), `child output: ${out}`);
      child.kill("SIGINT");
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      const status = await child.status;
      const err = new TextDecoder().decode(
        await new Response(child.stderr).arrayBuffer(),
      );
      assert(status.code === 3, `exit code ${status.code}; stdout ${out}; stderr ${err}`);
      assert(/interrupted \(SIGINT\)/.test(out), `stdout: ${out}`);
      const m = await nn.loadModel(`${dir}/ckpt`);
      try {
        assert(m.epochsTrained >= 1, `epochsTrained ${m.epochsTrained}`);
        const w = await m.getWeights();
        assert(w.every((a) => a.every(Number.isFinite)), "finite weights");
      } finally {
        m.dispose();
      }
    });
  },
});
