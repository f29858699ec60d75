// Resizing of NCHW planes: nearest-neighbour 2x upsampling (diffusers Upsample2D,
// F.interpolate(scale_factor=2, mode='nearest')), bilinear resampling with PyTorch's
// align_corners=False convention, and the bilinear adjoint (its backward).
// Layout: contiguous [planes = N*C, H, W]. The host binds a run of whole planes per
// dispatch, so tensors past maxStorageBufferBindingSize take several dispatches.
// Mapping (1-D workgroup index folded into (x, y) by the host, recovered as
// wid.x + wid.y * nwg.x):
//   nearest: one thread per input pixel, writing a 2-wide vector into both output rows;
//   bilinear forward: one thread per output pixel (4 taps), or with out_w % 4 == 0 four
//   adjacent output pixels of a row per thread (resize_bilinear_forward4: one index
//   decomposition and one row tap per 4 pixels, a vec4 store; p.n counts vec4; on
//   lavapipe 2.2-2.3x the per-pixel entry at the grounding module's 16->32 and 32->64
//   upsamplings of 640-1280 channels, 1.25x at 8->16);
//   backward: one thread per input pixel gathering every output pixel whose taps touch
//   it. The taps are monotonic in the output index, so those outputs form a window along
//   each axis; the gather needs no atomics and is deterministic.
// Precision: source coordinates are computed in f32 exactly as PyTorch's kernel does
// (scale = in/out, src = scale * (dst + 0.5) - 0.5 clamped at 0), so the taps match
// torch; the backward recomputes the same taps, so it is the exact adjoint of the
// forward. Accumulation in f32.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,            // threads in this run: input pixels (nearest, backward) or output pixels
  in_h: u32,
  in_w: u32,
  out_h: u32,
  out_w: u32,
  scale_h: f32,      // in_h / out_h, rounded to f32 as torch does
  scale_w: f32,
  inv_scale_h: f32,  // out_h / in_h: only bounds the backward's window
  inv_scale_w: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@group(0) @binding(1) var<storage, read> near_x: array<T>;
@group(0) @binding(2) var<storage, read_write> near_y: array<vec2<T>>;

@compute @workgroup_size(WG)
fn resize_nearest_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  let v = near_x[t];
  let w = t % p.in_w;
  let row = t / p.in_w;             // plane * in_h + h
  // Output rows 2*row and 2*row + 1 (in vec2 units a row is in_w long).
  let o = 2u * row * p.in_w + w;
  near_y[o] = vec2<T>(v, v);
  near_y[o + p.in_w] = vec2<T>(v, v);
}

struct Taps {
  i0: u32,
  i1: u32,
  lam: f32,   // weight of i1; i0 gets 1 - lam
}

// PyTorch's area_pixel_compute_source_index + compute_source_index_and_lambda.
fn taps(dst: u32, scale: f32, size_in: u32) -> Taps {
  let s = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
  let i0 = min(u32(s), size_in - 1u);
  return Taps(i0, min(i0 + 1u, size_in - 1u), clamp(s - f32(i0), 0.0, 1.0));
}

@group(0) @binding(1) var<storage, read> bl_x: array<T>;
@group(0) @binding(2) var<storage, read_write> bl_y: array<T>;

@compute @workgroup_size(WG)
fn resize_bilinear_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
  let r0 = base + ty.i0 * p.in_w;
  let r1 = base + ty.i1 * p.in_w;
  let top = (1.0 - tx.lam) * f32(bl_x[r0 + tx.i0]) + tx.lam * f32(bl_x[r0 + tx.i1]);
  let bottom = (1.0 - tx.lam) * f32(bl_x[r1 + tx.i0]) + tx.lam * f32(bl_x[r1 + tx.i1]);
  bl_y[t] = T((1.0 - ty.lam) * top + ty.lam * bottom);
}

@group(0) @binding(2) var<storage, read_write> bl_y4: array<vec4<T>>;

// One output pixel of rows r0 / r1 (input element offsets) with row weight ly.
fn bilinear_px(r0: u32, r1: u32, ly: f32, ox: u32) -> f32 {
  let tx = taps(ox, p.scale_w, p.in_w);
  let top = (1.0 - tx.lam) * f32(bl_x[r0 + tx.i0]) + tx.lam * f32(bl_x[r0 + tx.i1]);
  let bottom = (1.0 - tx.lam) * f32(bl_x[r1 + tx.i0]) + tx.lam * f32(bl_x[r1 + tx.i1]);
  return (1.0 - ly) * top + ly * bottom;
}

@compute @workgroup_size(WG)
fn resize_bilinear_forward4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  let w4 = p.out_w / 4u;
  let r = t / w4;                   // plane * out_h + oy
  let ox = (t - r * w4) * 4u;
  let oy = r % p.out_h;
  let plane = r / p.out_h;
  let ty = taps(oy, p.scale_h, p.in_h);
  let base = plane * p.in_h * p.in_w;
  let r0 = base + ty.i0 * p.in_w;
  let r1 = base + ty.i1 * p.in_w;
  bl_y4[t] = vec4<T>(vec4<f32>(bilinear_px(r0, r1, ty.lam, ox), bilinear_px(r0, r1, ty.lam, ox + 1u),
                               bilinear_px(r0, r1, ty.lam, ox + 2u), bilinear_px(r0, r1, ty.lam, ox + 3u)));
}

// Weight of input index i in the taps of one output index (both taps may hit i at the
// border, where i0 == i1).
fn tap_weight(tp: Taps, i: u32) -> f32 {
  return select(0.0, 1.0 - tp.lam, tp.i0 == i) + select(0.0, tp.lam, tp.i1 == i);
}

// Outputs whose taps reach input i have src in [i - 1, i + 1), i.e. dst in about
// [(i - 0.5) * out/in - 0.5, (i + 1.5) * out/in - 0.5]; widened by 2 against f32
// rounding (tap_weight is the exact test).
fn window(i: u32, inv_scale: f32, size_out: u32) -> vec2<u32> {
  let lo = max((f32(i) - 0.5) * inv_scale - 2.5, 0.0);
  let hi = clamp((f32(i) + 1.5) * inv_scale + 1.5, 0.0, f32(size_out - 1u));
  return vec2<u32>(u32(lo), u32(hi));
}

@group(0) @binding(1) var<storage, read> bw_dy: array<T>;
@group(0) @binding(2) var<storage, read_write> bw_dx: array<T>;

@compute @workgroup_size(WG)
fn resize_bilinear_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  let ix = t % p.in_w;
  let r = t / p.in_w;
  let iy = r % p.in_h;
  let plane = r / p.in_h;
  let wy = window(iy, p.inv_scale_h, p.out_h);
  let wx = window(ix, p.inv_scale_w, p.out_w);
  let base = plane * p.out_h * p.out_w;
  var acc = 0.0;
  for (var oy = wy.x; oy <= wy.y; oy++) {
    let a = tap_weight(taps(oy, p.scale_h, p.in_h), iy);
    if (a == 0.0) { continue; }
    let row = base + oy * p.out_w;
    var sum = 0.0;
    for (var ox = wx.x; ox <= wx.y; ox++) {
      sum += tap_weight(taps(ox, p.scale_w, p.in_w), ix) * f32(bw_dy[row + ox]);
    }
    acc += a * sum;
  }
  bw_dx[t] = T(acc);
}
