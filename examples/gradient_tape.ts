/**
 * The GradientTape notebook's two examples: d(x²)/dx at x = 3, and the gradients of
 * loss = mean((x·W + b)²) with respect to W [3, 2] and b [2], checked against the hand
 * derivation dL/dy = 2y / 2 = y, dW = xᵀ·y, db = y.
 *
 * Run: deno run examples/gradient_tape.ts
 * @module
 */
import {
  add,
  grad,
  GradientTape,
  matmul,
  mean,
  randomNormal,
  square,
  tensor,
  zeros,
} from "../mod.ts";

if (Deno.args.includes("--help")) {
  console.log("GradientTape examples: d(x²)/dx at 3, and dW, db of mean((x·W + b)²). No flags.");
  Deno.exit(0);
}

// 1. d(x²)/dx at x = 3.
const x0 = tensor([3]);
const tape = new GradientTape();
tape.watch(x0);
const y0 = tape.record(() => square(x0));
const [dx] = await tape.gradient(y0, [x0]);
console.log(`d(x²)/dx at x = 3: ${(await dx.data())[0]}`);
tape.dispose();

// 2. loss = mean((x·W + b)²) for x = [[1, 2, 3]], W ~ N(0, 1) [3, 2], b = 0 [2].
const x = tensor([[1, 2, 3]]);
const w = randomNormal([3, 2], { seed: 7 });
const b = zeros([2]);
const [dw, db] = await grad(() => mean(square(add(matmul(x, w), b))), [w, b]);
const wv = await w.data();
const y = [0, 1].map((j) => 1 * wv[j] + 2 * wv[2 + j] + 3 * wv[4 + j]);
const expectW = [1, 2, 3].flatMap((xi) => y.map((yj) => xi * yj));
const gotW = Array.from(await dw.data()), gotB = Array.from(await db.data());
const fmt = (a: number[]) => a.map((v) => v.toFixed(5)).join(", ");
console.log(`dW ${JSON.stringify(dw.shape)}: [${fmt(gotW)}]`);
console.log(`   by hand (xᵀ·y): [${fmt(expectW)}]`);
console.log(`db ${JSON.stringify(db.shape)}: [${fmt(gotB)}]`);
console.log(`   by hand (y):    [${fmt(y)}]`);
const err = Math.max(
  ...gotW.map((v, i) => Math.abs(v - expectW[i])),
  ...gotB.map((v, i) => Math.abs(v - y[i])),
);
console.log(`largest difference from the hand derivation: ${err.toExponential(2)}`);
if (err > 1e-5) Deno.exit(1);
