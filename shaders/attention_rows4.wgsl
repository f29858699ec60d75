// Fused multi-head attention forward, four query rows per thread: the variant CPU
// drivers (lavapipe) run (gpu/variants.ts attention 'rows4'; host: nn/attention.ts).
// Same math, layout, Params, bindings and lse as attention_forward (attention.wgsl):
//   out[b, i, h*D + d] = sum_j softmax_j(scale * q_i . k_j) v[b, j, h*D + d]
//   lse[b, h, i]       = log sum_j exp(scale * q_i . k_j)
// with keys j > i masked when CAUSAL; the [Lq, Lk] score matrix is never stored.
// Mapping: one workgroup per (b, h, block of 4 * WG query rows), blocks fastest; thread
//   lid owns rows block_start + r * WG + lid for r = 0..3 (suffixes _a.._d), each with its q
//   (pre-scaled) and output accumulator in registers. Keys go TK at a time through
//   workgroup memory (K and V tiles, each element loaded once per workgroup), and the
//   thread walks the tile with an online softmax per row, as attention_forward does.
// Why four rows: a CPU driver runs every workgroup-memory read whose address is not a
//   compile-time constant as one load per lane (lavapipe's gallivm takes its scalar,
//   broadcast path only for addresses built from constants: not from workgroup ids or
//   loop counters), so in attention_forward, where each K / V element read feeds one
//   4-wide dot or fma, the gathers cost more than the arithmetic. Here each read feeds
//   four rows, a quarter of the loads per FLOP (matmul.wgsl gets its speed the same way,
//   from several rows per thread). Measured on lavapipe at q1024 k1024 8h x 40d: two
//   rows 1.6x attention_forward, four rows 1.65x two rows. The rows are written out
//   (not an array over rows) so that no register array is indexed at run time.
// Registers: the head-dim loops run to D4 (UNROLL, constant indices once the driver
//   unrolls them). Larger head dims (slow to compile unrolled) run attention_rows4_chunked
//   below instead.
// Causal: tiles stop at the block's last query (a uniform bound, so barriers stay
//   uniform) and keys j > i are masked per row. Key 0 is never masked, so the running max
//   is finite after it and masked keys add exp(-huge) = 0. Out-of-range rows compute on
//   the last row and never store.
// Precision: f32 scores, softmax and accumulation for T = f32 and T = f16 (storage only).

alias T = f32;

override WG: u32 = 64u;
override D4: u32 = 10u;
override TK: u32 = 64u;
override CAUSAL: bool = false;
override UNROLL: bool = true;
// attention_rows4_chunked: head-dim chunk in vec4 (divides D4, at most CHMAX).
override CH: u32 = 10u;

// Register arrays need a constant size: head dims up to 4 * DMAX4 = 160 (the host
// rejects larger ones); only the first D4 entries are used.
const DMAX4: u32 = 40u;
const NEG_MAX: f32 = -3.0e38;
// attention_rows4_chunked: chunk registers and the tile's scores (TK <= TKMAX).
const CHMAX: u32 = 10u;
const TKMAX: u32 = 64u;

