// Zero padding, cropping and pasting over the last two axes (NCHW planes): diffusers'
// Downsample2D pads (0, 1, 0, 1) before its stride-2 conv, and convolutions too large for
// one binding run in row bands cut out with window2d and pasted back with pasteInto2d.
// Inference and training: the backward of a pad is the crop by the same pads.
// Kernel: shaders/pad.wgsl (one window-copy entry point for all three).
//
// Tensors past the storage binding limit are processed in runs of whole planes, each run
// bound as an aligned byte range with the first plane's element offset passed in.
import { InputError, LimitError, ShapeError, formatBytes } from '../gpu/errors.js';
import { i32 } from '../gpu/params.js';
import type { BufferBinding } from '../gpu/recorder.js';
import { BYTES, Tensor } from '../tensor/tensor.js';

/** F.pad order for the last two axes: [left, right, top, bottom]; negative values crop. */
export type Pads = [number, number, number, number];

export interface WindowOptions {
  /** Samples [start, start + count) of the first axis (default: all). */
  batch?: [number, number];
  /** @internal Tests: a binding limit below the adapter's, to force runs of planes. */
  maxBindingBytes?: number;
}

const WG = 256;

const ceil4 = (v: number) => Math.ceil(v / 4) * 4;

function floatDtype(t: Tensor, what: string): 'f32' | 'f16' {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`${what}: needs a float tensor, got ${t.toString()}`);
  return t.dtype;
}

/** [samples, planes per sample, H, W] of a tensor of rank >= 3 ([N, ...middle, H, W]). */
function planesOf(t: Tensor, what: string): [number, number, number, number] {
  if (t.shape.length < 3) throw new ShapeError(`${what}: expects [N, ..., H, W] (rank >= 3), got [${t.shape}]`);
  const r = t.shape.length;
  const mid = t.shape.slice(1, r - 2).reduce((a, b) => a * b, 1);
  return [t.shape[0], mid, t.shape[r - 2], t.shape[r - 1]];
}

function batchRange(opts: WindowOptions, n: number, what: string): [number, number] {
  const [start, count] = opts.batch ?? [0, n];
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > n) {
    throw new InputError(`${what}: batch [${start}, +${count}) is not inside the ${n} samples`);
  }
  return [start, count];
}

/** Planes p0 .. p0+count of t (planeElems elements each) as an aligned byte range and
 *  the element offset of plane p0 inside it. */
function planeRange(t: Tensor, p0: number, count: number, planeElems: number): { binding: BufferBinding; base: number } {
  const el = BYTES[t.dtype];
  const start = p0 * planeElems * el;
  const align = t.rt.limits.minStorageBufferOffsetAlignment;
  const at = Math.floor(start / align) * align;
  const end = Math.min(ceil4(start + count * planeElems * el), ceil4(t.bytes));
  return { binding: t.range(at, Math.max(4, end - at)), base: (start - at) / el };
}

interface Window {
  planes: number; srcPlane0: number; dstPlane0: number;
  rows: number; cols: number;
  srcTop: number; srcLeft: number; dstTop: number; dstLeft: number;
}

/** Records the window copy, in runs of planes when a tensor exceeds the binding limit. */
function copyWindow(src: Tensor, dst: Tensor, srcHW: [number, number], dstHW: [number, number], w: Window, limit: number, what: string): void {
  const dtype = floatDtype(src, what);
  if (dst.dtype !== dtype) throw new ShapeError(`${what}: src is ${src.dtype} but dst is ${dst.dtype}`);
  if (w.planes * w.rows * w.cols === 0) return;
  const [sh, sw] = srcHW;
  const [dh, dw] = dstHW;
  const srcPlane = sh * sw;
  const dstPlane = dh * dw;
  const rt = src.rt;
  const el = BYTES[dtype];
  const whole = src.bytes <= limit && dst.bytes <= limit;
  const worst = Math.max(srcPlane, dstPlane) * el;
  const perRun = whole ? w.planes : Math.floor((limit - rt.limits.minStorageBufferOffsetAlignment - 4) / worst);
  if (perRun < 1) {
    throw new LimitError(`${what}: one ${sh}x${sw} -> ${dh}x${dw} plane takes ${formatBytes(worst)}, more than the storage binding limit ${formatBytes(limit)} on ${rt.adapterName}; use a smaller image`);
  }
  for (let p = 0; p < w.planes; p += perRun) {
    const count = Math.min(perRun, w.planes - p);
    const s = whole ? { binding: src.binding, base: (w.srcPlane0 + p) * srcPlane } : planeRange(src, w.srcPlane0 + p, count, srcPlane);
    const d = whole ? { binding: dst.binding, base: (w.dstPlane0 + p) * dstPlane } : planeRange(dst, w.dstPlane0 + p, count, dstPlane);
    const total = count * w.rows * w.cols;
    rt.dispatch(
      { family: 'pad', entry: 'pad_forward', dtype, overrides: { WG } },
      {
        params: [total, w.rows, w.cols, sh, sw, dw, srcPlane, dstPlane, i32(w.srcTop), i32(w.srcLeft), w.dstTop, w.dstLeft, s.base, d.base],
        bindings: [s.binding, d.binding],
        workgroups: Math.ceil(total / WG),
        label: `pad_forward[${count}x${sh}x${sw}->${w.rows}x${w.cols}]`,
      },
    );
  }
}

