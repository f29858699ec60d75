// `dataset build --annotator ddim-inverse` (pipeline/dataset/voc_source.ts) on a tiny PASCAL
// VOC folder written here: random pictures (PNG, one JPEG), palette label maps with two or three
// classes and void borders, an ImageSets list. Checks: one sample per list position (a
// picture without a seen class skipped), prompts from the classes present (the two
// largest seen classes, largest first), masks equal to the label indices of each class
// after the documented centre crop and nearest resize (void and other classes outside),
// image.png equal to the crop where no resize happens, regen features recomputed equal to
// the f16-stored ones, `train --data` runs 2 steps on the result, and bad folders are
// refused naming the file.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetCommand } from '../../src/cli/dataset.js';
import { runCommand } from '../../src/cli/main.js';
import { trainCommand } from '../../src/cli/train.js';
import { encodeJpeg } from '../../src/io/jpeg.js';
import { decodePng, encodePng } from '../../src/io/png.js';
import { encodePalettePng, vocPalette } from '../../src/io/png_palette.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { StableDiffusion } from '../../src/models/sd.js';
import { buildDataset, datasetVocabulary, DatasetSource } from '../../src/pipeline/dataset/index.js';
import { VocInversionAnnotator } from '../../src/pipeline/dataset/voc_source.js';
import { BUILTIN_TINY_CONFIGS } from '../../src/pipeline/grounding_module.js';
import { capture } from '../cli/capture.js';
import { rng, runtime } from '../helpers.js';

interface Pic {
  id: string;
  w: number;
  h: number;
  /** [label, x0, y0, x1, y1) rectangles, painted in order, each with a 1-pixel void ring. */
  rects: Array<[number, number, number, number, number]>;
}

// VOC labels: 1 aeroplane, 3 bird, 4 boat, 5 bottle, 8 cat, 12 dog, 15 person, 18 sofa.
// Split 1's unseen classes: car, dog, sofa, train, tvmonitor.
const PICS: Pic[] = [
  { id: '2007_000010', w: 80, h: 64, rects: [[8, 10, 8, 50, 50], [1, 55, 30, 75, 60]] },
  { id: '2007_000020', w: 96, h: 72, rects: [[1, 15, 5, 80, 60], [3, 30, 20, 45, 35], [12, 0, 62, 40, 72]] },
  { id: '2007_000030', w: 64, h: 64, rects: [[15, 2, 2, 40, 60], [4, 42, 5, 62, 40], [5, 45, 45, 60, 60]] },
  { id: '2007_000040', w: 70, h: 70, rects: [[18, 10, 10, 60, 60]] },
];
const S = 64;

function labelsOf(p: Pic): Uint8Array {
  const out = new Uint8Array(p.w * p.h);
  for (const [k, x0, y0, x1, y1] of p.rects) {
    for (let y = y0 - 1; y <= y1; y++) {
      for (let x = x0 - 1; x <= x1; x++) {
        if (x < 0 || y < 0 || x >= p.w || y >= p.h) continue;
        const inside = x >= x0 && x < x1 && y >= y0 && y < y1;
        out[y * p.w + x] = inside ? k : 255;
      }
    }
  }
  return out;
}

function pictureOf(p: Pic, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(p.w * p.h * 4);
  for (let i = 0; i < out.length; i++) out[i] = i % 4 === 3 ? 255 : Math.floor(r() * 256);
  return out;
}

/** The documented geometry, written independently: centred square, nearest at pixel centres. */
function expectedMask(p: Pic, label: number): Uint8Array {
  const lab = labelsOf(p);
  const side = Math.min(p.w, p.h);
  const [left, top] = [Math.floor((p.w - side) / 2), Math.floor((p.h - side) / 2)];
  const out = new Uint8Array(S * S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const sy = top + Math.floor(((y + 0.5) * side) / S);
      const sx = left + Math.floor(((x + 0.5) * side) / S);
      out[y * S + x] = lab[sy * p.w + sx] === label ? 1 : 0;
    }
  }
  return out;
}

