"""Quantization error per layer (SPEC section 7): where along the network the error appears and grows.

For each main-graph node with a float output, in graph order:
- accumulated: the NPU simulation from the input up to this node, against the float model;
- isolated, for a node that reads a quantized weight: the node fed the float model's own inputs,
  with its weight (and fused bias) as the NPU holds them, against the float node.
A layer that creates error has a low isolated SQNR and a large drop from its inputs; one that only
passes error on has neither.

Cost: one float run with every layer exposed (kept), one NPU run with every layer exposed, and one
run of a small graph holding a copy of every weight-reading node, all through the evaluator's
sessions: a settings change rebinds weights and reruns the two NPU runs, nothing is rebuilt.

Memory: the float values of every layer are kept, so the analysis runs on as many of the first
samples as fit in LAYER_BYTES, and on at least LAYER_MIN_SAMPLES while they fit in four times that:
500 samples of a 224x224 CNN would otherwise keep tens of GB. Each layer tensor holds thousands of
values per sample, so a few samples settle its SQNR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..model.graph import node_label, reads
from ..model.inventory import PASS_THROUGH, WEIGHT_INPUTS
from ..model.tf.metadata import tf_op
from ..numbers import EXACT_DB, db_level
from ..quant.compiler import Compilation
from .evaluate import Comparison, Layer, compare_many
from .runtime import Batches, BoundSession, same_array
from .sensitivity import Cancelled
from .simulation import ROUNDED_SUFFIX, elem_types, feed_name, reference_model, structure, weight_feeds

if TYPE_CHECKING:
    from .evaluate import Evaluator

ISOLATED_PREFIX = "__npu_iso"
MARKED_DROPS = 3
LAYER_BYTES = 128 << 20
LAYER_MIN_SAMPLES = 4  # fewer only when four samples' layers would pass 4x LAYER_BYTES
ISOLATION_CHUNKS = 16  # a one-weight change reruns about 1/16 of the isolated copies


@dataclass
class _Chunk:
    """A graph with copies of some weight-reading nodes; run again only when one of its weights is
    held differently, so a settings change recomputes the isolated numbers it changes and no more."""

    bound: BoundSession
    entries: dict[str, tuple[str, str]]  # NPU node output -> (isolated output, weight)
    inputs: list[str]  # float activations it is fed
    held: dict[str, np.ndarray] = field(default_factory=dict)  # the weight arrays of its last run
    flags: tuple[bool, ...] = ()  # and whether each of its weights was quantized
    found: dict[str, tuple[Comparison | None, str]] = field(default_factory=dict)


class LayerAnalysis:
    """The per-layer numbers of one evaluator; float values computed once."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._float_parts: list[dict[str, np.ndarray]] | None = None
        self._float: dict[str, np.ndarray] = {}
        self._isolations: dict[tuple, list[_Chunk]] = {}
        self.batches: Batches | None = None  # the samples measured, set with the float values
        self._compared: dict[tuple, tuple[dict, dict[str, Comparison]]] = {}  # the last accumulated numbers per graph
        self._places: dict[str, int] | None = None

    @property
    def samples(self) -> int:
        """How many of the first samples the layer numbers are measured on."""
        self.float_parts()
        assert self.batches is not None
        return self.batches.samples

    def float_parts(self) -> list[dict[str, np.ndarray]]:
        """Every main-graph node's outputs in the float model, run by run (shapes and ids included:
        the isolated copies are fed whatever their node reads), for the first samples that fit in
        LAYER_BYTES, kept."""
        if self._float_parts is None:
            self._float_parts = list(self._float_runs())
        return self._float_parts

    def each_float_part(self) -> Iterator[dict[str, np.ndarray]]:
        """`float_parts` one run at a time: the kept values when they are there, else each run made
        and let go, so that a diagnosis reading each value once (Analysis.fp16_culprit) keeps none
        (every layer of one PP-OCRv4 det sample, 1x3x320x320, is 165 MB)."""
        if self._float_parts is not None:
            return iter(self._float_parts)
        return self._float_runs()

    def _float_runs(self) -> Iterator[dict[str, np.ndarray]]:
        """The float model's runs over the layer samples: one sample is run first to learn what a
        sample costs, which sets `batches`."""
        evaluator = self.evaluator
        bound = self._float_session()
        probe = evaluator.run_parts(bound, batches=evaluator.batches.first(1))
        per_sample = max(sum(v.nbytes for v in probe[0].values()), 1)
        floor = LAYER_MIN_SAMPLES if per_sample * LAYER_MIN_SAMPLES <= 4 * LAYER_BYTES else 1
        self.batches = evaluator.batches.first(max(LAYER_BYTES // per_sample, floor))
        if self.batches.samples == 1:
            yield probe[0]
            return
        del probe  # its sample runs again with the others
        yield from evaluator.each_part(bound, batches=self.batches)

    def _float_session(self) -> BoundSession:
        """The float model with every node's outputs exposed, in a session without an arena: each
        value is freed with the array that holds it."""
        evaluator = self.evaluator
        evaluator.reference()  # settles how samples are batched
        model = reference_model(evaluator.compiler.inventory)
        types = elem_types(model)
        known = {o.name for o in model.graph.output}
        exposed = [
            out
            for node in model.graph.node
            if node.op_type != "Constant"
            for out in node.output
            if out and out not in known and types.get(out)
        ]
        model.graph.output.extend(onnx.helper.make_tensor_value_info(n, types[n], None) for n in exposed)
        return BoundSession(evaluator.session(model, lean=True), [o.name for o in model.graph.output], {})

    def float_value(self, name: str) -> np.ndarray:
        if name not in self._float:
            self._float[name] = self.evaluator.batches.join([p[name] for p in self.float_parts()])
        return self._float[name]

    def layers(self, compilation: Compilation, fp16_activations: bool, stop: Callable[[], bool] | None = None) -> list[Layer]:
        """`stop` is asked between the steps (each one run or one session build): Esc in the
        workbench must not wait for a 2,000-layer analysis."""

        def check() -> None:
            if stop is not None and stop():
                raise Cancelled()

        evaluator = self.evaluator
        with evaluator.lock:
            check()
            self.float_parts()
            check()
            npu = evaluator.run_npu(compilation, fp16_activations, layers=True, batches=self.batches)
            check()
            isolated = self._isolated(compilation, fp16_activations, check)
        fused = {
            r.weight.bn.bn.output[0]: r.weight.bn
            for r in compilation.results.values()
            if r.plan.fused and r.weight.bn is not None
        }
        fused_convs = {id(site.conv) for site in fused.values()}
        model = evaluator.compiler.inventory.model
        tensorflow = evaluator.compiler.inventory.tensorflow
        types = elem_types(model)
        rows = []
        positions = []  # each row's node's place in graph order
        passed_on: dict[str, str] = {}  # a TF reader's helper node's output -> the tensor it moves (layout)
        for position, node in enumerate(model.graph.node):
            if node.op_type == "Constant" or id(node) in fused_convs:
                continue
            if tensorflow and _is_helper(node):  # a layout Transpose is not a layer of the user's graph
                passed_on.update({o: passed_on.get(node.input[0], node.input[0]) for o in node.output if node.input})
                continue
            out = next((o for o in node.output if o and types.get(o) == onnx.TensorProto.FLOAT), None)
            if out is None or out not in npu:
                continue
            label, op, inputs = node_label(node), _op(node, tensorflow), reads(node)
            if out in fused:
                site = fused[out]
                label, op = (
                    f"{node_label(site.conv)}+{node_label(site.bn)}",
                    f"{_op(site.conv, tensorflow)}+{_op(node, tensorflow)}",
                )
                inputs = reads(site.conv)
            rows.append((label, op, out, [passed_on.get(i, i) for i in inputs]))
            positions.append(position)
        accumulated = self._accumulated(compilation, fp16_activations, rows, positions, npu)
        sqnr_of = {out: c.sqnr_db for (_, _, out, _), c in zip(rows, accumulated)}
        drops = []
        for (_, _, _, inputs), c in zip(rows, accumulated):
            upstream = [db_level(sqnr_of[i]) for i in inputs if i in sqnr_of]
            drops.append(min(upstream, default=EXACT_DB) - db_level(c.sqnr_db))
        ranked = sorted((k for k, d in enumerate(drops) if d > 0), key=lambda k: -drops[k])
        marked = set(ranked[:MARKED_DROPS])
        found = []
        for k, ((label, op, out, _), c) in enumerate(zip(rows, accumulated)):
            iso, weight = isolated.get(out, (None, None))
            found.append(Layer(k, label, op, out, c, iso, weight, drops[k], k in marked))
        return found

    def _accumulated(
        self, compilation: Compilation, fp16_activations: bool, rows: list, positions: list[int], npu: dict[str, np.ndarray]
    ) -> list[Comparison]:
        """Rows before the first node that reads a weight held differently than last time keep their
        comparison: in graph order nothing before a node depends on it."""
        held = {name: (r.simulated, r.fused_bias, r.bias_held) for name, r in compilation.results.items()}
        key = (structure(compilation), fp16_activations)
        before = self._compared.get(key)
        first = 0
        if before is not None:
            changed = [
                n
                for n, arrays in held.items()
                if not all(same_array(a, b) for a, b in zip(arrays, before[0].get(n, (None, None, None))))
            ]
            first = min((self._first_reader(n) for n in changed), default=len(self.evaluator.compiler.inventory.model.graph.node))
        kept = before[1] if before is not None else {}
        redo = [k for k, ((_, _, out, _), position) in enumerate(zip(rows, positions)) if position >= first or out not in kept]
        fresh = dict(zip(redo, compare_many([(self.float_value(rows[k][2]), npu[rows[k][2]]) for k in redo])))
        found = [fresh[k] if k in fresh else kept[out] for k, (_, _, out, _) in enumerate(rows)]
        self._compared[key] = (held, {out: c for (_, _, out, _), c in zip(rows, found)})
        return found

    def _first_reader(self, weight: str) -> int:
        """The place in graph order of the first main-graph node reading `weight` (a pass-through
        Transpose of it, the node holding a subgraph that reads it); 0 when none is found."""
        if self._places is None:
            self._places = {}
            for k, node in enumerate(self.evaluator.compiler.inventory.model.graph.node):
                for name in reads(node):
                    self._places.setdefault(name, k)
        return self._places.get(weight, 0)

    def _isolated(
        self, compilation: Compilation, fp16_activations: bool, check: Callable[[], None]
    ) -> dict[str, tuple[Comparison | None, str]]:
        evaluator = self.evaluator
        graph = evaluator.npu_graph(compilation, fp16_activations)
        key = (structure(compilation), fp16_activations)
        if key not in self._isolations:
            self._isolations[key] = self._build(graph.model, graph.feeds, compilation, fp16_activations)
        feeds = weight_feeds(compilation)
        found: dict[str, tuple[Comparison | None, str]] = {}
        for chunk in self._isolations[key]:
            flags = tuple(compilation.plans[w].quantized for _, w in chunk.entries.values())
            if flags != chunk.flags or not all(same_array(feeds[n], chunk.held.get(n)) for n in chunk.bound.fixed):
                check()
                chunk.found = self._run_chunk(chunk, compilation, feeds)
                chunk.held, chunk.flags = {n: feeds[n] for n in chunk.bound.fixed}, flags
            found.update(chunk.found)
        return found

    def _run_chunk(
        self, chunk: _Chunk, compilation: Compilation, feeds: dict[str, np.ndarray]
    ) -> dict[str, tuple[Comparison | None, str]]:
        evaluator = self.evaluator
        states = [{t: part[t] for t in chunk.inputs} for part in self.float_parts()]
        chunk.bound.update_fixed({n: feeds[n] for n in chunk.bound.fixed})
        parts = evaluator.run_parts(chunk.bound, None, states, self.batches)
        measured = [(t, w, o) for t, (o, w) in chunk.entries.items() if compilation.plans[w].quantized]
        pairs = [(self.float_value(t), evaluator.batches.join([p[o] for p in parts])) for t, _, o in measured]
        found: dict[str, tuple[Comparison | None, str]] = {}
        for (target, weight, _), comparison in zip(measured, compare_many(pairs)):
            found[target] = (comparison, weight)
        for target, (_, weight) in chunk.entries.items():
            found.setdefault(target, (None, weight))
        return found

    def _build(self, model: onnx.ModelProto, feeds: frozenset[str], compilation: Compilation, fp16: bool) -> list[_Chunk]:
        graph = model.graph
        producers = {o: n for n in graph.node for o in n.output if o}
        initializers = {t.name: t for t in graph.initializer}
        feed_inputs = {feed_name(f) for f in feeds}
        data_inputs = {i.name for i in graph.input} - feed_inputs
        derived = set(initializers) | feed_inputs
        for node in graph.node:
            if all(i in derived for i in reads(node)) and not node.op_type.startswith("Random"):
                derived.update(o for o in node.output if o)
        types = elem_types(model)
        order = {id(n): i for i, n in enumerate(graph.node)}
        copies: list[tuple[list[onnx.NodeProto], str, str, str]] = []  # (nodes, target, isolated output, weight)
        for k, node in enumerate(graph.node):
            weight = _weight_read(node, producers, feeds)
            if weight is None or not node.output or types.get(node.output[0]) != onnx.TensorProto.FLOAT:
                continue
            prefix = f"{ISOLATED_PREFIX}{k}/"
            copied = _closure(node, producers, derived, order)
            local = {o for n in copied for o in n.output if o}
            nodes: list[onnx.NodeProto] = []
            for original in copied:
                clone = onnx.NodeProto()
                clone.CopyFrom(original)
                clone.name = prefix + node_label(original)
                for i, name in enumerate(clone.input):
                    if name in local:
                        clone.input[i] = prefix + name
                for i, name in enumerate(clone.output):
                    if name:
                        clone.output[i] = prefix + name
                nodes.append(clone)
            result = prefix + node.output[0]
            if fp16:
                half, back = result + "__f16", result + "__f32"
                nodes.append(onnx.helper.make_node("Cast", [result], [half], to=onnx.TensorProto.FLOAT16))
                nodes.append(onnx.helper.make_node("Cast", [half], [back], to=onnx.TensorProto.FLOAT))
                result = back
            copies.append((nodes, node.output[0].removesuffix(ROUNDED_SUFFIX), result, weight))
        size = max(1, -(-len(copies) // ISOLATION_CHUNKS))
        chunks = []
        for start in range(0, len(copies), size):
            part = copies[start : start + size]
            nodes = [n for copy in part for n in copy[0]]
            made = {o for n in nodes for o in n.output if o}
            read = {i for n in nodes for i in reads(n) if i not in made}  # subgraphs' outer-scope reads too
            activations = sorted(
                r for r in read if r not in initializers and r not in feed_inputs and r not in data_inputs and types.get(r)
            )
            inputs = [i for i in graph.input if i.name in read]
            inputs += [onnx.helper.make_tensor_value_info(t, types[t], None) for t in activations]
            outputs = [onnx.helper.make_tensor_value_info(result, onnx.TensorProto.FLOAT, None) for _, _, result, _ in part]
            isolated = onnx.helper.make_graph(
                nodes, "isolated", inputs, outputs, [initializers[n] for n in sorted(read & set(initializers))]
            )
            built = onnx.helper.make_model(isolated, opset_imports=list(model.opset_import), ir_version=model.ir_version)
            built.functions.extend(model.functions)
            session = self.evaluator.session(built, lean=True)
            bound = BoundSession(session, [o.name for o in outputs], weight_feeds(compilation))
            chunks.append(_Chunk(bound, {target: (result, weight) for _, target, result, weight in part}, activations))
        return chunks


def _is_helper(node: onnx.NodeProto) -> bool:
    found = tf_op(node)
    return found is not None and found[1] is not None


def _op(node: onnx.NodeProto, tensorflow: bool) -> str:
    """The op a user knows: the TF op for a TensorFlow model (BiasAdd, not Add), else the ONNX one."""
    found = tf_op(node) if tensorflow else None
    return found[0] if found is not None else node.op_type


def _weight_read(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], feeds: frozenset[str]) -> str | None:
    """The fed weight a weight-reading node takes, through pass-through ops; None for other nodes."""
    for index, _ in WEIGHT_INPUTS.get(node.op_type, ()):
        if index >= len(node.input):
            continue
        current = node.input[index]
        while current not in feeds and current in producers and producers[current].op_type in PASS_THROUGH:
            current = producers[current].input[0]
        if current in feeds:
            return current
    return None


def _closure(
    node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], derived: set[str], order: dict[int, int]
) -> list[onnx.NodeProto]:
    """The node and the nodes computing its weight-side inputs (from constants and fed weights), in
    graph order; activations are left as inputs."""
    chosen: dict[int, onnx.NodeProto] = {id(node): node}
    stack = [i for i in reads(node) if i in derived]
    while stack:
        name = stack.pop()
        producer = producers.get(name)
        if producer is None or id(producer) in chosen:
            continue
        chosen[id(producer)] = producer
        stack.extend(i for i in reads(producer) if i in derived)
    return sorted(chosen.values(), key=lambda n: order[id(n)])
