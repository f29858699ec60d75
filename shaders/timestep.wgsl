// Sinusoidal timestep embedding, diffusers get_timestep_embedding:
//   exponent[k] = -ln(max_period) * k / (half - shift),  k < half = dim / 2
//   arg[b, k]   = scale * (t[b] * exp(exponent[k]))
//   emb[b]      = [sin(arg), cos(arg)] ([cos, sin] when flipped), zero-padded if dim is odd.
// Layout: timesteps f32 [B], emb f32 [B, dim]. Mapping: one thread per output element;
// the 1-D workgroup index is folded into (x, y) by the host (wid.x + wid.y * nwg.x).
// Precision: every step is rounded to f32 in torch's order, so the argument equals
// torch's f32 argument. exp, sin and cos are computed here rather than with the
// builtins, whose accuracy WGSL leaves loose (sin/cos only to 2^-11 absolute on
// [-pi, pi], exp to 3 + 2|x| ulp): arguments reach ~1000 rad at t = 999, where a 1e-6
// relative error in exp alone would move sin by 1e-3. exp: Cody-Waite reduction by ln 2
// and a degree-7 Taylor polynomial; sin/cos: Cody-Waite reduction by pi/2 with a
// 3-part constant (parts 1 and 2 have 12 significant bits, so q * part is exact for
// |q| < 4096, i.e. |arg| < 6400) and Taylor polynomials on [-pi/4, pi/4]. Both are
// within a few f32 ulp of the correctly rounded result.

override WG: u32 = 64u;

struct Params {
  n: u32,               // output elements B * dim
  dim: u32,
  half: u32,            // dim / 2
  flip: u32,            // 1: cos first
  neg_log_period: f32,  // f32(-ln(max_period))
  denom: f32,           // f32(half - shift)
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> timesteps: array<f32>;
@group(0) @binding(2) var<storage, read_write> emb: array<f32>;

const LN2_HI: f32 = 0.693145751953125;         // 15 significant bits
const LN2_LO: f32 = 1.4286068203094172e-6;
const PIO2_A: f32 = 1.57080078125;             // 3217 / 2048
const PIO2_B: f32 = -4.453584551811218e-6;     // -2391 * 2^-29
const PIO2_C: f32 = -8.705516307827565e-10;

fn exp_f32(x: f32) -> f32 {
  let k = round(x * 1.4426950408889634);
  let r = (x - k * LN2_HI) - k * LN2_LO;   // |r| <= 0.35: Taylor remainder < 6e-9
  let e = 1.0 + r * (1.0 + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 +
          r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
  return ldexp(e, i32(k));
}

// sin and cos of r in [-pi/4, pi/4] (Taylor remainders below 2e-9).
fn sin_poly(r: f32) -> f32 {
  let r2 = r * r;
  return r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0))));
}

fn cos_poly(r: f32) -> f32 {
  let r2 = r * r;
  return 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
}

// sin(x) (want_cos false) or cos(x): x = q * pi/2 + r, then the quadrant q mod 4 picks
// +-sin(r) or +-cos(r).
fn sincos(x: f32, want_cos: bool) -> f32 {
  let q = round(x * 0.63661977236758134);
  let r = ((x - q * PIO2_A) - q * PIO2_B) - q * PIO2_C;
  let quadrant = (u32(i32(q)) + select(0u, 1u, want_cos)) & 3u;   // cos(x) = sin(x + pi/2)
  let v = select(sin_poly(r), cos_poly(r), (quadrant & 1u) == 1u);
  return select(v, -v, quadrant >= 2u);
}

@compute @workgroup_size(WG)
fn timestep_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.n) { return; }
  let j = t % p.dim;
  if (j >= 2u * p.half) {
    emb[t] = 0.0;   // odd dim: F.pad with one zero column
    return;
  }
  let second = j >= p.half;
  let k = j - select(0u, p.half, second);
  let exponent = (p.neg_log_period * f32(k)) / p.denom;
  let arg = p.scale * (timesteps[t / p.dim] * exp_f32(exponent));
  emb[t] = sincos(arg, second != (p.flip != 0u));
}
