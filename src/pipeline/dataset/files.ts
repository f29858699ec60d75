// The files of one dataset sample, DIR/samples/<id>/:
//   image.png            the generated picture
//   sample.safetensors   storage 'regen' (format grounded-sd.dataset-sample/1):
//                          latent         F32 [1, C, h, w]  input latents of the feature call
//                          prompt_ids     I32 [2, L]        token ids: negative prompt, prompt
//                          text_embedding F32 [n, D]        class embeddings
//                          target         U8  [n, S, S]     masks, all-zero for a missed class
//                        metadata: classes, found, prompt, negative_prompt, index, seed,
//                          feature_timestep, low_norm (features' fingerprint, generate.ts)
//                        storage 'f16': the training-sample format of io/samples.ts
//                          (features.<group>.<i> F16, text_embedding, target U8), which
//                          readSample reads, plus the same metadata.
// A sample is written into a temporary folder DIR/samples/.<id>.tmp-<pid>-<n>, which is
// renamed to <id> when every file is complete; only then is its manifest line appended.
// All writing goes through a DatasetIo, so tests can inject a failing disk.
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writePng } from '../../io/png.js';
import { SafetensorsFile, writeSafetensors, type WritableDType } from '../../io/safetensors.js';
import { FEATURE_GROUPS, SAMPLE_FORMAT } from '../../io/samples.js';
import { f32ToF16Array } from '../../tensor/f16.js';
import type { GeneratedSample } from './generate.js';
import type { OkRecord } from './manifest.js';
import type { PlannedSample } from './plan.js';
import type { DatasetSettings, Storage } from './settings.js';

export const SAMPLES_DIR = 'samples';
export const IMAGE_FILE = 'image.png';
export const SAMPLE_FILE = 'sample.safetensors';
export const REGEN_FORMAT = 'grounded-sd.dataset-sample/1';

export interface StoredTensor { dtype: WritableDType; shape: number[]; data: ArrayBufferView }

/** Everything one sample folder holds. */
export interface SampleFiles {
  image: { width: number; height: number; rgba: Uint8Array };
  tensors: Record<string, StoredTensor>;
  metadata: Record<string, string>;
}

/** Where a build writes (the file system by default; tests inject failures). */
export interface DatasetIo {
  /** Writes the sample's files into the existing folder `dir`. */
  writeSample(dir: string, files: SampleFiles): Promise<void>;
  /** Appends one line to the file at `path`. */
  appendLine(path: string, line: string): Promise<void>;
}

export const fileDatasetIo: DatasetIo = {
  async writeSample(dir, f) {
    await mkdir(dir, { recursive: true });
    await writePng(join(dir, IMAGE_FILE), f.image.rgba, f.image.width, f.image.height);
    await writeSafetensors(join(dir, SAMPLE_FILE), f.tensors, f.metadata);
  },
  async appendLine(path, line) {
    await appendFile(path, line);
  },
};

/** The masks as one U8 [n, S, S] array (a missed class all zero). */
function targetOf(masks: ReadonlyArray<Uint8Array | null>, S: number): Uint8Array {
  const out = new Uint8Array(masks.length * S * S);
  masks.forEach((m, c) => {
    if (m) out.set(m, c * S * S);
  });
  return out;
}

/** The sample folder's contents for storage `storage`. */
export function sampleFiles(gen: GeneratedSample, plan: PlannedSample, masks: ReadonlyArray<Uint8Array | null>, s: DatasetSettings): SampleFiles {
  const n = plan.classes.length;
  const S = s.shape.out_size;
  const [C, h, w] = s.shape.latent;
  const metadata: Record<string, string> = {
    format: s.storage === 'regen' ? REGEN_FORMAT : SAMPLE_FORMAT,
    storage: s.storage,
    classes: JSON.stringify(plan.classes),
    found: JSON.stringify(masks.map((m) => m !== null)),
    prompt: plan.prompt,
    negative_prompt: s.negative_prompt,
    index: String(plan.index),
    seed: String(plan.seed),
    feature_timestep: String(s.feature_timestep),
    low_norm: JSON.stringify(gen.lowNorm),
  };
  const tensors: Record<string, StoredTensor> = {};
  if (s.storage === 'regen') {
    tensors.latent = { dtype: 'F32', shape: [1, C, h, w], data: gen.latent };
    tensors.prompt_ids = { dtype: 'I32', shape: [2, s.shape.text_length], data: gen.promptIds };
  } else {
    if (!gen.features) throw new InputError('dataset: f16 storage needs the generated features');
    for (const g of FEATURE_GROUPS) gen.features[g].forEach((f, i) => (tensors[`features.${g}.${i}`] = { dtype: 'F16', shape: f.shape, data: f32ToF16Array(f.data) }));
  }
  tensors.text_embedding = { dtype: 'F32', shape: [n, s.shape.context_dim], data: gen.textEmbedding };
  tensors.target = { dtype: 'U8', shape: [n, S, S], data: targetOf(masks, S) };
  return { image: { width: gen.width, height: gen.height, rgba: gen.rgba }, tensors, metadata };
}

