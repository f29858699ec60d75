// Fused multi-head attention forward (flash-attention style, online softmax):
//   out[b, i, h*D + d] = sum_j softmax_j(scale * q_i . k_j) v[b, j, h*D + d]
//   lse[b, h, i]       = log sum_j exp(scale * q_i . k_j)       (what the backward needs)
// with keys j > i masked when CAUSAL. The [Lq, Lk] score matrix is never stored.
// Layout: q, out [B, Lq, H*D]; k, v [B, Lk, H*D] (diffusers' to_q/to_k/to_v output,
// head h in columns h*D .. h*D + D - 1), viewed as vec4 (D is a multiple of 4);
// lse [B, H, Lq] in f32.
// Mapping: one workgroup per (b, h, block of WG query rows), blocks fastest so
// neighbouring workgroups read the same K/V head; one query row per thread, held in
// registers (q pre-scaled, and the output accumulator). Keys go TK at a time through
// workgroup memory: the workgroup copies a K and a V tile (each element loaded once per
// workgroup, not once per thread), then every thread walks the tile with an online
// softmax (running max m and sum l, accumulator rescaled by exp(m_old - m_new)).
// Why this shape on CPU drivers: lavapipe runs every thread's memory access as a
// per-lane load, even when all lanes read the same address, so the kernel is bound by
// loads per FMA; staging cuts the device-memory loads by WG, and unrolled head-dim
// loops (UNROLL) keep q and the accumulator in registers (measured ~3x over rolled loops
// at D = 40, but slow to compile for larger D, so the host limits it).
// Causal: tiles stop at the block's last query (a uniform bound, so barriers stay
// uniform) and keys j > i are masked per lane. Out-of-range query lanes compute on the
// last row and never store.
// Precision: f32 accumulation and softmax for T = f32 and T = f16 (storage only).

alias T = f32;

override WG: u32 = 64u;
// Head dim / 4.
override D4: u32 = 10u;
// Keys per tile staged in workgroup memory (host: about 20 KiB for K and V together).
override TK: u32 = 64u;
override CAUSAL: bool = false;
// Loops over the head dim with the constant D4 (unrolled: registers, fast, slow to
// compile on CPU drivers) or with the run-time p.d4 (rolled; the host decides).
override UNROLL: bool = true;

// Register arrays need a constant size: head dims up to 4 * DMAX4 = 160 (SD 1.x's
// largest); the host rejects larger ones.
const DMAX4: u32 = 40u;
// A finite stand-in for -inf (WGSL has no infinity literal).
const NEG_MAX: f32 = -3.0e38;

struct Params {
  B: u32,
  H: u32,
  Lq: u32,
  Lk: u32,
  q_blocks: u32,  // ceil(Lq / WG)
  scale: f32,
  d4: u32,       // D4 again, as a value the compiler cannot unroll by (UNROLL off)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<T>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<T>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

var<workgroup> k_tile: array<vec4<f32>, TK * D4>;
var<workgroup> v_tile: array<vec4<f32>, TK * D4>;

@compute @workgroup_size(WG)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bh = g / p.q_blocks;
  if (bh >= p.B * p.H) { return; }
  let b = bh / p.H;
  let h = bh % p.H;
  let C4 = p.H * D4;
  let nd = select(p.d4, D4, UNROLL);
  let block_start = (g % p.q_blocks) * WG;
  let i = block_start + lid;
  let ic = min(i, p.Lq - 1u);
  // Causal: no query of this block sees keys past its last row (a uniform bound).
  var key_end = p.Lk;
  if (CAUSAL) { key_end = min(p.Lk, min(block_start + WG, p.Lq)); }

  let q_base = (b * p.Lq + ic) * C4 + h * D4;
  let kv_base = b * p.Lk * C4 + h * D4;
  var qr: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < nd; d++) {
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
    for (var t = 0u; t < n; t++) {
      var s = 0.0;
      for (var d = 0u; d < nd; d++) { s += dot(qr[d], k_tile[t * D4 + d]); }
      // Key 0 is never masked, so m is finite after it and masked keys add exp(-huge) = 0.
      if (CAUSAL && j0 + t > i) { s = NEG_MAX; }
      let m_new = max(m, s);
      let corr = exp(m - m_new);
      let pt = exp(s - m_new);
      l = l * corr + pt;
      m = m_new;
      for (var d = 0u; d < nd; d++) { acc[d] = acc[d] * corr + pt * v_tile[t * D4 + d]; }
    }
    workgroupBarrier();
  }
  if (i < p.Lq) {
    let inv = 1.0 / l;
    for (var d = 0u; d < nd; d++) { out[q_base + d] = vec4<T>(acc[d] * inv); }
    lse[bh * p.Lq + i] = m + log(l);
  }
}
