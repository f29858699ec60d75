// Device acquisition: one Dawn instance, one adapter, one device with the adapter's
// real limits and the optional features the kernels use. Hardware adapters are
// preferred; the software one (lavapipe) is used when there is nothing else.
import { create, globals } from 'webgpu';
import { debugFlags } from './debug.js';
import { GpuError } from './errors.js';
import { KernelVariants, parseVariantList } from './variants.js';

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
  /** Kernel variants to force instead of the adapter's choice (gpu/variants.ts), e.g.
   *  { matmul: 'tiled' }; they override GROUNDED_SD_VARIANTS. */
  variants?: Readonly<Record<string, string | undefined>>;
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
  /** Which kernel variant each op family runs (chosen for this adapter, overridable). */
  variants: KernelVariants;
  /** Dawn's instance: the process stays alive while it is referenced. */
  release(): void;
}

let globalsInstalled = false;
/** Instances no longer in use (released devices, the subgroup-matrix probe); kept so that
 *  they are never collected (see release()). */
const RELEASED_INSTANCES: GPU[] = [];
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
  // Variants are checked against the features about to be requested, before a device
  // exists that a refused override would leave behind.
  const forced = debugFlags().variants;
  const variants = new KernelVariants(
    { software: report.isFallbackAdapter, features: new Set<string>(wanted), name: `'${report.description}'` },
    forced ? parseVariantList(forced, 'GROUNDED_SD_VARIANTS') : {},
    'GROUNDED_SD_VARIANTS',
  );
  for (const [family, name] of Object.entries(opts.variants ?? {})) if (name !== undefined) variants.set(family, name, 'options.variants');
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
  const features = new Set<string>(device.features);
  return {
    device,
    adapter,
    report,
    hasF16: features.has('shader-f16'),
    hasTimestamps: features.has('timestamp-query'),
    hasSubgroups: features.has('subgroups'),
    variants,
    release() {
      device.destroy();
      // The instance stays referenced for the life of the process: letting Dawn's instance
      // be garbage-collected after its device was destroyed aborts the process later, at
      // whatever moment the collector runs (dawn.node, seen on lavapipe).
      if (gpu) RELEASED_INSTANCES.push(gpu);
      gpu = null;
    },
  };
}

/** Dawn's experimental subgroup-matrix feature (cooperative matrices) as the adapter
 *  offers it: `configs` lists the (component, result, M, N, K) shapes it supports. */
export interface SubgroupMatrixReport {
  feature: 'chromium-experimental-subgroup-matrix';
  available: boolean;
  configs: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[];
}

export const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';

/**
 * Asks the adapter that acquireGpu(opts) would pick whether it offers subgroup matrices.
 * Dawn lists the feature only on an instance with `allow_unsafe_apis`, which the engine's
 * own device never enables, so this opens a second instance just to look, and drops it.
 * No kernel uses the feature yet: this is detection and reporting (`grounded-sd info`).
 */
export async function probeSubgroupMatrix(opts: DeviceOptions = {}): Promise<SubgroupMatrixReport> {
  installGlobals();
  const choice = opts.adapter ?? debugFlags().adapter ?? 'auto';
  const gpu = create(dawnFlags({ ...opts, dawnToggles: [...(opts.dawnToggles ?? []), 'allow_unsafe_apis'] }));
  RELEASED_INSTANCES.push(gpu);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', forceFallbackAdapter: choice === 'software' });
  const none: SubgroupMatrixReport = { feature: SUBGROUP_MATRIX, available: false, configs: [] };
  if (!adapter) return none;
  const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: Iterable<Record<string, unknown>> };
  const configs = [...(info.subgroupMatrixConfigs ?? [])].map((c) => ({
    componentType: String(c.componentType),
    resultComponentType: String(c.resultComponentType),
    M: Number(c.M),
    N: Number(c.N),
    K: Number(c.K),
  }));
  return { feature: SUBGROUP_MATRIX, available: adapter.features.has(SUBGROUP_MATRIX), configs };
}
