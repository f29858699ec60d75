// Float64 reference for torchvision's box coder (BoxCoder.decode_single), written from
// its definition: for a reference box of width w, height h and centre (cx, cy) and codes
// (dx, dy, dw, dh) divided by the weights (wx, wy, ww, wh), with dw, dh capped at `clip`:
//   centre' = (dx w + cx, dy h + cy), size' = (e^dw w, e^dh h),
//   box = centre' -+ size' / 2.
// relCodes [N, 4C], reference [N, 4] -> [N, C, 4].
export function decodeBoxesRef(relCodes: ArrayLike<number>, reference: ArrayLike<number>, weights: readonly number[], clip: number): Float64Array {
  const n = reference.length / 4;
  const c = n === 0 ? 0 : relCodes.length / (4 * n);
  const out = new Float64Array(n * c * 4);
  for (let i = 0; i < n; i++) {
    const [x1, y1, x2, y2] = [reference[4 * i], reference[4 * i + 1], reference[4 * i + 2], reference[4 * i + 3]];
    const w = x2 - x1;
    const h = y2 - y1;
    const cx = x1 + w / 2;
    const cy = y1 + h / 2;
    for (let k = 0; k < c; k++) {
      const o = (i * c + k) * 4;
      const px = (relCodes[o] / weights[0]) * w + cx;
      const py = (relCodes[o + 1] / weights[1]) * h + cy;
      const pw = Math.exp(Math.min(relCodes[o + 2] / weights[2], clip)) * w;
      const ph = Math.exp(Math.min(relCodes[o + 3] / weights[3], clip)) * h;
      out.set([px - pw / 2, py - ph / 2, px + pw / 2, py + ph / 2], o);
    }
  }
  return out;
}
