// Float64 references for the pad family: a window over the last two axes with zero fill,
// and pasting a box into a larger tensor. Written from the definitions, plain loops.

/** y [P, rows, cols] with y[p, i, j] = x[p, top + i, left + j] (0 outside x [P, H, W]). */
export function windowRef(x: ArrayLike<number>, planes: number, h: number, w: number, top: number, left: number, rows: number, cols: number): Float64Array {
  const y = new Float64Array(planes * rows * cols);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const sy = top + i;
        const sx = left + j;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w) y[(p * rows + i) * cols + j] = x[(p * h + sy) * w + sx];
      }
    }
  }
  return y;
}

/** F.pad(x, [left, right, top, bottom]) over planes [P, H, W] (negative pads crop). */
export function pad2dRef(x: ArrayLike<number>, planes: number, h: number, w: number, pads: [number, number, number, number]): Float64Array {
  const [left, right, top, bottom] = pads;
  return windowRef(x, planes, h, w, -top, -left, h + top + bottom, w + left + right);
}

/** dst [P, H, W] with src [P, h, w] written at (top, left); dst is copied, not changed. */
export function pasteRef(dst: ArrayLike<number>, h: number, w: number, src: ArrayLike<number>, planes: number, sh: number, sw: number, top: number, left: number): Float64Array {
  const y = Float64Array.from(dst);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < sh; i++) {
      for (let j = 0; j < sw; j++) y[(p * h + top + i) * w + left + j] = src[(p * sh + i) * sw + j];
    }
  }
  return y;
}