/**
 * y[.., i, j] = x[.., top + i, left + j], 0 where that lies outside x. x [N, ..., H, W] ->
 * [count, ..., rows, cols] for the samples in opts.batch (default all).
 */
export function window2d(x: Tensor, top: number, left: number, rows: number, cols: number, opts: WindowOptions = {}): Tensor {
  const [n, mid, h, w] = planesOf(x, 'window2d');
  for (const v of [top, left, rows, cols]) if (!Number.isInteger(v)) throw new InputError(`window2d: window ${top},${left} ${rows}x${cols} must be integers`);
  if (rows < 0 || cols < 0) throw new InputError(`window2d: window size ${rows}x${cols} must not be negative`);
  const [b0, count] = batchRange(opts, n, 'window2d');
  const r = x.shape.length;
  const y = Tensor.empty(x.rt, [count, ...x.shape.slice(1, r - 2), rows, cols], x.dtype, 'pad');
  const limit = opts.maxBindingBytes ?? x.rt.limits.maxStorageBufferBindingSize;
  copyWindow(x, y, [h, w], [rows, cols], {
    planes: count * mid, srcPlane0: b0 * mid, dstPlane0: 0, rows, cols, srcTop: top, srcLeft: left, dstTop: 0, dstLeft: 0,
  }, limit, 'window2d');
  return y;
}

/** F.pad(x, [left, right, top, bottom]) with zeros over the last two axes (negative pads
 *  crop). x [N, ..., H, W] -> [N, ..., H + top + bottom, W + left + right]. */
export function pad2d(x: Tensor, pads: Pads, opts: WindowOptions = {}): Tensor {
  const [, , h, w] = planesOf(x, 'pad2d');
  const [left, right, top, bottom] = pads;
  const rows = h + top + bottom;
  const cols = w + left + right;
  if (rows < 0 || cols < 0) throw new InputError(`pad2d: pads [${pads}] crop more than the ${h}x${w} planes of [${x.shape}]`);
  return window2d(x, -top, -left, rows, cols, opts);
}

/** dx of pad2d: dy cropped by the same pads (zero padding's adjoint). */
export function pad2dBackward(dy: Tensor, pads: Pads): Tensor {
  const [left, right, top, bottom] = pads;
  return pad2d(dy, [-left, -right, -top, -bottom]);
}

/** Writes src [count, ..., h, w] into dst [N, ..., H, W] at rows top.., columns left..,
 *  samples batchStart.. (default 0); the middle dims must match and the box must fit. */
export function pasteInto2d(dst: Tensor, src: Tensor, top: number, left: number, opts: { batchStart?: number; maxBindingBytes?: number } = {}): void {
  const [n, mid, h, w] = planesOf(dst, 'pasteInto2d');
  const [count, smid, sh, sw] = planesOf(src, 'pasteInto2d');
  const b0 = opts.batchStart ?? 0;
  const midOk = src.shape.length === dst.shape.length && src.shape.slice(1, -2).every((d, i) => d === dst.shape[i + 1]) && smid === mid;
  if (!midOk || !Number.isInteger(top) || !Number.isInteger(left) || top < 0 || left < 0 || top + sh > h || left + sw > w || b0 < 0 || b0 + count > n) {
    throw new ShapeError(`pasteInto2d: src [${src.shape}] at sample ${b0}, row ${top}, column ${left} does not fit dst [${dst.shape}]`);
  }
  const limit = opts.maxBindingBytes ?? dst.rt.limits.maxStorageBufferBindingSize;
  copyWindow(src, dst, [sh, sw], [h, w], {
    planes: count * mid, srcPlane0: 0, dstPlane0: b0 * mid, rows: sh, cols: sw, srcTop: 0, srcLeft: 0, dstTop: top, dstLeft: left,
  }, limit, 'pasteInto2d');
}
