// `dataset build --annotator ddim-inverse --voc DIR`: training samples from real pictures
// and their label maps, in the PASCAL VOC layout (the paper's DDIM-inverse variant):
//
//   DIR/ImageSets/Segmentation/<list>.txt   picture ids, one per line (--voc-list, default train)
//   DIR/JPEGImages/<id>.jpg  (or <id>.png)  the picture
//   DIR/SegmentationClass/<id>.png          palette PNG with VOC's colour map: pixel value k
//                                           in 1..n is class k of the vocabulary (VOC order),
//                                           0 background, 255 void (object borders)
//
// Sample i is the picture at position i of the list (so --count, --shard, resume and merge
// work as for generated samples). Its plan:
//  - the classes: the seen classes of the split present in the label map; one or two of
//    them name the prompt ("a photograph of a X" / "a photograph of a X and a Y", the
//    official templates). With more than two, the two covering the most pixels (ties: the
//    vocabulary's order), largest first; the others stay in the picture and outside both
//    masks. A picture without a seen class is skipped and counted (manifest "skipped").
//  - geometry: centred square crop, resized to the dataset's size (voc_image.ts): the
//    picture antialiased, the label map by nearest neighbour;
//  - masks: pixel == class index (after the resize); void (255) is outside every mask, as
//    are background and other classes. A class that vanishes at the dataset's size keeps
//    an empty mask and no loss; when all do, the sample is skipped.
// Then on the GPU (invert.ts): VAE encode (posterior mean x scaling_factor), DDIM inversion
// with the prompt (guidance --guidance, default 1: conditional prediction alone) up to the
// dataset's feature timestep, and the feature step's one UNet call at the inverted latents
// (generate.ts featureCall, the call 'regen' training repeats). The stored latent is the
// inverted one, so regen and f16 samples look like generated ones and `train --data`
// trains on them unchanged. The sample file's metadata adds source_image (the picture,
// relative to DIR) and source_id.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { decodePaletteIndices, vocPalette } from '../../io/png_palette.js';
import type { StableDiffusion } from '../../models/sd.js';
import { scopeAsync } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import type { AnnotateSample, Annotator } from '../annotate/types.js';
import { classEmbeddings } from '../grounded/text.js';
import { sampleFiles } from './files.js';
import { featureCall, groupNorm2, readFeatures, type GeneratedSample, type SampleGeneration } from './generate.js';
import { encodeLatent, invertLatent } from './invert.js';
import type { MadeSample, SampleMaker } from './maker.js';
import { datasetPrompt, sampleId, type PlannedSample } from './plan.js';
import type { DatasetSettings } from './settings.js';
import { imageHeaderSize, readPicture, squareLabels, squarePicture } from './voc_image.js';

export const VOC_LIST_DIR = join('ImageSets', 'Segmentation');
export const VOC_IMAGE_DIR = 'JPEGImages';
export const VOC_MASK_DIR = 'SegmentationClass';
/** Label value of VOC's object borders ('void'): outside every mask. */
export const VOC_VOID = 255;

export interface VocEntry {
  id: string;
  image: string;
  mask: string;
}

interface VocPlan extends PlannedSample {
  entry: VocEntry;
  /** Label value of each class (index in the vocabulary + 1). */
  labels: number[];
  /** Why the sample is skipped (no seen class), or undefined. */
  skip?: string;
}

const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);
const isFile = (p: string) => stat(p).then((s) => s.isFile(), () => false);

/** Reads a label map (palette PNG with VOC's colours) to its indices. */
async function readLabels(path: string): Promise<{ width: number; height: number; indices: Uint8Array }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new InputError(`${path}: cannot read the label map (${(e as Error).message})`);
  }
  return decodePaletteIndices(bytes, vocPalette(), path);
}

export class VocInversionAnnotator implements Annotator, SampleMaker {
  readonly name = 'ddim-inverse';
  private readonly plans = new Map<string, VocPlan>();

  private constructor(
    readonly dir: string,
    readonly list: string,
    readonly entries: VocEntry[],
    readonly identity: Record<string, unknown>,
  ) {}

