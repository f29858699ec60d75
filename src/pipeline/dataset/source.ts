// Training samples from a built dataset (`train --data DIR` on a folder with dataset.json):
// a SampleSource for the training loop (pipeline/train), plus a held-out validation part.
//
// Opening checks every finished sample cheaply (its files exist with the sizes its manifest
// line records, its safetensors header has the dataset's tensors, shapes, classes and
// prompt); a sample that fails is left out and reported in `problems`, never trained on.
// Reading a sample checks its values (finite, targets 0/1) and throws naming the file.
//
// Storage 'f16': the stored features are read (io/samples.ts readSample). Storage 'regen':
// the features are recomputed on the GPU with the feature step's one UNet call from the
// stored latents, timestep and token ids (dataset/generate.ts featureCall), and compared
// with the fingerprint stored at build time: a model other than the one the dataset was
// built with is refused rather than trained on. The loop takes host samples, so the
// recomputed features are read back once per sample (DATASET.md counts that cost).
//
// Order: the training part in a fresh seeded shuffle per epoch (as SampleFolder), so
// sample k of a run is a function of (seed, k) and a resumed run sees the same sequence.
// Validation: the `holdOut` samples with the highest indices.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, WeightError } from '../../gpu/errors.js';
import { checkSample, readSample, seededPermutation, type HostArray, type SampleSpec, type TrainingSample } from '../../io/samples.js';
import type { StableDiffusion } from '../../models/sd.js';
import { scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { featureLayout } from '../grounded/features.js';
import type { SampleSource } from '../train/types.js';
import { featureCall, groupNorm2, readFeatures } from './generate.js';
import { IMAGE_FILE, openSampleFile, SAMPLE_FILE, sampleDir } from './files.js';
import { readManifest, type OkRecord } from './manifest.js';
import { datasetShape, readDatasetSettings, settingsDifferences, type DatasetSettings } from './settings.js';

/** Relative difference allowed between a recomputed and the stored feature fingerprint
 *  (kernels differ slightly between devices; another model differs entirely). */
export const FINGERPRINT_TOLERANCE = 1e-3;

export interface DatasetEntry {
  record: OkRecord;
  /** The sample's safetensors file. */
  file: string;
}

export interface DatasetSourceOptions {
  /** The SD model the dataset was built with; required for 'regen' storage. */
  sd?: StableDiffusion;
  /** Seed of the data order (default 0). */
  seed?: number;
  /** Samples held out for validation (default 0). */
  holdOut?: number;
}

const fileSize = (p: string) => stat(p).then((s) => (s.isFile() ? s.size : -1), () => -1);

export class DatasetSource implements SampleSource {
  private constructor(
    readonly dir: string,
    readonly settings: DatasetSettings,
    readonly entries: DatasetEntry[],
    readonly train: DatasetEntry[],
    readonly validation: DatasetEntry[],
    /** Samples left out, each with the reason. */
    readonly problems: string[],
    /** Samples the build skipped (the annotator found none of their classes). */
    readonly skippedByBuild: number,
    readonly seed: number,
    private readonly sd?: StableDiffusion,
  ) {}

  static async open(dir: string, o: DatasetSourceOptions = {}): Promise<DatasetSource> {
    const settings = await readDatasetSettings(dir);
    if (!settings) throw new InputError(`${dir} is not a dataset folder (no dataset.json); build one with grounded-sd dataset build`);
    if (settings.storage === 'regen' && !o.sd) {
      throw new InputError(`${dir} stores 'regen' samples (features are recomputed with one UNet call each): give the model it was built with (--model ${settings.model})`);
    }
    if (o.sd) checkModel(o.sd, settings, dir);
    const seed = o.seed ?? 0;
    const holdOut = o.holdOut ?? 0;
    if (!Number.isSafeInteger(holdOut) || holdOut < 0) throw new InputError(`--val-count ${holdOut} must be a non-negative integer`);
    const manifest = await readManifest(dir);
    const problems = manifest.problems.map((p) => `left out: ${p}`);
    const entries: DatasetEntry[] = [];
    let skippedByBuild = 0;
    const records = [...manifest.records.values()].sort((a, b) => a.index - b.index);
    for (const r of records) {
      if (r.status === 'skipped') {
        skippedByBuild++;
        continue;
      }
      const folder = sampleDir(dir, r.id);
      const file = join(folder, SAMPLE_FILE);
      try {
        const [img, smp] = [await fileSize(join(folder, IMAGE_FILE)), await fileSize(file)];
        if (img !== r.bytes.image || smp !== r.bytes.sample) {
          throw new InputError(`${folder}: ${IMAGE_FILE} has ${img < 0 ? 'no file' : `${img} bytes`} and ${SAMPLE_FILE} ${smp < 0 ? 'no file' : `${smp} bytes`}, its manifest line records ${r.bytes.image} and ${r.bytes.sample}`);
        }
        await (await openSampleFile(file, settings, r)).close();
        entries.push({ record: r, file });
      } catch (e) {
        if (!(e instanceof InputError || e instanceof WeightError)) throw e;
        problems.push(`left out sample ${r.id}: ${e.message} (rebuild it: delete its manifest line and rerun dataset build)`);
      }
    }
    if (entries.length === 0) {
      throw new InputError(`${dir} has no usable samples (${records.length} recorded, ${skippedByBuild} skipped by the build${problems.length ? `; ${problems.slice(0, 3).join('; ')}` : ''})`);
    }
    if (holdOut >= entries.length) {
      throw new InputError(`--val-count ${holdOut} would hold out all ${entries.length} usable samples of ${dir}; keep at least one for training`);
    }
    const cut = entries.length - holdOut;
    return new DatasetSource(dir, settings, entries, entries.slice(0, cut), entries.slice(cut), problems, skippedByBuild, seed, o.sd);
  }

  /** The shapes a module trained on this dataset takes. */
  get spec(): SampleSpec {
    const s = this.settings.shape;
    return { feature_channels: s.feature_channels, feature_res: s.feature_res, out_size: s.out_size, context_dim: s.context_dim };
  }

  get length(): number {
    return this.train.length;
  }

  /** The training entry at global position `k` (a fresh shuffle per epoch). */
  indexAt(k: number): number {
    const n = this.train.length;
    const epoch = Math.floor(k / n);
    return seededPermutation(n, (this.seed * 0x9e3779b1 + epoch) >>> 0)[k % n];
  }

  async at(k: number): Promise<TrainingSample> {
    return this.read(this.train[this.indexAt(k)]);
  }

  /** One sample with its features (read, or recomputed on the GPU). */
  async read(e: DatasetEntry): Promise<TrainingSample> {
    if (this.settings.storage === 'f16') return readSample(e.file, this.spec);
    const sd = this.sd as StableDiffusion;
    const f = await openSampleFile(e.file, this.settings, e.record);
    let latent: Float32Array;
    let ids: Float32Array;
    let emb: Float32Array;
    let target: Float32Array;
    let stored: number;
    try {
      [latent, ids, emb, target] = [await f.readF32('latent'), await f.readF32('prompt_ids'), await f.readF32('text_embedding'), await f.readF32('target')];
      stored = Number(f.metadata.low_norm);
    } finally {
      await f.close();
    }
    const bad = (what: string): never => {
      throw new InputError(`${e.file}: ${what}; the sample is damaged: delete its manifest line and rerun dataset build to rebuild it`);
    };
    const at = latent.findIndex((v) => !Number.isFinite(v));
    if (at >= 0) bad(`latent holds ${latent[at]} at index ${at}`);
    const vocab = sd.textEncoder.config.vocab_size;
    const idAt = ids.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= vocab);
    if (idAt >= 0) bad(`prompt_ids holds ${ids[idAt]} at index ${idAt}, outside the text encoder's ${vocab} token ids`);
    const tAt = target.findIndex((v) => v !== 0 && v !== 1);
    if (tAt >= 0) bad(`target holds ${target[tAt]} at index ${tAt}; masks are 0 or 1`);
    const s = this.settings;
    const L = s.shape.text_length;
    const rt = sd.rt;
    const latentT = Tensor.from(rt, latent, [1, ...s.shape.latent], 'f32', 'latent');
    let text: Tensor | undefined;
    let features;
    try {
      text = scope(() => sd.textEncoder.forward(rt, [Array.from(ids.subarray(0, L)), Array.from(ids.subarray(L))]).lastHiddenState);
      const layout = featureLayout(sd.unet, s.shape.latent[1], s.shape.latent[2]);
      features = await readFeatures(featureCall(sd, { steps: s.steps, featureTimestep: s.feature_timestep, layout }, latentT, text));
    } finally {
      latentT.dispose();
      text?.dispose();
    }
    const norm = groupNorm2(features.low.map((a) => a.data));
    if (!(Math.abs(norm - stored) <= FINGERPRINT_TOLERANCE * Math.max(Math.abs(stored), 1e-30))) {
      throw new WeightError(
        `${e.file}: the features recomputed with this model differ from the ones the dataset was built with (fingerprint ${norm} vs ${stored} stored); ` +
          `give the model it was built with (${s.model})`,
      );
    }
    const n = e.record.classes.length;
    const sample: TrainingSample = {
      features,
      textEmbedding: { shape: [n, s.shape.context_dim], data: emb } as HostArray,
      target: { shape: [n, s.shape.out_size, s.shape.out_size], data: target },
      classes: [...e.record.classes],
      prompt: e.record.prompt,
      source: e.file,
    };
    checkSample(sample, e.file, this.spec);
    return sample;
  }
}

/** Throws WeightError unless `sd` makes samples of the dataset's shapes. */
function checkModel(sd: StableDiffusion, s: DatasetSettings, dir: string): void {
  const f = sd.vae.scaleFactor;
  let diff: string[];
  try {
    const layout = featureLayout(sd.unet, s.size / f, s.size / f);
    diff = settingsDifferences(s.shape as unknown as Record<string, unknown>, datasetShape(sd, s.size, layout) as unknown as Record<string, unknown>, ['dataset', 'model']);
  } catch (e) {
    diff = [(e as Error).message];
  }
  if (diff.length) throw new WeightError(`--model does not fit the dataset in ${dir} (${diff.join('; ')}); give the model it was built with (${s.model})`);
}
