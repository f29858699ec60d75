// Softmax over the last axis of a [rows, n] tensor, y = softmax(scale * x), with subgroup
// reductions: the variant adapters with the `subgroups` feature run (gpu/variants.ts
// 'subgroup'; host: nn/softmax.ts; the backward stays in softmax.wgsl).
enable subgroups;
// Mapping: one workgroup per row (folded into (x, y) by the host past 65535, recovered as
//   wid.x + wid.y * nwg.x); WG threads stride over the row. Three passes over the row
//   (the second and third hit the cache): max, sum of exp(v - max), write.
// Reductions (wg_max, wg_sum): subgroupMax / subgroupAdd within each subgroup; lane 0 of
//   each subgroup leaves the result in its own slot of `part` (every other slot holds
//   the identity); after one barrier every lane combines the slots lane, lane + sg, ...
//   and a second subgroup operation hands every thread the row's value. Two barriers
//   per reduction instead of the tree's log2(WG), and no subgroup layout assumed beyond
//   full subgroups: the host makes WG a power of two no smaller than the adapter's
//   largest subgroup.
// Precision: f32 math (storage may be f16 through T, scalar entry); max-subtracted, so
//   exp <= 1. The summation order is fixed for a given adapter, so runs are repeatable.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  rows: u32,
  n: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> part: array<f32, WG>;

const NEG_MAX: f32 = -3.0e38;

fn wg_max(lid: u32, sid: u32, sg: u32, v: f32) -> f32 {
  let own = subgroupMax(v);
  part[lid] = select(NEG_MAX, own, sid == 0u);
  workgroupBarrier();
  var m = NEG_MAX;
  for (var j = sid; j < WG; j += sg) { m = max(m, part[j]); }
  let total = subgroupMax(m);
  // The next reduction overwrites part: every lane has read it first.
  workgroupBarrier();
  return total;
}

fn wg_sum(lid: u32, sid: u32, sg: u32, v: f32) -> f32 {
  let own = subgroupAdd(v);
  part[lid] = select(0.0, own, sid == 0u);
  workgroupBarrier();
  var s = 0.0;
  for (var j = sid; j < WG; j += sg) { s += part[j]; }
  let total = subgroupAdd(s);
  workgroupBarrier();
  return total;
}

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

@compute @workgroup_size(WG)
fn softmax_subgroup_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32,
                            @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sg: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.n;
  var m = NEG_MAX;
  for (var i = lid; i < p.n; i += WG) { m = max(m, p.scale * f32(x[base + i])); }
  let row_max = wg_max(lid, sid, sg, m);
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) { s += exp(p.scale * f32(x[base + i]) - row_max); }
  let inv_sum = 1.0 / wg_sum(lid, sid, sg, s);
  for (var i = lid; i < p.n; i += WG) {
    y[base + i] = T(exp(p.scale * f32(x[base + i]) - row_max) * inv_sum);
  }
}

// Rows whose width is a multiple of 4 with f32 storage: the same passes on vec4s.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn softmax_subgroup_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) lid: u32,
                                 @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sg: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let n4 = p.n / 4u;
  let base = row * n4;
  var m4 = vec4<f32>(NEG_MAX);
  for (var i = lid; i < n4; i += WG) { m4 = max(m4, p.scale * x4[base + i]); }
  let row_max = wg_max(lid, sid, sg, max(max(m4.x, m4.y), max(m4.z, m4.w)));
  var s4 = vec4<f32>(0.0);
  for (var i = lid; i < n4; i += WG) { s4 += exp(p.scale * x4[base + i] - row_max); }
  let inv_sum = 1.0 / wg_sum(lid, sid, sg, s4.x + s4.y + s4.z + s4.w);
  for (var i = lid; i < n4; i += WG) {
    y4[base + i] = exp(p.scale * x4[base + i] - row_max) * inv_sum;
  }
}
