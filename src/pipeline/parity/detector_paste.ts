// The detector fixtures' postprocess stage (golden/detector/README.md section 5): boxes
// mapped back to the original image from the stored detections, and masks pasted from
// the stored boxes and probabilities. Pasted masks are stored as crops (each detection's
// paste region, row-major, concatenated); a detection in postprocess.<i>.paste_fragile
// whose integer paste box came out different is skipped (its box is within 1e-3 px of an
// integer, so a correct float32 implementation may round it either way).
import type { DetectorConfig } from '../../models/detector/config.js';
import type { Runtime } from '../../gpu/runtime.js';
import { pasteMaskCrops, type PastedMask } from '../../models/detector/paste.js';
import { resizeBoxes } from '../../nn/boxes.js';
import type { DetectorIo } from './detector_model.js';

type HW = [number, number];

/** The full [H, W] mask of a pasted crop. */
function fullMask(m: PastedMask, H: number, W: number): Float32Array {
  const out = new Float32Array(H * W);
  for (let y = 0; y < m.height; y++) out.set(m.data.subarray(y * m.width, (y + 1) * m.width), (m.y0 + y) * W + m.x0);
  return out;
}

export async function checkPaste(rt: Runtime, cfg: DetectorConfig, d: DetectorIo, imageSizes: HW[], originals: number[]): Promise<void> {
  d.log('detector: postprocess (boxes to the original size, masks pasted)');
  for (const [i, size] of imageSizes.entries()) {
    const H0 = originals[2 * i];
    const W0 = originals[2 * i + 1];
    const p = `postprocess.${i}`;
    await d.float(`${p}.boxes`, resizeBoxes(await d.f32(`detections.${i}.boxes`), size, [H0, W0]));
    const probsName = `roi_heads.mask_probs.${i}`;
    const M = d.shape(probsName)[3];
    const { masks, pasteBoxes } = await pasteMaskCrops(rt, await d.f32(probsName), M, await d.f32(`${p}.boxes`), [H0, W0], cfg.mask_paste_padding);
    const refBoxes = await d.i64(`${p}.paste_boxes`);
    const fragile = new Set(d.has(`${p}.paste_fragile`) ? await d.i64(`${p}.paste_fragile`) : []);
    const offsets = await d.i64(`${p}.mask_crop_offsets`);
    const crops = await d.f32(`${p}.mask_crops`);
    const actual: number[] = [];
    const expected: number[] = [];
    const boxesActual: number[] = [];
    const sizesActual: number[] = [];
    const sizesExpected: number[] = [];
    const skipped: number[] = [];
    for (const [k, m] of masks.entries()) {
      const same = [0, 1, 2, 3].every((j) => pasteBoxes[k * 4 + j] === refBoxes[k * 4 + j]);
      if (!same && fragile.has(k)) {
        skipped.push(k);
        for (let j = 0; j < 4; j++) boxesActual.push(refBoxes[k * 4 + j]);
        continue;
      }
      for (let j = 0; j < 4; j++) boxesActual.push(pasteBoxes[k * 4 + j]);
      sizesActual.push(m.data.length);
      sizesExpected.push(offsets[k + 1] - offsets[k]);
      const ref = crops.subarray(offsets[k], offsets[k + 1]);
      if (ref.length !== m.data.length) {
        // A different region: compare the lengths only (the size check below fails).
        continue;
      }
      for (let j = 0; j < ref.length; j++) {
        actual.push(m.data[j]);
        expected.push(ref[j]);
      }
    }
    if (skipped.length) d.log(`detector: ${p}: paste-fragile detections ${skipped.join(', ')} rounded their paste box differently; their masks are not compared`);
    d.exact(`${p}.paste_boxes`, boxesActual, refBoxes);
    d.exact(`${p}.mask_crop_offsets`, [masks.length, ...sizesActual], [offsets.length - 1, ...sizesExpected]);
    d.checks.push({ name: `${p}.mask_crops`, actual, expected, metric: 'rel_max', tol: d.tol(`${p}.mask_crops`) });
    const firstName = `${p}.masks_first`;
    if (d.has(firstName)) {
      const [n] = d.shape(firstName);
      const ref = await d.f32(firstName);
      const mine = new Float32Array(n * H0 * W0);
      for (let k = 0; k < n && k < masks.length; k++) {
        if (skipped.includes(k)) mine.set(ref.subarray(k * H0 * W0, (k + 1) * H0 * W0), k * H0 * W0);
        else mine.set(fullMask(masks[k], H0, W0), k * H0 * W0);
      }
      d.checks.push({ name: firstName, actual: mine, expected: ref, metric: 'rel_max', tol: d.tol(firstName) });
    }
  }
}
