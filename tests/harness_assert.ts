/**
 * Minimal assertions for tests that do not need the kernel harness (no std library here).
 * @module
 */

/** Throws with `message` unless `cond` holds. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

/** Throws unless `text` matches `re`, printing the text. */
export function assertMatch(text: string, re: RegExp): void {
  if (!re.test(text)) throw new Error(`expected ${re} in:\n${text}`);
}
