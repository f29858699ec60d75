// Float64 reference for reductions over one axis of x viewed as [outer, n, inner].

export type ReduceKind = 'sum' | 'mean' | 'max';

/** x with `shape`, reduced over `axis` -> [outer * inner] (row-major, axis removed). */
export function reduceRef(x: ArrayLike<number>, shape: number[], axis: number, kind: ReduceKind): Float64Array {
  const n = shape[axis];
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let acc = kind === 'max' ? -Infinity : 0;
      for (let k = 0; k < n; k++) {
        const v = x[(o * n + k) * inner + j];
        acc = kind === 'max' ? Math.max(acc, v) : acc + v;
      }
      out[o * inner + j] = kind === 'mean' ? acc / n : acc;
    }
  }
  return out;
}
