/**
 * The safetensors reader and writer (src/io/safetensors.ts) against the specification: a file
 * assembled byte by byte here is read back exactly (every dtype, an unaligned data section); the
 * writer's output is checked by a second, minimal reader written in this file (alignment, padding,
 * contiguous little-endian data); every malformed header is rejected with a message naming the
 * file and the fault, without allocating sizes taken from the file; and the strict JSON parser.
 * No GPU is needed.
 * @module
 */
import { WgradError } from "../src/errors.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
  MAX_HEADER_BYTES,
  readSafetensors,
  writeSafetensors,
} from "../src/io/safetensors.ts";
import { parseJsonStrict } from "../src/io/json.ts";
import { assert, assertMatch } from "./harness_assert.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** Assembles a file from a header string and data bytes, as the specification lays it out. */
function assemble(header: string, data: ArrayLike<number> = [], lengthField?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(Array.from(data), 8 + h.length);
  return out;
}

/** Little-endian bytes of values written with a DataView setter. */
function le(
  size: number,
  values: readonly (number | bigint)[],
  set: (v: DataView, at: number, x: never) => void,
): number[] {
  const v = new DataView(new ArrayBuffer(size * values.length));
  values.forEach((x, i) => set(v, i * size, x as never));
  return Array.from(new Uint8Array(v.buffer));
}

function expectError(fn: () => unknown, re: RegExp, label: string): WgradError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof WgradError)) throw new Error(`${label}: expected a WgradError, got ${e}`);
    assertMatch(e.message, re);
    return e;
  }
  throw new Error(`${label}: expected an error matching ${re}`);
}

