// Reductions over one axis of x viewed as [outer, n, inner]: out[o, j] = post *
// REDUCE_{k<n} x[o, k, j], where REDUCE is sum (OP 0; post = 1 for sum, 1/n for mean)
// or max (OP 1; post = 1).
// reduce_forward (inner == 1, rows are contiguous): one workgroup per output; WG
//   threads stride over the row, then a tree reduction in workgroup memory.
// reduce_forward_strided (inner > 1): a workgroup covers TX consecutive outputs of one
//   o; its WG = TX * TY threads are TX columns (adjacent j, so loads coalesce) times
//   TY slices of k, merged by a tree reduction over the TY slices.
// The 1-D workgroup index is folded into (x, y) by the host past 65535 and recovered
// as wid.x + wid.y * nwg.x.
// Precision: f32 accumulation; each thread sums a strided subset, then the tree adds
// partial sums of similar size, so the error grows like log(n) rather than n.

alias T = f32;

override OP: u32 = 0u;
override WG: u32 = 256u;
override TX: u32 = 16u;

struct Params {
  outer: u32,
  n: u32,
  inner: u32,
  post: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

var<workgroup> red: array<f32, WG>;

const NEG_MAX: f32 = -3.0e38;

fn identity() -> f32 {
  if (OP == 1u) { return NEG_MAX; }
  return 0.0;
}

fn combine(a: f32, b: f32) -> f32 {
  if (OP == 1u) { return max(a, b); }
  return a + b;
}

@compute @workgroup_size(WG)
fn reduce_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.outer) { return; }
  let base = row * p.n;
  var acc = identity();
  for (var k = lid; k < p.n; k += WG) {
    acc = combine(acc, f32(x[base + k]));
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      acc = combine(acc, red[lid + half]);
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  if (lid == 0u) { y[row] = T(acc * p.post); }
}

@compute @workgroup_size(WG)
fn reduce_forward_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let tiles = (p.inner + TX - 1u) / TX;
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.outer * tiles) { return; }
  let o = g / tiles;
  let tx = lid % TX;
  let ty = lid / TX;
  let j = (g % tiles) * TX + tx;
  let ty_count = WG / TX;
  var acc = identity();
  if (j < p.inner) {
    let base = o * p.n * p.inner + j;
    for (var k = ty; k < p.n; k += ty_count) {
      acc = combine(acc, f32(x[base + k * p.inner]));
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var half = ty_count / 2u; half > 0u; half /= 2u) {
    if (ty < half) {
      acc = combine(acc, red[lid + half * TX]);
      red[lid] = acc;
    }
    workgroupBarrier();
  }
  if (ty == 0u && j < p.inner) { y[o * p.inner + j] = T(acc * p.post); }
}
