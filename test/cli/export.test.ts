// `grounded-sd export voc|coco` on synthetic datasets made by the run loop with a CPU
// stand-in generator (non-square images, overlapping classes): the VOC layout (image lists
// match the files, train + val = trainval, SegmentationClass indices read from the PNG's
// own IDAT equal the float64 label rule on the generator's logits, JPEGs decode with a
// decoder written in the tests to the generated image), the COCO JSON (every annotation's
// RLE decodes to its class's pixels; area, bbox, ids, categories; the project's COCO
// ground-truth reader reads it back), shards joined equal one unsharded run file for
// file, a rerun replacing an earlier export, and refusals.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCommand } from '../../src/cli/export.js';
import { runCommand } from '../../src/cli/main.js';
import { decodePng } from '../../src/io/png.js';
import { CocoGroundTruth } from '../../src/pipeline/annotate/coco.js';
import { rleToMask } from '../../src/pipeline/annotate/rle.js';
import { VOC_CLASSES } from '../../src/pipeline/eval/vocab.js';
import { planSynth, readPairList, runSynth, type SynthRunOptions, type SynthSample } from '../../src/pipeline/synth/index.js';
import { decodeBaselineJpeg, paletteIndices, psnr, referenceLabels, standInGenerator, standInImage } from '../pipeline/synth_helpers.js';
import { capture } from './capture.js';

const [W, H] = [20, 14];
let tmp = '';
const classes = ['dog', 'potted plant', 'cat'];
let plan: SynthSample[] = [];

