// Ground-truth masks from a COCO-format JSON file (instances_*.json layout): `images`
// (id, file_name, height, width), `annotations` (image_id, category_id, segmentation)
// and `categories` (id, name).
//
// - Images are matched to evaluation samples by file name: the base name of `file_name`
//   without its extension is the sample id (`one_seen-0003.png` -> `one_seen-0003`).
// - Categories are matched to the vocabulary by name: lower-cased, with everything but
//   letters and digits removed ("dining table" = "diningtable", "potted plant" =
//   "pottedplant"), plus the four VOC classes COCO names differently (airplane/aeroplane,
//   motorcycle/motorbike, couch/sofa, tv/tvmonitor), either way round. Categories naming
//   no vocabulary class are ignored.
// - A class's mask is the union of every annotation of its categories in the image
//   (semantic ground truth), each annotation decoded as pycocotools' annToMask does:
//   polygons rasterised with maskApi.c's rule (polygon.ts), both RLE spellings (rle.ts).
// - A class of the sample with no annotation in its image is null: the annotator missed it.
import { InputError, ShapeError } from '../../gpu/errors.js';
import { checkPolygon, rasterisePolygons } from './polygon.js';
import { rleSize, rleToMask, type CocoRle } from './rle.js';

/** COCO spellings of VOC classes that normalising alone does not match. */
export const COCO_TO_VOC_NAMES: Readonly<Record<string, string>> = Object.freeze({
  airplane: 'aeroplane',
  motorcycle: 'motorbike',
  couch: 'sofa',
  tv: 'tvmonitor',
});

/** A name lower-cased with everything but letters and digits removed. */
export const normaliseName = (s: string): string => s.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');

