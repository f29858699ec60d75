// 2-D convolution, NCHW, PyTorch weights [Cout, Cin, KH, KW]: the forward kernel and
// the zero-padding (and dilation) copy that prepares its input.
//
// conv2d_forward: y[n, co, oy, ox] =
//   (act(sum_{ci,ky,kx} w[co, ci, ky, kx] * xp[n, ci, oy*S + ky, ox*S + kx] + bias[co])
//    + residual[n, co, oy, ox]) * inv_scale
//   xp: the input already zero-padded to [N, Cin, HP, WP] with WP % 4 == 0, so every
//   tap is in bounds and the inner loop has no edge tests; bound as vec4 rows.
// Mapping (implicit GEMM, M = Cout, N = output pixels, K = Cin*KH*KW): one thread owns
// RM output channels x 4 adjacent output columns of one output row ("a quad"); a
// workgroup is WG quads of one sample sharing the same RM channels. The weights are
// then uniform over the workgroup (one scalar load serves every lane on CPU drivers
// such as lavapipe; a broadcast on GPUs), and the per-lane input reads are whole
// aligned vec4: for each (ci, ky) the thread loads the 3*S + KW input values its quad
// touches as NV = ceil((3*S + KW) / 4) vec4 (2 for a 3x3 stride-1 conv, 3 for stride
// 2) and reuses each for up to KW taps and RM channels (24 vec4-wide fma per 2 loads
// at 3x3/s1). No workgroup memory and no barriers: on lavapipe per-lane loads, not
// fma, bound the speed (see matmul.wgsl). Workgroups are numbered linearly (channel
// block fastest, so neighbouring workgroups read the same input rows while cached),
// folded into (x, y) by the host past 65535.
// Ragged edges: quads past the last one clamp to it (loads stay in bounds) and the
// columns past Wo and channels past Cout are computed from padding but never stored.
// Precision: fma accumulation in f32 for T = f32 and T = f16 (storage only); the
// epilogue runs in f32 and rounds once on the store.
//
// conv2d_pad_input: dst[p, r, c] = src[p, (r - top) / S, (c - left) / S] where both
// divide exactly and land inside the source, else 0; p runs over N*C planes. S = 1
// gives the forward's zero padding; S = stride with top = left = K - 1 - pad gives the
// dilated, padded dy whose stride-1 convolution with the flipped weights is dx.
// One thread per destination element.

alias T = f32;

// #include "activation.wgsl"

// Output channels per thread: a constant so the accumulators are a fixed register array.
const RM: u32 = 8u;
// Input values per row the thread can hold (NV <= 4 vec4: 3*S + KW <= 16).
const SPAN_MAX: u32 = 16u;

override WG: u32 = 64u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
override HAS_BIAS: bool = false;
override HAS_RESIDUAL: bool = false;

struct ConvParams {
  cin: u32,
  cout: u32,
  hp: u32,        // padded input rows
  wp4: u32,       // padded input row length in vec4
  ho: u32,
  wo: u32,
  quads: u32,     // ceil(wo / 4)
  blocks_co: u32, // ceil(cout / RM)
  blocks_q: u32,  // ceil(ho * quads / WG)
  batch: u32,     // samples in this dispatch
  x_base4: u32,   // vec4 offset of the first sample in the xp binding
  y_base: u32,    // element offset of the first sample in the y binding
  r_base: u32,    // element offset of the first sample in the residual binding
  inv_scale: f32,
}