const options = (out: string, extra: Partial<SynthRunOptions> = {}): SynthRunOptions => ({
  out, vocab: { name: 'test', classes, split: null }, perClass: 3, perPair: 2, pairs: 'all', seed: 11, threshold: 0.5, ignoreRadius: 0,
  generation: { model: 'stand-in' }, ...extra,
});
const gen = async () => standInGenerator(W, H);
const exportCli = (args: string[]) => capture(() => runCommand('export', exportCommand, args));
const lines = async (path: string) => (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-export-'));
  plan = planSynth({ classes, perClass: 3, pairs: [[0, 1], [0, 2], [1, 2]], perPair: 2, seed: 11 });
  await runSynth(gen, options(join(tmp, 'full')));
  await runSynth(gen, options(join(tmp, 'shard0'), { shard: { index: 0, count: 2 } }));
  await runSynth(gen, options(join(tmp, 'shard1'), { shard: { index: 1, count: 2 } }));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('export voc', () => {
  it('lays out JPEGImages, SegmentationClass and ImageSets that match each other and the label rule', async () => {
    const out = join(tmp, 'voc');
    const r = await exportCli(['voc', join(tmp, 'full'), out, '--val', '0.3']);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out).toEqual([out]);
    const ids = plan.map((s) => s.id);
    const sets = join(out, 'ImageSets', 'Segmentation');
    const [train, val, trainval] = [await lines(join(sets, 'train.txt')), await lines(join(sets, 'val.txt')), await lines(join(sets, 'trainval.txt'))];
    expect(trainval).toEqual(ids);
    expect([...train, ...val].sort()).toEqual([...ids].sort());
    expect(train.filter((id) => val.includes(id))).toEqual([]);
    expect(val.length).toBeGreaterThan(0);
    expect(train.length).toBeGreaterThan(0);
    expect((await readdir(join(out, 'JPEGImages'))).sort()).toEqual(ids.map((id) => `${id}.jpg`).sort());
    expect((await readdir(join(out, 'SegmentationClass'))).sort()).toEqual(ids.map((id) => `${id}.png`).sort());
    expect(await lines(join(out, 'class_names.txt'))).toEqual(['background', ...classes]);
    for (const s of plan) {
      const img = standInImage(s, W, H);
      const lab = paletteIndices(await readFile(join(out, 'SegmentationClass', `${s.id}.png`)));
      expect([lab.width, lab.height]).toEqual([W, H]);
      expect(lab.indices, s.id).toEqual(referenceLabels(img.logits, s.labels));
      const jpg = decodeBaselineJpeg(await readFile(join(out, 'JPEGImages', `${s.id}.jpg`)));
      expect([jpg.width, jpg.height]).toEqual([W, H]);
      // The stand-in pictures are noise, the hardest case for JPEG; quality 95 keeps them close.
      expect(psnr(jpg.rgba, img.rgba), s.id).toBeGreaterThan(30);
    }
    const record = JSON.parse(await readFile(join(out, 'export.json'), 'utf8'));
    expect(record).toMatchObject({ format: 'grounded-sd export 1', kind: 'voc', complete: true, train: train.length, val: val.length, jpeg_quality: 95, val_fraction: 0.3 });
  });

  it('keeps VOC\'s own labels for --vocab voc (aeroplane 1 ... tvmonitor 20)', async () => {
    const src = join(tmp, 'vocsrc');
    const pairFile = join(tmp, 'voc-pairs.txt');
    await writeFile(pairFile, 'person, horse\ndiningtable\tchair\n');
    const pairs = readPairList(pairFile, VOC_CLASSES);
    await runSynth(gen, { ...options(src), vocab: { name: 'voc', classes: VOC_CLASSES, split: null }, perClass: 1, perPair: 1, pairs });
    const out = join(tmp, 'voc-voc');
    expect((await exportCli(['voc', src, out])).code).toBe(0);
    const horse = paletteIndices(await readFile(join(out, 'SegmentationClass', 'p012-014-00000.png')));
    expect([...new Set(horse.indices)].sort((a, b) => a - b).filter((v) => v > 0).every((v) => v === 13 || v === 15)).toBe(true);
    expect(await lines(join(out, 'class_names.txt'))).toEqual(['background', ...VOC_CLASSES]);
    expect((await lines(join(out, 'ImageSets', 'Segmentation', 'trainval.txt'))).length).toBe(22);
  });

  it('joins shard folders into the same export as the unsharded run, file for file', async () => {
    const a = join(tmp, 'voc');
    const b = join(tmp, 'voc-shards');
    const r = await exportCli(['voc', join(tmp, 'shard1'), join(tmp, 'shard0'), b, '--val', '0.3']);
    expect(r.code, r.err.join('\n')).toBe(0);
    for (const sub of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) {
      const names = (await readdir(join(a, sub))).sort();
      expect((await readdir(join(b, sub))).sort()).toEqual(names);
      for (const n of names) expect(await readFile(join(b, sub, n)), `${sub}/${n}`).toEqual(await readFile(join(a, sub, n)));
    }
  });

  it('refuses a missing shard or an unfinished run unless --partial, and exports what is finished with it', async () => {
    let r = await exportCli(['voc', join(tmp, 'shard0'), join(tmp, 'voc-half')]);
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/incomplete: shard\(s\) 1\/2 not given.*--partial/);
    r = await exportCli(['voc', join(tmp, 'shard0'), join(tmp, 'voc-half'), '--partial']);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.progress).toMatch(/note: shard\(s\) 1\/2 not given/);
    expect(await lines(join(tmp, 'voc-half', 'ImageSets', 'Segmentation', 'trainval.txt'))).toEqual(plan.filter((_, k) => k % 2 === 0).map((s) => s.id));

    const cut = join(tmp, 'cut');
    await expect(runSynth(async () => standInGenerator(W, H, [], new Set([plan[5].id])), options(cut))).rejects.toThrow(/interrupted/);
    r = await exportCli(['coco', cut, join(tmp, 'coco-cut')]);
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/cut: 10 of 15 samples not finished \(c002-00001, .*rerun synth on it with the same options/);
  });

  it('replaces an earlier export in the same folder, removing samples it no longer has', async () => {
    const out = join(tmp, 'voc-half');
    const r = await exportCli(['voc', join(tmp, 'shard1'), out, '--partial']);
    expect(r.code, r.err.join('\n')).toBe(0);
    const want = plan.filter((_, k) => k % 2 === 1).map((s) => s.id);
    expect((await readdir(join(out, 'JPEGImages'))).sort()).toEqual(want.map((id) => `${id}.jpg`).sort());
    expect((await readdir(join(out, 'SegmentationClass'))).sort()).toEqual(want.map((id) => `${id}.png`).sort());
    expect(await lines(join(out, 'ImageSets', 'Segmentation', 'trainval.txt'))).toEqual(want);
  });
});