/** The sample id an image's file_name stands for: base name without extension. */
export function sampleIdOfFile(fileName: string): string {
  const base = fileName.slice(Math.max(fileName.lastIndexOf('/'), fileName.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

interface CocoImage {
  id: number | string;
  height: number;
  width: number;
}

/** Per vocabulary class, the category ids that map to it. */
export function mapCategories(categories: unknown, vocabulary: readonly string[], where: string): Map<number | string, string> {
  if (!Array.isArray(categories)) throw new InputError(`${where}: 'categories' must be a list of {id, name}`);
  const byName = new Map<string, string>();
  for (const c of vocabulary) byName.set(normaliseName(c), c);
  // Both directions: a COCO-named file for the VOC vocabulary, and the reverse.
  for (const [coco, voc] of Object.entries(COCO_TO_VOC_NAMES)) {
    const toVoc = byName.get(voc);
    const toCoco = byName.get(coco);
    if (toVoc !== undefined && toCoco === undefined) byName.set(coco, toVoc);
    if (toCoco !== undefined && toVoc === undefined) byName.set(voc, toCoco);
  }
  const out = new Map<number | string, string>();
  const ids = new Set<unknown>();
  categories.forEach((cat, i) => {
    const c = cat as { id?: unknown; name?: unknown };
    if (typeof c !== 'object' || c === null || (typeof c.id !== 'number' && typeof c.id !== 'string') || typeof c.name !== 'string') {
      throw new InputError(`${where}: categories[${i}] must be {id, name}, got ${JSON.stringify(cat)}`);
    }
    if (ids.has(c.id)) throw new InputError(`${where}: category id ${JSON.stringify(c.id)} is listed twice`);
    ids.add(c.id);
    const cls = byName.get(normaliseName(c.name));
    if (cls !== undefined) out.set(c.id, cls);
  });
  return out;
}

/** One annotation's mask, row-major [h * w], as pycocotools' annToMask. */
export function annotationMask(segmentation: unknown, h: number, w: number, where: string): Uint8Array {
  if (Array.isArray(segmentation)) {
    if (segmentation.length === 0) return new Uint8Array(h * w);
    const polys = segmentation.map((p, i) => checkPolygon(p, `${where} polygon ${i}`));
    return rasterisePolygons(polys, h, w);
  }
  if (typeof segmentation === 'object' && segmentation !== null && 'counts' in segmentation) {
    const rle = segmentation as CocoRle;
    const [rh, rw] = rleSize(rle.size, where);
    if (rh !== h || rw !== w) throw new ShapeError(`${where}: the RLE size is [${rh}, ${rw}] but its image is ${h}x${w} (height x width)`);
    return rleToMask(rle, where);
  }
  throw new InputError(`${where}: 'segmentation' must be a list of polygons or an RLE {size, counts}, got ${JSON.stringify(segmentation)?.slice(0, 80)}`);
}

/** A parsed COCO ground-truth file, indexed by sample id. */
export class CocoGroundTruth {
  private readonly images = new Map<string, CocoImage>();
  /** image id -> annotations with a vocabulary class. */
  private readonly anns = new Map<number | string, Array<{ cls: string; segmentation: unknown; index: number }>>();
  /** Vocabulary classes some category maps to. */
  readonly mappedClasses: Set<string>;
  readonly categoryNames: string[];

  constructor(json: unknown, vocabulary: readonly string[], readonly where: string) {
    const j = json as { images?: unknown; annotations?: unknown; categories?: unknown };
    if (typeof json !== 'object' || json === null || !Array.isArray(j.images) || !Array.isArray(j.annotations)) {
      throw new InputError(`${where}: not a COCO annotation file: it needs 'images', 'annotations' and 'categories' lists`);
    }
    const cats = mapCategories(j.categories, vocabulary, where);
    this.mappedClasses = new Set(cats.values());
    this.categoryNames = (j.categories as Array<{ name: string }>).map((c) => c.name);
    const ids = new Set<number | string>();
    j.images.forEach((im, i) => {
      const m = im as { id?: unknown; file_name?: unknown; height?: unknown; width?: unknown };
      const ok = typeof m === 'object' && m !== null && (typeof m.id === 'number' || typeof m.id === 'string') && typeof m.file_name === 'string' &&
        Number.isSafeInteger(m.height) && (m.height as number) > 0 && Number.isSafeInteger(m.width) && (m.width as number) > 0;
      if (!ok) throw new InputError(`${where}: images[${i}] must be {id, file_name, height, width}, got ${JSON.stringify(im)?.slice(0, 120)}`);
      const id = sampleIdOfFile(m.file_name as string);
      if (this.images.has(id)) throw new InputError(`${where}: two images have the file name of sample '${id}'; keep one`);
      if (ids.has(m.id as number | string)) throw new InputError(`${where}: image id ${JSON.stringify(m.id)} is listed twice`);
      ids.add(m.id as number | string);
      this.images.set(id, { id: m.id as number | string, height: m.height as number, width: m.width as number });
    });
    j.annotations.forEach((a, index) => {
      const an = a as { image_id?: unknown; category_id?: unknown; segmentation?: unknown };
      if (typeof an !== 'object' || an === null || !('segmentation' in an)) {
        throw new InputError(`${where}: annotations[${index}] has no 'segmentation' (box-only annotations give no mask)`);
      }
      const cls = cats.get(an.category_id as number | string);
      if (cls === undefined) return;
      if (!ids.has(an.image_id as number | string)) throw new InputError(`${where}: annotations[${index}] names image_id ${JSON.stringify(an.image_id)}, which is not in 'images'`);
      const list = this.anns.get(an.image_id as number | string) ?? [];
      list.push({ cls, segmentation: an.segmentation, index });
      this.anns.set(an.image_id as number | string, list);
    });
  }

  has(sampleId: string): boolean {
    return this.images.has(sampleId);
  }

  /** Per class: the union of its annotations in the sample's image, or null if none. */
  masks(sampleId: string, classes: readonly string[], height: number, width: number): Map<string, Uint8Array | null> {
    const im = this.images.get(sampleId);
    if (!im) throw new InputError(`${this.where}: no image with file name '${sampleId}.<ext>' (the sample id) in 'images'; annotate the generated image ${sampleId}`);
    if (im.height !== height || im.width !== width) {
      throw new ShapeError(`${this.where}: image '${sampleId}' is annotated as ${im.height}x${im.width} but the generated image is ${height}x${width} (height x width)`);
    }
    const out = new Map<string, Uint8Array | null>(classes.map((c) => [c, null]));
    for (const a of this.anns.get(im.id) ?? []) {
      if (!out.has(a.cls)) continue;
      const m = annotationMask(a.segmentation, height, width, `${this.where} annotations[${a.index}]`);
      const acc = out.get(a.cls) ?? new Uint8Array(height * width);
      for (let i = 0; i < acc.length; i++) acc[i] |= m[i];
      out.set(a.cls, acc);
    }
    return out;
  }
}
