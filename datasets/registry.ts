/**
 * The classic data sets, each loaded in one call from wherever its files are (see `fetch.ts`):
 * MNIST, Fashion-MNIST, Kuzushiji-MNIST, EMNIST, CIFAR-10 and notMNIST. Each returns a
 * {@linkcode Dataset}: `{ train, test, classNames, shape }` with the samples as bytes.
 *
 * Published checksums are those of tensorflow-datasets' `url_checksums` files (SHA-256 and size);
 * the Fashion-MNIST and MNIST files match the MD5s in their publishers' README and torchvision.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import { DataSplit } from "./feed.ts";
import {
  cacheRoot,
  type DatasetHints,
  DatasetNotFoundError,
  type FetchOptions,
  type LocatedFile,
  locateFiles,
  recordSha256,
  type RemoteFile,
  sha256File,
} from "./fetch.ts";
import { sha256Digest } from "./checksum.ts";
import { gunzipChunks } from "./gzip.ts";
import { type IdxArray, readIdx, readIdxFile } from "./idx.ts";
import { decodePngGray } from "./png.ts";
import { readTar } from "./tar.ts";
import { extractZipEntry, listZip } from "./zip.ts";

/** A data set: training and test splits, the class names and the shape of one sample. */
export interface Dataset {
  /** The data set's name, e.g. `"fashion-mnist"`. */
  name: string;
  /** The training split. */
  train: DataSplit;
  /** The test split. */
  test: DataSplit;
  /** A name for each class. */
  classNames: readonly string[];
  /** The shape of one sample, e.g. `[28, 28]` or `[32, 32, 3]` (channels last). */
  shape: readonly number[];
  /** The number of classes. */
  numClasses: number;
  /** Where each file came from and how it was verified. */
  files: readonly LocatedFile[];
  /** True when this is the bundled Fashion-MNIST sample rather than the full set. */
  sample: boolean;
  /** Images that could not be read and were left out (notMNIST), with the reason. */
  skipped: readonly { path: string; reason: string }[];
}

/** Options of every loader: where the files may come from, and whether to print notes. */
export interface LoadOptions extends FetchOptions {
  /** Print nothing on stdout (notes about the sample fallback or skipped images). Default false. */
  quiet?: boolean;
}

/** Options of {@linkcode fashionMnist}. */
export interface FashionMnistOptions extends LoadOptions {
  /**
   * Use the bundled sample (3,000 training and 1,000 test images, balanced): `true` always,
   * `"fallback"` only when the full set is nowhere to be found (saying so on stdout), `false`
   * never (the default).
   */
  sample?: boolean | "fallback";
}

/** The six EMNIST splits. */
export type EmnistSplit = "byclass" | "bymerge" | "balanced" | "letters" | "digits" | "mnist";

/** Options of {@linkcode emnist}. */
export interface EmnistOptions extends LoadOptions {
  /** Which split (default `"balanced"`). */
  split?: EmnistSplit;
  /**
   * Transpose the images so that they are upright like MNIST's (default true; the files store
   * them transposed).
   */
  transpose?: boolean;
}

/** Options of {@linkcode notMnist}. */
export interface NotMnistOptions extends LoadOptions {
  /**
   * `"small"` (default): `notMNIST_small.tar.gz` alone, split into train and test. `"large"`: the
   * course's setting, training on `notMNIST_large.tar.gz` (about 530,000 images) and testing on
   * all of `notMNIST_small.tar.gz`; both files are needed.
   */
  variant?: "small" | "large";
  /** The share of each class held out as the test split of the small variant (default 0.15). */
  testFraction?: number;
  /** Seed of the stratified train/test split (default 0). */
  seed?: number;
}

function info(opts: LoadOptions, line: string): void {
  if (!opts.quiet) console.log(line);
}

function fail(name: string, what: string): WgradError {
  return new WgradError("value", `${name}: ${what}`);
}

// ---------------------------------------------------------------------------------------------
// IDX data sets.

/** The four files of an MNIST-style IDX data set. */
interface IdxFiles {
  trainImages: RemoteFile;
  trainLabels: RemoteFile;
  testImages: RemoteFile;
  testLabels: RemoteFile;
}

