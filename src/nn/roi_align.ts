// RoIAlign (torchvision.ops.roi_align, 0.14.1) and MultiScaleRoIAlign with its FPN level
// mapper, as used by Mask R-CNN. Inference only. Kernel: shaders/roi_align.wgsl.
//
// The RoIs are host data (Mask R-CNN's come out of host-side NMS and top-k: proposals,
// detections), so the host computes each RoI's sampling geometry in float32 exactly as
// torchvision's CPU kernel does (roi_align_kernel.cpp, pre_calc_for_bilinear_interpolate):
//   start = x1 * scale - offset, end = x2 * scale - offset (offset 0.5 when aligned);
//   roi_w = end - start, at least 1 unless aligned; bin_w = roi_w / PW;
//   grid_w = sampling_ratio > 0 ? sampling_ratio : ceil(roi_w / PW) (<= 0 samples nothing);
//   x = (start + pw * bin_w) + ((ix + 0.5) * bin_w) / grid_w;
//   a sample with y or x outside [-1, size] contributes 0; else negative coordinates clamp
//   to 0, and floor(x) >= W - 1 sets low = high = W - 1 and x = W - 1;
//   count = max(grid_h * grid_w, 1).
// Every op is one f32 rounding (Math.fround), so the taps and weights the kernel gets are
// torchvision's bit for bit; grid sizes (ceil of a quotient) cannot come out one off.
//
// Limits: a feature map past the binding limit is bound one image at a time, an output
// past it in windows of RoI rows; each binding starts at an aligned offset with the
// element offset passed in. Huge dispatches fold into a 2-D grid.
import { InputError, LimitError, ShapeError } from '../gpu/errors.js';
import type { BufferBinding } from '../gpu/recorder.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { roundHalfEven } from './anchors.js';
import { boxArea } from './boxes.js';

const fr = Math.fround;
const WG = 256;
const OUTSIDE = 0xffffffff;

export interface RoiAlignOptions {
  /** (PH, PW) or one size for both. */
  outputSize: number | readonly [number, number];
  /** Multiplies box coordinates into feature coordinates (1/4 for a stride-4 map). */
  spatialScale: number;
  /** Samples per bin along each axis; <= 0: adaptive, ceil(roi_size / pooled_size). */
  samplingRatio: number;
  /** Pixel-shift boxes by -0.5 (torchvision's aligned=True). */
  aligned: boolean;
  /** @internal Tests: a binding limit below the adapter's, to force per-image and windowed runs. */
  maxBindingBytes?: number;
}

/** One sample along an axis: taps low/high, weight l of high, h = 1 - l; low = OUTSIDE if
 *  the sample lies outside [-1, size]. */
export interface AxisTap {
  low: number;
  high: number;
  l: number;
  h: number;
}

/** Geometry of one RoI along both axes. */
export interface RoiGeometry {
  gridH: number;
  gridW: number;
  count: number;
  /** [PH * gridH] samples, bin-major. */
  ys: AxisTap[];
  /** [PW * gridW] samples, bin-major. */
  xs: AxisTap[];
}

function axisTaps(start: number, bin: number, grid: number, pooled: number, size: number): AxisTap[] {
  const taps: AxisTap[] = [];
  for (let b = 0; b < pooled; b++) {
    for (let i = 0; i < grid; i++) {
      let v = fr(fr(start + fr(b * bin)) + fr(fr((i + 0.5) * bin) / grid));
      if (!(v >= -1 && v <= size)) {
        taps.push({ low: OUTSIDE, high: OUTSIDE, l: 0, h: 0 });
        continue;
      }
      if (v <= 0) v = 0;
      let low = Math.trunc(v);
      let high: number;
      if (low >= size - 1) {
        low = high = size - 1;
        v = low;
      } else {
        high = low + 1;
      }
      const l = fr(v - low);
      taps.push({ low, high, l, h: fr(1 - l) });
    }
  }
  return taps;
}

