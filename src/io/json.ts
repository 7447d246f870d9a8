/**
 * A strict JSON parser for headers read from files: RFC 8259 grammar only, duplicate keys
 * rejected, objects returned as `Map`s (so a key such as `__proto__` is an ordinary key), a depth
 * limit, and errors that give the character offset. Nothing is evaluated.
 * @module
 */

/** A parsed JSON value; objects are `Map`s in key order. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | Map<string, JsonValue>;

/** A syntax error at a character offset of the text. */
export class JsonSyntaxError extends Error {
  /** The offset (in UTF-16 code units) where parsing failed. */
  readonly offset: number;

  /**
   * Makes the error.
   * @param message what is wrong
   * @param offset where
   */
  constructor(message: string, offset: number) {
    super(`${message} at character ${offset}`);
    this.name = "JsonSyntaxError";
    this.offset = offset;
  }
}

const MAX_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * Parses `text` as one JSON value (surrounding whitespace allowed). Throws
 * {@linkcode JsonSyntaxError} on bad syntax, a duplicate key in any object, or nesting deeper
 * than 64 levels.
 */
export function parseJsonStrict(text: string): JsonValue {
  let i = 0;
  const fail = (msg: string, at = i): never => {
    throw new JsonSyntaxError(msg, at);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const describe = (at: number) =>
    at >= text.length ? "end of text" : `${JSON.stringify(text[at])}`;

  const str = (): string => {
    // text[i] === '"'
    const start = i;
    i++;
    let out = "";
    let run = i;
    for (;;) {
      if (i >= text.length) fail("unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(run, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        out += text.slice(run, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
          case "\\":
          case "/":
            out += e;
            i += 2;
            break;
          case "b":
            out += "\b";
            i += 2;
            break;
          case "f":
            out += "\f";
            i += 2;
            break;
          case "n":
            out += "\n";
            i += 2;
            break;
          case "r":
            out += "\r";
            i += 2;
            break;
          case "t":
            out += "\t";
            i += 2;
            break;
          case "u": {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
            out += String.fromCharCode(parseInt(hex, 16));
            i += 6;
            break;
          }
          default:
            fail("bad escape");
        }
        run = i;
        continue;
      }
      i++;
    }
  };

  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`);
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = new Map<string, JsonValue>();
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a key string, found ${describe(i)}`);
        const keyAt = i;
        const key = str();
        if (obj.has(key)) fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
        ws();
        if (text[i] !== ":") fail(`expected ":", found ${describe(i)}`);
        i++;
        obj.set(key, value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return obj;
        }
        fail(`expected "," or "}", found ${describe(i)}`);
      }
    }
    if (c === "[") {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail(`expected "," or "]", found ${describe(i)}`);
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m && m[0] !== "-") {
      i += m[0].length;
      return Number(m[0]);
    }
    return fail(`unexpected ${describe(i)}`);
  };

  const v = value(0);
  ws();
  if (i < text.length) fail(`unexpected ${describe(i)} after the value`);
  return v;
}
