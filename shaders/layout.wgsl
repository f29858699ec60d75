// Data movement between contiguous tensors: box copies (concat, slice, copyInto) and
// materialised permutes.
// Copy layout: both tensors are viewed as [outer, mid, inner] around the copy axis; the
// box [outer, len, inner] is read at src_start along src's axis and written at dst_start
// along dst's. Permute layout: the output index is decomposed over the output dims
// (innermost last, at most 6, padded in front with 1) and each digit is multiplied by the
// input stride of that dim; the host has already merged dims that stay adjacent.
// Mapping: one thread per element, or per 4 elements in the vec4 entries (used when the
// innermost run is a multiple of 4, so every offset is too); the 1-D workgroup index is
// folded into (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Permutes that swap the two innermost (merged) dims, such as NCHW <-> NHWC, are batched
// 2-D transposes: a gather would read with a stride on every element, so when both
// sides are multiples of 4 a thread reads a 4 x 4 block as four vec4 rows and writes it
// as four vec4 columns, in registers. On lavapipe this ran 2-3x faster than a 32 x 32
// workgroup-memory tile (whose barriers are costly there) and 5x faster than the gather.
// Precision: loads and stores only. f32, i32 and u32 tensors all run the f32 variant
// (a plain load/store keeps the bits); f16 runs the f16 variant.

alias T = f32;

override WG: u32 = 256u;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

struct CopyParams {
  n: u32,          // elements (vec4s) in the box: outer * len * inner
  len: u32,        // box extent along the axis
  inner: u32,      // elements (vec4s) after the axis
  src_mid: u32,    // src extent along the axis
  src_start: u32,
  dst_mid: u32,    // dst extent along the axis
  dst_start: u32,
}

@group(0) @binding(0) var<uniform> cp: CopyParams;

fn copy_offsets(t: u32) -> vec2<u32> {
  let i = t % cp.inner;
  let r = t / cp.inner;
  let m = r % cp.len;
  let o = r / cp.len;
  return vec2<u32>((o * cp.src_mid + cp.src_start + m) * cp.inner + i,
                   (o * cp.dst_mid + cp.dst_start + m) * cp.inner + i);
}

@group(0) @binding(1) var<storage, read> copy_src: array<T>;
@group(0) @binding(2) var<storage, read_write> copy_dst: array<T>;

@compute @workgroup_size(WG)
fn layout_copy_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= cp.n) { return; }
  let at = copy_offsets(t);
  copy_dst[at.y] = copy_src[at.x];
}

@group(0) @binding(1) var<storage, read> copy_src4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> copy_dst4: array<vec4<T>>;

@compute @workgroup_size(WG)
fn layout_copy_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= cp.n) { return; }
  let at = copy_offsets(t);
  copy_dst4[at.y] = copy_src4[at.x];
}

struct PermuteParams {
  n: u32,                         // output elements (vec4s)
  pad0: u32,
  pad1: u32,
  pad2: u32,
  dims: array<vec4<u32>, 2>,      // output dims, innermost at index 5, padded with 1 in front
  strides: array<vec4<u32>, 2>,   // input stride (elements or vec4s) of each output dim
}

@group(0) @binding(0) var<uniform> pp: PermuteParams;

fn permute_source(t: u32) -> u32 {
  var rem = t;
  var at = 0u;
  for (var d = 5; d >= 0; d--) {
    let size = pp.dims[d / 4][d % 4];
    at += (rem % size) * pp.strides[d / 4][d % 4];
    rem = rem / size;
  }
  return at;
}

@group(0) @binding(1) var<storage, read> perm_src: array<T>;
@group(0) @binding(2) var<storage, read_write> perm_dst: array<T>;

@compute @workgroup_size(WG)
fn layout_permute_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= pp.n) { return; }
  perm_dst[t] = perm_src[permute_source(t)];
}

@group(0) @binding(1) var<storage, read> perm_src4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> perm_dst4: array<vec4<T>>;

@compute @workgroup_size(WG)
fn layout_permute_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= pp.n) { return; }
  perm_dst4[t] = perm_src4[permute_source(t)];
}

struct TransposeParams {
  p: u32,        // output [B, P, Q] = input [B, Q, P] transposed per batch; P, Q multiples of 4
  q: u32,
  blocks: u32,   // B * (P / 4) * (Q / 4)
}

@group(0) @binding(0) var<uniform> tp: TransposeParams;
@group(0) @binding(1) var<storage, read> tr_src4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> tr_dst4: array<vec4<T>>;

// One thread per 4 x 4 block; neighbouring threads take neighbouring blocks along q, so
// each of the four output rows is written contiguously across the workgroup.
@compute @workgroup_size(WG)
fn layout_transpose_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let t = thread_index(wid, nwg, lid);
  if (t >= tp.blocks) { return; }
  let q4 = tp.q / 4u;
  let p4 = tp.p / 4u;
  let bq = t % q4;
  let r = t / q4;
  let bp = r % p4;
  let base = (r / p4) * p4 * tp.q;   // vec4 units: batch * P * Q / 4
  let a0 = tr_src4[base + (4u * bq) * p4 + bp];
  let a1 = tr_src4[base + (4u * bq + 1u) * p4 + bp];
  let a2 = tr_src4[base + (4u * bq + 2u) * p4 + bp];
  let a3 = tr_src4[base + (4u * bq + 3u) * p4 + bp];
  tr_dst4[base + (4u * bp) * q4 + bq] = vec4<T>(a0.x, a1.x, a2.x, a3.x);
  tr_dst4[base + (4u * bp + 1u) * q4 + bq] = vec4<T>(a0.y, a1.y, a2.y, a3.y);
  tr_dst4[base + (4u * bp + 2u) * q4 + bq] = vec4<T>(a0.z, a1.z, a2.z, a3.z);
  tr_dst4[base + (4u * bp + 3u) * q4 + bq] = vec4<T>(a0.w, a1.w, a2.w, a3.w);
}
