// Result pictures (src/io/render): the bitmap font against its own table, mask blending
// against a float64 formula with brute-force outlines, the overlay's labels and legend
// (empty masks included), file-name sanitising, the colormap's endpoints and luminance,
// the result folder's files, and streamed SHA-256. No adapter needed.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../src/io/file_hash.js';
import { decodePng } from '../../src/io/png.js';
import { createImage, upscale, upscalePlane, type Rgb } from '../../src/io/render/canvas.js';
import { colormap, heatmapImage, VIRIDIS } from '../../src/io/render/colormap.js';
import { ADVANCE, drawText, GLYPHS, MISSING, textWidth } from '../../src/io/render/font.js';
import { safeStem, uniqueFileNames } from '../../src/io/render/names.js';
import { blendMasks, OUTLINE_SHADE, PALETTE, renderOverlay } from '../../src/io/render/overlay.js';
import { writeResultFolder, type FolderRecord } from '../../src/io/render/result_folder.js';
import { rng } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'gsd-render-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The table's rows for a character, read straight from the strings. */
function rowsOf(ch: string): string[] {
  return (GLYPHS[ch] ?? MISSING).split(' ');
}

/** On-pixel count and bounding box of `text` at `scale` drawn at (x, y), from the table. */
function expectedText(text: string, x: number, y: number, scale: number) {
  let count = 0;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  [...text].forEach((ch, i) => {
    rowsOf(ch).forEach((row, r) => {
      [...row].forEach((p, c) => {
        if (p !== '#') return;
        count += scale * scale;
        const px = x + i * ADVANCE * scale + c * scale;
        const py = y + r * scale;
        x0 = Math.min(x0, px);
        y0 = Math.min(y0, py);
        x1 = Math.max(x1, px + scale - 1);
        y1 = Math.max(y1, py + scale - 1);
      });
    });
  });
  return { count, box: [x0, y0, x1, y1] };
}

/** Count and bounding box of pixels equal to `color`. */
function pixelsOf(data: Uint8Array, width: number, color: Rgb, rows?: [number, number]) {
  let count = 0;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i < data.length / 4; i++) {
    const [x, y] = [i % width, Math.floor(i / width)];
    if (rows && (y < rows[0] || y >= rows[1])) continue;
    if (data[i * 4] !== color[0] || data[i * 4 + 1] !== color[1] || data[i * 4 + 2] !== color[2]) continue;
    count++;
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  }
  return { count, box: [x0, y0, x1, y1] };
}

/** Random blobs: a few discs of random centre and radius (so masks have real outlines). */
function blobMask(width: number, height: number, seed: number, discs = 3): Uint8Array {
  const r = rng(seed);
  const m = new Uint8Array(width * height);
  for (let d = 0; d < discs; d++) {
    const [cx, cy, rad] = [r() * width, r() * height, 2 + r() * Math.min(width, height) * 0.3];
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= rad * rad) m[y * width + x] = 1;
  }
  return m;
}

function randomRgba(width: number, height: number, seed: number, max = 255): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: width * height * 4 }, (_, i) => (i % 4 === 3 ? 255 : Math.floor(r() * (max + 1))));
}

describe('bitmap font', () => {
  for (const scale of [1, 2, 3]) {
    it(`draws the table's pixels at scale ${scale}`, () => {
      const text = 'Grounded: cat, dog & tv-monitor 42.5% (ok?) [x_y/z]';
      const img = createImage(textWidth(text, scale) + 20, 40);
      const n = drawText(img, text, 7, 5, [255, 255, 255], scale);
      const want = expectedText(text, 7, 5, scale);
      const got = pixelsOf(img.data, img.width, [255, 255, 255]);
      expect(n).toBe(want.count);
      expect(got.count).toBe(want.count);
      expect(got.box).toEqual(want.box);
      // The text never spills past its stated width.
      expect(got.box[2]).toBeLessThanOrEqual(7 + textWidth(text, scale) - 1);
    });
  }

  it('accented letters drop the accent; unknown characters draw the box glyph', () => {
    const a = createImage(40, 12);
    const b = createImage(40, 12);
    drawText(a, 'café', 1, 1, [255, 255, 255]);
    drawText(b, 'cafe', 1, 1, [255, 255, 255]);
    expect(a.data).toEqual(b.data);
    const c = createImage(20, 12);
    const n = drawText(c, '✓', 2, 2, [255, 255, 255]);
    expect(n).toBe(expectedText('\u0000', 2, 2, 1).count); // MISSING: no table entry for NUL
    expect(n).toBe([...MISSING].filter((p) => p === '#').length);
  });

  it('clips at the canvas edge and counts only what it drew', () => {
    const img = createImage(10, 10);
    const n = drawText(img, 'WWW', 4, 6, [255, 255, 255]);
    expect(n).toBe(pixelsOf(img.data, 10, [255, 255, 255]).count);
    expect(n).toBeLessThan(expectedText('WWW', 4, 6, 1).count);
  });
});

