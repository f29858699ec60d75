// Heat maps as pictures: matplotlib's viridis (perceptually uniform, luminance rising from
// dark violet to yellow, readable in greyscale and by most colour-blind viewers), from nine
// stops at 0, 1/8, ..., 1 with linear interpolation between them. DAAM maps are min-max
// normalised to [0, 1] (pipeline/daam.ts), so the full range of the map is used.
import { InputError } from '../../gpu/errors.js';
import { blendChannel, imageFrom, type Rgb, type RgbaImage } from './canvas.js';

/** viridis at t = 0, 1/8, ..., 1 (8-bit sRGB). */
export const VIRIDIS: readonly Rgb[] = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 73, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [253, 231, 37],
];

/** The colour of `v` (clamped to [0, 1]; NaN counts as 0) under `stops`. */
export function colormap(v: number, stops: readonly Rgb[] = VIRIDIS): Rgb {
  const t = Number.isNaN(v) ? 0 : Math.min(1, Math.max(0, v));
  const pos = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(pos));
  const f = pos - i;
  const [a, b] = [stops[i], stops[i + 1]];
  return [Math.round(a[0] + f * (b[0] - a[0])), Math.round(a[1] + f * (b[1] - a[1])), Math.round(a[2] + f * (b[2] - a[2]))];
}

/** A map of `width * height` values in [0, 1] as a colour image. With `base` (an RGBA
 *  image of the same size), the colours are blended over it with `alpha`. */
export function heatmapImage(map: Float32Array, width: number, height: number, opts: { base?: Uint8Array; alpha?: number } = {}): RgbaImage {
  const n = width * height;
  if (map.length !== n) throw new InputError(`a heat map of ${map.length} values does not fit a ${width}x${height} image`);
  if (opts.base && opts.base.length !== n * 4) throw new InputError(`the base image has ${opts.base.length} bytes, a ${width}x${height} RGBA image has ${n * 4}`);
  const alpha = opts.alpha ?? 0.6;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const c = colormap(map[i]);
    for (let k = 0; k < 3; k++) out[i * 4 + k] = opts.base ? blendChannel(opts.base[i * 4 + k], c[k], alpha) : c[k];
    out[i * 4 + 3] = 255;
  }
  return imageFrom(out, width, height);
}
