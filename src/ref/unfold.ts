// Float64 references for the patch unfold, written from F.unfold(x, p, stride=p).transpose(1, 2).

/** x [N,C,H,W] -> y [N, L, C*p*p]: y[n, py*(W/p)+px, c*p*p + ky*p + kx] = x[n, c, py*p+ky, px*p+kx]. */
export function patchUnfoldRef(x: ArrayLike<number>, [n, c, h, w]: number[], p: number): Float64Array {
  const hp = h / p;
  const wp = w / p;
  const cols = c * p * p;
  const y = new Float64Array(n * hp * wp * cols);
  for (let b = 0; b < n; b++) {
    for (let py = 0; py < hp; py++) {
      for (let px = 0; px < wp; px++) {
        for (let ch = 0; ch < c; ch++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) {
              const row = (b * hp + py) * wp + px;
              y[row * cols + ch * p * p + ky * p + kx] = x[((b * c + ch) * h + py * p + ky) * w + px * p + kx];
            }
          }
        }
      }
    }
  }
  return y;
}

/** The adjoint (F.fold with kernel = stride = p): dx[n,c,y,x] += dy[n, l, col] over the
 *  same index pairs as the forward; dy [N, L, C*p*p] -> dx [N,C,H,W]. */
export function patchUnfoldBackwardRef(dy: ArrayLike<number>, [n, c, h, w]: number[], p: number): Float64Array {
  const hp = h / p;
  const wp = w / p;
  const cols = c * p * p;
  const dx = new Float64Array(n * c * h * w);
  for (let b = 0; b < n; b++) {
    for (let py = 0; py < hp; py++) {
      for (let px = 0; px < wp; px++) {
        for (let ch = 0; ch < c; ch++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) {
              const row = (b * hp + py) * wp + px;
              dx[((b * c + ch) * h + py * p + ky) * w + px * p + kx] += dy[row * cols + ch * p * p + ky * p + kx];
            }
          }
        }
      }
    }
  }
  return dx;
}