/** Makes the entry of one gzip IDX file, accepting the uncompressed file in local directories. */
function idxFile(
  bases: readonly string[],
  name: string,
  size: number,
  sha256: string,
  source: string,
  gzipHeader?: RemoteFile["gzipHeader"],
): RemoteFile {
  const plain = name.replace(/\.gz$/, "");
  return {
    name,
    urls: bases.map((b) => b + name),
    size,
    sha256,
    checksumSource: source,
    gzipHeader,
    alternatives: [plain, plain.replace(/-(idx\d)/, ".$1")],
  };
}

const TFDS = (set: string) => `tensorflow-datasets url_checksums/${set}.txt`;

const FASHION_BASES = [
  "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
  "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
];
const FASHION: IdxFiles = {
  trainImages: idxFile(
    FASHION_BASES,
    "train-images-idx3-ubyte.gz",
    26421880,
    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    TFDS("fashion_mnist"),
    { mtime: 1504176606, fileName: "train-images-idx3-ubyte", xfl: 0, os: 3 },
  ),
  trainLabels: idxFile(
    FASHION_BASES,
    "train-labels-idx1-ubyte.gz",
    29515,
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    TFDS("fashion_mnist"),
    { mtime: 1504176606, fileName: "train-labels-idx1-ubyte", xfl: 0, os: 3 },
  ),
  testImages: idxFile(
    FASHION_BASES,
    "t10k-images-idx3-ubyte.gz",
    4422102,
    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    TFDS("fashion_mnist"),
    { mtime: 1504176627, fileName: "t10k-images-idx3-ubyte", xfl: 0, os: 3 },
  ),
  testLabels: idxFile(
    FASHION_BASES,
    "t10k-labels-idx1-ubyte.gz",
    5148,
    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    TFDS("fashion_mnist"),
    { mtime: 1504176627, fileName: "t10k-labels-idx1-ubyte", xfl: 0, os: 3 },
  ),
};

const MNIST_BASES = [
  "https://ossci-datasets.s3.amazonaws.com/mnist/",
  "https://storage.googleapis.com/cvdf-datasets/mnist/",
  "http://yann.lecun.com/exdb/mnist/",
];
const MNIST: IdxFiles = {
  trainImages: idxFile(
    MNIST_BASES,
    "train-images-idx3-ubyte.gz",
    9912422,
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    TFDS("mnist"),
  ),
  trainLabels: idxFile(
    MNIST_BASES,
    "train-labels-idx1-ubyte.gz",
    28881,
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TFDS("mnist"),
  ),
  testImages: idxFile(
    MNIST_BASES,
    "t10k-images-idx3-ubyte.gz",
    1648877,
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TFDS("mnist"),
  ),
  testLabels: idxFile(
    MNIST_BASES,
    "t10k-labels-idx1-ubyte.gz",
    4542,
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    TFDS("mnist"),
  ),
};

const KMNIST_BASES = ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"];
const KMNIST: IdxFiles = {
  trainImages: idxFile(
    KMNIST_BASES,
    "train-images-idx3-ubyte.gz",
    18165135,
    "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
    TFDS("kmnist"),
  ),
  trainLabels: idxFile(
    KMNIST_BASES,
    "train-labels-idx1-ubyte.gz",
    29497,
    "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
    TFDS("kmnist"),
  ),
  testImages: idxFile(
    KMNIST_BASES,
    "t10k-images-idx3-ubyte.gz",
    3041136,
    "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
    TFDS("kmnist"),
  ),
  testLabels: idxFile(
    KMNIST_BASES,
    "t10k-labels-idx1-ubyte.gz",
    5120,
    "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
    TFDS("kmnist"),
  ),
};

/** Fashion-MNIST's class names. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

const DIGITS = Object.freeze(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);

/** Kuzushiji-MNIST's class names (romanised; the characters are お き す つ な は ま や れ を). */
export const KMNIST_CLASSES: readonly string[] = Object.freeze([
  "o",
  "ki",
  "su",
  "tsu",
  "na",
  "ha",
  "ma",
  "ya",
  "re",
  "wo",
]);

