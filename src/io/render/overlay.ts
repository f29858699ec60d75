// overlay.png: the image with every class mask as a translucent fill in the class's colour
// and a darker outline, each labelled with its class name on a dark box, above a legend
// strip (swatch, name, mask area). Images narrower than 256 px are first enlarged by an
// integer factor (nearest neighbour) so that labels stay legible on tiny outputs; the
// factor is returned and recorded with the file.
import { InputError } from '../../gpu/errors.js';
import { blendChannel, createImage, drawImage, fillRect, strokeRect, upscale, upscalePlane, type Rgb, type RgbaImage } from './canvas.js';
import { drawText, fitText, textHeight, textWidth } from './font.js';

/** Class colours by mask index (wrapping after 12): distinct hues of similar weight. */
export const PALETTE: readonly Rgb[] = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
  [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255], [170, 110, 40],
];

/** Fill opacity of a mask. */
export const FILL_ALPHA = 0.45;
/** Outline colour = class colour times this. */
export const OUTLINE_SHADE = 0.55;
/** Overlays narrower than this are drawn on an enlarged copy of the image. */
export const MIN_OVERLAY_WIDTH = 256;

export const classColor = (k: number): Rgb => PALETTE[k % PALETTE.length];
export const outlineColor = (c: Rgb): Rgb => [Math.round(c[0] * OUTLINE_SHADE), Math.round(c[1] * OUTLINE_SHADE), Math.round(c[2] * OUTLINE_SHADE)];

/** Pixels of `mask` within `thickness` 4-neighbour steps of a pixel outside it (mask
 *  minus its `thickness`-fold erosion). The canvas edge does not count as outside: a mask
 *  touching the border gets no outline along it. */
export function maskOutline(mask: Uint8Array, width: number, height: number, thickness: number): Uint8Array {
  let inner = Uint8Array.from(mask, (v) => (v ? 1 : 0));
  for (let t = 0; t < thickness; t++) {
    const next = new Uint8Array(inner.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (!inner[i]) continue;
        const off = (x > 0 && !inner[i - 1]) || (x < width - 1 && !inner[i + 1]) || (y > 0 && !inner[i - width]) || (y < height - 1 && !inner[i + width]);
        next[i] = off ? 0 : 1;
      }
    }
    inner = next;
  }
  return Uint8Array.from(mask, (v, i) => (v && !inner[i] ? 1 : 0));
}

/** The image with each mask, in order, blended in: fill `alpha` of the class colour, then
 *  the outline pixels set to the darker outline colour. Later masks draw over earlier ones. */
export function blendMasks(image: RgbaImage, masks: readonly Uint8Array[], opts: { alpha?: number; thickness?: number } = {}): RgbaImage {
  const { width, height } = image;
  const alpha = opts.alpha ?? FILL_ALPHA;
  const thickness = opts.thickness ?? 1;
  const out = { width, height, data: Uint8Array.from(image.data) };
  masks.forEach((mask, k) => {
    if (mask.length !== width * height) throw new InputError(`mask ${k} has ${mask.length} pixels, the image ${width}x${height} has ${width * height}`);
    const col = classColor(k);
    const edge = outlineColor(col);
    const outline = maskOutline(mask, width, height, thickness);
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      const o = i * 4;
      for (let c = 0; c < 3; c++) out.data[o + c] = outline[i] ? edge[c] : blendChannel(out.data[o + c], col[c], alpha);
    }
  });
  return out;
}

export interface Box { x: number; y: number; w: number; h: number }

const overlaps = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** Where a mask's label goes: its centroid, or (a ring, several blobs) the mask pixel
 *  nearest to the centroid; null for an empty mask. */
export function labelAnchor(mask: Uint8Array, width: number, height: number): { x: number; y: number } | null {
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < width * height; i++) {
    if (!mask[i]) continue;
    n++;
    sx += i % width;
    sy += Math.floor(i / width);
  }
  if (n === 0) return null;
  const [cx, cy] = [Math.round(sx / n), Math.round(sy / n)];
  if (mask[cy * width + cx]) return { x: cx, y: cy };
  let best = { x: cx, y: cy, d: Infinity };
  for (let i = 0; i < width * height; i++) {
    if (!mask[i]) continue;
    const [x, y] = [i % width, Math.floor(i / width)];
    const d = (x - cx) ** 2 + (y - cy) ** 2;
    if (d < best.d) best = { x, y, d };
  }
  return { x: best.x, y: best.y };
}

/** Mask area for the legend: "12.3%", "<0.1%" for a few pixels, "not found" for none. */
export function formatArea(pixels: number, total: number): string {
  if (pixels === 0) return 'not found';
  const pct = (100 * pixels) / total;
  return pct < 0.1 ? '<0.1%' : `${pct.toFixed(1)}%`;
}

export interface OverlayClass {
  name: string;
  /** width * height bytes of the image, nonzero inside. */
  mask: Uint8Array;
}

