/**
 * The examples run end to end as `deno run` scripts (small settings), so that they cannot rot:
 * each is checked for the figures it must print.
 * @module
 */
import { assert, assertMatch } from "./harness_assert.ts";
import { datasets } from "../mod.ts";

/** The final line every training example prints, as a number. */
function finalAccuracy(text: string): number {
  const m = /test accuracy: (0\.\d{4}|1\.0000)$/.exec(text.trimEnd());
  assert(m, `no final "test accuracy" line:\n${text}`);
  return Number(m[1]);
}

/** Made-up MNIST files (digit-like stripes) in `dir`: n training and m test images. */
async function fakeMnist(dir: string, n: number, m: number): Promise<void> {
  const images = (k: number) =>
    Uint8Array.from({ length: k * 784 }, (_, i) => ((i % 28) * 9 + Math.floor(i / 784) * 7) & 0xff);
  const labels = (k: number) => Uint8Array.from({ length: k }, (_, i) => i % 10);
  for (const [pre, k] of [["train", n], ["t10k", m]] as const) {
    await datasets.writeIdxFile(`${dir}/${pre}-images-idx3-ubyte.gz`, {
      data: images(k),
      shape: [k, 28, 28],
    });
    await datasets.writeIdxFile(`${dir}/${pre}-labels-idx1-ubyte.gz`, {
      data: labels(k),
      shape: [k],
    });
  }
}