  /** Opens a VOC folder: checks the layout and that every listed picture and label map
   *  exists (errors name the missing file). `list` names ImageSets/Segmentation/<list>.txt. */
  static async open(dir: string, list = 'train'): Promise<VocInversionAnnotator> {
    if (!/^[\w.-]+$/.test(list)) throw new InputError(`--voc-list ${list} must be a list name such as train or val (the file ${join(VOC_LIST_DIR, '<name>.txt')} of the VOC folder)`);
    if (!(await isDir(dir))) throw new InputError(`--voc ${dir} is not a folder; give a PASCAL VOC folder (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/)`);
    for (const sub of [VOC_IMAGE_DIR, VOC_MASK_DIR]) {
      if (!(await isDir(join(dir, sub)))) throw new InputError(`${join(dir, sub)} is missing: a PASCAL VOC folder holds ${VOC_IMAGE_DIR}/ (pictures), ${VOC_MASK_DIR}/ (palette PNG label maps) and ${VOC_LIST_DIR}/<list>.txt`);
    }
    const listPath = join(dir, VOC_LIST_DIR, `${list}.txt`);
    let text: string;
    try {
      text = await readFile(listPath, 'utf8');
    } catch (e) {
      throw new InputError(`${listPath}: cannot read the picture list (${(e as Error).message}); --voc-list names ${VOC_LIST_DIR}/<name>.txt of the VOC folder`);
    }
    const ids: string[] = [];
    const seen = new Set<string>();
    text.split(/\r?\n/).forEach((raw, i) => {
      const id = raw.trim();
      if (id === '') return;
      if (!/^[\w.-]+$/.test(id) || id.startsWith('.')) throw new InputError(`${listPath} line ${i + 1}: '${id.slice(0, 60)}' is not a picture id (letters, digits, _ . -)`);
      if (seen.has(id)) throw new InputError(`${listPath} line ${i + 1}: '${id}' is listed twice`);
      seen.add(id);
      ids.push(id);
    });
    if (ids.length === 0) throw new InputError(`${listPath} lists no pictures`);
    const entries: VocEntry[] = [];
    for (const id of ids) {
      const candidates = ['.jpg', '.jpeg', '.png'].map((ext) => join(dir, VOC_IMAGE_DIR, id + ext));
      let image: string | undefined;
      for (const c of candidates) {
        if (await isFile(c)) {
          image = c;
          break;
        }
      }
      if (!image) throw new InputError(`${listPath} lists '${id}', but ${candidates[0]} is missing (nor is there ${id}.jpeg or ${id}.png in ${VOC_IMAGE_DIR}/)`);
      const mask = join(dir, VOC_MASK_DIR, `${id}.png`);
      if (!(await isFile(mask))) throw new InputError(`${listPath} lists '${id}', but its label map ${mask} is missing`);
      entries.push({ id, image, mask });
    }
    const identity = {
      name: 'ddim-inverse',
      voc: resolve(dir),
      list,
      list_sha256: createHash('sha256').update(text).digest('hex'),
      geometry: 'centred square crop; picture: antialiased triangle resize to 8 bits; masks: nearest at pixel centres',
      void: 'outside',
      classes: 'seen classes present, two with the most pixels',
      inversion: 'DDIMInverseScheduler (eta 0) to the feature timestep, guidance = the guidance_scale setting; posterior mean x scaling_factor',
    };
    return new VocInversionAnnotator(dir, list, entries, identity);
  }

  /** Pictures in the list (the most samples a build can have). */
  get length(): number {
    return this.entries.length;
  }

  get listPath(): string {
    return join(this.dir, VOC_LIST_DIR, `${this.list}.txt`);
  }

  async annotate(sample: AnnotateSample): Promise<Map<string, Uint8Array | null>> {
    throw new InputError(`the ddim-inverse annotator makes its samples from the pictures of ${this.dir}; it has no masks for a generated picture (${sample.id})`);
  }

  /** The plan of list position `index`: classes from the label map (checked). */
  private async planOne(index: number, s: DatasetSettings): Promise<VocPlan> {
    const entry = this.entries[index];
    const id = sampleId(index);
    const labels = await readLabels(entry.mask);
    const head = imageHeaderSize(await readFile(entry.image), entry.image);
    if (head.width !== labels.width || head.height !== labels.height) {
      throw new InputError(`${entry.mask} is ${labels.width}x${labels.height}, but its picture ${entry.image} is ${head.width}x${head.height}; a label map must have its picture's size`);
    }
    const n = s.vocab.classes.length;
    const counts = new Float64Array(n + 1);
    for (const v of labels.indices) {
      if (v === VOC_VOID || v === 0) continue;
      if (v > n) throw new InputError(`${entry.mask}: label ${v} is not a class of the ${s.vocab.name} vocabulary (1..${n}; 0 is background, ${VOC_VOID} void)`);
      counts[v]++;
    }
    const present = s.vocab.classes.filter((_, k) => counts[k + 1] > 0);
    const seenHere = present.filter((c) => s.vocab.seen.includes(c));
    seenHere.sort((a, b) => counts[s.vocab.classes.indexOf(b) + 1] - counts[s.vocab.classes.indexOf(a) + 1] || s.vocab.classes.indexOf(a) - s.vocab.classes.indexOf(b));
    const classes = seenHere.slice(0, 2);
    if (classes.length === 0) {
      return {
        index, id, entry, labels: [], seed: 0, prompt: '',
        // A manifest record names at least one class: the picture's (unseen) classes, or 'background'.
        classes: present.length ? present : ['background'],
        skip: `${relative(this.dir, entry.image)} shows no seen class of split ${s.vocab.split} (${present.length ? `only ${present.join(', ')}` : 'no object'})`,
      };
    }
    return { index, id, entry, classes, prompt: datasetPrompt(classes), seed: 0, labels: classes.map((c) => s.vocab.classes.indexOf(c) + 1) };
  }

