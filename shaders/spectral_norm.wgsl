// BigGAN-style spectral normalisation (the grounding module's SNConv2d) and its backward.
// W is the weight viewed as a matrix [O, K] (K = in * kh * kw, row-major, as
// weight.view(O, -1)); u0 [O] is the stored left singular vector estimate.
//   spectral_norm_power: one power iteration, v = normalize(u0 W), t = v W^T,
//     u = normalize(t), sigma = t . u, with normalize(z) = z / max(||z||, eps) (F.normalize).
//   spectral_norm_scale: W_eff = W / sigma (elementwise, a division like torch's).
//   spectral_norm_store: u0 <- u, sv0 <- sigma (train mode only).
//   spectral_norm_backward_dot: s = sum(G * W) with G = dL/dW_eff.
//   spectral_norm_backward: dW (+)= G / sigma - s / sigma^2 * u[r] v[c] (sigma = u^T W v,
//     so d sigma / dW = u v^T; u and v are constants, as torch's no_grad iteration).
// Mapping: the power iteration and the dot are one workgroup (the matrices are small:
// at most 240 x 2160 in the real model), threads striding over columns of W for v and over
// rows for t; tree reductions in workgroup memory. scale/backward: one thread per element,
// 1-D workgroup index folded into (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: f32 throughout; each sum is a per-thread strided partial followed by a tree.

override WG: u32 = 256u;
override ACCUMULATE: bool = false;

struct Params {
  rows: u32,   // O
  cols: u32,   // K
  eps: f32,
  n: u32,      // O * K for the elementwise entries
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;

fn reduce_sum(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@group(0) @binding(1) var<storage, read> pw_w: array<f32>;
@group(0) @binding(2) var<storage, read> pw_u0: array<f32>;
@group(0) @binding(3) var<storage, read_write> pw_u: array<f32>;
@group(0) @binding(4) var<storage, read_write> pw_v: array<f32>;
@group(0) @binding(5) var<storage, read_write> pw_sigma: array<f32>;

@compute @workgroup_size(WG)
fn spectral_norm_power(@builtin(local_invocation_index) lid: u32) {
  let O = p.rows;
  let K = p.cols;
  var part = 0.0;
  for (var j = lid; j < K; j += WG) {
    var acc = 0.0;
    for (var i = 0u; i < O; i++) { acc = fma(pw_u0[i], pw_w[i * K + j], acc); }
    pw_v[j] = acc;
    part = fma(acc, acc, part);
  }
  let vden = max(sqrt(reduce_sum(lid, part)), p.eps);
  for (var j = lid; j < K; j += WG) { pw_v[j] = pw_v[j] / vden; }
  storageBarrier();
  part = 0.0;
  for (var i = lid; i < O; i += WG) {
    var acc = 0.0;
    for (var j = 0u; j < K; j++) { acc = fma(pw_v[j], pw_w[i * K + j], acc); }
    pw_u[i] = acc;
    part = fma(acc, acc, part);
  }
  let uden = max(sqrt(reduce_sum(lid, part)), p.eps);
  part = 0.0;
  for (var i = lid; i < O; i += WG) {
    let t = pw_u[i];
    let u = t / uden;
    pw_u[i] = u;
    part = fma(t, u, part);
  }
  let sigma = reduce_sum(lid, part);
  if (lid == 0u) { pw_sigma[0] = sigma; }
}

@group(0) @binding(1) var<storage, read> sc_w: array<f32>;
@group(0) @binding(2) var<storage, read> sc_sigma: array<f32>;
@group(0) @binding(3) var<storage, read_write> sc_out: array<f32>;

@compute @workgroup_size(WG)
fn spectral_norm_scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  sc_out[i] = sc_w[i] / sc_sigma[0];
}

@group(0) @binding(1) var<storage, read> st_u: array<f32>;
@group(0) @binding(2) var<storage, read> st_sigma: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_u0: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_sv0: array<f32>;

@compute @workgroup_size(WG)
fn spectral_norm_store(@builtin(local_invocation_index) lid: u32) {
  for (var i = lid; i < p.rows; i += WG) { st_u0[i] = st_u[i]; }
  if (lid == 0u) { st_sv0[0] = st_sigma[0]; }
}

@group(0) @binding(1) var<storage, read> bd_g: array<f32>;
@group(0) @binding(2) var<storage, read> bd_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bd_s: array<f32>;

@compute @workgroup_size(WG)
fn spectral_norm_backward_dot(@builtin(local_invocation_index) lid: u32) {
  var part = 0.0;
  for (var i = lid; i < p.n; i += WG) { part = fma(bd_g[i], bd_w[i], part); }
  let s = reduce_sum(lid, part);
  if (lid == 0u) { bd_s[0] = s; }
}

@group(0) @binding(1) var<storage, read> bw_g: array<f32>;
@group(0) @binding(2) var<storage, read> bw_sigma: array<f32>;
@group(0) @binding(3) var<storage, read> bw_s: array<f32>;
@group(0) @binding(4) var<storage, read> bw_u: array<f32>;
@group(0) @binding(5) var<storage, read> bw_v: array<f32>;
@group(0) @binding(6) var<storage, read_write> bw_dw: array<f32>;

@compute @workgroup_size(WG)
fn spectral_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  let sigma = bw_sigma[0];
  let r = i / p.cols;
  let c = i - r * p.cols;
  var d = bw_g[i] / sigma - bw_s[0] / (sigma * sigma) * (bw_u[r] * bw_v[c]);
  if (ACCUMULATE) { d += bw_dw[i]; }
  bw_dw[i] = d;
}
