/**
 * Atomic file replacement: write a temporary file next to the target, flush it to the disk,
 * rename it over the target and flush the directory. A process killed at any point leaves either
 * the old file or the new one, never a mixture (a killed write may leave a stray
 * `.<name>.*.tmp` file beside the target).
 * @module
 */
import { WgradError } from "../errors.ts";

/** Options of {@linkcode writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /**
   * Permission bits of a new file (before the umask); by default an existing target's mode is
   * kept and a new file gets 0o666 minus the umask.
   */
  mode?: number;
}

/**
 * Explains a file-system error in words: disk full (ENOSPC), read-only or not writable
 * (EROFS/EACCES/EPERM), missing directory (NotFound), a path component that is a file (ENOTDIR),
 * a directory in the way, or a Deno permission not granted.
 */
export function describeFsError(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  const msg = e instanceof Error ? e.message : String(e);
  if (code === "ENOSPC") return `the disk is full (ENOSPC: ${msg})`;
  if (code === "EDQUOT") return `the disk quota is exhausted (EDQUOT: ${msg})`;
  if (code === "EROFS") return `the file system is read-only (EROFS: ${msg})`;
  if (e instanceof Deno.errors.NotCapable) {
    // Deno.rename needs read and write access to both paths.
    const kind = /Requires read access/.test(msg) ? "read" : "write";
    return `${kind} access was not granted to this program (run it with --allow-${kind} for ` +
      `this path${
        kind === "read" ? "; saving renames a temporary file, which needs both" : ""
      }): ${msg}`;
  }
  if (e instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    return `permission denied: the directory or file is read-only or not writable (${msg})`;
  }
  if (e instanceof Deno.errors.NotFound) return `the directory does not exist (${msg})`;
  if (e instanceof Deno.errors.NotADirectory) {
    return `a component of the path is not a directory (${msg})`;
  }
  if (e instanceof Deno.errors.IsADirectory || code === "EISDIR") {
    return `the target is a directory (${msg})`;
  }
  return msg;
}

/**
 * Explains why a file could not be read: missing (with `missingHint` appended), read permission
 * not granted, permission denied, a directory; otherwise the error's own message.
 */
export function describeReadError(e: unknown, missingHint = ""): string {
  if (e instanceof Deno.errors.NotFound) return `no such file${missingHint}`;
  if (e instanceof Deno.errors.NotCapable) {
    return "read access not granted (run with --allow-read for it)";
  }
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory";
  return e instanceof Error ? e.message : String(e);
}

function split(path: string): { dir: string; base: string } {
  const i = path.lastIndexOf("/");
  if (i < 0) return { dir: ".", base: path };
  return { dir: i === 0 ? "/" : path.slice(0, i), base: path.slice(i + 1) };
}

function uniqueSuffix(): string {
  const r = crypto.getRandomValues(new Uint8Array(6));
  return `${Deno.pid}-${Date.now().toString(36)}-${
    Array.from(r, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

/**
 * Replaces the file at `path` with `data` atomically: the bytes go to a uniquely named temporary
 * file in the same directory, which is flushed to the disk (fsync) and renamed over `path`; then
 * the directory is flushed where the platform allows. On failure the temporary file is removed
 * and a {@linkcode WgradError} names the path, the step and the cause (disk full, read-only,
 * missing directory, permission not granted).
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  if (typeof path !== "string" || path === "" || path.endsWith("/")) {
    throw new WgradError("value", `writeFileAtomic: "${String(path)}" is not a file path`);
  }
  if (!(data instanceof Uint8Array)) {
    throw new WgradError("value", `writeFileAtomic "${path}": data must be a Uint8Array`);
  }
  const { dir, base } = split(path);
  const tmp = `${dir === "/" ? "" : dir}/.${base}.${uniqueSuffix()}.tmp`;
  let mode = options.mode;
  if (mode === undefined) {
    try {
      mode = (await Deno.stat(path)).mode ?? undefined;
      if (mode !== undefined) mode &= 0o7777;
    } catch {
      // A new file (or one we may not stat): the default mode.
    }
  }
  let step = "creating a temporary file in its directory";
  let file: Deno.FsFile | null = null;
  let created = false;
  try {
    file = await Deno.open(tmp, {
      write: true,
      createNew: true,
      ...(mode !== undefined ? { mode } : {}),
    });
    created = true;
    step = "writing the temporary file";
    let done = 0;
    while (done < data.byteLength) done += await file.write(data.subarray(done));
    step = "flushing the temporary file to the disk";
    await file.sync();
    file.close();
    file = null;
    step = "renaming the temporary file over it";
    await Deno.rename(tmp, path);
    created = false;
  } catch (e) {
    try {
      file?.close();
    } catch {
      // Already closed.
    }
    if (created) {
      try {
        await Deno.remove(tmp);
      } catch {
        // Nothing more can be done; the message below says what failed.
      }
    }
    throw new WgradError(
      "value",
      `cannot write "${path}" (${step}): ${describeFsError(e)}`,
      { cause: e },
    );
  }
  await syncDirectory(dir);
}

/** Flushes a directory's entries (the rename) to the disk; silently skipped where unsupported. */
async function syncDirectory(dir: string): Promise<void> {
  let d: Deno.FsFile | null = null;
  try {
    d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Not supported (Windows), or no read permission on the directory: the rename stands.
  } finally {
    try {
      d?.close();
    } catch {
      // Already closed.
    }
  }
}
