/**
 * The safetensors format, written and read from its specification: an 8-byte little-endian
 * unsigned header length N, N bytes of UTF-8 JSON mapping tensor names to
 * `{ "dtype", "shape", "data_offsets": [begin, end] }` (offsets relative to the data section)
 * plus an optional `"__metadata__"` object of strings, then the tensors' little-endian row-major
 * bytes, which cover the data section exactly, without gaps or overlaps.
 *
 * The reader checks every field against the file's size before it allocates or slices anything,
 * never evaluates the header (a strict JSON parser that rejects duplicate names), and throws a
 * {@linkcode WgradError} naming the file and the fault.
 *
 * ```ts
 * const bytes = encodeSafetensors({ w: { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] } });
 * const file = decodeSafetensors(bytes);
 * file.tensors.get("w")!.toFloat32(); // Float32Array [1, 2, 3, 4]
 * ```
 * @module
 */
import { fmtShape, WgradError } from "../errors.ts";
import { describeReadError, writeFileAtomic } from "./atomic.ts";
import { JsonSyntaxError, type JsonValue, parseJsonStrict } from "./json.ts";

/** Bytes per element of every dtype of the specification that this module reads and writes. */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
} as const;

/** A dtype name of the safetensors specification. */
export type SafetensorsDType = keyof typeof DTYPE_SIZES;

/** The largest header accepted (as the reference implementation: 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** The typed arrays tensors are given and returned as. */
export type TypedArrayData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** A tensor to write. */
export interface TensorInput {
  /** The values, row-major. A `Uint8Array` with a wider `dtype` is taken as raw little-endian bytes. */
  data: TypedArrayData;
  /** The shape (`[]` for a scalar). */
  shape: readonly number[];
  /**
   * The dtype; by default the typed array's (Float32Array → F32, Int32Array → I32, Uint32Array →
   * U32, Uint8Array → U8, Float64Array → F64, BigInt64Array → I64, …). A Uint16Array may be
   * written as F16 or BF16 bit patterns, a Uint8Array as BOOL.
   */
  dtype?: SafetensorsDType;
}

/** The tensors to write: a record or `[name, tensor]` pairs, written in this order. */
export type TensorsInput =
  | Readonly<Record<string, TensorInput>>
  | Iterable<readonly [string, TensorInput]>;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const DEFAULT_DTYPE: [new (...a: never[]) => TypedArrayData, SafetensorsDType][] = [
  [Float32Array, "F32"],
  [Float64Array, "F64"],
  [Int8Array, "I8"],
  [Uint8Array, "U8"],
  [Int16Array, "I16"],
  [Uint16Array, "U16"],
  [Int32Array, "I32"],
  [Uint32Array, "U32"],
  [BigInt64Array, "I64"],
  [BigUint64Array, "U64"],
];

/** The dtypes each typed array may be written as (besides raw bytes in a Uint8Array). */
const COMPATIBLE: Record<SafetensorsDType, SafetensorsDType[]> = {
  BOOL: ["BOOL"],
  U8: ["U8", "BOOL", "F8_E4M3", "F8_E5M2"],
  I8: ["I8"],
  F8_E4M3: ["F8_E4M3"],
  F8_E5M2: ["F8_E5M2"],
  U16: ["U16", "F16", "BF16"],
  I16: ["I16"],
  F16: ["F16"],
  BF16: ["BF16"],
  U32: ["U32"],
  I32: ["I32"],
  F32: ["F32"],
  U64: ["U64"],
  I64: ["I64"],
  F64: ["F64"],
};

function defaultDtype(data: unknown): SafetensorsDType | null {
  for (const [ctor, d] of DEFAULT_DTYPE) if (data instanceof ctor) return d;
  return null;
}

/** One tensor of a decoded file: its dtype, shape and bytes, with conversions. */
export class SafetensorsTensor {
  /** The tensor's name. */
  readonly name: string;
  /** Its dtype. */
  readonly dtype: SafetensorsDType;
  /** Its shape. */
  readonly shape: readonly number[];
  /** Its raw little-endian bytes (a view into the file's bytes). */
  readonly bytes: Uint8Array;

  /** @internal Made by {@linkcode decodeSafetensors}. */
  constructor(name: string, dtype: SafetensorsDType, shape: number[], bytes: Uint8Array) {
    this.name = name;
    this.dtype = dtype;
    this.shape = Object.freeze(shape);
    this.bytes = bytes;
  }

