// Batched GEMM with the fused epilogue of matmul.wgsl, tiled through workgroup memory:
// the variant hardware adapters run (gpu/variants.ts 'tiled'; host: nn/matmul.ts).
//
// matmul_tiled_forward: c[b] = act(alpha * op(a[b]) op(b[b]) + bias) + residual [+ c[b]]
//   Same shapes, bindings, params and flags as matmul_forward (see matmul.wgsl):
//   a [batch, M, K] (or [batch, K, M] with TRANS_A), b [batch, K, N] (or [batch, N, K]
//   with TRANS_B), batch strides of 0 broadcast, bias [N] (or [M] with BIAS_ROWS), residual and c [batch, M, N].
// Mapping: a workgroup of 16 x 16 threads computes a BM x 64 tile of one batch matrix,
//   BM = 16 * TM (TM = 4: 64 x 64; TM = 8: 128 x 64, for tall products). Thread
//   (ty, tx) = (lid / 16, lid % 16) owns rows TM * ty .. + TM - 1 and columns
//   4 * tx .. + 3: TM vec4 accumulators in named registers (no array indexed at run
//   time). The k axis advances TK = 16 at a time: every thread loads one vec4 of b and
//   TM / 4 vec4 of a from storage into workgroup memory (a stored k-major, so the inner
//   loop reads TM / 4 + 1 vec4 per 4 * TM fma), then two barriers per k tile.
//   Workgroups are numbered linearly (folded into x, y by the host past 65535) with
//   the row block fastest, as in matmul.wgsl.
// Loads: vec4 from storage where the layout is aligned (A_VEC 1: a is [M, K] with
//   K % 4 == 0; A_VEC 2: a is [K, M] with M % 4 == 0; B_VEC 1: b is [K, N] with
//   N % 4 == 0; B_VEC 2: b is [N, K] with K % 4 == 0), else four scalar loads. Out of
//   range rows, columns and k are stored as 0 in the tiles, so ragged edges need no
//   clamping in the inner loop; their results are never stored.
// Why it is not the software adapter's choice: on lavapipe each workgroup barrier costs
//   about as much as the loads it saves (see matmul.wgsl); GPUs serve workgroup memory
//   at register-like speed and gain the 16x (TM = 4) to 21x (TM = 8) reuse of each load.
// Precision: f32 tiles and f32 fma accumulation for T = f32 and T = f16 (f16 storage
//   only); the epilogue runs in f32 and rounds once on the store.

alias T = f32;

// #include "activation.wgsl"

// Rows per thread, 4 or 8 (the host picks 8 for tall products).
override TM: u32 = 4u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// The bias is [M], one value per output row (conv2d's 'gemm' variant: rows are output
// channels), instead of [N].
override BIAS_ROWS: bool = false;
override HAS_RESIDUAL: bool = false;
override ACCUMULATE: bool = false;
override A_VEC: u32 = 0u;
override B_VEC: u32 = 0u;

const THREADS: u32 = 256u;
const TX: u32 = 16u;   // threads across the 64 columns (4 each)
const TK: u32 = 16u;   // k values per workgroup-memory tile
const BN4: u32 = 16u;  // vec4 columns per tile row (64 / 4)
// vec4 rows per tile column: BM / 4.
override BM4: u32 = 4u * TM;

// Identical to matmul.wgsl's, so the host packs the same params for both variants.
struct MatmulParams {
  M: u32,
  N: u32,
  K: u32,
  batch: u32,
  a_batch: u32,
  b_batch: u32,
  blocks_m: u32,  // ceil(M / BM)
  blocks_n: u32,  // ceil(N / 64)
  alpha: f32,
}

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> b: array<T>;
@group(0) @binding(4) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(5) var<storage, read> bias: array<T>;
@group(0) @binding(6) var<storage, read> residual: array<T>;
@group(0) @binding(7) var<storage, read_write> c: array<T>;

