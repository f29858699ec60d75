// Group normalisation (inference only), y = act((x - mean) * rstd * weight[c] + bias[c]),
// with statistics per (n, group) over the group's Cg = C / G channels and S spatial
// positions. Layout: x, y [N, C, S] contiguous, so each (n, g) is one contiguous row of
// M = Cg * S elements (rows are numbered n * G + g; channel plane n * C + c lies in row
// (n * C + c) / Cg). weight, bias [C].
// group_norm_stats: one workgroup per (row, chunk of stat_chunk elements); each thread
//   runs Welford over its elements strided by WG (coalesced), then a tree merge of the
//   WG (count, mean, M2) triples (Chan et al.) writes the chunk's (mean, M2) to
//   partials [rows, chunks]; the count follows from the chunk's position.
// group_norm_finalize: one thread per row merges its chunks' partials in order and
//   writes (mean, rstd) to stats [rows].
// group_norm_forward: one workgroup per (channel plane, chunk of WG * ITEMS positions),
//   y = act((x - mean) * scale + bias[c]) with scale = rstd * weight[c]. (Folding the
//   mean into a shift, x * scale + shift, would cancel badly when |mean| >> std.)
// The _vec4 variants (S % 4 == 0, so rows and planes start on vec4 boundaries) load and
// store vec4s; their stats threads take each vec4's exact (mean, M2) and Chan-merge it.
// Why three kernels: on lavapipe a workgroup barrier costs about as much as loading
// a few hundred bytes per thread, so the statistics use few threads with long strides
// (few tree levels in total) and the apply pass has no barrier at all.
// 1-D workgroup indices are folded into (x, y) by the host past 65535 and recovered as
// wid.x + wid.y * nwg.x. Tensors past the binding limit are processed in runs of whole
// rows: row0 gives the run's first row for weights, partials and stats.
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
  stat_chunk: u32,  // elements per stats chunk
  spatial: u32,     // S
  plane_chunks: u32,
  cg: u32,          // channels per group
  channels: u32,    // C
  row0: u32,        // first row of this run
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// (count, mean, M2) per thread for the stats tree.
var<workgroup> red: array<vec3<f32>, WG>;

// #include "welford.wgsl"

// Tree merge over the workgroup; thread 0 writes the chunk's (mean, M2).
fn write_partial(lid: u32, own: vec3<f32>, g: u32) {
  var acc = own;
  red[lid] = acc;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      acc = chan_merge(acc, red[lid + half]);
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  if (lid == 0u) { partials[p.row0 * p.chunks + g] = acc.yz; }
}

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn group_norm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
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
  write_partial(lid, acc, g);
}

@group(0) @binding(1) var<storage, read> x4: array<vec4<T>>;

@compute @workgroup_size(WG)
fn group_norm_stats_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
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
  write_partial(lid, acc, g);
}

@group(0) @binding(1) var<storage, read> partials_in: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> stats_out: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn group_norm_finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = p.row0 + gid.x;
  if (gid.x >= p.rows) { return; }
  var acc = vec3<f32>(0.0);
  for (var k = 0u; k < p.chunks; k++) {
    let n = f32(min(p.stat_chunk, p.row_len - k * p.stat_chunk));
    let s = partials_in[row * p.chunks + k];
    acc = chan_merge(acc, vec3<f32>(n, s.x, s.y));
  }
  stats_out[row] = vec2<f32>(acc.y, inverseSqrt(acc.z / acc.x + p.eps));
}

@group(0) @binding(2) var<storage, read> weight: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<T>;
@group(0) @binding(5) var<storage, read_write> y4: array<vec4<T>>;

// (mean, rstd * weight[c], bias[c]) of the channel plane that workgroup g covers.
fn plane_coefs(g: u32) -> vec3<f32> {
  let plane = g / p.plane_chunks;
  let c = (p.row0 * p.cg + plane) % p.channels;
  let ms = stats[p.row0 + plane / p.cg];
  return vec3<f32>(ms.x, ms.y * f32(weight[c]), f32(bias[c]));
}

@compute @workgroup_size(WG)
fn group_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.cg * p.plane_chunks) { return; }
  let k = plane_coefs(g);
  let start = (g % p.plane_chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.spatial);
  let base = (g / p.plane_chunks) * p.spatial;
  for (var i = start + lid; i < end; i += WG) {
    y[base + i] = T(act((f32(x[base + i]) - k.x) * k.y + k.z));
  }
}

@compute @workgroup_size(WG)
fn group_norm_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.cg * p.plane_chunks) { return; }
  let k = plane_coefs(g);
  let s4 = p.spatial / 4u;
  let start = (g % p.plane_chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, s4);
  let base = (g / p.plane_chunks) * s4;
  for (var q = start + lid; q < end; q += WG) {
    let a = (vec4<f32>(x4[base + q]) - k.x) * k.y + k.z;
    y4[base + q] = vec4<T>(vec4<f32>(act(a.x), act(a.y), act(a.z), act(a.w)));
  }
}
