// Class vocabularies and seen/unseen splits of the paper's Protocol-I evaluation, as data.
//
// PASCAL VOC: the 20 classes in VOC 2012 order (in SegmentationClass PNGs class i has
// label i + 1; 0 is background, 255 the void border), spelled as the official prompts
// spell them ("a photograph of a tvmonitor"). The three official 15/5 splits are the
// rows of VOC/class_split{1,2,3}.csv of Lipurple/Grounded-Diffusion (commit 5680115) in
// file order; train.py:282-292 reads their first column and takes class_total[:15] as
// seen (class_train) and class_total[15:] as unseen (class_test). The CSVs' second
// column numbers split 1's row order (it is not the VOC label), so it is not stored here.
//
// COCO: the 80 thing classes in category-id order, with the dataset's own names (as
// torchvision and mmdetection spell them: 'traffic light', 'tv', 'hair drier'). The
// official repository ships no COCO split (train.py reads mmdetection/demo/
// coco_80_class.txt, a plain list of the 80 names, and no seen/unseen file). The 65/15
// split below is the common zero-shot one: unseen = the 15 classes of Rahman, Khan and
// Barnes, "Improved Visual-Semantic Alignment for Zero-Shot Object Detection" (AAAI 2020),
// the split the zero-shot instance segmentation benchmark (Zheng et al., ZSI, CVPR 2021)
// uses as "65/15". (ZS3Net / SPNet's COCO splits are over COCO-Stuff's 171 classes,
// stuff included, so they do not apply to 80 thing classes.)
import { InputError } from '../../gpu/errors.js';

export interface ClassSplit {
  /** Where the split comes from (for reports). */
  name: string;
  seen: readonly string[];
  unseen: readonly string[];
}

export const VOC_CLASSES: readonly string[] = Object.freeze([
  'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
  'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
]);

/** First column of VOC/class_split<k>.csv, in file order. */
export const VOC_SPLIT_ROWS: Readonly<Record<1 | 2 | 3, readonly string[]>> = Object.freeze({
  1: Object.freeze([
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'cat', 'chair', 'cow', 'diningtable',
    'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'tvmonitor', 'car', 'dog', 'sofa', 'train',
  ]),
  2: Object.freeze([
    'tvmonitor', 'car', 'dog', 'sofa', 'train', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle',
    'bus', 'cat', 'chair', 'cow', 'diningtable', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
  ]),
  3: Object.freeze([
    'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'tvmonitor', 'car', 'dog', 'sofa', 'train',
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'cat', 'chair', 'cow', 'diningtable',
  ]),
});

/** train.py: the first 15 rows are seen, the last 5 unseen. */
const VOC_SEEN_COUNT = 15;

/** Official PASCAL VOC split 1, 2 or 3. */
export function vocSplit(k: number): ClassSplit {
  if (k !== 1 && k !== 2 && k !== 3) throw new InputError(`PASCAL VOC split ${k} does not exist: the official splits are 1, 2 and 3`);
  const rows = VOC_SPLIT_ROWS[k];
  return { name: `voc split ${k}`, seen: rows.slice(0, VOC_SEEN_COUNT), unseen: rows.slice(VOC_SEEN_COUNT) };
}

export const COCO_CLASSES: readonly string[] = Object.freeze([
  'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
  'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
  'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
  'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
  'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
  'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
  'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
  'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush',
]);

/** The 15 unseen classes of the 65/15 split (Rahman et al. 2020), in COCO order. */
export const COCO_UNSEEN_65_15: readonly string[] = Object.freeze([
  'airplane', 'train', 'parking meter', 'cat', 'bear', 'suitcase', 'frisbee', 'snowboard',
  'fork', 'sandwich', 'hot dog', 'toilet', 'mouse', 'toaster', 'hair drier',
]);

/** COCO 65 seen / 15 unseen, both in COCO category order. */
export function cocoSplit65_15(): ClassSplit {
  const unseen = new Set(COCO_UNSEEN_65_15);
  return {
    name: 'coco 65/15 (Rahman et al. 2020)',
    seen: COCO_CLASSES.filter((c) => !unseen.has(c)),
    unseen: COCO_CLASSES.filter((c) => unseen.has(c)),
  };
}
