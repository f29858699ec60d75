// Non-overlapping patch unfold: F.unfold(x, kernel_size=p, stride=p).transpose(1, 2),
// turning an NCHW feature map into patch tokens (the grounding decoder's 4x4 patches of F),
// and its backward. Both directions are the same bijection read from opposite ends.
// Layout: x [N, C, H, W] contiguous; y [N, L, C*p*p] with L = (H/p) * (W/p),
// row l = py * (W/p) + px, column = c*p*p + ky*p + kx, so
// y[n, l, col] = x[n, c, py*p + ky, px*p + kx].
// Mapping: one thread per written element (y in the forward, dx in the backward), so
// writes are contiguous; when p is a multiple of 4 a thread moves 4 elements of one
// patch row, which are contiguous on both sides. The 1-D workgroup index is folded into
// (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: loads and stores only.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,   // threads: written elements, or vec4s in the vec4 entries
  c: u32,
  h: u32,
  w: u32,
  p: u32,   // patch size (divides h and w)
}

@group(0) @binding(0) var<uniform> p: Params;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

// x index of token element t.
fn unfold_source(t: u32) -> u32 {
  let pp = p.p * p.p;
  let cols = p.c * pp;
  let wp = p.w / p.p;
  let tokens = (p.h / p.p) * wp;
  let col = t % cols;
  let r = t / cols;
  let l = r % tokens;
  let b = r / tokens;
  let c = col / pp;
  let k = col % pp;
  let y = (l / wp) * p.p + k / p.p;
  let x = (l % wp) * p.p + k % p.p;
  return ((b * p.c + c) * p.h + y) * p.w + x;
}

// Token index of image element t (the inverse map).
fn fold_source(t: u32) -> u32 {
  let x = t % p.w;
  let r = t / p.w;
  let y = r % p.h;
  let r2 = r / p.h;
  let c = r2 % p.c;
  let b = r2 / p.c;
  let wp = p.w / p.p;
  let tokens = (p.h / p.p) * wp;
  let l = (y / p.p) * wp + x / p.p;
  let col = c * p.p * p.p + (y % p.p) * p.p + x % p.p;
  return (b * tokens + l) * p.c * p.p * p.p + col;
}

@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read_write> dst: array<T>;

@compute @workgroup_size(WG)
fn unfold_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  dst[t] = src[unfold_source(t)];
}

@compute @workgroup_size(WG)
fn unfold_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  dst[t] = src[fold_source(t)];
}

@group(0) @binding(1) var<storage, read> src4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> dst4: array<vec4<T>>;

@compute @workgroup_size(WG)
fn unfold_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  dst4[t] = src4[unfold_source(4u * t) / 4u];
}

@compute @workgroup_size(WG)
fn unfold_backward_input_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= p.n) { return; }
  dst4[t] = src4[fold_source(4u * t) / 4u];
}
