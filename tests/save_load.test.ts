/**
 * Model files: `saveWeights`/`loadWeights` (safetensors named `layer/weight`, Keras layouts) round
 * trip bit for bit, and a file that does not match is rejected with one error listing every
 * missing, unexpected and mismatched weight, leaving the model unchanged; `save(dir)` and
 * `nn.loadModel(dir)` rebuild a trained, compiled model (Dense layers with initializers,
 * regularizers and activations, Dropout, Reshape, Activation, Flatten) that predicts bitwise as
 * the original and evaluates alike; malformed model.json files are rejected naming the file and
 * the field.
 * @module
 */
import { nn, optim } from "../mod.ts";
import { losses } from "../mod.ts";
import { encodeSafetensors, readSafetensors } from "../src/io/safetensors.ts";
import { assertRejectsWgrad, Rng } from "./harness.ts";
import { assert } from "./harness_assert.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_model_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Bitwise equality of float32 arrays (NaN patterns and -0 included). */
function assertBitwise(a: Float32Array, b: Float32Array, label: string): void {
  assert(a.length === b.length, `${label}: ${a.length} vs ${b.length} values`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) throw new Error(`${label}: value ${i} is ${a[i]} vs ${b[i]}`);
  }
}

async function assertSameWeights(a: nn.Model, b: nn.Model, label: string) {
  const wa = await a.getWeights(), wb = await b.getWeights();
  assert(wa.length === wb.length, `${label}: ${wa.length} vs ${wb.length} weights`);
  wa.forEach((w, i) => assertBitwise(w, wb[i], `${label}: weight ${i}`));
}

function mlp(seed: number, options: { bias?: boolean; hidden?: number } = {}): nn.Sequential {
  return nn.sequential([
    nn.dense(options.hidden ?? 5, { activation: "relu" }),
    nn.dense(3, { useBias: options.bias ?? true }),
  ], { inputShape: [4], seed });
}

// ---------------------------------------------------------------------------------------------
// saveWeights / loadWeights

