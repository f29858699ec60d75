// Bicubic resizing of NCHW f32 tensors: PyTorch's F.interpolate(x, size=(height, width),
// mode='bicubic', align_corners=...) without antialias. DAAM resizes its per-head
// cross-attention maps and its word maps this way (castorini/daam trace.py:116 and
// heatmap.py:80, align_corners not passed, which torch reads as False). Inference only:
// DAAM needs no gradient through it. Tensors past the binding limit are processed in
// runs of whole planes. Kernel: shaders/bicubic.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { bindingRuns, runBinding } from './layout.js';

const WG = 256;
const ENTRY = 'bicubic_forward';

export interface BicubicOptions {
  /** Output height. */
  height: number;
  /** Output width. */
  width: number;
  /** torch's align_corners (default false, F.interpolate's behaviour when it is not passed). */
  alignCorners?: boolean;
}

/** torch's area_pixel_compute_scale for an output size (no scale_factor): the step
 *  between output samples in input pixels, rounded to f32 as torch's f32 kernel does. */
function axisScale(inSize: number, outSize: number, alignCorners: boolean): number {
  if (alignCorners) return outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return inSize / outSize;
}

/** [N,C,H,W] f32 -> [N,C,height,width], F.interpolate(mode='bicubic'). Inference only. */
export function bicubic(x: Tensor, opts: BicubicOptions): Tensor {
  if (x.shape.length !== 4) throw new ShapeError(`bicubic: expects x as [N,C,H,W], got [${x.shape}]`);
  if (x.dtype !== 'f32') throw new ShapeError(`bicubic: supports f32 tensors only, got ${x.dtype}; cast x to f32 first`);
  const { height, width } = opts;
  const alignCorners = opts.alignCorners ?? false;
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new InputError(`bicubic: output size ${height}x${width} (options height, width) must be positive integers`);
  }
  if (typeof alignCorners !== 'boolean') throw new InputError(`bicubic: option alignCorners must be a boolean, got ${String(alignCorners)}`);
  const [n, c, h, w] = x.shape;
  if (h < 1 || w < 1) throw new ShapeError(`bicubic: input planes must be non-empty, got ${h}x${w} in [${x.shape}]`);
  const y = Tensor.empty(x.rt, [n, c, height, width], 'f32', 'bicubic');
  if (y.size === 0) return y;
  const inPlane = h * w;
  const outPlane = height * width;
  const bytes = BYTES.f32;
  const params = [
    f32(axisScale(h, height, alignCorners)),
    f32(axisScale(w, width, alignCorners)),
    alignCorners ? 1 : 0,
  ];
  for (const run of bindingRuns(x.rt, n * c, [inPlane * bytes, outPlane * bytes], ENTRY)) {
    const count = run.count * outPlane;
    x.rt.dispatch(
      { family: 'bicubic', entry: ENTRY, dtype: 'f32', overrides: { WG } },
      {
        params: [count, h, w, height, width, ...params],
        bindings: [runBinding(x, run, inPlane), runBinding(y, run, outPlane)],
        workgroups: Math.ceil(count / WG),
        label: `${ENTRY}[${h}x${w}->${height}x${width}${alignCorners ? ',align_corners' : ''}]`,
      },
    );
  }
  return y;
}
