// Group normalisation (inference only), y = act((x - mean) * rstd * weight[c] + bias[c]),
// with statistics per (n, group) over the group's Cg = C / G channels and S spatial
// positions. Layout: x, y [N, C, S] contiguous, so each (n, g) is one contiguous row of
// M = Cg * S elements (rows are numbered n * G + g; channel plane n * C + c lies in row
// (n * C + c) / Cg). weight, bias [C].
// group_norm_stats: one workgroup per (row, chunk of STAT_CHUNK = WG * ITEMS elements);
//   each thread runs Welford over ITEMS elements strided by WG (coalesced), then a tree
//   merge of the WG (count, mean, M2) triples (Chan et al.) writes the chunk's
//   (mean, M2) to partials [rows, chunks]; the count follows from the chunk's position.
// group_norm_forward: one workgroup per (channel plane, chunk of WG * ITEMS positions);
//   it first merges its row's partials (a strided Chan merge per thread, then a tree),
//   then writes act((x - mean) * scale + bias[c]) with scale = rstd * weight[c]. (Folding
//   the mean into a shift, x * scale + shift, would cancel badly when |mean| >> std.)
// Both 1-D workgroup indices are folded into (x, y) by the host past 65535 and
// recovered as wid.x + wid.y * nwg.x. Tensors past the binding limit are processed in
// runs of whole rows: row0 / plane0 give the run's position for weights and partials.
// Precision: f32 math (storage may be f16 through T); Welford and pairwise Chan merges,
// so no E[x^2] - E[x]^2 cancellation; variance is biased (divided by M), like PyTorch.

alias T = f32;

// #include "activation.wgsl"

override WG: u32 = 256u;
override ITEMS: u32 = 4u;

struct Params {
  rows: u32,        // rows in this run
  row_len: u32,     // M = Cg * S
  chunks: u32,      // stats chunks per row
  stat_chunk: u32,  // elements per stats chunk (the stats kernel's WG * ITEMS)
  spatial: u32,     // S
  plane_chunks: u32,
  cg: u32,          // channels per group
  channels: u32,    // C
  row0: u32,        // first row of this run (partials are indexed globally)
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// (count, mean, M2) per thread for the tree merges.
var<workgroup> red: array<vec3<f32>, WG>;

fn chan_merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  let f = b.x / n;
  return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}

// Tree merge of red[0..2*half) into red[0]; every thread sees the result.
fn tree_merge(lid: u32, own: vec3<f32>, half0: u32) -> vec3<f32> {
  var acc = own;
  red[lid] = acc;
  workgroupBarrier();
  for (var half = half0; half > 0u; half /= 2u) {
    if (lid < half) {
      acc = chan_merge(acc, red[lid + half]);
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  return red[0];
}

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn group_norm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.chunks) { return; }
  let row = g / p.chunks;
  let start = (g % p.chunks) * p.stat_chunk;
  let end = min(start + p.stat_chunk, p.row_len);
  let base = row * p.row_len;
  var acc = vec3<f32>(0.0);
  for (var i = start + lid; i < end; i += WG) {
    let v = f32(x[base + i]);
    acc.x += 1.0;
    let d = v - acc.y;
    acc.y += d / acc.x;
    acc.z += d * (v - acc.y);
  }
  let r = tree_merge(lid, acc, WG / 2u);
  if (lid == 0u) { partials[(p.row0 + row) * p.chunks + g % p.chunks] = r.yz; }
}

@group(0) @binding(2) var<storage, read> weight: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<T>;

@compute @workgroup_size(WG)
fn group_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let planes = p.rows * p.cg;
  // The early return is uniform per workgroup, so the barriers below stay uniform.
  if (g >= planes * p.plane_chunks) { return; }
  let plane = g / p.plane_chunks;
  let row = p.row0 + plane / p.cg;
  let c = (p.row0 * p.cg + plane) % p.channels;

  var acc = vec3<f32>(0.0);
  for (var k = lid; k < p.chunks; k += WG) {
    let n = f32(min(p.stat_chunk, p.row_len - k * p.stat_chunk));
    let s = stats[row * p.chunks + k];
    acc = chan_merge(acc, vec3<f32>(n, s.x, s.y));
  }
  // Only the first min(chunks, WG) threads hold partials: start the tree there.
  var half = 1u;
  while (half * 2u < min(p.chunks, WG)) { half *= 2u; }
  if (p.chunks == 1u) { half = 0u; }
  let r = tree_merge(lid, acc, half);
  let rstd = inverseSqrt(r.z / r.x + p.eps);
  let scale = rstd * f32(weight[c]);
  let b = f32(bias[c]);

  let chunk = WG * ITEMS;
  let start = (g % p.plane_chunks) * chunk;
  let end = min(start + chunk, p.spatial);
  let base = plane * p.spatial;
  for (var i = start + lid; i < end; i += WG) {
    y[base + i] = T(act((f32(x[base + i]) - r.y) * scale + b));
  }
}
