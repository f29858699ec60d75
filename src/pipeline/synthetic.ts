// A synthetic grounding task with known answers, for learning tests and smoke runs of
// the training loop without Stable Diffusion. Each class c has a fixed random text
// embedding e_c. An image holds one or two shapes (disc, square, triangle, diamond, ring,
// cross) at random places and sizes, one per class; every feature tensor (group g,
// index i, C channels at resolution R) is
//     f[ch, y, x] = sum_c mask_c(y, x) * (A_gi e_c)[ch] + noise * N(0, 1)
// with A_gi a fixed random [C, context_dim] matrix. The class is therefore written into
// the features through the same linear map for every class, so a module that learns to
// match text embeddings against features generalises to held-out classes, whose
// embeddings it never saw (the embeddings share a low-rank subspace that the seen
// classes span). Targets are the masks rendered at out_size.
import { Rng, type FeatureGroup, FEATURE_GROUPS, type HostArray, type TrainingSample } from '../io/samples.js';

/** The parts of a GroundingConfig the generator needs. */
export interface SyntheticSpec {
  feature_channels: Record<FeatureGroup, number[]>;
  feature_res: Record<FeatureGroup, number>;
  out_size: number;
  context_dim: number;
}

export interface SyntheticOptions {
  /** Classes in all (default 8); the last `heldOut` never appear in training samples. */
  numClasses?: number;
  heldOut?: number;
  /** Standard deviation of the feature noise (default 0.3; class signals have unit scale). */
  noise?: number;
  /** Probability that an image holds two classes (default 0.5). */
  twoClassProb?: number;
  /** Probability of an extra class named in the prompt but absent from the image (empty
   *  target), as when the detector misses an object (default 0). */
  absentProb?: number;
  /** Class embeddings lie in a random subspace of this dimension (default 4). With
   *  fewer dimensions than seen classes, the seen classes span it, so a linear reading of
   *  the features can reach held-out classes; with more, held-out classes carry
   *  directions no training sample showed. */
  embeddingRank?: number;
  seed?: number;
}

export const SHAPES = ['disc', 'square', 'triangle', 'diamond', 'ring', 'cross'] as const;
export type ShapeKind = (typeof SHAPES)[number];

/** A shape in unit coordinates (centre, half-size in [0, 1] image units). */
export interface ShapeSpec { kind: ShapeKind; cx: number; cy: number; r: number }

/** Whether the unit-square point (x, y) lies inside the shape. */
export function insideShape(s: ShapeSpec, x: number, y: number): boolean {
  const dx = (x - s.cx) / s.r;
  const dy = (y - s.cy) / s.r;
  switch (s.kind) {
    case 'disc': return dx * dx + dy * dy <= 1;
    case 'square': return Math.abs(dx) <= 0.85 && Math.abs(dy) <= 0.85;
    case 'triangle': return dy <= 0.8 && dy >= -1 + 2 * Math.abs(dx) - 0.2 && Math.abs(dx) <= 0.9;
    case 'diamond': return Math.abs(dx) + Math.abs(dy) <= 1.1;
    case 'ring': {
      const d = dx * dx + dy * dy;
      return d <= 1 && d >= 0.3;
    }
    case 'cross': return (Math.abs(dx) <= 0.35 && Math.abs(dy) <= 1) || (Math.abs(dy) <= 0.35 && Math.abs(dx) <= 1);
  }
}

/** The shape rasterised at size x size by pixel centres: 1 inside, 0 outside. */
export function rasterize(s: ShapeSpec, size: number): Float32Array {
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) out[y * size + x] = insideShape(s, (x + 0.5) / size, (y + 0.5) / size) ? 1 : 0;
  }
  return out;
}

function hashSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d) >>> 0;
    h ^= h >>> 12;
  }
  return h >>> 0;
}

export class SyntheticTask {
  readonly classNames: string[];
  readonly seen: number[];
  readonly unseen: number[];
  readonly noise: number;
  readonly twoClassProb: number;
  readonly absentProb: number;
  readonly seed: number;
  private embeddings: Float32Array[];
  /** Per group and tensor, A e_c for every class: [class][C]. */
  private signatures: Record<FeatureGroup, Float32Array[][]>;

