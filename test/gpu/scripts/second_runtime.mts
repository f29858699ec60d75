// Run by test/gpu/lifetime.test.ts in a child process (a crash must not take the test
// worker with it): a runtime in use while others are created, destroyed and collected.
import { Runtime } from '../../../src/gpu/runtime.js';
import { Tensor } from '../../../src/tensor/tensor.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const settle = () => new Promise((r) => setTimeout(r, 100));
const rt = await Runtime.create();
const a = Tensor.from(rt, new Float32Array([1, 2, 3, 4]), [4]);
for (let k = 0; k < 3; k++) {
  await (async () => {
    const other = await Runtime.create({ f16: false });
    other.destroy();
  })();
  gc();
  await settle();
  gc();
}
const back = await a.toArray();
rt.destroy();
gc();
await settle();
console.log(`survived: ${Array.from(back).join(',')}`);