struct Params {
  B: u32,
  H: u32,
  Lq: u32,
  Lk: u32,
  q_blocks: u32,  // ceil(Lq / (4 * WG))
  scale: f32,
  d4: u32,        // D4 again, as a value the compiler cannot unroll by (UNROLL off)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<T>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<T>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

var<workgroup> k_tile: array<vec4<f32>, TK * D4>;
var<workgroup> v_tile: array<vec4<f32>, TK * D4>;

@compute @workgroup_size(WG)
fn attention_rows4_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bh = g / p.q_blocks;
  if (bh >= p.B * p.H) { return; }
  let b = bh / p.H;
  let h = bh % p.H;
  let C4 = p.H * D4;
  let nd = select(p.d4, D4, UNROLL);
  let block_start = (g % p.q_blocks) * 4u * WG;
  var key_end = p.Lk;
  if (CAUSAL) { key_end = min(p.Lk, min(block_start + 4u * WG, p.Lq)); }
  let kv_base = b * p.Lk * C4 + h * D4;
  let i_a = block_start + 0u * WG + lid;
  let qo_a = (b * p.Lq + min(i_a, p.Lq - 1u)) * C4 + h * D4;
  var q_a: array<vec4<f32>, DMAX4>;
  var acc_a: array<vec4<f32>, DMAX4>;
  var m_a = NEG_MAX;
  var l_a = 0.0;
  let i_b = block_start + 1u * WG + lid;
  let qo_b = (b * p.Lq + min(i_b, p.Lq - 1u)) * C4 + h * D4;
  var q_b: array<vec4<f32>, DMAX4>;
  var acc_b: array<vec4<f32>, DMAX4>;
  var m_b = NEG_MAX;
  var l_b = 0.0;
  let i_c = block_start + 2u * WG + lid;
  let qo_c = (b * p.Lq + min(i_c, p.Lq - 1u)) * C4 + h * D4;
  var q_c: array<vec4<f32>, DMAX4>;
  var acc_c: array<vec4<f32>, DMAX4>;
  var m_c = NEG_MAX;
  var l_c = 0.0;
  let i_d = block_start + 3u * WG + lid;
  let qo_d = (b * p.Lq + min(i_d, p.Lq - 1u)) * C4 + h * D4;
  var q_d: array<vec4<f32>, DMAX4>;
  var acc_d: array<vec4<f32>, DMAX4>;
  var m_d = NEG_MAX;
  var l_d = 0.0;
  for (var d = 0u; d < nd; d++) {
    q_a[d] = vec4<f32>(q[qo_a + d]) * p.scale;
    acc_a[d] = vec4<f32>(0.0);
    q_b[d] = vec4<f32>(q[qo_b + d]) * p.scale;
    acc_b[d] = vec4<f32>(0.0);
    q_c[d] = vec4<f32>(q[qo_c + d]) * p.scale;
    acc_c[d] = vec4<f32>(0.0);
    q_d[d] = vec4<f32>(q[qo_d + d]) * p.scale;
    acc_d[d] = vec4<f32>(0.0);
  }
  for (var j0 = 0u; j0 < key_end; j0 += TK) {
    let n = min(TK, key_end - j0);
    for (var e = lid; e < n * D4; e += WG) {
      let o = kv_base + (j0 + e / D4) * C4 + e % D4;
      k_tile[e] = vec4<f32>(k[o]);
      v_tile[e] = vec4<f32>(v[o]);
    }
    workgroupBarrier();
    for (var t = 0u; t < n; t++) {
      var s_a = 0.0;
      var s_b = 0.0;
      var s_c = 0.0;
      var s_d = 0.0;
      for (var d = 0u; d < nd; d++) {
        let kd = k_tile[t * D4 + d];
        s_a += dot(q_a[d], kd);
        s_b += dot(q_b[d], kd);
        s_c += dot(q_c[d], kd);
        s_d += dot(q_d[d], kd);
      }
      if (CAUSAL) {
        if (j0 + t > i_a) { s_a = NEG_MAX; }
        if (j0 + t > i_b) { s_b = NEG_MAX; }
        if (j0 + t > i_c) { s_c = NEG_MAX; }
        if (j0 + t > i_d) { s_d = NEG_MAX; }
      }
      let mn_a = max(m_a, s_a);
      let c_a = exp(m_a - mn_a);
      let p_a = exp(s_a - mn_a);
      l_a = l_a * c_a + p_a;
      m_a = mn_a;
      let mn_b = max(m_b, s_b);
      let c_b = exp(m_b - mn_b);
      let p_b = exp(s_b - mn_b);
      l_b = l_b * c_b + p_b;
      m_b = mn_b;
      let mn_c = max(m_c, s_c);
      let c_c = exp(m_c - mn_c);
      let p_c = exp(s_c - mn_c);
      l_c = l_c * c_c + p_c;
      m_c = mn_c;
      let mn_d = max(m_d, s_d);
      let c_d = exp(m_d - mn_d);
      let p_d = exp(s_d - mn_d);
      l_d = l_d * c_d + p_d;
      m_d = mn_d;
      for (var d = 0u; d < nd; d++) {
        let vd = v_tile[t * D4 + d];
        acc_a[d] = fma(vec4<f32>(p_a), vd, acc_a[d] * c_a);
        acc_b[d] = fma(vec4<f32>(p_b), vd, acc_b[d] * c_b);
        acc_c[d] = fma(vec4<f32>(p_c), vd, acc_c[d] * c_c);
        acc_d[d] = fma(vec4<f32>(p_d), vd, acc_d[d] * c_d);
      }
    }
    workgroupBarrier();
  }
  if (i_a < p.Lq) {
    let inv = 1.0 / l_a;
    for (var d = 0u; d < nd; d++) { out[qo_a + d] = vec4<T>(acc_a[d] * inv); }
    lse[bh * p.Lq + i_a] = m_a + log(l_a);
  }
  if (i_b < p.Lq) {
    let inv = 1.0 / l_b;
    for (var d = 0u; d < nd; d++) { out[qo_b + d] = vec4<T>(acc_b[d] * inv); }
    lse[bh * p.Lq + i_b] = m_b + log(l_b);
  }
  if (i_c < p.Lq) {
    let inv = 1.0 / l_c;
    for (var d = 0u; d < nd; d++) { out[qo_c + d] = vec4<T>(acc_c[d] * inv); }
    lse[bh * p.Lq + i_c] = m_c + log(l_c);
  }
  if (i_d < p.Lq) {
    let inv = 1.0 / l_d;
    for (var d = 0u; d < nd; d++) { out[qo_d + d] = vec4<T>(acc_d[d] * inv); }
    lse[bh * p.Lq + i_d] = m_d + log(l_d);
  }
}

