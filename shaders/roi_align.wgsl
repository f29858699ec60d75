// RoIAlign forward (torchvision.ops.roi_align, CPU kernel semantics): the average of
// bilinear samples on a grid inside each of the PH x PW bins of each RoI.
// Layout: feature [N, C, H, W] (this dispatch binds all images, or one image, starting at
// element feat_base); output [K, C, PH, PW] (this dispatch binds a window of RoI rows
// starting at element out_base). `geo` holds the sampling geometry the host computed in
// f32 exactly as torchvision does (see src/nn/roi_align.ts), per RoI q of the dispatch:
//   geo[8q .. 8q+7] = (batch, out_row, y_taps, x_taps, grid_h, grid_w, bits(count), 0)
// and per sample along an axis (4 words at y_taps + 4 * (ph * grid_h + iy), likewise x):
//   (low, high, bits(l), bits(h)) with l = y - low, h = 1 - l; low = 0xffffffff marks a
//   sample outside [-1, size], which contributes 0.
// Mapping: one thread per output element (q, c, ph, pw) of the dispatch's RoIs; the 1-D
// workgroup index is folded into (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: f32 as torchvision: per sample ((w1*v1 + w2*v2) + w3*v3) + w4*v4 with
// w1 = hy*hx, w2 = hy*lx, w3 = ly*hx, w4 = ly*lx, summed over the grid in order, then
// divided by count = max(grid_h * grid_w, 1) (a grid of 0 gives 0).

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,          // threads: RoIs of this dispatch * C * PH * PW
  c: u32,
  h: u32,
  w: u32,
  ph: u32,
  pw: u32,
  feat_base: u32,  // element offset of image b_first's plane 0 in the feature binding
  out_base: u32,   // element offset of output row row_first in the output binding
  b_first: u32,    // first image of the feature binding
  row_first: u32,  // first output row of the output binding
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> feat: array<T>;
@group(0) @binding(2) var<storage, read> geo: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

const OUTSIDE: u32 = 0xffffffffu;

@compute @workgroup_size(WG)
fn roi_align_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.n) { return; }
  let x_out = t % p.pw;
  let r1 = t / p.pw;
  let y_out = r1 % p.ph;
  let r2 = r1 / p.ph;
  let ch = r2 % p.c;
  let q = r2 / p.c;
  let g = 8u * q;
  let batch = geo[g];
  let row = geo[g + 1u];
  let grid_h = geo[g + 4u];
  let grid_w = geo[g + 5u];
  let plane = p.feat_base + ((batch - p.b_first) * p.c + ch) * p.h * p.w;
  var acc = 0.0;
  for (var iy = 0u; iy < grid_h; iy++) {
    let ty = geo[g + 2u] + 4u * (y_out * grid_h + iy);
    let y_low = geo[ty];
    if (y_low == OUTSIDE) { continue; }
    let row_lo = plane + y_low * p.w;
    let row_hi = plane + geo[ty + 1u] * p.w;
    let ly = bitcast<f32>(geo[ty + 2u]);
    let hy = bitcast<f32>(geo[ty + 3u]);
    for (var ix = 0u; ix < grid_w; ix++) {
      let tx = geo[g + 3u] + 4u * (x_out * grid_w + ix);
      let x_low = geo[tx];
      if (x_low == OUTSIDE) { continue; }
      let x_high = geo[tx + 1u];
      let lx = bitcast<f32>(geo[tx + 2u]);
      let hx = bitcast<f32>(geo[tx + 3u]);
      let v = (hy * hx) * f32(feat[row_lo + x_low]) + (hy * lx) * f32(feat[row_lo + x_high]);
      acc += (v + (ly * hx) * f32(feat[row_hi + x_low])) + (ly * lx) * f32(feat[row_hi + x_high]);
    }
  }
  let o = p.out_base + ((row - p.row_first) * p.c + ch) * p.ph * p.pw + y_out * p.pw + x_out;
  out[o] = T(acc / bitcast<f32>(geo[g + 6u]));
}
