/**
 * Symbolic tensors: the placeholders of the functional API. `nn.input([28, 28, 1])` makes one,
 * `layer.apply(symbol)` checks the shapes and returns the layer's output symbol, and
 * `nn.model({ inputs, outputs })` turns the graph between them into a model. A symbol holds no
 * data and no GPU memory; its rank (batch axis included) is part of its type, so a layer that
 * needs images does not accept a flat symbol.
 * @module
 */
import type { Layer } from "./layers.ts";

/** One application of a layer in a graph: the symbols it read and the symbol it made. */
export interface GraphNode {
  /** The layer applied. */
  readonly layer: Layer;
  /** Its inputs, in order. */
  readonly inputs: readonly SymbolicTensor[];
  /** Its output. */
  readonly output: SymbolicTensor;
}

let nextSymbolId = 0;

/**
 * A placeholder for a batch of values in a functional graph. `shape` is one sample's shape (no
 * batch axis, as everywhere in the layer API); `rank` counts the batch axis too, as Keras's
 * `(None, 28, 28, 1)` does, and is carried in the type parameter `R`.
 */
export class SymbolicTensor<R extends number = number> {
  /** The shape of one sample (without the batch axis). */
  readonly shape: readonly number[];
  /** The number of axes, the batch axis included. */
  readonly rank: R;
  /** The layer application that made it, or null for a model input. */
  readonly node: GraphNode | null;
  #label: string;
  /** A process-unique id. */
  readonly id: number = nextSymbolId++;

  /** @internal Use `nn.input` and `layer.apply` to make symbols. */
  constructor(shape: readonly number[], node: GraphNode | null, label: string) {
    this.shape = Object.freeze([...shape]);
    this.rank = (shape.length + 1) as R;
    this.node = node;
    this.#label = label;
  }

  /** A name for messages: the producing layer's name (an input's layer's), as it is now. */
  get label(): string {
    return this.node?.layer.name || this.#label;
  }

  /** Keras's printed shape: `(None, 28, 28, 1)`. */
  describe(): string {
    return `${this.label} (None${this.shape.map((d) => `, ${d}`).join("")})`;
  }
}

/**
 * What a layer that needs rank `Want` accepts: a symbol of that rank, or one whose rank the type
 * checker does not know (`SymbolicTensor<number>`, e.g. from a shape computed at run time; the
 * layer checks it when applied). A symbol of another known rank is `never`: a type error.
 */
export type RankedSymbol<R extends number, Want extends number> = number extends R
  ? SymbolicTensor<R>
  : R extends Want ? SymbolicTensor<R>
  : never;

/** The type of the rank, batch axis included, of samples of shape `S`. */
export type RankOf<S extends readonly number[]> = [0, ...S]["length"];

/** Whether a value is a symbolic tensor. */
export function isSymbolic(v: unknown): v is SymbolicTensor {
  return v instanceof SymbolicTensor;
}