  /** The number of elements. */
  get size(): number {
    return this.bytes.byteLength / DTYPE_SIZES[this.dtype];
  }

  /**
   * A copy of the values as the dtype's typed array: F32 → Float32Array, I32 → Int32Array, U32 →
   * Uint32Array, U8/BOOL/F8 → Uint8Array, F16/BF16 → Uint16Array bit patterns, F64 →
   * Float64Array, I64 → BigInt64Array, and so on.
   */
  toTypedArray(): TypedArrayData {
    const copy = new Uint8Array(this.bytes); // aligned, and ours to byte-swap
    const size = DTYPE_SIZES[this.dtype];
    if (!LITTLE_ENDIAN && size > 1) swapBytes(copy, size);
    const b = copy.buffer;
    switch (this.dtype) {
      case "F32":
        return new Float32Array(b);
      case "F64":
        return new Float64Array(b);
      case "I32":
        return new Int32Array(b);
      case "U32":
        return new Uint32Array(b);
      case "I16":
        return new Int16Array(b);
      case "U16":
      case "F16":
      case "BF16":
        return new Uint16Array(b);
      case "I8":
        return new Int8Array(b);
      case "I64":
        return new BigInt64Array(b);
      case "U64":
        return new BigUint64Array(b);
      default:
        return copy;
    }
  }

  /**
   * The values as a Float32Array: F32 as is, F16 and BF16 widened exactly, F64 rounded to the
   * nearest float32. Throws for integer dtypes.
   */
  toFloat32(): Float32Array {
    const v = this.toTypedArray();
    switch (this.dtype) {
      case "F32":
        return v as Float32Array;
      case "F64":
        return Float32Array.from(v as Float64Array);
      case "F16": {
        const h = v as Uint16Array;
        const out = new Float32Array(h.length);
        for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]);
        return out;
      }
      case "BF16": {
        const h = v as Uint16Array;
        const bits = new Uint32Array(h.length);
        for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
        return new Float32Array(bits.buffer);
      }
      default:
        throw new WgradError(
          "dtype",
          `safetensors tensor "${this.name}": ${this.dtype} values are not floating point; ` +
            "use toTypedArray()",
        );
    }
  }
}

