/**
 * Where data set files come from, in order: a directory given by the caller, the cache
 * (`$WGRAD_CACHE/<name>`, else `$XDG_CACHE_HOME/wgrad/<name>`, else `~/.cache/wgrad/<name>`),
 * system directories (`/usr/share/datasets/<name>`, where Debian installs Fashion-MNIST), then a
 * download into the cache; otherwise an error that names every place tried and how to get the data.
 *
 * Every file is checked before use: against its published SHA-256 where one is known, else
 * against the SHA-256 recorded in the cache's `SHA256SUMS` when the file was first downloaded
 * (trust on first use), else structurally by its reader. A download goes to a temporary file in the
 * cache directory, is hashed as it streams, and is renamed into place only once verified; on any
 * failure the temporary file is removed. Nothing asks for permissions: a place this process may not
 * read, write or reach is reported with the flag that would allow it.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { Sha256, sha256Hex, toHex } from "./checksum.ts";
import { gzipHeaderBytes, parseGzipHeader } from "./gzip.ts";

/** A file of a data set, as published. */
export interface RemoteFile {
  /** The file's name in directories and the cache, e.g. `train-images-idx3-ubyte.gz`. */
  name: string;
  /** Canonical download URLs, tried in order (after any mirrors). */
  urls: readonly string[];
  /** The published SHA-256 (hex), if there is one. */
  sha256?: string;
  /** Size in bytes, if published. */
  size?: number;
  /** Where the checksum is published. */
  checksumSource?: string;
  /**
   * The gzip header of the canonical file, for copies whose header was rewritten (Debian
   * normalises gzip headers: no file name, a fixed time). Such a copy is accepted when the
   * canonical header followed by its compressed data has the published SHA-256.
   */
  gzipHeader?: { mtime: number; fileName: string; xfl: number; os: number };
  /** Other names accepted in local directories (e.g. the uncompressed file), checked by the reader. */
  alternatives?: readonly string[];
  /**
   * A structural check of a file that has no published checksum, run on a download before it is
   * renamed into the cache. Throws if the file is bad.
   */
  check?: (path: string) => Promise<void>;
}

/** Where a file was found. */
export type FileOrigin = "dir" | "cache" | "system" | "download" | "bundled";

/**
 * How a file was verified:
 * - `"sha256"`: it has the published SHA-256;
 * - `"sha256-repackaged"`: only its gzip header differs from the published file's;
 * - `"recorded"`: it has the SHA-256 recorded when it was first downloaded (trust on first use);
 * - `"first-use"`: just downloaded without a published checksum; its SHA-256 is now recorded;
 * - `"structural"`: no checksum is known; its reader checks every size and length;
 * - `"unverified"`: checksums were turned off (`verify: false`); the reader's checks still apply.
 */
export type Verification =
  | "sha256"
  | "sha256-repackaged"
  | "recorded"
  | "first-use"
  | "structural"
  | "unverified";

/** A file found (and verified) somewhere. */
export interface LocatedFile {
  /** The file as published. */
  file: RemoteFile;
  /** Its path on this machine, or its URL for a bundled file imported over the network. */
  path: string;
  /** Where it was found. */
  origin: FileOrigin;
  /** How it was verified. */
  verified: Verification;
  /** Its SHA-256, when it was computed. */
  sha256?: string;
}

/** Progress of a download, for a custom reporter. */
export interface DownloadProgress {
  /** The URL being downloaded. */
  url: string;
  /** The file's name. */
  file: string;
  /** Bytes received so far. */
  bytes: number;
  /** Total bytes, if known. */
  total: number | null;
  /** True on the last call. */
  done: boolean;
}

