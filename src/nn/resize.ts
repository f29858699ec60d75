// Resizing of NCHW tensors: nearest 2x upsampling (inference only: the UNet and VAE
// upsamplers) and bilinear resizing with PyTorch's F.interpolate(mode='bilinear',
// align_corners=False) taps, with its backward (the adjoint). Tensors past the binding
// limit are processed in runs of whole planes. Kernel: shaders/resize.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { bindingRuns, runBinding } from './layout.js';

const WG = 256;

function nchw(x: Tensor, what: string): [number, number, number, number] {
  if (x.shape.length !== 4) throw new ShapeError(`${what}: expects [N,C,H,W], got [${x.shape}]`);
  floatDtype(x, what);
  const [n, c, h, w] = x.shape;
  return [n, c, h, w];
}

function floatDtype(x: Tensor, what: string): 'f32' | 'f16' {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`${what}: needs a float tensor, got ${x.dtype}`);
  return x.dtype;
}

function checkSize(h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new InputError(`${what}: size ${h}x${w} must be positive integers`);
}

/** Records one resize entry over runs of planes: `src` planes are inH x inW, `dst` planes
 *  outH x outW; `perSrcPixel` picks one thread per src pixel instead of per dst pixel. */
function dispatchPlanes(
  entry: string, src: Tensor, dst: Tensor, planes: number,
  [inH, inW, outH, outW]: number[], srcPlane: number, dstPlane: number, perSrcPixel: boolean, perThread = 1,
): void {
  if (dst.size === 0 || src.size === 0) return;
  const bytes = BYTES[src.dtype];
  for (const run of bindingRuns(src.rt, planes, [srcPlane * bytes, dstPlane * bytes], entry)) {
    const n = (run.count * (perSrcPixel ? srcPlane : dstPlane)) / perThread;
    src.rt.dispatch(
      { family: 'resize', entry, dtype: floatDtype(src, entry), overrides: { WG } },
      {
        params: [n, inH, inW, outH, outW, f32(inH / outH), f32(inW / outW), f32(outH / inH), f32(outW / inW)],
        bindings: [runBinding(src, run, srcPlane), runBinding(dst, run, dstPlane)],
        workgroups: Math.ceil(n / WG),
        label: `${entry}[${inH}x${inW}->${outH}x${outW}]`,
      },
    );
  }
}

/** [N,C,H,W] -> [N,C,2H,2W], each pixel repeated 2x2. Inference only. */
export function upsampleNearest2x(x: Tensor): Tensor {
  const [n, c, h, w] = nchw(x, 'upsampleNearest2x');
  const y = Tensor.empty(x.rt, [n, c, 2 * h, 2 * w], x.dtype, 'upsample_nearest2x');
  dispatchPlanes('resize_nearest_forward', x, y, n * c, [h, w, 2 * h, 2 * w], h * w, 4 * h * w, true);
  return y;
}

/** [N,C,H,W] -> [N,C,outH,outW], F.interpolate(mode='bilinear', align_corners=False). */
export function resizeBilinear(x: Tensor, outH: number, outW: number): Tensor {
  const [n, c, h, w] = nchw(x, 'resizeBilinear');
  checkSize(outH, outW, 'resizeBilinear');
  const y = Tensor.empty(x.rt, [n, c, outH, outW], x.dtype, 'resize_bilinear');
  // Four output pixels of a row per thread when rows have a multiple of 4.
  const vec = outW % 4 === 0 ? 4 : 1;
  dispatchPlanes(vec === 4 ? 'resize_bilinear_forward4' : 'resize_bilinear_forward', x, y, n * c, [h, w, outH, outW], h * w, outH * outW, false, vec);
  return y;
}

/** dx for resizeBilinear: dy [N,C,outH,outW] -> dx [N,C,inH,inW] (the adjoint). */
export function resizeBilinearBackward(dy: Tensor, inH: number, inW: number): Tensor {
  const [n, c, outH, outW] = nchw(dy, 'resizeBilinearBackward');
  checkSize(inH, inW, 'resizeBilinearBackward');
  const dx = Tensor.empty(dy.rt, [n, c, inH, inW], dy.dtype, 'resize_bilinear_backward');
  // Threads run over dx, so here the bound "src" of dispatchPlanes is dy and the threads
  // are per dst pixel.
  dispatchPlanes('resize_bilinear_backward_input', dy, dx, n * c, [inH, inW, outH, outW], outH * outW, inH * inW, false);
  return dx;
}
