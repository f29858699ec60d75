// Opening Stable Diffusion 1.x weights from disk: a diffusers folder (model_index.json,
// unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a single-file LDM checkpoint in
// safetensors, mapped through the one LDM -> diffusers table (ldm_keys.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, WeightError } from '../gpu/errors.js';
import { ldmToDiffusers, SD1_LAYOUT, type SdComponent } from './ldm_keys.js';
import { notRegularFile } from './regular_file.js';
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

const LDM_PREFIX: Record<SdComponent, string> = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  text_encoder: 'cond_stage_model.transformer.',
};

const WEIGHT_FILES: Record<SdComponent, string> = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
};

/** A config file's JSON object. Anything else (null, an array, a number) is refused:
 *  treating it as "no config" would silently build the SD 1.5 defaults instead. */
function readJson(path: string): Record<string, unknown> {
  const why = notRegularFile(path);
  if (why) throw new InputError(`${path} ${why}; expected a JSON config file`);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    const found = doc === null ? 'null' : Array.isArray(doc) ? 'an array' : `a ${typeof doc} (${JSON.stringify(doc)})`;
    throw new InputError(`${path} must hold a JSON object of config keys, found ${found}; restore the file from the model's release (deleting it falls back to the SD 1.5 defaults)`);
  }
  return doc as Record<string, unknown>;
}

/** Checks that a tokenizer folder holds vocab.json and merges.txt as regular files
 *  (reading a FIFO would block forever). */
export function checkTokenizerFolder(dir: string): void {
  for (const f of ['vocab.json', 'merges.txt']) {
    const why = notRegularFile(join(dir, f));
    if (why) throw new InputError(`${join(dir, f)} ${why}; a tokenizer folder needs vocab.json and merges.txt files`);
  }
}

/** A diffusers model's tokenizer/ folder, or null when it has no vocab.json. */
function tokenizerFolder(dir: string): string | null {
  if (!existsSync(join(dir, 'vocab.json'))) return null;
  checkTokenizerFolder(dir);
  return dir;
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
      return { kind: 'diffusers', path, sources, configs, tokenizerDir: tokenizerFolder(join(path, 'tokenizer')), close };
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
      if (src.names().length === 0) {
        throw new WeightError(
          `${path} has no ${component} tensors under the LDM single-file names (${LDM_PREFIX[component]}*); it looks like ${src.looksLike?.() ?? 'another kind of file'}: ` +
            'give an SD 1.x single-file checkpoint or a diffusers folder',
        );
      }
      sources[component] = src;
    }
    return { kind: 'single-file', path, sources, configs: {}, tokenizerDir: null, close };
  } catch (e) {
    await close();
    throw e;
  }
}
