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
// 2-D transposes: a gather would read with a stride on every element, so a 32 x 8
// workgroup moves a 32 x 32 tile through workgroup memory, reading rows and writing
// columns contiguously (the tile row is padded to 33 against bank conflicts).
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
  p: u32,        // output [B, P, Q] = input [B, Q, P] transposed per batch
  q: u32,
  tiles_p: u32,  // ceil(P / 32)
  tiles_q: u32,
  tiles: u32,    // B * tiles_p * tiles_q
}

@group(0) @binding(0) var<uniform> tp: TransposeParams;
@group(0) @binding(1) var<storage, read> tr_src: array<T>;
@group(0) @binding(2) var<storage, read_write> tr_dst: array<T>;

const TILE: u32 = 32u;
var<workgroup> tile: array<T, 1056>;   // TILE x (TILE + 1)

@compute @workgroup_size(32, 8)
fn layout_transpose_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= tp.tiles) { return; }   // uniform across the workgroup
  let tq = w % tp.tiles_q;
  let r = w / tp.tiles_q;
  let p0 = (r % tp.tiles_p) * TILE;
  let q0 = tq * TILE;
  let base = (r / tp.tiles_p) * tp.p * tp.q;
  for (var k = 0u; k < TILE; k += 8u) {
    let q = q0 + lid.y + k;
    let p = p0 + lid.x;
    if (q < tp.q && p < tp.p) { tile[(lid.y + k) * (TILE + 1u) + lid.x] = tr_src[base + q * tp.p + p]; }
  }
  workgroupBarrier();
  for (var k = 0u; k < TILE; k += 8u) {
    let p = p0 + lid.y + k;
    let q = q0 + lid.x;
    if (p < tp.p && q < tp.q) { tr_dst[base + p * tp.q + q] = tile[lid.x * (TILE + 1u) + lid.y + k]; }
  }
}