/** Float64 reference of blendMasks: sequential fills, outlines by brute-force distance. */
function referenceBlend(rgba: Uint8Array, width: number, height: number, masks: Uint8Array[], alpha: number, thickness: number): Uint8Array {
  const out = Float64Array.from(rgba);
  masks.forEach((m, k) => {
    const col = PALETTE[k % PALETTE.length];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (!m[i]) continue;
        let edge = false;
        for (let dy = -thickness; dy <= thickness && !edge; dy++) {
          for (let dx = -thickness; dx <= thickness && !edge; dx++) {
            const [qx, qy] = [x + dx, y + dy];
            if (Math.abs(dx) + Math.abs(dy) > thickness || qx < 0 || qy < 0 || qx >= width || qy >= height) continue;
            if (!m[qy * width + qx]) edge = true;
          }
        }
        for (let c = 0; c < 3; c++) out[i * 4 + c] = edge ? Math.round(col[c] * OUTLINE_SHADE) : Math.round((1 - alpha) * out[i * 4 + c] + alpha * col[c]);
      }
    }
  });
  return Uint8Array.from(out);
}

describe('mask blending', () => {
  for (const [w, h, thickness, seed] of [[37, 23, 1, 1], [64, 48, 2, 2], [13, 61, 1, 3]] as const) {
    it(`${w}x${h}, outline ${thickness}: fills and outlines equal the float64 formula`, () => {
      const rgba = randomRgba(w, h, seed);
      const masks = [blobMask(w, h, seed * 10 + 1), blobMask(w, h, seed * 10 + 2), blobMask(w, h, seed * 10 + 3, 5)];
      expect(masks.every((m) => m.some((v) => v) && m.some((v) => !v))).toBe(true);
      const got = blendMasks({ width: w, height: h, data: rgba }, masks, { alpha: 0.45, thickness });
      expect(got.data).toEqual(referenceBlend(rgba, w, h, masks, 0.45, thickness));
      expect(rgba).toEqual(randomRgba(w, h, seed)); // input untouched
    });
  }

  it('a full mask has no outline along the canvas edge; an empty mask changes nothing', () => {
    const rgba = randomRgba(9, 7, 4);
    const full = blendMasks({ width: 9, height: 7, data: rgba }, [new Uint8Array(63).fill(1)]);
    for (let i = 0; i < 63; i++) for (let c = 0; c < 3; c++) expect(full.data[i * 4 + c]).toBe(Math.round(0.55 * rgba[i * 4 + c] + 0.45 * PALETTE[0][c]));
    expect(blendMasks({ width: 9, height: 7, data: rgba }, [new Uint8Array(63)]).data).toEqual(rgba);
  });
});

describe('overlay picture', () => {
  const LEGEND_TEXT: Rgb = [235, 235, 235];
  const glyphPixels = (text: string) => expectedText(text, 0, 0, 1).count;

  it('labels every found class, says "not found" for an empty mask, and keeps the image elsewhere', () => {
    const [w, h] = [64, 40];
    const rgba = randomRgba(w, h, 5, 200); // no pure white: label text is the only (255,255,255)
    const cat = blobMask(w, h, 51, 2);
    const empty = new Uint8Array(w * h);
    const o = renderOverlay(rgba, w, h, [{ name: 'cat', mask: cat }, { name: 'potted plant', mask: empty }]);
    expect(o.factor).toBe(4);
    const [W, H] = [w * 4, h * 4];
    expect(o.image.width).toBe(W);
    expect(o.legendTop).toBe(H);
    expect(o.image.height).toBeGreaterThan(H);
    expect(o.labels[1]).toBeNull();
    const box = o.labels[0];
    expect(box).not.toBeNull();
    // Outside the label box the picture is blendMasks of the enlarged image and masks.
    const ref = blendMasks(upscale({ width: w, height: h, data: rgba }, 4), [upscalePlane(cat, w, h, 4), upscalePlane(empty, w, h, 4)]);
    let differing = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inBox = box && x >= box.x && x < box.x + box.w && y >= box.y && y < box.y + box.h;
        const i = (y * W + x) * 4;
        if (!inBox && (o.image.data[i] !== ref.data[i] || o.image.data[i + 1] !== ref.data[i + 1] || o.image.data[i + 2] !== ref.data[i + 2])) differing++;
      }
    }
    expect(differing).toBe(0);
    // The label is the class name in white; the legend holds both entries' text.
    expect(pixelsOf(o.image.data, W, [255, 255, 255], [0, H]).count).toBe(glyphPixels('cat'));
    const area = cat.reduce((a, v) => a + v, 0);
    const pct = `${((100 * area) / (w * h)).toFixed(1)}%`;
    expect(pixelsOf(o.image.data, W, LEGEND_TEXT, [H, o.image.height]).count).toBe(glyphPixels(`cat ${pct}`) + glyphPixels('potted plant not found'));
  });

  it('no classes, or only empty masks, still render (legend says so)', () => {
    const rgba = randomRgba(300, 20, 6, 200);
    const none = renderOverlay(rgba, 300, 20, []);
    expect(none.factor).toBe(1);
    expect(pixelsOf(none.image.data, 300, LEGEND_TEXT, [20, none.image.height]).count).toBe(glyphPixels('no classes'));
    const empty = renderOverlay(rgba, 300, 20, [{ name: 'dog', mask: new Uint8Array(6000) }]);
    expect(empty.labels).toEqual([null]);
    expect(pixelsOf(empty.image.data, 300, LEGEND_TEXT, [20, empty.image.height]).count).toBe(glyphPixels('dog not found'));
  });

  it('large images: no enlargement, 2x text; long names are cut to fit', () => {
    const [w, h] = [400, 24];
    const mask = new Uint8Array(w * h).fill(1);
    const o = renderOverlay(randomRgba(w, h, 7, 200), w, h, [{ name: 'x'.repeat(200), mask }]);
    expect(o.factor).toBe(1);
    expect(o.image.width).toBe(w);
    const box = o.labels[0];
    expect(box && box.x >= 0 && box.x + box.w <= w && box.y >= 0 && box.y + box.h <= h).toBe(true);
  });

  it('refuses a mask of the wrong size, naming the class', () => {
    expect(() => renderOverlay(new Uint8Array(16), 2, 2, [{ name: 'cat', mask: new Uint8Array(3) }])).toThrow(/mask of 'cat' has 3 pixels/);
  });
});

