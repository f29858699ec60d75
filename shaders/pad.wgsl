// Window copy with zero fill over stacks of 2-D planes (NCHW viewed as [N*C, H, W]):
//   dst[dst_base + p*dst_plane + (dst_top + y)*dst_w + dst_left + x]
//     = src[src_base + p*src_plane + (src_top + y)*src_w + src_left + x]  if that source
//       row/column lies inside the src plane, else 0
// for p < planes, y < rows, x < cols. With the window covering all of dst and negative
// src_top/src_left this is zero padding (asymmetric pads, e.g. diffusers' Downsample2D
// pad (0,1,0,1)); with positive ones it crops; with dst_top/dst_left it pastes a band
// into a larger tensor (row bands of convolutions past the binding limit).
// Layout: both tensors row-major planes; src_base/dst_base are element offsets inside
// the bound byte ranges (the host binds aligned ranges of planes past the binding limit).
// Mapping: one thread per window element; the 1-D workgroup index is folded into (x, y)
// by the host and recovered as wid.x + wid.y * nwg.x. Precision: a plain copy.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  total: u32,      // planes * rows * cols
  rows: u32,
  cols: u32,
  src_h: u32,
  src_w: u32,
  dst_w: u32,
  src_plane: u32,  // elements per src plane (src_h * src_w)
  dst_plane: u32,
  src_top: i32,    // source row of window row 0 (may be negative: zero padding)
  src_left: i32,
  dst_top: u32,
  dst_left: u32,
  src_base: u32,
  dst_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read_write> dst: array<T>;

@compute @workgroup_size(WG)
fn pad_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.total) { return; }
  let x = i % p.cols;
  let y = (i / p.cols) % p.rows;
  let plane = i / (p.cols * p.rows);
  let sy = i32(y) + p.src_top;
  let sx = i32(x) + p.src_left;
  var v = T(0.0);
  if (sy >= 0 && sy < i32(p.src_h) && sx >= 0 && sx < i32(p.src_w)) {
    v = src[p.src_base + plane * p.src_plane + u32(sy) * p.src_w + u32(sx)];
  }
  dst[p.dst_base + plane * p.dst_plane + (p.dst_top + y) * p.dst_w + p.dst_left + x] = v;
}
