// Float64 references for the segmentation losses over logits / targets [R, P].

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const weightOf = (w: ArrayLike<number> | undefined, r: number) => (w ? w[r] : 1);

/** sum_r w_r * mean_p (max(x, 0) - x t + log(1 + exp(-|x|))). */
export function bceRef(x: ArrayLike<number>, t: ArrayLike<number>, R: number, P: number, w?: ArrayLike<number>): number {
  let loss = 0;
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let i = r * P; i < (r + 1) * P; i++) s += Math.max(x[i], 0) - x[i] * t[i] + Math.log1p(Math.exp(-Math.abs(x[i])));
    loss += (weightOf(w, r) * s) / P;
  }
  return loss;
}

/** d bceRef / dx scaled by dloss: dloss * w_r * (sigmoid(x) - t) / P. */
export function bceBackwardRef(x: ArrayLike<number>, t: ArrayLike<number>, R: number, P: number, dloss: number, w?: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(R * P);
  for (let i = 0; i < R * P; i++) dx[i] = (dloss * weightOf(w, Math.floor(i / P)) * (sigmoid(x[i]) - t[i])) / P;
  return dx;
}

/** sum_r w_r * (1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth)), p = sigmoid(x). */
export function diceRef(x: ArrayLike<number>, t: ArrayLike<number>, R: number, P: number, smooth: number, w?: ArrayLike<number>): number {
  let loss = 0;
  for (let r = 0; r < R; r++) {
    let inter = 0;
    let sp = 0;
    let st = 0;
    for (let i = r * P; i < (r + 1) * P; i++) {
      const p = sigmoid(x[i]);
      inter += p * t[i];
      sp += p;
      st += t[i];
    }
    loss += weightOf(w, r) * (1 - (2 * inter + smooth) / (sp + st + smooth));
  }
  return loss;
}

/** d diceRef / dx scaled by dloss (quotient rule through p = sigmoid(x)). */
export function diceBackwardRef(
  x: ArrayLike<number>, t: ArrayLike<number>, R: number, P: number, dloss: number, smooth: number, w?: ArrayLike<number>,
): Float64Array {
  const dx = new Float64Array(R * P);
  for (let r = 0; r < R; r++) {
    let inter = 0;
    let sp = 0;
    let st = 0;
    for (let i = r * P; i < (r + 1) * P; i++) {
      inter += sigmoid(x[i]) * t[i];
      sp += sigmoid(x[i]);
      st += t[i];
    }
    const num = 2 * inter + smooth;
    const den = sp + st + smooth;
    for (let i = r * P; i < (r + 1) * P; i++) {
      const p = sigmoid(x[i]);
      // d(-num/den)/dp_i = -(2 t_i den - num) / den^2
      dx[i] = dloss * weightOf(w, r) * (-(2 * t[i] * den - num) / (den * den)) * p * (1 - p);
    }
  }
  return dx;
}
