// `grounded-sd export voc|coco SYNTH_DIR... OUT`: lays a synthetic dataset (the --out
// folder of `grounded-sd synth`, or the folders of its shards, joined) out as PASCAL VOC
// (JPEGImages, SegmentationClass palette PNGs, ImageSets lists) or as COCO JSON with RLE
// masks (pipeline/synth/export_{voc,coco}.ts). Progress goes to stderr, OUT to stdout.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../gpu/errors.js';
import { exportCoco, exportVoc, openSynthDataset } from '../pipeline/synth/index.js';
import { joinNegativeValues, numberOption, type NumberSpec } from './args.js';
import type { Command } from './main.js';

const USAGE = 'grounded-sd export voc|coco SYNTH_DIR [SYNTH_DIR...] OUT [--val 0.1] [--quality 95] [--partial]';

const NUMERIC: Record<string, NumberSpec> = {
  val: { min: 0, max: 0.999, why: 'the share of samples in the validation split' },
  quality: { integer: true, min: 1, max: 100, why: 'JPEG quality of the VOC images' },
};

export const exportCommand: Command = {
  summary: 'Export a synthetic dataset (grounded-sd synth) as PASCAL VOC or COCO JSON',
  usage: `${USAGE}\n\n` + [
    '  voc                    OUT/JPEGImages/<id>.jpg, SegmentationClass/<id>.png (VOC palette, 0 background,',
    '                         class = vocabulary position + 1, 255 ignore), ImageSets/Segmentation/{train,val,',
    '                         trainval}.txt, class_names.txt, export.json',
    '  coco                   OUT/images/<id>.png, annotations/instances_{train,val}.json (one RLE annotation per',
    '                         class present in an image; COCO category ids for VOC and COCO classes), export.json',
    '  SYNTH_DIR...           a synth --out folder, or every shard folder of a sharded run (joined in plan order)',
    '  OUT                    a new or empty folder, or an earlier export of the same kind (replaced)',
    '  --val F                share of samples in val (default 0.1), chosen per sample id by a fixed hash',
    '  --quality Q            JPEG quality for voc (default 95)',
    '  --partial              export the finished samples of an unfinished run or of some shards (else refused)',
  ].join('\n'),
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(argv, Object.keys(NUMERIC)),
      allowPositionals: true,
      options: {
        val: { type: 'string' },
        quality: { type: 'string' },
        partial: { type: 'boolean' },
      },
    });
    const [kind, ...paths] = positionals;
    if (kind === undefined) throw new UsageError('say which layout: export voc ... or export coco ...');
    if (kind !== 'voc' && kind !== 'coco') throw new UsageError(`the layout must be voc or coco, got '${kind}': export voc|coco SYNTH_DIR... OUT`);
    const format = kind;
    if (paths.length < 2) throw new UsageError(`export ${format} needs a synth folder and an output folder: export ${format} SYNTH_DIR [SYNTH_DIR...] OUT`);
    const out = paths[paths.length - 1];
    const sources = paths.slice(0, -1);
    if (sources.some((d) => resolve(d) === resolve(out))) throw new UsageError(`OUT ${out} is also given as a synth folder; export to another folder`);
    const valFraction = numberOption('val', values.val, 0.1, NUMERIC.val);
    const quality = numberOption('quality', values.quality, 95, NUMERIC.quality);
    if (values.quality !== undefined && format === 'coco') throw new UsageError('--quality applies to voc (JPEG images); the coco export copies the PNG images');
    const write = (s: string) => process.stderr.write(s);

    const ds = await openSynthDataset(sources, values.partial ?? false);
    for (const n of ds.notes) write(`note: ${n}\n`);
    write(`exporting ${ds.entries.length} of ${ds.planned} planned samples as ${format} to ${out}\n`);
    let last = -1;
    const onProgress = (done: number, total: number) => {
      const pct = Math.floor((100 * done) / total);
      if (pct !== last) write(`\r  ${done}/${total} (${pct}%)   `);
      last = pct;
    };
    const summary = format === 'voc'
      ? await exportVoc(ds, sources, out, { valFraction, quality, onProgress })
      : await exportCoco(ds, sources, out, { valFraction, onProgress });
    write(`\r  ${summary.train} train, ${summary.val} val\n`);
    console.log(out);
    return 0;
  },
};
