/**
 * Atomic file replacement (src/io/atomic.ts): a child process saving a multi-megabyte weights
 * file in a loop is killed with SIGKILL at random moments, and after every kill the file must
 * parse and hold one complete generation, never older than the last one seen; errors for a
 * missing directory, a path through a regular file, a read-only directory, a directory in the
 * way and a permission not granted name the path and the cause, and leave no temporary file.
 * No GPU is needed.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { describeFsError, writeFileAtomic } from "../src/io/atomic.ts";
import { decodeSafetensors } from "../src/io/safetensors.ts";
import { valueAt } from "./fixtures/atomic_save_loop.ts";
import { assert, assertMatch } from "./harness_assert.ts";

const CHILD = new URL("./fixtures/atomic_save_loop.ts", import.meta.url).pathname;

async function rejects(p: Promise<unknown>, re: RegExp, label: string): Promise<WgradError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof WgradError)) throw new Error(`${label}: expected a WgradError, got ${e}`);
    assertMatch(e.message, re);
    return e;
  }
  throw new Error(`${label}: expected an error matching ${re}`);
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_atomic_" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Kill during save

Deno.test("writeFileAtomic: 60 SIGKILLs during saves leave a complete file every time", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/weights.safetensors`;
    const KILLS = 60;
    const BYTES = 2 * 2 ** 20;
    const t0 = performance.now();
    let lastGen = 0, changed = 0, seed = 987654321;
    const rnd = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    for (let k = 0; k < KILLS; k++) {
      const child = new Deno.Command("deno", {
        args: ["run", `--allow-read=${dir}`, `--allow-write=${dir}`, CHILD, path, String(BYTES)],
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      }).spawn();
      // Wait for "ready" (the child has started), then let it save for a random while.
      const reader = child.stdout.getReader();
      let text = "";
      while (!text.includes("ready")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      assert(text.includes("ready"), `child ${k} did not start: ${text}`);
      // The first generation must exist before a kill can be judged against it.
      const delay = k === 0 ? 300 : 2 + rnd() * 60;
      await new Promise((r) => setTimeout(r, delay));
      child.kill("SIGKILL");
      const status = await child.status;
      await child.stdout.cancel().catch(() => {});
      const err = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
      assert(
        status.signal === "SIGKILL",
        `child ${k} ended with ${JSON.stringify(status)}: ${err}`,
      );
      // The target parses and holds one whole generation, never an older one.
      const bytes = await Deno.readFile(path);
      const file = decodeSafetensors(bytes, path);
      const gen = Number(file.metadata?.gen);
      assert(Number.isInteger(gen) && gen >= 1, `kill ${k}: generation ${file.metadata?.gen}`);
      assert(gen >= lastGen, `kill ${k}: generation went back from ${lastGen} to ${gen}`);
      const w = file.tensors.get("w")!.toFloat32();
      assert(w.length === BYTES / 4, `kill ${k}: ${w.length} values`);
      for (let i = 0; i < w.length; i++) {
        if (w[i] !== valueAt(gen, i)) {
          throw new Error(`kill ${k}: value ${i} is ${w[i]}, not generation ${gen}'s`);
        }
      }
      if (gen !== lastGen) changed++;
      lastGen = gen;
    }
    const names = await listDir(dir);
    const stray = names.filter((n) => n.endsWith(".tmp"));
    assert(names.includes("weights.safetensors"), "the target exists");
    assert(changed >= KILLS / 4, `only ${changed} of ${KILLS} kills came after a new save`);
    console.log(
      `    ${KILLS} kills, 0 corrupt; generation ${lastGen}, changed between kills ${changed} ` +
        `times; ${stray.length} stray temporary files from killed writes; ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s`,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Plain behaviour

Deno.test("writeFileAtomic: replaces content, keeps the mode, leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/a.bin`;
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    await Deno.chmod(path, 0o640);
    await writeFileAtomic(path, new Uint8Array([4, 5]));
    const got = await Deno.readFile(path);
    assert(got.length === 2 && got[0] === 4 && got[1] === 5, `content ${got}`);
    assert(((await Deno.stat(path)).mode! & 0o777) === 0o640, "mode kept");
    await writeFileAtomic(`${dir}/new.bin`, new Uint8Array(0), { mode: 0o600 });
    assert(((await Deno.stat(`${dir}/new.bin`)).mode! & 0o777) === 0o600, "mode given");
    // Concurrent writers to one path: unique temporary names, one whole result.
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => writeFileAtomic(path, new Uint8Array(1000).fill(i))),
    );
    const last = await Deno.readFile(path);
    assert(last.length === 1000 && last.every((b) => b === last[0]), "one writer's bytes");
    const names = await listDir(dir);
    assert(names.join(",") === "a.bin,new.bin", `directory holds ${names}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Errors

Deno.test("writeFileAtomic: a missing directory names the path and the cause", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/missing/sub/w.safetensors`;
    const e = await rejects(
      writeFileAtomic(path, new Uint8Array(4)),
      /cannot write ".*\/missing\/sub\/w\.safetensors" \(creating a temporary file in its directory\): the directory does not exist/,
      "missing directory",
    );
    assert(e.cause instanceof Deno.errors.NotFound, "the cause is kept");
  });
});

Deno.test("writeFileAtomic: a path through a regular file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await rejects(
      writeFileAtomic(`${dir}/file/w.safetensors`, new Uint8Array(4)),
      /cannot write ".*\/file\/w\.safetensors" .*a component of the path is not a directory/,
      "ENOTDIR",
    );
  });
});

Deno.test("writeFileAtomic: the target is a directory; the temporary file is removed", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/w.safetensors`);
    await Deno.writeTextFile(`${dir}/w.safetensors/keep`, "x");
    await rejects(
      writeFileAtomic(`${dir}/w.safetensors`, new Uint8Array(4)),
      /\(renaming the temporary file over it\): the target is a directory/,
      "EISDIR",
    );
    const names = await listDir(dir);
    assert(names.join(",") === "w.safetensors", `leftovers: ${names}`);
  });
});

Deno.test("writeFileAtomic: a read-only directory (when permissions apply to this user)", async () => {
  await withTempDir(async (dir) => {
    const ro = `${dir}/ro`;
    await Deno.mkdir(ro);
    await Deno.writeFile(`${ro}/w.bin`, new Uint8Array([9]));
    await Deno.chmod(ro, 0o555);
    // Root (and CAP_DAC_OVERRIDE) write through mode bits: find out instead of assuming.
    let enforced = true;
    try {
      await Deno.writeFile(`${ro}/probe`, new Uint8Array(0));
      await Deno.remove(`${ro}/probe`);
      enforced = false;
    } catch {
      // Mode bits are enforced.
    }
    if (!enforced) {
      console.log("    running with permission override (root): chmod 0o555 cannot be tested");
      return;
    }
    await rejects(
      writeFileAtomic(`${ro}/w.bin`, new Uint8Array(4)),
      /cannot write ".*\/ro\/w\.bin" .*permission denied: the directory or file is read-only/,
      "EACCES",
    );
    const kept = await Deno.readFile(`${ro}/w.bin`);
    assert(kept.length === 1 && kept[0] === 9, "the old file is intact");
    assert((await listDir(ro)).join(",") === "w.bin", "no temporary file");
  });
});

Deno.test("writeFileAtomic: write permission not granted to the program", async () => {
  const state = await Deno.permissions.query({ name: "write", path: "./wgrad_not_granted" });
  if (state.state === "granted") {
    console.log("    write access to the repository is granted here: case not testable");
    return;
  }
  await rejects(
    writeFileAtomic("./wgrad_not_granted/w.bin", new Uint8Array(4)),
    /cannot write "\.\/wgrad_not_granted\/w\.bin" .*write access was not granted to this program/,
    "NotCapable",
  );
});

Deno.test("describeFsError: disk full, read-only file system and others in words", () => {
  const coded = (code: string, msg: string) => Object.assign(new Error(msg), { code });
  assertMatch(
    describeFsError(coded("ENOSPC", "No space left on device (os error 28)")),
    /^the disk is full \(ENOSPC/,
  );
  assertMatch(
    describeFsError(coded("EROFS", "Read-only file system (os error 30)")),
    /^the file system is read-only \(EROFS/,
  );
  assertMatch(describeFsError(coded("EACCES", "x")), /^permission denied/);
  assertMatch(describeFsError(new Deno.errors.PermissionDenied("x")), /^permission denied/);
  assertMatch(describeFsError(new Deno.errors.NotFound("x")), /directory does not exist/);
  assertMatch(describeFsError(new Error("odd")), /^odd$/);
});

Deno.test("writeFileAtomic: bad arguments", async () => {
  await rejects(writeFileAtomic("", new Uint8Array(0)), /is not a file path/, "empty path");
  await rejects(writeFileAtomic("/tmp/", new Uint8Array(0)), /is not a file path/, "dir path");
  await rejects(
    writeFileAtomic("/tmp/x", "text" as unknown as Uint8Array),
    /data must be a Uint8Array/,
    "string data",
  );
});
