// Chan et al.'s pairwise merge of running statistics (count, mean, M2), shared by the
// norm kernels' reduction trees (`// #include "welford.wgsl"`). M2 is the sum of squared
// deviations; merging never forms E[x^2] - E[x]^2, so large means keep their precision.
fn chan_merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (n == 0.0) { return a; }
  let d = b.y - a.y;
  let f = b.x / n;
  return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}
