// 2-D convolution forward as an implicit GEMM (variant 'igemm' of the conv2d family,
// gpu/variants.ts), NCHW, PyTorch weights [Cout, Cin, KH, KW]:
//   y[n, co, oy, ox] = (act(sum_k w[co, k] * x_col[(n, oy, ox), k] + bias[co])
//                       + residual[n, co, oy, ox]) * inv_scale
// with k = (ci, ky, kx) flattened as the weight stores it (K = Cin*KH*KW) and
// x_col[(n, oy, ox), (ci, ky, kx)] = xp[n, ci, oy*S + ky, ox*S + kx] read on the fly from
// the zero-padded input xp [N, Cin, HP, WP] (the host pads with conv2d_pad_input; a
// padding-0 conv reads x in place, any width).
//
// Mapping: GEMM rows = output pixels, flattened over (n, oy, ox) so that small maps and
// batches fill the lanes; GEMM columns = output channels. A workgroup owns RP = 8
// consecutive pixels and 4 * WG channels; lane `lid` owns 4 adjacent channels, so its
// register tile is RP vec4 accumulators (one per pixel, over its 4 channels). This is
// the rows8 matmul (matmul.wgsl) with the convolution's input as its `a` operand:
// the input value of a pixel at a k depends only on the workgroup and k, so it is
// uniform over the workgroup (a broadcast on GPUs; on lavapipe a gather whose lanes hit
// one cache line, as its address is not built from constants); the per-lane loads are
// the weights. When K % 4 == 0
// (W_VEC) a lane reads each of its channels' weights as aligned vec4 along k (4 vec4 per
// 4 k, transposed into 4 vec4 over channels), the matmul's B_VEC 2 pattern, and each
// weight is reused for the RP pixels: 4 per-lane vec4 loads per 4 * RP vec4 fma.
// No workgroup memory, no barriers.
// The k loop runs over groups of 4 input channels (4 * KH * KW values of k, KH * KW vec4
// per channel) so the offsets of a group's taps in xp are (ci, ky, kx) * (plane, WP, 1)
// with small constants; input channels past the last whole group (Cin % 4) take a scalar
// tail loop.
// Channels-last mode (conv2d_igemm_nhwc, Cin % 4 == 0): the host copies x padded and
// transposed to [N, HP, WP, Cin] (conv2d_igemm_pad_nhwc) and the weight to
// [Cout, KH, KW, Cin] (conv2d_igemm_pack_weight4), and k runs over (ky, kx, ci): the
// uniform input reads become one aligned vec4 (4 input channels) per pixel per 4 k, as
// the rows8 matmul's `a` reads, and the weights stay 4 per-lane vec4 per 4 k: 8 uniform
// vec4 + 4 per-lane vec4 loads per 32 vec4 fma, instead of 32 uniform scalars + 4 vec4.
// Workgroups are numbered linearly, pixel block fastest, so neighbouring workgroups
// stream the same weights while they are cached; folded into (x, y) by the host past
// 65535. Ragged edges: pixels past the last one and channels past Cout clamp their load
// indices (loads stay in bounds, the inner loop has no branches) and are never stored.
// Precision: fma accumulation in f32 for T = f32 and T = f16 (storage only); the
// epilogue runs in f32 and rounds once on the store.

alias T = f32;

// #include "activation.wgsl"

// Pixels per workgroup (rows of the GEMM tile): a constant so the accumulators are a
// fixed register array the compiler unrolls.
const RP: u32 = 8u;

override WG: u32 = 64u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
override HAS_BIAS: bool = false;
override HAS_RESIDUAL: bool = false;
// Weights read as vec4 along k (needs Cin * KH * KW % 4 == 0).
override W_VEC: bool = false;

struct IgemmParams {
  cin: u32,
  cout: u32,
  hp: u32,        // input rows (padded)
  wp: u32,        // input row length (padded)
  ho: u32,
  wo: u32,
  pixels: u32,    // batch * ho * wo
  blocks_p: u32,  // ceil(pixels / RP)
  blocks_c: u32,  // ceil(cout / (4 * WG))
  batch: u32,     // samples in this dispatch
  x_base: u32,    // element offset of the first sample in the x binding
  y_base: u32,    // element offset of the first sample in the y binding
  r_base: u32,    // element offset of the first sample in the residual binding
  inv_scale: f32,
}

@group(0) @binding(0) var<uniform> cp: IgemmParams;
@group(0) @binding(1) var<storage, read> xp: array<T>;
// The weight bound twice: scalars, and vec4 (W_VEC).
@group(0) @binding(2) var<storage, read> weight: array<T>;
@group(0) @binding(3) var<storage, read> weight4: array<vec4<T>>;
@group(0) @binding(4) var<storage, read> bias: array<T>;
@group(0) @binding(5) var<storage, read> residual: array<T>;
@group(0) @binding(6) var<storage, read_write> y: array<T>;

