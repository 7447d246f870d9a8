/**
 * Adapter and device acquisition. The only place that talks to `navigator.gpu`.
 * @module
 */
import { WgradError } from "../errors.ts";

/** What {@linkcode gpuInfo} reports about the adapter and the device wgrad runs on. */
export interface GpuInfo {
  /** The adapter's own description, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  description: string;
  /** Vendor string or PCI id as the adapter reports it. */
  vendor: string;
  /** Architecture string as the adapter reports it (often empty). */
  architecture: string;
  /** Device string or PCI id as the adapter reports it. */
  device: string;
  /** True for software adapters such as llvmpipe. */
  isFallbackAdapter: boolean;
  /** Optional features the adapter offers. */
  adapterFeatures: string[];
  /** Features requested and granted to the device. */
  features: string[];
  /** The limits granted to the device (the subset wgrad requests). */
  limits: Record<string, number>;
  /** The Deno version running the engine. */
  deno: string;
}

/** A device with everything read off its adapter before `requestDevice`. */
export interface DeviceContext {
  device: GPUDevice;
  info: GpuInfo;
  limits: GPUSupportedLimits;
}

/** Limits the engine asks for, each up to what the adapter offers. */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxBindGroups",
  "maxBindingsPerBindGroup",
  "maxSampledTexturesPerShaderStage",
  "maxStorageTexturesPerShaderStage",
  "maxTextureDimension2D",
] as const;

/** Optional features used when present. */
const WANTED_FEATURES = ["shader-f16", "timestamp-query"] as const;

function howToFix(): string {
  const backend = envVar("DENO_WEBGPU_BACKEND");
  const lines = [
    `Deno ${Deno.version.deno} on ${Deno.build.os}/${Deno.build.arch}.`,
    "How to fix:",
    "  - use Deno 2.x (npm install -g deno@2.9.6), which ships WebGPU as navigator.gpu;",
    "  - on Linux without a GPU, install Mesa's software drivers: " +
    "apt-get install -y mesa-vulkan-drivers libvulkan1 (llvmpipe/lavapipe);",
    "  - on a machine with a GPU, install its Vulkan, Metal or DirectX 12 driver;",
  ];
  if (backend !== undefined) {
    lines.push(
      `  - DENO_WEBGPU_BACKEND is set to "${backend}": unset it or install that backend's loader ` +
        "(with no Vulkan loader, DENO_WEBGPU_BACKEND=vulkan finds no adapter).",
    );
  }
  return lines.join("\n");
}

/** Reads an environment variable only if permission is already granted (never prompts). */
function envVar(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * On headless Linux, Mesa prints "XDG_RUNTIME_DIR is invalid or not set" when the variable is
 * missing. Where the script was granted `--allow-env=XDG_RUNTIME_DIR` (the tasks do) and the
 * variable is unset, point it at /tmp; never prompts, never overrides a value that is set.
 */
export function quietMesa(): void {
  if (Deno.build.os !== "linux") return;
  try {
    const p = Deno.permissions.querySync({ name: "env", variable: "XDG_RUNTIME_DIR" });
    if (p.state === "granted" && !Deno.env.get("XDG_RUNTIME_DIR")) {
      Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
    }
  } catch {
    // permission API unavailable: leave the environment alone
  }
}

/**
 * Requests one adapter and one device with the limits the engine needs.
 * Throws a {@linkcode WgradError} of kind `gpu-unavailable` that says what was tried and how to fix it.
 */
export async function requestDeviceContext(): Promise<DeviceContext> {
  quietMesa();
  const gpu = (globalThis.navigator as Navigator & { gpu?: GPU }).gpu;
  if (gpu === undefined) {
    throw new WgradError(
      "gpu-unavailable",
      "WebGPU is not available: navigator.gpu is undefined in this runtime.\n" + howToFix(),
    );
  }
  const tried: string[] = [];
  let adapter: GPUAdapter | null = null;
  for (const powerPreference of ["high-performance", undefined] as const) {
    tried.push(
      `requestAdapter(${powerPreference ? `{ powerPreference: "${powerPreference}" }` : ""})`,
    );
    try {
      adapter = await gpu.requestAdapter(powerPreference ? { powerPreference } : undefined);
    } catch (e) {
      tried[tried.length - 1] += ` threw ${(e as Error).message}`;
    }
    if (adapter) break;
  }
  if (!adapter) {
    throw new WgradError(
      "gpu-unavailable",
      `No WebGPU adapter found (tried ${tried.join(", then ")}: each returned null).\n` +
        howToFix(),
    );
  }
  // Deno invalidates the adapter after requestDevice: read everything first.
  const a = adapter.info;
  const adapterFeatures = [...adapter.features].map(String).sort();
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof v === "number") requiredLimits[name] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter!.features.has(f));
  const info: GpuInfo = {
    description: a.description || "(no description)",
    vendor: a.vendor,
    architecture: a.architecture,
    device: a.device,
    isFallbackAdapter: (a as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      false,
    adapterFeatures,
    features: [...requiredFeatures],
    limits: requiredLimits,
    deno: Deno.version.deno,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    throw new WgradError(
      "gpu-unavailable",
      `The adapter "${info.description}" refused a device with limits ${
        JSON.stringify(requiredLimits)
      }: ${(e as Error).message}\n${howToFix()}`,
      { cause: e },
    );
  }
  return { device, info, limits: device.limits };
}
