/**
 * Functional models: a graph of layers from input symbols to output symbols, as Keras's
 * `Model(inputs, outputs)`. Layers are applied to symbols (`layer.apply(x)`), which checks every
 * shape at once; `nn.model({ inputs, outputs })` then collects the graph, names the layers, makes
 * the weights of layers that have none yet, and runs the graph on batches. Layers already trained
 * in another model keep their weights, so a model over a trained model's intermediate symbols
 * reads its feature maps (`predict` returns each output).
 * @module
 */
import { WgradError } from "../errors.ts";
import { scope, type Tensor } from "../tensor.ts";
import { reshape } from "../ops/transform.ts";
import { fmtShape } from "../errors.ts";
import { weightSeed } from "./initializers.ts";
import { type CallContext, describeValue, fmtBatchShape, type Layer } from "./layers.ts";
import { InputLayer } from "./conv_layers.ts";
import { assignNames, Model, type SummaryRow } from "./model.ts";
import { type GraphNode, isSymbolic, type SymbolicTensor } from "./symbolic.ts";
import type { FunctionalLayerRecord, ModelRecord } from "../io/model_config.ts";

/** Options of {@linkcode Functional}. */
export interface FunctionalOptions<
  O extends SymbolicTensor | readonly SymbolicTensor[] = SymbolicTensor,
> {
  /** The input symbol (from `nn.input`), or several. */
  inputs: SymbolicTensor | readonly SymbolicTensor[];
  /** The output symbol, or an array of them (then `predict` returns an array). */
  outputs: O;
  /** The model's name (default `"functional"`). */
  name?: string;
  /** Seed of the initial weights of layers that have none yet (default: a fixed seed). */
  seed?: number;
}

/** A graph of layers from input symbols to output symbols. */
export class Functional<Out = Tensor<"f32">> extends Model<Out> {
  /** The layers in the order they run (inputs first), each once. */
  readonly layers: Layer[];
  /** The input symbols. */
  readonly inputs: readonly SymbolicTensor[];
  /** The output symbols. */
  readonly outputs: readonly SymbolicTensor[];
  /** The layer applications, in the order they run. */
  readonly #nodes: GraphNode[];
  readonly #listOutput: boolean;