@group(0) @binding(0) var<uniform> cp: ConvParams;
@group(0) @binding(1) var<storage, read> xp: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> weight: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> residual: array<T>;
@group(0) @binding(5) var<storage, read_write> y: array<T>;

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + wid.y * nwg.x;
  let cb = lin % cp.blocks_co;
  let rest = lin / cp.blocks_co;
  let qb = rest % cp.blocks_q;
  let n = rest / cp.blocks_q;
  if (n >= cp.batch) { return; }
  let q = qb * WG + lid;
  let qc = min(q, cp.ho * cp.quads - 1u);
  let oy = qc / cp.quads;
  let ox0 = (qc % cp.quads) * 4u;
  let co0 = cb * RM;
  let taps = KH * KW;

  var w_row: array<u32, RM>;
  for (var r = 0u; r < RM; r++) { w_row[r] = min(co0 + r, cp.cout - 1u) * cp.cin * taps; }
  var acc: array<vec4<f32>, RM>;
  for (var r = 0u; r < RM; r++) { acc[r] = vec4<f32>(0.0); }

  let nv = (3u * STRIDE + KW + 3u) / 4u;
  let plane4 = cp.hp * cp.wp4;
  // ox0 * STRIDE is a multiple of 4: the quad's first tap starts a vec4.
  var at = cp.x_base4 + n * cp.cin * plane4 + oy * STRIDE * cp.wp4 + ox0 * STRIDE / 4u;
  for (var ci = 0u; ci < cp.cin; ci++) {
    for (var ky = 0u; ky < KH; ky++) {
      var s: array<f32, SPAN_MAX>;
      let row = at + ky * cp.wp4;
      for (var v = 0u; v < nv; v++) {
        let q4 = vec4<f32>(xp[row + v]);
        s[4u * v] = q4.x;
        s[4u * v + 1u] = q4.y;
        s[4u * v + 2u] = q4.z;
        s[4u * v + 3u] = q4.w;
      }
      let wk = (ci * KH + ky) * KW;
      for (var kx = 0u; kx < KW; kx++) {
        let xv = vec4<f32>(s[kx], s[STRIDE + kx], s[2u * STRIDE + kx], s[3u * STRIDE + kx]);
        for (var r = 0u; r < RM; r++) {
          acc[r] = fma(vec4<f32>(f32(weight[w_row[r] + wk + kx])), xv, acc[r]);
        }
      }
    }
    at += plane4;
  }

  if (q >= cp.ho * cp.quads) { return; }
  let plane = cp.ho * cp.wo;
  for (var r = 0u; r < RM; r++) {
    let co = co0 + r;
    if (co >= cp.cout) { break; }
    let out_row = (n * cp.cout + co) * plane + oy * cp.wo;
    for (var j = 0u; j < 4u; j++) {
      let ox = ox0 + j;
      if (ox >= cp.wo) { break; }
      var v = acc[r][j];
      if (HAS_BIAS) { v += f32(bias[co]); }
      v = act(v);
      if (HAS_RESIDUAL) { v += f32(residual[cp.r_base + out_row + ox]); }
      y[cp.y_base + out_row + ox] = T(v * cp.inv_scale);
    }
  }
}

struct PadParams {
  total: u32,     // destination elements
  hs: u32,        // source rows, columns
  ws: u32,
  hd: u32,        // destination rows, columns
  wd: u32,
  top: i32,       // destination row/column of source element (0, 0)
  left: i32,
  stride: u32,    // destination step between source elements (dilation)
  src_base: u32,  // element offset of the first plane in the src binding
}

@group(0) @binding(0) var<uniform> pp: PadParams;
@group(0) @binding(1) var<storage, read> pad_src: array<T>;
@group(0) @binding(2) var<storage, read_write> pad_dst: array<T>;

@compute @workgroup_size(WG)
fn conv2d_pad_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pp.total) { return; }
  let c = i % pp.wd;
  let r = (i / pp.wd) % pp.hd;
  let p = i / (pp.wd * pp.hd);
  let sr = i32(r) - pp.top;
  let sc = i32(c) - pp.left;
  let s = i32(pp.stride);
  var v = T(0.0);
  if (sr >= 0 && sc >= 0 && sr % s == 0 && sc % s == 0) {
    let ur = u32(sr) / pp.stride;
    let uc = u32(sc) / pp.stride;
    if (ur < pp.hs && uc < pp.ws) { v = pad_src[pp.src_base + (p * pp.hs + ur) * pp.ws + uc]; }
  }
  pad_dst[i] = v;
}
