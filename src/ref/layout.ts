// Float64 references for data movement, written from the index definitions.

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Row-major strides of a shape. */
function stridesOf(shape: readonly number[]): number[] {
  return shape.map((_, i) => prod(shape.slice(i + 1)));
}

/** Multi-index of flat position i in `shape`. */
function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** y = cat(xs, axis): y[.., k, ..] comes from the input whose axis range holds k. */
export function concatRef(xs: ArrayLike<number>[], shapes: number[][], axis: number): { out: Float64Array; shape: number[] } {
  const shape = [...shapes[0]];
  shape[axis] = shapes.reduce((s, sh) => s + sh[axis], 0);
  const out = new Float64Array(prod(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    let k = idx[axis];
    let which = 0;
    while (k >= shapes[which][axis]) k -= shapes[which++][axis];
    const src = [...idx];
    src[axis] = k;
    const st = stridesOf(shapes[which]);
    out[i] = xs[which][src.reduce((s, v, d) => s + v * st[d], 0)];
  }
  return { out, shape };
}

/** y = x[.., start:end, ..] along axis. */
export function sliceRef(x: ArrayLike<number>, xShape: number[], axis: number, start: number, end: number): Float64Array {
  const shape = [...xShape];
  shape[axis] = end - start;
  const st = stridesOf(xShape);
  const out = new Float64Array(prod(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    idx[axis] += start;
    out[i] = x[idx.reduce((s, v, d) => s + v * st[d], 0)];
  }
  return out;
}

/** y = x.permute(perm): y[i_0..i_r] = x[j] with j[perm[d]] = i_d. */
export function permuteRef(x: ArrayLike<number>, xShape: number[], perm: number[]): Float64Array {
  const shape = perm.map((p) => xShape[p]);
  const st = stridesOf(xShape);
  const out = new Float64Array(prod(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = x[idx.reduce((s, v, d) => s + v * st[perm[d]], 0)];
  }
  return out;
}
