/**
 * Data sets for training. This module holds the IDX reader and writer and the gzip helpers they
 * stream through.
 *
 * ```ts
 * import { datasets } from "./mod.ts";
 * const { data, shape } = await datasets.readIdxFile("train-images-idx3-ubyte.gz");
 * ```
 * @module
 */
export {
  DEFAULT_MAX_IDX_BYTES,
  encodeIdx,
  IDX_ELEMENT_BYTES,
  IDX_TYPE_CODES,
  type IdxArray,
  type IdxData,
  IdxDecoder,
  type IdxDType,
  idxDTypeOf,
  type IdxHeader,
  type IdxInput,
  type IdxLengthHints,
  type IdxReadOptions,
  type IdxWriteOptions,
  parseIdx,
  readIdx,
  readIdxFile,
  writeIdxFile,
} from "./idx.ts";
export { gunzip, gunzipChunks, gzip, isGzip } from "./gzip.ts";