/** A decoded safetensors file. */
export interface SafetensorsFile {
  /** The tensors, by name, in the header's order. */
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` strings, or null when the header has none. */
  metadata: Record<string, string> | null;
  /** The byte offset of the data section (8 + the header's length). */
  dataOffset: number;
}

/** The value of an IEEE binary16 bit pattern. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) {
    for (let j = 0; j < size >> 1; j++) {
      const t = b[i + j];
      b[i + j] = b[i + size - 1 - j];
      b[i + size - 1 - j] = t;
    }
  }
}

function checkShape(shape: unknown, what: string): number[] {
  if (
    !Array.isArray(shape) ||
    shape.some((d) => typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)
  ) {
    throw new WgradError(
      "shape",
      `${what}: shape must be an array of non-negative integers, got ${safeJson(shape)}`,
    );
  }
  return [...shape];
}

function safeJson(v: unknown): string {
  const text = v instanceof Map
    ? JSON.stringify(Object.fromEntries(v))
    : typeof v === "bigint"
    ? `${v}n`
    : JSON.stringify(v) ?? String(v);
  return text.length > 80 ? text.slice(0, 77) + "..." : text;
}

/**
 * Encodes tensors (and optional `__metadata__` strings) as a safetensors file: the header padded
 * with spaces so that the data starts at a multiple of 8 bytes, then each tensor's little-endian
 * row-major bytes in the order given, without gaps. Throws on an empty, reserved or repeated
 * name, a bad shape, a length that does not match the shape, or a dtype the array cannot hold.
 */
export function encodeSafetensors(
  tensors: TensorsInput,
  metadata?: Readonly<Record<string, string>> | null,
): Uint8Array {
  const entries: [string, TensorInput][] = Symbol.iterator in Object(tensors)
    ? [...(tensors as Iterable<readonly [string, TensorInput]>)].map(([k, v]) => [k, v])
    : Object.entries(tensors as Record<string, TensorInput>);
  const header: Record<string, unknown> = Object.create(null);
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== "object" || Array.isArray(metadata)) {
      throw new WgradError("value", `safetensors: metadata must be an object of strings`);
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new WgradError(
          "value",
          `safetensors: metadata value "${k}" must be a string, got ${safeJson(v)}`,
        );
      }
    }
    header.__metadata__ = { ...metadata };
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const [name, t] of entries) {
    const where = `safetensors: tensor "${name}"`;
    if (typeof name !== "string" || name === "" || name === "__metadata__") {
      throw new WgradError(
        "value",
        `safetensors: tensor name ${safeJson(name)} is empty or reserved`,
      );
    }
    if (seen.has(name)) {
      throw new WgradError("value", `safetensors: two tensors are named "${name}"`);
    }
    seen.add(name);
    if (!t || typeof t !== "object") throw new WgradError("value", `${where}: not a tensor`);
    const shape = checkShape(t.shape, where);
    const natural = defaultDtype(t.data);
    if (!natural) {
      throw new WgradError(
        "dtype",
        `${where}: data must be a typed array, got ${safeJson(t.data)}`,
      );
    }
    const dtype = t.dtype ?? natural;
    if (!(dtype in DTYPE_SIZES)) {
      throw new WgradError("dtype", `${where}: unknown dtype ${safeJson(dtype)}`);
    }
    const size = DTYPE_SIZES[dtype];
    const count = shape.reduce((a, b) => a * b, 1);
    const raw = natural === "U8" && !COMPATIBLE.U8.includes(dtype);
    if (!raw && !COMPATIBLE[natural].includes(dtype)) {
      throw new WgradError(
        "dtype",
        `${where}: a ${t.data.constructor.name} cannot be written as ${dtype}`,
      );
    }
    const byteLength = count * size;
    if (t.data.byteLength !== byteLength) {
      throw new WgradError(
        "shape",
        `${where}: shape ${
          fmtShape(shape)
        } needs ${count} ${dtype} values (${byteLength} bytes), ` +
          `got ${raw ? `${t.data.byteLength} bytes` : `${t.data.length} values`}`,
      );
    }
    let bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (!LITTLE_ENDIAN && size > 1 && !raw) {
      bytes = new Uint8Array(bytes);
      swapBytes(bytes, size);
    }
    parts.push(bytes);
    header[name] = { dtype, shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  if (padded > MAX_HEADER_BYTES) {
    throw new WgradError(
      "limit",
      `safetensors: the header would be ${padded} bytes, more than ${MAX_HEADER_BYTES}`,
    );
  }
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  let at = 8 + padded;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const ENTRY_KEYS = new Set(["dtype", "shape", "data_offsets"]);

/**
 * Decodes and validates a safetensors file's bytes. `source` (a path) names the file in errors.
 * Rejects, naming the fault: fewer than 8 bytes; a header length beyond the file or above
 * {@linkcode MAX_HEADER_BYTES}; a header that is not UTF-8 or not a JSON object (or has a
 * duplicate name); a tensor entry with unknown keys, an unknown dtype, a bad shape or bad
 * `data_offsets` (not two integers, begin > end, beyond the data section, a byte length other than
 * the shape's element count times the dtype's size); tensors that overlap or leave bytes of the
 * data section uncovered; metadata that is not an object of strings.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "<bytes>"): SafetensorsFile {
  const bad = (fault: string, kind: "value" | "limit" | "shape" | "dtype" = "value"): never => {
    throw new WgradError(kind, `safetensors file "${source}": ${fault}`);
  };
  if (!(bytes instanceof Uint8Array)) bad("expected the file's bytes as a Uint8Array");
  if (bytes.byteLength < 8) {
    bad(`the file is ${bytes.byteLength} bytes long, shorter than the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    bad(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, "limit");
  }
  const headerLength = Number(n);
  if (headerLength > bytes.byteLength - 8) {
    bad(
      `header length ${headerLength} runs past the end of the file (${bytes.byteLength} bytes; ` +
        `at most ${bytes.byteLength - 8} bytes of header fit): truncated file?`,
    );
  }
  if (headerLength < 2) bad(`header length ${headerLength} is too short for a JSON object`);
  const headerBytes = bytes.subarray(8, 8 + headerLength);
  if (headerBytes[0] !== 0x7b) bad(`the header does not start with "{"`);
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    bad("the header is not valid UTF-8");
  }
  let header: JsonValue = null;
  try {
    header = parseJsonStrict(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) {
      bad(
        `the header is not valid JSON: ${
          e.message.startsWith("duplicate key") ? e.message.replace("key", "name") : e.message
        }`,
      );
    }
    throw e;
  }
  if (!(header instanceof Map)) bad(`the header is not a JSON object`);
  const dataOffset = 8 + headerLength;
  const dataLength = bytes.byteLength - dataOffset;
  let metadata: Record<string, string> | null = null;
  const infos: {
    name: string;
    dtype: SafetensorsDType;
    shape: number[];
    begin: number;
    end: number;
  }[] = [];
  for (const [name, entry] of header as Map<string, JsonValue>) {
    if (name === "__metadata__") {
      if (!(entry instanceof Map)) {
        bad(`"__metadata__" must be an object of strings, got ${safeJson(entry)}`);
      }
      metadata = Object.create(null) as Record<string, string>;
      for (const [k, v] of entry as Map<string, JsonValue>) {
        if (typeof v !== "string") {
          bad(`"__metadata__" value "${k}" is not a string (got ${safeJson(v)})`);
        }
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (!(entry instanceof Map)) bad(`${where}: entry must be an object, got ${safeJson(entry)}`);
    const e = entry as Map<string, JsonValue>;
    for (const k of e.keys()) {
      if (!ENTRY_KEYS.has(k)) bad(`${where}: unknown field "${k}"`);
    }
    for (const k of ENTRY_KEYS) if (!e.has(k)) bad(`${where}: missing field "${k}"`);
    const dtype = e.get("dtype");
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_SIZES, dtype)) {
      bad(
        `${where}: unknown dtype ${safeJson(dtype)} (known: ${
          Object.keys(DTYPE_SIZES).join(", ")
        })`,
        "dtype",
      );
    }
    const shape = e.get("shape");
    if (
      !Array.isArray(shape) ||
      shape.some((d) => typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)
    ) {
      bad(
        `${where}: shape must be an array of non-negative integers, got ${safeJson(shape)}`,
        "shape",
      );
    }
    const offsets = e.get("data_offsets");
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      offsets.some((d) => typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)
    ) {
      bad(`${where}: data_offsets must be two non-negative integers, got ${safeJson(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end) bad(`${where}: data_offsets [${begin}, ${end}] begin after they end`);
    if (end > dataLength) {
      bad(
        `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes): ` +
          "truncated file?",
      );
    }
    const size = DTYPE_SIZES[dtype as SafetensorsDType];
    const count = (shape as number[]).reduce((a, d) => a * BigInt(d), 1n);
    if (count * BigInt(size) !== BigInt(end - begin)) {
      bad(
        `${where}: shape ${fmtShape(shape as number[])} of ${dtype} needs ${
          count * BigInt(size)
        } ` +
          `bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`,
        "shape",
      );
    }
    infos.push({ name, dtype: dtype as SafetensorsDType, shape: shape as number[], begin, end });
  }
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let last: (typeof infos)[number] | null = null;
  for (const t of sorted) {
    if (t.begin < cursor) {
      bad(
        `tensors "${last!.name}" [${last!.begin}, ${last!.end}] and "${t.name}" ` +
          `[${t.begin}, ${t.end}] overlap`,
      );
    }
    if (t.begin > cursor) {
      bad(`bytes [${cursor}, ${t.begin}) of the data section belong to no tensor (a hole)`);
    }
    if (t.end > cursor || !last) last = t;
    cursor = Math.max(cursor, t.end);
  }
  if (cursor !== dataLength) {
    bad(
      `bytes [${cursor}, ${dataLength}) at the end of the data section belong to no tensor ` +
        "(trailing data)",
    );
  }
  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of infos) {
    tensors.set(
      t.name,
      new SafetensorsTensor(
        t.name,
        t.dtype,
        [...t.shape],
        bytes.subarray(dataOffset + t.begin, dataOffset + t.end),
      ),
    );
  }
  return { tensors, metadata, dataOffset };
}

/**
 * Reads and validates a safetensors file (see {@linkcode decodeSafetensors}); errors name the
 * path. Only the file's actual bytes are allocated.
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const why = describeReadError(e);
    throw new WgradError("value", `safetensors file "${path}": cannot read it: ${why}`, {
      cause: e,
    });
  }
  return decodeSafetensors(bytes, path);
}

/**
 * Encodes tensors (see {@linkcode encodeSafetensors}) and writes them atomically: a process
 * killed meanwhile leaves either the old file or the new one.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorsInput,
  metadata?: Readonly<Record<string, string>> | null,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
