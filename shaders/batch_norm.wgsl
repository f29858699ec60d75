// Batch normalisation over (N, H, W) per channel and its backward. Layout: x, y, dy, dx
// [N, C, S] contiguous (S = H * W), so channel c is N planes of S elements at
// (n * C + c) * S; weight, bias, running_mean, running_var [C]; mean, rstd [C] f32.
// batch_norm_stats (training): one workgroup per channel; each thread runs Welford over
//   its strided share of the channel's N * S elements, a tree merges the (count, mean,
//   M2) triples (Chan et al.), and thread 0 writes mean, rstd = 1 / sqrt(var + eps)
//   with the biased variance, and updates the running statistics in place with the
//   unbiased one (PyTorch's BatchNorm2d).
// batch_norm_eval_stats: one thread per channel; mean = running_mean,
//   rstd = 1 / sqrt(running_var + eps).
// batch_norm_forward: one workgroup per (plane n * C + c, chunk of WG * ITEMS positions):
//   y = (x - mean[c]) * rstd[c] * weight[c] + bias[c].
// batch_norm_backward_reduce: one workgroup per channel, tree sums of dy and dy * xhat
//   (= dbias and dweight).
// batch_norm_backward_input: per (plane, chunk) like the forward; training:
//   dx = weight * rstd * (dy - sum(dy) / n - xhat * sum(dy * xhat) / n), eval:
//   dx = weight * rstd * dy.
// Without AFFINE the weight (and bias) bindings are bound to another read-only tensor
// and never read (layout 'auto' needs every declared binding); likewise the sums when
// not TRAINING. Plane indices are folded into (x, y) by the host past 65535.
// Precision: f32 math and accumulation (storage may be f16); Welford, not E[x^2]-E[x]^2.

alias T = f32;

override WG: u32 = 256u;
override ITEMS: u32 = 4u;
override AFFINE: bool = true;
override TRAINING: bool = true;

struct Params {
  batch: u32,      // N
  channels: u32,   // C
  spatial: u32,    // S
  plane_chunks: u32,
  eps: f32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<vec3<f32>, WG>;

// #include "welford.wgsl"

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<T>;
@group(0) @binding(3) var<storage, read_write> running_var: array<T>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>;

@compute @workgroup_size(WG)
fn batch_norm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  var acc = vec3<f32>(0.0);
  for (var n = 0u; n < p.batch; n++) {
    let base = (n * p.channels + c) * p.spatial;
    for (var s = lid; s < p.spatial; s += WG) {
      let v = f32(x[base + s]);
      acc.x += 1.0;
      let d = v - acc.y;
      acc.y += d / acc.x;
      acc.z += d * (v - acc.y);
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      acc = chan_merge(acc, red[lid + half]);
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let var_biased = acc.z / acc.x;
    mean_out[c] = acc.y;
    rstd_out[c] = inverseSqrt(var_biased + p.eps);
    let m = p.momentum;
    running_mean[c] = T((1.0 - m) * f32(running_mean[c]) + m * acc.y);
    running_var[c] = T((1.0 - m) * f32(running_var[c]) + m * acc.z / (acc.x - 1.0));
  }
}

@group(0) @binding(1) var<storage, read> rm_in: array<T>;
@group(0) @binding(2) var<storage, read> rv_in: array<T>;
@group(0) @binding(3) var<storage, read_write> mean_eval: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd_eval: array<f32>;

@compute @workgroup_size(WG)
fn batch_norm_eval_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.channels) { return; }
  mean_eval[c] = f32(rm_in[c]);
  rstd_eval[c] = inverseSqrt(f32(rv_in[c]) + p.eps);
}

@group(0) @binding(2) var<storage, read> mean_in: array<f32>;
@group(0) @binding(3) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<T>;
@group(0) @binding(5) var<storage, read> bias: array<T>;
@group(0) @binding(6) var<storage, read_write> y: array<T>;

@compute @workgroup_size(WG)
fn batch_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.batch * p.channels * p.plane_chunks) { return; }
  let plane = g / p.plane_chunks;
  let c = plane % p.channels;
  var scale = rstd_in[c];
  var b = 0.0;
  if (AFFINE) {
    scale *= f32(weight[c]);
    b = f32(bias[c]);
  }
  let mean = mean_in[c];
  let start = (g % p.plane_chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.spatial);
  let base = plane * p.spatial;
  for (var i = start + lid; i < end; i += WG) {
    y[base + i] = T((f32(x[base + i]) - mean) * scale + b);
  }
}

@group(0) @binding(4) var<storage, read> dy: array<T>;
@group(0) @binding(5) var<storage, read_write> sum_dy: array<T>;
@group(0) @binding(6) var<storage, read_write> sum_dy_xhat: array<T>;

@compute @workgroup_size(WG)
fn batch_norm_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  let mean = mean_in[c];
  let rstd = rstd_in[c];
  var acc = vec2<f32>(0.0);
  for (var n = 0u; n < p.batch; n++) {
    let base = (n * p.channels + c) * p.spatial;
    for (var s = lid; s < p.spatial; s += WG) {
      let g = f32(dy[base + s]);
      acc += vec2<f32>(g, g * (f32(x[base + s]) - mean) * rstd);
    }
  }
  red[lid] = vec3<f32>(acc, 0.0);
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      acc += red[lid + half].xy;
      red[lid] = vec3<f32>(acc, 0.0);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    sum_dy[c] = T(acc.x);
    sum_dy_xhat[c] = T(acc.y);
  }
}

@group(0) @binding(5) var<storage, read> weight_b: array<T>;
@group(0) @binding(6) var<storage, read> sum_dy_in: array<T>;
@group(0) @binding(7) var<storage, read> sum_dy_xhat_in: array<T>;
@group(0) @binding(8) var<storage, read_write> dx: array<T>;

@compute @workgroup_size(WG)
fn batch_norm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.batch * p.channels * p.plane_chunks) { return; }
  let plane = g / p.plane_chunks;
  let c = plane % p.channels;
  let mean = mean_in[c];
  let rstd = rstd_in[c];
  var scale = rstd;
  if (AFFINE) { scale *= f32(weight_b[c]); }
  var m_dy = 0.0;
  var m_dyx = 0.0;
  if (TRAINING) {
    let inv_n = 1.0 / f32(p.batch * p.spatial);
    m_dy = f32(sum_dy_in[c]) * inv_n;
    m_dyx = f32(sum_dy_xhat_in[c]) * inv_n;
  }
  let start = (g % p.plane_chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.spatial);
  let base = plane * p.spatial;
  for (var i = start + lid; i < end; i += WG) {
    let xhat = (f32(x[base + i]) - mean) * rstd;
    dx[base + i] = T(scale * (f32(dy[base + i]) - m_dy - xhat * m_dyx));
  }
}