async function writeVoc(dir: string, pics: Pic[], opts: { list?: string[]; skipMaskDir?: boolean; maskSize?: Record<string, [number, number]> } = {}): Promise<void> {
  await mkdir(join(dir, 'JPEGImages'), { recursive: true });
  await mkdir(join(dir, 'ImageSets', 'Segmentation'), { recursive: true });
  if (!opts.skipMaskDir) await mkdir(join(dir, 'SegmentationClass'), { recursive: true });
  for (const [i, p] of pics.entries()) {
    // One picture as a JPEG (the VOC norm), the others as PNG (accepted too).
    const jpeg = p.id === '2007_000030';
    await writeFile(join(dir, 'JPEGImages', `${p.id}.${jpeg ? 'jpg' : 'png'}`), jpeg ? encodeJpeg(pictureOf(p, 100 + i), p.w, p.h, 95) : encodePng(pictureOf(p, 100 + i), p.w, p.h));
    if (opts.skipMaskDir) continue;
    const [mw, mh] = opts.maskSize?.[p.id] ?? [p.w, p.h];
    const lab = mw === p.w && mh === p.h ? labelsOf(p) : new Uint8Array(mw * mh).fill(8);
    await writeFile(join(dir, 'SegmentationClass', `${p.id}.png`), encodePalettePng(lab, mw, mh, vocPalette()));
  }
  await writeFile(join(dir, 'ImageSets', 'Segmentation', 'train.txt'), `${(opts.list ?? pics.map((p) => p.id)).join('\n')}\n`);
}

