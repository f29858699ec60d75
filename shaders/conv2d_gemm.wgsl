// The conv2d forward's 'gemm' variant (nn/conv2d.ts conv2dGemm): an explicit im2col copy,
// then the production matmul (matmul.wgsl or matmul_tiled.wgsl) multiplies the weight
// [Cout, Cin*KH*KW] by it with the bias per output row, so the output lands in NCHW.
//
// conv2d_im2col: cols[b, k, q] for b < batch samples, k = (ci * KH + ky) * KW + kx (the
//   PyTorch weight's flattening order), q < rows * Wo output pixels of the band of output
//   rows row0 .. row0 + rows - 1:
//     cols[b, k, q] = x[x_base + (b * Cin + ci) * H * W + iy * W + ix]
//     iy = (row0 + q / Wo) * STRIDE + ky - pad, ix = (q % Wo) * STRIDE + kx - pad,
//   0 where (iy, ix) falls in the zero padding. The copy reads x unpadded.
// conv2d_gemm_band: moves a band of output rows between a [Cout, rows * Wo] matrix and
//   one sample of an NCHW tensor [Cout, Ho, Wo] (at element offset t_base of its
//   binding): TO_NCHW pastes the band's matmul output into y, else it crops the
//   residual's band out for the matmul's epilogue.
// conv2d_im2col4: the same matrix when Wo % 4 == 0, four adjacent pixels of one output
//   row per thread (one vec4 store; ip.total counts vec4). The index decomposition (two
//   run-time divisions) is paid once per 4 elements instead of four per element, and the
//   taps are read branch-free (clamped index, select), which lavapipe, running both sides
//   of a divergent branch, prefers. On lavapipe 2.3-3.0x the scalar entry's rate at the
//   VAE's 3x3 shapes (0.40-0.45 -> 0.94-1.28 GB/s; tmp-script timing, min of 3).
// Mapping: one thread per destination element (per vec4 in conv2d_im2col4); the 1-D
// workgroup index is folded into (x, y) by the host past 65535 and recovered as
// wid.x + wid.y * nwg.x. Plain copies.

alias T = f32;

override WG: u32 = 256u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
override TO_NCHW: bool = true;

struct Im2colParams {
  total: u32,   // batch * Cin * KH * KW * rows * Wo
  cin: u32,
  h: u32,
  w: u32,
  wo: u32,
  band: u32,    // rows * Wo
  row0: u32,
  pad: u32,
  x_base: u32,
}

@group(0) @binding(0) var<uniform> ip: Im2colParams;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> cols: array<T>;

@compute @workgroup_size(WG)
fn conv2d_im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ip.total) { return; }
  let q = i % ip.band;
  let row = i / ip.band;            // b * K + k
  let kx = row % KW;
  let ky = (row / KW) % KH;
  let plane = row / (KW * KH);      // b * Cin + ci
  let iy = i32((ip.row0 + q / ip.wo) * STRIDE + ky) - i32(ip.pad);
  let ix = i32((q % ip.wo) * STRIDE + kx) - i32(ip.pad);
  var v = T(0.0);
  if (iy >= 0 && iy < i32(ip.h) && ix >= 0 && ix < i32(ip.w)) {
    v = x[ip.x_base + plane * ip.h * ip.w + u32(iy) * ip.w + u32(ix)];
  }
  cols[i] = v;
}

@group(0) @binding(2) var<storage, read_write> cols4: array<vec4<T>>;

// x[base + ix] where 0 <= ix < w and the row is inside (ok), else 0; the load index is
// clamped so it stays in bounds either way.
fn im2col_tap(base: u32, ix: i32, ok: bool) -> T {
  let inside = ok && ix >= 0 && ix < i32(ip.w);
  return select(T(0.0), x[base + u32(clamp(ix, 0, i32(ip.w) - 1))], inside);
}

@compute @workgroup_size(WG)
fn conv2d_im2col4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * WG + lid;
  if (j >= ip.total) { return; }
  let band4 = ip.band / 4u;
  let wo4 = ip.wo / 4u;
  let row = j / band4;              // b * K + k
  let q4 = j - row * band4;
  let oy = q4 / wo4;                // output row within the band
  let ox = (q4 - oy * wo4) * 4u;    // first of the 4 output columns
  let kx = row % KW;
  let ky = (row / KW) % KH;
  let plane = row / (KW * KH);      // b * Cin + ci
  let iy = i32((ip.row0 + oy) * STRIDE + ky) - i32(ip.pad);
  let ok = iy >= 0 && iy < i32(ip.h);
  let base = ip.x_base + plane * ip.h * ip.w + u32(clamp(iy, 0, i32(ip.h) - 1)) * ip.w;
  let ix = i32(ox * STRIDE + kx) - i32(ip.pad);
  let s = i32(STRIDE);
  cols4[j] = vec4<T>(im2col_tap(base, ix, ok), im2col_tap(base, ix + s, ok),
                     im2col_tap(base, ix + 2 * s, ok), im2col_tap(base, ix + 3 * s, ok));
}

struct BandParams {
  total: u32,   // Cout * rows * Wo
  band: u32,    // rows * Wo
  plane: u32,   // Ho * Wo
  start: u32,   // row0 * Wo
  t_base: u32,
}

@group(0) @binding(0) var<uniform> bp: BandParams;
@group(0) @binding(1) var<storage, read> band_src: array<T>;
@group(0) @binding(2) var<storage, read_write> band_dst: array<T>;

@compute @workgroup_size(WG)
fn conv2d_gemm_band(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= bp.total) { return; }
  let c = i / bp.band;
  let q = i % bp.band;
  let t = bp.t_base + c * bp.plane + bp.start + q;
  if (TO_NCHW) {
    band_dst[t] = band_src[i];
  } else {
    band_dst[i] = band_src[t];
  }
}