Deno.test("saveWeights/loadWeights: Keras names and layouts, bitwise round trip", async () => {
  await withTempDir(async (dir) => {
    const a = mlp(1), b = mlp(2);
    try {
      const path = `${dir}/w.safetensors`;
      await a.saveWeights(path);
      const file = await readSafetensors(path);
      const listed = [...file.tensors.values()].map((t) => `${t.name} ${t.dtype} [${t.shape}]`);
      assert(
        listed.join("; ") ===
          "dense/kernel F32 [4,5]; dense/bias F32 [5]; dense_1/kernel F32 [5,3]; dense_1/bias F32 [3]",
        `tensors: ${listed.join("; ")}`,
      );
      assert(file.metadata?.format === "wgrad" && file.metadata.version === "1", "metadata");
      const aw = await a.getWeights();
      assertBitwise(file.tensors.get("dense/kernel")!.toFloat32(), aw[0], "kernel [in, out]");
      await b.loadWeights(path);
      await assertSameWeights(a, b, "loaded");
      // Saving over the file again replaces it.
      await b.saveWeights(path);
      assert((await readSafetensors(path)).tensors.size === 4, "overwritten");
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

Deno.test("loadWeights: missing, unexpected and mismatched weights in one error; model unchanged", async () => {
  await withTempDir(async (dir) => {
    const saved = mlp(1, { bias: false, hidden: 6 });
    const target = mlp(2);
    try {
      const path = `${dir}/w.safetensors`;
      await saved.saveWeights(path);
      // Add an unexpected tensor and one with an integer dtype.
      const file = await readSafetensors(path);
      const entries = [...file.tensors.values()].map((
        t,
      ) => [t.name, { data: t.toFloat32(), shape: t.shape }] as const);
      const extra = encodeSafetensors([
        ...entries,
        ["optimizer/iterations", { data: new Int32Array([3]), shape: [] }],
      ]);
      await Deno.writeFile(`${dir}/extra.safetensors`, extra);
      const before = await target.getWeights();
      await assertRejectsWgrad(
        () => target.loadWeights(`${dir}/extra.safetensors`),
        "value",
        [
          `model "sequential".loadWeights("${dir}/extra.safetensors")`,
          "(5 problems)",
          "mismatch: dense/kernel: expected [4, 5] F32, found [4, 6] F32",
          "mismatch: dense/bias: expected [5] F32, found [6] F32",
          "mismatch: dense_1/kernel: expected [5, 3] F32, found [6, 3] F32",
          "missing: dense_1/bias (expected [3] F32)",
          "unexpected: optimizer/iterations ([] I32, not a weight of the model)",
        ],
        "mismatch",
      );
      const after = await target.getWeights();
      before.forEach((w, i) => assertBitwise(w, after[i], `unchanged weight ${i}`));
      // A weight stored with an integer dtype.
      const ints = encodeSafetensors([
        ["dense/kernel", { data: new Int32Array(20), shape: [4, 5] }],
        ["dense/bias", { data: new Float32Array(5), shape: [5] }],
        ["dense_1/kernel", { data: new Float32Array(15), shape: [5, 3] }],
        ["dense_1/bias", { data: new Float32Array(3), shape: [3] }],
      ]);
      await Deno.writeFile(`${dir}/ints.safetensors`, ints);
      await assertRejectsWgrad(
        () => target.loadWeights(`${dir}/ints.safetensors`),
        "value",
        ["(1 problem)", "dense/kernel: expected [4, 5] F32, found [4, 5] I32 (not a float dtype)"],
        "dtype",
      );
      const still = await target.getWeights();
      before.forEach((w, i) => assertBitwise(w, still[i], `unchanged after dtype error ${i}`));
      // A missing file and a corrupt one.
      await assertRejectsWgrad(
        () => target.loadWeights(`${dir}/nope.safetensors`),
        "value",
        ["nope.safetensors", "no such file"],
        "missing file",
      );
      await Deno.writeFile(`${dir}/bad.safetensors`, new Uint8Array(5));
      await assertRejectsWgrad(
        () => target.loadWeights(`${dir}/bad.safetensors`),
        "value",
        ["bad.safetensors", "shorter than the 8-byte header length"],
        "corrupt file",
      );
    } finally {
      saved.dispose();
      target.dispose();
    }
  });
});

Deno.test("loadWeights: F16, BF16 and F64 files are converted to float32", async () => {
  await withTempDir(async (dir) => {
    const model = nn.sequential([nn.dense(2)], { inputShape: [1] });
    try {
      const bytes = encodeSafetensors([
        ["dense/kernel", { data: new Uint16Array([0x3c00, 0xc100]), shape: [1, 2], dtype: "F16" }],
        ["dense/bias", { data: new Float64Array([0.1, -1e-3]), shape: [2] }],
      ]);
      await Deno.writeFile(`${dir}/h.safetensors`, bytes);
      await model.loadWeights(`${dir}/h.safetensors`);
      const [k, b] = await model.getWeights();
      assertBitwise(k, new Float32Array([1, -2.5]), "F16 kernel");
      assertBitwise(b, new Float32Array([0.1, -1e-3]), "F64 bias");
      const bf = encodeSafetensors([
        ["dense/kernel", { data: new Uint16Array([0x4040, 0x3f00]), shape: [1, 2], dtype: "BF16" }],
        ["dense/bias", { data: new Float32Array([0, 0]), shape: [2] }],
      ]);
      await Deno.writeFile(`${dir}/bf.safetensors`, bf);
      await model.loadWeights(`${dir}/bf.safetensors`);
      assertBitwise((await model.getWeights())[0], new Float32Array([3, 0.5]), "BF16 kernel");
    } finally {
      model.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// save / loadModel

function bigModel(): nn.Sequential {
  return nn.sequential([
    nn.reshape([12]),
    nn.dense(16, {
      activation: "leaky_relu",
      alpha: 0.1,
      kernelInitializer: "he_normal",
      biasInitializer: nn.initializers.constant(0.05),
      kernelRegularizer: nn.regularizers.l2(1e-3),
      biasRegularizer: nn.regularizers.l1l2({ l1: 1e-4, l2: 2e-4 }),
    }),
    nn.dropout(0.25),
    nn.dense(8, {
      activation: "elu",
      kernelInitializer: nn.initializers.randomNormal({ stddev: 0.2 }),
      kernelRegularizer: nn.regularizers.l1(1e-4),
      name: "hidden",
    }),
    nn.reshape([2, 4]),
    nn.flatten(),
    nn.activation("tanh"),
    nn.dense(3, { useBias: false, name: "logits" }),
  ], { inputShape: [3, 4], seed: 77, name: "saved_mlp" });
}

Deno.test("save/loadModel: a trained, compiled model predicts bitwise alike and evaluates alike", async () => {
  await withTempDir(async (dir) => {
    const rng = new Rng(3);
    const N = 40;
    const x = rng.floats(N * 12, -2, 2);
    const y = Int32Array.from({ length: N }, () => rng.int(0, 2));
    const model = bigModel();
    let loaded: nn.Model | null = null;
    try {
      model.compile({
        optimizer: optim.adam({
          learningRate: optim.exponentialDecay({
            initialLearningRate: 0.01,
            decaySteps: 10,
            decayRate: 0.9,
          }),
          clipnorm: 1,
        }),
        loss: losses.sparseCategoricalCrossentropy({ fromLogits: true }),
        metrics: ["accuracy"],
      });
      await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
      await model.save(`${dir}/m`);
      const names = [];
      for await (const e of Deno.readDir(`${dir}/m`)) names.push(e.name);
      assert(names.sort().join(",") === "model.json,model.safetensors", `files: ${names}`);
      const json = JSON.parse(await Deno.readTextFile(`${dir}/m/model.json`));
      assert(json.config.name === "saved_mlp" && json.config.seed === 77, "name and seed");
      assert(json.compile.optimizer.class_name === "Adam", "optimizer class");
      assert(json.compile.optimizer.config.clipnorm === 1, "clipnorm");
      assert(
        json.compile.optimizer.config.learning_rate.class_name === "ExponentialDecay",
        "schedule",
      );
      assert(json.compile.loss.config.from_logits === true, "from_logits");
      loaded = await nn.loadModel(`${dir}/m`);
      assert(loaded.name === "saved_mlp" && loaded.seed === 77, "loaded name and seed");
      assert(
        loaded.layers.map((l) => `${l.name}:${l.className}`).join(",") ===
          model.layers.map((l) => `${l.name}:${l.className}`).join(","),
        "layers",
      );
      loaded.layers.forEach((l, i) => {
        const a = JSON.stringify(l.getConfig()), b = JSON.stringify(model.layers[i].getConfig());
        assert(a === b, `layer ${l.name} config: ${a} vs ${b}`);
      });
      assert(loaded.summary(null) === model.summary(null), "summary");
      await assertSameWeights(model, loaded, "weights");
      const p1 = await model.predict(x), p2 = await loaded.predict(x);
      try {
        assertBitwise(
          await p1.data() as Float32Array,
          await p2.data() as Float32Array,
          "predict",
        );
      } finally {
        p1.dispose();
        p2.dispose();
      }
      const e1 = await model.evaluate(x, y), e2 = await loaded.evaluate(x, y);
      assert(JSON.stringify(e1) === JSON.stringify(e2), `evaluate ${JSON.stringify([e1, e2])}`);
      // The loaded model trains (its compile settings were restored).
      await loaded.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    } finally {
      model.dispose();
      loaded?.dispose();
    }
  });
});

Deno.test("save/loadModel: uncompiled and name-compiled models; saving again replaces", async () => {
  await withTempDir(async (dir) => {
    const a = mlp(9);
    let b: nn.Model | null = null, c: nn.Model | null = null;
    try {
      await a.save(`${dir}/plain/`);
      b = await nn.loadModel(`${dir}/plain`);
      assert(
        JSON.parse(await Deno.readTextFile(`${dir}/plain/model.json`)).compile === null,
        "not compiled",
      );
      await assertSameWeights(a, b, "uncompiled");
      a.compile({ optimizer: "sgd", loss: "mse" });
      await a.save(`${dir}/plain`);
      const json = JSON.parse(await Deno.readTextFile(`${dir}/plain/model.json`));
      assert(json.compile.optimizer.class_name === "sgd", "name kept");
      c = await nn.loadModel(`${dir}/plain`);
      await c.evaluate(new Float32Array(8), new Float32Array(6));
    } finally {
      a.dispose();
      b?.dispose();
      c?.dispose();
    }
  });
});

Deno.test("loadModel: malformed model.json and weights name the file and the field", async () => {
  await withTempDir(async (dir) => {
    const model = mlp(4);
    try {
      await model.save(`${dir}/m`);
      const good = JSON.parse(await Deno.readTextFile(`${dir}/m/model.json`));
      const file = `${dir}/m/model.json`;
      const cases: [string, (j: Record<string, unknown>) => unknown, string[]][] = [
        ["not JSON", () => "{not json", ["not valid JSON"]],
        ["array", () => [], ["(top level): expected an object"]],
        ["format", (j) => ({ ...j, format: "keras" }), ['format: expected "wgrad"']],
        ["version", (j) => ({ ...j, format_version: "9" }), ["format_version: version 9"]],
        [
          "unknown layer",
          (j) => {
            const c = structuredClone(j) as { config: { layers: { class_name: string }[] } };
            c.config.layers[1].class_name = "Conv3D";
            return c;
          },
          ['config.layers[1].class_name: unknown layer class "Conv3D"'],
        ],
        [
          "bad units",
          (j) => {
            const c = structuredClone(j) as {
              config: { layers: { config: { units: unknown } }[] };
            };
            c.config.layers[0].config.units = "five";
            return c;
          },
          ['config.layers[0].config.units: expected a number, got "five"'],
        ],
        [
          "negative units",
          (j) => {
            const c = structuredClone(j) as {
              config: { layers: { config: { units: unknown } }[] };
            };
            c.config.layers[0].config.units = -2;
            return c;
          },
          ["config.layers[0].config", "units must be a positive integer"],
        ],
        [
          "bad activation",
          (j) => {
            const c = structuredClone(j) as {
              config: { layers: { config: { activation: unknown } }[] };
            };
            c.config.layers[0].config.activation = "swishy";
            return c;
          },
          ["config.layers[0].config", 'unknown activation "swishy"'],
        ],
        [
          "unknown initializer",
          (j) => {
            const c = structuredClone(j) as {
              config: { layers: { config: { kernel_initializer: unknown } }[] };
            };
            c.config.layers[0].config.kernel_initializer = { class_name: "Orthogonal", config: {} };
            return c;
          },
          ["config.layers[0].config.kernel_initializer.class_name: unknown initializer"],
        ],
        [
          "no layers",
          (j) => ({ ...j, config: { ...(j.config as object), layers: [] } }),
          ["config.layers: expected a non-empty array"],
        ],
        [
          "missing seed",
          (j) => {
            const c = structuredClone(j) as { config: Record<string, unknown> };
            delete c.config.seed;
            return c;
          },
          ["config.seed: missing"],
        ],
        [
          "bad optimizer",
          (j) => ({
            ...j,
            compile: { optimizer: { class_name: "Lion", config: { lr: 1 } }, loss: "x" },
          }),
          ['compile.optimizer.class_name: unknown optimizer "Lion"'],
        ],
        [
          "weights outside",
          (j) => ({ ...j, weights: "../x.safetensors" }),
          ["weights: must be a file name inside the model's directory"],
        ],
        [
          "shape change",
          (j) => {
            const c = structuredClone(j) as { config: { input_shape: number[] } };
            c.config.input_shape = [7];
            return c;
          },
          ["model.safetensors", "mismatch: dense/kernel: expected [7, 5] F32, found [4, 5] F32"],
        ],
      ];
      for (const [label, edit, parts] of cases) {
        const v = edit(good);
        await Deno.writeTextFile(file, typeof v === "string" ? v : JSON.stringify(v));
        await assertRejectsWgrad(
          () => nn.loadModel(`${dir}/m`),
          "value",
          label === "shape change" ? parts : [`model file "${file}"`, ...parts],
          label,
        );
      }
      await Deno.writeTextFile(file, JSON.stringify(good));
      await Deno.remove(`${dir}/m/model.safetensors`);
      await assertRejectsWgrad(
        () => nn.loadModel(`${dir}/m`),
        "value",
        ["model.safetensors", "no such file"],
        "no weights",
      );
      await assertRejectsWgrad(
        () => nn.loadModel(`${dir}/none`),
        "value",
        ["none/model.json", "no such file"],
        "no model",
      );
    } finally {
      model.dispose();
    }
  });
});
