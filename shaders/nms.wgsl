// Non-maximum suppression on the GPU: the benchmark contender of the host NMS
// (src/nn/nms.ts, which the detector uses; see its header for the measurement).
// Boxes arrive sorted by decreasing score (the host sorts, stably), as [N] vec4 (x1, y1,
// x2, y2), with an optional group id per box (class or level).
//   nms_mask_forward: bitmask[r, w] bit b = 1 iff box j = 32w + b comes after box r
//     (j > r), is in r's group, and IoU(r, j) > threshold. One thread per (row, word) of
//     the run of rows [row_start, row_start + rows); 32 IoUs per thread.
//   nms_sweep_forward: one workgroup walks the rows of the run in order, keeping the
//     removed-bitmap in workgroup memory: per block of 32 rows, thread 0 resolves the
//     block's own word sequentially (the diagonal block), then every thread ORs the
//     kept rows' masks into the later words. The bitmap persists in `removed` between
//     runs, so a mask larger than the binding limit is built and swept a band at a time.
// Mapping: the mask kernel's 1-D workgroup index is folded into (x, y) by the host and
// recovered as wid.x + wid.y * nwg.x.
// Precision: IoU = inter / ((area_r + area_j) - inter) in f32 as torchvision computes it,
// except that WGSL's division may be 2.5 ulp off the correctly rounded quotient; the
// threshold is the largest f32 <= the float64 threshold, so `iou > thr` compares as torch
// does. A zero union (two zero-area boxes: 0/0 in torch, NaN) suppresses nothing.

override WG: u32 = 256u;
override MAX_WORDS: u32 = 4064u;

struct Params {
  n: u32,           // boxes
  words: u32,       // ceil(n / 32): mask row length
  row_start: u32,   // first row of this run (a multiple of 32)
  rows: u32,        // rows in this run
  thr: f32,         // largest f32 <= the IoU threshold
  use_groups: u32,  // 0: every box in one group
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> mk_boxes: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mk_groups: array<u32>;
@group(0) @binding(3) var<storage, read_write> mk_mask: array<u32>;

fn area(b: vec4<f32>) -> f32 {
  return (b.z - b.x) * (b.w - b.y);
}

@compute @workgroup_size(WG)
fn nms_mask_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.rows * p.words) { return; }
  let r = p.row_start + t / p.words;
  let w = t % p.words;
  let bi = mk_boxes[r];
  let ai = area(bi);
  let gi = select(0u, mk_groups[r], p.use_groups != 0u);
  var bits = 0u;
  for (var b = 0u; b < 32u; b++) {
    let j = w * 32u + b;
    if (j >= p.n) { break; }
    if (j <= r) { continue; }
    if (p.use_groups != 0u && mk_groups[j] != gi) { continue; }
    let bj = mk_boxes[j];
    let dw = min(bi.z, bj.z) - max(bi.x, bj.x);
    let dh = min(bi.w, bj.w) - max(bi.y, bj.y);
    let inter = max(dw, 0.0) * max(dh, 0.0);
    let uni = (ai + area(bj)) - inter;
    if (uni > 0.0 && inter / uni > p.thr) { bits |= 1u << b; }
  }
  mk_mask[t] = bits;
}

@group(0) @binding(1) var<storage, read> sw_mask: array<u32>;
@group(0) @binding(2) var<storage, read_write> sw_removed: array<u32>;

var<workgroup> removed_s: array<u32, MAX_WORDS>;
var<workgroup> kept_s: u32;

@compute @workgroup_size(WG)
fn nms_sweep_forward(@builtin(local_invocation_index) lid: u32) {
  for (var w = lid; w < p.words; w += WG) { removed_s[w] = sw_removed[w]; }
  workgroupBarrier();
  let b_end = (p.row_start + p.rows + 31u) / 32u;
  for (var b = p.row_start / 32u; b < b_end; b++) {
    if (lid == 0u) {
      // The diagonal block: rows 32b.. against each other, in order.
      var local = removed_s[b];
      var kept = 0u;
      for (var bit = 0u; bit < 32u; bit++) {
        let i = b * 32u + bit;
        if (i >= p.n) { break; }
        if (((local >> bit) & 1u) == 0u) {
          kept |= 1u << bit;
          local |= sw_mask[(i - p.row_start) * p.words + b];
        }
      }
      removed_s[b] = local;
      kept_s = kept;
    }
    let kb = workgroupUniformLoad(&kept_s);
    for (var w = b + 1u + lid; w < p.words; w += WG) {
      var acc = removed_s[w];
      var m = kb;
      loop {
        if (m == 0u) { break; }
        let bit = countTrailingZeros(m);
        acc |= sw_mask[(b * 32u + bit - p.row_start) * p.words + w];
        m &= m - 1u;
      }
      removed_s[w] = acc;
    }
    workgroupBarrier();
  }
  for (var w = lid; w < p.words; w += WG) { sw_removed[w] = removed_s[w]; }
}
