// A plain RGBA8 canvas ([height, width, 4], row-major, top row first) and the few drawing
// primitives the result pictures need: copy, nearest upscale, rectangles and per-pixel
// "over" blending with a constant alpha. Everything clips to the canvas.
import { InputError } from '../../gpu/errors.js';

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, RGBA. */
  data: Uint8Array;
}

export type Rgb = readonly [number, number, number];

export function createImage(width: number, height: number, fill: Rgb = [0, 0, 0]): RgbaImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new InputError(`an image needs positive integer sides, got ${width}x${height}`);
  }
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([fill[0], fill[1], fill[2], 255], i * 4);
  return { width, height, data };
}

/** Wraps RGBA bytes as an image, checking the length. */
export function imageFrom(rgba: Uint8Array, width: number, height: number): RgbaImage {
  if (rgba.length !== width * height * 4) throw new InputError(`RGBA data of ${rgba.length} bytes does not make a ${width}x${height} image (${width * height * 4} bytes)`);
  return { width, height, data: rgba };
}

/** `round((1 - alpha) * dst + alpha * src)` per channel, the blend every picture uses. */
export function blendChannel(dst: number, src: number, alpha: number): number {
  return Math.round((1 - alpha) * dst + alpha * src);
}

/** Blends `color` over pixel (x, y) with `alpha` (1 = replace); outside the canvas: no-op. */
export function blendPixel(img: RgbaImage, x: number, y: number, color: Rgb, alpha = 1): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const o = (y * img.width + x) * 4;
  for (let c = 0; c < 3; c++) img.data[o + c] = alpha >= 1 ? color[c] : blendChannel(img.data[o + c], color[c], alpha);
  img.data[o + 3] = 255;
}

export function fillRect(img: RgbaImage, x: number, y: number, w: number, h: number, color: Rgb, alpha = 1): void {
  const x0 = Math.max(0, x);
  const y0 = Math.max(0, y);
  const x1 = Math.min(img.width, x + w);
  const y1 = Math.min(img.height, y + h);
  for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) blendPixel(img, xx, yy, color, alpha);
}

/** A 1-pixel rectangle outline. */
export function strokeRect(img: RgbaImage, x: number, y: number, w: number, h: number, color: Rgb): void {
  fillRect(img, x, y, w, 1, color);
  fillRect(img, x, y + h - 1, w, 1, color);
  fillRect(img, x, y, 1, h, color);
  fillRect(img, x + w - 1, y, 1, h, color);
}

/** Copies `src` into `dst` with its top-left corner at (x, y). */
export function drawImage(dst: RgbaImage, src: RgbaImage, x: number, y: number): void {
  for (let yy = 0; yy < src.height; yy++) {
    const ty = y + yy;
    if (ty < 0 || ty >= dst.height) continue;
    for (let xx = 0; xx < src.width; xx++) {
      const tx = x + xx;
      if (tx < 0 || tx >= dst.width) continue;
      dst.data.set(src.data.subarray((yy * src.width + xx) * 4, (yy * src.width + xx) * 4 + 4), (ty * dst.width + tx) * 4);
    }
  }
}

/** Nearest-neighbour upscale by an integer factor (pixels stay crisp squares). */
export function upscale(src: RgbaImage, factor: number): RgbaImage {
  if (!Number.isInteger(factor) || factor < 1) throw new InputError(`upscale factor must be a positive integer, got ${factor}`);
  if (factor === 1) return { width: src.width, height: src.height, data: Uint8Array.from(src.data) };
  const out = createImage(src.width * factor, src.height * factor);
  for (let y = 0; y < out.height; y++) {
    const sy = Math.floor(y / factor);
    for (let x = 0; x < out.width; x++) {
      const s = (sy * src.width + Math.floor(x / factor)) * 4;
      out.data.set(src.data.subarray(s, s + 4), (y * out.width + x) * 4);
    }
  }
  return out;
}

/** Nearest upscale of a per-pixel byte plane (a mask) by an integer factor. */
export function upscalePlane(src: Uint8Array, width: number, height: number, factor: number): Uint8Array {
  if (factor === 1) return src;
  const W = width * factor;
  const out = new Uint8Array(W * height * factor);
  for (let y = 0; y < height * factor; y++) {
    const row = Math.floor(y / factor) * width;
    for (let x = 0; x < W; x++) out[y * W + x] = src[row + Math.floor(x / factor)];
  }
  return out;
}
