/**
 * The `deno task datasets` tool: its summary of a data set, and, run as a subprocess that may not
 * read the system directories, its fall-back to the bundled sample, said on stdout.
 */
import { datasets } from "../mod.ts";
import { asciiImage, summarize } from "../datasets/cli.ts";
import { assert } from "./datasets_util.ts";

Deno.test("cli: the summary names the files, the class balance and shows an image", async () => {
  const ds = await datasets.fashionMnist({ sample: true });
  const text = summarize(ds, 1234);
  assert.match(
    text,
    /^fashion-mnist \(bundled sample\): 3000 training and 1000 test samples of \[28, 28\], 10 classes \(loaded in 1\.23 s\)/,
  );
  assert.match(text, /train-images-idx3-ubyte\.gz: bundled, sha256/);
  assert.match(text, /T-shirt\/top 300\/100, Trouser 300\/100/);
  assert.equal(asciiImage(Uint8Array.of(0, 255, 128, 64), [2, 2]), "  @@\n++::");
});

Deno.test("cli: without the full set, the tool says it uses the bundled sample", async () => {
  const cli = new URL("../datasets/cli.ts", import.meta.url).pathname;
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command("deno", {
    args: ["run", "--quiet", `--allow-read=${root}`, cli, "--offline"],
    env: { PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(
    stdout,
    /^fashion-mnist: the full set is not available here .*using the bundled sample: 3000 training and 1000 test images\n/,
  );
  assert.match(stdout, /fashion-mnist \(bundled sample\): 3000 training and 1000 test samples/);
});