  /** Prefer `nn.model({ inputs, outputs })`. */
  constructor(options: FunctionalOptions<SymbolicTensor | readonly SymbolicTensor[]>) {
    const name = options?.name ?? "functional";
    super(name, options?.seed ?? 0x5eed);
    const where = `nn.model "${name}"`;
    if (!options || typeof options !== "object") {
      throw new WgradError("value", `${where}: pass { inputs, outputs }`);
    }
    const list = (v: unknown, what: string): SymbolicTensor[] => {
      const arr = Array.isArray(v) ? v : [v];
      if (arr.length === 0) throw new WgradError("value", `${where}: ${what} is empty`);
      arr.forEach((s, i) => {
        if (!isSymbolic(s)) {
          throw new WgradError(
            "value",
            `${where}: ${what}[${i}] is not a symbolic tensor (from nn.input or layer.apply), ` +
              `got ${describeValue(s)}`,
          );
        }
      });
      return arr as SymbolicTensor[];
    };
    const inputs = list(options.inputs, "inputs");
    const outputs = list(options.outputs, "outputs");
    this.#listOutput = Array.isArray(options.outputs);
    inputs.forEach((s, i) => {
      if (!(s.node?.layer instanceof InputLayer)) {
        throw new WgradError(
          "value",
          `${where}: inputs[${i}] ${s.describe()} is not a model input; inputs come from ` +
            "nn.input(shape) (or a Sequential model's .input)",
        );
      }
    });
    if (new Set(inputs).size !== inputs.length) {
      throw new WgradError("value", `${where}: an input is listed twice`);
    }
    // Depth-first from the outputs: every node they depend on, dependencies first.
    const order: GraphNode[] = [];
    const state = new Map<GraphNode, 1 | 2>();
    const given = new Set(inputs);
    const visit = (s: SymbolicTensor, path: string): void => {
      const node = s.node!;
      const seen = state.get(node);
      if (seen === 2) return;
      if (node.layer instanceof InputLayer && !given.has(s)) {
        throw new WgradError(
          "value",
          `${where}: the graph is disconnected: ${path} depends on the input ${s.describe()}, ` +
            "which is not among the model's inputs",
        );
      }
      state.set(node, 1);
      for (const i of node.inputs) visit(i, path);
      state.set(node, 2);
      order.push(node);
    };
    outputs.forEach((s, i) => visit(s, `outputs[${i}] ${s.describe()}`));
    for (const s of inputs) {
      if (!state.has(s.node!)) order.unshift(s.node!);
    }
    // Inputs first, in the order given.
    const inputNodes = inputs.map((s) => s.node!);
    this.#nodes = [...inputNodes, ...order.filter((n) => !inputNodes.includes(n))];
    const layers: Layer[] = [];
    for (const n of this.#nodes) if (!layers.includes(n.layer)) layers.push(n.layer);
    this.layers = layers;
    this.inputs = inputs;
    this.outputs = outputs;
    // Layers new to any model get their position (it seeds weights and dropout) and names.
    // Input layers are not counted, so a chain seeds its weights as the Sequential model does.
    assignNames(layers, where);
    // Layers already placed by another model keep theirs; new ones take the next free positions.
    const nonInput = layers.filter((l) => !(l instanceof InputLayer));
    const taken = new Set(nonInput.filter((l) => l.placed).map((l) => l.index));
    let next = 0;
    for (const l of nonInput) {
      if (l.placed) continue;
      while (taken.has(next)) next++;
      l.index = next++;
      l.placed = true;
    }
    for (const l of layers) l.createWeights((k) => weightSeed(this.seed, l.index, k));
    this.adoptLayers();
  }

  /** Always true: a functional model is built when it is made. */
  get built(): boolean {
    return true;
  }

  /** The shape of one sample of each input. */
  get inputShapes(): readonly (readonly number[])[] {
    return this.inputs.map((s) => s.shape);
  }

  /** The shape of one sample of each output. */
  get outputShapes(): readonly (readonly number[])[] {
    return this.outputs.map((s) => s.shape);
  }

  /** The input symbol of a model with one input (Keras's `model.input`). */
  get input(): SymbolicTensor {
    if (this.inputs.length !== 1) void this.inputShape;
    return this.inputs[0];
  }

  /** The output symbol of a model with one output (Keras's `model.output`). */
  get output(): SymbolicTensor {
    if (this.outputs.length !== 1) void this.outputShape;
    return this.outputs[0];
  }

  /** Runs the graph on a batch `[batch, ...inputShape]` (a model with one input): each output. */
  applyAll(
    x: Tensor<"f32">,
    ctx: CallContext = { training: false, rng: null },
  ): Tensor<"f32">[] {
    const shape = this.inputShape;
    if (x.rank !== shape.length + 1 || fmtShape(x.shape.slice(1)) !== fmtShape(shape)) {
      throw new WgradError(
        "shape",
        `model "${this.name}" expects inputs ${fmtBatchShape(shape)}, got ${x.describe()}`,
      );
    }
    this.assertLive();
    return scope(() => {
      const values = new Map<SymbolicTensor, Tensor<"f32">>([[this.inputs[0], x]]);
      for (const node of this.#nodes) {
        if (node.layer instanceof InputLayer) continue;
        const args = node.inputs.map((s) => values.get(s)!);
        values.set(node.output, node.layer.callMany(args, ctx));
      }
      // An output that is an input is returned as a new view of it (callers dispose the input).
      return this.outputs.map((s) => {
        const v = values.get(s)!;
        return v === x ? reshape(x, x.shape) : v;
      });
    });
  }

  /** @internal */
  architecture(): Pick<ModelRecord, "class_name" | "config"> {
    const local = this.#localIndices();
    const ref = (s: SymbolicTensor): [string, number, number] => [
      s.node!.layer.name,
      local.get(s.node!)!,
      0,
    ];
    const layers: FunctionalLayerRecord[] = this.layers.map((l) => ({
      class_name: l.className,
      name: l.name,
      config: l.fullConfig(),
      inbound_nodes: this.#nodes
        .filter((n) => n.layer === l && !(l instanceof InputLayer))
        .map((n) => n.inputs.map(ref)),
    }));
    return {
      class_name: "Functional",
      config: {
        name: this.name,
        seed: this.seed,
        layers,
        input_layers: this.inputs.map(ref),
        // One reference for a single output, a list for a list (as Keras 3 writes them).
        output_layers: this.#listOutput ? this.outputs.map(ref) : ref(this.outputs[0]),
      },
    };
  }

  /** Each node's position among its layer's nodes in this model. */
  #localIndices(): Map<GraphNode, number> {
    const count = new Map<Layer, number>();
    const out = new Map<GraphNode, number>();
    for (const n of this.#nodes) {
      const k = count.get(n.layer) ?? 0;
      out.set(n, k);
      count.set(n.layer, k + 1);
    }
    return out;
  }

  /** @internal */
  protected summaryRows(): SummaryRow[] {
    const chain = this.inputs.length === 1 &&
      this.#nodes.every((n, i) =>
        i === 0 || (n.inputs.length === 1 && n.inputs[0] === this.#nodes[i - 1].output)
      );
    const local = this.#localIndices();
    // One row per layer (Keras's table); a layer applied several times lists every input.
    return this.layers.map((l) => {
      const nodes = this.#nodes.filter((n) => n.layer === l);
      const row: SummaryRow = { layer: l, shape: nodes[0].output.shape };
      if (!chain) {
        row.connectedTo = nodes.flatMap((n) =>
          n.inputs.map((s) => `${s.node!.layer.name}[${local.get(s.node!)}][0]`)
        );
      }
      return row;
    });
  }

  /** @internal */
  protected wrapOutputs(outs: Tensor<"f32">[]): Out {
    return (this.#listOutput ? outs : outs[0]) as Out;
  }
}
