// Mask R-CNN's last step (transform.postprocess): each detection's M x M mask
// probabilities pasted into the original image (nn/mask_paste, torchvision's
// paste_masks_in_image, padding 1, no threshold). A full [H, W] canvas per detection is
// mostly zeros (100 detections of an 800x1333 image are 427 MB), so canvases are pasted
// a few at a time and each is kept as its paste region: the crop outside of which the
// canvas is exactly 0.
import { withScope } from '../../gpu/profiler.js';
import type { Runtime } from '../../gpu/runtime.js';
import { pasteMasksInImage } from '../../nn/mask_paste.js';
import { scopeAsync } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';

/** A pasted mask: probabilities over the image region [y0, y0+height) x [x0, x0+width),
 *  row-major; every pixel outside it is 0. The region may be empty (a box off the image). */
export interface PastedMask {
  x0: number;
  y0: number;
  width: number;
  height: number;
  data: Float32Array;
}

/** Canvas bytes pasted per dispatch group. */
const CHUNK_BYTES = 64 << 20;

/** Pastes `probs` [N, M, M] (host) at `boxes` [N, 4] (original-image coordinates) into
 *  H x W canvases and keeps each one's paste region. Also returns the integer paste boxes. */
export async function pasteMaskCrops(
  rt: Runtime, probs: Float32Array, M: number, boxes: Float32Array, [H, W]: readonly [number, number], padding: number,
): Promise<{ masks: PastedMask[]; pasteBoxes: Int32Array }> {
  const N = boxes.length / 4;
  const masks: PastedMask[] = [];
  const pasteBoxes = new Int32Array(N * 4);
  const per = Math.max(1, Math.floor(CHUNK_BYTES / (4 * H * W)));
  for (let k0 = 0; k0 < N; k0 += per) {
    const n = Math.min(per, N - k0);
    await scopeAsync(async () => {
      const t = Tensor.from(rt, probs.subarray(k0 * M * M, (k0 + n) * M * M), [n, M, M], 'f32', 'mask_probs');
      const out = withScope(rt, 'det_postprocess', () => withScope(rt, 'paste_masks', () => pasteMasksInImage(t, boxes.subarray(k0 * 4, (k0 + n) * 4), [H, W], padding)));
      pasteBoxes.set(out.pasteBoxes, k0 * 4);
      const canvas = await out.masks.toArray();
      for (let k = 0; k < n; k++) {
        const [bx0, by0, bx1, by1] = out.pasteBoxes.subarray(k * 4, k * 4 + 4);
        const x0 = Math.max(bx0, 0);
        const y0 = Math.max(by0, 0);
        const width = Math.max(Math.min(bx1 + 1, W) - x0, 0);
        const height = Math.max(Math.min(by1 + 1, H) - y0, 0);
        const data = new Float32Array(width * height);
        for (let y = 0; y < height; y++) {
          const at = (k * H + y0 + y) * W + x0;
          data.set(canvas.subarray(at, at + width), y * width);
        }
        masks.push({ x0, y0, width, height, data });
      }
    });
  }
  return { masks, pasteBoxes };
}
