// A synthetic dataset in the PASCAL VOC 2012 segmentation layout, as VOC loaders
// (torchvision VOCSegmentation, mmsegmentation PascalVOCDataset) read it:
//   JPEGImages/<id>.jpg                 baseline JPEG (io/jpeg.ts, --quality, default 95)
//   SegmentationClass/<id>.png          palette PNG, VOC colours, pixel = label (0
//                                       background, vocabulary position + 1, 255 ignore)
//   ImageSets/Segmentation/train.txt    ids, one per line, in plan order
//   ImageSets/Segmentation/val.txt      (the split: export_common.ts isVal)
//   ImageSets/Segmentation/trainval.txt
//   class_names.txt                     line k = the name of label k (line 0 background)
//   export.json                         sources, settings, counts
// With --vocab voc the labels are VOC's own (aeroplane 1 ... tvmonitor 20).
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { encodeJpeg } from '../../io/jpeg.js';
import { EXPORT_FILE, isVal, makeFolders, prepareExportFolder, removeStale, writeExportRecord, type ExportOptions, type ExportSummary } from './export_common.js';
import { loadSample, type SynthDataset } from './read.js';

export interface VocExportOptions extends ExportOptions {
  /** JPEG quality 1..100 (default 95). */
  quality?: number;
}

const SETS = 'ImageSets/Segmentation';

/** Writes `ds` to `out` in the VOC layout. `sources` are the synth folders (recorded). */
export async function exportVoc(ds: SynthDataset, sources: readonly string[], out: string, o: VocExportOptions): Promise<ExportSummary> {
  const quality = o.quality ?? 95;
  await prepareExportFolder(out, 'voc');
  await makeFolders(out, ['JPEGImages', 'SegmentationClass', SETS]);
  const files: string[] = [];
  const train: string[] = [];
  const val: string[] = [];
  for (const [k, e] of ds.entries.entries()) {
    const id = e.record.id;
    const s = await loadSample(e);
    const jpg = `JPEGImages/${id}.jpg`;
    const png = `SegmentationClass/${id}.png`;
    await writeFileAtomic(join(out, jpg), encodeJpeg(s.rgba, e.record.width, e.record.height, quality));
    // The stored label map is already a VOC palette PNG (checked by loadSample): copied as is.
    await writeFileAtomic(join(out, png), s.labelPng);
    files.push(jpg, png);
    (isVal(id, o.valFraction) ? val : train).push(id);
    o.onProgress?.(k + 1, ds.entries.length);
  }
  const lines = (ids: string[]) => ids.map((id) => `${id}\n`).join('');
  const all = ds.entries.map((e) => e.record.id);
  await writeFileAtomic(join(out, SETS, 'train.txt'), lines(train));
  await writeFileAtomic(join(out, SETS, 'val.txt'), lines(val));
  await writeFileAtomic(join(out, SETS, 'trainval.txt'), lines(all));
  await writeFileAtomic(join(out, 'class_names.txt'), ['background', ...ds.settings.vocab.classes].map((c) => `${c}\n`).join(''));
  await removeStale(out, ['JPEGImages', 'SegmentationClass'], files);
  await writeExportRecord(out, 'voc', ds, sources, { jpeg_quality: quality, val_fraction: o.valFraction, train: train.length, val: val.length });
  files.push(`${SETS}/train.txt`, `${SETS}/val.txt`, `${SETS}/trainval.txt`, 'class_names.txt', EXPORT_FILE);
  return { out, train: train.length, val: val.length, files, notes: ds.notes };
}