/** Options that say where data set files may come from. */
export interface FetchOptions {
  /** A directory to look in first (the files under their published names). */
  dir?: string;
  /** The cache root (default `$WGRAD_CACHE`, `$XDG_CACHE_HOME/wgrad`, `~/.cache/wgrad`). */
  cacheDir?: string;
  /** System directories to look in (default `/usr/share/datasets/<name>` and the like). */
  systemDirs?: readonly string[];
  /** Download into the cache when the files are nowhere else (default true; env `WGRAD_OFFLINE=1` turns it off). */
  download?: boolean;
  /**
   * Base URLs tried before the canonical ones, as `<mirror>/<data set>/<file>` (default: the
   * comma- or space-separated list in env `WGRAD_DATASET_MIRROR`).
   */
  mirrors?: readonly string[];
  /** Check local files' checksums (default true). Downloads are always checked. */
  verify?: boolean;
  /**
   * Download progress: a bar on a terminal, plain lines otherwise (`true`, the default), nothing
   * (`false`), or a function called with the progress.
   */
  progress?: boolean | ((p: DownloadProgress) => void);
  /** Cancels downloads. */
  signal?: AbortSignal;
}

/** How to get a data set by hand, for the error raised when it is nowhere. */
export interface DatasetHints {
  /** A Debian/Ubuntu package that installs the files. */
  debianPackage?: string;
  /** Where that package installs them. */
  debianDir?: string;
  /** Anything else worth saying. */
  note?: string;
}

/**
 * The error raised when a data set's files are nowhere to be found: a `value`
 * {@linkcode WgradError} whose message names every place tried and how to get the data.
 */
export class DatasetNotFoundError extends WgradError {
  /** The data set. */
  readonly dataset: string;
  /** The files that are missing. */
  readonly missing: readonly string[];

  /**
   * Makes the error.
   * @param dataset the data set's name
   * @param missing the names of the missing files
   * @param message the full explanation
   */
  constructor(dataset: string, missing: readonly string[], message: string) {
    super("value", message);
    this.name = "DatasetNotFoundError";
    this.dataset = dataset;
    this.missing = missing;
  }
}

// ---------------------------------------------------------------------------------------------
// Permissions and the environment, queried without prompting.

function granted(desc: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/** An environment variable if this process may read it, else undefined. */
export function envVar(name: string): string | undefined {
  if (!granted({ name: "env", variable: name })) return undefined;
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/{2,}/g, "/");
}

/** The cache root and, if there is none, why. */
export function cacheRoot(options: FetchOptions = {}): { dir: string | null; why?: string } {
  if (options.cacheDir) return { dir: options.cacheDir };
  const w = envVar("WGRAD_CACHE");
  if (w) return { dir: w };
  const xdg = envVar("XDG_CACHE_HOME");
  if (xdg) return { dir: join(xdg, "wgrad") };
  const home = envVar("HOME") ?? envVar("USERPROFILE");
  if (home) return { dir: join(home, ".cache", "wgrad") };
  return {
    dir: null,
    why: "no cache directory: set WGRAD_CACHE or HOME and allow reading it " +
      "(--allow-env=WGRAD_CACHE,XDG_CACHE_HOME,HOME), or pass { cacheDir }",
  };
}

/** The default system directories for a data set. */
export function systemDirs(dataset: string): string[] {
  return [`/usr/share/datasets/${dataset}`, `/usr/local/share/datasets/${dataset}`];
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Checksums.

/** Files up to this size are hashed whole by Web Crypto; larger ones are streamed. */
const WHOLE_FILE_HASH_BYTES = 256 * 2 ** 20;

/**
 * The SHA-256 (hex) of a file; with `replace`, of `prefix` followed by the file from byte `skip`.
 * Files up to 256 MiB are read whole and hashed by Web Crypto (about 1 GB/s); larger ones are
 * streamed through {@linkcode Sha256} (about 120 MB/s) so that they never sit in memory.
 */
export async function sha256File(
  path: string,
  replace?: { skip: number; prefix: Uint8Array },
): Promise<string> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    const skip = replace ? Math.min(replace.skip, size) : 0;
    const prefix = replace?.prefix ?? new Uint8Array(0);
    await file.seek(skip, Deno.SeekMode.Start);
    if (size - skip <= WHOLE_FILE_HASH_BYTES) {
      const buf = new Uint8Array(prefix.length + size - skip);
      buf.set(prefix);
      let o = prefix.length;
      while (o < buf.length) {
        const n = await file.read(buf.subarray(o));
        if (n === null) break;
        o += n;
      }
      return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", buf.subarray(0, o))));
    }
    const h = new Sha256().update(prefix);
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
    return h.hex();
  } finally {
    file.close();
  }
}