// Weights of the lane's 4 channels (rows starting at w_row) at k .. k+3, as 4 vec4 over
// the channels (element e of the result is k + e).
fn weights4(w_row: vec4<u32>, k: u32) -> mat4x4<f32> {
  if (W_VEC) {
    return transpose(mat4x4<f32>(vec4<f32>(weight4[(w_row.x + k) / 4u]), vec4<f32>(weight4[(w_row.y + k) / 4u]),
                                 vec4<f32>(weight4[(w_row.z + k) / 4u]), vec4<f32>(weight4[(w_row.w + k) / 4u])));
  }
  var m: mat4x4<f32>;
  for (var e = 0u; e < 4u; e++) {
    m[e] = vec4<f32>(f32(weight[w_row.x + k + e]), f32(weight[w_row.y + k + e]),
                     f32(weight[w_row.z + k + e]), f32(weight[w_row.w + k + e]));
  }
  return m;
}

@compute @workgroup_size(WG)
fn conv2d_igemm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + wid.y * nwg.x;
  let pb = lin % cp.blocks_p;
  let cb = lin / cp.blocks_p;
  if (cb >= cp.blocks_c) { return; }
  let taps = KH * KW;
  let K = cp.cin * taps;
  let co0 = (cb * WG + lid) * 4u;
  let w_row = min(vec4<u32>(co0, co0 + 1u, co0 + 2u, co0 + 3u), vec4<u32>(cp.cout - 1u)) * K;
  let hw = cp.ho * cp.wo;
  let plane = cp.hp * cp.wp;

  // Offset in xp of each pixel's first tap (ci = ky = kx = 0).
  var x_at: array<u32, RP>;
  for (var i = 0u; i < RP; i++) {
    let p = min(pb * RP + i, cp.pixels - 1u);
    let n = p / hw;
    let r = p - n * hw;
    let oy = r / cp.wo;
    let ox = r - oy * cp.wo;
    x_at[i] = cp.x_base + n * cp.cin * plane + oy * STRIDE * cp.wp + ox * STRIDE;
  }
  var acc: array<vec4<f32>, RP>;
  for (var i = 0u; i < RP; i++) { acc[i] = vec4<f32>(0.0); }

  let groups = cp.cin / 4u;
  for (var g = 0u; g < groups; g++) {
    let kg = g * 4u * taps;
    let xg = g * 4u * plane;
    for (var j = 0u; j < taps; j++) {
      let wm = weights4(w_row, kg + 4u * j);
      for (var e = 0u; e < 4u; e++) {
        let kl = 4u * j + e;
        let ci = kl / taps;
        let t = kl - ci * taps;
        let ky = t / KW;
        let off = xg + ci * plane + ky * cp.wp + (t - ky * KW);
        let wv = wm[e];
        for (var i = 0u; i < RP; i++) {
          acc[i] = fma(vec4<f32>(f32(xp[x_at[i] + off])), wv, acc[i]);
        }
      }
    }
  }
  for (var ci = groups * 4u; ci < cp.cin; ci++) {
    for (var t = 0u; t < taps; t++) {
      let k = ci * taps + t;
      let wv = vec4<f32>(f32(weight[w_row.x + k]), f32(weight[w_row.y + k]), f32(weight[w_row.z + k]), f32(weight[w_row.w + k]));
      let ky = t / KW;
      let off = ci * plane + ky * cp.wp + (t - ky * KW);
      for (var i = 0u; i < RP; i++) {
        acc[i] = fma(vec4<f32>(f32(xp[x_at[i] + off])), wv, acc[i]);
      }
    }
  }

  for (var i = 0u; i < RP; i++) {
    let p = pb * RP + i;
    if (p >= cp.pixels) { break; }
    let n = p / hw;
    let r = p - n * hw;
    for (var j = 0u; j < 4u; j++) {
      let co = co0 + j;
      if (co >= cp.cout) { break; }
      let at = (n * cp.cout + co) * hw + r;
      var v = acc[i][j];
      if (HAS_BIAS) { v += f32(bias[co]); }
      v = act(v);
      if (HAS_RESIDUAL) { v += f32(residual[cp.r_base + at]); }
      y[cp.y_base + at] = T(v * cp.inv_scale);
    }
  }
}

// Channels-last mode: xh [N, HP, WP, Cin] and wt [Cout, KH, KW, Cin] as vec4 along Cin.
@group(0) @binding(1) var<storage, read> xh4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> wt4: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> bias_h: array<T>;
@group(0) @binding(4) var<storage, read> residual_h: array<T>;
@group(0) @binding(5) var<storage, read_write> y_h: array<T>;