describe('export coco', () => {
  it('writes one RLE annotation per class present, decoding to the label map; COCO ids and names; readable by the COCO ground-truth reader', async () => {
    const out = join(tmp, 'coco');
    const r = await exportCli(['coco', join(tmp, 'full'), out]);
    expect(r.code, r.err.join('\n')).toBe(0);
    const docs = await Promise.all(['train', 'val'].map(async (n) => JSON.parse(await readFile(join(out, 'annotations', `instances_${n}.json`), 'utf8'))));
    // dog 18, potted plant 64, cat 17: the COCO category ids.
    for (const d of docs) expect(d.categories).toEqual([{ id: 18, name: 'dog', label: 1, vocab_name: 'dog' }, { id: 64, name: 'potted plant', label: 2, vocab_name: 'potted plant' }, { id: 17, name: 'cat', label: 3, vocab_name: 'cat' }]);
    const images = docs.flatMap((d) => d.images);
    const anns = docs.flatMap((d) => d.annotations);
    expect(images.map((i) => i.file_name).sort()).toEqual(plan.map((s) => `${s.id}.png`).sort());
    expect(new Set(images.map((i) => i.id)).size).toBe(plan.length);
    expect(new Set(anns.map((a) => a.id)).size).toBe(anns.length);
    expect((await readdir(join(out, 'images'))).sort()).toEqual(plan.map((s) => `${s.id}.png`).sort());
    const labelOf = new Map([[18, 1], [64, 2], [17, 3]]);
    let checked = 0;
    for (const s of plan) {
      const image = images.find((i) => i.file_name === `${s.id}.png`);
      expect(image).toMatchObject({ width: W, height: H });
      expect(decodePng(await readFile(join(out, 'images', `${s.id}.png`))).rgba).toEqual(standInImage(s, W, H).rgba);
      const map = referenceLabels(standInImage(s, W, H).logits, s.labels);
      const mine = anns.filter((a) => a.image_id === image.id);
      const present = [...new Set(map)].filter((v) => v !== 0).sort();
      expect(mine.map((a) => labelOf.get(a.category_id)).sort(), s.id).toEqual(present);
      for (const a of mine) {
        const label = labelOf.get(a.category_id) as number;
        const mask = rleToMask(a.segmentation, 'test');
        expect(a.segmentation.size).toEqual([H, W]);
        expect(typeof a.segmentation.counts).toBe('string');
        expect(mask).toEqual(Uint8Array.from(map, (v) => (v === label ? 1 : 0)));
        const xs: number[] = [];
        const ys: number[] = [];
        mask.forEach((v, p) => {
          if (v) {
            xs.push(p % W);
            ys.push(Math.floor(p / W));
          }
        });
        expect(a.area).toBe(xs.length);
        expect(a.bbox).toEqual([Math.min(...xs), Math.min(...ys), Math.max(...xs) - Math.min(...xs) + 1, Math.max(...ys) - Math.min(...ys) + 1]);
        expect(a.iscrowd).toBe(0);
        checked++;
      }
      // The project's COCO reader (the 'masks' annotator) reads the export back by sample id.
      const doc = docs.find((d) => d.images.some((i: { id: number }) => i.id === image.id));
      const gt = new CocoGroundTruth(doc, classes, 'export');
      const masks = gt.masks(s.id, s.classes, H, W);
      s.classes.forEach((c, k) => {
        const want = Uint8Array.from(map, (v) => (v === s.labels[k] ? 1 : 0));
        expect(masks.get(c) ?? new Uint8Array(W * H), `${s.id} ${c}`).toEqual(want);
      });
    }
    expect(checked).toBeGreaterThan(plan.length);
  });

  it('uses the vocabulary\'s names and ids = labels when a class is not a COCO class', async () => {
    const src = join(tmp, 'custom');
    await runSynth(gen, { ...options(src), vocab: { name: 'custom', classes: ['dog', 'unicorn'], split: null }, perClass: 1, perPair: 0 });
    const out = join(tmp, 'coco-custom');
    expect((await exportCli(['coco', src, out, '--val', '0'])).code).toBe(0);
    const doc = JSON.parse(await readFile(join(out, 'annotations', 'instances_train.json'), 'utf8'));
    expect(doc.categories).toEqual([{ id: 1, name: 'dog', label: 1, vocab_name: 'dog' }, { id: 2, name: 'unicorn', label: 2, vocab_name: 'unicorn' }]);
    expect(JSON.parse(await readFile(join(out, 'annotations', 'instances_val.json'), 'utf8')).images).toEqual([]);
  });
});

