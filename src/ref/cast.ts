// Float64 reference for f16 rounding, written from IEEE 754 binary16 (1 sign bit, 5
// exponent bits with bias 15, 10 fraction bits): a finite x in the normal range
// 2^-14 <= |x| < 65520 has the spacing 2^(e - 10) with e = floor(log2 |x|); below 2^-14
// the spacing is the subnormal step 2^-24. Round to nearest, ties to even.

/** The spacing of f16 values around x (finite, |x| <= 65504). */
export function f16Spacing(x: number): number {
  const a = Math.abs(x);
  return 2 ** ((a < 2 ** -14 ? -14 : Math.floor(Math.log2(a))) - 10);
}

/** The two f16 values next to x (equal when x is an f16 value); both lie in x's binade,
 *  whose bounds are multiples of its spacing. */
export function f16Neighbours(x: number): [number, number] {
  const step = f16Spacing(x);
  return [Math.floor(x / step) * step, Math.ceil(x / step) * step];
}

/** x rounded to the nearest f16 value, ties to the one with an even last fraction bit. */
export function roundF16Ref(x: number): number {
  const [lo, hi] = f16Neighbours(x);
  if (lo === hi) return lo;
  const dl = x - lo;
  const dh = hi - x;
  if (dl !== dh) return dl < dh ? lo : hi;
  return Math.abs(Math.round(lo / f16Spacing(x))) % 2 === 0 ? lo : hi;
}

/** Every element rounded to f16. */
export function castF16Ref(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = roundF16Ref(x[i]);
  return out;
}
