// Layer normalisation over the last axis with subgroup reductions: the variant adapters
// with the `subgroups` feature run (gpu/variants.ts 'subgroup'; host: nn/layer_norm.ts).
// Same math, Params and bindings as layer_norm_forward / layer_norm_backward_input in
// layer_norm.wgsl (layer_norm_backward_weight has no row reduction and stays there).
enable subgroups;
// Layout: x, y, dy, dx [rows, D] contiguous; weight, bias [D]; mean, rstd [rows] f32.
// Mapping: one workgroup per row (folded into (x, y) by the host past 65535, recovered
//   as wid.x + wid.y * nwg.x); WG threads stride over the row (coalesced).
// wg_sum: subgroupAdd within each subgroup; lane 0 of each leaves its sum in its own
//   slot of `part` (zeros elsewhere), one barrier, every lane adds the slots lane,
//   lane + sg, ... and a second subgroupAdd hands every thread the row's sum: two
//   barriers per reduction instead of the tree's log2(WG) + 1. The host makes WG a power
//   of two no smaller than the adapter's largest subgroup, so every subgroup is full.
// Precision: f32 math (storage may be f16); two-pass statistics (mean, then the sum of
//   (x - mean)^2 over the cached row), so no E[x^2] - E[x]^2 cancellation; the mean is
//   summed as offsets from the row's first element, so a large common value does not
//   round the sum.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> part: array<vec2<f32>, WG>;

fn wg_sum(lid: u32, sid: u32, sg: u32, v: vec2<f32>) -> vec2<f32> {
  let own = subgroupAdd(v);
  part[lid] = select(vec2<f32>(0.0), own, sid == 0u);
  workgroupBarrier();
  var s = vec2<f32>(0.0);
  for (var j = sid; j < WG; j += sg) { s += part[j]; }
  let total = subgroupAdd(s);
  // The next wg_sum overwrites part: every lane has read it first.
  workgroupBarrier();
  return total;
}

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> weight: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;

@compute @workgroup_size(WG)
fn layer_norm_subgroup_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32,
                               @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sg: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let n = f32(p.d);
  // Sums of offsets from the row's first element: a large common value (500 +- 1) then
  // costs the mean no more than its final rounding.
  let pivot = f32(x[base]);
  var s = 0.0;
  for (var i = lid; i < p.d; i += WG) { s += f32(x[base + i]) - pivot; }
  let mean = pivot + wg_sum(lid, sid, sg, vec2<f32>(s, 0.0)).x / n;
  var v = 0.0;
  for (var i = lid; i < p.d; i += WG) {
    let dv = f32(x[base + i]) - mean;
    v += dv * dv;
  }
  let rstd = inverseSqrt(wg_sum(lid, sid, sg, vec2<f32>(v, 0.0)).x / n + p.eps);
  for (var i = lid; i < p.d; i += WG) {
    y[base + i] = T((f32(x[base + i]) - mean) * rstd * f32(weight[i]) + f32(bias[i]));
  }
  if (lid == 0u) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

@group(0) @binding(3) var<storage, read> mean_in: array<f32>;
@group(0) @binding(4) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<T>;
@group(0) @binding(6) var<storage, read_write> dx: array<T>;

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight.
@compute @workgroup_size(WG)
fn layer_norm_subgroup_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                      @builtin(local_invocation_index) lid: u32,
                                      @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sg: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let mean = mean_in[row];
  let rstd = rstd_in[row];
  var acc = vec2<f32>(0.0);
  for (var i = lid; i < p.d; i += WG) {
    let g = f32(dy[base + i]) * f32(weight[i]);
    acc += vec2<f32>(g, g * (f32(x[base + i]) - mean) * rstd);
  }
  let m = wg_sum(lid, sid, sg, acc) / f32(p.d);
  for (var i = lid; i < p.d; i += WG) {
    let g = f32(dy[base + i]) * f32(weight[i]);
    let xhat = (f32(x[base + i]) - mean) * rstd;
    dx[base + i] = T(rstd * (g - m.x - xhat * m.y));
  }
}
