// Pipeline cache: WGSL families are read once from shaders/<family>.wgsl and compiled
// once per (family, entry point, dtype, sorted override constants). A family that uses
// subgroup builtins starts with `enable subgroups;` and is refused on a device without
// the feature. Two text substitutions only: the element-type alias (`alias T = f32;` becomes f16 on request)
// and `// #include "name.wgsl"` lines, replaced by shaders/lib/name.wgsl (shared helper
// functions such as the activations, so fused epilogues do not copy them).
// Where the text comes from: the compiled package inlines shaders/ (shader_sources.ts);
// a source checkout reads <package>/shaders from disk.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { debugFlags } from './debug.js';
import { GpuError } from './errors.js';
import { SHADER_SOURCES } from './shader_sources.js';

export type ElemType = 'f32' | 'f16';

export interface KernelSpec {
  /** Shader family: shaders/<family>.wgsl. */
  family: string;
  /** Entry point, `<family>_forward`, `<family>_backward_input`, ... */
  entry: string;
  /** Element type substituted for `alias T = f32;` (default f32). */
  dtype?: ElemType;
  /** WGSL `override` constants (tile sizes, fixed dimensions, flags). */
  overrides?: Record<string, number>;
}

export function pipelineKey(spec: KernelSpec): string {
  const ov = spec.overrides ?? {};
  const parts = Object.keys(ov)
    .sort()
    .map((k) => `${k}=${ov[k]}`);
  const dt = spec.dtype && spec.dtype !== 'f32' ? `<${spec.dtype}>` : '';
  return `${spec.entry}${dt}${parts.length ? `[${parts.join(',')}]` : ''}`;
}

/** Reads shaders/<rel> ('matmul.wgsl', 'lib/activation.wgsl'), or undefined if absent. */
type ShaderReader = (rel: string) => string | undefined;

function shaderReader(): { read: ShaderReader; where: string } {
  if (SHADER_SOURCES) {
    const inlined = SHADER_SOURCES;
    return { read: (rel) => inlined[rel], where: 'the shaders inlined into the compiled package' };
  }
  // src/gpu/pipelines.ts -> <package>/shaders/
  const dir = new URL('../../shaders/', import.meta.url);
  if (!existsSync(new URL('fill.wgsl', dir))) {
    throw new GpuError(
      `cannot find the shaders/ folder: looked for ${fileURLToPath(new URL('fill.wgsl', dir))} ` +
        `(relative to ${fileURLToPath(import.meta.url)}); run from a full checkout, or use the built package (npm run build)`,
    );
  }
  const read: ShaderReader = (rel) => {
    const url = new URL(rel, dir);
    return existsSync(url) ? readFileSync(url, 'utf8') : undefined;
  };
  return { read, where: fileURLToPath(dir) };
}

export class PipelineCache {
  private sources = new Map<string, string>();
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();
  private reader: { read: ShaderReader; where: string } | null = null;
  compiled = 0;

  constructor(private device: GPUDevice, private hasF16: boolean) {}

  source(family: string): string {
    let src = this.sources.get(family);
    if (src === undefined) {
      this.reader ??= shaderReader();
      const { read, where } = this.reader;
      const text = read(`${family}.wgsl`);
      if (text === undefined) throw new GpuError(`no WGSL family '${family}' (expected ${family}.wgsl in ${where})`);
      src = text.replace(/^\/\/ #include "([\w.-]+\.wgsl)"$/gm, (_, name: string) => {
        const lib = read(`lib/${name}`);
        if (lib === undefined) throw new GpuError(`${family}.wgsl includes ${name}, which is not in lib/ of ${where}`);
        return lib;
      });
      this.sources.set(family, src);
    }
    return src;
  }

  private module(family: string, dtype: ElemType): GPUShaderModule {
    const key = `${family}<${dtype}>`;
    let mod = this.modules.get(key);
    if (mod) return mod;
    let code = this.source(family);
    // Subgroup kernels (gpu/variants.ts) carry `enable subgroups;` in their own file; it
    // compiles only on a device created with the feature (device.ts requests it when the
    // adapter has it), so say which feature is missing rather than let WGSL fail.
    if (/^enable subgroups;/m.test(code) && !this.device.features.has('subgroups')) {
      throw new GpuError(`kernel family '${family}' needs the 'subgroups' feature, which this device was not created with; use the 'tree' variant (rt.variants)`);
    }
    if (dtype === 'f16') {
      if (!this.hasF16) throw new GpuError(`kernel family '${family}' asked for f16 but the device has no shader-f16`);
      if (!code.includes('alias T = f32;')) throw new GpuError(`kernel family '${family}' has no f16 variant (no 'alias T = f32;')`);
      code = `enable f16;\n${code.replace('alias T = f32;', 'alias T = f16;')}`;
    }
    if (debugFlags().dumpWgsl) process.stderr.write(`// ---- ${key} ----\n${code}\n`);
    mod = this.device.createShaderModule({ label: key, code });
    this.modules.set(key, mod);
    return mod;
  }

  get(spec: KernelSpec): { pipeline: GPUComputePipeline; key: string } {
    const key = pipelineKey(spec);
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const module = this.module(spec.family, spec.dtype ?? 'f32');
      pipeline = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module, entryPoint: spec.entry, constants: spec.overrides },
      });
      this.pipelines.set(key, pipeline);
      this.compiled++;
    }
    return { pipeline, key };
  }

  /** Compiles and reports errors synchronously-ish: used by tests and `info`. */
  async check(spec: KernelSpec): Promise<void> {
    this.device.pushErrorScope('validation');
    this.get(spec);
    const err = await this.device.popErrorScope();
    if (err) throw new GpuError(`kernel ${pipelineKey(spec)} failed to compile: ${err.message}`);
  }
}
