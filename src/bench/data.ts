// Shared by the kernel benchmark cases: seeded inputs and the validation metric
// (test/helpers.ts imports vitest, so the cases cannot use it).

/** Seeded uniform values in [lo, hi) (a linear congruential generator: fast and repeatable). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let x = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * x) / 4294967296;
  });
}

/** Relative L2 error of `actual` against the float64 reference. */
export function relL2(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (actual[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}
