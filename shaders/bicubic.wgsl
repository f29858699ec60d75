// Bicubic resampling of NCHW planes: PyTorch's F.interpolate(mode='bicubic'), no
// antialias (upsample_bicubic2d), with align_corners False (DAAM's use: it passes no
// align_corners, which torch reads as False) or True. Forward only (inference).
// Per output axis, with scale = in/out (align_corners=False) or (in-1)/(out-1) (True, 0
// when out == 1):
//   src = scale * (dst + 0.5) - 0.5   (False; NOT clamped at 0, unlike bilinear)
//   src = scale * dst                 (True)
//   x0 = min(floor(src), in - 1), t = clamp(src - x0, 0, 1)
//   taps x0-1 .. x0+2, each index clamped to [0, in-1] (border replicate), weights
//   W(t+1), W(t), W(1-t), W(2-t) of Keys' cubic convolution kernel with A = -0.75.
// The 2-D result is separable: 4 rows are each interpolated along x, then the 4 row
// values along y (torch's order).
// Layout: contiguous [planes = N*C, H, W] in and [planes, out_h, out_w] out. The host
// binds a run of whole planes per dispatch, so tensors past
// maxStorageBufferBindingSize take several dispatches.
// Mapping: one thread per output pixel (16 taps), 1-D workgroup index folded into (x, y)
// by the host past maxComputeWorkgroupsPerDimension and recovered as
// wid.x + wid.y * nwg.x.
// Precision: scale and src are computed in f32 exactly as torch's f32 kernel does (scale
// rounded to f32 on the host), so the taps match torch; weights and accumulation in f32.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,              // output pixels in this run
  in_h: u32,
  in_w: u32,
  out_h: u32,
  out_w: u32,
  scale_h: f32,        // in_h / out_h (or (in_h - 1) / (out_h - 1)), rounded to f32
  scale_w: f32,
  align_corners: u32,  // 0 or 1
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

const A: f32 = -0.75;

// Keys' kernel on |x| <= 1 and on 1 < |x| < 2 (torch's cubic_convolution1 / 2).
fn near_w(d: f32) -> f32 {
  return ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0;
}

fn far_w(d: f32) -> f32 {
  return ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A;
}

struct Taps {
  i: vec4<u32>,   // input indices x0-1 .. x0+2, clamped to [0, size_in - 1]
  w: vec4<f32>,
}

fn taps(dst: u32, scale: f32, size_in: u32) -> Taps {
  var s = scale * f32(dst);
  if (p.align_corners == 0u) {
    s = scale * (f32(dst) + 0.5) - 0.5;
  }
  let last = i32(size_in) - 1;
  let x0 = min(i32(floor(s)), last);
  let t = clamp(s - f32(x0), 0.0, 1.0);
  let idx = clamp(vec4<i32>(x0 - 1, x0, x0 + 1, x0 + 2), vec4<i32>(0), vec4<i32>(last));
  return Taps(vec4<u32>(idx), vec4<f32>(far_w(t + 1.0), near_w(t), near_w(1.0 - t), far_w(2.0 - t)));
}

// One input row (starting at element `row`) interpolated at the x taps.
fn along_x(row: u32, tx: Taps) -> f32 {
  let v = vec4<f32>(f32(x[row + tx.i.x]), f32(x[row + tx.i.y]), f32(x[row + tx.i.z]), f32(x[row + tx.i.w]));
  return dot(tx.w, v);
}

@compute @workgroup_size(WG)
fn bicubic_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  let ox = t % p.out_w;
  let r = t / p.out_w;
  let oy = r % p.out_h;
  let plane = r / p.out_h;
  let ty = taps(oy, p.scale_h, p.in_h);
  let tx = taps(ox, p.scale_w, p.in_w);
  let base = plane * p.in_h * p.in_w;
  let rows = vec4<f32>(
    along_x(base + ty.i.x * p.in_w, tx),
    along_x(base + ty.i.y * p.in_w, tx),
    along_x(base + ty.i.z * p.in_w, tx),
    along_x(base + ty.i.w * p.in_w, tx),
  );
  y[t] = T(dot(ty.w, rows));
}