  async planSamples(todo: readonly number[], s: DatasetSettings, finishedOk: number): Promise<PlannedSample[]> {
    const last = todo.length ? Math.max(...todo) : -1;
    if (last >= this.entries.length) throw new InputError(`--count asks for ${last + 1} samples, but ${this.listPath} lists ${this.entries.length} pictures (sample i is the picture at position i)`);
    const plans: VocPlan[] = [];
    for (const i of todo) {
      const p = await this.planOne(i, s);
      this.plans.set(p.id, p);
      plans.push(p);
    }
    if (plans.length && finishedOk === 0 && plans.every((p) => p.skip)) {
      throw new InputError(
        `none of the ${plans.length} pictures to build from ${this.listPath} shows a seen class of split ${s.vocab.split} (seen: ${s.vocab.seen.join(', ')}); ` +
          `e.g. ${plans[0].skip}. Check the label maps in ${join(this.dir, VOC_MASK_DIR)} and the split`,
      );
    }
    return plans;
  }

  async makeSample(sd: StableDiffusion, planned: PlannedSample, s: DatasetSettings, gen: SampleGeneration): Promise<MadeSample> {
    const plan = this.plans.get(planned.id);
    if (!plan || plan.index !== planned.index) throw new InputError(`ddim-inverse: sample ${planned.id} was not planned (call planSamples first)`);
    if (plan.skip) return { kind: 'skipped', reason: plan.skip };
    const S = s.size;
    const picture = await readPicture(plan.entry.image);
    const labels = await readLabels(plan.entry.mask);
    if (picture.width !== labels.width || picture.height !== labels.height) {
      throw new InputError(`${plan.entry.mask} is ${labels.width}x${labels.height}, but its picture ${plan.entry.image} decodes to ${picture.width}x${picture.height}; a label map must have its picture's size`);
    }
    const square = squareLabels(labels.indices, labels.width, labels.height, S);
    const masks = plan.labels.map((k) => {
      const m = Uint8Array.from(square, (v) => (v === k ? 1 : 0));
      return m.includes(1) ? m : null;
    });
    if (masks.every((m) => m === null)) {
      return { kind: 'skipped', reason: `${plan.classes.join(' and ')} of ${relative(this.dir, plan.entry.mask)} cover no pixel of the ${S}x${S} centre crop` };
    }
    const img = squarePicture(picture.rgba, picture.width, picture.height, S);
    const g = await invertPicture(sd, img.rgb, plan.prompt, plan.classes, s, gen);
    const generated: GeneratedSample = { width: S, height: S, rgb: img.rgb, rgba: img.rgba, ...g };
    const files = sampleFiles(generated, plan, masks, s);
    files.metadata.source_image = relative(this.dir, plan.entry.image);
    files.metadata.source_id = plan.entry.id;
    return { kind: 'ok', files, found: masks.map((m) => m !== null) };
  }
}

/** The GPU part of one sample: encode, invert, feature call, class embeddings. */
async function invertPicture(
  sd: StableDiffusion, rgb: Float32Array, prompt: string, classes: string[], s: DatasetSettings, gen: SampleGeneration,
): Promise<Pick<GeneratedSample, 'latent' | 'promptIds' | 'textEmbedding' | 'features' | 'lowNorm'>> {
  const S = s.size;
  const promptIds = Int32Array.from([...sd.tokenizer.encodePadded(s.negative_prompt), ...sd.tokenizer.encodePadded(prompt)]);
  return scopeAsync(async () => {
    const image = Tensor.from(sd.rt, rgb, [1, 3, S, S], 'f32', 'voc_picture');
    const latent0 = encodeLatent(sd, image);
    const text = sd.encodePrompts([s.negative_prompt, prompt]);
    const inverted = await invertLatent(sd, latent0, text, { steps: s.steps, upTo: s.feature_timestep, guidanceScale: s.guidance_scale });
    const latent = await inverted.toArray();
    const grouped = featureCall(sd, { steps: s.steps, featureTimestep: s.feature_timestep, layout: gen.layout }, inverted, text);
    let features: GeneratedSample['features'];
    let lowNorm: number;
    if (s.storage === 'f16') {
      features = await readFeatures(grouped);
      lowNorm = groupNorm2(features.low.map((a) => a.data));
    } else {
      for (const gr of ['mid', 'high', 'highest'] as const) for (const t of grouped[gr]) t.dispose();
      const low = await readFeatures({ low: grouped.low, mid: [], high: [], highest: [] });
      lowNorm = groupNorm2(low.low.map((a) => a.data));
    }
    const textEmbedding = await classEmbeddings(sd, classes).toArray();
    return { latent, promptIds, textEmbedding, features, lowNorm };
  });
}

/** Opens `dir` for the ddim-inverse annotator (the CLI's entry). */
export function vocInversionAnnotator(dir: string, list?: string): Promise<VocInversionAnnotator> {
  return VocInversionAnnotator.open(dir, list);
}
