// Backward of the fused attention (shaders/attention.wgsl) for loss gradients dout:
//   p[i, j] = exp(scale * q_i . k_j - lse_i)      (recomputed, never stored)
//   delta_i = dout_i . out_i                       (= sum_j p[i, j] dp[i, j])
//   dp[i, j] = dout_i . v_j,  ds[i, j] = p[i, j] (dp[i, j] - delta_i)
//   dq_i = scale sum_j ds[i, j] k_j
//   dk_j = scale sum_i ds[i, j] q_i,  dv_j = sum_i p[i, j] dout_i
// per batch and head, keys j > i masked when CAUSAL.
// Layout as the forward: q, out, dout, dq [B, Lq, H*D]; k, v, dk, dv [B, Lk, H*D] as
// vec4; lse and delta [B, H, Lq] in f32.
// Two kernels, each owning its output rows so nothing is accumulated across threads:
//   attention_backward_query: one thread per query row (workgroups of WG rows of one
//     (b, h)); writes dq and delta. K and V rows are staged TK at a time in workgroup
//     memory, as in the forward.
//   attention_backward_key: one thread per key row; runs after the query kernel
//     (it reads delta) and stages TK query rows of q and dout, with their lse and
//     delta, in workgroup memory.
// Out-of-range lanes compute on the last row and never store; causal masking is per
// lane (p = ds = 0) so tile bounds and barriers stay uniform.
// Precision: f32 accumulation for T = f32 and T = f16 (storage only).

alias T = f32;

override WG: u32 = 64u;
// Head dim / 4.
override D4: u32 = 10u;
// Rows of the other side staged per tile in workgroup memory.
override TK: u32 = 64u;
override CAUSAL: bool = false;
// Loops over the head dim with the constant D4 (unrolled) or the run-time p.d4 (rolled);
// see attention.wgsl.
override UNROLL: bool = true;

// Register arrays need a constant size: head dims up to 4 * DMAX4 = 160.
const DMAX4: u32 = 40u;

struct Params {
  B: u32,
  H: u32,
  Lq: u32,
  Lk: u32,
  blocks: u32,  // ceil(Lq / WG) for the query kernel, ceil(Lk / WG) for the key kernel
  scale: f32,
  d4: u32,       // D4 again, as a value the compiler cannot unroll by (UNROLL off)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<T>>;

// Two staged tiles: K and V rows (query kernel) or q and dout rows (key kernel).
var<workgroup> tile_a: array<vec4<f32>, TK * D4>;
var<workgroup> tile_b: array<vec4<f32>, TK * D4>;
// lse and delta of the staged query rows (key kernel).
var<workgroup> tile_lse: array<f32, TK>;
var<workgroup> tile_delta: array<f32, TK>;

@group(0) @binding(4) var<storage, read> out: array<vec4<T>>;
@group(0) @binding(5) var<storage, read> dout: array<vec4<T>>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<vec4<T>>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;

@compute @workgroup_size(WG)
fn attention_backward_query(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bh = g / p.blocks;
  if (bh >= p.B * p.H) { return; }
  let b = bh / p.H;
  let h = bh % p.H;
  let C4 = p.H * D4;
  let nd = select(p.d4, D4, UNROLL);
  let block_start = (g % p.blocks) * WG;
  let i = block_start + lid;
  let ic = min(i, p.Lq - 1u);
  var key_end = p.Lk;
  if (CAUSAL) { key_end = min(p.Lk, min(block_start + WG, p.Lq)); }

  let q_base = (b * p.Lq + ic) * C4 + h * D4;
  let kv_base = b * p.Lk * C4 + h * D4;
  var qr: array<vec4<f32>, DMAX4>;
  var dor: array<vec4<f32>, DMAX4>;
  var acc: array<vec4<f32>, DMAX4>;
  var dlt = 0.0;
  for (var d = 0u; d < nd; d++) {
    qr[d] = vec4<f32>(q[q_base + d]) * p.scale;
    dor[d] = vec4<f32>(dout[q_base + d]);
    acc[d] = vec4<f32>(0.0);
    dlt += dot(dor[d], vec4<f32>(out[q_base + d]));
  }
  let row_lse = lse[bh * p.Lq + ic];
  for (var j0 = 0u; j0 < key_end; j0 += TK) {
    let n = min(TK, key_end - j0);
    for (var e = lid; e < n * D4; e += WG) {
      let o = kv_base + (j0 + e / D4) * C4 + e % D4;
      tile_a[e] = vec4<f32>(k[o]);
      tile_b[e] = vec4<f32>(v[o]);
    }
    workgroupBarrier();
    for (var t = 0u; t < n; t++) {
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < nd; d++) {
        s += dot(qr[d], tile_a[t * D4 + d]);
        dp += dot(dor[d], tile_b[t * D4 + d]);
      }
      var ds = exp(s - row_lse) * (dp - dlt);
      if (CAUSAL && j0 + t > i) { ds = 0.0; }
      for (var d = 0u; d < nd; d++) { acc[d] += ds * tile_a[t * D4 + d]; }
    }
    workgroupBarrier();
  }
  if (i < p.Lq) {
    for (var d = 0u; d < nd; d++) { dq[q_base + d] = vec4<T>(acc[d] * p.scale); }
    delta[bh * p.Lq + i] = dlt;
  }
}

