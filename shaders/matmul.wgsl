// Batched GEMM with a fused epilogue, and the column sums used for a linear layer's
// bias gradient.
//
// matmul_forward: c[b] = act(alpha * op(a[b]) op(b[b]) + bias) + residual [+ c[b]]
//   a: [batch, M, K] row-major, or [batch, K, M] with TRANS_A
//   b: [batch, K, N] row-major, or [batch, N, K] with TRANS_B; a batch stride of 0
//      broadcasts one matrix over the batch (the host sets a_batch / b_batch)
//   bias: [N], or [M] with BIAS_ROWS; residual and c: [batch, M, N]
// Mapping: one workgroup computes an RM x (4 * WG) tile of one batch matrix; thread
// `lid` owns the RM rows of the tile and the 4 adjacent columns 4 * lid .. 4 * lid + 3,
// so its register tile is RM x 4 = 8 vec4 accumulators. Workgroups are numbered
// linearly (folded into x, y by the host past 65535) with the row block fastest, so
// neighbouring workgroups read the same columns of b while it is cached.
// The a operand is the same for every thread of a workgroup (its address depends only
// on the workgroup and k): GPUs serve it from the broadcast path. lavapipe does not
// prove it uniform (its scalar loads need addresses built from constants, see
// docs/PERFORMANCE.md "Attention kernels"), so it is a per-lane gather whose lanes all
// hit the same cache line. The tile is tall in rows per thread rather than staged
// through workgroup memory because a barrier costs more there than those gathers:
// each a element is read once per thread per k step and reused for 4 columns, each b
// element once per thread and reused for RM rows, with no barriers. On lavapipe
// (1024^3 f32) this runs at 2-2.5x tfjs's 32x32 workgroup-memory tiles; per-lane loads
// dominate, hence the vec4 views of a and b (A_VEC, B_VEC: about 1.5x over scalar loads)
// where the layout is aligned.
// Out-of-range rows and columns of ragged tiles clamp their load indices to the last
// valid row/column (loads stay in bounds and the inner loop has no branches); their
// results are never stored.
// Precision: products accumulate in f32 with fma for both T = f32 and T = f16 (f16
// storage only); the epilogue runs in f32 and rounds once on the store.
//
// matmul_backward_bias: dbias[n] (+)= sum over rows r of dy[r, n]; one thread per
// column, summed in chunks of 64 rows then across chunks so the rounding error grows
// with 64 + R / 64 rather than R.

alias T = f32;

// #include "activation.wgsl"

override WG: u32 = 64u;

// Rows per thread: a constant (not an override) so the accumulators are a fixed-size
// register array that the compiler unrolls.
const RM: u32 = 8u;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// The bias is [M], one value per output row (conv2d's 'gemm' variant: rows are output
// channels), instead of [N].
override BIAS_ROWS: bool = false;
override HAS_RESIDUAL: bool = false;
override ACCUMULATE: bool = false;
// How a is loaded (see a_tile): 0 scalar, 1 vec4 along k, 2 vec4 along m (TRANS_A).
override A_VEC: u32 = 0u;
// How b is loaded (see b_rows): 0 scalar, 1 vec4 along n, 2 vec4 along k.
override B_VEC: u32 = 0u;

// Named apart from activation.wgsl's elementwise `Params`/`p`, which share binding 0
// but are never used by these entry points.
struct MatmulParams {
  M: u32,
  N: u32,
  K: u32,
  batch: u32,
  a_batch: u32,   // elements between consecutive a matrices (0 = broadcast)
  b_batch: u32,   // elements between consecutive b matrices (0 = broadcast)
  blocks_m: u32,  // ceil(M / RM)
  blocks_n: u32,  // ceil(N / (4 * WG))
  alpha: f32,
}

