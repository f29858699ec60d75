// Device acquisition: one Dawn instance, one adapter, one device with the adapter's
// real limits and the optional features the kernels use. Hardware adapters are
// preferred; the software one (lavapipe) is used when there is nothing else.
import { create, globals } from 'webgpu';
import { debugFlags } from './debug.js';
import { GpuError } from './errors.js';

export type AdapterChoice = 'auto' | 'hardware' | 'software';

export interface DeviceOptions {
  /** Dawn backend to force ('vulkan', 'metal', 'd3d12', 'opengles', ...). */
  backend?: string;
  /** 'auto' (default): hardware if present; 'software': force the CPU adapter;
   *  'hardware': fail if only a software adapter exists; any other string selects
   *  the adapter whose name contains it. */
  adapter?: AdapterChoice | string;
  /** Extra Dawn toggles, e.g. 'vulkan_enable_f16_on_nvidia' (on by default). */
  dawnToggles?: string[];
  /** Ask for shader-f16 when the adapter has it (default true). */
  f16?: boolean;
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  backend: string | null;
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  features: string[];
  limits: Record<string, number>;
}

/** The features the kernels can use when present. */
export const OPTIONAL_FEATURES = ['shader-f16', 'timestamp-query', 'subgroups'] as const;

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  report: AdapterReport;
  hasF16: boolean;
  hasTimestamps: boolean;
  hasSubgroups: boolean;
  /** Dawn's instance: the process stays alive while it is referenced. */
  release(): void;
}

let globalsInstalled = false;
function installGlobals(): void {
  if (globalsInstalled) return;
  Object.assign(globalThis, globals);
  globalsInstalled = true;
}

export const NO_ADAPTER_HELP = [
  'No WebGPU adapter was found. Dawn needs a Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver.',
  'On Debian/Ubuntu without a GPU, install Mesa\'s software Vulkan driver (lavapipe, Mesa >= 23):',
  '  bash scripts/install-lavapipe.sh   (adds bookworm-backports and installs mesa-vulkan-drivers)',
  'and set XDG_RUNTIME_DIR (e.g. export XDG_RUNTIME_DIR=/tmp).',
  'Elsewhere, install your GPU vendor\'s Vulkan driver, or Mesa\'s mesa-vulkan-drivers package.',
].join('\n');

function dawnFlags(opts: DeviceOptions): string[] {
  const dbg = debugFlags();
  const flags: string[] = [];
  const backend = opts.backend ?? dbg.backend;
  if (backend) flags.push(`backend=${backend}`);
  const adapter = opts.adapter ?? dbg.adapter;
  if (adapter && !['auto', 'hardware', 'software'].includes(adapter)) flags.push(`adapter=${adapter}`);
  const toggles = ['vulkan_enable_f16_on_nvidia', ...(opts.dawnToggles ?? [])];
  flags.push(`enable-dawn-features=${toggles.join(',')}`);
  return flags;
}

export function describeAdapter(adapter: GPUAdapter, backend: string | null): AdapterReport {
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; isFallbackAdapter?: boolean };
  const limits: Record<string, number> = {};
  const lim = adapter.limits as unknown as Record<string, number>;
  for (const key in lim) {
    const v = lim[key];
    if (typeof v === 'number') limits[key] = v;
  }
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: Boolean(info.isFallbackAdapter) || info.architecture === 'software',
    backend,
    subgroupMinSize: info.subgroupMinSize ?? null,
    subgroupMaxSize: info.subgroupMaxSize ?? null,
    features: [...adapter.features].sort(),
    limits,
  };
}

export async function acquireGpu(opts: DeviceOptions = {}): Promise<GpuContext> {
  installGlobals();
  const choice = opts.adapter ?? debugFlags().adapter ?? 'auto';
  let gpu: GPU | null = create(dawnFlags(opts));
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({
      powerPreference: 'high-performance',
      forceFallbackAdapter: choice === 'software',
    });
  } catch (e) {
    gpu = null;
    throw new GpuError(`requesting a WebGPU adapter failed: ${(e as Error).message}\n${NO_ADAPTER_HELP}`);
  }
  if (!adapter) {
    gpu = null;
    throw new GpuError(NO_ADAPTER_HELP);
  }
  const backend = opts.backend ?? debugFlags().backend ?? null;
  const report = describeAdapter(adapter, backend);
  if (choice === 'hardware' && report.isFallbackAdapter) {
    throw new GpuError(`a hardware adapter was required but only '${report.description}' (software) was found`);
  }
  const wanted = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && (f !== 'shader-f16' || opts.f16 !== false));
  // Ask for the adapter's real limits, not WebGPU's defaults (128 MiB bindings etc.).
  const requiredLimits: Record<string, number> = {};
  for (const key of [
    'maxStorageBufferBindingSize', 'maxBufferSize', 'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ',
    'maxComputeWorkgroupsPerDimension', 'maxUniformBufferBindingSize', 'maxBindGroups',
  ]) {
    const v = report.limits[key];
    if (typeof v === 'number') requiredLimits[key] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      label: 'grounded-sd',
      requiredFeatures: wanted as GPUFeatureName[],
      requiredLimits,
    });
  } catch (e) {
    throw new GpuError(`requesting a device from '${report.description}' failed: ${(e as Error).message}`);
  }
  return {
    device,
    adapter,
    report,
    hasF16: device.features.has('shader-f16'),
    hasTimestamps: device.features.has('timestamp-query'),
    hasSubgroups: device.features.has('subgroups'),
    release() {
      device.destroy();
      gpu = null;
    },
  };
}
