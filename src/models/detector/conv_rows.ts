// Convolutions of the RoI heads as matrix products. The box and mask heads convolve
// thousands of tiny maps ([R, 256, 7, 7] and [R, 256, 14, 14]); nn/conv2d tiles output
// rows in quads per sample and wastes most of its lanes there: on lavapipe a 3x3
// 256 -> 256 conv over 128 RoIs of 7x7 ran at 0.36 GFLOP/s, the same work as one matmul
// at 3.7 GFLOP/s. So a k x k conv (stride 1, same padding) becomes
//   cols [R*H*W, Cin*k*k] (im2col from k*k zero-padded windows, column (cin, ky, kx) as the
//   weight [Cout, Cin, k, k] flattens) x weight^T + bias, activation fused -> [R, H, W, Cout]
// and one permute back to NCHW. The im2col matrix is built a chunk of RoIs at a time.
import { ShapeError } from '../../gpu/errors.js';
import type { Activation } from '../../nn/elementwise.js';
import { concat, copyInto, permute } from '../../nn/layout.js';
import { matmul } from '../../nn/matmul.js';
import { window2d } from '../../nn/pad.js';
import { scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';

/** Bytes of im2col matrix built per chunk of RoIs. */
const CHUNK_BYTES = 64 << 20;

export interface MatmulConvOptions {
  activation?: Activation;
  /** @internal Tests: RoIs per chunk (default: CHUNK_BYTES of im2col). */
  chunk?: number;
}

/** act(conv2d(x, weight, stride 1, padding (k-1)/2) + bias): x [R, Cin, H, W], weight
 *  [Cout, Cin, k, k] (k odd) -> [R, Cout, H, W]. */
export function convAsMatmul(x: Tensor, weight: Tensor, bias: Tensor | undefined, opts: MatmulConvOptions = {}): Tensor {
  const [R, C, H, W] = x.shape;
  const [O, Cw, k, kw] = weight.shape;
  if (x.shape.length !== 4 || weight.shape.length !== 4 || Cw !== C || k !== kw || k % 2 !== 1) {
    throw new ShapeError(`convAsMatmul: x [${x.shape}] and weight [${weight.shape}] must be [R, C, H, W] and [O, C, k, k] with k odd`);
  }
  const pad = (k - 1) / 2;
  const K = C * k * k;
  const y = Tensor.empty(x.rt, [R, O, H, W], x.dtype, 'conv_as_matmul');
  const per = Math.max(1, opts.chunk ?? Math.floor(CHUNK_BYTES / (H * W * K * 4)));
  for (let r0 = 0; r0 < R; r0 += per) {
    const n = Math.min(per, R - r0);
    scope(() => {
      let rows: Tensor;
      if (k === 1) {
        rows = permute(R === n ? x : window2d(x, 0, 0, H, W, { batch: [r0, n] }), [0, 2, 3, 1]).reshape([n * H * W, C]);
      } else {
        const taps: Tensor[] = [];
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) taps.push(window2d(x, ky - pad, kx - pad, H, W, { batch: [r0, n] }).reshape([n, C, 1, H * W]));
        }
        rows = permute(concat(taps, 2), [0, 3, 1, 2]).reshape([n * H * W, K]);
      }
      const out = matmul(rows, weight.reshape([O, K]), { transB: true, bias, activation: opts.activation });
      copyInto(y, permute(out.reshape([n, H * W, O]), [0, 2, 1]).reshape([n, O, H, W]), 0, r0);
    });
  }
  return y;
}
