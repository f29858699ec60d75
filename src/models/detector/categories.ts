// The COCO category names of torchvision's detection models (label = index; 91 entries,
// 0 the background and 10 'N/A' slots of ids COCO never used: 12, 26, 29, 30, 45, 66, 68,
// 69, 71, 83), as torchvision's _COCO_CATEGORIES (models/detection/_meta.py). The model
// scores the N/A slots like any other class.
export const COCO_CATEGORIES: readonly string[] = Object.freeze([
  '__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
  'truck', 'boat', 'traffic light', 'fire hydrant', 'N/A', 'stop sign', 'parking meter', 'bench',
  'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear',
  'zebra', 'giraffe', 'N/A', 'backpack', 'umbrella', 'N/A', 'N/A', 'handbag',
  'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat',
  'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle', 'N/A', 'wine glass', 'cup',
  'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
  'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
  'potted plant', 'bed', 'N/A', 'dining table', 'N/A', 'N/A', 'toilet', 'N/A',
  'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
  'toaster', 'sink', 'refrigerator', 'N/A', 'book', 'clock', 'vase', 'scissors',
  'teddy bear', 'hair drier', 'toothbrush',
]);

/** Whether a label names a real COCO category (not the background or an N/A slot). */
export const isRealCategory = (label: number): boolean => label > 0 && label < COCO_CATEGORIES.length && COCO_CATEGORIES[label] !== 'N/A';