function sameArray(a: ArrayLike<unknown>, b: ArrayLike<unknown>, label: string): void {
  assert(a.length === b.length, `${label}: length ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    const same = typeof x === "number" && typeof y === "number"
      ? Object.is(x, y) || (x === y)
      : x === y;
    assert(same, `${label}: element ${i}: ${String(x)} vs ${String(y)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// (a) A file built byte by byte from the specification

Deno.test("reader: a file assembled by hand, every dtype, unaligned data section", () => {
  const f32 = le(4, [1.5, -2.25, 3e-38, 65504], (v, a, x) => v.setFloat32(a, x, true));
  const i32 = le(4, [-1, 2147483647, -2147483648, 0, 7, -7], (v, a, x) => v.setInt32(a, x, true));
  const u32 = le(4, [4294967295, 1], (v, a, x) => v.setUint32(a, x, true));
  // F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), -0, +inf.
  const f16 = le(
    2,
    [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00],
    (v, a, x) => v.setUint16(a, x, true),
  );
  // BF16: 1, -3.5 (0xc060).
  const bf16 = le(2, [0x3f80, 0xc060], (v, a, x) => v.setUint16(a, x, true));
  const f64 = le(8, [Math.PI, -1e300], (v, a, x) => v.setFloat64(a, x, true));
  const i64 = le(8, [-(2n ** 63n), 12345678901234n], (v, a, x) => v.setBigInt64(a, x, true));
  const u8 = [0, 1, 255];
  const data = [...f32, ...i32, ...u32, ...f16, ...bf16, ...f64, ...i64, ...u8];
  let o = 0;
  const at = (n: number) => `[${o},${(o += n)}]`;
  // Keys deliberately not in data order, with insignificant whitespace; header length 13 mod 8
  // so the data section is unaligned.
  const header = `{ "__metadata__" : {"format":"pt","note":"é ✓"},` +
    `"w":{"dtype":"F32","shape":[2,2],"data_offsets":${at(16)}},` +
    `"idx":{"dtype":"I32","shape":[2,3],"data_offsets":${at(24)}},` +
    `"u":{"dtype":"U32","shape":[2],"data_offsets":${at(8)}},` +
    `"h":{"dtype":"F16","shape":[6],"data_offsets":${at(12)}},` +
    `"b":{"dtype":"BF16","shape":[1,2],"data_offsets":${at(4)}},` +
    `"d":{"dtype":"F64","shape":[2],"data_offsets":${at(16)}},` +
    `"l":{"dtype":"I64","shape":[2],"data_offsets":${at(16)}},` +
    `"bytes":{"dtype":"U8","shape":[3],"data_offsets":${at(3)}}}     `;
  const file = decodeSafetensors(assemble(header, data), "hand.safetensors");
  assert(file.dataOffset % 8 !== 0, "the test wants an unaligned data section");
  assert(file.metadata?.format === "pt" && file.metadata.note === "é ✓", "metadata");
  sameArray(
    [...file.tensors.keys()],
    ["w", "idx", "u", "h", "b", "d", "l", "bytes"],
    "names in header order",
  );
  const w = file.tensors.get("w")!;
  sameArray(w.shape, [2, 2], "w shape");
  assert(w.dtype === "F32" && w.size === 4, "w dtype/size");
  sameArray(w.toFloat32(), [1.5, -2.25, Math.fround(3e-38), 65504], "w");
  const idx = file.tensors.get("idx")!.toTypedArray();
  assert(idx instanceof Int32Array, "I32 gives an Int32Array");
  sameArray(idx, [-1, 2147483647, -2147483648, 0, 7, -7], "idx");
  const u = file.tensors.get("u")!.toTypedArray();
  assert(u instanceof Uint32Array, "U32 gives a Uint32Array");
  sameArray(u, [4294967295, 1], "u");
  const h = file.tensors.get("h")!;
  sameArray(h.toTypedArray(), [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00], "h bits");
  sameArray(h.toFloat32(), [1, -2, 65504, 2 ** -24, -0, Infinity], "h values");
  sameArray(file.tensors.get("b")!.toFloat32(), [1, -3.5], "bf16 values");
  const d = file.tensors.get("d")!;
  sameArray(d.toTypedArray(), [Math.PI, -1e300], "f64");
  sameArray(d.toFloat32(), [Math.fround(Math.PI), -Infinity], "f64 → f32");
  sameArray(file.tensors.get("l")!.toTypedArray(), [-(2n ** 63n), 12345678901234n], "i64");
  const bytes = file.tensors.get("bytes")!.toTypedArray();
  assert(bytes instanceof Uint8Array, "U8 gives a Uint8Array");
  sameArray(bytes, u8, "u8");
  expectError(() => file.tensors.get("idx")!.toFloat32(), /I32 values are not floating/, "i32→f32");
});

Deno.test("reader: an empty file list, zero-size tensors, scalars, and a __proto__ name", () => {
  const empty = decodeSafetensors(assemble("{}"), "empty");
  assert(empty.tensors.size === 0 && empty.metadata === null, "empty header");
  const file = decodeSafetensors(
    assemble(
      `{"__proto__":{"dtype":"F32","shape":[],"data_offsets":[0,4]},` +
        `"z":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},` +
        `"z2":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]}}`,
      le(4, [42], (v, a, x) => v.setFloat32(a, x, true)),
    ),
  );
  sameArray(file.tensors.get("__proto__")!.toFloat32(), [42], "scalar named __proto__");
  assert(file.tensors.get("z")!.size === 0, "zero-size tensor");
  assert(file.tensors.get("z2")!.toTypedArray().length === 0, "zero-size i64");
});

Deno.test("halfToFloat: every binary16 pattern matches the definition", () => {
  for (let h = 0; h < 0x10000; h++) {
    const s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    const want = e === 31
      ? (m ? NaN : (s ? -Infinity : Infinity))
      : (s ? -1 : 1) * (e === 0 ? m / 1024 * 2 ** -14 : (1 + m / 1024) * 2 ** (e - 15));
    const got = halfToFloat(h);
    assert(Object.is(got, want) || (got === want), `half 0x${h.toString(16)}: ${got} vs ${want}`);
  }
});

// ---------------------------------------------------------------------------------------------
// (b) The writer, checked by an independent minimal reader

/** A second reader, as short as the specification allows: returns name → [dtype, shape, bytes]. */
function minimalRead(file: Uint8Array): {
  headerLength: number;
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  raw: string;
} {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const raw = new TextDecoder().decode(file.subarray(8, 8 + n));
  return { headerLength: n, header: JSON.parse(raw), raw };
}

Deno.test("writer: layout checked by an independent reader (alignment, padding, order, LE)", () => {
  const w = new Float32Array([1, -2, 0.1, NaN, -0, Infinity]);
  const idx = new Int32Array([-5, 6, 2 ** 31 - 1]);
  const u = new Uint32Array([0xdeadbeef]);
  const b = new Uint8Array([1, 2, 3, 4, 5]); // odd length: the next tensor is unaligned
  const d = new Float64Array([1 / 3]);
  const half = new Uint16Array([0x3c00, 0x4000]);
  const out = encodeSafetensors([
    ["layer/w", { data: w, shape: [2, 3] }],
    ["idx", { data: idx, shape: [3] }],
    ["u", { data: u, shape: [] }],
    ["b", { data: b, shape: [5] }],
    ["d", { data: d, shape: [1, 1] }],
    ["h", { data: half, shape: [2], dtype: "F16" }],
  ], { format: "wgrad", "any key": "any ✓ value" });
  const { headerLength, header, raw } = minimalRead(out);
  assert((8 + headerLength) % 8 === 0, `data starts at ${8 + headerLength}, not 8-aligned`);
  assert(raw.trimEnd().endsWith("}") && /^ *$/.test(raw.slice(raw.trimEnd().length)), "padding");
  assert(raw.startsWith("{"), "header starts with {");
  const meta = (header as unknown as Record<string, Record<string, string>>).__metadata__;
  assert(meta.format === "wgrad" && meta["any key"] === "any ✓ value", "metadata");
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  sameArray(names, ["layer/w", "idx", "u", "b", "d", "h"], "order");
  const dtypes = names.map((k) => header[k].dtype);
  sameArray(dtypes, ["F32", "I32", "U32", "U8", "F64", "F16"], "dtypes");
  let cursor = 0;
  for (const k of names) {
    const [s, e] = header[k].data_offsets;
    assert(s === cursor, `${k}: begins at ${s}, expected ${cursor} (no gaps)`);
    cursor = e;
  }
  assert(8 + headerLength + cursor === out.length, "the data section ends the file");
  const data = new DataView(out.buffer, 8 + headerLength);
  const off = (k: string) => header[k].data_offsets[0];
  for (let i = 0; i < w.length; i++) {
    const x = data.getFloat32(off("layer/w") + 4 * i, true);
    assert(Object.is(x, w[i]), `w[${i}]: ${x} vs ${w[i]}`);
  }
  for (let i = 0; i < idx.length; i++) {
    assert(data.getInt32(off("idx") + 4 * i, true) === idx[i], `idx[${i}]`);
  }
  assert(data.getUint32(off("u"), true) === 0xdeadbeef, "u");
  for (let i = 0; i < 5; i++) assert(data.getUint8(off("b") + i) === i + 1, `b[${i}]`);
  assert(data.getFloat64(off("d"), true) === 1 / 3, "d");
  assert(data.getUint16(off("h") + 2, true) === 0x4000, "h");
  // And our own reader agrees.
  const back = decodeSafetensors(out);
  sameArray(back.tensors.get("layer/w")!.toFloat32(), w, "round trip w");
  sameArray(back.tensors.get("h")!.toFloat32(), [1, 2], "round trip h");
  sameArray(back.tensors.get("d")!.shape, [1, 1], "round trip d shape");
});

Deno.test("writer: an empty set, no metadata, raw bytes with a dtype, and its errors", () => {
  const empty = encodeSafetensors({});
  const { header, headerLength } = minimalRead(empty);
  assert(Object.keys(header).length === 0 && (8 + headerLength) % 8 === 0, "empty file");
  const raw = encodeSafetensors({ x: { data: new Uint8Array(8), shape: [2], dtype: "F32" } });
  sameArray(decodeSafetensors(raw).tensors.get("x")!.toFloat32(), [0, 0], "raw bytes as F32");
  const f = new Float32Array(6);
  expectError(
    () => encodeSafetensors({ w: { data: f, shape: [2, 2] } }),
    /tensor "w": shape \[2, 2\] needs 4 F32 values \(16 bytes\), got 6 values/,
    "length",
  );
  expectError(
    () => encodeSafetensors([["a", { data: f, shape: [6] }], ["a", { data: f, shape: [6] }]]),
    /two tensors are named "a"/,
    "duplicate",
  );
  expectError(
    () => encodeSafetensors({ __metadata__: { data: f, shape: [6] } }),
    /empty or reserved/,
    "reserved",
  );
  expectError(
    () => encodeSafetensors({ w: { data: f, shape: [-6] } }),
    /shape must be an array of non-negative integers/,
    "shape",
  );
  expectError(
    () => encodeSafetensors({ w: { data: f, shape: [6], dtype: "I32" } }),
    /Float32Array cannot be written as I32/,
    "dtype",
  );
  expectError(
    () => encodeSafetensors({}, { n: 1 as unknown as string }),
    /metadata value "n" must be a string/,
    "metadata",
  );
  expectError(
    () => encodeSafetensors({ w: { data: [1, 2] as unknown as Float32Array, shape: [2] } }),
    /data must be a typed array/,
    "plain array",
  );
});

Deno.test("writer → reader round trip of random tensors of every typed array", () => {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const shapes = [[], [1], [7], [3, 5], [2, 1, 4], [0, 3]];
  const makers: [string, (n: number) => Float32Array | Int32Array | Uint32Array | Uint8Array][] = [
    ["f32", (n) => Float32Array.from({ length: n }, () => (rnd() - 0.5) * 1e3)],
    ["i32", (n) => Int32Array.from({ length: n }, () => Math.floor((rnd() - 0.5) * 2 ** 32))],
    ["u32", (n) => Uint32Array.from({ length: n }, () => Math.floor(rnd() * 2 ** 32))],
    ["u8", (n) => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256))],
  ];
  const input: [
    string,
    { data: Float32Array | Int32Array | Uint32Array | Uint8Array; shape: number[] },
  ][] = [];
  for (const s of shapes) {
    for (const [k, make] of makers) {
      input.push([`${k}${JSON.stringify(s)}`, {
        data: make(s.reduce((a, b) => a * b, 1)),
        shape: s,
      }]);
    }
  }
  const file = decodeSafetensors(encodeSafetensors(input));
  for (const [name, t] of input) {
    const got = file.tensors.get(name)!;
    sameArray(got.shape, t.shape, `${name} shape`);
    const arr = got.toTypedArray();
    assert(arr.constructor === t.data.constructor, `${name}: ${arr.constructor.name}`);
    sameArray(arr, t.data, name);
  }
});

// ---------------------------------------------------------------------------------------------
// (c) Malformed files

const GOOD_ENTRY = `"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`;

const MALFORMED: [string, () => Uint8Array, RegExp][] = [
  ["empty file", () => new Uint8Array(0), /0 bytes long, shorter than the 8-byte header length/],
  ["7 bytes", () => new Uint8Array(7), /7 bytes long, shorter than the 8-byte/],
  [
    "header length 2^60",
    () => assemble("{}", [], 2n ** 60n),
    /header length 1152921504606846976 exceeds the 100000000-byte limit/,
  ],
  [
    "header length 2^64 - 1",
    () => assemble("{}", [], 2n ** 64n - 1n),
    /header length 18446744073709551615 exceeds/,
  ],
  [
    "header length just above 100 MB",
    () => assemble("{}", [], BigInt(MAX_HEADER_BYTES + 1)),
    /exceeds the 100000000-byte limit/,
  ],
  [
    "header length past the end of the file",
    () => assemble("{}", [], 99_999_999n),
    /header length 99999999 runs past the end of the file \(10 bytes; at most 2/,
  ],
  ["header length 0", () => assemble("", []), /header length 0 is too short/],
  [
    "not JSON",
    () => assemble(`{"a":1,}`),
    /not valid JSON: expected a key string, found "}" at character 7/,
  ],
  ["truncated JSON", () => assemble(`{"a":{"dtype"`), /not valid JSON: expected ":"/],
  ["not an object", () => assemble(`[1,2,3]`), /does not start with "\{"/],
  ["leading space", () => assemble(` {}`), /does not start with "\{"/],
  ["two values", () => assemble(`{} {}`), /not valid JSON: unexpected "\{" after the value/],
  ["invalid UTF-8", () => assemble(`{"\u00ff": 1}`).fill(0xff, 10, 11), /not valid UTF-8/],
  [
    "unknown dtype",
    () =>
      assemble(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, new Array(16).fill(0)),
    /tensor "a": unknown dtype "F128"/,
  ],
  [
    "dtype not a string",
    () => assemble(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]),
    /tensor "a": unknown dtype 4/,
  ],
  [
    "negative dimension",
    () => assemble(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]),
    /tensor "a": shape must be an array of non-negative integers, got \[-1\]/,
  ],
  [
    "fractional dimension",
    () => assemble(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, [0, 0, 0, 0]),
    /shape must be an array of non-negative integers, got \[1.5\]/,
  ],
  [
    "shape not an array",
    () => assemble(`{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}`, new Array(8).fill(0)),
    /shape must be an array of non-negative integers, got "2"/,
  ],
  [
    "huge dimension",
    () =>
      assemble(
        `{"a":{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}}`,
        [0, 0, 0, 0],
      ),
    /shape must be an array of non-negative integers/,
  ],
  [
    "shape product overflows",
    () =>
      assemble(
        `{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}`,
      ),
    /needs 316912650057057350374175801344 bytes, but data_offsets \[0, 0\] hold 0/,
  ],
  [
    "one offset",
    () => assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, [0, 0, 0, 0]),
    /data_offsets must be two non-negative integers, got \[4\]/,
  ],
  [
    "string offsets",
    () => assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}`, [0, 0, 0, 0]),
    /data_offsets must be two non-negative integers/,
  ],
  [
    "begin > end",
    () => assemble(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, [0, 0, 0, 0]),
    /data_offsets \[4, 0\] begin after they end/,
  ],
  [
    "offsets past the data",
    () => assemble(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, [0, 0, 0, 0]),
    /data_offsets \[0, 8\] run past the data section \(4 bytes\)/,
  ],
  [
    "huge end offset",
    () => assemble(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,9007199254740993]}}`, [0, 0]),
    /data_offsets must be two non-negative integers/,
  ],
  [
    "length ≠ shape × size",
    () => assemble(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, new Array(8).fill(0)),
    /tensor "a": shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/,
  ],
  [
    "overlap",
    () =>
      assemble(
        `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
          `"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
        new Array(12).fill(0),
      ),
    /tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/,
  ],
  [
    "same region twice",
    () =>
      assemble(
        `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
          `"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`,
        new Array(8).fill(0),
      ),
    /tensors "a" \[0, 8\] and "b" \[0, 8\] overlap/,
  ],
  [
    "hole",
    () =>
      assemble(
        `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},` +
          `"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`,
        new Array(12).fill(0),
      ),
    /bytes \[4, 8\) of the data section belong to no tensor \(a hole\)/,
  ],
  [
    "hole at the start",
    () => assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, new Array(8).fill(0)),
    /bytes \[0, 4\) of the data section belong to no tensor/,
  ],
  [
    "trailing data",
    () => assemble(`{${GOOD_ENTRY}}`, new Array(9).fill(0)),
    /bytes \[8, 9\) at the end of the data section belong to no tensor \(trailing data\)/,
  ],
  [
    "data but no tensors",
    () => assemble(`{}`, [1, 2, 3]),
    /bytes \[0, 3\) at the end of the data section belong to no tensor/,
  ],
  [
    "duplicate name",
    () => assemble(`{${GOOD_ENTRY},${GOOD_ENTRY}}`, new Array(8).fill(0)),
    /duplicate name "a"/,
  ],
  [
    "duplicate metadata",
    () => assemble(`{"__metadata__":{},"__metadata__":{}}`),
    /duplicate name "__metadata__"/,
  ],
  [
    "non-string metadata value",
    () => assemble(`{"__metadata__":{"epoch":3},${GOOD_ENTRY}}`, new Array(8).fill(0)),
    /"__metadata__" value "epoch" is not a string \(got 3\)/,
  ],
  [
    "metadata not an object",
    () => assemble(`{"__metadata__":"x"}`),
    /"__metadata__" must be an object of strings, got "x"/,
  ],
  [
    "entry not an object",
    () => assemble(`{"a":[1,2]}`),
    /tensor "a": entry must be an object, got \[1,2\]/,
  ],
  [
    "missing field",
    () => assemble(`{"a":{"dtype":"F32","shape":[1]}}`, [0, 0, 0, 0]),
    /tensor "a": missing field "data_offsets"/,
  ],
  [
    "unknown field",
    () =>
      assemble(
        `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`,
        [0, 0, 0, 0],
      ),
    /tensor "a": unknown field "extra"/,
  ],
  [
    "deep nesting",
    () => assemble(`{"__metadata__":${"[".repeat(1000)}${"]".repeat(1000)}}`),
    /nesting deeper than 64 levels/,
  ],
];