/** The SHA-256 (hex) of bytes in memory. */
export function sha256Bytes(data: Uint8Array): string {
  return sha256Hex(data);
}

/**
 * Checks a local file against its published checksum. Returns how it was verified, or a
 * sentence saying why it does not match.
 */
async function checkPublished(
  path: string,
  file: RemoteFile,
): Promise<{ ok: true; how: Verification; sha256: string } | { ok: false; why: string }> {
  // A gzip file whose header differs from the canonical one (e.g. Debian's copy) is hashed with
  // the canonical header in place of its own: one pass either way.
  if (file.gzipHeader) {
    const canonical = gzipHeaderBytes(file.gzipHeader);
    const head = new Uint8Array(1024);
    const f = await Deno.open(path, { read: true });
    let n = 0;
    try {
      n = (await f.read(head)) ?? 0;
    } finally {
      f.close();
    }
    let h = null;
    try {
      h = parseGzipHeader(head.subarray(0, n), path);
    } catch {
      h = null;
    }
    const same = h !== null && h.headerBytes === canonical.length &&
      canonical.every((b, i) => head[i] === b);
    if (h && !same) {
      const alt = await sha256File(path, { skip: h.headerBytes, prefix: canonical });
      if (alt === file.sha256) return { ok: true, how: "sha256-repackaged", sha256: alt };
    }
  }
  const got = await sha256File(path);
  if (got === file.sha256) return { ok: true, how: "sha256", sha256: got };
  return {
    ok: false,
    why: `checksum mismatch: SHA-256 is ${got}, the published file's is ${file.sha256}` +
      (file.checksumSource ? ` (${file.checksumSource})` : ""),
  };
}

const MANIFEST = "SHA256SUMS";

/** The SHA-256 sums recorded in a cache directory (trust on first use). */
export async function readManifest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let text = "";
  try {
    text = await Deno.readTextFile(join(dir, MANIFEST));
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.trim());
    if (m) out.set(m[2], m[1]);
  }
  return out;
}

/** Records a file's SHA-256 in a cache directory's manifest (replaced atomically). */
export async function recordSha256(dir: string, name: string, sha256: string): Promise<void> {
  const sums = await readManifest(dir);
  sums.set(name, sha256);
  const text = [...sums].sort(([a], [b]) => a < b ? -1 : 1).map(([n, s]) => `${s}  ${n}\n`).join(
    "",
  );
  const tmp = join(dir, `.${MANIFEST}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.part`);
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, join(dir, MANIFEST));
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Downloads.

function fmtMB(n: number): string {
  return (n / 1e6).toFixed(1);
}

/** Reports download progress: a bar on a terminal, a few plain lines otherwise. */
class ProgressReporter {
  readonly #tty: boolean;
  #last = 0;
  #lastQuarter = -1;
  readonly #start = performance.now();

  constructor(
    readonly url: string,
    readonly file: string,
    readonly total: number | null,
    readonly custom: ((p: DownloadProgress) => void) | null,
  ) {
    let tty = false;
    try {
      tty = Deno.stderr.isTerminal();
    } catch {
      tty = false;
    }
    this.#tty = tty;
    if (!custom) this.#write(`downloading ${url}${total ? ` (${fmtMB(total)} MB)` : ""}\n`);
  }

