// paste_masks_in_image (torchvision 0.14.1, detection/roi_heads.py): each M x M mask,
// zero-padded by `pad` on every side, is resized bilinearly (F.interpolate, align_corners
// False) to its integer paste box (w = max(x1 - x0 + 1, 1), h likewise) and written into
// a zero H x W canvas over rows [max(y0, 0), min(y1 + 1, H)) and columns
// [max(x0, 0), min(x1 + 1, W)); every other pixel is exactly 0.
// Layout: masks [N, M, M], canvases [N, H, W]; the host binds a run of whole masks and
// canvases per dispatch (canvases past maxStorageBufferBindingSize take several), and
// `boxes` for all N: per mask (x0, y0, x1, y1) as i32, then w, h, bits(scale_w),
// bits(scale_h), with scale = f32((M + 2 pad) / size) as torch's upsample computes it.
// Mapping: one thread per canvas pixel of the run; the 1-D workgroup index is folded into
// (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: source coordinates in f32 exactly as PyTorch's upsample_bilinear2d
// (src = max(scale * (dst + 0.5) - 0.5, 0), i1 = min(i0 + 1, size - 1)); the padded
// border reads 0; interpolation in f32, rows first then columns as torch's separable loop.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,       // canvas pixels in this run
  h: u32,
  w: u32,
  m: u32,       // mask size M
  pad: u32,
  k0: u32,      // first mask of this run (index into boxes)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> masks: array<T>;
@group(0) @binding(2) var<storage, read> boxes: array<u32>;
@group(0) @binding(3) var<storage, read_write> canvas: array<T>;

struct Taps {
  i0: u32,
  i1: u32,
  lam: f32,
}

fn taps(dst: u32, scale: f32, size_in: u32) -> Taps {
  let s = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
  let i0 = min(u32(s), size_in - 1u);
  return Taps(i0, min(i0 + 1u, size_in - 1u), clamp(s - f32(i0), 0.0, 1.0));
}

// The padded mask at (i, j): 0 on the border of width pad.
fn padded(base: u32, i: u32, j: u32) -> f32 {
  if (i < p.pad || j < p.pad || i >= p.pad + p.m || j >= p.pad + p.m) { return 0.0; }
  return f32(masks[base + (i - p.pad) * p.m + (j - p.pad)]);
}

@compute @workgroup_size(WG)
fn mask_paste_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.n) { return; }
  let x = i32(t % p.w);
  let r = t / p.w;
  let y = i32(r % p.h);
  let k = r / p.h;
  let b = 8u * (p.k0 + k);
  let x0 = bitcast<i32>(boxes[b]);
  let y0 = bitcast<i32>(boxes[b + 1u]);
  let x1 = bitcast<i32>(boxes[b + 2u]);
  let y1 = bitcast<i32>(boxes[b + 3u]);
  let inside = y >= max(y0, 0) && y < min(y1 + 1, i32(p.h)) && x >= max(x0, 0) && x < min(x1 + 1, i32(p.w));
  if (!inside) {
    canvas[t] = T(0.0);
    return;
  }
  let size_in = p.m + 2u * p.pad;
  let ty = taps(u32(y - y0), bitcast<f32>(boxes[b + 7u]), size_in);
  let tx = taps(u32(x - x0), bitcast<f32>(boxes[b + 6u]), size_in);
  let base = k * p.m * p.m;
  let top = (1.0 - tx.lam) * padded(base, ty.i0, tx.i0) + tx.lam * padded(base, ty.i0, tx.i1);
  let bottom = (1.0 - tx.lam) * padded(base, ty.i1, tx.i0) + tx.lam * padded(base, ty.i1, tx.i1);
  canvas[t] = T((1.0 - ty.lam) * top + ty.lam * bottom);
}
