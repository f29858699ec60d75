// Attention probabilities averaged over heads (the DAAM baseline's cross-attention maps):
//   probs_mean[b, i, j] = (1 / H) sum_h exp(scale * q[b, i, h] . k[b, j, h] - lse[b, h, i])
// using the log-sum-exp that attention_forward already wrote, so one pass over the keys
// gives normalised probabilities. Keys j > i are 0 when CAUSAL.
// Layout: q [B, Lq, H*D], k [B, Lk, H*D] as vec4 (D a multiple of 4); lse [B, H, Lq]
// f32; probs_mean [B, Lq, Lk].
// Mapping: one workgroup per (b, query row i, block of WG keys), key blocks fastest;
// one key per thread. The query row and its lse are the same for every thread (one
// broadcast/scalar load); each thread reads its own key row.
// Precision: f32 dot products and exp; the head mean is summed in f32.

alias T = f32;

override WG: u32 = 64u;
// Head dim / 4.
override D4: u32 = 10u;
override CAUSAL: bool = false;

struct Params {
  B: u32,
  H: u32,
  Lq: u32,
  Lk: u32,
  k_blocks: u32,  // ceil(Lk / WG)
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs_mean: array<T>;

@compute @workgroup_size(WG)
fn attention_probs_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bi = g / p.k_blocks;
  if (bi >= p.B * p.Lq) { return; }
  let b = bi / p.Lq;
  let i = bi % p.Lq;
  let j = (g % p.k_blocks) * WG + lid;
  if (j >= p.Lk) { return; }
  let C4 = p.H * D4;
  var total = 0.0;
  if (!(CAUSAL && j > i)) {
    for (var h = 0u; h < p.H; h++) {
      let q_base = bi * C4 + h * D4;
      let k_base = (b * p.Lk + j) * C4 + h * D4;
      var s = 0.0;
      for (var d = 0u; d < D4; d++) { s += dot(vec4<f32>(q[q_base + d]), vec4<f32>(k[k_base + d])); }
      total += exp(s * p.scale - lse[(b * p.H + h) * p.Lq + i]);
    }
  }
  probs_mean[bi * p.Lk + j] = T(total / f32(p.H));
}
