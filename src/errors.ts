/**
 * Errors raised by wgrad. Every error names the op, layer, file or tensor at fault and the shapes or
 * values involved, so that a message alone is enough to find the bug.
 * @module
 */

/** The kind of failure, for programmatic handling. */
export type WgradErrorKind =
  | "shape"
  | "dtype"
  | "value"
  | "disposed"
  | "gpu-unavailable"
  | "gpu-lost"
  | "gpu-validation"
  | "gpu-out-of-memory"
  | "limit";

/** An error raised by wgrad, with a {@linkcode WgradErrorKind} to tell failures apart. */
export class WgradError extends Error {
  /** What went wrong, in one word. */
  readonly kind: WgradErrorKind;

  /**
   * Makes an error.
   * @param kind what went wrong
   * @param message a sentence that names the op, layer or file and the shapes or values at fault
   */
  constructor(kind: WgradErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WgradError";
    this.kind = kind;
  }
}

/** Formats a shape the way error messages print it: `[2, 3]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