@group(0) @binding(0) var<uniform> mp: MatmulParams;
// a and b are each bound twice, as scalars and as vec4 (A_VEC / B_VEC pick the view).
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> b: array<T>;
@group(0) @binding(4) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(5) var<storage, read> bias: array<T>;
@group(0) @binding(6) var<storage, read> residual: array<T>;
@group(0) @binding(7) var<storage, read_write> c: array<T>;

// a[row, k .. k+3] for the row starting at `at`, from one aligned vec4 when a is
// [M, K] with K % 4 == 0 (A_VEC 1), else from four scalar loads.
fn a_cols(at: u32, k: u32, a_k: u32) -> vec4<f32> {
  if (A_VEC == 1u) { return vec4<f32>(a4[(at + k) / 4u]); }
  let i = at + k * a_k;
  return vec4<f32>(f32(a[i]), f32(a[i + a_k]), f32(a[i + 2u * a_k]), f32(a[i + 3u * a_k]));
}

// a[m0 + i, k .. k+3] for the RM rows of the tile (one vec4 per row). These loads are
// uniform over the workgroup, so their count matters less than b's, but it still
// shows: A_VEC 2 (a is [K, M] with M % 4 == 0) reads rows 0-3 and 4-7 of each k as
// two aligned vec4 starting at `lo` and `hi` (hi is clamped to the last 4 rows) and
// transposes them, 8 loads instead of 32.
fn a_tile(rows: array<u32, RM>, lo: u32, hi: u32, k: u32, a_k: u32) -> array<vec4<f32>, RM> {
  var t: array<vec4<f32>, RM>;
  if (A_VEC == 2u) {
    for (var h = 0u; h < 2u; h++) {
      let at = select(lo, hi, h == 1u) + k * a_k;
      let q = transpose(mat4x4<f32>(vec4<f32>(a4[at / 4u]), vec4<f32>(a4[(at + a_k) / 4u]),
                                    vec4<f32>(a4[(at + 2u * a_k) / 4u]), vec4<f32>(a4[(at + 3u * a_k) / 4u])));
      for (var j = 0u; j < 4u; j++) { t[4u * h + j] = q[j]; }
    }
    return t;
  }
  for (var i = 0u; i < RM; i++) { t[i] = a_cols(rows[i], k, a_k); }
  return t;
}

// One row of the thread's b tile from 4 scalar loads (any shape, any transpose).
fn b_row(at: u32, cols: vec4<u32>) -> vec4<f32> {
  return vec4<f32>(f32(b[at + cols.x]), f32(b[at + cols.y]), f32(b[at + cols.z]), f32(b[at + cols.w]));
}

// Rows k .. k+3 of the thread's b tile as the columns of a matrix. Per-lane loads are
// the expensive ones (gathers on CPU drivers), so 4 vec4 loads beat 16 scalar ones:
// B_VEC 1: b is [K, N] with N % 4 == 0, b_col.x is 4-aligned: one vec4 per row;
// B_VEC 2: b is [N, K] with K % 4 == 0: one vec4 of 4 k values per column, transposed.
fn b_rows(k: u32, b_k: u32, b_col: vec4<u32>) -> mat4x4<f32> {
  if (B_VEC == 1u) {
    let at = (k * b_k + b_col.x) / 4u;
    let row = b_k / 4u;
    return mat4x4<f32>(vec4<f32>(b4[at]), vec4<f32>(b4[at + row]), vec4<f32>(b4[at + 2u * row]),
                       vec4<f32>(b4[at + 3u * row]));
  }
  if (B_VEC == 2u) {
    return transpose(mat4x4<f32>(vec4<f32>(b4[(b_col.x + k) / 4u]), vec4<f32>(b4[(b_col.y + k) / 4u]),
                                 vec4<f32>(b4[(b_col.z + k) / 4u]), vec4<f32>(b4[(b_col.w + k) / 4u])));
  }
  return mat4x4<f32>(b_row(k * b_k, b_col), b_row((k + 1u) * b_k, b_col), b_row((k + 2u) * b_k, b_col),
                     b_row((k + 3u) * b_k, b_col));
}

