// Opening Stable Diffusion 1.x weights from disk: a diffusers folder (model_index.json,
// unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a single-file LDM checkpoint in
// safetensors, mapped through the one LDM -> diffusers table (ldm_keys.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, WeightError } from '../gpu/errors.js';
import { ldmToDiffusers, SD1_LAYOUT, type SdComponent } from './ldm_keys.js';
import { SafetensorsFile } from './safetensors.js';
import { isTorchCheckpointPath, loadCheckpoint, TORCH_CHECKPOINT_EXTENSIONS } from './torch_pickle.js';
import { mappedSource, safetensorsSource, type TensorSource } from './weight_source.js';

export interface SdWeights {
  kind: 'diffusers' | 'single-file';
  path: string;
  sources: Record<SdComponent, TensorSource>;
  /** config.json of each component when the folder has one (single files have none). */
  configs: Partial<Record<SdComponent | 'scheduler', Record<string, unknown>>>;
  /** tokenizer/ folder of a diffusers model (vocab.json + merges.txt), if present. */
  tokenizerDir: string | null;
  close(): Promise<void>;
}

const WEIGHT_FILES: Record<SdComponent, string> = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
};

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

function weightFile(dir: string, component: SdComponent, variant: 'fp16' | undefined): string {
  const base = WEIGHT_FILES[component];
  const candidates = variant ? [`${base}.${variant}.safetensors`, `${base}.safetensors`] : [`${base}.safetensors`, `${base}.fp16.safetensors`];
  for (const c of candidates) if (existsSync(join(dir, c))) return join(dir, c);
  const bin = join(dir, `${base}.bin`);
  const hint = existsSync(bin) ? ` (found ${base}.bin: PyTorch pickles are not read; convert it to safetensors)` : '';
  throw new WeightError(`no ${candidates.join(' or ')} in ${dir}${hint}`);
}

/** Opens a diffusers folder or a single-file checkpoint. `variant: 'fp16'` prefers
 *  *.fp16.safetensors files in a folder. */
export async function openSdWeights(path: string, opts: { variant?: 'fp16' } = {}): Promise<SdWeights> {
  if (!existsSync(path)) throw new InputError(`model path ${path} does not exist`);
  const files: { close(): Promise<void> }[] = [];
  const close = async () => {
    for (const f of files) await f.close();
  };
  try {
    if (statSync(path).isDirectory()) {
      if (!existsSync(join(path, 'model_index.json'))) {
        throw new InputError(`${path} is a folder without model_index.json: not a diffusers Stable Diffusion folder`);
      }
      const sources = {} as Record<SdComponent, TensorSource>;
      const configs: SdWeights['configs'] = {};
      for (const component of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
        const dir = join(path, component);
        if (!existsSync(dir)) throw new WeightError(`${path} has no ${component}/ folder`);
        const file = await SafetensorsFile.open(weightFile(dir, component, opts.variant));
        files.push(file);
        sources[component] = safetensorsSource(file);
        if (existsSync(join(dir, 'config.json'))) configs[component] = readJson(join(dir, 'config.json'));
      }
      const sched = join(path, 'scheduler', 'scheduler_config.json');
      if (existsSync(sched)) configs.scheduler = readJson(sched);
      const tok = join(path, 'tokenizer');
      return { kind: 'diffusers', path, sources, configs, tokenizerDir: existsSync(join(tok, 'vocab.json')) ? tok : null, close };
    }
    // torch.save files (Lightning .ckpt, .pth, .pt, .bin) go through the allowlisted
    // pickle reader (torch_pickle.ts), which serves the same names as a safetensors file.
    const pickled = isTorchCheckpointPath(path);
    if (!pickled && !path.endsWith('.safetensors')) {
      throw new InputError(`${path}: single-file checkpoints must be .safetensors or a torch.save file (${TORCH_CHECKPOINT_EXTENSIONS.join(', ')})`);
    }
    const file = pickled ? await loadCheckpoint(path) : await SafetensorsFile.open(path);
    files.push(file);
    const view = (map: (n: string) => string | null, description: string) =>
      file instanceof SafetensorsFile ? mappedSource([file], map, description) : file.renamed(map, description);
    const sources = {} as Record<SdComponent, TensorSource>;
    for (const component of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
      const src = view((n) => {
        const m = ldmToDiffusers(n, SD1_LAYOUT);
        return m && m.component === component ? m.name : null;
      }, `${path} (${component})`);
      if (src.names().length === 0) throw new WeightError(`${path} has no ${component} tensors under the LDM names (is it an SD 1.x checkpoint?)`);
      sources[component] = src;
    }
    return { kind: 'single-file', path, sources, configs: {}, tokenizerDir: null, close };
  } catch (e) {
    await close();
    throw e;
  }
}
