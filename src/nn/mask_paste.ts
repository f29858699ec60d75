// paste_masks_in_image (torchvision 0.14.1): Mask R-CNN's per-detection M x M mask
// probabilities pasted into full-image canvases. Inference only. Kernel:
// shaders/mask_paste.wgsl.
//
// The integer paste boxes are computed on the host, in float32 as torch does
// (expand_masks / expand_boxes): scale = float32((M + 2 pad) / M);
//   w_half = ((x2 - x1) * 0.5) * scale, x_c = (x2 + x1) * 0.5, box = (x_c - w_half, ...),
// each op one f32 rounding, then .to(int64): truncation toward zero (-0.6 -> 0,
// -1.4 -> -1). The detection boxes are host data (after NMS and resize_boxes), so this
// is exact and costs nothing. Canvases past the binding limit are written in runs of
// whole masks.
import { InputError, ShapeError } from '../gpu/errors.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { bindingRuns, runBinding } from './layout.js';

const fr = Math.fround;
const WG = 256;

/** expand_boxes(boxes, (M + 2 pad) / M).to(int64): [N, 4] (x0, y0, x1, y1) integers. */
export function pasteBoxes(boxes: ArrayLike<number>, maskSize: number, padding = 1): Int32Array {
  if (boxes.length % 4 !== 0) throw new ShapeError(`pasteBoxes: boxes must be [N, 4], got ${boxes.length} values`);
  const scale = fr((maskSize + 2 * padding) / maskSize);
  const out = new Int32Array(boxes.length);
  for (let i = 0; i < boxes.length; i += 4) {
    const [x1, y1, x2, y2] = [fr(boxes[i]), fr(boxes[i + 1]), fr(boxes[i + 2]), fr(boxes[i + 3])];
    const wHalf = fr(fr(fr(x2 - x1) * 0.5) * scale);
    const hHalf = fr(fr(fr(y2 - y1) * 0.5) * scale);
    const xc = fr(fr(x2 + x1) * 0.5);
    const yc = fr(fr(y2 + y1) * 0.5);
    const e = [fr(xc - wHalf), fr(yc - hHalf), fr(xc + wHalf), fr(yc + hHalf)];
    e.forEach((v, j) => {
      if (!Number.isFinite(v) || Math.abs(v) > 2 ** 30) throw new InputError(`pasteBoxes: box ${i / 4} expands to a coordinate ${v} that is not a usable pixel index`);
      out[i + j] = Math.trunc(v);
    });
  }
  return out;
}

export interface PasteMasksResult {
  /** [N, 1, H, W] canvases (mask probabilities, no threshold). */
  masks: Tensor;
  /** The integer paste boxes [N, 4] (torchvision's int64 boxes). */
  pasteBoxes: Int32Array;
}

/**
 * paste_masks_in_image(masks, boxes, (H, W), padding): `masks` [N, 1, M, M] (or [N, M, M])
 * f32/f16 on the GPU, `boxes` [N, 4] host (x1, y1, x2, y2) in image coordinates ->
 * [N, 1, H, W] canvases.
 */
export function pasteMasksInImage(masks: Tensor, boxes: ArrayLike<number>, [h, w]: readonly [number, number], padding = 1): PasteMasksResult {
  const r = masks.shape.length;
  const m = masks.shape[r - 1];
  const ok = (r === 4 && masks.shape[1] === 1) || r === 3;
  if (!ok || masks.shape[r - 2] !== m) throw new ShapeError(`pasteMasksInImage: masks must be [N, 1, M, M] or [N, M, M], got [${masks.shape}]`);
  if (masks.dtype !== 'f32' && masks.dtype !== 'f16') throw new ShapeError(`pasteMasksInImage: masks must be f32 or f16, got ${masks.dtype}`);
  const n = masks.shape[0];
  if (boxes.length !== 4 * n) throw new ShapeError(`pasteMasksInImage: ${boxes.length / 4} boxes for ${n} masks`);
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) throw new InputError(`pasteMasksInImage: image size ${h}x${w} must be positive integers`);
  if (!(Number.isInteger(padding) && padding >= 0)) throw new InputError(`pasteMasksInImage: padding ${padding} must be a non-negative integer`);
  if (!(m > 0)) throw new ShapeError(`pasteMasksInImage: empty masks [${masks.shape}]`);
  const rt = masks.rt;
  const pb = pasteBoxes(boxes, m, padding);
  const out = Tensor.empty(rt, [n, 1, h, w], masks.dtype, 'pasted_masks');
  if (n === 0) return { masks: out, pasteBoxes: pb };
  const info = new Uint32Array(8 * n);
  const infoF = new Float32Array(info.buffer);
  const infoI = new Int32Array(info.buffer);
  const size = m + 2 * padding;
  for (let k = 0; k < n; k++) {
    const [x0, y0, x1, y1] = pb.subarray(4 * k, 4 * k + 4);
    const bw = Math.max(x1 - x0 + 1, 1);
    const bh = Math.max(y1 - y0 + 1, 1);
    infoI.set([x0, y0, x1, y1, bw, bh], 8 * k);
    infoF[8 * k + 6] = size / bw;
    infoF[8 * k + 7] = size / bh;
  }
  const infoT = Tensor.from(rt, info, [8 * n], 'u32', 'mask_paste_boxes');
  const el = BYTES[masks.dtype];
  for (const run of bindingRuns(rt, n, [m * m * el, h * w * el], 'pasteMasksInImage')) {
    const threads = run.count * h * w;
    rt.dispatch(
      { family: 'mask_paste', entry: 'mask_paste_forward', dtype: masks.dtype, overrides: { WG } },
      {
        params: [threads, h, w, m, padding, run.start],
        bindings: [runBinding(masks, run, m * m), infoT.binding, runBinding(out, run, h * w)],
        workgroups: Math.ceil(threads / WG),
        label: `mask_paste_forward[M=${m},${h}x${w}]`,
      },
    );
  }
  infoT.dispose();
  return { masks: out, pasteBoxes: pb };
}
