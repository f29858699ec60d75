// One grounded (or DAAM-only) generation run as the CLI does it, shared by `generate
// --grounding/--daam` and `demo`: build or load the model and the grounding module, sample,
// write one result folder per image (pictures first, result.json last) and return the
// folders. result.json records every setting, the time per stage, the model paths with the
// SHA-256 of every weight file read (hashed while the GPU works), the engine version, the
// adapter and the run's warnings.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { sha256File, type FileDigest } from '../io/file_hash.js';
import { writeResultFolder, type FolderImage, type FolderRecord } from '../io/render/result_folder.js';
import { openSdWeights } from '../io/sd_weights.js';
import type { GroundingConfig } from '../models/grounding/config.js';
import type { Segmodule } from '../models/grounding/segmodule.js';
import type { ModelDtype } from '../models/precision.js';
import type { SchedulerName } from '../models/schedulers/index.js';
import { StableDiffusion } from '../models/sd.js';
import { disposeParams } from '../nn/module.js';
import { generateWithDaam } from '../pipeline/daam_generate.js';
import { generateGrounded, type BatchNormMode } from '../pipeline/grounded.js';
import { BUILTIN_TINY_CONFIGS, defaultImageSize, loadGroundingModule, randomGroundingModule } from '../pipeline/grounding_module.js';
import { checkGenerationSize, deviceLimits, generationModel } from '../pipeline/size_check.js';

export interface GroundedRunSpec {
  /** 'tiny' or a diffusers folder / single-file checkpoint. */
  model: string;
  tokenizer?: string;
  /** 'tiny', a checkpoint path, or null for DAAM only. */
  grounding: string | null;
  daam: boolean;
  /** --tiny was used (prints the deprecation notice). */
  deprecatedTiny?: boolean;
  prompt: string;
  negativePrompt: string;
  classes?: string[];
  steps: number;
  guidanceScale: number;
  seed: number;
  batch: number;
  height?: number;
  width?: number;
  featureTimestep?: number;
  batchNorm: BatchNormMode;
  threshold: number;
  scheduler?: SchedulerName;
  out: string;
  /** Precision of the SD models (default f32); the grounding module runs in f32. */
  dtype?: ModelDtype;
}

export const TINY_WEIGHTS = 'random (built-in tiny model)';

/** The package's version (package.json ships with the package; absent in a bundle). */
function engineVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: string; version?: string };
    return pkg.name === 'grounded-sd' && typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The weight files a model path makes StableDiffusion.load read. */
async function modelWeightFiles(path: string): Promise<string[]> {
  if (!statSync(path).isDirectory()) return [path];
  const w = await openSdWeights(path);
  try {
    return Object.values(w.sources).map((s) => s.description).filter((d) => existsSync(d) && statSync(d).isFile());
  } finally {
    await w.close();
  }
}

