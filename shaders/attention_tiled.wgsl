// Fused multi-head attention forward with one max and one rescale per key tile: the
// variant hardware adapters run (gpu/variants.ts attention 'per_tile'; host:
// nn/attention.ts). Same math, layout, Params, bindings and lse as attention_forward
// (attention.wgsl), which rescales per key:
//   out[b, i, h*D + d] = sum_j softmax_j(scale * q_i . k_j) v[b, j, h*D + d]
//   lse[b, h, i]       = log sum_j exp(scale * q_i . k_j)
// with keys j > i masked when CAUSAL; the [Lq, Lk] score matrix is never stored.
// Mapping: one workgroup per (b, h, block of WG query rows), blocks fastest; one query
//   row per thread, q (pre-scaled) and the output accumulator in registers. Keys go TK
//   at a time through workgroup memory (K and V tiles, each element loaded once per
//   workgroup). Per tile each thread makes two passes:
//   1. scores s_t = q . k_t for the tile's keys into its own column of `scores`
//      (workgroup memory, read back only by the same thread, so no barrier), and the
//      tile's max;
//   2. m_new = max(m, tile max); the accumulator and the running sum are rescaled once
//      by exp(m - m_new); then acc += exp(s_t - m_new) v_t, one fma per element.
//   Against the per-key kernel that saves one exp and one multiply per (key, element).
// Registers: the head-dim loops run to the override D4, so after specialisation every
//   index into qr / acc is a constant once the driver unrolls them; the scores, whose
//   index is the key (a run-time loop), live in workgroup memory instead of registers.
// Workgroup memory: 2 * TK * D4 vec4 + TK * WG f32 (the host sizes TK to the limit).
// Causal: tiles stop at the block's last query (a uniform bound, so barriers stay
//   uniform); key 0 is never masked, so the running max is finite after the first tile
//   and masked keys add exp(-huge) = 0. Out-of-range query lanes compute on the last row
//   and never store.
// Precision: f32 scores, softmax and accumulation for T = f32 and T = f16 (storage only).

alias T = f32;

override WG: u32 = 64u;
override D4: u32 = 10u;
override TK: u32 = 32u;
override CAUSAL: bool = false;

// Register arrays need a constant size: head dims up to 4 * DMAX4 = 160 (the host
// rejects larger ones); only the first D4 entries are used.
const DMAX4: u32 = 40u;
const NEG_MAX: f32 = -3.0e38;

struct Params {
  B: u32,
  H: u32,
  Lq: u32,
  Lk: u32,
  q_blocks: u32,  // ceil(Lq / WG)
  scale: f32,
  d4: u32,        // D4 again (attention_forward's rolled loops; unused here)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<T>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<T>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

var<workgroup> k_tile: array<vec4<f32>, TK * D4>;
var<workgroup> v_tile: array<vec4<f32>, TK * D4>;
var<workgroup> scores: array<f32, TK * WG>;

@compute @workgroup_size(WG)
fn attention_tiled_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bh = g / p.q_blocks;
  if (bh >= p.B * p.H) { return; }
  let b = bh / p.H;
  let h = bh % p.H;
  let C4 = p.H * D4;
  let block_start = (g % p.q_blocks) * WG;
  let i = block_start + lid;
  let ic = min(i, p.Lq - 1u);
  var key_end = p.Lk;
  if (CAUSAL) { key_end = min(p.Lk, min(block_start + WG, p.Lq)); }

  let q_base = (b * p.Lq + ic) * C4 + h * D4;
  let kv_base = b * p.Lk * C4 + h * D4;
  var qr: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < D4; d++) {
    qr[d] = vec4<f32>(q[q_base + d]) * p.scale;
    acc[d] = vec4<f32>(0.0);
  }
  var m = NEG_MAX;
  var l = 0.0;
  for (var j0 = 0u; j0 < key_end; j0 += TK) {
    let n = min(TK, key_end - j0);
    for (var e = lid; e < n * D4; e += WG) {
      let o = kv_base + (j0 + e / D4) * C4 + e % D4;
      k_tile[e] = vec4<f32>(k[o]);
      v_tile[e] = vec4<f32>(v[o]);
    }
    workgroupBarrier();
    var tile_max = NEG_MAX;
    for (var t = 0u; t < n; t++) {
      var s = 0.0;
      for (var d = 0u; d < D4; d++) { s += dot(qr[d], k_tile[t * D4 + d]); }
      if (CAUSAL && j0 + t > i) { s = NEG_MAX; }
      scores[t * WG + lid] = s;
      tile_max = max(tile_max, s);
    }
    let m_new = max(m, tile_max);
    let corr = exp(m - m_new);
    l *= corr;
    for (var d = 0u; d < D4; d++) { acc[d] *= corr; }
    for (var t = 0u; t < n; t++) {
      let pt = exp(scores[t * WG + lid] - m_new);
      l += pt;
      for (var d = 0u; d < D4; d++) { acc[d] = fma(vec4<f32>(pt), v_tile[t * D4 + d], acc[d]); }
    }
    m = m_new;
    workgroupBarrier();
  }
  if (i < p.Lq) {
    let inv = 1.0 / l;
    for (var d = 0u; d < D4; d++) { out[q_base + d] = vec4<T>(acc[d] * inv); }
    lse[bh * p.Lq + i] = m + log(l);
  }
}