@group(0) @binding(4) var<storage, read> k_dout: array<vec4<T>>;
@group(0) @binding(5) var<storage, read> k_lse: array<f32>;
@group(0) @binding(6) var<storage, read> k_delta: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<vec4<T>>;
@group(0) @binding(8) var<storage, read_write> dv: array<vec4<T>>;

@compute @workgroup_size(WG)
fn attention_backward_key(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bh = g / p.blocks;
  if (bh >= p.B * p.H) { return; }
  let b = bh / p.H;
  let h = bh % p.H;
  let C4 = p.H * D4;
  let nd = select(p.d4, D4, UNROLL);
  let block_start = (g % p.blocks) * WG;
  let j = block_start + lid;
  let jc = min(j, p.Lk - 1u);
  // Causal: queries before this block's first key see none of its keys (uniform bound).
  var q_start = 0u;
  if (CAUSAL) { q_start = block_start; }

  let kv_base = (b * p.Lk + jc) * C4 + h * D4;
  let q_base = b * p.Lq * C4 + h * D4;
  var kr: array<vec4<f32>, DMAX4>;
  var vr: array<vec4<f32>, DMAX4>;
  var dk_acc: array<vec4<f32>, DMAX4>;
  var dv_acc: array<vec4<f32>, DMAX4>;
  for (var d = 0u; d < nd; d++) {
    kr[d] = vec4<f32>(k[kv_base + d]) * p.scale;
    vr[d] = vec4<f32>(v[kv_base + d]);
    dk_acc[d] = vec4<f32>(0.0);
    dv_acc[d] = vec4<f32>(0.0);
  }
  for (var i0 = q_start; i0 < p.Lq; i0 += TK) {
    let n = min(TK, p.Lq - i0);
    for (var e = lid; e < n * D4; e += WG) {
      let o = q_base + (i0 + e / D4) * C4 + e % D4;
      tile_a[e] = vec4<f32>(q[o]);
      tile_b[e] = vec4<f32>(k_dout[o]);
    }
    for (var e = lid; e < n; e += WG) {
      tile_lse[e] = k_lse[bh * p.Lq + i0 + e];
      tile_delta[e] = k_delta[bh * p.Lq + i0 + e];
    }
    workgroupBarrier();
    for (var t = 0u; t < n; t++) {
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < nd; d++) {
        s += dot(kr[d], tile_a[t * D4 + d]);
        dp += dot(vr[d], tile_b[t * D4 + d]);
      }
      var pt = exp(s - tile_lse[t]);
      if (CAUSAL && j > i0 + t) { pt = 0.0; }
      let ds = pt * (dp - tile_delta[t]);
      for (var d = 0u; d < nd; d++) {
        dv_acc[d] += pt * tile_b[t * D4 + d];
        dk_acc[d] += ds * tile_a[t * D4 + d];
      }
    }
    workgroupBarrier();
  }
  if (j < p.Lk) {
    for (var d = 0u; d < nd; d++) {
      dk[kv_base + d] = vec4<T>(dk_acc[d] * p.scale);
      dv[kv_base + d] = vec4<T>(dv_acc[d]);
    }
  }
}
