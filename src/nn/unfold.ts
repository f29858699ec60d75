// Patch unfold for the grounding decoder: F [N,C,H,W] cut into non-overlapping p x p
// patches -> tokens [N, (H/p)*(W/p), C*p*p], i.e. F.unfold(x, p, stride=p).transpose(1, 2).
// Row index = py*(W/p) + px, column index = c*p*p + ky*p + kx. The map is a bijection,
// so the backward is its inverse gather. Kernel: shaders/unfold.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { Tensor } from '../tensor/tensor.js';
import { moveDtype } from './layout.js';

const WG = 256;

function checkPatch([n, c, h, w]: readonly number[], p: number, what: string): void {
  if (!Number.isInteger(p) || p < 1) throw new InputError(`${what}: patch size ${p} must be a positive integer`);
  if (h % p !== 0 || w % p !== 0) throw new ShapeError(`${what}: H=${h} and W=${w} must be divisible by the patch size ${p}`);
  if ([n, c, h, w].some((d) => !Number.isInteger(d))) throw new ShapeError(`${what}: expects [N,C,H,W], got [${[n, c, h, w]}]`);
}

/** A patch row of p elements is contiguous on both sides, so p % 4 == 0 moves vec4s. */
function dispatch(entry: string, src: Tensor, dst: Tensor, [, c, h, w]: readonly number[], p: number): void {
  if (dst.size === 0) return;
  const vec4 = p % 4 === 0;
  const n = vec4 ? dst.size / 4 : dst.size;
  src.rt.dispatch(
    { family: 'unfold', entry: vec4 ? `${entry}_vec4` : entry, dtype: moveDtype(src), overrides: { WG } },
    { params: [n, c, h, w, p], bindings: [src.binding, dst.binding], workgroups: Math.ceil(n / WG), label: `${entry}[p=${p}]` },
  );
}

/** x [N,C,H,W] -> patch tokens [N, (H/p)*(W/p), C*p*p]. */
export function patchUnfold(x: Tensor, p: number): Tensor {
  if (x.shape.length !== 4) throw new ShapeError(`patchUnfold: expects [N,C,H,W], got [${x.shape}]`);
  checkPatch(x.shape, p, 'patchUnfold');
  const [n, c, h, w] = x.shape;
  const y = Tensor.empty(x.rt, [n, (h / p) * (w / p), c * p * p], x.dtype, 'patch_unfold');
  dispatch('unfold_forward', x, y, x.shape, p);
  return y;
}

/** dx for patchUnfold: dy [N, (H/p)*(W/p), C*p*p] -> dx [N,C,H,W] (shape = x's shape). */
export function patchUnfoldBackward(dy: Tensor, shape: [number, number, number, number], p: number): Tensor {
  checkPatch(shape, p, 'patchUnfoldBackward');
  const [n, c, h, w] = shape;
  const expected = [n, (h / p) * (w / p), c * p * p];
  if (dy.shape.length !== 3 || dy.shape.some((d, i) => d !== expected[i])) {
    throw new ShapeError(`patchUnfoldBackward: dy [${dy.shape}] does not match [${expected}] for x [${shape}] and p=${p}`);
  }
  const dx = Tensor.empty(dy.rt, shape, dy.dtype, 'patch_unfold_backward');
  dispatch('unfold_backward_input', dy, dx, shape, p);
  return dx;
}