// as_t[k * BM4 + q] = a rows 4q .. 4q+3 of the tile at k; bs_t[k * BN4 + q] = b columns
// 4q .. 4q+3 at k. At most 16 * 32 + 16 * 16 vec4 = 12 KiB (TM = 8).
var<workgroup> as_t: array<vec4<f32>, TK * BM4>;
var<workgroup> bs_t: array<vec4<f32>, TK * BN4>;

// Element (m, k) of op(a), 0 outside the matrix; `base` is the batch matrix's start.
fn a_at(base: u32, m: u32, k: u32) -> f32 {
  if (m >= mp.M || k >= mp.K) { return 0.0; }
  return f32(a[base + select(m * mp.K + k, k * mp.M + m, TRANS_A)]);
}

// Element (k, n) of op(b), 0 outside the matrix.
fn b_at(base: u32, k: u32, n: u32) -> f32 {
  if (k >= mp.K || n >= mp.N) { return 0.0; }
  return f32(b[base + select(k * mp.N + n, n * mp.K + k, TRANS_B)]);
}

// Stores a[m0 .. m0 + BM, k0 .. k0 + TK] into as_t (k-major). Each thread moves TM / 4
// vec4 runs along a's contiguous axis, so neighbouring threads read neighbouring bytes.
fn load_a(lid: u32, base: u32, m0: u32, k0: u32) {
  for (var p = 0u; p < TM / 4u; p++) {
    let idx = lid + THREADS * p;
    if (TRANS_A) {
      // a is [K, M]: run along m. idx -> (k row r, vec4 column q).
      let r = idx / BM4;
      let q = idx % BM4;
      let k = k0 + r;
      let m = m0 + 4u * q;
      var v = vec4<f32>(0.0);
      if (A_VEC == 2u) {
        if (k < mp.K && m < mp.M) { v = vec4<f32>(a4[(base + k * mp.M + m) / 4u]); }
      } else {
        v = vec4<f32>(a_at(base, m, k), a_at(base, m + 1u, k), a_at(base, m + 2u, k), a_at(base, m + 3u, k));
      }
      as_t[r * BM4 + q] = v;
    } else {
      // a is [M, K]: run along k. idx -> (tile row r, k quad j), stored transposed.
      let r = idx / 4u;
      let j = idx % 4u;
      let m = m0 + r;
      let k = k0 + 4u * j;
      var v = vec4<f32>(0.0);
      if (A_VEC == 1u) {
        if (m < mp.M && k < mp.K) { v = vec4<f32>(a4[(base + m * mp.K + k) / 4u]); }
      } else {
        v = vec4<f32>(a_at(base, m, k), a_at(base, m, k + 1u), a_at(base, m, k + 2u), a_at(base, m, k + 3u));
      }
      let at = 4u * j * BM4 + r / 4u;
      let e = r % 4u;
      as_t[at][e] = v.x;
      as_t[at + BM4][e] = v.y;
      as_t[at + 2u * BM4][e] = v.z;
      as_t[at + 3u * BM4][e] = v.w;
    }
  }
}

// Stores b[k0 .. k0 + TK, n0 .. n0 + 64] into bs_t: one vec4 run per thread.
fn load_b(lid: u32, base: u32, n0: u32, k0: u32) {
  if (TRANS_B) {
    // b is [N, K]: run along k. lid -> (tile column r, k quad j), stored transposed.
    let r = lid / 4u;
    let j = lid % 4u;
    let n = n0 + r;
    let k = k0 + 4u * j;
    var v = vec4<f32>(0.0);
    if (B_VEC == 2u) {
      if (n < mp.N && k < mp.K) { v = vec4<f32>(b4[(base + n * mp.K + k) / 4u]); }
    } else {
      v = vec4<f32>(b_at(base, k, n), b_at(base, k + 1u, n), b_at(base, k + 2u, n), b_at(base, k + 3u, n));
    }
    let at = 4u * j * BN4 + r / 4u;
    let e = r % 4u;
    bs_t[at][e] = v.x;
    bs_t[at + BN4][e] = v.y;
    bs_t[at + 2u * BN4][e] = v.z;
    bs_t[at + 3u * BN4][e] = v.w;
  } else {
    // b is [K, N]: run along n. lid -> (k row r, vec4 column q).
    let r = lid / BN4;
    let q = lid % BN4;
    let k = k0 + r;
    let n = n0 + 4u * q;
    var v = vec4<f32>(0.0);
    if (B_VEC == 1u) {
      if (k < mp.K && n < mp.N) { v = vec4<f32>(b4[(base + k * mp.N + n) / 4u]); }
    } else {
      v = vec4<f32>(b_at(base, k, n), b_at(base, k, n + 1u), b_at(base, k, n + 2u), b_at(base, k, n + 3u));
    }
    bs_t[r * BN4 + q] = v;
  }
}