export interface Overlay {
  image: RgbaImage;
  /** Enlargement of the source image (1 for images at least MIN_OVERLAY_WIDTH wide). */
  factor: number;
  /** Label boxes on the image part, per class (null: empty mask, no label). */
  labels: Array<Box | null>;
  /** First row of the legend strip (= the enlarged image's height). */
  legendTop: number;
}

const LABEL_TEXT: Rgb = [255, 255, 255];
const LABEL_BACK: Rgb = [0, 0, 0];
const LEGEND_BACK: Rgb = [24, 24, 24];
const LEGEND_TEXT: Rgb = [235, 235, 235];

/** A label box centred on the anchor, inside the image, kept clear of the boxes before it
 *  (moved down or up by whole boxes) where the image has room. */
function placeLabel(anchor: { x: number; y: number }, w: number, h: number, width: number, height: number, placed: Box[]): Box {
  const clamp = (v: number, hi: number) => Math.max(0, Math.min(hi, v));
  const x = clamp(anchor.x - Math.floor(w / 2), width - w);
  const y0 = clamp(anchor.y - Math.floor(h / 2), height - h);
  for (let k = 0; k < 16; k++) {
    for (const dir of k === 0 ? [0] : [1, -1]) {
      const y = y0 + dir * k * (h + 1);
      if (y < 0 || y > height - h) continue;
      const box = { x, y, w, h };
      if (!placed.some((p) => overlaps(p, box))) return box;
    }
  }
  return { x, y: y0, w, h };
}

/** The full overlay picture of `image` (RGBA bytes, width x height) and its classes. */
export function renderOverlay(rgba: Uint8Array, width: number, height: number, classes: readonly OverlayClass[]): Overlay {
  if (rgba.length !== width * height * 4) throw new InputError(`overlay: ${rgba.length} RGBA bytes do not make a ${width}x${height} image`);
  const factor = width < MIN_OVERLAY_WIDTH ? Math.ceil(MIN_OVERLAY_WIDTH / width) : 1;
  const base = upscale({ width, height, data: rgba }, factor);
  const [W, H] = [base.width, base.height];
  const scale = W >= 384 ? 2 : 1;
  const masks = classes.map((c) => {
    if (c.mask.length !== width * height) throw new InputError(`overlay: the mask of '${c.name}' has ${c.mask.length} pixels, the image ${width}x${height} has ${width * height}`);
    return upscalePlane(c.mask, width, height, factor);
  });
  const picture = blendMasks(base, masks, { thickness: scale });

  const pad = 2 * scale;
  const placed: Box[] = [];
  const labels = masks.map((mask, k) => {
    const anchor = labelAnchor(mask, W, H);
    if (!anchor) return null;
    const text = fitText(classes[k].name, W - 2 * pad, scale);
    const box = placeLabel(anchor, textWidth(text, scale) + 2 * pad, textHeight(scale) + 2 * pad, W, H, placed);
    placed.push(box);
    fillRect(picture, box.x, box.y, box.w, box.h, LABEL_BACK, 0.7);
    strokeRect(picture, box.x, box.y, box.w, box.h, classColor(k));
    drawText(picture, text, box.x + pad, box.y + pad, LABEL_TEXT, scale);
    return box;
  });

  // Legend: entries "[swatch] name area" flowing left to right, wrapping at the width.
  const margin = 4 * scale;
  const swatch = textHeight(scale);
  const gap = 4 * scale;
  const spacing = 12 * scale;
  const rowH = textHeight(scale) + 4 * scale;
  const entries = classes.map((c, k) => {
    const pixels = c.mask.reduce((a, v) => a + (v ? 1 : 0), 0);
    const text = fitText(`${c.name} ${formatArea(pixels, width * height)}`, W - 2 * margin - swatch - gap, scale);
    return { k, text, w: swatch + gap + textWidth(text, scale) };
  });
  const rows: Array<typeof entries> = [[]];
  let used = 0;
  for (const e of entries) {
    const row = rows[rows.length - 1];
    if (row.length > 0 && used + spacing + e.w > W - 2 * margin) {
      rows.push([e]);
      used = e.w;
    } else {
      used += (row.length ? spacing : 0) + e.w;
      row.push(e);
    }
  }
  const stripH = 2 * margin + Math.max(1, rows.length) * rowH;
  const out = createImage(W, H + stripH, LEGEND_BACK);
  drawImage(out, picture, 0, 0);
  rows.forEach((row, r) => {
    let x = margin;
    const y = H + margin + r * rowH + 2 * scale;
    for (const e of row) {
      fillRect(out, x, y, swatch, swatch, classColor(e.k));
      strokeRect(out, x, y, swatch, swatch, outlineColor(classColor(e.k)));
      drawText(out, e.text, x + swatch + gap, y, LEGEND_TEXT, scale);
      x += e.w + spacing;
    }
  });
  if (classes.length === 0) drawText(out, fitText('no classes', W - 2 * margin, scale), margin, H + margin + 2 * scale, LEGEND_TEXT, scale);
  return { image: out, factor, labels, legendTop: H };
}
