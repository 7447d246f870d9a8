/**
 * Where files come from: the caller's directory, the cache, system directories, then downloads
 * (served by a local HTTP server on 127.0.0.1), verified by SHA-256 and renamed into the cache
 * atomically. A partial or unverified file is never used and never left behind.
 */
import { datasets } from "../mod.ts";
import { gzipHeaderBytes, parseGzipHeader } from "../datasets/gzip.ts";
import { sha256Bytes } from "../datasets/fetch.ts";
import { assert, ls, rejectsWith, serve, tempDir, TestRng } from "./datasets_util.ts";

const { locateFiles, DatasetNotFoundError } = datasets;

const r = new TestRng(5);
const DATA = r.bytes(300_000);
const OTHER = r.bytes(1000);

function file(
  name: string,
  data: Uint8Array | null,
  base: string,
  extra: Partial<datasets.RemoteFile> = {},
): datasets.RemoteFile {
  return {
    name,
    urls: [`${base}/canonical/${name}`],
    ...(data ? { sha256: sha256Bytes(data), size: data.length } : {}),
    ...extra,
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Options that keep a test to its own directories. */
function opts(cacheDir: string, extra: datasets.FetchOptions = {}): datasets.FetchOptions {
  return { cacheDir, systemDirs: [], mirrors: [], progress: false, ...extra };
}

Deno.test("fetch: downloads into the cache, verified and renamed atomically; then uses the cache", async () => {
  await using tmp = await tempDir();
  await using srv = serve({ "/canonical/a.bin": DATA });
  const f = file("a.bin", DATA, srv.base);
  const progress: datasets.DownloadProgress[] = [];
  const [got] = await locateFiles("set", [f], opts(tmp.dir, { progress: (p) => progress.push(p) }));
  assert.equal(got.origin, "download");
  assert.equal(got.verified, "sha256");
  assert.equal(got.path, `${tmp.dir}/set/a.bin`);
  assert.deepEqual(await Deno.readFile(got.path), DATA);
  assert.deepEqual(await ls(`${tmp.dir}/set`), ["a.bin"]); // no temporary file left
  assert.ok(
    progress.length >= 1 && progress.at(-1)!.done && progress.at(-1)!.bytes === DATA.length,
  );
  assert.equal(progress.at(-1)!.total, DATA.length);
  const [again] = await locateFiles("set", [f], opts(tmp.dir));
  assert.equal(again.origin, "cache");
  assert.equal(again.verified, "sha256");
  assert.equal(srv.hits.get("/canonical/a.bin"), 1);
});

Deno.test("fetch: a mirror is tried first; a failing URL falls through to the next", async () => {
  await using tmp = await tempDir();
  await using srv = serve({ "/canonical/a.bin": DATA, "/m2/set/a.bin": DATA });
  const f = file("a.bin", DATA, srv.base);
  const [got] = await locateFiles(
    "set",
    [f],
    opts(tmp.dir, { mirrors: [`${srv.base}/m1/`, `${srv.base}/m2`] }),
  );
  assert.equal(got.origin, "download");
  assert.equal(srv.hits.get("/m1/set/a.bin"), 1); // 404
  assert.equal(srv.hits.get("/m2/set/a.bin"), 1);
  assert.equal(srv.hits.get("/canonical/a.bin"), undefined);
  // The environment variable works as the option does.
  await using tmp2 = await tempDir();
  Deno.env.set("WGRAD_DATASET_MIRROR", `${srv.base}/m1, ${srv.base}/m2`);
  try {
    const [viaEnv] = await locateFiles("set", [f], {
      cacheDir: tmp2.dir,
      systemDirs: [],
      progress: false,
    });
    assert.equal(viaEnv.origin, "download");
    assert.equal(srv.hits.get("/m2/set/a.bin"), 2);
  } finally {
    Deno.env.delete("WGRAD_DATASET_MIRROR");
  }
});

Deno.test("fetch: a checksum mismatch, a dropped connection or a wrong size leave nothing behind", async () => {
  await using tmp = await tempDir();
  await using srv = serve({
    "/canonical/wrong.bin": OTHER,
    "/canonical/cut.bin": { truncateAt: 100_000, body: DATA },
    "/canonical/short.bin": DATA.subarray(0, 1000),
  });
  const cases: [datasets.RemoteFile, string][] = [
    [
      file("wrong.bin", DATA, srv.base, { size: undefined }),
      "checksum mismatch: SHA-256 is " + sha256Bytes(OTHER),
    ],
    [file("cut.bin", DATA, srv.base), "cut.bin: error reading a body"],
    [
      file("short.bin", DATA, srv.base),
      "the server announces 1000 bytes, the published file has 300000",
    ],
  ];
  for (const [f, msg] of cases) {
    const e = await rejectsWith(
      locateFiles("set", [f], opts(tmp.dir)),
      `set: cannot find ${f.name}`,
      msg,
    );
    assert.ok(e instanceof DatasetNotFoundError);
    assert.deepEqual(e.missing, [f.name]);
  }
  assert.deepEqual(await ls(`${tmp.dir}/set`), []);
});

Deno.test("fetch: without a published checksum, the SHA-256 is recorded on first use and enforced after", async () => {
  await using tmp = await tempDir();
  await using srv = serve({ "/canonical/t.bin": DATA });
  let checked = 0;
  const f = file("t.bin", null, srv.base, {
    check: () => void checked++ as unknown as Promise<void>,
  });
  const [first] = await locateFiles("set", [f], opts(tmp.dir));
  assert.equal(first.verified, "first-use");
  assert.equal(checked, 1);
  const sums = await Deno.readTextFile(`${tmp.dir}/set/SHA256SUMS`);
  assert.equal(sums, `${sha256Bytes(DATA)}  t.bin\n`);
  const [second] = await locateFiles("set", [f], opts(tmp.dir));
  assert.equal(second.verified, "recorded");
  // A cached file that no longer matches its record is removed and downloaded again.
  await Deno.writeFile(`${tmp.dir}/set/t.bin`, OTHER);
  const [third] = await locateFiles("set", [f], opts(tmp.dir));
  assert.equal(third.origin, "download");
  assert.deepEqual(await Deno.readFile(third.path), DATA);
  // A structural check that fails keeps the download out of the cache.
  const g = file("u.bin", null, srv.base, {
    urls: [`${srv.base}/canonical/t.bin`],
    check: () => Promise.reject(new Error("not a valid file")),
  });
  await rejectsWith(locateFiles("set", [g], opts(tmp.dir)), "not a valid file");
  assert.deepEqual(await ls(`${tmp.dir}/set`), ["SHA256SUMS", "t.bin"]);
});

Deno.test("fetch: the places in order — caller's directory, cache, system directories", async () => {
  await using tmp = await tempDir();
  const [dir, cache, sys] = ["dir", "cache", "sys"].map((d) => `${tmp.dir}/${d}`);
  for (const d of [dir, `${cache}/set`, sys]) await Deno.mkdir(d, { recursive: true });
  const f = file("a.bin", DATA, "http://127.0.0.1:9");
  for (const d of [dir, `${cache}/set`, sys]) await Deno.writeFile(`${d}/a.bin`, DATA);
  const o = opts(cache, { dir, systemDirs: [sys], download: false });
  assert.equal((await locateFiles("set", [f], o))[0].origin, "dir");
  await Deno.remove(`${dir}/a.bin`);
  assert.equal((await locateFiles("set", [f], o))[0].origin, "cache");
  await Deno.remove(`${cache}/set/a.bin`);
  const [s] = await locateFiles("set", [f], o);
  assert.equal(s.origin, "system");
  assert.equal(s.path, `${sys}/a.bin`);
  // An uncompressed alternative in a local directory is accepted, checked by its reader only.
  const g = file("b.gz", DATA, "http://127.0.0.1:9", { alternatives: ["b"] });
  await Deno.writeFile(`${sys}/b`, OTHER);
  const [alt] = await locateFiles("set", [g], o);
  assert.equal(alt.verified, "structural");
  assert.equal(alt.path, `${sys}/b`);
  // With checksums turned off, local files are taken as they are.
  await Deno.writeFile(`${dir}/a.bin`, OTHER);
  assert.equal((await locateFiles("set", [f], { ...o, verify: false }))[0].verified, "unverified");
});

Deno.test("fetch: a corrupt file is an error in the caller's directory, skipped elsewhere", async () => {
  await using tmp = await tempDir();
  const [dir, cache, sys] = ["dir", "cache", "sys"].map((d) => `${tmp.dir}/${d}`);
  for (const d of [dir, `${cache}/set`, sys]) await Deno.mkdir(d, { recursive: true });
  await using srv = serve({ "/canonical/a.bin": DATA });
  const f = file("a.bin", DATA, srv.base);
  await Deno.writeFile(`${dir}/a.bin`, OTHER);
  await rejectsWith(
    locateFiles("set", [f], opts(cache, { dir })),
    `${dir}/a.bin: checksum mismatch: SHA-256 is ${
      sha256Bytes(OTHER)
    }, the published file's is ${f.sha256}`,
  );
  // In the cache: removed, then downloaded again.
  await Deno.writeFile(`${cache}/set/a.bin`, OTHER);
  const [c] = await locateFiles("set", [f], opts(cache));
  assert.equal(c.origin, "download");
  // In a system directory: not used, and said so when nothing else works.
  await Deno.writeFile(`${sys}/a.bin`, OTHER);
  await Deno.remove(`${cache}/set/a.bin`);
  await rejectsWith(
    locateFiles("set", [f], opts(cache, { systemDirs: [sys], download: false })),
    `system directory ${sys}: a.bin: checksum mismatch`,
    "not used",
    "download: turned off",
  );
  assert.deepEqual(await Deno.readFile(`${sys}/a.bin`), OTHER); // never removed
});

Deno.test("fetch: a gzip file whose header was rewritten (as Debian does) matches the published SHA-256", async () => {
  await using tmp = await tempDir();
  const body = (await datasets.gzip(DATA)).subarray(10); // deflate data and trailer
  const canonicalHeader = { mtime: 1504176606, fileName: "a-ubyte", xfl: 0, os: 3 };
  const canonical = concat(gzipHeaderBytes(canonicalHeader), body);
  const repacked = concat(gzipHeaderBytes({ mtime: 1591347949, xfl: 0, os: 3 }), body);
  assert.equal(parseGzipHeader(repacked, "r")!.fileName, undefined);
  const f = file("a.gz", canonical, "http://127.0.0.1:9", { gzipHeader: canonicalHeader });
  const o = opts(`${tmp.dir}/cache`, { systemDirs: [tmp.dir], download: false });
  await Deno.writeFile(`${tmp.dir}/a.gz`, canonical);
  assert.equal((await locateFiles("set", [f], o))[0].verified, "sha256");
  await Deno.writeFile(`${tmp.dir}/a.gz`, repacked);
  assert.equal((await locateFiles("set", [f], o))[0].verified, "sha256-repackaged");
  // One changed byte of compressed data is still a mismatch.
  const damaged = repacked.slice();
  damaged[100] ^= 1;
  await Deno.writeFile(`${tmp.dir}/a.gz`, damaged);
  await rejectsWith(locateFiles("set", [f], o), "a.gz: checksum mismatch");
});

Deno.test("fetch: the not-found error names every place tried and how to get the data", async () => {
  await using tmp = await tempDir();
  const f = file("a.bin", DATA, "http://127.0.0.1:9");
  f.urls = ["https://data.example.org/a.bin"];
  const e = await rejectsWith(
    locateFiles("set", [f], {
      cacheDir: `${tmp.dir}/c`,
      dir: `${tmp.dir}/d`,
      systemDirs: ["/nonexistent/x"],
      progress: false,
    }, {
      debianPackage: "dataset-set",
      debianDir: "/usr/share/datasets/set",
    }),
    "set: cannot find a.bin. Places tried, in order:",
    `1. directory ${tmp.dir}/d (option dir): not there`,
    `2. cache ${tmp.dir}/c/set: not there`,
    "3. system directory /nonexistent/x: not readable by this process (run with --allow-read=/nonexistent/x)",
    "4. download: data.example.org: network access not allowed (run with --allow-net=data.example.org)",
    "https://data.example.org/a.bin",
    `put it in ${tmp.dir}/c/set`,
    "sudo apt install dataset-set",
  );
  assert.ok(e instanceof DatasetNotFoundError);
  await rejectsWith(
    locateFiles("set", [f], opts(`${tmp.dir}/c`, { download: false })),
    "download: turned off",
  );
});

Deno.test("fetch: concurrent downloads of the same file both succeed and leave one file", async () => {
  await using tmp = await tempDir();
  await using srv = serve({ "/canonical/a.bin": { delayMs: 50, body: DATA } });
  const f = file("a.bin", DATA, srv.base);
  const [a, b] = await Promise.all([
    locateFiles("set", [f], opts(tmp.dir)),
    locateFiles("set", [f], opts(tmp.dir)),
  ]);
  assert.equal(a[0].path, b[0].path);
  assert.deepEqual(await ls(`${tmp.dir}/set`), ["a.bin"]);
  assert.deepEqual(await Deno.readFile(a[0].path), DATA);
});

Deno.test("fetch: an aborted download removes its temporary file", async () => {
  await using tmp = await tempDir();
  await using srv = serve({ "/canonical/a.bin": { delayMs: 200, body: DATA } });
  const f = file("a.bin", DATA, srv.base);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(locateFiles("set", [f], opts(tmp.dir, { signal: ac.signal })));
  assert.deepEqual(await ls(`${tmp.dir}/set`), []);
});
