/**
 * Data sets for training: the classic image sets in one call each, verified and cached, and the
 * tools to feed them to a model.
 *
 * ```ts
 * import { datasets } from "./mod.ts";
 * const { train, test, classNames } = await datasets.fashionMnist();
 * for (const batch of train.batches({ batchSize: 32, seed: 1 })) {
 *   // batch.x: Float32Array [32, 28, 28] in [0, 1]; batch.y: Int32Array [32]
 * }
 * ```
 *
 * - Loaders: {@linkcode mnist}, {@linkcode fashionMnist}, {@linkcode kmnist}, {@linkcode emnist},
 *   {@linkcode cifar10}, {@linkcode notMnist}, {@linkcode load}.
 * - Feeding: {@linkcode DataSplit} (batches, shuffling, validation split, normalisation,
 *   statistics), {@linkcode permutation}, {@linkcode oneHot}, {@linkcode normalizeBytes},
 *   {@linkcode toGpu}.
 * - Files: {@linkcode readIdxFile}, {@linkcode readIdx}, {@linkcode parseIdx},
 *   {@linkcode encodeIdx}, {@linkcode writeIdxFile}; gzip, tar, PNG and ZIP readers;
 *   {@linkcode locateFiles} (find, download, verify, cache).
 * @module
 */
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
export {
  CATALOG,
  cifar10,
  CIFAR10_CLASSES,
  type Dataset,
  type DatasetName,
  emnist,
  EMNIST_CLASSES,
  type EmnistOptions,
  type EmnistSplit,
  FASHION_MNIST_CLASSES,
  fashionMnist,
  type FashionMnistOptions,
  kmnist,
  KMNIST_CLASSES,
  load,
  type LoadOptions,
  mnist,
  NOT_MNIST_CLASSES,
  notMnist,
  type NotMnistOptions,
} from "./registry.ts";
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
