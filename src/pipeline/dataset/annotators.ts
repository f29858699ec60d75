// The annotators a dataset build can use (--annotator): 'daam' (pseudo-labels from the
// sampling run, annotate/daam.ts), 'masks' (supplied ground truth, annotate/masks.ts: a
// folder <sample id>/<class>.png or a COCO JSON file, sample ids as in plan.ts) and
// 'detector' (the built-in Mask R-CNN with the official rule, annotate/detector.ts; it
// runs on the generating model's Runtime).
// 'ddim-inverse' (real pictures of a PASCAL VOC folder with their label maps) makes its own
// samples (voc_source.ts, maker.ts).
//
// Training labels are stricter than the evaluation's reading of a PNG mask (a pixel is
// inside when its brightest channel is > 127): a supplied PNG must be binary, black outside
// and one level > 127 inside. A grey-level mask (a soft map, anti-aliased edges) would be
// cut at 127 without anyone deciding so, and a 0/1 label image would read as empty (every
// class "missed"): both are refused naming the file.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { decodePng } from '../../io/png.js';
import { DaamAnnotator } from '../annotate/daam.js';
import type { Runtime } from '../../gpu/runtime.js';
import { detectorAnnotator, type DetectorAnnotatorOptions } from '../annotate/detector.js';
import { classFileNames, masksAnnotator } from '../annotate/masks.js';
import type { AnnotateSample, Annotator } from '../annotate/types.js';
import { VocInversionAnnotator } from './voc_source.js';

export const ANNOTATORS = ['daam', 'masks', 'detector', 'ddim-inverse'] as const;
export type AnnotatorName = (typeof ANNOTATORS)[number];

/** Throws InputError unless the PNG at `path` is a binary mask (see above). */
export async function checkBinaryMaskPng(path: string): Promise<void> {
  let png: { width: number; height: number; rgba: Uint8Array };
  try {
    png = decodePng(await readFile(path));
  } catch (e) {
    if ((e as { syscall?: string }).syscall) throw e;
    throw new InputError(`${path}: not a readable PNG (${(e as Error).message}); write the mask as a PNG`);
  }
  const levels = new Set<number>();
  for (let i = 0; i < png.width * png.height && levels.size <= 8; i++) {
    const p = 4 * i;
    levels.add(Math.max(png.rgba[p], png.rgba[p + 1], png.rgba[p + 2]));
  }
  const sorted = [...levels].sort((a, b) => a - b);
  const inside = sorted.filter((v) => v !== 0);
  if (inside.length > 1) {
    throw new InputError(
      `${path}: the mask is not binary: it holds ${sorted.length > 8 ? 'more than 8' : sorted.length} levels (${sorted.slice(0, 6).join(', ')}${sorted.length > 6 ? ', ...' : ''}); ` +
        'a training mask must be black outside and one level above 127 inside (e.g. 0/255): threshold soft masks before writing them',
    );
  }
  if (inside.length === 1 && inside[0] <= 127) {
    throw new InputError(`${path}: the mask's inside value is ${inside[0]}, which reads as outside (a pixel is inside when its brightest channel is > 127); write inside pixels as 255`);
  }
}

/** The 'masks' annotator, with PNG-folder masks checked to be binary before use. */
async function strictMasksAnnotator(gt: string, classes: readonly string[]): Promise<Annotator> {
  const inner = await masksAnnotator(gt, classes);
  let isDir = false;
  try {
    isDir = (await stat(gt)).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) return inner;
  return {
    name: inner.name,
    identity: inner.identity,
    prepare: inner.prepare?.bind(inner),
    async annotate(sample: AnnotateSample) {
      for (const c of sample.classes) {
        for (const name of classFileNames(c)) {
          const path = join(gt, sample.id, name);
          const kind = await stat(path).then((s) => (s.isFile() ? 'file' : 'other'), () => null);
          if (kind === 'file') {
            await checkBinaryMaskPng(path);
            break;
          }
        }
      }
      return inner.annotate(sample);
    },
  };
}

export interface DatasetAnnotatorOptions {
  gt?: string;
  classes: readonly string[];
  daamThreshold?: number;
  /** 'ddim-inverse': the VOC folder and the list name (default train). */
  voc?: string;
  vocList?: string;
  /** 'detector': the checkpoint and settings, and the Runtime the model loads on (the
   *  generating model's). */
  detector?: DetectorAnnotatorOptions;
  runtime?: Runtime;
}

/** The annotator named `name`; 'masks' needs `gt`, 'detector' needs `detector` and
 *  `runtime` (its model is loaded here: dispose() frees it). */
export async function datasetAnnotator(name: string, opts: DatasetAnnotatorOptions): Promise<Annotator & { dispose?(): void }> {
  if (name === 'ddim-inverse') {
    if (opts.voc === undefined) throw new InputError('--annotator ddim-inverse needs --voc DIR (a PASCAL VOC folder: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/<list>.txt)');
    if (opts.gt !== undefined) throw new InputError('--gt is for --annotator masks; the ddim-inverse annotator reads the label maps of --voc');
    return VocInversionAnnotator.open(opts.voc, opts.vocList);
  }
  if (opts.voc !== undefined || opts.vocList !== undefined) throw new InputError('--voc and --voc-list are for --annotator ddim-inverse');
  if (name !== 'masks' && opts.gt !== undefined && name !== 'daam') throw new InputError(`--gt is for --annotator masks; the ${name} annotator makes its own masks`);
  if (name === 'detector') {
    if (!opts.detector) throw new InputError('--annotator detector needs --detector CKPT (a torchvision Mask R-CNN state dict, .pth or .safetensors)');
    if (!opts.runtime) throw new InputError('the detector annotator needs the Runtime the model runs on');
    return detectorAnnotator(opts.runtime, opts.detector);
  }
  if (name === 'daam') {
    if (opts.gt !== undefined) throw new InputError('--gt is for --annotator masks; the daam annotator takes its masks from the sampling run');
    return new DaamAnnotator(opts.daamThreshold);
  }
  if (name === 'masks') {
    if (opts.gt === undefined) throw new InputError('--annotator masks needs --gt DIR (a folder <sample id>/<class>.png, sample ids 000000, 000001, ...) or --gt FILE.json (COCO, images named <sample id>.png)');
    return strictMasksAnnotator(opts.gt, opts.classes);
  }
  throw new InputError(`--annotator ${name} is not known: use daam (DAAM pseudo-labels from the sampling run), masks (supplied masks, --gt) or detector (the built-in Mask R-CNN, --detector), or ddim-inverse (real PASCAL VOC pictures and label maps, --voc)`);
}
