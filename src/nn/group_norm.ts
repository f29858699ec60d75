// Group normalisation, inference only (SD's UNet and VAE never train it here). Two
// passes over x: per-(n, group) statistics (chunked Welford partials from a workgroup
// tree, merged per row by a one-thread-per-row finalize), then the apply pass with the
// optional SiLU fused. Kernels: shaders/group_norm.wgsl; the statistics pass of the
// 'subgroup' variant (rt.variants.group_norm, gpu/variants.ts) is group_norm_subgroup.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { subgroupWorkgroupFloor } from '../gpu/variants.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { ACT } from './elementwise.js';
import { bindingRuns, runBinding } from './layout.js';

/** Workgroup size and elements per thread (scalar kernels) for runs of `len` elements,
 *  as used by the batch-norm and loss kernels: 4096-element chunks of 256 threads for
 *  long runs, else one chunk of a power-of-two workgroup of about len / 4 threads (at
 *  least 32) so short rows do not idle most threads. */
export function chunking(len: number): { WG: number; ITEMS: number } {
  if (len >= 4096) return { WG: 256, ITEMS: 16 };
  let WG = 32;
  while (WG < 256 && WG * 4 < len) WG *= 2;
  return { WG, ITEMS: 4 };
}

/** Group-norm geometry. The stats kernels use 64 threads with long strides (256
 *  elements per thread when vec4, 64 when scalar): each barrier of their tree merge
 *  costs lavapipe about as much as the loads, so fewer threads per element win. The
 *  apply kernels have no barrier: 64 threads take 16 loads each (vec4 or scalar). */
const STATS_WG = 64;
const APPLY = { WG: 64, ITEMS: 16 };
const FINALIZE_WG = 64;
/** Subgroup variant (GPUs): 256-thread stats workgroups of 16 elements per thread, so a
 *  UNet row of 40960 elements spreads over 10 workgroups instead of 3, for occupancy;
 *  its merge costs one barrier at any width. */
const SUBGROUP_STATS = { WG: 256, ITEMS: 16 };

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

  // vec4 entry points when planes (and so rows) start on vec4 boundaries.
  const vec4 = S % 4 === 0;
  const suffix = vec4 ? '_vec4' : '';
  const subgroup = rt.variants.group_norm === 'subgroup';
  const statsWg = subgroup ? Math.max(SUBGROUP_STATS.WG, subgroupWorkgroupFloor(rt.gpu.report.subgroupMaxSize)) : STATS_WG;
  const statChunk = subgroup ? statsWg * SUBGROUP_STATS.ITEMS : STATS_WG * (vec4 ? 256 : 64);
  const statsEntry = `${subgroup ? 'group_norm_subgroup_stats' : 'group_norm_stats'}${suffix}`;
  const chunks = Math.ceil(M / statChunk);
  const planeChunks = Math.ceil(S / (APPLY.WG * APPLY.ITEMS * (vec4 ? 4 : 1)));
  const partials = Tensor.empty(rt, [rows, chunks, 2], 'f32', 'group_norm.partials');
  const stats = Tensor.empty(rt, [rows, 2], 'f32', 'group_norm.stats');
  const label = `[C=${C},G=${groups}${activation === 'silu' ? ',silu' : ''}]`;
  // Runs of whole rows keep x and y bindings under the binding limit (VAE at 512x512).
  for (const run of bindingRuns(rt, rows, [M * BYTES[dtype]], 'groupNorm')) {
    const params = [run.count, M, chunks, statChunk, S, planeChunks, cg, C, run.start, f32(eps)];
    const xr = runBinding(x, run, M);
    rt.dispatch(
      { family: subgroup ? 'group_norm_subgroup' : 'group_norm', entry: statsEntry, dtype, overrides: { WG: statsWg } },
      { params, bindings: [xr, partials.binding], workgroups: run.count * chunks, label: `${statsEntry}${label}` },
    );
    rt.dispatch(
      { family: 'group_norm', entry: 'group_norm_finalize', overrides: { WG: FINALIZE_WG } },
      { params, bindings: [partials.binding, stats.binding], workgroups: Math.ceil(run.count / FINALIZE_WG), label: `group_norm_finalize${label}` },
    );
    rt.dispatch(
      { family: 'group_norm', entry: `group_norm_forward${suffix}`, dtype, overrides: { ...APPLY, ACT: ACT[activation] } },
      {
        params,
        bindings: [xr, weight.binding, bias.binding, stats.binding, runBinding(y, run, M)],
        workgroups: run.count * cg * planeChunks,
        label: `group_norm_forward${suffix}${label}`,
      },
    );
  }
  stats.dispose();
  partials.dispose();
  return y;
}