for (const [label, make, re] of MALFORMED) {
  Deno.test(`reader rejects: ${label}`, () => {
    const e = expectError(() => decodeSafetensors(make(), "bad.safetensors"), re, label);
    assertMatch(e.message, /^safetensors file "bad\.safetensors": /);
  });
}

Deno.test("reader: a huge declared header length allocates nothing (file and in memory)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_st_" });
  try {
    const path = `${dir}/huge.safetensors`;
    await Deno.writeFile(path, assemble("{}", [], 2n ** 60n));
    const before = Deno.memoryUsage().rss;
    for (let i = 0; i < 100; i++) {
      await readSafetensors(path).then(
        () => {
          throw new Error("accepted");
        },
        (e) => assertMatch((e as Error).message, /huge\.safetensors": header length \d+ exceeds/),
      );
    }
    const grown = Deno.memoryUsage().rss - before;
    assert(grown < 64 * 2 ** 20, `resident memory grew by ${grown} bytes`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensors / writeSafetensors: files on disk, missing file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgrad_st_" });
  try {
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, { k: { data: new Float32Array([1, 2, 3]), shape: [3] } }, {
      format: "wgrad",
    });
    const f = await readSafetensors(path);
    sameArray(f.tensors.get("k")!.toFloat32(), [1, 2, 3], "on disk");
    assert(f.metadata?.format === "wgrad", "metadata on disk");
    await readSafetensors(`${dir}/nope.safetensors`).then(
      () => {
        throw new Error("accepted a missing file");
      },
      (e) => assertMatch((e as Error).message, /nope\.safetensors": cannot read it: no such file/),
    );
    // Truncating a valid file anywhere is detected.
    const full = await Deno.readFile(path);
    for (const cut of [0, 4, 8, 20, full.length - 1]) {
      expectError(
        () => decodeSafetensors(full.subarray(0, cut), "cut"),
        /shorter than the 8-byte|runs past the end|run past the data section|not valid JSON/,
        `cut at ${cut}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// The strict JSON parser

Deno.test("parseJsonStrict: agrees with JSON.parse on valid text and rejects what it must", () => {
  const valid = [
    `{"a":[1,-2.5e3,0,true,false,null,"x\\n\\u00e9\\"\\\\\\/"],"b":{}}`,
    ` [ ] `,
    `"\\ud83d\\ude00"`,
    `-0.0e-0`,
    `{"__proto__":1}`,
  ];
  const plain = (v: unknown): unknown =>
    v instanceof Map
      ? Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]))
      : Array.isArray(v)
      ? v.map(plain)
      : v;
  for (const t of valid) {
    const want = JSON.stringify(JSON.parse(t));
    const got = parseJsonStrict(t);
    if (t.includes("__proto__")) {
      assert(got instanceof Map && got.get("__proto__") === 1, "__proto__ is an ordinary key");
      continue;
    }
    assert(JSON.stringify(plain(got)) === want, `${t}: ${JSON.stringify(plain(got))} vs ${want}`);
  }
  const invalid = [
    `{"a":1,"a":2}`,
    `{a:1}`,
    `[1,]`,
    `01`,
    `1.`,
    `.5`,
    `+1`,
    `"\t"`,
    `"\\x41"`,
    `"\\u12"`,
    `NaN`,
    `[1 2]`,
    `"abc`,
    `tru`,
    ``,
    `-`,
  ];
  for (const t of invalid) {
    let threw = false;
    try {
      parseJsonStrict(t);
    } catch {
      threw = true;
    }
    assert(threw, `accepted ${JSON.stringify(t)}`);
  }
});