const seconds = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${s.toFixed(1)}s`);

/** Progress lines on stderr: per stage step/total, rate and ETA, rewritten in place; a
 *  one-step stage prints its time. A stage's clock starts when the previous one ended. */
function progressPrinter(write: (s: string) => void): { update: (p: { stage: string; step: number; total: number }) => void; end: () => void } {
  let stage = '';
  let start = performance.now();
  let last = start;
  return {
    update(p) {
      const now = performance.now();
      if (p.stage !== stage) {
        if (stage) write('\n');
        stage = p.stage;
        start = last;
      }
      last = now;
      const elapsed = Math.max(1e-3, (now - start) / 1000);
      if (p.total === 1) {
        write(`\r${p.stage} done in ${seconds(elapsed)}`);
        return;
      }
      const rate = p.step / elapsed;
      const speed = rate >= 1 ? `${rate.toFixed(2)} it/s` : `${(1 / rate).toFixed(2)} s/it`;
      write(`\r${p.stage} ${p.step}/${p.total}  ${speed}  ETA ${seconds((p.total - p.step) / rate)}   `);
    },
    end: () => stage && write('\n'),
  };
}

const ms = (v: number) => Math.round(v * 10) / 10;

interface Weights {
  path: string;
  weights: string | FileDigest[];
}

/** Runs `spec` on `rt`; `write` receives progress text (stderr). Returns the folders. */
export async function runGrounded(rt: Runtime, spec: GroundedRunSpec, write: (s: string) => void): Promise<string[]> {
  if (spec.deprecatedTiny) write('grounded-sd: --tiny is deprecated; use --model tiny\n');
  const tiny = spec.model === 'tiny';
  const t0 = performance.now();
  const limits = deviceLimits(rt);
  const sizeOf = (sampleSize: number | null | undefined, f: number) => ({ height: spec.height ?? (sampleSize ?? 64) * f, width: spec.width ?? (sampleSize ?? 64) * f, batchSize: spec.batch });
  const dtype = spec.dtype ?? 'f32';
  let sd: StableDiffusion;
  if (tiny) {
    sd = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0, { dtype });
  } else {
    if (!existsSync(spec.model)) throw new InputError(`--model ${spec.model} does not exist; give a diffusers folder or a single-file checkpoint, or --model tiny`);
    sd = await StableDiffusion.load(rt, spec.model, {
      dtype,
      tokenizerDir: spec.tokenizer,
      beforeWeights: (m) => checkGenerationSize(generationModel(m, dtype), sizeOf(m.unet.config.sample_size, m.vae.scaleFactor), limits),
    });
  }
  let seg: Segmodule | undefined;
  try {
    const size = spec.height ?? defaultImageSize(sd);
    const loadMs = performance.now() - t0;
    write(`model ready in ${seconds(loadMs / 1000)}${tiny ? ` (${TINY_WEIGHTS}: pictures are noise)` : ''}\n`);
    let groundingConfig: GroundingConfig | null = null;
    let prefix = '';
    if (spec.grounding === 'tiny') {
      seg = randomGroundingModule(rt, sd, size, 0);
      groundingConfig = seg.config;
    } else if (spec.grounding) {
      if (!existsSync(spec.grounding)) throw new InputError(`--grounding ${spec.grounding} does not exist; give the grounding checkpoint (see weights/README.md)`);
      const loaded = await loadGroundingModule(rt, sd, spec.grounding, size);
      seg = loaded.module;
      groundingConfig = loaded.config;
      prefix = loaded.prefix;
    }
    // Hash the files already read while the GPU samples; awaited before result.json.
    const hashing = Promise.all([
      tiny ? Promise.resolve(TINY_WEIGHTS) : modelWeightFiles(spec.model).then((fs) => Promise.all(fs.map(sha256File))),
      !spec.grounding || spec.grounding === 'tiny' ? Promise.resolve(TINY_WEIGHTS) : sha256File(spec.grounding).then((d) => [d]),
    ]);
    hashing.catch(() => undefined);

    const progress = progressPrinter(write);
    const common = {
      prompt: spec.prompt, negativePrompt: spec.negativePrompt, steps: spec.steps, guidanceScale: spec.guidanceScale, seed: spec.seed,
      batch: spec.batch, scheduler: spec.scheduler, onProgress: progress.update,
    };
    let run;
    try {
      run = seg
        ? await generateGrounded(sd, seg, { ...common, classes: spec.classes, height: size, width: size, featureStep: spec.featureTimestep, batchNorm: spec.batchNorm, threshold: spec.threshold, daam: spec.daam })
        : await generateWithDaam(sd, { ...common, height: spec.height ?? size, width: spec.width ?? size });
    } finally {
      progress.end();
    }
    const s = run.settings;
    const [modelWeights, groundingWeights] = await hashing;
    const model: Weights = { path: spec.model, weights: modelWeights };
    const grounding = spec.grounding ? { path: spec.grounding, weights: groundingWeights, prefix, config: groundingConfig } : null;
    const g = 'featureStep' in s ? s : null;
    const settings = {
      mode: seg ? 'grounded' : 'daam', steps: s.steps, guidance_scale: s.guidanceScale, scheduler: s.scheduler, timesteps: s.timesteps,
      height: run.height, width: run.width, batch: s.batch, dtype: sd.dtype,
      feature_step: g?.featureStep ?? null, feature_step_index: g?.featureStepIndex ?? null, batch_norm: g?.batchNorm ?? null, threshold: g?.threshold ?? null,
      daam: seg ? (g?.daam ?? false) : true, daam_words: g ? (g.daam ? g.daamWords : []) : 'words' in s ? s.words : [], daam_threshold: g ? g.daamThreshold : 'threshold' in s ? s.threshold : null,
    };
    const report = rt.gpu.report;
    const adapter = { description: report.description, vendor: report.vendor, architecture: report.architecture, backend: report.backend, fallback: report.isFallbackAdapter };
    const folders: string[] = [];
    for (const img of run.images) {
      const dir = join(spec.out, `${s.seed}_${img.index}`);
      const t1 = performance.now();
      const folderImage: FolderImage = {
        width: run.width, height: run.height, rgba: img.rgba,
        classes: 'classes' in img ? img.classes : [], masks: 'masks' in img ? img.masks : [],
        daam: img.daam?.map((d) => ({ word: d.word, heatmap: d.heatmap, mask: d.mask, mergeIndices: d.mergeIndices })),
      };
      await writeResultFolder(dir, folderImage, (files: FolderRecord) => ({
        format: 'grounded-sd result 1',
        engine: { name: 'grounded-sd', version: engineVersion() },
        prompt: s.prompt,
        negative_prompt: s.negativePrompt,
        seed: s.seed,
        index: img.index,
        ...files,
        settings,
        timings_ms: { load_model: ms(loadMs), ...Object.fromEntries(Object.entries(run.timings).map(([k, v]) => [k, ms(v)])), write: ms(performance.now() - t1) },
        model,
        grounding,
        adapter,
        warnings: run.warnings,
      }));
      folders.push(dir);
    }
    return folders;
  } finally {
    if (seg) disposeParams(seg);
    sd.dispose();
  }
}
