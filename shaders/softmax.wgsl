// Softmax over the last axis of a [rows, n] tensor, y = softmax(scale * x), and its
// backward dx = scale * y * (dy - sum(dy * y)).
// Mapping: one workgroup per row (the 1-D row index is folded into (x, y) by the host
// past 65535 and recovered as wid.x + wid.y * nwg.x); WG threads stride over the row.
// Forward makes two passes over the row: an online pass that keeps a running max and
// a sum of exp(v - max) rescaled whenever the max grows, a tree merge of the WG
// (max, sum) pairs in workgroup memory, then a pass writing exp(v - max) / sum. The
// second read of a row hits the cache, so memory traffic is one read and one write.
// Precision: f32 math (storage may be f16 through T); max-subtracted, so exp <= 1.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  rows: u32,
  n: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

// A finite stand-in for -inf (WGSL has no infinity literal): the running max before
// the first element.
const NEG_MAX: f32 = -3.0e38;

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.n;
  var m = NEG_MAX;
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    let v = p.scale * f32(x[base + i]);
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  red_m[lid] = m;
  red_s[lid] = s;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      let m2 = red_m[lid + half];
      let s2 = red_s[lid + half];
      let mm = max(m, m2);
      s = s * exp(m - mm) + s2 * exp(m2 - mm);
      m = mm;
      red_m[lid] = m;
      red_s[lid] = s;
    }
    workgroupBarrier();
  }
  let row_max = red_m[0];
  let inv_sum = 1.0 / red_s[0];
  for (var i = lid; i < p.n; i += WG) {
    y[base + i] = T(exp(p.scale * f32(x[base + i]) - row_max) * inv_sum);
  }
}

// Rows whose width is a multiple of 4 (f32 storage): vec4 loads and three passes over
// the (cached) row: max, sum of exp(v - max), write. Two exps per element instead of
// the online pass's three, and no divergent rescaling branch; the host sizes the
// workgroup so that each thread owns about 16 vec4s.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

fn reduce_max(lid: u32, v: f32) -> f32 {
  var m = v;
  red_m[lid] = m;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      m = max(m, red_m[lid + half]);
      red_m[lid] = m;
    }
    workgroupBarrier();
  }
  return red_m[0];
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  var s = v;
  red_s[lid] = s;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      s += red_s[lid + half];
      red_s[lid] = s;
    }
    workgroupBarrier();
  }
  return red_s[0];
}

@compute @workgroup_size(WG)
fn softmax_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let n4 = p.n / 4u;
  let base = row * n4;
  var m4 = vec4<f32>(NEG_MAX);
  for (var i = lid; i < n4; i += WG) {
    m4 = max(m4, p.scale * x4[base + i]);
  }
  let row_max = reduce_max(lid, max(max(m4.x, m4.y), max(m4.z, m4.w)));
  var s4 = vec4<f32>(0.0);
  for (var i = lid; i < n4; i += WG) {
    s4 += exp(p.scale * x4[base + i] - row_max);
  }
  let inv_sum = 1.0 / reduce_sum(lid, s4.x + s4.y + s4.z + s4.w);
  for (var i = lid; i < n4; i += WG) {
    y4[base + i] = exp(p.scale * x4[base + i] - row_max) * inv_sum;
  }
}

@group(0) @binding(1) var<storage, read> b_y: array<T>;
@group(0) @binding(2) var<storage, read> b_dy: array<T>;
@group(0) @binding(3) var<storage, read_write> b_dx: array<T>;

@compute @workgroup_size(WG)
fn softmax_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.n;
  var d = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    d += f32(b_dy[base + i]) * f32(b_y[base + i]);
  }
  red_s[lid] = d;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      d += red_s[lid + half];
      red_s[lid] = d;
    }
    workgroupBarrier();
  }
  let dot = red_s[0];
  for (var i = lid; i < p.n; i += WG) {
    b_dx[base + i] = T(p.scale * f32(b_y[base + i]) * (f32(b_dy[base + i]) - dot));
  }
}