describe('file names', () => {
  it('sanitises to safe stems', () => {
    expect(safeStem('potted plant')).toBe('potted_plant');
    expect(safeStem('a/b')).toBe('a_b');
    expect(safeStem('../../etc/passwd')).toBe('etc_passwd');
    expect(safeStem('..')).toBe('item');
    expect(safeStem('', 'class')).toBe('class');
    expect(safeStem('café crème')).toBe('cafe_creme');
    expect(safeStem('CON')).toBe('CON_');
    expect(safeStem('nul.txt')).toBe('nul.txt_');
    expect(safeStem('\u72ac')).toBe('item');
    expect(safeStem('y'.repeat(300)).length).toBe(64);
  });

  it('collisions get -2, -3 (case-insensitively), and results never clash', () => {
    const names = ['a/b', 'a_b', 'A B', 'a_b-2', 'potted plant', 'potted/plant', '', '..', '\u72ac', '\u732b'];
    const files = uniqueFileNames(names, '.png', 'class');
    expect(files.slice(0, 6)).toEqual(['a_b.png', 'a_b-2.png', 'A_B-3.png', 'a_b-2-2.png', 'potted_plant.png', 'potted_plant-2.png']);
    expect(files.slice(6)).toEqual(['class.png', 'class-2.png', 'class-3.png', 'class-4.png']);
    expect(new Set(files.map((f) => f.toLowerCase())).size).toBe(files.length);
    for (const f of files) expect(f).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*\.png$/);
  });
});

