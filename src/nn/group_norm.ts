// Group normalisation, inference only (SD's UNet and VAE never train it here). Two
// passes: per-(n, group) statistics from chunked Welford partials merged in a workgroup
// tree, then the apply pass with the optional SiLU fused. Kernels: shaders/group_norm.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { ACT } from './elementwise.js';
import { bindingRuns, runBinding } from './layout.js';

/** Workgroup size and elements per thread for a run of `len` elements: 4096-element
 *  chunks of 256 threads for long runs, else one chunk of a power-of-two workgroup of
 *  about len / 4 threads (at least 32) so short rows do not idle most threads. */
export function chunking(len: number): { WG: number; ITEMS: number } {
  if (len >= 4096) return { WG: 256, ITEMS: 16 };
  let WG = 32;
  while (WG < 256 && WG * 4 < len) WG *= 2;
  return { WG, ITEMS: 4 };
}

function floatDtype(t: Tensor, what: string): 'f32' | 'f16' {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`${what}: needs float tensors, got ${t.toString()}`);
  return t.dtype;
}

/**
 * y = act((x - mean) * rstd * weight[c] + bias[c]) with mean and biased variance over
 * each (n, group) of C / groups channels and all spatial positions.
 * x [N, C, ...spatial]; weight, bias [C]; returns y with x's shape.
 */
export function groupNorm(
  x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps: number, activation: 'none' | 'silu' = 'none',
): Tensor {
  const dtype = floatDtype(x, 'groupNorm');
  if (x.shape.length < 2) throw new ShapeError(`groupNorm: x must be [N, C, ...spatial], got [${x.shape}]`);
  const [N, C] = x.shape;
  if (!Number.isInteger(groups) || groups <= 0 || C % groups !== 0) {
    throw new ShapeError(`groupNorm: ${C} channels do not split into ${groups} groups; groups must divide C`);
  }
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t.size !== C || t.dtype !== dtype) {
      throw new ShapeError(`groupNorm: ${name} must be [${C}] ${dtype} to match x [${x.shape}], got ${t.toString()}`);
    }
  }
  const rt = x.rt;
  const y = Tensor.empty(rt, x.shape, dtype, 'group_norm');
  const S = x.shape.slice(2).reduce((a, b) => a * b, 1);
  const cg = C / groups;
  const rows = N * groups;
  const M = cg * S;
  if (y.size === 0) return y;

  const st = chunking(M);
  const statChunk = st.WG * st.ITEMS;
  const chunks = Math.ceil(M / statChunk);
  const ap = chunking(S);
  const planeChunks = Math.ceil(S / (ap.WG * ap.ITEMS));
  const partials = Tensor.empty(rt, [rows, chunks, 2], 'f32', 'group_norm.partials');
  const label = `[C=${C},G=${groups}${activation === 'silu' ? ',silu' : ''}]`;
  // Runs of whole rows keep x and y bindings under the binding limit (VAE at 512x512).
  for (const run of bindingRuns(rt, rows, [M * BYTES[dtype]], 'groupNorm')) {
    const params = [run.count, M, chunks, statChunk, S, planeChunks, cg, C, run.start, f32(eps)];
    const xr = runBinding(x, run, M);
    rt.dispatch(
      { family: 'group_norm', entry: 'group_norm_stats', dtype, overrides: { WG: st.WG } },
      { params, bindings: [xr, partials.binding], workgroups: run.count * chunks, label: `group_norm_stats${label}` },
    );
    rt.dispatch(
      { family: 'group_norm', entry: 'group_norm_forward', dtype, overrides: { WG: ap.WG, ITEMS: ap.ITEMS, ACT: ACT[activation] } },
      {
        params,
        bindings: [xr, weight.binding, bias.binding, partials.binding, runBinding(y, run, M)],
        workgroups: run.count * cg * planeChunks,
        label: `group_norm_forward${label}`,
      },
    );
  }
  partials.dispose();
  return y;
}