describe('export: refusals', () => {
  it('names what is wrong', async () => {
    const notSynth = join(tmp, 'not-synth');
    await mkdir(notSynth, { recursive: true });
    const busy = join(tmp, 'busy');
    await mkdir(busy, { recursive: true });
    await writeFile(join(busy, 'mine.txt'), 'keep me');
    const other = join(tmp, 'other-seed');
    await runSynth(gen, options(other, { seed: 12, shard: { index: 1, count: 2 } }));
    const cases: Array<[string[], number, RegExp]> = [
      [[], 2, /say which layout/],
      [['yolo', join(tmp, 'full'), join(tmp, 'o')], 2, /the layout must be voc or coco, got 'yolo'/],
      [['voc', join(tmp, 'full')], 2, /needs a synth folder and an output folder/],
      [['voc', join(tmp, 'full'), join(tmp, 'full')], 2, /is also given as a synth folder/],
      [['coco', join(tmp, 'full'), join(tmp, 'o'), '--quality', '90'], 2, /--quality applies to voc/],
      [['voc', join(tmp, 'full'), join(tmp, 'o'), '--val', '1'], 2, /--val must be <= 0.999/],
      [['voc', notSynth, join(tmp, 'o')], 1, /not-synth is not a synth folder \(it has no synth.json\)/],
      [['voc', join(tmp, 'full'), busy], 1, /busy is not empty and holds no earlier export/],
      [['voc', join(tmp, 'shard0'), other, join(tmp, 'o')], 1, /are not shards of one dataset: plan.seed: 11 vs 12/],
      [['voc', join(tmp, 'shard0'), join(tmp, 'shard0'), join(tmp, 'o')], 1, /are both shard 0\/2/],
      [['voc', join(tmp, 'full'), join(tmp, 'shard0'), join(tmp, 'o')], 1, /holds the whole dataset and .* one shard of it/],
      [['coco', join(tmp, 'full'), join(tmp, 'voc')], 1, /holds a voc export; export coco to another folder/],
    ];
    for (const [args, code, err] of cases) {
      const r = await exportCli(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.err.join('\n'), args.join(' ')).toMatch(err);
    }
    expect(await readFile(join(busy, 'mine.txt'), 'utf8')).toBe('keep me');
  });

  it('a damaged label map or image is reported with the file and the fix', async () => {
    const src = join(tmp, 'damaged');
    await runSynth(gen, options(src, { perClass: 1, perPair: 0 }));
    await writeFile(join(src, 'labels', 'c001-00000.png'), await readFile(join(src, 'labels', 'c000-00000.png')));
    let r = await exportCli(['voc', src, join(tmp, 'o-damaged')]);
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/labels\/c001-00000.png has \d+ pixels of label 1, which is none of the sample's labels/);
    await writeFile(join(src, 'labels', 'c001-00000.png'), 'not a png');
    r = await exportCli(['voc', src, join(tmp, 'o-damaged')]);
    expect(r.err.join('\n')).toMatch(/c001-00000.png is not a readable PNG/);
  });
});
