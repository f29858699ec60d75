// Layer normalisation over the last axis and its backward (llm.c layernorm_forward /
// layernorm_backward). Layout: x, y, dy, dx [rows, D] contiguous; weight, bias,
// dweight, dbias [D]; mean, rstd [rows] (saved by the forward for the backward).
// layer_norm_forward: one workgroup per row; WG threads stride over the row (coalesced).
//   Two-pass statistics: a tree sum gives the mean, then a second pass over the row
//   (now in cache) sums (x - mean)^2, so no E[x^2] - E[x]^2 cancellation.
// layer_norm_backward_input: one workgroup per row; a tree sums dy * w and
//   dy * w * xhat, then dx = rstd * (dy * w - mean(dy * w) - xhat * mean(dy * w * xhat)).
// layer_norm_backward_weight: a workgroup covers TX adjacent columns (coalesced loads)
//   times WG / TX slices of rows, merged by a tree over the slices; with ACCUMULATE the
//   sums are added to dweight / dbias, otherwise they overwrite them.
// Row indices are folded into (x, y) by the host past 65535 and recovered as
// wid.x + wid.y * nwg.x. Precision: f32 math and accumulation (storage may be f16).

alias T = f32;

override WG: u32 = 256u;
override TX: u32 = 16u;
override ACCUMULATE: bool = false;

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<vec2<f32>, WG>;

// Tree sum over the workgroup; every thread gets the total.
fn tree_sum(lid: u32, own: vec2<f32>) -> vec2<f32> {
  var acc = own;
  red[lid] = acc;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      acc += red[lid + half];
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  let total = red[0];
  // The next tree_sum overwrites red, so every thread reads the total first.
  workgroupBarrier();
  return total;
}

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> weight: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;

@compute @workgroup_size(WG)
fn layer_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let n = f32(p.d);
  var s = 0.0;
  for (var i = lid; i < p.d; i += WG) { s += f32(x[base + i]); }
  let mean = tree_sum(lid, vec2<f32>(s, 0.0)).x / n;
  var v = 0.0;
  for (var i = lid; i < p.d; i += WG) {
    let dv = f32(x[base + i]) - mean;
    v += dv * dv;
  }
  let rstd = inverseSqrt(tree_sum(lid, vec2<f32>(v, 0.0)).x / n + p.eps);
  for (var i = lid; i < p.d; i += WG) {
    y[base + i] = T((f32(x[base + i]) - mean) * rstd * f32(weight[i]) + f32(bias[i]));
  }
  if (lid == 0u) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

@group(0) @binding(3) var<storage, read> mean_in: array<f32>;
@group(0) @binding(4) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<T>;
@group(0) @binding(6) var<storage, read_write> dx: array<T>;

@compute @workgroup_size(WG)
fn layer_norm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.d;
  let mean = mean_in[row];
  let rstd = rstd_in[row];
  var acc = vec2<f32>(0.0);
  for (var i = lid; i < p.d; i += WG) {
    let g = f32(dy[base + i]) * f32(weight[i]);
    acc += vec2<f32>(g, g * (f32(x[base + i]) - mean) * rstd);
  }
  let m = tree_sum(lid, acc) / f32(p.d);
  for (var i = lid; i < p.d; i += WG) {
    let g = f32(dy[base + i]) * f32(weight[i]);
    let xhat = (f32(x[base + i]) - mean) * rstd;
    dx[base + i] = T(rstd * (g - m.x - xhat * m.y));
  }
}

@group(0) @binding(2) var<storage, read> mean_w: array<f32>;
@group(0) @binding(3) var<storage, read> rstd_w: array<f32>;
@group(0) @binding(4) var<storage, read> dy_w: array<T>;
@group(0) @binding(5) var<storage, read_write> dweight: array<T>;
@group(0) @binding(6) var<storage, read_write> dbias: array<T>;

@compute @workgroup_size(WG)
fn layer_norm_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let col = (wid.x + wid.y * nwg.x) * TX + tx;
  var acc = vec2<f32>(0.0);
  if (col < p.d) {
    for (var r = ty; r < p.rows; r += WG / TX) {
      let g = f32(dy_w[r * p.d + col]);
      acc += vec2<f32>(g * (f32(x[r * p.d + col]) - mean_w[r]) * rstd_w[r], g);
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var half = WG / TX / 2u; half > 0u; half /= 2u) {
    if (ty < half) {
      acc += red[lid + half * TX];
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  if (ty == 0u && col < p.d) {
    if (ACCUMULATE) {
      acc += vec2<f32>(f32(dweight[col]), f32(dbias[col]));
    }
    dweight[col] = T(acc.x);
    dbias[col] = T(acc.y);
  }
}
