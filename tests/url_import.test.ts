/**
 * The engine loads over HTTP, as users import it: a local server serves the repository, a
 * subprocess runs a script that imports `./mod.ts` by URL and runs kernels, with nothing but
 * `--allow-net=127.0.0.1` (the shaders come in as text imports, not file reads). The server records
 * every request, so the test also checks that only the module graph's .ts and .wgsl files were
 * fetched, each once, from this host only.
 * @module
 */

function fail(msg: string): never {
  throw new Error(msg);
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) fail(msg);
}

/** The repository root (this file is in tests/). */
const ROOT = new URL("../", import.meta.url);

/** The script the subprocess runs, served at /__smoke.ts next to mod.ts. */
const SMOKE = `import { add, gpuInfo, sum, tensor } from "./mod.ts";
const x = tensor([[1, 2, 3], [4, 5, 6]]);
const y = add(x, 10);
const s = sum(y, 1);
console.log("y " + JSON.stringify(Array.from(await y.data())));
console.log("s " + JSON.stringify(Array.from(await s.data())));
console.log("adapter " + (await gpuInfo()).description);
`;

/**
 * The static module graph of `entry` (paths relative to the repository root): every relative
 * `import … from`, `export … from` and side-effect import, recursively. `code` leaves out
 * type-only imports (`import type`/`export type`), which a run without type checking may skip.
 */
async function moduleGraph(entry: string): Promise<{ all: Set<string>; code: Set<string> }> {
  const all = new Set<string>(), code = new Set<string>();
  const re =
    /(?:^|[;\n])\s*(import|export)\s+(type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?["']([^"']+)["']/g;
  const visit = async (path: string, isCode: boolean): Promise<void> => {
    if (isCode ? code.has(path) : all.has(path)) return;
    all.add(path);
    if (isCode) code.add(path);
    if (!path.endsWith(".ts")) return;
    const text = await Deno.readTextFile(new URL("." + path, ROOT));
    for (const m of text.matchAll(re)) {
      const spec = m[3];
      if (!spec.startsWith(".")) fail(`${path} imports "${spec}", which is not relative`);
      const target = new URL(spec, new URL("." + path, ROOT)).pathname.slice(
        ROOT.pathname.length - 1,
      );
      await visit(target, isCode && m[2] === undefined);
    }
  };
  await visit(entry, true);
  return { all, code };
}

interface RequestRecord {
  method: string;
  url: string;
  host: string | null;
  status: number;
}

Deno.test("mod.ts imported by URL runs kernels with only --allow-net=127.0.0.1", async () => {
  const requests: RequestRecord[] = [];
  const ac = new AbortController();
  let port = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const record: RequestRecord = {
        method: req.method,
        url: req.url,
        host: req.headers.get("host"),
        status: 404,
      };
      requests.push(record);
      const path = decodeURIComponent(url.pathname);
      let body: Uint8Array<ArrayBuffer> | string | null = null;
      let type = "text/plain; charset=utf-8";
      if (req.method !== "GET" || url.host !== `127.0.0.1:${port}`) {
        record.status = 403;
      } else if (path === "/__smoke.ts") {
        body = SMOKE;
        type = "application/typescript; charset=utf-8";
      } else if (
        /^\/[\w./-]+\.(ts|wgsl)$/.test(path) && !path.split("/").includes("..")
      ) {
        try {
          body = await Deno.readFile(new URL("." + path, ROOT));
          if (path.endsWith(".ts")) type = "application/typescript; charset=utf-8";
        } catch {
          body = null;
        }
      }
      if (body === null) {
        return new Response("not found", { status: record.status });
      }
      record.status = 200;
      return new Response(body, { headers: { "content-type": type } });
    },
  );
  port = server.addr.port;
  const origin = `http://127.0.0.1:${port}`;
  try {
    const cmd = new Deno.Command("deno", {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--no-config",
        "--no-lock",
        "--no-prompt",
        "--reload", // fetch every module afresh, so that the server sees the whole graph
        `${origin}/__smoke.ts`,
      ],
      env: {
        XDG_RUNTIME_DIR: "/tmp",
        NO_COLOR: "1",
        // Any fetch from another host goes to this server as a proxy request, where it is
        // recorded (and refused) instead of reaching the network.
        HTTP_PROXY: origin,
        HTTPS_PROXY: origin,
        NO_PROXY: "127.0.0.1",
        // Deno checks dl.deno.land for a newer release now and then; not part of the import.
        DENO_NO_UPDATE_CHECK: "1",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    });
    const out = await cmd.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    const context = `\nstdout:\n${stdout}\nstderr:\n${stderr}\nrequests:\n${
      requests.map((r) => `${r.method} ${r.url} → ${r.status}`).join("\n")
    }`;
    assert(out.success, `the subprocess exited with code ${out.code}${context}`);
    const lines = stdout.trim().split("\n");
    assert(lines.includes("y [11,12,13,14,15,16]"), `add(x, 10) printed wrongly${context}`);
    assert(lines.includes("s [36,45]"), `sum(y, 1) printed wrongly${context}`);
    assert(
      lines.some((l) => l.startsWith("adapter ") && l.length > "adapter ".length),
      `the adapter is named${context}`,
    );
    assert(!/NotCapable|Requires \w+ access/.test(stderr), `a permission was needed${context}`);

    // Only this host, only GET, only .ts and .wgsl files of the repository, each once.
    for (const r of requests) {
      assert(r.method === "GET", `a ${r.method} request was made: ${r.url}${context}`);
      assert(
        r.url.startsWith(origin + "/") && r.host === `127.0.0.1:${port}`,
        `a request for another host: ${r.url} (Host: ${r.host})${context}`,
      );
      assert(r.status === 200, `a request for a missing file: ${r.url} → ${r.status}${context}`);
    }
    const paths = requests.map((r) => new URL(r.url).pathname);
    const dupes = paths.filter((p, i) => paths.indexOf(p) !== i);
    assert(dupes.length === 0, `fetched more than once: ${dupes.join(", ")}${context}`);
    assert(paths[0] === "/__smoke.ts", `the script is fetched first${context}`);
    const fetched = new Set(paths.slice(1));
    for (const p of fetched) {
      assert(/\.(ts|wgsl)$/.test(p), `a file that is neither .ts nor .wgsl: ${p}${context}`);
    }
    const graph = await moduleGraph("/mod.ts");
    for (const p of fetched) {
      assert(graph.all.has(p), `fetched ${p}, which mod.ts's module graph does not contain`);
    }
    for (const p of graph.code) {
      assert(fetched.has(p), `${p} is in mod.ts's module graph but was not fetched${context}`);
    }
    assert(
      [...fetched].some((p) => p.startsWith("/shaders/") && p.endsWith(".wgsl")),
      `the shaders were fetched as modules${context}`,
    );
  } finally {
    ac.abort();
    await server.finished;
  }
});