@compute @workgroup_size(WG)
fn matmul_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + wid.y * nwg.x;
  let mb = lin % mp.blocks_m;
  let rest = lin / mp.blocks_m;
  let nb = rest % mp.blocks_n;
  let bi = rest / mp.blocks_n;
  if (bi >= mp.batch) { return; }
  let M = mp.M;
  let N = mp.N;
  let K = mp.K;
  let m0 = mb * RM;
  let n0 = (nb * WG + lid) * 4u;

  // Element (m, k) of a is at a_row[m] + k * a_k; element (k, n) of b at k * b_k + b_col[n].
  let a_k = select(1u, M, TRANS_A);
  let b_k = select(N, 1u, TRANS_B);
  var a_row: array<u32, RM>;
  for (var i = 0u; i < RM; i++) {
    let m = min(m0 + i, M - 1u);
    a_row[i] = bi * mp.a_batch + select(m * K, m, TRANS_A);
  }
  let a_lo = bi * mp.a_batch + m0;
  let a_hi = bi * mp.a_batch + min(m0 + 4u, M - 4u);
  // B_VEC 1 clamps the whole vec4 (N >= 4 there) so its first column stays 4-aligned.
  let n_first = select(n0, min(n0, N - 4u), B_VEC == 1u);
  let n_clamped = min(vec4<u32>(n_first, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(N - 1u));
  let b_col = bi * mp.b_batch + select(n_clamped, n_clamped * K, TRANS_B);

  var acc: array<vec4<f32>, RM>;
  for (var i = 0u; i < RM; i++) { acc[i] = vec4<f32>(0.0); }
  // Four k steps per iteration: four b rows in flight and 4 * RM fma per loop test.
  let k4 = K & ~3u;
  var k = 0u;
  for (; k < k4; k += 4u) {
    let bt = b_rows(k, b_k, b_col);
    let b0 = bt[0];
    let b1 = bt[1];
    let b2 = bt[2];
    let b3 = bt[3];
    let at = a_tile(a_row, a_lo, a_hi, k, a_k);
    for (var i = 0u; i < RM; i++) {
      let av = at[i];
      var s = fma(vec4<f32>(av.x), b0, acc[i]);
      s = fma(vec4<f32>(av.y), b1, s);
      s = fma(vec4<f32>(av.z), b2, s);
      acc[i] = fma(vec4<f32>(av.w), b3, s);
    }
  }
  for (; k < K; k++) {
    let bk = b_row(k * b_k, b_col);
    for (var i = 0u; i < RM; i++) {
      acc[i] = fma(vec4<f32>(f32(a[a_row[i] + k * a_k])), bk, acc[i]);
    }
  }

  let c_base = bi * M * N;
  for (var i = 0u; i < RM; i++) {
    let m = m0 + i;
    if (m >= M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n >= N) { break; }
      let at = c_base + m * N + n;
      var v = mp.alpha * acc[i][j];
      if (HAS_BIAS) { v += f32(bias[select(n, m, BIAS_ROWS)]); }
      v = act(v);
      if (HAS_RESIDUAL) { v += f32(residual[at]); }
      if (ACCUMULATE) { v += f32(c[at]); }
      c[at] = T(v);
    }
  }
}

// Column sums: M = rows of dy, N = columns; a = dy [M, N].
@group(0) @binding(2) var<storage, read_write> dbias: array<T>;

@compute @workgroup_size(WG)
fn matmul_backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * nwg.x) * WG + lid;
  if (n >= mp.N) { return; }
  var total = 0.0;
  for (var r0 = 0u; r0 < mp.M; r0 += 64u) {
    var chunk = 0.0;
    let r1 = min(r0 + 64u, mp.M);
    for (var r = r0; r < r1; r++) { chunk += f32(a[r * mp.N + n]); }
    total += chunk;
  }
  if (ACCUMULATE) { total += f32(dbias[n]); }
  dbias[n] = T(total);
}
