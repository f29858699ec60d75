// A synthetic dataset as COCO instance annotations (the instances_*.json layout that
// pycocotools, detectron2 and mmdetection read):
//   images/<id>.png                      the generated image (lossless copy)
//   annotations/instances_train.json     images, annotations, categories (+ info, licenses)
//   annotations/instances_val.json       (the split: export_common.ts isVal)
//   export.json
// Annotations: the label maps are semantic, so each image has one annotation per class
// present in its label map: that class's pixels as a compressed RLE (pycocotools'
// results spelling, io/coco_rle.ts), area = pixel count, bbox = tight [x, y, w, h],
// iscrowd 0. Ignore (255) pixels belong to no annotation.
// Categories: when every vocabulary class is a COCO class (the VOC and COCO vocabularies:
// VOC names mapped to COCO's, aeroplane -> airplane, diningtable -> dining table,
// motorbike -> motorcycle, pottedplant -> potted plant, sofa -> couch, tvmonitor -> tv),
// COCO's own names and category ids (1..90 with COCO's gaps), so models and tools made
// for COCO read them; otherwise the vocabulary's names with id = label. Each category
// also records the dataset's label and vocabulary name.
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { encodeRle, maskArea, maskBbox } from '../../io/coco_rle.js';
import { COCO_TO_VOC_NAMES, normaliseName } from '../annotate/coco.js';
import { COCO_CLASSES } from '../eval/vocab.js';
import { EXPORT_FILE, isVal, makeFolders, prepareExportFolder, removeStale, writeExportRecord, type ExportOptions, type ExportSummary } from './export_common.js';
import { loadSample, type SynthDataset } from './read.js';

/** COCO category ids of COCO_CLASSES: 1..90 without the ids of the 10 classes the 2014
 *  paper listed but the dataset never annotated. */
const COCO_UNUSED_IDS = new Set([12, 26, 29, 30, 45, 66, 68, 69, 71, 83]);
export const COCO_CATEGORY_IDS: readonly number[] = Object.freeze([...Array(90).keys()].map((i) => i + 1).filter((id) => !COCO_UNUSED_IDS.has(id)));

export interface CocoCategory {
  id: number;
  name: string;
  /** The label of the class in the synthetic dataset's label maps. */
  label: number;
  vocab_name: string;
}

/** The COCO class a vocabulary name stands for, or undefined. */
function cocoIndex(name: string): number {
  const n = normaliseName(name);
  return COCO_CLASSES.findIndex((c) => normaliseName(c) === n || (COCO_TO_VOC_NAMES[c] !== undefined && normaliseName(COCO_TO_VOC_NAMES[c]) === n));
}

/** Categories of a vocabulary (see the header for the rule). */
export function cocoCategories(classes: readonly string[]): CocoCategory[] {
  const idx = classes.map(cocoIndex);
  const allCoco = idx.every((i) => i >= 0) && new Set(idx).size === idx.length;
  return classes.map((c, k) => (allCoco
    ? { id: COCO_CATEGORY_IDS[idx[k]], name: COCO_CLASSES[idx[k]], label: k + 1, vocab_name: c }
    : { id: k + 1, name: c, label: k + 1, vocab_name: c }));
}

interface CocoImage { id: number; file_name: string; width: number; height: number }
interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: { size: [number, number]; counts: string };
  area: number;
  bbox: [number, number, number, number];
  iscrowd: 0;
}

/** Writes `ds` to `out` as COCO JSON. `sources` are the synth folders (recorded). */
export async function exportCoco(ds: SynthDataset, sources: readonly string[], out: string, o: ExportOptions): Promise<ExportSummary> {
  await prepareExportFolder(out, 'coco');
  await makeFolders(out, ['images', 'annotations']);
  const categories = cocoCategories(ds.settings.vocab.classes);
  const byLabel = new Map(categories.map((c) => [c.label, c]));
  const sets = { train: { images: [] as CocoImage[], annotations: [] as CocoAnnotation[] }, val: { images: [] as CocoImage[], annotations: [] as CocoAnnotation[] } };
  const files: string[] = [];
  let annId = 0;
  for (const [k, e] of ds.entries.entries()) {
    const r = e.record;
    const s = await loadSample(e);
    const file = `images/${r.id}.png`;
    await writeFileAtomic(join(out, file), s.imagePng);
    files.push(file);
    const set = isVal(r.id, o.valFraction) ? sets.val : sets.train;
    // Image ids number the whole export (train and val together), 1-based, in plan order.
    const image: CocoImage = { id: k + 1, file_name: `${r.id}.png`, width: r.width, height: r.height };
    set.images.push(image);
    for (const label of [...r.labels].sort((a, b) => a - b)) {
      const mask = Uint8Array.from(s.labels, (v) => (v === label ? 1 : 0));
      const area = maskArea(mask);
      if (area === 0) continue;
      set.annotations.push({
        id: ++annId, image_id: image.id, category_id: (byLabel.get(label) as CocoCategory).id,
        segmentation: encodeRle(mask, r.height, r.width), area, bbox: maskBbox(mask, r.height, r.width), iscrowd: 0,
      });
    }
    o.onProgress?.(k + 1, ds.entries.length);
  }
  const info = {
    description: `grounded-sd synthetic segmentation dataset (Protocol-II), vocabulary ${ds.settings.vocab.name}`,
    version: '1',
    contributor: 'grounded-sd synth',
  };
  for (const name of ['train', 'val'] as const) {
    const doc = { info, licenses: [], images: sets[name].images, annotations: sets[name].annotations, categories };
    await writeFileAtomic(join(out, 'annotations', `instances_${name}.json`), `${JSON.stringify(doc)}\n`);
  }
  await removeStale(out, ['images'], files);
  await writeExportRecord(out, 'coco', ds, sources, {
    val_fraction: o.valFraction, train: sets.train.images.length, val: sets.val.images.length,
    annotations: annId, categories: categories.map((c) => ({ id: c.id, name: c.name, label: c.label })),
  });
  files.push('annotations/instances_train.json', 'annotations/instances_val.json', EXPORT_FILE);
  return { out, train: sets.train.images.length, val: sets.val.images.length, files, notes: ds.notes };
}