  constructor(readonly spec: SyntheticSpec, opts: SyntheticOptions = {}) {
    const K = opts.numClasses ?? 8;
    const H = opts.heldOut ?? 2;
    if (!(K >= 2 && H >= 1 && H < K)) throw new RangeError(`synthetic task needs numClasses >= 2 and 1 <= heldOut < numClasses, got ${K} / ${H}`);
    this.noise = opts.noise ?? 0.3;
    this.twoClassProb = opts.twoClassProb ?? 0.5;
    this.absentProb = opts.absentProb ?? 0;
    this.seed = opts.seed ?? 0;
    this.classNames = Array.from({ length: K }, (_, c) => `${SHAPES[c % SHAPES.length]}_thing_${c}`);
    this.seen = Array.from({ length: K - H }, (_, c) => c);
    this.unseen = Array.from({ length: H }, (_, c) => K - H + c);
    const rng = new Rng(hashSeed(this.seed, 1));
    const D = spec.context_dim;
    const r = opts.embeddingRank ?? 4;
    if (!(Number.isInteger(r) && r >= 1)) throw new RangeError(`embeddingRank must be a positive integer, got ${r}`);
    const basis = Float32Array.from({ length: D * r }, () => rng.normal() / Math.sqrt(r));
    this.embeddings = Array.from({ length: K }, () => {
      const z = Float32Array.from({ length: r }, () => rng.normal());
      return Float32Array.from({ length: D }, (_, d) => {
        let v = 0;
        for (let j = 0; j < r; j++) v += basis[d * r + j] * z[j];
        return v;
      });
    });
    this.signatures = {} as Record<FeatureGroup, Float32Array[][]>;
    for (const g of FEATURE_GROUPS) {
      this.signatures[g] = spec.feature_channels[g].map((C) => {
        // A [C, D] ~ N(0, 1/D), so each signature entry has unit variance.
        const A = Float32Array.from({ length: C * D }, () => rng.normal() / Math.sqrt(D));
        return this.embeddings.map((e) => {
          const sig = new Float32Array(C);
          for (let ch = 0; ch < C; ch++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += A[ch * D + d] * e[d];
            sig[ch] = s;
          }
          return sig;
        });
      });
    }
  }

  /** The fixed text embedding of class c ([context_dim]). */
  embedding(c: number): Float32Array {
    return this.embeddings[c];
  }

  /** Sample k of a split, a pure function of (seed, split, k): training position k always
   *  sees the same image, which makes resumed runs identical to uninterrupted ones. */
  sample(split: 'seen' | 'unseen', k: number): TrainingSample {
    const rng = new Rng(hashSeed(this.seed, split === 'seen' ? 2 : 3, k));
    const pool = split === 'seen' ? this.seen : this.unseen;
    const count = pool.length > 1 && rng.next() < this.twoClassProb ? 2 : 1;
    const present: number[] = [];
    while (present.length < count) {
      const c = pool[rng.int(pool.length)];
      if (!present.includes(c)) present.push(c);
    }
    const shapes: (ShapeSpec | null)[] = present.map(() => ({
      kind: SHAPES[rng.int(SHAPES.length)],
      cx: 0.25 + 0.5 * rng.next(),
      cy: 0.25 + 0.5 * rng.next(),
      r: 0.15 + 0.15 * rng.next(),
    }));
    const classes = [...present];
    if (rng.next() < this.absentProb) {
      const others = pool.filter((c) => !present.includes(c));
      if (others.length > 0) {
        classes.push(others[rng.int(others.length)]);
        shapes.push(null);
      }
    }
    const features = {} as Record<FeatureGroup, HostArray[]>;
    for (const g of FEATURE_GROUPS) {
      const R = this.spec.feature_res[g];
      const masks = shapes.map((s) => (s ? rasterize(s, R) : null));
      features[g] = this.spec.feature_channels[g].map((C, i) => {
        const data = new Float32Array(C * R * R);
        for (let ch = 0; ch < C; ch++) {
          const base = ch * R * R;
          for (let p = 0; p < R * R; p++) data[base + p] = this.noise * rng.normal();
        }
        classes.forEach((c, j) => {
          const m = masks[j];
          if (!m) return;
          const sig = this.signatures[g][i][c];
          for (let ch = 0; ch < C; ch++) {
            const base = ch * R * R;
            for (let p = 0; p < R * R; p++) if (m[p]) data[base + p] += sig[ch];
          }
        });
        return { shape: [1, C, R, R], data };
      });
    }
    const D = this.spec.context_dim;
    const S = this.spec.out_size;
    const text = new Float32Array(classes.length * D);
    classes.forEach((c, j) => text.set(this.embeddings[c], j * D));
    const target = new Float32Array(classes.length * S * S);
    shapes.forEach((s, j) => {
      if (s) target.set(rasterize(s, S), j * S * S);
    });
    const names = classes.map((c) => this.classNames[c]);
    return {
      features,
      textEmbedding: { shape: [classes.length, D], data: text },
      target: { shape: [classes.length, S, S], data: target },
      classes: names,
      prompt: `a photograph of a ${names.slice(0, count).join(' and a ')}`,
    };
  }
}
