// Seeded, deterministic initial latents.
//
// The generator is counter based, so element i of a seed's stream does not depend on the
// batch size, the order of generation or the platform:
//   h(x)      = lowbias32 integer hash (tensor/hash.ts)
//   key       = h(seed ^ h(stream))          stream = batch row, so row b of a batch of 4
//                                            equals row 0 of seed `seed` with stream b
//   u1, u2    = (h(key + 2i) + 0.5) / 2^32,  (h(key + 2i + 1) + 0.5) / 2^32   in (0, 1)
//   z_i       = sqrt(-2 ln u1) * cos(2 pi u2)                                  (Box-Muller)
// computed in float64 and rounded to float32. The same (seed, row) always gives the same
// latent, so a prompt can be regenerated alone from a batch.
import type { Runtime } from '../gpu/runtime.js';
import { lowbias32, streamKey } from '../tensor/hash.js';
import { Tensor } from '../tensor/tensor.js';

/** n standard-normal float32 values of stream `stream` under `seed`. */
export function gaussianStream(seed: number, stream: number, n: number): Float32Array {
  const key = streamKey(seed, stream);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = (lowbias32((key + 2 * i) >>> 0) + 0.5) / 4294967296;
    const u2 = (lowbias32((key + 2 * i + 1) >>> 0) + 0.5) / 4294967296;
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

/** Latents [B, C, h, w]: row b is stream b of `seed`, scaled by `sigma`. */
export function initialLatents(rt: Runtime, seed: number, shape: [number, number, number, number], sigma = 1): Tensor {
  const [B, C, h, w] = shape;
  const per = C * h * w;
  const data = new Float32Array(B * per);
  for (let b = 0; b < B; b++) {
    const row = gaussianStream(seed, b, per);
    for (let i = 0; i < per; i++) data[b * per + i] = row[i] * sigma;
  }
  return Tensor.from(rt, data, shape, 'f32', 'latents');
}