async function runExample(args: string[]): Promise<string> {
  const out = await new Deno.Command("deno", {
    args: ["run", "--no-prompt", ...args],
    env: { XDG_RUNTIME_DIR: "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const err = new TextDecoder().decode(out.stderr);
  assert(out.success, `deno run ${args.join(" ")} failed (${out.code}):\n${text}\n${err}`);
  return text;
}

Deno.test("examples/gradient_tape.ts prints 6 and dW, db matching the hand derivation", async () => {
  const text = await runExample(["examples/gradient_tape.ts"]);
  assertMatch(text, /d\(x²\)\/dx at x = 3: 6\n/);
  const m = /largest difference from the hand derivation: ([0-9.e+-]+)/.exec(text);
  assert(m && Number(m[1]) < 1e-5, `hand derivation differs: ${text}`);
  assertMatch(text, /dW \[3,2\]/);
  assertMatch(text, /db \[2\]/);
});

Deno.test("examples/four_pixel_camera.ts: hand-set weights and training to accuracy 1", async () => {
  const text = await runExample(["examples/four_pixel_camera.ts", "--epochs", "300"]);
  assertMatch(
    text,
    /horizontal pattern → solid 0\.178, vertical 0\.178, diagonal 0\.178, horizontal 0\.465/,
  );
  assertMatch(text, /RMSprop: .*accuracy 1\.0000/);
  assertMatch(text, /Adagrad: .*accuracy 1\.0000/);
});

Deno.test("examples/fashion_mnist_mlp.ts trains on the bundled sample and reports test accuracy", async () => {
  const text = await runExample([
    "--allow-read=.",
    "examples/fashion_mnist_mlp.ts",
    "--sample",
    "--epochs",
    "1",
    "--verbose",
    "2",
  ]);
  assertMatch(text, /bundled sample/);
  assertMatch(text, /Total params: 101,770/);
  assertMatch(text, /94\/94 \[=+\]/);
  const m = /test accuracy: (0\.\d{4})\n?$/.exec(text.trimEnd());
  assert(m, `no final "test accuracy" line:\n${text}`);
  assert(Number(m[1]) > 0.6, `test accuracy ${m[1]} after one epoch on the sample`);
});

Deno.test("examples/lenet_fashion.ts: the seed's LeNet trains, prints feature maps and saves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_lenet_" });
  try {
    const text = await runExample([
      "--allow-read=.,/tmp",
      `--allow-write=${dir}`,
      "examples/lenet_fashion.ts",
      "--sample",
      "--limit",
      "256",
      "--epochs",
      "1",
      "--verbose",
      "2",
      "--show-maps",
      "--save",
      `${dir}/lenet`,
    ]);
    assertMatch(text, /Total params: 545,546/);
    assertMatch(text, /conv2d_2 \(7×7×120\), channels 0–3:/);
    assertMatch(text, /2\/2 \[=+\]/);
    const m = /test accuracy: (0\.\d{4})$/.exec(text.trimEnd());
    assert(m, `no final "test accuracy" line:\n${text}`);
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/lenet/model.json`));
    assert(saved.config.layers.length === 8, "the saved LeNet has 8 layers");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples/cnn_fashion.ts: the small CNN trains a few steps and reports test accuracy", async () => {
  const text = await runExample([
    "--allow-read=.",
    "examples/cnn_fashion.ts",
    "--sample",
    "--limit",
    "192",
    "--epochs",
    "1",
    "--verbose",
    "2",
  ]);
  assertMatch(text, /batch_normalization_1 \(BatchNormalization\)/);
  assertMatch(text, /Non-trainable params: 192 /);
  assertMatch(text, /3\/3 \[=+\].*val_accuracy/);
  assert(
    /test accuracy: 0\.\d{4}$/.test(text.trimEnd()),
    `no final "test accuracy" line:\n${text}`,
  );
});

Deno.test("examples/mnist_mlp.ts: trains on MNIST files when given, and falls back to Fashion-MNIST", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_mnist_" });
  try {
    await fakeMnist(dir, 256, 64);
    const text = await runExample([
      "--allow-read=.,/tmp,/usr/share/datasets",
      "examples/mnist_mlp.ts",
      "--data-dir",
      dir,
      "--no-verify",
      "--epochs",
      "1",
      "--verbose",
      "2",
    ]);
    assertMatch(text, /^mnist: 256 training and 64 test images/m);
    assertMatch(text, /Total params: 669,706/);
    assertMatch(text, /dropout_1 \(Dropout\)/);
    finalAccuracy(text);
    const fallback = await runExample([
      "--allow-read=.,/tmp,/usr/share/datasets",
      "examples/mnist_mlp.ts",
      "--data-dir",
      `${dir}/none`,
      "--limit",
      "256",
      "--epochs",
      "1",
      "--no-dropout",
      "--verbose",
      "0",
    ]);
    assertMatch(fallback, /MNIST is not available here; the same recipe runs on Fashion-MNIST/);
    assert(!/Dropout/.test(fallback), "--no-dropout still has dropout layers");
    finalAccuracy(fallback);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples/notmnist_deep_mlp.ts: trains on a made-up notMNIST tarball; says how to get the data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_notmnist_" });
  try {
    const entries: datasets.TarInput[] = [];
    for (let c = 0; c < 10; c++) {
      for (let k = 0; k < 12; k++) {
        const samples = Array.from({ length: 784 }, (_, i) => ((i % 28) < 3 * c ? 255 : k) & 0xff);
        entries.push({
          path: `notMNIST_small/${"ABCDEFGHIJ"[c]}/img${k}.png`,
          data: await datasets.encodePng({ width: 28, height: 28, samples }),
        });
      }
    }
    await Deno.writeFile(
      `${dir}/notMNIST_small.tar.gz`,
      await datasets.gzip(datasets.encodeTar(entries)),
    );
    const text = await runExample([
      "--allow-read=.,/tmp",
      "examples/notmnist_deep_mlp.ts",
      "--data-dir",
      dir,
      "--no-verify",
      "--hidden",
      "32,16,8",
      "--activation",
      "elu",
      "--epochs",
      "2",
      "--batch-size",
      "16",
      "--verbose",
      "2",
    ]);
    assertMatch(text, /notMNIST: 102 training and 18 test images/);
    assertMatch(text, /dense_3 \(Dense\) +\(None, 10\)/);
    finalAccuracy(text);
    // --large: trains on the large tarball, tests on the whole small one.
    await Deno.writeFile(
      `${dir}/notMNIST_large.tar.gz`,
      await datasets.gzip(datasets.encodeTar(
        entries.map((e) => ({ ...e, path: e.path.replace("notMNIST_small", "notMNIST_large") })),
      )),
    );
    const large = await runExample([
      "--allow-read=.,/tmp",
      "examples/notmnist_deep_mlp.ts",
      "--data-dir",
      dir,
      "--no-verify",
      "--large",
      "--hidden",
      "16",
      "--epochs",
      "1",
      "--verbose",
      "2",
    ]);
    assertMatch(large, /notMNIST: 120 training and 120 test images/);
    finalAccuracy(large);
    const out = await new Deno.Command("deno", {
      args: [
        "run",
        "--no-prompt",
        "--allow-read",
        "--allow-env",
        "examples/notmnist_deep_mlp.ts",
        "--data-dir",
        `${dir}/none`,
      ],
      env: { XDG_RUNTIME_DIR: "/tmp", WGRAD_CACHE: `${dir}/cache` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert(!out.success, "a missing data set must end the example with an error status");
    assertMatch(err, /notMNIST_small\.tar\.gz/);
    assertMatch(err, /--data-dir DIR/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples/lenet_experiments.ts prints every variant in one table", async () => {
  const text = await runExample([
    "--allow-read=.",
    "examples/lenet_experiments.ts",
    "--sample",
    "--limit",
    "128",
    "--epochs",
    "1",
    "--verbose",
    "0",
  ]);
  for (const v of ["lenet ", "wide ", "deep ", "dense "]) {
    assertMatch(text, new RegExp(`^${v} .*\\d+ s$`, "m"));
  }
  assertMatch(text, /test accuracy per epoch/);
  finalAccuracy(text);
});

Deno.test("examples answer --help", async () => {
  for (
    const ex of [
      "fashion_mnist_mlp.ts",
      "four_pixel_camera.ts",
      "gradient_tape.ts",
      "lenet_fashion.ts",
      "cnn_fashion.ts",
      "mnist_mlp.ts",
      "notmnist_deep_mlp.ts",
      "lenet_experiments.ts",
    ]
  ) {
    const text = await runExample([`examples/${ex}`, "--help"]);
    assert(text.length > 20, `${ex} --help printed nothing`);
  }
});
