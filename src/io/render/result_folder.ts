// One generated image's folder:
//   image.png              the image
//   masks/<class>.png      per grounded class, the binary mask (0 / 255 grey, image size)
//   overlay.png            the image with the masks, labels and a legend (overlay.ts)
//   heatmaps/<word>.png    per DAAM word, the normalised heat map in viridis (colormap.ts)
//   daam_masks/<word>.png  per DAAM word, its mask (map > threshold), 0 / 255 grey
//   result.json            what the run was and where each file is, written last
// File names come from uniqueFileNames (names.ts); result.json maps every class and word
// to its file. Every file is written atomically, and result.json only after all the
// pictures, so a folder with a result.json is complete.
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../atomic.js';
import { writePng } from '../png.js';
import { heatmapImage } from './colormap.js';
import { uniqueFileNames } from './names.js';
import { renderOverlay } from './overlay.js';

/** What the folder shows (the pipeline's per-image result has this shape). */
export interface FolderImage {
  width: number;
  height: number;
  /** RGBA bytes, width * height * 4. */
  rgba: Uint8Array;
  /** Grounded classes and their masks (width * height bytes, 1 inside); may be empty. */
  classes: readonly string[];
  masks: readonly Uint8Array[];
  /** DAAM maps, when computed. */
  daam?: ReadonlyArray<{ word: string; heatmap: Float32Array; mask: Uint8Array; mergeIndices?: readonly number[] }>;
}

export interface AreaRecord {
  pixels: number;
  fraction: number;
}

/** The files part of result.json (paths relative to the folder, '/'-separated). */
export interface FolderRecord {
  image: string;
  width: number;
  height: number;
  overlay: { file: string; scale: number } | null;
  classes: Array<{ name: string; mask: string; area: AreaRecord }>;
  daam: Array<{ word: string; heatmap: string; mask: string; mask_area: AreaRecord; merge_indices?: number[] }> | null;
}

/** Pixels that are nonzero, and their fraction of the image. */
export function maskArea(mask: Uint8Array): AreaRecord {
  let pixels = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) pixels++;
  return { pixels, fraction: mask.length ? pixels / mask.length : 0 };
}

/** A 0/1 mask as an opaque grey RGBA image (0 or 255). */
export function maskRgba(mask: Uint8Array): Uint8Array {
  const out = new Uint8Array(mask.length * 4);
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i] ? 255 : 0;
    out[i * 4] = v;
    out[i * 4 + 1] = v;
    out[i * 4 + 2] = v;
    out[i * 4 + 3] = 255;
  }
  return out;
}

/** Indented JSON with arrays of numbers on one line (timesteps, token indices, widths). */
export function resultJson(doc: object): string {
  return JSON.stringify(doc, null, 2).replace(/\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]/g, (_, body: string) => `[${body.split(/,\s*/).join(', ')}]`);
}

function check(img: FolderImage): void {
  const n = img.width * img.height;
  const bad: string[] = [];
  if (img.rgba.length !== n * 4) bad.push(`the image has ${img.rgba.length} RGBA bytes, ${img.width}x${img.height} needs ${n * 4}`);
  if (img.masks.length !== img.classes.length) bad.push(`${img.classes.length} classes but ${img.masks.length} masks`);
  img.masks.forEach((m, k) => m.length !== n && bad.push(`the mask of '${img.classes[k]}' has ${m.length} pixels, not ${n}`));
  for (const d of img.daam ?? []) {
    if (d.heatmap.length !== n || d.mask.length !== n) bad.push(`the DAAM map of '${d.word}' has ${d.heatmap.length} values and ${d.mask.length} mask pixels, not ${n}`);
  }
  if (bad.length) throw new InputError(`cannot write the result folder: ${bad.join('; ')}`);
}

/**
 * Writes `img`'s pictures into `dir` (created if missing), then result.json =
 * `describe(record)`: the caller adds the run's settings, timings and models around the
 * files record. Returns the paths written, result.json last.
 */
export async function writeResultFolder(dir: string, img: FolderImage, describe: (files: FolderRecord) => object): Promise<string[]> {
  check(img);
  const { width: W, height: H } = img;
  const written: string[] = [];
  const png = async (rel: string, rgba: Uint8Array, w = W, h = H) => {
    const path = join(dir, ...rel.split('/'));
    await writePng(path, rgba, w, h);
    written.push(path);
  };
  await png('image.png', img.rgba);

  const maskFiles = uniqueFileNames(img.classes, '.png', 'class').map((f) => `masks/${f}`);
  const classes = img.classes.map((name, k) => ({ name, mask: maskFiles[k], area: maskArea(img.masks[k]) }));
  for (const [k, c] of classes.entries()) await png(c.mask, maskRgba(img.masks[k]));

  let overlay: FolderRecord['overlay'] = null;
  if (img.classes.length > 0) {
    const o = renderOverlay(img.rgba, W, H, img.classes.map((name, k) => ({ name, mask: img.masks[k] })));
    await png('overlay.png', o.image.data, o.image.width, o.image.height);
    overlay = { file: 'overlay.png', scale: o.factor };
  }

  let daam: FolderRecord['daam'] = null;
  if (img.daam) {
    const files = uniqueFileNames(img.daam.map((d) => d.word), '.png', 'word');
    daam = img.daam.map((d, k) => ({
      word: d.word,
      heatmap: `heatmaps/${files[k]}`,
      mask: `daam_masks/${files[k]}`,
      mask_area: maskArea(d.mask),
      ...(d.mergeIndices ? { merge_indices: [...d.mergeIndices] } : {}),
    }));
    for (const [k, d] of img.daam.entries()) {
      await png(daam[k].heatmap, heatmapImage(d.heatmap, W, H).data);
      await png(daam[k].mask, maskRgba(d.mask));
    }
  }

  const record: FolderRecord = { image: 'image.png', width: W, height: H, overlay, classes, daam };
  const resultPath = join(dir, 'result.json');
  await writeFileAtomic(resultPath, `${resultJson(describe(record))}\n`);
  written.push(resultPath);
  return written;
}
