/**
 * Files: the safetensors format (read and written to its spec, every header field checked
 * against the file before anything is allocated) and atomic file replacement (temporary file in
 * the same directory, fsync, rename), which `saveWeights`, `save` and checkpoints use.
 *
 * ```ts
 * import { io } from "./mod.ts";
 * await io.writeSafetensors("t.safetensors", { w: { data: new Float32Array([1, 2]), shape: [2] } });
 * const f = await io.readSafetensors("t.safetensors");
 * f.tensors.get("w")!.toFloat32(); // Float32Array [1, 2]
 * ```
 * @module
 */
export {
  decodeSafetensors,
  DTYPE_SIZES,
  encodeSafetensors,
  halfToFloat,
  MAX_HEADER_BYTES,
  readSafetensors,
  type SafetensorsDType,
  type SafetensorsFile,
  SafetensorsTensor,
  type TensorInput,
  type TensorsInput,
  type TypedArrayData,
  writeSafetensors,
} from "./safetensors.ts";
export { writeFileAtomic, type WriteFileAtomicOptions } from "./atomic.ts";