describe('colormap', () => {
  /** CIE L* of an 8-bit sRGB colour (D65). */
  function lightness([r, g, b]: Rgb): number {
    const lin = (v: number) => (v / 255 <= 0.04045 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
    const Y = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    return Y > 216 / 24389 ? 116 * Math.cbrt(Y) - 16 : (24389 / 27) * Y;
  }

  it('endpoints are the table ends; out-of-range values clamp; NaN is the low end', () => {
    expect(colormap(0)).toEqual([...VIRIDIS[0]]);
    expect(colormap(1)).toEqual([...VIRIDIS[VIRIDIS.length - 1]]);
    expect(colormap(-3)).toEqual([...VIRIDIS[0]]);
    expect(colormap(7)).toEqual([...VIRIDIS[VIRIDIS.length - 1]]);
    expect(colormap(NaN)).toEqual([...VIRIDIS[0]]);
    expect(colormap(0.5)).toEqual([...VIRIDIS[4]]);
  });

  it('lightness rises monotonically from 0 to 1', () => {
    let prev = -Infinity;
    for (let i = 0; i <= 1000; i++) {
      const L = lightness(colormap(i / 1000));
      expect(L).toBeGreaterThanOrEqual(prev - 0.25); // 8-bit rounding only
      prev = L;
    }
    expect(lightness(colormap(1)) - lightness(colormap(0))).toBeGreaterThan(70); // viridis spans L* ~16 to ~92;
  });

  it('heat map pictures: colours per value, or blended over a base image', () => {
    const r = rng(9);
    const map = Float32Array.from({ length: 12 }, () => r());
    const plain = heatmapImage(map, 4, 3);
    const base = randomRgba(4, 3, 10);
    const blended = heatmapImage(map, 4, 3, { base, alpha: 0.6 });
    for (let i = 0; i < 12; i++) {
      const c = colormap(map[i]);
      for (let k = 0; k < 3; k++) {
        expect(plain.data[i * 4 + k]).toBe(c[k]);
        expect(blended.data[i * 4 + k]).toBe(Math.round(0.4 * base[i * 4 + k] + 0.6 * c[k]));
      }
    }
    expect(() => heatmapImage(map, 5, 3)).toThrow(/12 values does not fit a 5x3 image/);
  });
});

describe('result folder', () => {
  it('writes every picture, then result.json mapping names to files and areas', async () => {
    const [w, h] = [24, 16];
    const r = rng(11);
    const masks = [blobMask(w, h, 12), new Uint8Array(w * h), blobMask(w, h, 13)];
    const heat = Float32Array.from({ length: w * h }, () => r());
    const dir = join(tmp, 'folder');
    const written = await writeResultFolder(dir, {
      width: w, height: h, rgba: randomRgba(w, h, 14), classes: ['a/b', 'a_b', 'potted plant'], masks,
      daam: [{ word: 'a/b', heatmap: heat, mask: Uint8Array.from(heat, (v) => (v > 0.4 ? 1 : 0)), mergeIndices: [5] }],
    }, (files) => ({ prompt: 'p', files }));
    expect(written[written.length - 1]).toBe(join(dir, 'result.json'));
    const doc = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { prompt: string; files: FolderRecord };
    expect(doc.prompt).toBe('p');
    expect(doc.files.classes.map((c) => c.mask)).toEqual(['masks/a_b.png', 'masks/a_b-2.png', 'masks/potted_plant.png']);
    expect(readdirSync(join(dir, 'masks')).sort()).toEqual(['a_b-2.png', 'a_b.png', 'potted_plant.png']);
    for (const [k, c] of doc.files.classes.entries()) {
      const png = decodePng(readFileSync(join(dir, c.mask)));
      expect([png.width, png.height]).toEqual([w, h]);
      let on = 0;
      for (let i = 0; i < w * h; i++) {
        const v = png.rgba[i * 4];
        expect(v === 0 || v === 255).toBe(true);
        expect(v).toBe(masks[k][i] ? 255 : 0);
        if (v) on++;
      }
      expect(c.area).toEqual({ pixels: on, fraction: on / (w * h) });
    }
    expect(doc.files.classes[1].area.pixels).toBe(0);
    expect(doc.files.overlay?.file).toBe('overlay.png');
    const overlay = decodePng(readFileSync(join(dir, 'overlay.png')));
    expect(overlay.width).toBe(w * (doc.files.overlay?.scale ?? 0));
    const d = doc.files.daam?.[0];
    expect(d).toMatchObject({ word: 'a/b', heatmap: 'heatmaps/a_b.png', mask: 'daam_masks/a_b.png', merge_indices: [5] });
    const hm = decodePng(readFileSync(join(dir, 'heatmaps', 'a_b.png')));
    for (let i = 0; i < w * h; i++) expect([...hm.rgba.subarray(i * 4, i * 4 + 3)]).toEqual(colormap(heat[i]));
    expect(d?.mask_area.pixels).toBe(heat.filter((v) => v > 0.4).length);
  });

  it('refuses mismatched sizes before writing anything', async () => {
    const dir = join(tmp, 'bad');
    await expect(writeResultFolder(dir, { width: 4, height: 4, rgba: new Uint8Array(64), classes: ['x'], masks: [new Uint8Array(15)] }, (f) => f))
      .rejects.toThrow(/the mask of 'x' has 15 pixels, not 16/);
    expect(() => readdirSync(dir)).toThrow();
  });
});

describe('sha256File', () => {
  it('matches a one-shot digest, and sees a changed file', async () => {
    const path = join(tmp, 'weights.bin');
    const r = rng(15);
    const data = Buffer.from(Uint8Array.from({ length: (9 << 20) + 17 }, () => Math.floor(r() * 256))); // > one 8 MiB chunk
    writeFileSync(path, data);
    const a = await sha256File(path);
    expect(a).toEqual({ path, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    expect(await sha256File(path)).toEqual(a);
    writeFileSync(path, data.subarray(1));
    expect((await sha256File(path)).sha256).toBe(createHash('sha256').update(data.subarray(1)).digest('hex'));
    await expect(sha256File(join(tmp, 'missing.bin'))).rejects.toThrow(/cannot hash .*missing\.bin/);
  });
});
