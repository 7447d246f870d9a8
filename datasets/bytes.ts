/**
 * Small helpers for reading byte streams exactly, shared by the archive readers.
 * @module
 */

/** Reads exact byte counts from a stream of chunks of any size. */
export class ByteQueue {
  readonly #it: AsyncIterator<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  /** Bytes consumed so far (returned by {@linkcode ByteQueue.read} or skipped). */
  position = 0;

  /** Wraps a stream or any async iterable of byte chunks. */
  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Buffers until at least `n` bytes are available or the stream ends; returns what is. */
  async #fill(n: number): Promise<number> {
    while (this.#buffered < n && !this.#ended) {
      const r = await this.#it.next();
      if (r.done) {
        this.#ended = true;
        break;
      }
      if (r.value.length) {
        this.#chunks.push(r.value);
        this.#buffered += r.value.length;
      }
    }
    return Math.min(n, this.#buffered);
  }

  /** Up to `n` bytes (fewer only at the end of the stream). */
  async read(n: number): Promise<Uint8Array> {
    const have = await this.#fill(n);
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first && first.length >= have) {
      out = first.subarray(0, have);
      if (first.length === have) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(have);
    } else {
      out = new Uint8Array(have);
      let o = 0;
      while (o < have) {
        const c = this.#chunks[0];
        const take = Math.min(c.length, have - o);
        out.set(c.subarray(0, take), o);
        o += take;
        if (take === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(take);
      }
    }
    this.#buffered -= have;
    this.position += have;
    return out;
  }

  /**
   * Passes the next `n` bytes to `sink` chunk by chunk (each a view valid only during the call);
   * returns how many there were (fewer than `n` only at the end of the stream).
   */
  async forEach(n: number, sink: (chunk: Uint8Array) => void): Promise<number> {
    let done = 0;
    while (done < n) {
      if (this.#chunks.length === 0 && (await this.#fill(1)) === 0) break;
      const c = this.#chunks[0];
      const take = Math.min(c.length, n - done);
      sink(c.subarray(0, take));
      if (take === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
      this.#buffered -= take;
      this.position += take;
      done += take;
    }
    return done;
  }

  /** Stops reading: lets the source clean up (closes files, cancels streams). */
  async close(): Promise<void> {
    this.#ended = true;
    this.#chunks = [];
    await this.#it.return?.();
  }
}

/** Joins byte chunks into one array. */
export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array<ArrayBuffer> {
  const n = total ?? parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
