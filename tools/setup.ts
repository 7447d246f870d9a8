/**
 * Set-up check run before `deno task demo` and `deno task test`: makes sure a WebGPU adapter is
 * reachable. On Debian/Ubuntu as root it installs Mesa's Vulkan drivers (llvmpipe/lavapipe) when
 * no adapter is found, or when only Mesa's slower GL path is present; otherwise it prints the
 * command to run and fails.
 *
 * Permissions: --allow-run=apt-get,deno (install, re-probe), --allow-read=/usr/share/vulkan,
 * /etc/os-release,/usr/bin/apt-get (what is installed), --allow-sys=uid (root?), --allow-env.
 * @module
 */

import { quietMesa } from "../src/gpu/device.ts";

const PACKAGES = ["mesa-vulkan-drivers", "libvulkan1"];

async function probe(): Promise<{ description: string; fallback: boolean } | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return null;
  const a = await gpu.requestAdapter();
  if (!a) return null;
  const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return {
    description: info.description || info.vendor,
    fallback: info.isFallbackAdapter ?? false,
  };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function hasVulkanDriver(): boolean {
  for (const dir of ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]) {
    try {
      for (const e of Deno.readDirSync(dir)) if (e.name.endsWith(".json")) return true;
    } catch { /* no such directory */ }
  }
  return false;
}

async function run(cmd: string, args: string[]): Promise<boolean> {
  console.log(`setup: ${cmd} ${args.join(" ")}`);
  const p = new Deno.Command(cmd, {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  return (await p.status).success;
}

async function reprobe(): Promise<string | null> {
  const out = await new Deno.Command("deno", {
    args: [
      "eval",
      "const a = await navigator.gpu?.requestAdapter(); console.log(a ? a.info.description || 'adapter' : '')",
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text || null;
}

quietMesa();
const isLinux = Deno.build.os === "linux";
const adapter = await probe();
const vulkan = !isLinux || hasVulkanDriver();
if (adapter && (vulkan || !adapter.fallback)) {
  console.log(`setup: WebGPU adapter: ${adapter.description}`);
  Deno.exit(0);
}

const debian = isLinux && exists("/usr/bin/apt-get");
const root = isLinux && Deno.uid() === 0;
const install = `apt-get install -y ${PACKAGES.join(" ")}`;
if (debian && root) {
  console.log(
    adapter
      ? "setup: only Mesa's GL path is available (2-3x slower); installing Mesa's Vulkan drivers"
      : "setup: no WebGPU adapter found; installing Mesa's software drivers (llvmpipe/lavapipe)",
  );
  const ok = (await run("apt-get", ["install", "-y", "-qq", ...PACKAGES])) ||
    ((await run("apt-get", ["update", "-qq"])) &&
      (await run("apt-get", ["install", "-y", "-qq", ...PACKAGES])));
  const found = await reprobe();
  if (ok && found) {
    console.log(`setup: WebGPU adapter: ${found}`);
    Deno.exit(0);
  }
  console.error(`setup: installing ${PACKAGES.join(" ")} did not give a WebGPU adapter`);
  Deno.exit(1);
}

if (adapter) {
  console.log(
    `setup: WebGPU adapter: ${adapter.description} (Mesa's GL path; for 2-3x more speed: ` +
      `sudo ${install})`,
  );
  Deno.exit(0);
}
console.error(
  [
    `setup: no WebGPU adapter found (Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}).`,
    debian
      ? `  Install Mesa's drivers: sudo ${install}`
      : "  Install a GPU driver with Vulkan, Metal or DirectX 12, or Mesa's llvmpipe/lavapipe.",
  ].join("\n"),
);
Deno.exit(1);
