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
// Mapping: one thread per destination element; the 1-D workgroup index is folded into
// (x, y) by the host past 65535 and recovered as wid.x + wid.y * nwg.x. Plain copies.

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