/** The checks an IDX image file and its label file pass before they become a split. */
function idxSplit(
  images: IdxArray,
  labels: IdxArray,
  imagesPath: string,
  labelsPath: string,
  shape: readonly number[],
  numClasses: number,
  name: string,
  classNames: readonly string[],
): DataSplit {
  const [h, w] = shape;
  if (
    images.dtype !== "u8" || images.shape.length !== 3 || images.shape[1] !== h ||
    images.shape[2] !== w
  ) {
    throw fail(
      imagesPath,
      `expected u8 images of shape [N, ${h}, ${w}], the file holds ${images.dtype} [${
        images.shape.join(", ")
      }]`,
    );
  }
  if (labels.dtype !== "u8" || labels.shape.length !== 1) {
    throw fail(
      labelsPath,
      `expected u8 labels of shape [N], the file holds ${labels.dtype} [${
        labels.shape.join(", ")
      }]`,
    );
  }
  if (labels.shape[0] !== images.shape[0]) {
    throw fail(
      labelsPath,
      `image and label counts differ: ${labels.shape[0]} labels here, ${
        images.shape[0]
      } images in ${imagesPath}`,
    );
  }
  const y = labels.data as Uint8Array<ArrayBuffer>;
  for (let i = 0; i < y.length; i++) {
    if (y[i] >= numClasses) {
      throw fail(labelsPath, `label ${y[i]} at index ${i} is out of range [0, ${numClasses})`);
    }
  }
  return new DataSplit(images.data as Uint8Array<ArrayBuffer>, y, shape, numClasses, {
    name,
    classNames,
  });
}

async function loadIdxSet(
  name: string,
  files: IdxFiles,
  classNames: readonly string[],
  opts: LoadOptions,
  hints: DatasetHints = {},
): Promise<Dataset> {
  const list = [files.trainImages, files.trainLabels, files.testImages, files.testLabels];
  const located = await locateFiles(name, list, opts, hints);
  return await datasetFromIdx(name, located, classNames, false);
}

async function datasetFromIdx(
  name: string,
  located: readonly LocatedFile[],
  classNames: readonly string[],
  sample: boolean,
  transpose = false,
  preloaded?: readonly Uint8Array[],
): Promise<Dataset> {
  const read = (l: LocatedFile, i: number) =>
    preloaded ? readIdx(preloaded[i], { name: l.path }) : readIdxFile(l.path);
  const [xtr, ytr, xte, yte] = await Promise.all(located.map(read));
  const shape = [28, 28];
  if (transpose) {
    transposeImages(xtr);
    transposeImages(xte);
  }
  const n = classNames.length;
  const train = idxSplit(
    xtr,
    ytr,
    located[0].path,
    located[1].path,
    shape,
    n,
    `${name}/train`,
    classNames,
  );
  const test = idxSplit(
    xte,
    yte,
    located[2].path,
    located[3].path,
    shape,
    n,
    `${name}/test`,
    classNames,
  );
  return {
    name,
    train,
    test,
    classNames,
    shape,
    numClasses: n,
    files: located,
    sample,
    skipped: [],
  };
}

/** Transposes each square image of an IDX array in place (EMNIST stores images transposed). */
function transposeImages(a: IdxArray): void {
  if (a.shape.length !== 3 || a.shape[1] !== a.shape[2]) return;
  const s = a.shape[1], n = a.shape[0], d = a.data;
  for (let k = 0; k < n; k++) {
    const o = k * s * s;
    for (let i = 0; i < s; i++) {
      for (let j = i + 1; j < s; j++) {
        const t = d[o + i * s + j];
        d[o + i * s + j] = d[o + j * s + i];
        d[o + j * s + i] = t;
      }
    }
  }
}

/**
 * MNIST: 60,000 training and 10,000 test images of handwritten digits, 28 × 28 gray.
 * Files: `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
 * `t10k-labels-idx1-ubyte.gz` (or the same names without `.gz`).
 */
export function mnist(options: LoadOptions = {}): Promise<Dataset> {
  return loadIdxSet("mnist", MNIST, DIGITS, options);
}