let tmp = '';
let voc = '';
let sd: StableDiffusion;
const vocab = datasetVocabulary('voc', '1');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-dsinv-'));
  voc = join(tmp, 'voc');
  await writeVoc(voc, PICS);
  sd = StableDiffusion.random(await runtime(), BUILTIN_TINY_CONFIGS, 0);
});
afterAll(async () => {
  sd?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

describe('dataset build --annotator ddim-inverse', () => {
  it('builds samples from a VOC folder, trains from them, and regen matches f16', async () => {
    const out = join(tmp, 'regen');
    const s = await buildDataset(sd, await VocInversionAnnotator.open(voc), { out, model: 'tiny', vocab, count: 4, guidanceScale: 1 });
    expect(s).toMatchObject({ planned: 4, built: 4, skipped: 1 });
    const manifest = (await readFile(join(out, 'manifest.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(manifest.map((r) => [r.id, r.status, r.classes, r.prompt])).toEqual([
      ['000000', 'ok', ['cat', 'aeroplane'], 'a photograph of a cat and a aeroplane'],
      ['000001', 'ok', ['aeroplane', 'bird'], 'a photograph of a aeroplane and a bird'],
      ['000002', 'ok', ['person', 'boat'], 'a photograph of a person and a boat'],
      ['000003', 'skipped', ['sofa'], ''],
    ]);
    expect(manifest[3].reason).toMatch(/2007_000040\.png shows no seen class of split voc split 1 \(only sofa\)/);
    const labels: Record<string, number> = { cat: 8, aeroplane: 1, bird: 3, person: 15, boat: 4 };
    for (const [i, r] of manifest.slice(0, 3).entries()) {
      const f = await SafetensorsFile.open(join(out, 'samples', r.id, 'sample.safetensors'));
      try {
        expect(f.metadata.source_id).toBe(PICS[i].id);
        expect(f.metadata.source_image).toBe(join('JPEGImages', `${PICS[i].id}.${i === 2 ? 'jpg' : 'png'}`));
        const target = await f.readF32('target');
        r.classes.forEach((c: string, k: number) => {
          const want = expectedMask(PICS[i], labels[c]);
          expect(want.includes(1)).toBe(true);
          expect(Array.from(target.subarray(k * S * S, (k + 1) * S * S)), `${r.id} ${c}`).toEqual(Array.from(want));
        });
        expect(r.found).toEqual([true, true]);
        const lat = await f.readF32('latent');
        expect(lat.every(Number.isFinite) && lat.some((v) => v !== 0)).toBe(true);
      } finally {
        await f.close();
      }
    }
    // 80x64 -> the centred 64x64 square, no resize: image.png is that crop exactly.
    const png = decodePng(await readFile(join(out, 'samples', '000000', 'image.png')));
    const src = pictureOf(PICS[0], 100);
    const crop = new Uint8Array(S * S * 4);
    for (let y = 0; y < S; y++) crop.set(src.subarray(4 * (y * 80 + 8), 4 * (y * 80 + 8 + S)), 4 * y * S);
    expect(Buffer.from(png.rgba).equals(Buffer.from(crop))).toBe(true);

    // f16 storage: the stored features equal regen's recomputation within f16 rounding.
    const out16 = join(tmp, 'f16');
    await buildDataset(sd, await VocInversionAnnotator.open(voc), { out: out16, model: 'tiny', vocab, count: 1, guidanceScale: 1, storage: 'f16' });
    const [a, b] = [await DatasetSource.open(out, { sd }), await DatasetSource.open(out16)];
    const [x, y] = [await a.read(a.entries[0]), await b.read(b.entries[0])];
    for (const g of ['low', 'mid', 'high', 'highest'] as const) {
      x.features[g].forEach((fx, i) => {
        const fy = y.features[g][i];
        let worst = 0;
        for (let j = 0; j < fx.data.length; j++) worst = Math.max(worst, Math.abs(fx.data[j] - fy.data[j]) / Math.max(Math.abs(fx.data[j]) * 2 ** -11, 2 ** -25));
        expect(worst, `${g}.${i}`).toBeLessThanOrEqual(1);
      });
    }

    // A rerun finds everything finished.
    const again = await buildDataset(sd, await VocInversionAnnotator.open(voc), { out, model: 'tiny', vocab, count: 4, guidanceScale: 1 });
    expect(again).toMatchObject({ resumed: 4, built: 0 });

    const run = join(tmp, 'run');
    const r = await capture(() => runCommand('train', trainCommand, ['--data', out, '--model', 'tiny', '--config', 'tiny', '--out', run, '--steps', '2', '--lr', '1e-3', '--batch', '2']));
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(JSON.parse(r.out[r.out.length - 1])).toMatchObject({ step: 2, samples: 3, left_out: 0 });
  });

  it('refuses bad VOC folders naming the file', async () => {
    const noMasks = join(tmp, 'bad_nomasks');
    await writeVoc(noMasks, PICS.slice(0, 1), { skipMaskDir: true });
    await expect(VocInversionAnnotator.open(noMasks)).rejects.toThrow(/bad_nomasks\/SegmentationClass is missing/);

    const missing = join(tmp, 'bad_missing');
    await writeVoc(missing, PICS.slice(0, 1), { list: [PICS[0].id, '2007_999999'] });
    await expect(VocInversionAnnotator.open(missing)).rejects.toThrow(/lists '2007_999999', but .*JPEGImages\/2007_999999\.jpg is missing/);

    const sized = join(tmp, 'bad_size');
    await writeVoc(sized, PICS.slice(0, 1), { maskSize: { [PICS[0].id]: [40, 64] } });
    await expect(buildDataset(sd, await VocInversionAnnotator.open(sized), { out: join(tmp, 'o1'), model: 'tiny', vocab, count: 1 }))
      .rejects.toThrow(/SegmentationClass\/2007_000010\.png is 40x64, but its picture .*2007_000010\.png is 80x64/);

    const unseen = join(tmp, 'bad_unseen');
    await writeVoc(unseen, PICS.slice(3));
    await expect(buildDataset(sd, await VocInversionAnnotator.open(unseen), { out: join(tmp, 'o2'), model: 'tiny', vocab, count: 1 }))
      .rejects.toThrow(/none of the 1 pictures to build from .*train\.txt shows a seen class of split voc split 1/);

    await expect(buildDataset(sd, await VocInversionAnnotator.open(voc), { out: join(tmp, 'o3'), model: 'tiny', vocab, count: 5 }))
      .rejects.toThrow(/--count asks for 5 samples, but .*train\.txt lists 4 pictures/);
  });

  it('the CLI builds the same samples (count defaults to the list, guidance 1)', async () => {
    const out = join(tmp, 'cli');
    const r = await capture(() => runCommand('dataset', datasetCommand, ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--annotator', 'ddim-inverse', '--voc', voc, '--out', out]));
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(JSON.parse(r.out[r.out.length - 1])).toMatchObject({ planned: 4, built: 4, skipped: 1 });
    // The library build of the first test used the same settings: same files, byte for byte.
    for (const id of ['000000', '000001', '000002']) {
      for (const f of ['image.png', 'sample.safetensors']) {
        expect((await readFile(join(out, 'samples', id, f))).equals(await readFile(join(tmp, 'regen', 'samples', id, f))), `${id}/${f}`).toBe(true);
      }
    }
    const noVoc = await capture(() => runCommand('dataset', datasetCommand, ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--annotator', 'ddim-inverse', '--out', join(tmp, 'cli2')]));
    expect(noVoc.code).not.toBe(0);
    expect(noVoc.err.join('\n')).toMatch(/--annotator ddim-inverse needs --voc DIR/);
    const stray = await capture(() => runCommand('dataset', datasetCommand, ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '1', '--voc', voc, '--out', join(tmp, 'cli3')]));
    expect(stray.code).not.toBe(0);
    expect(stray.err.join('\n')).toMatch(/--voc and --voc-list are for --annotator ddim-inverse/);
  });
});
