/**
 * Data sets for training. This module holds the file formats they come in (IDX with the gzip
 * helpers it streams through, tar, PNG and ZIP), {@linkcode locateFiles}, which finds,
 * downloads, verifies and caches them, and {@linkcode DataSplit}, which feeds them to a model:
 * seeded batches of normalised floats, validation splits, one-hot labels and the upload of a
 * whole split to the GPU ({@linkcode toGpu}).
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
export {
  encodeTar,
  readTar,
  type TarEntry,
  type TarEntryType,
  type TarInput,
  type TarReadOptions,
} from "./tar.ts";
export {
  decodePngGray,
  encodePng,
  type GrayImage,
  type PngDecodeOptions,
  type PngInput,
} from "./png.ts";
export { extractZipEntry, listZip, type ZipEntry } from "./zip.ts";
export {
  cacheRoot,
  type DatasetHints,
  DatasetNotFoundError,
  downloadFile,
  type DownloadProgress,
  downloadUrls,
  type FetchOptions,
  type FileOrigin,
  type LocatedFile,
  locateFiles,
  type RemoteFile,
  sha256File,
  systemDirs,
  type Verification,
} from "./fetch.ts";
export {
  type Batch,
  type BatchIterable,
  type BatchOptions,
  DataSplit,
  type DataSplitOptions,
  type LabelEncoding,
  type Normalization,
  normalizeBytes,
  oneHot,
  permutation,
  type SplitStats,
  type ValidationSplitOptions,
} from "./feed.ts";
export {
  GpuDataset,
  type GpuDatasetOptions,
  type GpuSampleLocation,
  type Storage,
  toGpu,
} from "./gpu.ts";
