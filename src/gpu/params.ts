// Packing of a kernel's `Params` uniform struct. Plain numbers are u32; wrap floats with
// f32() and signed integers with i32(). Every field is 4 bytes, in struct order.

export class F32 {
  constructor(readonly value: number) {}
}
export class I32 {
  constructor(readonly value: number) {}
}
export const f32 = (v: number): F32 => new F32(v);
export const i32 = (v: number): I32 => new I32(v);
export type Param = number | F32 | I32;

export function packParams(fields: readonly Param[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(buf);
  fields.forEach((f, i) => {
    if (f instanceof F32) view.setFloat32(i * 4, f.value, true);
    else if (f instanceof I32) view.setInt32(i * 4, f.value, true);
    else {
      if (!Number.isInteger(f) || f < 0 || f > 0xffffffff) throw new RangeError(`param ${i} = ${f} is not a u32 (wrap floats in f32())`);
      view.setUint32(i * 4, f, true);
    }
  });
  return buf;
}