/** The files of the bundled Fashion-MNIST sample, relative to this module. */
const SAMPLE_FILES: readonly { name: string; sha256: string }[] = [
  {
    name: "train-images-idx3-ubyte.gz",
    sha256: "087c4dc519959d2ad60309c2c9bb676660de2e8f23c75080d678f37649e76866",
  },
  {
    name: "train-labels-idx1-ubyte.gz",
    sha256: "0415cfb15391f966e19f0e1343a50ac8ac6502966ff3bbbb78afccccde50c76a",
  },
  {
    name: "t10k-images-idx3-ubyte.gz",
    sha256: "134c1c4ef6f5ab98b5392104307fc91babeb699df729519c13ea778d076a7de3",
  },
  {
    name: "t10k-labels-idx1-ubyte.gz",
    sha256: "1006e677348aa04b0e7a59ec6d0cd76b8ddbd0a20846469039c83d1ab79f909d",
  },
];

/** Loads the bundled Fashion-MNIST sample, verifying its checksums. */
async function fashionMnistSample(): Promise<Dataset> {
  const located: LocatedFile[] = [];
  const fetched: Uint8Array[] = [];
  for (const f of SAMPLE_FILES) {
    const url = new URL(`./fashion-mnist-sample/${f.name}`, import.meta.url);
    let path: string, sha: string;
    if (url.protocol === "file:") {
      path = decodeURIComponent(url.pathname);
      sha = await sha256File(path);
    } else {
      // Imported by URL: fetched once, verified, then parsed from memory.
      path = url.href;
      const res = await fetch(url);
      if (!res.ok) {
        await res.body?.cancel();
        throw fail(url.href, `HTTP ${res.status}`);
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      fetched.push(bytes);
      sha = await sha256Digest(bytes);
    }
    if (sha !== f.sha256) {
      throw fail(path, `checksum mismatch: SHA-256 is ${sha}, the bundled sample's is ${f.sha256}`);
    }
    located.push({
      file: { name: f.name, urls: [], sha256: f.sha256 },
      path,
      origin: "bundled",
      verified: "sha256",
      sha256: sha,
    });
  }
  return await datasetFromIdx(
    "fashion-mnist",
    located,
    FASHION_MNIST_CLASSES,
    true,
    false,
    fetched.length ? fetched : undefined,
  );
}

/**
 * Fashion-MNIST: 60,000 training and 10,000 test images of clothing in 10 classes, 28 × 28 gray.
 * Debian's `dataset-fashion-mnist` package installs the files in `/usr/share/datasets/fashion-mnist`.
 * With `sample`, the bundled sample of 3,000 + 1,000 images can stand in for the full set.
 */
export async function fashionMnist(options: FashionMnistOptions = {}): Promise<Dataset> {
  if (options.sample === true) return await fashionMnistSample();
  try {
    return await loadIdxSet("fashion-mnist", FASHION, FASHION_MNIST_CLASSES, options, {
      debianPackage: "dataset-fashion-mnist",
      debianDir: "/usr/share/datasets/fashion-mnist",
    });
  } catch (e) {
    if (options.sample !== "fallback" || !(e instanceof DatasetNotFoundError)) throw e;
    const ds = await fashionMnistSample();
    info(
      options,
      `fashion-mnist: the full set is not available here (${e.missing.length} of 4 files missing; ` +
        `load it without the sample option to see where wgrad looked); using the bundled sample: ` +
        `${ds.train.length} training and ${ds.test.length} test images`,
    );
    return ds;
  }
}

/**
 * Kuzushiji-MNIST: 60,000 training and 10,000 test images of cursive Japanese characters in 10
 * classes, 28 × 28 gray.
 */
export function kmnist(options: LoadOptions = {}): Promise<Dataset> {
  return loadIdxSet("kmnist", KMNIST, KMNIST_CLASSES, options);
}

// ---------------------------------------------------------------------------------------------
// EMNIST: the four files of a split, or the distributed gzip.zip they are extracted from.

const EMNIST_ZIP: RemoteFile = {
  name: "gzip.zip",
  urls: [
    "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
    "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip",
  ],
  size: 561753746,
  sha256: "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
  checksumSource: TFDS("emnist"),
};

const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("");
const LOWER = "abcdefghijklmnopqrstuvwxyz".split("");

/** Class names of each EMNIST split (label `i` is `names[i]`). */
export const EMNIST_CLASSES: Readonly<Record<EmnistSplit, readonly string[]>> = Object.freeze({
  byclass: [...DIGITS, ...UPPER, ...LOWER],
  bymerge: [...DIGITS, ...UPPER, ..."abdefghnqrt".split("")],
  balanced: [...DIGITS, ...UPPER, ..."abdefghnqrt".split("")],
  letters: ["N/A", ...LOWER], // labels 1–26; 0 is unused
  digits: [...DIGITS],
  mnist: [...DIGITS],
});

function emnistFiles(split: EmnistSplit): RemoteFile[] {
  return ["train-images-idx3", "train-labels-idx1", "test-images-idx3", "test-labels-idx1"].map(
    (part) => {
      const name = `emnist-${split}-${part}-ubyte.gz`;
      return {
        name,
        urls: [],
        alternatives: [name.replace(/\.gz$/, "")],
      };
    },
  );
}

/**
 * EMNIST (by NIST): handwritten characters, 28 × 28 gray, in six splits (`byclass` 62 classes,
 * `bymerge` and `balanced` 47, `letters` 26 (labels 1–26), `digits` and `mnist` 10). The split's
 * four `emnist-<split>-…-ubyte.gz` files are used where found; otherwise they are extracted from
 * the distributed `gzip.zip` (562 MB; found or downloaded), into the cache when it is writable.
 */
export async function emnist(options: EmnistOptions = {}): Promise<Dataset> {
  const split = options.split ?? "balanced";
  if (!(split in EMNIST_CLASSES)) {
    throw new WgradError(
      "value",
      `emnist: unknown split "${split}" (one of ${Object.keys(EMNIST_CLASSES).join(", ")})`,
    );
  }
  const classNames = EMNIST_CLASSES[split];
  const files = emnistFiles(split);
  const transpose = options.transpose ?? true;
  try {
    const located = await locateFiles("emnist", files, { ...options, download: false });
    return await datasetFromIdx(`emnist-${split}`, located, classNames, false, transpose);
  } catch (e) {
    if (!(e instanceof DatasetNotFoundError)) throw e;
  }
  const [zip] = await locateFiles("emnist", [EMNIST_ZIP], options, {
    note: `or put the split's files from the archive (${files.map((f) => f.name).join(", ")}) ` +
      "in one of these places",
  });
  const entries = await listZip(zip.path);
  const { dir: root } = cacheRoot(options);
  const cacheDir = root ? `${root}/emnist` : null;
  const writable = cacheDir !== null &&
    (await Deno.permissions.query({ name: "write", path: cacheDir })).state === "granted";
  const arrays: IdxArray[] = [];
  const located: LocatedFile[] = [];
  for (const f of files) {
    const entry = entries.find((e) => e.name === `gzip/${f.name}` || e.name.endsWith(`/${f.name}`));
    if (!entry) throw fail(zip.path, `the archive has no ${f.name}`);
    const parts: Uint8Array[] = [];
    await extractZipEntry(zip.path, entry, (c) => void parts.push(c.slice()));
    const bytes = new Uint8Array(entry.size);
    let o = 0;
    for (const p of parts) {
      bytes.set(p, o);
      o += p.length;
    }
    const name = `${zip.path} (${entry.name})`;
    arrays.push(await readIdx(bytes, { name }));
    const sha = await sha256Digest(bytes);
    let path = name;
    if (writable) {
      await Deno.mkdir(cacheDir, { recursive: true });
      path = `${cacheDir}/${f.name}`;
      const tmp = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.part`;
      try {
        await Deno.writeFile(tmp, bytes);
        await Deno.rename(tmp, path);
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw e;
      }
      await recordSha256(cacheDir, f.name, sha);
    }
    located.push({
      file: f,
      path,
      origin: zip.origin,
      verified: zip.verified,
      sha256: sha,
    });
  }
  if (transpose) {
    transposeImages(arrays[0]);
    transposeImages(arrays[2]);
  }
  const n = classNames.length, shape = [28, 28], name = `emnist-${split}`;
  const train = idxSplit(
    arrays[0],
    arrays[1],
    located[0].path,
    located[1].path,
    shape,
    n,
    `${name}/train`,
    classNames,
  );
  const test = idxSplit(
    arrays[2],
    arrays[3],
    located[2].path,
    located[3].path,
    shape,
    n,
    `${name}/test`,
    classNames,
  );
  return {
    name,
    train,
    test,
    classNames,
    shape,
    numClasses: n,
    files: located,
    sample: false,
    skipped: [],
  };
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10: the binary version, a tar.gz of six batches of 10,000 records (label + 3 × 1024 bytes).

const CIFAR10: RemoteFile = {
  name: "cifar-10-binary.tar.gz",
  urls: ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
  size: 170052171,
  sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
  checksumSource: TFDS("cifar10"),
};

/** CIFAR-10's class names. */
export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
]);

const CIFAR_RECORD = 1 + 3 * 1024;
const CIFAR_BATCH = 10000;

/** Converts CIFAR records (label, then R, G and B planes) to HWC bytes and labels. */
function cifarRecords(
  data: Uint8Array,
  what: string,
  x: Uint8Array,
  y: Uint8Array,
  at: number,
): void {
  if (data.length !== CIFAR_BATCH * CIFAR_RECORD) {
    throw fail(
      what,
      `expected ${CIFAR_BATCH} records of ${CIFAR_RECORD} bytes (${
        CIFAR_BATCH * CIFAR_RECORD
      }), got ${data.length} bytes`,
    );
  }
  for (let r = 0; r < CIFAR_BATCH; r++) {
    const src = r * CIFAR_RECORD;
    const label = data[src];
    if (label >= 10) throw fail(what, `label ${label} of record ${r} is out of range [0, 10)`);
    y[at + r] = label;
    const dst = (at + r) * 3072;
    for (let p = 0; p < 1024; p++) {
      x[dst + 3 * p] = data[src + 1 + p];
      x[dst + 3 * p + 1] = data[src + 1025 + p];
      x[dst + 3 * p + 2] = data[src + 2049 + p];
    }
  }
}

const CIFAR_BATCH_NAMES = [
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
  "test_batch.bin",
];

/**
 * CIFAR-10: 50,000 training and 10,000 test color images in 10 classes, 32 × 32 × 3 (channels
 * last). Read straight from `cifar-10-binary.tar.gz`, or from its extracted batches
 * (`data_batch_1.bin` … `test_batch.bin`, directly or under `cifar-10-batches-bin/`) in `dir`.
 */
export async function cifar10(options: LoadOptions = {}): Promise<Dataset> {
  const xtr = new Uint8Array(50000 * 3072), ytr = new Uint8Array(50000);
  const xte = new Uint8Array(10000 * 3072), yte = new Uint8Array(10000);
  const put = (i: number, data: Uint8Array, what: string) => {
    if (i < 5) cifarRecords(data, what, xtr, ytr, i * CIFAR_BATCH);
    else cifarRecords(data, what, xte, yte, 0);
  };
  let files: LocatedFile[] = [];
  const extracted = options.dir ? await findCifarBatches(options.dir) : null;
  if (extracted) {
    for (let i = 0; i < 6; i++) put(i, await Deno.readFile(extracted[i]), extracted[i]);
    files = extracted.map((path, i) => ({
      file: { name: CIFAR_BATCH_NAMES[i], urls: [] },
      path,
      origin: "dir",
      verified: "structural",
    }));
  } else {
    files = await locateFiles("cifar-10", [CIFAR10], options);
    const path = files[0].path;
    const seen = new Set<number>();
    const file = await Deno.open(path, { read: true });
    for await (
      const e of readTar(gunzipChunks(file.readable, path), path, {
        select: (p) => CIFAR_BATCH_NAMES.some((b) => p.endsWith(`/${b}`) || p === b),
      })
    ) {
      if (e.type !== "file") continue;
      const i = CIFAR_BATCH_NAMES.findIndex((b) => e.path.endsWith(`/${b}`) || e.path === b);
      if (i < 0) continue;
      if (seen.has(i)) throw fail(path, `${e.path} appears twice`);
      seen.add(i);
      put(i, e.data, `${path} (${e.path})`);
    }
    const missing = CIFAR_BATCH_NAMES.filter((_, i) => !seen.has(i));
    if (missing.length) throw fail(path, `the archive lacks ${missing.join(", ")}`);
  }
  const shape = [32, 32, 3];
  return {
    name: "cifar-10",
    train: new DataSplit(xtr, ytr, shape, 10, {
      name: "cifar-10/train",
      classNames: CIFAR10_CLASSES,
    }),
    test: new DataSplit(xte, yte, shape, 10, {
      name: "cifar-10/test",
      classNames: CIFAR10_CLASSES,
    }),
    classNames: CIFAR10_CLASSES,
    shape,
    numClasses: 10,
    files,
    sample: false,
    skipped: [],
  };
}

async function findCifarBatches(dir: string): Promise<string[] | null> {
  for (const sub of ["", "/cifar-10-batches-bin"]) {
    const paths = CIFAR_BATCH_NAMES.map((b) => `${dir}${sub}/${b}`);
    let all = true;
    for (const p of paths) {
      try {
        if (!(await Deno.stat(p)).isFile) all = false;
      } catch {
        all = false;
      }
      if (!all) break;
    }
    if (all) return paths;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// notMNIST (small): a tar.gz of folders A–J of 28 × 28 PNG glyphs, a few of them unreadable.

const NOT_MNIST: RemoteFile = {
  name: "notMNIST_small.tar.gz",
  urls: ["http://yaroslavvb.com/upload/notMNIST/notMNIST_small.tar.gz"],
  size: 8458043,
  sha256: "76b2ef7ccc56452964780569db37b279c9cbe1bf442c3b38be784752683b3cec",
  checksumSource: TFDS("not_mnist"),
};

/** notMNIST's class names: the letters A–J. */
export const NOT_MNIST_CLASSES: readonly string[] = Object.freeze("ABCDEFGHIJ".split(""));

/**
 * notMNIST (large): about 530,000 images in the same layout. No checksum is published: a download
 * is checked by its size and its SHA-256 recorded on first use, and the reader checks every image.
 */
const NOT_MNIST_LARGE: RemoteFile = {
  name: "notMNIST_large.tar.gz",
  urls: ["http://yaroslavvb.com/upload/notMNIST/notMNIST_large.tar.gz"],
  size: 247336696,
};

/**
 * notMNIST: images of the letters A–J in many fonts, 28 × 28 gray, read from the PNG folders of
 * the published tarballs. Unreadable images are left out and reported (`skipped`). The small
 * variant (default; about 18,700 images) has no official test split: a seeded, stratified
 * `testFraction` of each class is held out. The large variant trains on `notMNIST_large.tar.gz`
 * and tests on the whole of `notMNIST_small.tar.gz`, as the course did.
 */
export async function notMnist(options: NotMnistOptions = {}): Promise<Dataset> {
  const testFraction = options.testFraction ?? 0.15;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new WgradError("value", `notMnist: testFraction must be in (0, 1), got ${testFraction}`);
  }
  const variant = options.variant ?? "small";
  if (variant !== "small" && variant !== "large") {
    throw new WgradError(
      "value",
      `notMnist: variant must be "small" or "large", got ${JSON.stringify(variant)}`,
    );
  }
  const files = await locateFiles(
    "notmnist",
    variant === "large" ? [NOT_MNIST_LARGE, NOT_MNIST] : [NOT_MNIST],
    options,
  );
  const parts = [];
  for (const f of files) parts.push(await readNotMnistTar(f.path, options));
  const skipped = parts.flatMap((p) => p.skipped);
  const rename = (s: DataSplit, n: string) =>
    new DataSplit(s.x, s.y, s.shape, 10, { name: n, classNames: NOT_MNIST_CLASSES });
  let train: DataSplit, test: DataSplit;
  if (variant === "large") {
    train = rename(parts[0].split, "notmnist/train");
    test = rename(parts[1].split, "notmnist/test");
  } else {
    const split = parts[0].split.validationSplit(testFraction, {
      stratify: true,
      seed: options.seed ?? 0,
    });
    train = rename(split.train, "notmnist/train");
    test = rename(split.validation, "notmnist/test");
  }
  return {
    name: "notmnist",
    train,
    test,
    classNames: NOT_MNIST_CLASSES,
    shape: [28, 28],
    numClasses: 10,
    files,
    sample: false,
    skipped,
  };
}

/** The readable images of one notMNIST tarball, and the ones left out with the reason. */
async function readNotMnistTar(
  path: string,
  options: LoadOptions,
): Promise<{ split: DataSplit; skipped: { path: string; reason: string }[] }> {
  const pngs: { path: string; label: number; data: Uint8Array }[] = [];
  const skipped: { path: string; reason: string }[] = [];
  const file = await Deno.open(path, { read: true });
  for await (const e of readTar(gunzipChunks(file.readable, path), path)) {
    if (e.type !== "file") continue;
    const m = /(?:^|\/)([A-J])\/[^/]+$/.exec(e.path);
    if (!m) continue;
    pngs.push({ path: e.path, label: m[1].charCodeAt(0) - 65, data: e.data });
  }
  const images = new Uint8Array(pngs.length * 784);
  const labels = new Uint8Array(pngs.length);
  const ok = new Uint8Array(pngs.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= pngs.length) return;
      const p = pngs[i];
      try {
        const img = await decodePngGray(p.data, { name: `${path} (${p.path})` });
        if (img.width !== 28 || img.height !== 28) {
          throw new Error(`${img.width}×${img.height} pixels, not 28×28`);
        }
        images.set(img.data, i * 784);
        labels[i] = p.label;
        ok[i] = 1;
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        skipped.push({ path: p.path, reason: msg.replace(`${path} (${p.path}): `, "") });
      }
      pngs[i].data = EMPTY; // the compressed image is no longer needed
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  skipped.sort((a, b) => a.path < b.path ? -1 : 1);
  if (skipped.length) {
    const name = path.slice(path.lastIndexOf("/") + 1);
    info(
      options,
      `notmnist: skipped ${skipped.length} unreadable of ${pngs.length} images in ${name} (see .skipped)`,
    );
  }
  const good: number[] = [];
  for (let i = 0; i < pngs.length; i++) if (ok[i]) good.push(i);
  const split = new DataSplit(images, labels, [28, 28], 10, {
    name: "notmnist",
    classNames: NOT_MNIST_CLASSES,
  }).select(good, "notmnist");
  return { split, skipped };
}

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------

/** The names {@linkcode load} knows. */
export type DatasetName = "mnist" | "fashion-mnist" | "kmnist" | "emnist" | "cifar-10" | "notmnist";

/** Loads a data set by name, e.g. `load("fashion-mnist")`. */
export async function load(
  name: DatasetName,
  options: LoadOptions & EmnistOptions & FashionMnistOptions & NotMnistOptions = {},
): Promise<Dataset> {
  switch (name) {
    case "mnist":
      return await mnist(options);
    case "fashion-mnist":
      return await fashionMnist(options);
    case "kmnist":
      return await kmnist(options);
    case "emnist":
      return await emnist(options);
    case "cifar-10":
      return await cifar10(options);
    case "notmnist":
      return await notMnist(options);
    default:
      throw new WgradError(
        "value",
        `datasets.load: unknown data set "${name}" (one of mnist, fashion-mnist, kmnist, emnist, cifar-10, notmnist)`,
      );
  }
}

/** The files of each data set as published (URLs, sizes, SHA-256), e.g. for a mirror. */
export const CATALOG: Readonly<Record<string, readonly RemoteFile[]>> = Object.freeze({
  "mnist": Object.values(MNIST),
  "fashion-mnist": Object.values(FASHION),
  "kmnist": Object.values(KMNIST),
  "emnist": [EMNIST_ZIP],
  "cifar-10": [CIFAR10],
  "notmnist": [NOT_MNIST, NOT_MNIST_LARGE],
});
