// Group-norm statistics with subgroup reductions: the variant adapters with the
// `subgroups` feature run (gpu/variants.ts 'subgroup'; host: nn/group_norm.ts). Only the
// statistics pass differs: group_norm_finalize and the barrier-free apply pass stay in
// group_norm.wgsl and read the partials written here, in the same layout.
enable subgroups;
// group_norm_subgroup_stats: one workgroup per (row, chunk of stat_chunk elements), same
//   Params, bindings and partials [rows, chunks] of (mean, M2) as group_norm_stats; each
//   thread runs Welford over its elements strided by WG (coalesced).
// The merge (write_partial): within a subgroup, the counts, then the count-weighted means
//   give the subgroup's mean, then M2 + n (mean_i - mean)^2 summed gives its M2 (Chan's
//   merge over many parts at once: deviations are taken from the merged mean, never
//   E[x^2] - E[x]^2). Lane 0 of each subgroup leaves its triple in its own slot of `red`
//   (zeros elsewhere), one barrier, each lane Chan-merges the slots lane, lane + sg, ...
//   and a second subgroup merge gives the chunk's statistics. The host makes WG a power
//   of two no smaller than the adapter's largest subgroup, so every subgroup is full.
// The _vec4 entry (S % 4 == 0) takes each vec4's exact (mean, M2) and Chan-merges it.
// Precision: f32 math (storage may be f16 through T).

alias T = f32;

override WG: u32 = 256u;

struct Params {
  rows: u32,        // rows in this run
  row_len: u32,     // M = Cg * S
  chunks: u32,      // stats chunks per row
  stat_chunk: u32,  // elements per stats chunk
  spatial: u32,     // S
  plane_chunks: u32,
  cg: u32,          // channels per group
  channels: u32,    // C
  row0: u32,        // first row of this run
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;

var<workgroup> red: array<vec3<f32>, WG>;

const NEG_MAX: f32 = -3.0e38;

// #include "welford.wgsl"

// (count, mean, M2) of the subgroup's parts, in every lane. The mean is summed as
// offsets from a pivot inside the data's range (the largest non-empty part's mean), so
// a large common mean (1000 +- 1) does not swamp the spread in f32.
fn subgroup_merge(v: vec3<f32>) -> vec3<f32> {
  let n = subgroupAdd(v.x);
  // An all-empty subgroup (pivot NEG_MAX) yields (0, 0, 0): every product below has a
  // zero count. (A branch on n here would leave subgroup-uniform control flow.)
  let pivot = select(0.0, subgroupMax(select(NEG_MAX, v.y, v.x > 0.0)), n > 0.0);
  let mean = pivot + subgroupAdd(v.x * (v.y - pivot)) / max(n, 1.0);
  let d = v.y - mean;
  return vec3<f32>(n, mean, subgroupAdd(v.z + v.x * d * d));
}

// The workgroup's merged statistics; thread 0 writes the chunk's (mean, M2).
fn write_partial(lid: u32, sid: u32, sg: u32, own: vec3<f32>, g: u32) {
  let s = subgroup_merge(own);
  red[lid] = select(vec3<f32>(0.0), s, sid == 0u);
  workgroupBarrier();
  var acc = vec3<f32>(0.0);
  for (var j = sid; j < WG; j += sg) { acc = chan_merge(acc, red[j]); }
  let total = subgroup_merge(acc);
  if (lid == 0u) { partials[p.row0 * p.chunks + g] = total.yz; }
}

@compute @workgroup_size(WG)
fn group_norm_subgroup_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32,
                             @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sg: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.chunks) { return; }
  let start = (g % p.chunks) * p.stat_chunk;
  let end = min(start + p.stat_chunk, p.row_len);
  let base = (g / p.chunks) * p.row_len;
  var acc = vec3<f32>(0.0);
  for (var i = start + lid; i < end; i += WG) {
    let v = f32(x[base + i]);
    acc.x += 1.0;
    let d = v - acc.y;
    acc.y += d / acc.x;
    acc.z += d * (v - acc.y);
  }
  write_partial(lid, sid, sg, acc, g);
}

@compute @workgroup_size(WG)
fn group_norm_subgroup_stats_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32,
                                  @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sg: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.chunks) { return; }
  let start = (g % p.chunks) * p.stat_chunk;
  let end = min(start + p.stat_chunk, p.row_len);
  let base = (g / p.chunks) * p.row_len;
  var acc = vec3<f32>(0.0);
  for (var q = (base + start) / 4u + lid; q < (base + end) / 4u; q += WG) {
    let v = vec4<f32>(x4[q]);
    let m = (v.x + v.y + v.z + v.w) * 0.25;
    let d = v - m;
    acc = chan_merge(acc, vec3<f32>(4.0, m, dot(d, d)));
  }
  write_partial(lid, sid, sg, acc, g);
}