@compute @workgroup_size(WG)
fn conv2d_igemm_nhwc(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + wid.y * nwg.x;
  let pb = lin % cp.blocks_p;
  let cb = lin / cp.blocks_p;
  if (cb >= cp.blocks_c) { return; }
  let taps = KH * KW;
  let c4 = cp.cin / 4u;
  let co0 = (cb * WG + lid) * 4u;
  let w_row = min(vec4<u32>(co0, co0 + 1u, co0 + 2u, co0 + 3u), vec4<u32>(cp.cout - 1u)) * (taps * c4);
  let hw = cp.ho * cp.wo;

  // vec4 offset in xh of each pixel's first tap; x_base counts vec4 here.
  var x_at: array<u32, RP>;
  for (var i = 0u; i < RP; i++) {
    let p = min(pb * RP + i, cp.pixels - 1u);
    let n = p / hw;
    let r = p - n * hw;
    let oy = r / cp.wo;
    let ox = r - oy * cp.wo;
    x_at[i] = cp.x_base + ((n * cp.hp + oy * STRIDE) * cp.wp + ox * STRIDE) * c4;
  }
  var acc: array<vec4<f32>, RP>;
  for (var i = 0u; i < RP; i++) { acc[i] = vec4<f32>(0.0); }

  for (var ky = 0u; ky < KH; ky++) {
    for (var kx = 0u; kx < KW; kx++) {
      let t = ky * KW + kx;
      let xoff = (ky * cp.wp + kx) * c4;
      let woff = t * c4;
      for (var c = 0u; c < c4; c++) {
        let wm = transpose(mat4x4<f32>(vec4<f32>(wt4[w_row.x + woff + c]), vec4<f32>(wt4[w_row.y + woff + c]),
                                       vec4<f32>(wt4[w_row.z + woff + c]), vec4<f32>(wt4[w_row.w + woff + c])));
        for (var i = 0u; i < RP; i++) {
          let xv = vec4<f32>(xh4[x_at[i] + xoff + c]);
          var a = fma(vec4<f32>(xv.x), wm[0], acc[i]);
          a = fma(vec4<f32>(xv.y), wm[1], a);
          a = fma(vec4<f32>(xv.z), wm[2], a);
          acc[i] = fma(vec4<f32>(xv.w), wm[3], a);
        }
      }
    }
  }

  for (var i = 0u; i < RP; i++) {
    let p = pb * RP + i;
    if (p >= cp.pixels) { break; }
    let n = p / hw;
    let r = p - n * hw;
    for (var j = 0u; j < 4u; j++) {
      let co = co0 + j;
      if (co >= cp.cout) { break; }
      let at = (n * cp.cout + co) * hw + r;
      var v = acc[i][j];
      if (HAS_BIAS) { v += f32(bias_h[co]); }
      v = act(v);
      if (HAS_RESIDUAL) { v += f32(residual_h[cp.r_base + at]); }
      y_h[cp.y_base + at] = T(v * cp.inv_scale);
    }
  }
}

struct PackParams {
  total: u32,    // destination elements
  cin: u32,
  hs: u32,       // source rows, columns (pad_nhwc); taps (pack_weight)
  ws: u32,
  hd: u32,       // destination rows, columns (pad_nhwc)
  wd: u32,
  pad: u32,      // zero rows/columns before the source (pad_nhwc)
  src_base: u32, // element offset of the first sample in the src binding
}

@group(0) @binding(0) var<uniform> kp: PackParams;
@group(0) @binding(1) var<storage, read> pack_src: array<T>;
@group(0) @binding(2) var<storage, read_write> pack_dst: array<T>;

// dst[n, r, c, ci] = src[n, ci, r - pad, c - pad] inside the source, else 0.
@compute @workgroup_size(WG)
fn conv2d_igemm_pad_nhwc(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= kp.total) { return; }
  let ci = i % kp.cin;
  let pix = i / kp.cin;
  let c = pix % kp.wd;
  let r = (pix / kp.wd) % kp.hd;
  let n = pix / (kp.wd * kp.hd);
  var v = T(0.0);
  if (r >= kp.pad && c >= kp.pad && r - kp.pad < kp.hs && c - kp.pad < kp.ws) {
    v = pack_src[kp.src_base + ((n * kp.cin + ci) * kp.hs + r - kp.pad) * kp.ws + c - kp.pad];
  }
  pack_dst[i] = v;
}

@group(0) @binding(2) var<storage, read_write> pack_dst4: array<vec4<T>>;

// dst[co, t, ci] = src[co, ci, t] (t = ky * KW + kx; kp.hs holds the tap count), 4 input
// channels per thread (Cin % 4 == 0 in channels-last mode): one index decomposition and
// one vec4 store per 4 elements (kp.total counts vec4).
@compute @workgroup_size(WG)
fn conv2d_igemm_pack_weight4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * WG + lid;
  if (j >= kp.total) { return; }
  let cin4 = kp.cin / 4u;
  let q = j / cin4;                 // co * taps + t
  let ci = (j - q * cin4) * 4u;
  let t = q % kp.hs;
  let co = q / kp.hs;
  let s = (co * kp.cin + ci) * kp.hs + t;
  pack_dst4[j] = vec4<T>(pack_src[s], pack_src[s + kp.hs], pack_src[s + 2u * kp.hs], pack_src[s + 3u * kp.hs]);
}
