// Backward of conv2d (shaders/conv2d.wgsl), NCHW, weights [Cout, Cin, KH, KW].
// dx is not here: it is conv2d_forward (stride 1) over dy dilated by the stride and
// padded by K - 1 - pad (conv2d_pad_input), with the weights from conv2d_flip_weight.
//
// conv2d_flip_weight: wt[ci, co, ky, kx] = w[co, ci, KH-1-ky, KW-1-kx], the weights of
// the transposed convolution. One thread per element.
//
// conv2d_backward_weight: dw[co, ci, ky, kx] (+)= sum_{n,oy,ox} dy[n, co, oy, ox] *
//   xp[n, ci, oy*S + ky, ox*S + kx], xp the zero-padded input of the forward ([N, Cin,
//   HP, WP], WP % 4 == 0, bound as vec4 rows).
// Mapping (GEMM M = Cout, N = Cin*KH*KW, reduction over pixels): one thread owns RM
// output channels x one (ci, ky) x 4 taps kx = 4g .. 4g+3 (KG = ceil(KW/4) groups; a
// 3x3 kernel uses 3 of the 4), and walks every output quad (4 adjacent output columns)
// of every row and sample. Per quad it loads the ceil((3*S + min(KW, 4)) / 4) vec4 its
// taps touch (per-lane loads) and 4*RM dy values that are uniform over the workgroup
// (all its threads share the RM channels), then does 4*RM vec4 fma. dy columns past Wo
// read as 0, so ragged quads add nothing.
// Precision: f32 accumulation, per thread in chunks of one output row so the rounding
// error grows with Wo + Ho*N rather than with the pixel count.
//
// conv2d_backward_bias: db[co] (+)= sum_{n,p} dy[n, co, p]; one workgroup per channel,
// strided partial sums per thread, then a tree reduction in workgroup memory.

alias T = f32;

const RM: u32 = 8u;
const SPAN_MAX: u32 = 16u;

override WG: u32 = 64u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
override ACCUMULATE: bool = false;

struct FlipParams {
  total: u32,
  cout: u32,
  cin: u32,
}

@group(0) @binding(0) var<uniform> fp: FlipParams;
@group(0) @binding(1) var<storage, read> flip_src: array<T>;
@group(0) @binding(2) var<storage, read_write> flip_dst: array<T>;

@compute @workgroup_size(WG)
fn conv2d_flip_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= fp.total) { return; }
  let taps = KH * KW;
  let t = i % taps;
  let co = (i / taps) % fp.cout;
  let ci = i / (taps * fp.cout);
  flip_dst[i] = flip_src[(co * fp.cin + ci) * taps + taps - 1u - t];
}

struct WeightGradParams {
  cin: u32,
  cout: u32,
  hp: u32,
  wp4: u32,
  ho: u32,
  wo: u32,
  quads: u32,
  blocks_co: u32,
  cols: u32,      // cin * KH * KG thread columns
  batch: u32,
  x_base4: u32,   // vec4 offset of the first sample in the xp binding
  dy_base: u32,   // element offset of the first sample in the dy binding
}

@group(0) @binding(0) var<uniform> wp: WeightGradParams;
@group(0) @binding(1) var<storage, read> xp: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> dw: array<T>;

@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let lin = wid.x + wid.y * nwg.x;
  let cb = lin % wp.blocks_co;
  let col = (lin / wp.blocks_co) * WG + lid;
  let kg = (KW + 3u) / 4u;
  let colc = min(col, wp.cols - 1u);
  let g = colc % kg;
  let ky = (colc / kg) % KH;
  let ci = colc / (kg * KH);
  let co0 = cb * RM;

  var dy_row: array<u32, RM>;
  for (var r = 0u; r < RM; r++) { dy_row[r] = wp.dy_base + min(co0 + r, wp.cout - 1u) * wp.ho * wp.wo; }
  var acc: array<vec4<f32>, RM>;
  for (var r = 0u; r < RM; r++) { acc[r] = vec4<f32>(0.0); }

  // Input values the thread's taps touch from the quad's first one (a 1x1 kernel needs
  // one vec4 per quad, not two).
  let nv = (3u * STRIDE + min(KW, 4u) + 3u) / 4u;
  let plane4 = wp.hp * wp.wp4;
  for (var n = 0u; n < wp.batch; n++) {
    let x_n = wp.x_base4 + (n * wp.cin + ci) * plane4 + ky * wp.wp4 + g;
    let dy_n = n * wp.cout * wp.ho * wp.wo;
    for (var oy = 0u; oy < wp.ho; oy++) {
      var row_acc: array<vec4<f32>, RM>;
      for (var r = 0u; r < RM; r++) { row_acc[r] = vec4<f32>(0.0); }
      let x_row = x_n + oy * STRIDE * wp.wp4;
      let dy_oy = dy_n + oy * wp.wo;
      for (var ox0 = 0u; ox0 < wp.wo; ox0 += 4u) {
        var s: array<f32, SPAN_MAX>;
        let at = x_row + ox0 * STRIDE / 4u;
        for (var v = 0u; v < nv; v++) {
          let q4 = vec4<f32>(xp[at + v]);
          s[4u * v] = q4.x;
          s[4u * v + 1u] = q4.y;
          s[4u * v + 2u] = q4.z;
          s[4u * v + 3u] = q4.w;
        }
        for (var j = 0u; j < 4u; j++) {
          let o = j * STRIDE;
          let xv = vec4<f32>(s[o], s[o + 1u], s[o + 2u], s[o + 3u]);
          let ox = ox0 + j;
          let live = ox < wp.wo;
          let oxc = min(ox, wp.wo - 1u);
          for (var r = 0u; r < RM; r++) {
            let d = select(0.0, f32(dy[dy_row[r] + dy_oy + oxc]), live);
            row_acc[r] = fma(vec4<f32>(d), xv, row_acc[r]);
          }
        }
      }
      for (var r = 0u; r < RM; r++) { acc[r] += row_acc[r]; }
    }
  }

  if (col >= wp.cols) { return; }
  let taps = KH * KW;
  for (var r = 0u; r < RM; r++) {
    let co = co0 + r;
    if (co >= wp.cout) { break; }
    for (var t = 0u; t < 4u; t++) {
      let kx = 4u * g + t;
      if (kx >= KW) { break; }
      let at = (co * wp.cin + ci) * taps + ky * KW + kx;
      var v = acc[r][t];
      if (ACCUMULATE) { v += f32(dw[at]); }
      dw[at] = T(v);
    }
  }
}

struct BiasGradParams {
  cout: u32,
  plane: u32,     // ho * wo
  batch: u32,
  dy_base: u32,
}

@group(0) @binding(0) var<uniform> bp: BiasGradParams;
@group(0) @binding(1) var<storage, read> bias_dy: array<T>;
@group(0) @binding(2) var<storage, read_write> db: array<T>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn conv2d_backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let co = wid.x + wid.y * nwg.x;
  let live = co < bp.cout;
  var sum = 0.0;
  if (live) {
    for (var n = 0u; n < bp.batch; n++) {
      let base = bp.dy_base + (n * bp.cout + co) * bp.plane;
      for (var i = lid; i < bp.plane; i += WG) { sum += f32(bias_dy[base + i]); }
    }
  }
  partial[lid] = sum;
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lid < half) { partial[lid] += partial[lid + half]; }
  }
  if (lid == 0u && live) {
    var v = partial[0];
    if (ACCUMULATE) { v += f32(db[co]); }
    db[co] = T(v);
  }
}
