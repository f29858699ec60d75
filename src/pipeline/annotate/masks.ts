// The `masks` annotator: ground truth supplied by the user, either
//  - a folder with one PNG per sample and class, `DIR/<sample id>/<class>.png` (a class
//    name's spaces may be written as '_': `traffic_light.png`), the image's size, a pixel
//    inside when its largest R, G, B value is > 127 (white on black, any colour on black);
//    a missing class file means the class was not found (null); a missing sample folder is
//    an error, reported for all samples before any generation;
//  - or a COCO-format JSON file (coco.ts: images matched by file name = sample id,
//    categories by name, polygons and both RLE spellings decoded as pycocotools does).
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError, ShapeError } from '../../gpu/errors.js';
import { decodePng } from '../../io/png.js';
import { CocoGroundTruth } from './coco.js';
import type { AnnotateSample, Annotator, PlannedAnnotation } from './types.js';

/** File names tried for a class, in order. */
export function classFileNames(cls: string): string[] {
  const names = [`${cls}.png`];
  if (cls.includes(' ')) names.push(`${cls.replace(/ /g, '_')}.png`);
  return names;
}

async function exists(path: string): Promise<'file' | 'dir' | null> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'dir' : s.isFile() ? 'file' : null;
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw e;
  }
}

/** A PNG mask file as 0/1, checked against the image size. */
export async function readMaskPng(path: string, width: number, height: number): Promise<Uint8Array> {
  let png: { width: number; height: number; rgba: Uint8Array };
  try {
    png = decodePng(await readFile(path));
  } catch (e) {
    if ((e as { syscall?: string }).syscall) throw e;
    throw new InputError(`${path}: not a readable PNG (${(e as Error).message}); write the mask as a PNG`);
  }
  if (png.width !== width || png.height !== height) {
    throw new ShapeError(`${path}: the mask is ${png.width}x${png.height} (width x height) but the generated image is ${width}x${height}; write it at the image's size`);
  }
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    const p = 4 * i;
    out[i] = Math.max(png.rgba[p], png.rgba[p + 1], png.rgba[p + 2]) > 127 ? 1 : 0;
  }
  return out;
}

class PngFolderAnnotator implements Annotator {
  readonly name = 'masks';
  readonly identity: Record<string, unknown>;
  constructor(readonly dir: string) {
    this.identity = { annotator: 'masks', format: 'png folder', gt: dir };
  }

  async prepare(samples: readonly PlannedAnnotation[]): Promise<void> {
    const missing: string[] = [];
    for (const s of samples) if ((await exists(join(this.dir, s.id))) !== 'dir') missing.push(s.id);
    if (missing.length) {
      const show = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
      throw new InputError(`--gt ${this.dir}: no ground-truth folder for sample(s) ${show}; each sample needs ${join(this.dir, '<sample id>', '<class>.png')}`);
    }
  }

  async annotate(sample: AnnotateSample): Promise<Map<string, Uint8Array | null>> {
    const { width, height } = sample.image;
    const folder = join(this.dir, sample.id);
    if ((await exists(folder)) !== 'dir') throw new InputError(`--gt ${this.dir}: no folder ${folder} for sample ${sample.id}; write one PNG per class there`);
    const out = new Map<string, Uint8Array | null>();
    for (const cls of sample.classes) {
      let mask: Uint8Array | null = null;
      for (const name of classFileNames(cls)) {
        const path = join(folder, name);
        if ((await exists(path)) === 'file') {
          mask = await readMaskPng(path, width, height);
          break;
        }
      }
      out.set(cls, mask);
    }
    return out;
  }
}

class CocoJsonAnnotator implements Annotator {
  readonly name = 'masks';
  readonly identity: Record<string, unknown>;
  constructor(readonly file: string, readonly gt: CocoGroundTruth) {
    this.identity = { annotator: 'masks', format: 'coco json', gt: file };
  }

  async prepare(samples: readonly PlannedAnnotation[]): Promise<void> {
    const missing = samples.filter((s) => !this.gt.has(s.id)).map((s) => s.id);
    if (missing.length) {
      const show = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
      throw new InputError(`--gt ${this.file}: no image for sample(s) ${show}; an image's file_name without extension must be the sample id`);
    }
    const needed = [...new Set(samples.flatMap((s) => s.classes))];
    const unmapped = needed.filter((c) => !this.gt.mappedClasses.has(c));
    if (unmapped.length) {
      throw new InputError(
        `--gt ${this.file}: no category names class(es) ${unmapped.join(', ')} (categories: ${this.gt.categoryNames.join(', ')}); ` +
          'name the categories as the vocabulary does',
      );
    }
  }

  async annotate(sample: AnnotateSample): Promise<Map<string, Uint8Array | null>> {
    return this.gt.masks(sample.id, sample.classes, sample.image.height, sample.image.width);
  }
}

/** The `masks` annotator for a PNG folder or a COCO JSON file; `vocabulary` maps COCO
 *  category names to the evaluation's classes. */
export async function masksAnnotator(path: string, vocabulary: readonly string[]): Promise<Annotator> {
  const full = resolve(path);
  const kind = await exists(full);
  if (kind === 'dir') return new PngFolderAnnotator(full);
  if (kind !== 'file') throw new InputError(`--gt ${path}: no such file or folder; give a folder of <sample id>/<class>.png masks or a COCO JSON file`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(full, 'utf8'));
  } catch (e) {
    if ((e as { syscall?: string }).syscall) throw e;
    throw new InputError(`--gt ${path}: not valid JSON (${(e as Error).message}); give a COCO annotation file or a folder of PNG masks`);
  }
  return new CocoJsonAnnotator(full, new CocoGroundTruth(json, vocabulary, full));
}