  #write(s: string): void {
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(s));
    } catch {
      // stderr closed: nothing to report to
    }
  }

  update(bytes: number, done = false): void {
    if (this.custom) {
      this.custom({ url: this.url, file: this.file, bytes, total: this.total, done });
      return;
    }
    const now = performance.now();
    const secs = Math.max(1e-3, (now - this.#start) / 1000);
    const rate = `${fmtMB(bytes / secs)} MB/s`;
    if (this.#tty) {
      if (!done && now - this.#last < 100) return;
      this.#last = now;
      const frac = this.total ? Math.min(1, bytes / this.total) : 0;
      const width = 30;
      const bar = this.total
        ? "█".repeat(Math.round(frac * width)).padEnd(width, "░")
        : "".padEnd(width, "·");
      const pct = this.total ? `${Math.floor(frac * 100)}%`.padStart(4) : "";
      this.#write(
        `\r  ${this.file} ${bar} ${pct} ${fmtMB(bytes)}${
          this.total ? `/${fmtMB(this.total)}` : ""
        } MB ` +
          `${rate}   ${done ? "\n" : ""}`,
      );
      return;
    }
    if (done) {
      this.#write(`  ${this.file}: ${fmtMB(bytes)} MB in ${secs.toFixed(1)} s (${rate})\n`);
      return;
    }
    if (this.total) {
      const q = Math.floor(4 * bytes / this.total);
      if (q > this.#lastQuarter && q > 0 && q < 4) {
        this.#lastQuarter = q;
        this.#write(`  ${this.file}: ${q * 25}% (${fmtMB(bytes)}/${fmtMB(this.total)} MB)\n`);
      }
    }
  }
}

/** Removes temporary download files of `name` in `dir` older than a day (left by killed processes). */
async function removeStaleParts(dir: string, name: string): Promise<void> {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.startsWith(`.${name}.`) || !e.name.endsWith(".part")) continue;
      const p = join(dir, e.name);
      const st = await Deno.stat(p);
      if (st.mtime && Date.now() - st.mtime.getTime() > 86_400_000) {
        await Deno.remove(p).catch(() => {});
      }
    }
  } catch {
    // best effort
  }
}

/**
 * Downloads `url` to `dest` atomically: into a temporary file next to it, hashed as it streams,
 * checked (published SHA-256 and size, or `file.check`), then renamed. On any failure the
 * temporary file is removed and the error says what went wrong. Returns the SHA-256.
 */