/** torchvision's sampling geometry of the RoI (x1, y1, x2, y2) on an H x W map. */
export function roiGeometry(box: ArrayLike<number>, h: number, w: number, ph: number, pw: number, opts: RoiAlignOptions): RoiGeometry {
  const scale = fr(opts.spatialScale);
  const offset = opts.aligned ? 0.5 : 0;
  const sx = fr(fr(fr(box[0]) * scale) - offset);
  const sy = fr(fr(fr(box[1]) * scale) - offset);
  const ex = fr(fr(fr(box[2]) * scale) - offset);
  const ey = fr(fr(fr(box[3]) * scale) - offset);
  let roiW = fr(ex - sx);
  let roiH = fr(ey - sy);
  if (!opts.aligned) {
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  const binH = fr(roiH / ph);
  const binW = fr(roiW / pw);
  // (int)ceil(float): a negative or NaN grid samples nothing; the output is then 0.
  const adaptive = (v: number) => {
    const g = Math.ceil(v);
    return Number.isFinite(g) && g > 0 ? g : 0;
  };
  const gridH = opts.samplingRatio > 0 ? opts.samplingRatio : adaptive(binH);
  const gridW = opts.samplingRatio > 0 ? opts.samplingRatio : adaptive(binW);
  return {
    gridH, gridW, count: Math.max(gridH * gridW, 1),
    ys: axisTaps(sy, binH, gridH, ph, h), xs: axisTaps(sx, binW, gridW, pw, w),
  };
}

function pooledSize(opts: RoiAlignOptions): [number, number] {
  const [ph, pw] = typeof opts.outputSize === 'number' ? [opts.outputSize, opts.outputSize] : opts.outputSize;
  if (!(Number.isInteger(ph) && Number.isInteger(pw) && ph > 0 && pw > 0)) throw new InputError(`roiAlign: output size ${ph}x${pw} must be positive integers`);
  if (!Number.isInteger(opts.samplingRatio)) throw new InputError(`roiAlign: sampling ratio ${opts.samplingRatio} must be an integer (<= 0 for adaptive)`);
  if (!(opts.spatialScale > 0)) throw new InputError(`roiAlign: spatial scale ${opts.spatialScale} must be positive`);
  return [ph, pw];
}

/** An aligned binding starting at or before element `start`, covering `count` elements. */
function window(t: Tensor, start: number, count: number): { binding: BufferBinding; base: number } {
  const el = BYTES[t.dtype];
  const align = t.rt.limits.minStorageBufferOffsetAlignment;
  const at = Math.floor((start * el) / align) * align;
  const end = Math.min(Math.ceil(((start + count) * el) / 4) * 4, Math.ceil(t.bytes / 4) * 4);
  return { binding: t.range(at, Math.max(4, end - at)), base: (start * el - at) / el };
}

interface Job {
  /** Indices into the RoI list. */
  rois: number[];
  bFirst: number;
  bCount: number;
  rowFirst: number;
  rowCount: number;
}

/**
 * Records roi_align of the RoIs `rois[k] = (batch, x1, y1, x2, y2)` into rows `rows[k]` of
 * `out` [R, C, PH, PW]. Used by roiAlign (rows 0..K-1) and by multiScaleRoiAlign (one call
 * per level, its RoIs' rows).
 */
export function roiAlignInto(input: Tensor, rois: ArrayLike<number>, rows: ArrayLike<number>, out: Tensor, opts: RoiAlignOptions): void {
  const [n, c, h, w] = input.shape;
  const [ph, pw] = pooledSize(opts);
  const k = rows.length;
  if (k === 0 || c === 0) return;
  const rt = input.rt;
  const limit = opts.maxBindingBytes ?? rt.limits.maxStorageBufferBindingSize;
  const align = rt.limits.minStorageBufferOffsetAlignment;
  const el = BYTES[input.dtype];
  const imageBytes = c * h * w * el;
  const rowBytes = c * ph * pw * el;
  if (imageBytes + align > limit && input.bytes > limit) throw new LimitError(`roiAlign: one image of the feature map [${input.shape}] takes ${imageBytes} bytes, more than the binding limit ${limit}; split the channels`);
  if (rowBytes + align > limit) throw new LimitError(`roiAlign: one output RoI of ${rowBytes} bytes exceeds the binding limit ${limit}`);
  const perImage = input.bytes > limit;
  const totalRows = out.shape[0];
  const rowsPerWindow = out.bytes <= limit ? totalRows : Math.floor((limit - align) / rowBytes);
  // Jobs: (image part) x (output window), each with its RoIs in input order.
  const jobs = new Map<string, Job>();
  for (let q = 0; q < k; q++) {
    const b = rois[5 * q];
    if (!(Number.isInteger(b) && b >= 0 && b < n)) throw new InputError(`roiAlign: RoI ${q} has batch index ${b}, not an image of the ${n} in the feature map`);
    const row = rows[q];
    const win = Math.floor(row / rowsPerWindow);
    const key = `${perImage ? b : 0}/${win}`;
    let job = jobs.get(key);
    if (!job) {
      const rowFirst = win * rowsPerWindow;
      job = { rois: [], bFirst: perImage ? b : 0, bCount: perImage ? 1 : n, rowFirst, rowCount: Math.min(rowsPerWindow, totalRows - rowFirst) };
      jobs.set(key, job);
    }
    job.rois.push(q);
  }
  for (const job of jobs.values()) {
    // geo: 8 words per RoI, then the axis taps (4 words each).
    const geos = job.rois.map((q) => roiGeometry([rois[5 * q + 1], rois[5 * q + 2], rois[5 * q + 3], rois[5 * q + 4]], h, w, ph, pw, opts));
    const words = 8 * job.rois.length + geos.reduce((a, g) => a + 4 * (g.ys.length + g.xs.length), 0);
    const geo = new Uint32Array(words);
    const geoF = new Float32Array(geo.buffer);
    let at = 8 * job.rois.length;
    const put = (taps: AxisTap[]) => {
      const first = at;
      for (const tp of taps) {
        geo[at] = tp.low;
        geo[at + 1] = tp.high;
        geoF[at + 2] = tp.l;
        geoF[at + 3] = tp.h;
        at += 4;
      }
      return first;
    };
    job.rois.forEach((q, i) => {
      const g = geos[i];
      geo.set([rois[5 * q], rows[q], put(g.ys), put(g.xs), g.gridH, g.gridW, 0, 0], 8 * i);
      geoF[8 * i + 6] = g.count;
    });
    const geoT = Tensor.from(rt, geo, [words], 'u32', 'roi_align_geometry');
    const feat = window(input, job.bFirst * c * h * w, job.bCount * c * h * w);
    const dst = window(out, job.rowFirst * c * ph * pw, job.rowCount * c * ph * pw);
    const threads = job.rois.length * c * ph * pw;
    rt.dispatch(
      { family: 'roi_align', entry: 'roi_align_forward', dtype: input.dtype === 'f16' ? 'f16' : 'f32', overrides: { WG } },
      {
        params: [threads, c, h, w, ph, pw, feat.base, dst.base, job.bFirst, job.rowFirst],
        bindings: [feat.binding, geoT.binding, dst.binding],
        workgroups: Math.ceil(threads / WG),
        label: `roi_align_forward[${ph}x${pw},sr=${opts.samplingRatio},aligned=${opts.aligned}]`,
      },
    );
    geoT.dispose();
  }
}

function checkInput(input: Tensor, what: string): void {
  if (input.shape.length !== 4) throw new ShapeError(`${what}: feature map must be [N, C, H, W], got [${input.shape}]`);
  if (input.dtype !== 'f32' && input.dtype !== 'f16') throw new ShapeError(`${what}: feature map must be f32 or f16, got ${input.dtype}`);
}

/**
 * torchvision.ops.roi_align(input, rois, output_size, spatial_scale, sampling_ratio,
 * aligned): `input` [N, C, H, W], `rois` [K, 5] host rows (batch index, x1, y1, x2, y2) or
 * per-image box lists ([n_i, 4] each, image i) -> [K, C, PH, PW].
 */
export function roiAlign(input: Tensor, rois: ArrayLike<number> | readonly ArrayLike<number>[], opts: RoiAlignOptions): Tensor {
  checkInput(input, 'roiAlign');
  const [ph, pw] = pooledSize(opts);
  const flat = roisFromLists(rois);
  const k = flat.length / 5;
  const out = Tensor.empty(input.rt, [k, input.shape[1], ph, pw], input.dtype, 'roi_align');
  roiAlignInto(input, flat, Int32Array.from({ length: k }, (_, i) => i), out, opts);
  return out;
}

/** [K, 5] rows from a flat [K, 5] array, or from per-image [n_i, 4] box lists. */
export function roisFromLists(rois: ArrayLike<number> | readonly ArrayLike<number>[]): Float32Array {
  if (!Array.isArray(rois) || (rois.length > 0 && typeof rois[0] === 'number')) {
    const flat = rois as ArrayLike<number>;
    if (flat.length % 5 !== 0) throw new ShapeError(`roiAlign: rois must be [K, 5] (batch index, x1, y1, x2, y2), got ${flat.length} values`);
    return Float32Array.from(flat);
  }
  const lists = rois as readonly ArrayLike<number>[];
  const total = lists.reduce((a, b, i) => {
    if (b.length % 4 !== 0) throw new ShapeError(`roiAlign: boxes of image ${i} must be [n, 4], got ${b.length} values`);
    return a + b.length / 4;
  }, 0);
  const out = new Float32Array(5 * total);
  let r = 0;
  lists.forEach((b, i) => {
    for (let j = 0; j < b.length; j += 4, r++) out.set([i, b[j], b[j + 1], b[j + 2], b[j + 3]], 5 * r);
  });
  return out;
}

export interface LevelMapperOptions {
  /** torchvision: 224, 4 and 1e-6. */
  canonicalScale: number;
  canonicalLevel: number;
  eps: number;
}

export const LEVEL_MAPPER_DEFAULTS: LevelMapperOptions = { canonicalScale: 224, canonicalLevel: 4, eps: 1e-6 };

/** MultiScaleRoIAlign's inferred scale of a feature map of height `featureH` for images
 *  padded to `maxImageH`: 2^round(log2(featureH / maxImageH)) with the log in float32. */
export function inferScale(featureH: number, maxImageH: number): number {
  return 2 ** roundHalfEven(fr(Math.log2(fr(featureH / maxImageH))));
}

/**
 * LevelMapper: level index (0 = k_min) of each box [N, 4] in float32:
 * clamp(floor(lvl0 + log2(sqrt(area) / s0) + eps), kMin, kMax) - kMin.
 */
export function mapLevels(boxes: ArrayLike<number>, kMin: number, kMax: number, opts: LevelMapperOptions = LEVEL_MAPPER_DEFAULTS): Int32Array {
  const area = boxArea(boxes);
  const eps = fr(opts.eps);
  const s0 = fr(opts.canonicalScale);
  return Int32Array.from(area, (a) => {
    const s = fr(Math.sqrt(a));
    const v = fr(fr(opts.canonicalLevel + fr(Math.log2(fr(s / s0)))) + eps);
    return Math.min(Math.max(Math.floor(v), kMin), kMax) - kMin;
  });
}

export interface MultiScaleRoiAlignOptions extends Partial<LevelMapperOptions> {
  outputSize: number | readonly [number, number];
  samplingRatio: number;
  /** @internal Tests: forwarded to roiAlignInto. */
  maxBindingBytes?: number;
}

export interface MultiScaleRoiAlignResult {
  /** [K, C, PH, PW], images' boxes concatenated. */
  output: Tensor;
  /** Level index per box (into `features`). */
  levels: Int32Array;
  /** Inferred spatial scale per level. */
  scales: number[];
}

/**
 * MultiScaleRoIAlign(featmap_names, output_size, sampling_ratio) (aligned False):
 * `features` are the maps it pools from, finest first (the caller drops unused ones such
 * as FPN's 'pool'); `boxes[i]` the [n_i, 4] boxes of image i in image coordinates;
 * `imageSizes` the (h, w) of each resized image. Each box is pooled from the level the
 * FPN level mapper assigns it (k_min, k_max from the inferred scales of the first and
 * last map).
 */
export function multiScaleRoiAlign(
  features: readonly Tensor[], boxes: readonly ArrayLike<number>[], imageSizes: readonly (readonly [number, number])[], opts: MultiScaleRoiAlignOptions,
): MultiScaleRoiAlignResult {
  if (features.length === 0) throw new InputError('multiScaleRoiAlign: needs at least one feature map');
  features.forEach((f, i) => checkInput(f, `multiScaleRoiAlign level ${i}`));
  const c = features[0].shape[1];
  if (features.some((f) => f.shape[1] !== c || f.shape[0] !== features[0].shape[0] || f.dtype !== features[0].dtype)) {
    throw new ShapeError(`multiScaleRoiAlign: feature maps must share batch, channels and dtype, got ${features.map((f) => f.toString()).join(', ')}`);
  }
  if (imageSizes.length === 0) throw new InputError('multiScaleRoiAlign: needs the image sizes');
  const maxH = Math.max(...imageSizes.map((s) => s[0]));
  const scales = features.map((f) => inferScale(f.shape[2], maxH));
  const mapper = { ...LEVEL_MAPPER_DEFAULTS, ...opts };
  const kMin = Math.trunc(-Math.log2(fr(scales[0])));
  const kMax = Math.trunc(-Math.log2(fr(scales[scales.length - 1])));
  const rois = roisFromLists(boxes);
  const k = rois.length / 5;
  const flatBoxes = new Float32Array(4 * k);
  for (let q = 0; q < k; q++) flatBoxes.set(rois.subarray(5 * q + 1, 5 * q + 5), 4 * q);
  const levels = features.length === 1 ? new Int32Array(k) : mapLevels(flatBoxes, kMin, kMax, mapper);
  const base: RoiAlignOptions = { outputSize: opts.outputSize, samplingRatio: opts.samplingRatio, aligned: false, spatialScale: 1, maxBindingBytes: opts.maxBindingBytes };
  const [ph, pw] = pooledSize(base);
  const output = Tensor.empty(features[0].rt, [k, c, ph, pw], features[0].dtype, 'multiscale_roi_align');
  features.forEach((f, l) => {
    const rows: number[] = [];
    for (let q = 0; q < k; q++) if (levels[q] === l) rows.push(q);
    if (rows.length === 0) return;
    const sub = new Float32Array(5 * rows.length);
    rows.forEach((q, i) => sub.set(rois.subarray(5 * q, 5 * q + 5), 5 * i));
    roiAlignInto(f, sub, rows, output, { ...base, spatialScale: scales[l] });
  });
  return { output, levels, scales };
}
