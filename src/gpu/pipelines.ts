// Pipeline cache: WGSL families are read once from shaders/<family>.wgsl and compiled
// once per (family, entry point, dtype, sorted override constants). Two text
// substitutions only: the element-type alias (`alias T = f32;` becomes f16 on request)
// and `// #include "name.wgsl"` lines, replaced by shaders/lib/name.wgsl (shared helper
// functions such as the activations, so fused epilogues do not copy them).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debugFlags } from './debug.js';
import { GpuError } from './errors.js';

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

function findShaderDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '../../shaders'), resolve(process.cwd(), 'shaders')];
  for (const c of candidates) if (existsSync(join(c, 'fill.wgsl'))) return c;
  throw new GpuError(`cannot find the shaders/ folder (looked in ${candidates.join(', ')})`);
}

export class PipelineCache {
  private sources = new Map<string, string>();
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();
  private shaderDir: string | null = null;
  compiled = 0;

  constructor(private device: GPUDevice, private hasF16: boolean) {}

  source(family: string): string {
    let src = this.sources.get(family);
    if (src === undefined) {
      this.shaderDir ??= findShaderDir();
      const path = join(this.shaderDir, `${family}.wgsl`);
      if (!existsSync(path)) throw new GpuError(`no WGSL family '${family}' (expected ${path})`);
      const dir = this.shaderDir;
      src = readFileSync(path, 'utf8').replace(/^\/\/ #include "([\w.-]+\.wgsl)"$/gm, (_, name: string) => {
        const lib = join(dir, 'lib', name);
        if (!existsSync(lib)) throw new GpuError(`${family}.wgsl includes ${name}, which is not in ${join(dir, 'lib')}`);
        return readFileSync(lib, 'utf8');
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
