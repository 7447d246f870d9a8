/**
 * wgrad: a neural-network training engine for Deno on WebGPU.
 *
 * ```ts
 * import { add, gpuInfo, sum, tensor } from "./mod.ts";
 * console.log((await gpuInfo()).description);
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * console.log(await sum(add(x, 1), 1).data()); // Float32Array [9, 18]
 * ```
 * @module
 */
import "./src/ops/fill.ts";

export { fmtShape, WgradError, type WgradErrorKind } from "./src/errors.ts";
export type { GpuInfo } from "./src/gpu/device.ts";
export { flush, gpuInfo, type MemoryInfo, memoryInfo, resetGpu } from "./src/gpu/runtime.ts";
export { setSeed } from "./src/random.ts";
export {
  type DType,
  fill,
  keep,
  type NestedArray,
  ones,
  randomNormal,
  type RandomNormalOptions,
  randomUniform,
  type RandomUniformOptions,
  scalar,
  scope,
  Tensor,
  tensor,
  type TensorLike,
  type TypedArrayFor,
  zeros,
} from "./src/tensor.ts";
export {
  abs,
  elu,
  exp,
  gelu,
  leakyRelu,
  log,
  neg,
  reciprocal,
  relu,
  sigmoid,
  sign,
  sqrt,
  square,
  tanh,
  unary,
  UNARY_OPS,
  type UnaryOp,
} from "./src/ops/unary.ts";
export {
  add,
  binary,
  BINARY_OPS,
  type BinaryOp,
  div,
  maximum,
  minimum,
  mul,
  type Operand,
  pow,
  sub,
} from "./src/ops/binary.ts";
export { argmax, argmin, max, mean, min, type ReduceOptions, sum } from "./src/ops/reduce.ts";
export { cast, clone, reshape, transpose } from "./src/ops/transform.ts";
export * as datasets from "./datasets/mod.ts";
export { unaryGrad } from "./src/ops/unary.ts";
export { grad, GradientTape, valueAndGrad, valueAndGradSync } from "./src/autodiff/grad.ts";
export { noGrad } from "./src/autodiff/tape.ts";
export {
  equal,
  greater,
  greaterEqual,
  less,
  lessEqual,
  notEqual,
  sumTo,
} from "./src/ops/binary.ts";
export { broadcastTo } from "./src/ops/transform.ts";
export * as optim from "./src/optim/mod.ts";
export {
  type Activation,
  ACTIVATIONS,
  linear,
  type LinearOptions,
  matmul,
  type MatmulOptions,
} from "./src/ops/matmul.ts";
export { logSoftmax, softmax, softmaxGrad } from "./src/ops/softmax.ts";
export {
  type AxisPadding,
  axisPadding,
  conv2d,
  type Conv2dGeometryOptions,
  conv2dInputGrad,
  type Conv2dOptions,
  conv2dWeightGrad,
  type ConvActivation,
  type Padding,
  type Size2,
} from "./src/ops/conv.ts";
export {
  avgPool2d,
  globalAvgPool2d,
  globalMaxPool2d,
  maxPool2d,
  type Pool2dOptions,
} from "./src/ops/pool.ts";
export { batchNorm, type BatchNormOptions } from "./src/ops/batchnorm.ts";
export { concat } from "./src/ops/concat.ts";
export * as losses from "./src/train/losses.ts";
export * as metrics from "./src/ops/metrics.ts";
export * as nn from "./src/nn/mod.ts";
export * as plot from "./src/plot/chart.ts";
export * as io from "./src/io/mod.ts";
export * as callbacks from "./src/train/callbacks.ts";
export { type Callback, History, type TrainingControl } from "./src/train/callbacks.ts";
export type { LossLike, LossSpec, MetricSpec } from "./src/train/losses.ts";
export type { AccuracyKind } from "./src/ops/metrics.ts";
export type { OptimizerLike } from "./src/train/optimizers.ts";
export type {
  CompileOptions,
  EvaluateOptions,
  FitOptions,
  InputData,
  TargetData,
  XY,
} from "./src/train/trainer.ts";
export type {
  ParamArena,
  ParamArenaOptions,
  ParamInit,
  ParamSpec,
  ParamValue,
} from "./src/optim/arena.ts";
