import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { cellAnchors, gridAnchors, roundHalfEven } from '../../src/nn/anchors.js';

describe('anchors', () => {
  it('round half to even', () => {
    expect([0.5, 1.5, 2.5, -2.5, -0.6, 22.627, -22.5].map(roundHalfEven)).toEqual([0, 2, 2, -2, -1, 23, -22]);
  });

  it("cell anchors of torchvision's default generator", () => {
    // Size 32, ratios 0.5, 1, 2: ws = 32 / sqrt(r) = 45.25, 32, 22.63 -> halves rounded.
    expect(Array.from(cellAnchors([32], [0.5, 1, 2]))).toEqual([-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23]);
    expect(Array.from(cellAnchors([512], [0.5, 1, 2]))).toEqual([-362, -181, 362, 181, -256, -256, 256, 256, -181, -362, 181, 362]);
    // Ratio-major, then sizes.
    expect(Array.from(cellAnchors([2, 4], [1]))).toEqual([-1, -1, 1, 1, -2, -2, 2, 2]);
  });

  it('grid: rows in (y, x, anchor) order, strides by integer division, levels concatenated', () => {
    const feats: [number, number][] = [[4, 6], [1, 2]];
    const g = gridAnchors([64, 96], feats, [[32], [512]], [[0.5, 1, 2], [1]]);
    expect(g.strides).toEqual([[16, 16], [64, 48]]);
    expect(g.numPerLevel).toEqual([72, 2]);
    expect(g.anchors.length).toBe(4 * 74);
    const base0 = cellAnchors([32], [0.5, 1, 2]);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 6; x++) {
        for (let a = 0; a < 3; a++) {
          const row = (y * 6 + x) * 3 + a;
          const want = [x * 16 + base0[4 * a], y * 16 + base0[4 * a + 1], x * 16 + base0[4 * a + 2], y * 16 + base0[4 * a + 3]];
          expect(Array.from(g.anchors.subarray(4 * row, 4 * row + 4)), `row ${row}`).toEqual(want);
        }
      }
    }
    expect(Array.from(g.anchors.subarray(4 * 72))).toEqual([-256, -256, 256, 256, 48 - 256, -256, 48 + 256, 256]);
  });

  it('rejects bad sizes', () => {
    expect(() => cellAnchors([], [1])).toThrow(InputError);
    expect(() => cellAnchors([32], [0])).toThrow(InputError);
    expect(() => gridAnchors([64, 64], [[8, 8]], [[32], [64]], [[1], [1]])).toThrow(InputError);
    expect(() => gridAnchors([64, 64], [[0, 8]], [[32]], [[1]])).toThrow(InputError);
  });
});