export async function downloadFile(
  url: string,
  dest: string,
  file: RemoteFile,
  options: Pick<FetchOptions, "progress" | "signal"> = {},
): Promise<string> {
  const dir = dest.slice(0, dest.lastIndexOf("/")) || ".";
  await Deno.mkdir(dir, { recursive: true });
  await removeStaleParts(dir, file.name);
  const tmp = join(dir, `.${file.name}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.part`);
  const out = await Deno.open(tmp, { createNew: true, write: true });
  let open = true;
  try {
    const res = await fetch(url, {
      signal: options.signal,
      headers: { "accept-encoding": "identity" },
    });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`);
    }
    const len = Number(res.headers.get("content-length"));
    const total = Number.isFinite(len) && len > 0 ? len : file.size ?? null;
    if (file.size !== undefined && Number.isFinite(len) && len > 0 && len !== file.size) {
      await res.body.cancel();
      throw new Error(`the server announces ${len} bytes, the published file has ${file.size}`);
    }
    const progress = options.progress === false ? null : new ProgressReporter(
      url,
      file.name,
      total,
      typeof options.progress === "function" ? options.progress : null,
    );
    const hash = new Sha256();
    let bytes = 0;
    for await (const chunk of res.body) {
      hash.update(chunk);
      bytes += chunk.length;
      if (file.size !== undefined && bytes > file.size) {
        throw new Error(`more than the published ${file.size} bytes`);
      }
      let o = 0;
      while (o < chunk.length) o += await out.write(chunk.subarray(o));
      progress?.update(bytes);
    }
    progress?.update(bytes, true);
    await out.syncData().catch(() => {});
    out.close();
    open = false;
    const digest = hash.hex();
    if (file.size !== undefined && bytes !== file.size) {
      throw new Error(`incomplete: ${bytes} of ${file.size} bytes`);
    }
    if (file.sha256 && digest !== file.sha256) {
      throw new Error(
        `checksum mismatch: SHA-256 is ${digest}, the published file's is ${file.sha256}`,
      );
    }
    if (!file.sha256 && file.check) await file.check(tmp);
    await Deno.rename(tmp, dest);
    return digest;
  } catch (e) {
    if (open) {
      try {
        out.close();
      } catch {
        // already closed
      }
    }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Locating.

/** The URLs to try for a file: mirrors first, then the canonical ones. */
export function downloadUrls(
  dataset: string,
  file: RemoteFile,
  options: FetchOptions = {},
): string[] {
  const mirrors = options.mirrors ??
    (envVar("WGRAD_DATASET_MIRROR") ?? "").split(/[\s,]+/).filter(Boolean);
  return [...mirrors.map((m) => `${m.replace(/\/+$/, "")}/${dataset}/${file.name}`), ...file.urls];
}

interface Place {
  label: string;
  notes: string[];
}

/**
 * Finds (or downloads) the files of a data set and verifies them, trying the places in order for
 * each file. Throws one `value` {@linkcode WgradError} for all missing files, naming every place
 * tried, what was wrong there, and how to get the data.
 */
export async function locateFiles(
  dataset: string,
  files: readonly RemoteFile[],
  options: FetchOptions = {},
  hints: DatasetHints = {},
): Promise<LocatedFile[]> {
  const verify = options.verify ?? true;
  const { dir: root, why: noCache } = cacheRoot(options);
  const cacheDir = root ? join(root, dataset) : null;
  const sysDirs = options.systemDirs ?? systemDirs(dataset);
  const offline = options.download === false ||
    (options.download === undefined && /^(1|true|yes)$/i.test(envVar("WGRAD_OFFLINE") ?? ""));

  const places: Place[] = [];
  const place = (label: string): Place => {
    let p = places.find((x) => x.label === label);
    if (!p) places.push(p = { label, notes: [] });
    return p;
  };
  const note = (p: Place, s: string) => {
    if (!p.notes.includes(s)) p.notes.push(s);
  };
  const dirPlace = place(
    options.dir ? `directory ${options.dir} (option dir)` : "directory given by the caller",
  );
  if (!options.dir) note(dirPlace, "none given");
  const cachePlace = place(cacheDir ? `cache ${cacheDir}` : "cache");
  if (!cacheDir) note(cachePlace, noCache!);
  const sysPlaces = sysDirs.map((d) => place(`system directory ${d}`));
  const dlPlace = place("download");

  const manifest = cacheDir && granted({ name: "read", path: cacheDir })
    ? await readManifest(cacheDir)
    : new Map<string, string>();

  /** Checks a local candidate; returns the located file, or null with a note. */
  const tryLocal = async (
    p: Place,
    dir: string,
    file: RemoteFile,
    origin: FileOrigin,
  ): Promise<LocatedFile | null> => {
    if (!granted({ name: "read", path: dir })) {
      note(p, `not readable by this process (run with --allow-read=${dir})`);
      return null;
    }
    for (const name of [file.name, ...(file.alternatives ?? [])]) {
      const path = join(dir, name);
      if (!(await isFile(path))) continue;
      const primary = name === file.name;
      if (!verify) return { file, path, origin, verified: "unverified" };
      if (primary && file.sha256) {
        const r = await checkPublished(path, file);
        if (r.ok) return { file, path, origin, verified: r.how, sha256: r.sha256 };
        if (origin === "dir") throw new WgradError("value", `${path}: ${r.why}`);
        if (origin === "cache" && granted({ name: "write", path: dir })) {
          await Deno.remove(path).catch(() => {});
          note(p, `${name}: ${r.why}; removed it`);
        } else {
          note(p, `${name}: ${r.why}; not used`);
        }
        continue;
      }
      if (primary && origin === "cache" && manifest.has(name)) {
        const got = await sha256File(path);
        if (got === manifest.get(name)) {
          return { file, path, origin, verified: "recorded", sha256: got };
        }
        const why =
          `checksum mismatch: SHA-256 is ${got}, ${MANIFEST} recorded ${manifest.get(name)} ` +
          "when it was downloaded";
        if (granted({ name: "write", path: dir })) {
          await Deno.remove(path).catch(() => {});
          note(p, `${name}: ${why}; removed it`);
        } else note(p, `${name}: ${why}; not used`);
        continue;
      }
      return { file, path, origin, verified: "structural" };
    }
    note(p, "not there");
    return null;
  };

  const found: LocatedFile[] = [];
  const missing: RemoteFile[] = [];
  for (const file of files) {
    let hit: LocatedFile | null = null;
    if (options.dir) hit = await tryLocal(dirPlace, options.dir, file, "dir");
    if (!hit && cacheDir) hit = await tryLocal(cachePlace, cacheDir, file, "cache");
    for (let i = 0; !hit && i < sysDirs.length; i++) {
      hit = await tryLocal(sysPlaces[i], sysDirs[i], file, "system");
    }
    if (!hit) {
      if (offline) note(dlPlace, "turned off (download: false or WGRAD_OFFLINE)");
      else if (!cacheDir) note(dlPlace, "no cache directory to download into");
      else if (
        !granted({ name: "write", path: cacheDir }) || !granted({ name: "read", path: cacheDir })
      ) {
        note(
          dlPlace,
          `the cache is not writable by this process (run with --allow-read=${cacheDir} --allow-write=${cacheDir})`,
        );
      } else {
        for (const url of downloadUrls(dataset, file, options)) {
          let host = "";
          try {
            host = new URL(url).host;
          } catch {
            note(dlPlace, `${url}: not a URL`);
            continue;
          }
          if (!granted({ name: "net", host })) {
            const hn = new URL(url).hostname;
            note(dlPlace, `${hn}: network access not allowed (run with --allow-net=${hn})`);
            continue;
          }
          const dest = join(cacheDir, file.name);
          try {
            const sha = await downloadFile(url, dest, file, options);
            let verified: Verification = "sha256";
            if (!file.sha256) {
              await recordSha256(cacheDir, file.name, sha);
              verified = "first-use";
            }
            hit = { file, path: dest, origin: "download", verified, sha256: sha };
            break;
          } catch (e) {
            if (options.signal?.aborted) throw e;
            note(dlPlace, `${url}: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      }
    }
    if (hit) found.push(hit);
    else missing.push(file);
  }
  if (missing.length) {
    throw notFoundError(dataset, files, missing, places, cacheDir, hints, options);
  }
  return found;
}

function notFoundError(
  dataset: string,
  files: readonly RemoteFile[],
  missing: readonly RemoteFile[],
  places: readonly Place[],
  cacheDir: string | null,
  hints: DatasetHints,
  options: FetchOptions,
): DatasetNotFoundError {
  const lines = [
    `${dataset}: cannot find ${missing.map((f) => f.name).join(", ")}. Places tried, in order:`,
  ];
  places.forEach((p, i) => {
    lines.push(`  ${i + 1}. ${p.label}: ${p.notes.length ? p.notes[0] : "not there"}`);
    for (const n of p.notes.slice(1)) lines.push(`       ${n}`);
  });
  const hosts = [
    ...new Set(
      missing.flatMap((f) => downloadUrls(dataset, f, options)).map((u) => {
        try {
          return new URL(u).hostname;
        } catch {
          return u;
        }
      }),
    ),
  ];
  lines.push("To get the data:");
  lines.push(
    `  - let wgrad download it into ${cacheDir ?? "the cache"}: run with --allow-net=${
      hosts.join(",")
    } ` +
      `--allow-read=${cacheDir ?? "<cache>"} --allow-write=${cacheDir ?? "<cache>"} ` +
      "--allow-env=WGRAD_CACHE,XDG_CACHE_HOME,HOME,WGRAD_DATASET_MIRROR,WGRAD_OFFLINE",
  );
  lines.push(`  - or download ${missing.length === 1 ? "it" : "them"} yourself:`);
  for (const f of missing) lines.push(`      ${f.urls[0] ?? f.name}`);
  const all = files.length > missing.length ? ` (with ${files.map((f) => f.name).join(", ")})` : "";
  lines.push(
    `    and put ${missing.length === 1 ? "it" : "them"} in ${
      cacheDir ?? "the cache directory"
    }${all}, ` +
      "or in a directory you pass as { dir }",
  );
  if (hints.debianPackage) {
    lines.push(
      `  - or on Debian/Ubuntu: sudo apt install ${hints.debianPackage}` +
        (hints.debianDir
          ? ` (installs ${hints.debianDir}; allow reading it with --allow-read=${hints.debianDir})`
          : ""),
    );
  }
  if (hints.note) lines.push(`  - ${hints.note}`);
  return new DatasetNotFoundError(dataset, missing.map((f) => f.name), lines.join("\n"));
}
