// Counter-based hashing for seeded host-side values: element i of a stream is a hash of
// (key, i), so values do not depend on batch size, generation order or platform. One
// definition for every user (initial latents, random weights, the grounding module's
// init, the grounding fixtures' input generator), which must agree bit for bit.

/** lowbias32 (Chris Wellons' hash-prospector): x ^= x>>>16; x *= 0x7feb352d;
 *  x ^= x>>>15; x *= 0x846ca68b; x ^= x>>>16, in 32-bit arithmetic. Returns [0, 2^32). */
export function lowbias32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** Key of stream `stream` under `seed`: h(seed ^ h(stream)). */
export function streamKey(seed: number, stream: number): number {
  return lowbias32((seed ^ lowbias32(stream)) >>> 0);
}

/** Uniform in [0, 1) from the top 24 bits of h(key + i): exact in float32, so a float64
 *  generator (the fixtures' Python side) and this one give the same values. */
export function uniform24(key: number, i: number): number {
  return (lowbias32((key + i) >>> 0) >>> 8) * 2 ** -24;
}
