// Roofline probe: the adapter's arithmetic and memory ceilings, measured by the kernel
// benchmark runner in the same run as the kernels it rates (bench/probe.ts).
//
// probe_fma: every thread runs CHAINS independent vec4 FMA chains for `iters` steps, so
//   the ALUs never wait on a previous result (one chain would measure FMA latency, not
//   throughput). Multiplier and addend come from the uniform, so the compiler cannot fold
//   the chains; the sum of the chains is stored per thread so none is dead code.
//   Flops per thread: iters * CHAINS * 4 lanes * 2 (FMA = 2 flops).
//   Mapping: one thread per output element, 1-D grid folded into (x, y) by the host.
// probe_copy: out[i] = in[i] as vec4, COPY_PER_THREAD vec4s per thread at a stride of
//   the thread count, so neighbouring threads touch neighbouring vec4s on every step.
//   Four per thread measured about 2x one per thread on lavapipe (per-invocation
//   overhead); 8 and 32 were slower again. Bandwidth counts read + written bytes.
// Precision: f32 only (the rates are the f32 roofline the kernels are rated against).

override WG: u32 = 256u;

struct Params {
  n: u32,       // threads (probe_fma) or vec4 elements (probe_copy)
  m: u32,       // probe_fma: FMA steps per chain; probe_copy: threads in the grid
  mul: f32,     // chain multiplier, |mul| < 1 keeps the chains finite
  add: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@group(0) @binding(1) var<storage, read_write> fma_out: array<f32>;

@compute @workgroup_size(WG)
fn probe_fma(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  let m = vec4<f32>(p.mul);
  let a = vec4<f32>(p.add);
  let s = f32(i & 1023u) * 1e-3;
  // Eight chains (CHAINS = 8): enough independent work to cover FMA latency on CPUs
  // (4-cycle latency x 2 ports) and GPUs alike.
  var c0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
  var c1 = c0 + 1.0;
  var c2 = c0 + 2.0;
  var c3 = c0 + 3.0;
  var c4 = c0 + 4.0;
  var c5 = c0 + 5.0;
  var c6 = c0 + 6.0;
  var c7 = c0 + 7.0;
  for (var k = 0u; k < p.m; k++) {
    c0 = fma(c0, m, a);
    c1 = fma(c1, m, a);
    c2 = fma(c2, m, a);
    c3 = fma(c3, m, a);
    c4 = fma(c4, m, a);
    c5 = fma(c5, m, a);
    c6 = fma(c6, m, a);
    c7 = fma(c7, m, a);
  }
  let t = (c0 + c1) + (c2 + c3) + (c4 + c5) + (c6 + c7);
  fma_out[i] = t.x + t.y + t.z + t.w;
}

@group(0) @binding(1) var<storage, read> copy_in: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> copy_out: array<vec4<f32>>;

const COPY_PER_THREAD = 4u;

@compute @workgroup_size(WG)
fn probe_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let t = linear_index(wid, nwg, lid);
  for (var k = 0u; k < COPY_PER_THREAD; k++) {
    let i = t + k * p.m;
    if (i < p.n) { copy_out[i] = copy_in[i]; }
  }
}
