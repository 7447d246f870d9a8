/**
 * The datasets module imported by URL: it needs no Node built-ins and no import map, and the
 * bundled sample comes over HTTP from next to the module, verified, fetched once per file.
 */
import { assert } from "./datasets_util.ts";

const ROOT = new URL("../", import.meta.url);

const SCRIPT = `import * as datasets from "./datasets/mod.ts";
const ds = await datasets.fashionMnist({ sample: true });
console.log(JSON.stringify({
  train: ds.train.length,
  test: ds.test.length,
  counts: ds.train.classCounts(),
  files: ds.files.map((f) => [f.path.slice(f.path.lastIndexOf("/") + 1), f.origin, f.verified]),
}));
`;

Deno.test("url: the sample loads when wgrad is imported by URL, with only --allow-net", async () => {
  const hits = new Map<string, number>();
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (path === "/__sample.ts") {
        return new Response(SCRIPT, { headers: { "content-type": "application/typescript" } });
      }
      if (!/^\/[\w./-]+\.(ts|wgsl|gz)$/.test(path) || path.split("/").includes("..")) {
        return new Response("no", { status: 404 });
      }
      try {
        const body = await Deno.readFile(new URL("." + path, ROOT));
        const type = path.endsWith(".ts")
          ? "application/typescript"
          : path.endsWith(".gz")
          ? "application/gzip"
          : "text/plain";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("no", { status: 404 });
      }
    },
  );
  try {
    const out = await new Deno.Command("deno", {
      args: [
        "run",
        "--quiet",
        "--no-config",
        "--no-lock",
        "--no-prompt",
        "--reload",
        "--allow-net=127.0.0.1",
        `http://127.0.0.1:${server.addr.port}/__sample.ts`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const got = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(got.train, 3000);
    assert.equal(got.test, 1000);
    assert.deepEqual(got.counts, new Array(10).fill(300));
    assert.deepEqual(got.files[0], ["train-images-idx3-ubyte.gz", "bundled", "sha256"]);
    assert.equal(hits.get("/datasets/fashion-mnist-sample/train-images-idx3-ubyte.gz"), 1);
    for (const path of hits.keys()) assert.ok(!path.includes("node_modules"), path);
  } finally {
    ac.abort();
    await server.finished;
  }
});