// Head dims above 40 (CLIP's 64, SD's 80 and 160): the same rows, K/V tiles and results,
// with one max and one rescale per key tile, the head dim taken CH vec4 at a time:
//   1. scores: for each chunk, the four rows' q chunk in registers (constant indices,
//      loaded from storage once per tile), accumulated into the tile's scores s_x[t];
//   2. the tile's max per row, one rescale factor, exp of each score, the running sums;
//   3. for each chunk, the rows' accumulator chunk copied into registers, rescaled, and
//      p_t v_t added for every key of the tile, then copied back.
// The full accumulators and the scores are indexed at run time (a gather or scatter
// per lane on a CPU driver), but once per (tile, chunk) or per (key, chunk) rather than
// per (key, vec4) as rolled head-dim loops would: 2.1x at 80d, 1.6x at 160d and 2.7x at
// CLIP's 64d over those on lavapipe.
@compute @workgroup_size(WG)
fn attention_rows4_chunked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let bh = g / p.q_blocks;
  if (bh >= p.B * p.H) { return; }
  let b = bh / p.H;
  let h = bh % p.H;
  let C4 = p.H * D4;
  let block_start = (g % p.q_blocks) * 4u * WG;
  var key_end = p.Lk;
  if (CAUSAL) { key_end = min(p.Lk, min(block_start + 4u * WG, p.Lq)); }
  let kv_base = b * p.Lk * C4 + h * D4;
  let NC = D4 / CH;

  let i_a = block_start + 0u * WG + lid;
  let qo_a = (b * p.Lq + min(i_a, p.Lq - 1u)) * C4 + h * D4;
  var acc_a: array<vec4<f32>, DMAX4>;
  var s_a: array<f32, TKMAX>;
  var m_a = NEG_MAX;
  var l_a = 0.0;
  let i_b = block_start + 1u * WG + lid;
  let qo_b = (b * p.Lq + min(i_b, p.Lq - 1u)) * C4 + h * D4;
  var acc_b: array<vec4<f32>, DMAX4>;
  var s_b: array<f32, TKMAX>;
  var m_b = NEG_MAX;
  var l_b = 0.0;
  let i_c = block_start + 2u * WG + lid;
  let qo_c = (b * p.Lq + min(i_c, p.Lq - 1u)) * C4 + h * D4;
  var acc_c: array<vec4<f32>, DMAX4>;
  var s_c: array<f32, TKMAX>;
  var m_c = NEG_MAX;
  var l_c = 0.0;
  let i_d = block_start + 3u * WG + lid;
  let qo_d = (b * p.Lq + min(i_d, p.Lq - 1u)) * C4 + h * D4;
  var acc_d: array<vec4<f32>, DMAX4>;
  var s_d: array<f32, TKMAX>;
  var m_d = NEG_MAX;
  var l_d = 0.0;
  for (var d = 0u; d < D4; d++) {
    acc_a[d] = vec4<f32>(0.0);
    acc_b[d] = vec4<f32>(0.0);
    acc_c[d] = vec4<f32>(0.0);
    acc_d[d] = vec4<f32>(0.0);
  }
  for (var j0 = 0u; j0 < key_end; j0 += TK) {
    let n = min(TK, key_end - j0);
    for (var e = lid; e < n * D4; e += WG) {
      let o = kv_base + (j0 + e / D4) * C4 + e % D4;
      k_tile[e] = vec4<f32>(k[o]);
      v_tile[e] = vec4<f32>(v[o]);
    }
    workgroupBarrier();
    for (var t = 0u; t < n; t++) {
      s_a[t] = 0.0;
      s_b[t] = 0.0;
      s_c[t] = 0.0;
      s_d[t] = 0.0;
    }
    for (var c0 = 0u; c0 < NC; c0++) {
      let cb = c0 * CH;
      var qc_a: array<vec4<f32>, CHMAX>;
      var qc_b: array<vec4<f32>, CHMAX>;
      var qc_c: array<vec4<f32>, CHMAX>;
      var qc_d: array<vec4<f32>, CHMAX>;
      for (var dd = 0u; dd < CH; dd++) {
        qc_a[dd] = vec4<f32>(q[qo_a + cb + dd]) * p.scale;
        qc_b[dd] = vec4<f32>(q[qo_b + cb + dd]) * p.scale;
        qc_c[dd] = vec4<f32>(q[qo_c + cb + dd]) * p.scale;
        qc_d[dd] = vec4<f32>(q[qo_d + cb + dd]) * p.scale;
      }
      for (var t = 0u; t < n; t++) {
        var x_a = 0.0;
        var x_b = 0.0;
        var x_c = 0.0;
        var x_d = 0.0;
        for (var dd = 0u; dd < CH; dd++) {
          let kd = k_tile[t * D4 + cb + dd];
          x_a += dot(qc_a[dd], kd);
          x_b += dot(qc_b[dd], kd);
          x_c += dot(qc_c[dd], kd);
          x_d += dot(qc_d[dd], kd);
        }
        s_a[t] += x_a;
        s_b[t] += x_b;
        s_c[t] += x_c;
        s_d[t] += x_d;
      }
    }
    var tm_a = NEG_MAX;
    var tm_b = NEG_MAX;
    var tm_c = NEG_MAX;
    var tm_d = NEG_MAX;
    for (var t = 0u; t < n; t++) {
      if (CAUSAL && j0 + t > i_a) { s_a[t] = NEG_MAX; }
      tm_a = max(tm_a, s_a[t]);
      if (CAUSAL && j0 + t > i_b) { s_b[t] = NEG_MAX; }
      tm_b = max(tm_b, s_b[t]);
      if (CAUSAL && j0 + t > i_c) { s_c[t] = NEG_MAX; }
      tm_c = max(tm_c, s_c[t]);
      if (CAUSAL && j0 + t > i_d) { s_d[t] = NEG_MAX; }
      tm_d = max(tm_d, s_d[t]);
    }
    let mn_a = max(m_a, tm_a);
    let cr_a = exp(m_a - mn_a);
    m_a = mn_a;
    l_a *= cr_a;
    let mn_b = max(m_b, tm_b);
    let cr_b = exp(m_b - mn_b);
    m_b = mn_b;
    l_b *= cr_b;
    let mn_c = max(m_c, tm_c);
    let cr_c = exp(m_c - mn_c);
    m_c = mn_c;
    l_c *= cr_c;
    let mn_d = max(m_d, tm_d);
    let cr_d = exp(m_d - mn_d);
    m_d = mn_d;
    l_d *= cr_d;
    for (var t = 0u; t < n; t++) {
      s_a[t] = exp(s_a[t] - m_a);
      l_a += s_a[t];
      s_b[t] = exp(s_b[t] - m_b);
      l_b += s_b[t];
      s_c[t] = exp(s_c[t] - m_c);
      l_c += s_c[t];
      s_d[t] = exp(s_d[t] - m_d);
      l_d += s_d[t];
    }
    for (var c0 = 0u; c0 < NC; c0++) {
      let cb = c0 * CH;
      var ac_a: array<vec4<f32>, CHMAX>;
      var ac_b: array<vec4<f32>, CHMAX>;
      var ac_c: array<vec4<f32>, CHMAX>;
      var ac_d: array<vec4<f32>, CHMAX>;
      for (var dd = 0u; dd < CH; dd++) {
        ac_a[dd] = acc_a[cb + dd] * cr_a;
        ac_b[dd] = acc_b[cb + dd] * cr_b;
        ac_c[dd] = acc_c[cb + dd] * cr_c;
        ac_d[dd] = acc_d[cb + dd] * cr_d;
      }
      for (var t = 0u; t < n; t++) {
        let p_a = vec4<f32>(s_a[t]);
        let p_b = vec4<f32>(s_b[t]);
        let p_c = vec4<f32>(s_c[t]);
        let p_d = vec4<f32>(s_d[t]);
        for (var dd = 0u; dd < CH; dd++) {
          let vd = v_tile[t * D4 + cb + dd];
          ac_a[dd] = fma(p_a, vd, ac_a[dd]);
          ac_b[dd] = fma(p_b, vd, ac_b[dd]);
          ac_c[dd] = fma(p_c, vd, ac_c[dd]);
          ac_d[dd] = fma(p_d, vd, ac_d[dd]);
        }
      }
      for (var dd = 0u; dd < CH; dd++) {
        acc_a[cb + dd] = ac_a[dd];
        acc_b[cb + dd] = ac_b[dd];
        acc_c[cb + dd] = ac_c[dd];
        acc_d[cb + dd] = ac_d[dd];
      }
    }
    workgroupBarrier();
  }
  if (i_a < p.Lq) {
    let inv = 1.0 / l_a;
    for (var d = 0u; d < D4; d++) { out[qo_a + d] = vec4<T>(acc_a[d] * inv); }
    lse[bh * p.Lq + i_a] = m_a + log(l_a);
  }
  if (i_b < p.Lq) {
    let inv = 1.0 / l_b;
    for (var d = 0u; d < D4; d++) { out[qo_b + d] = vec4<T>(acc_b[d] * inv); }
    lse[bh * p.Lq + i_b] = m_b + log(l_b);
  }
  if (i_c < p.Lq) {
    let inv = 1.0 / l_c;
    for (var d = 0u; d < D4; d++) { out[qo_c + d] = vec4<T>(acc_c[d] * inv); }
    lse[bh * p.Lq + i_c] = m_c + log(l_c);
  }
  if (i_d < p.Lq) {
    let inv = 1.0 / l_d;
    for (var d = 0u; d < D4; d++) { out[qo_d + d] = vec4<T>(acc_d[d] * inv); }
    lse[bh * p.Lq + i_d] = m_d + log(l_d);
  }
}