/** The tensors (name -> dtype and shape) a sample of record `r` must hold. */
export function expectedTensors(s: DatasetSettings, n: number): Map<string, { dtype: string; shape: number[] }> {
  const out = new Map<string, { dtype: string; shape: number[] }>();
  if (s.storage === 'regen') {
    out.set('latent', { dtype: 'F32', shape: [1, ...s.shape.latent] });
    out.set('prompt_ids', { dtype: 'I32', shape: [2, s.shape.text_length] });
  } else {
    for (const g of FEATURE_GROUPS) {
      const R = s.shape.feature_res[g];
      s.shape.feature_channels[g].forEach((c, i) => out.set(`features.${g}.${i}`, { dtype: 'F16', shape: [1, c, R, R] }));
    }
  }
  out.set('text_embedding', { dtype: 'F32', shape: [n, s.shape.context_dim] });
  out.set('target', { dtype: 'U8', shape: [n, s.shape.out_size, s.shape.out_size] });
  return out;
}

/** Opens a sample file and checks its header against the settings and its manifest
 *  record (tensor names, dtypes, shapes, classes, found, prompt); the caller closes it.
 *  Every problem is an InputError naming the file. */
export async function openSampleFile(path: string, s: DatasetSettings, r: OkRecord): Promise<SafetensorsFile> {
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(path);
  } catch (e) {
    throw new InputError(`${(e as Error).message.startsWith(path) ? '' : `${path}: `}${(e as Error).message}`);
  }
  try {
    const bad = (what: string): never => {
      throw new InputError(`${path}: ${what}`);
    };
    const m = f.metadata;
    const want = s.storage === 'regen' ? REGEN_FORMAT : SAMPLE_FORMAT;
    if (m.format !== want) bad(`format is '${m.format ?? 'missing'}', a ${s.storage} dataset sample has '${want}'`);
    if (m.classes !== JSON.stringify(r.classes) || m.found !== JSON.stringify(r.found) || m.prompt !== r.prompt) {
      bad(`its classes/found/prompt (${m.classes}, ${m.found}, '${m.prompt}') differ from its manifest line (${JSON.stringify(r.classes)}, ${JSON.stringify(r.found)}, '${r.prompt}')`);
    }
    const expected = expectedTensors(s, r.classes.length);
    for (const [name, t] of expected) {
      const info = f.tensors.get(name);
      if (!info) bad(`tensor '${name}' is missing`);
      else if (info.dtype !== t.dtype || info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        bad(`tensor '${name}' is ${info.dtype}[${info.shape}], the dataset's samples have ${t.dtype}[${t.shape}]`);
      }
    }
    const extra = [...f.tensors.keys()].filter((k) => !expected.has(k));
    if (extra.length) bad(`unexpected tensors ${extra.slice(0, 4).join(', ')}`);
    if (s.storage === 'regen' && !Number.isFinite(Number(m.low_norm))) bad(`metadata low_norm '${m.low_norm}' is not a number`);
    return f;
  } catch (e) {
    await f.close();
    throw e;
  }
}

export function sampleDir(root: string, id: string): string {
  return join(root, SAMPLES_DIR, id);
}

/** Temporary folder names: `.<id>.tmp-<pid>-<n>`. */
export const TEMP_RE = /^\.(\d+)\.tmp-\d+-\d+$/;

export type { Storage };
