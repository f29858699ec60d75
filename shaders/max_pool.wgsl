// 2-D max pooling (F.max_pool2d, dilation 1, ceil_mode False): y[p, oy, ox] = max over the
// kh x kw window at (oy * sh - ph, ox * sw - pw) of the plane, padding excluded (torch pads
// with -inf, so a padded position never wins; pad <= kernel/2 keeps every window
// non-empty). FPN's extra level is max_pool2d(P5, 1, 2), ResNet's stem 3x3 stride 2 pad 1.
// Layout: contiguous [planes = N*C, H, W]; the host binds a run of whole planes per
// dispatch, so tensors past maxStorageBufferBindingSize take several dispatches.
// Mapping: one thread per output element; the 1-D workgroup index is folded into (x, y)
// by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: exact (a selection); a NaN in the window wins, as in torch's CPU kernel.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,       // output elements in this run
  in_h: u32,
  in_w: u32,
  out_h: u32,
  out_w: u32,
  k_h: u32,
  k_w: u32,
  s_h: u32,
  s_w: u32,
  p_h: u32,
  p_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

@compute @workgroup_size(WG)
fn max_pool_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.n) { return; }
  let ox = t % p.out_w;
  let r = t / p.out_w;
  let oy = r % p.out_h;
  let plane = r / p.out_h;
  // Window rows [y0, y1) and columns [x0, x1) clipped to the plane (in signed arithmetic).
  let y_start = i32(oy * p.s_h) - i32(p.p_h);
  let x_start = i32(ox * p.s_w) - i32(p.p_w);
  let y0 = u32(max(y_start, 0));
  let x0 = u32(max(x_start, 0));
  let y1 = u32(min(y_start + i32(p.k_h), i32(p.in_h)));
  let x1 = u32(min(x_start + i32(p.k_w), i32(p.in_w)));
  let base = plane * p.in_h * p.in_w;
  var m = x[base + y0 * p.in_w + x0];
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) {
      let v = x[base + iy * p.in_w + ix];
      if (v > m || v != v) { m = v; }
    }
  }
  y[t] = m;
}
