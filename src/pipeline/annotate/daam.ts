// The `daam` annotator: DAAM masks of the sampling run that made the image, used as
// pseudo-labels (weaker than a detector's masks, but it needs no detector and no supplied
// ground truth; CI builds its datasets with it on the tiny model). DAAM needs the run's
// cross-attention, not just the picture, so whoever generates the image hands the word
// maps over with provide() before asking annotate() (the dataset builder does); the
// annotator owns the rule that turns a map into a mask:
//   mask = normalised heat map > threshold (castorini/daam's 0.4 by default);
//   a class whose mask is empty is not found (null: no loss for it).
import { InputError, ShapeError } from '../../gpu/errors.js';
import { DAAM_THRESHOLD } from '../daam.js';
import type { AnnotateSample, Annotator } from './types.js';

/** What the annotator needs of a DAAM word map (daam.ts DaamWordMap has it). */
export interface DaamHeatmap {
  word: string;
  /** Min-max normalised map at the image size, [height * width]. */
  heatmap: Float32Array;
}

export class DaamAnnotator implements Annotator {
  readonly name = 'daam';
  readonly identity: Record<string, unknown>;
  private readonly provided = new Map<string, readonly DaamHeatmap[]>();

  constructor(readonly threshold = DAAM_THRESHOLD) {
    if (!(threshold >= 0 && threshold < 1)) throw new InputError(`daam annotator: the threshold ${threshold} must be in [0, 1) (DAAM's is ${DAAM_THRESHOLD})`);
    this.identity = { annotator: 'daam', threshold };
  }

  /** The DAAM maps of sample `id` (from its sampling run), for the next annotate(). */
  provide(id: string, maps: readonly DaamHeatmap[]): void {
    this.provided.set(id, maps);
  }

  async annotate(sample: AnnotateSample): Promise<Map<string, Uint8Array | null>> {
    const maps = this.provided.get(sample.id);
    if (!maps) {
      throw new InputError(`daam annotator: no DAAM maps were provided for sample ${sample.id}; DAAM needs the sampling run's cross-attention, so generate the image with DAAM and call provide() first`);
    }
    this.provided.delete(sample.id);
    const n = sample.image.width * sample.image.height;
    const out = new Map<string, Uint8Array | null>();
    for (const c of sample.classes) {
      const m = maps.find((x) => x.word === c);
      if (!m) throw new InputError(`daam annotator: the maps of sample ${sample.id} have no word '${c}' (words: ${maps.map((x) => x.word).join(', ')})`);
      if (m.heatmap.length !== n) throw new ShapeError(`daam annotator: the '${c}' map of sample ${sample.id} has ${m.heatmap.length} pixels, the image ${n}`);
      const mask = Uint8Array.from(m.heatmap, (v) => (v > this.threshold ? 1 : 0));
      out.set(c, mask.includes(1) ? mask : null);
    }
    return out;
  }
}