// The epilogue for one row of the thread's register tile.
fn store_row(c_base: u32, m: u32, n0: u32, acc: vec4<f32>) {
  if (m >= mp.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + j;
    if (n >= mp.N) { return; }
    let at = c_base + m * mp.N + n;
    var v = mp.alpha * acc[j];
    if (HAS_BIAS) { v += f32(bias[select(n, m, BIAS_ROWS)]); }
    v = act(v);
    if (HAS_RESIDUAL) { v += f32(residual[at]); }
    if (ACCUMULATE) { v += f32(c[at]); }
    c[at] = T(v);
  }
}

@compute @workgroup_size(THREADS)
fn matmul_tiled_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + wid.y * nwg.x;
  let mb = lin % mp.blocks_m;
  let rest = lin / mp.blocks_m;
  let nb = rest % mp.blocks_n;
  let bi = rest / mp.blocks_n;
  if (bi >= mp.batch) { return; }
  let m0 = mb * 4u * BM4;
  let n0 = nb * 4u * BN4;
  let a_base = bi * mp.a_batch;
  let b_base = bi * mp.b_batch;
  let tx = lid % TX;
  let ty = lid / TX;
  // The thread's first vec4 row of as_t (TM / 4 consecutive ones).
  let q = ty * (TM / 4u);

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  var acc4 = vec4<f32>(0.0);
  var acc5 = vec4<f32>(0.0);
  var acc6 = vec4<f32>(0.0);
  var acc7 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < mp.K; k0 += TK) {
    load_a(lid, a_base, m0, k0);
    load_b(lid, b_base, n0, k0);
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let bv = bs_t[k * BN4 + tx];
      let lo = as_t[k * BM4 + q];
      acc0 = fma(vec4<f32>(lo.x), bv, acc0);
      acc1 = fma(vec4<f32>(lo.y), bv, acc1);
      acc2 = fma(vec4<f32>(lo.z), bv, acc2);
      acc3 = fma(vec4<f32>(lo.w), bv, acc3);
      if (TM == 8u) {
        let hi = as_t[k * BM4 + q + 1u];
        acc4 = fma(vec4<f32>(hi.x), bv, acc4);
        acc5 = fma(vec4<f32>(hi.y), bv, acc5);
        acc6 = fma(vec4<f32>(hi.z), bv, acc6);
        acc7 = fma(vec4<f32>(hi.w), bv, acc7);
      }
    }
    workgroupBarrier();
  }

  let c_base = bi * mp.M * mp.N;
  let m = m0 + TM * ty;
  let n = n0 + 4u * tx;
  store_row(c_base, m, n, acc0);
  store_row(c_base, m + 1u, n, acc1);
  store_row(c_base, m + 2u, n, acc2);
  store_row(c_base, m + 3u, n, acc3);
  if (TM == 8u) {
    store_row(c_base, m + 4u, n, acc4);
    store_row(c_base, m + 5u, n, acc5);
    store_row(c_base, m + 6u, n, acc6);
    store_row(c_base, m + 7u, n, acc7);
  }
}
