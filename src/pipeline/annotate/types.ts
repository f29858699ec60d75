// The ground-truth side of the Protocol-I evaluation: an Annotator gives, for one
// generated image and the classes its prompt names, a mask per class or null when it
// finds none. The evaluation (pipeline/eval/run.ts) only calls annotate(); a detector
// annotator (the paper's oracle: top-scoring instance per class, score >= 0.05, mask >
// 0.5) implements annotate() on the image and nothing else.
import { InputError, ShapeError } from '../../gpu/errors.js';

/** One generated image to annotate. Pixel arrays are row-major, top row first. */
export interface AnnotateImage {
  width: number;
  height: number;
  /** RGB in [0, 1], channel-major [3, height, width]. */
  rgb: Float32Array;
  /** The same image as 8-bit RGBA [height, width, 4]. */
  rgba: Uint8Array;
}

export interface AnnotateSample {
  /** Stable sample id (test set + index), e.g. `two_seen-0003`. */
  id: string;
  image: AnnotateImage;
  /** The classes the prompt names, each once. */
  classes: readonly string[];
  prompt: string;
}

/** A planned sample (before its image exists), for annotators that can check ahead. */
export interface PlannedAnnotation {
  id: string;
  classes: readonly string[];
}

export interface Annotator {
  /** Short name for reports (`masks`, `detector`, ...). */
  readonly name: string;
  /** What the ground truth depends on (a file path, a checkpoint, thresholds): stored with
   *  a run so a resumed run is refused if it changed. */
  readonly identity: Record<string, unknown>;
  /** Optional: called once with every planned sample before any generation, so that an
   *  annotator that cannot cover them (a mask folder without that sample) fails early. */
  prepare?(samples: readonly PlannedAnnotation[]): Promise<void>;
  /** Per class of `sample.classes`: a height*width mask (non-zero inside) or null when the
   *  annotator found no such object. */
  annotate(sample: AnnotateSample): Promise<Map<string, Uint8Array | null>>;
}

/**
 * Checks an annotator's answer: exactly the sample's classes, each mask height*width.
 * Returns 0/1 masks in `classes` order (null kept).
 */
export function checkAnnotation(annotator: string, sample: AnnotateSample, got: Map<string, Uint8Array | null>): Array<Uint8Array | null> {
  const { width, height } = sample.image;
  const extra = [...got.keys()].filter((c) => !sample.classes.includes(c));
  if (extra.length) throw new InputError(`annotator '${annotator}' answered classes [${extra.join(', ')}] for sample ${sample.id}, which names only [${sample.classes.join(', ')}]`);
  return sample.classes.map((c) => {
    if (!got.has(c)) throw new InputError(`annotator '${annotator}' gave no answer for class '${c}' of sample ${sample.id}; it must give a mask or null for every class`);
    const m = got.get(c) ?? null;
    if (m === null) return null;
    if (m.length !== width * height) {
      throw new ShapeError(`annotator '${annotator}': the '${c}' mask of sample ${sample.id} has ${m.length} pixels, the image ${height}x${width} = ${width * height}`);
    }
    return Uint8Array.from(m, (v) => (v ? 1 : 0));
  });
}
