// Segmentation losses on logits and targets [R, P] (R rows such as batch * classes, P
// pixels), with per-row weights w_r (WEIGHTED; else 1):
//   BCE  (DICE = false): loss = sum_r w_r * mean_p bce, bce = max(x, 0) - x t + log(1 + exp(-|x|))
//   Dice (DICE = true):  loss = sum_r w_r * (1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth)),
//                        p = sigmoid(x)
// loss_partial: one workgroup per (row, chunk of WG * ITEMS pixels; the host picks few
//   threads with long strides, as each tree level costs a barrier); threads sum a strided
//   share (coalesced), a tree adds the WG partial sums; writes partials [R, chunks] as
//   vec4 (BCE: sum bce; Dice: sum p t, sum p, sum t).
// loss_finish: one workgroup; thread r sums row r's partials (rows strided over
//   threads), writes the row sums to rowstats [R] and a tree adds the weighted row losses
//   into loss [1]. The loss stays on the GPU.
// loss_bce_backward / loss_dice_backward: one thread per element over (row, chunk)
//   workgroups; Dice reads its row's sums from rowstats.
// Workgroup indices are folded into (x, y) by the host past 65535. Without WEIGHTED the
// weights binding holds another read-only tensor and is never read.
// Precision: f32 with tree sums (per-thread sums of ITEMS terms, then pairwise), so
// error grows like log(P); log(1 + u) comes from a series accurate for small u.

alias T = f32;

// #include "activation.wgsl"

override WG: u32 = 256u;
override ITEMS: u32 = 4u;
override DICE: bool = false;
override WEIGHTED: bool = false;

struct Params {
  rows: u32,
  cols: u32,     // P
  chunks: u32,   // chunks per row
  smoothing: f32,
  dloss: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<vec4<f32>, WG>;

fn tree_sum(lid: u32, own: vec4<f32>) -> vec4<f32> {
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
  return acc;
}

// log(1 + u) for u in [0, 1] to f32 relative accuracy: 2 atanh(z), z = u / (2 + u) <= 1/3,
// by its odd series through z^15 (next term < 2e-9 relative). WGSL's log has an
// absolute error bound near 1, which would lose the small log(1 + exp(-|x|)) terms of
// confident pixels.
fn log1p_unit(u: f32) -> f32 {
  let z = u / (2.0 + u);
  let z2 = z * z;
  let poly = 1.0 + z2 * (1.0 / 3.0 + z2 * (0.2 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0 +
             z2 * (1.0 / 11.0 + z2 * (1.0 / 13.0 + z2 / 15.0))))));
  return 2.0 * z * poly;
}

fn bce(x: f32, t: f32) -> f32 {
  return max(x, 0.0) - x * t + log1p_unit(exp(-abs(x)));
}

@group(0) @binding(1) var<storage, read> logits: array<T>;
@group(0) @binding(2) var<storage, read> target_in: array<T>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn loss_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.chunks) { return; }
  let row = g / p.chunks;
  let start = (g % p.chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.cols);
  let base = row * p.cols;
  var acc = vec4<f32>(0.0);
  for (var i = start + lid; i < end; i += WG) {
    let x = f32(logits[base + i]);
    let t = f32(target_in[base + i]);
    if (DICE) {
      let s = sigmoid(x);
      acc += vec4<f32>(s * t, s, t, 0.0);
    } else {
      acc.x += bce(x, t);
    }
  }
  let total = tree_sum(lid, acc);
  if (lid == 0u) { partials[g] = total; }
}

@group(0) @binding(1) var<storage, read> partials_in: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weights: array<T>;
@group(0) @binding(3) var<storage, read_write> rowstats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> loss_out: array<f32>;

fn row_weight(r: u32) -> f32 {
  if (WEIGHTED) { return f32(weights[r]); }
  return 1.0;
}

@compute @workgroup_size(WG)
fn loss_finish(@builtin(local_invocation_index) lid: u32) {
  var acc = vec4<f32>(0.0);
  for (var r = lid; r < p.rows; r += WG) {
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < p.chunks; k++) { s += partials_in[r * p.chunks + k]; }
    rowstats[r] = s;
    var l: f32;
    if (DICE) {
      l = 1.0 - (2.0 * s.x + p.smoothing) / (s.y + s.z + p.smoothing);
    } else {
      l = s.x / f32(p.cols);
    }
    acc.x += row_weight(r) * l;
  }
  let total = tree_sum(lid, acc);
  if (lid == 0u) { loss_out[0] = total.x; }
}

@group(0) @binding(3) var<storage, read> weights_b: array<T>;
@group(0) @binding(4) var<storage, read_write> dlogits_bce: array<T>;

@compute @workgroup_size(WG)
fn loss_bce_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.chunks) { return; }
  let row = g / p.chunks;
  var scale = p.dloss / f32(p.cols);
  if (WEIGHTED) { scale *= f32(weights_b[row]); }
  let start = (g % p.chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.cols);
  let base = row * p.cols;
  for (var i = start + lid; i < end; i += WG) {
    dlogits_bce[base + i] = T(scale * (sigmoid(f32(logits[base + i])) - f32(target_in[base + i])));
  }
}

@group(0) @binding(4) var<storage, read> rowstats_in: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dlogits_dice: array<T>;

@compute @workgroup_size(WG)
fn loss_dice_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.rows * p.chunks) { return; }
  let row = g / p.chunks;
  var scale = p.dloss;
  if (WEIGHTED) { scale *= f32(weights_b[row]); }
  // dice = 1 - num / den: d dice / d p_i = (num - 2 t_i den) / den^2.
  let s = rowstats_in[row];
  let num = 2.0 * s.x + p.smoothing;
  let den = s.y + s.z + p.smoothing;
  let inv_den2 = 1.0 / (den * den);
  let start = (g % p.chunks) * WG * ITEMS;
  let end = min(start + WG * ITEMS, p.cols);
  let base = row * p.cols;
  for (var i = start + lid; i < end; i += WG) {
    let sg = sigmoid(f32(logits[base + i]));
    let t = f32(target_in[base + i]);
    dlogits_dice[base + i] = T(scale * (num - 2.0 * t * den) * inv_den2 * sg * (1.0 - sg));
  }
}
