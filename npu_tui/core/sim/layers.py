"""Quantization error per layer (SPEC section 7): where along the network the error appears and grows.

For each main-graph node with a float output, in graph order:
- accumulated: the NPU simulation from the input up to this node, against the float model;
- isolated, for a node that reads a quantized weight: the node fed the float model's own inputs,
  with its weight (and fused bias) as the NPU holds them, against the float node.
A layer that creates error has a low isolated SQNR and a large drop from its inputs; one that only
passes error on has neither.

Cost: one float run with every layer exposed, one NPU run with every layer exposed, and one run of
a small graph holding a copy of every weight-reading node, all through sessions built once: a
settings change rebinds weights and reruns the NPU run (the float one too beyond KEPT_BYTES, below)
and the copies of the weights it changed; nothing is rebuilt.

Memory: the analysis goes run by run (Batches' runs): each run's float layers, its NPU layers and its
isolated copies are compared as they come (evaluate.RunByRun: a large layer reduced to its row sums,
the same numbers as the joined runs) and let go, so one run's layers are held, not every sample's;
the sessions hand back onnxruntime's own buffers, no copies. The float layers are kept between
analyses while all the samples' fit in KEPT_BYTES (the workbench's next settings change runs only
the NPU side); beyond it none outlive the analysis, and the NPU layers come as their fp16 values
(where activations are rounded through fp16): half the bytes, for numpy's slow fp16 conversion. One
run's layers can still be large (every layer of one 1x3x800x608 CDLA layout sample: 993 MB in float).
The samples measured are as many of the first as fit in LAYER_BYTES, and at least LAYER_MIN_SAMPLES
while they fit in four times that: the cap from when every layer's float values were kept, kept so
that the numbers (and the time an analysis takes) stay those of the same samples. Each layer tensor
holds thousands of values per sample, so a few samples settle its SQNR.
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
from .evaluate import Comparison, Layer, NpuGraph, RunByRun
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
KEPT_BYTES = LAYER_BYTES  # the float layers are kept between analyses while all the samples' fit; beyond, the NPU's are fp16


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


@dataclass(frozen=True)
class _Pass:
    """What one analysis measures in each run: the NPU layers named `outputs` (the rows compared
    again) and the stale chunks' isolated copies."""

    npu: BoundSession
    outputs: dict[str, str]  # layer -> the NPU output holding it (fp16 where activations are)
    accumulated: RunByRun
    stale: list[_Chunk]
    isolations: list[RunByRun]
    compilation: Compilation
    check: Callable[[], None]


class LayerAnalysis:
    """The per-layer numbers of one evaluator, measured run by run: one run's layers are held at a time;
    between analyses only the comparisons, the sessions and (within KEPT_BYTES) the float layers."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._float_bound: BoundSession | None = None
        self._probe: list[dict[str, np.ndarray]] = []  # the first sample's float layers, when they are all, until read
        self._keep = False  # whether the float layers of all the samples fit KEPT_BYTES
        self._kept: list[dict[str, np.ndarray]] | None = None  # then: every run's, once all are made
        self._isolations: dict[tuple, list[_Chunk]] = {}
        self.batches: Batches | None = None  # the samples measured, set by the first float run
        self._compared: dict[tuple, tuple[dict, dict[str, Comparison]]] = {}  # the last accumulated numbers per graph
        self._places: dict[str, int] | None = None

    @property
    def samples(self) -> int:
        """How many of the first samples the layer numbers are measured on."""
        return self._plan().samples

    def _plan(self) -> Batches:
        """The layer samples, set once: the first sample's float layers are run to learn what a sample's
        layers cost, and as many of the first samples as fit in LAYER_BYTES are measured (the cap from
        when every layer's values were kept; it keeps the numbers those of the same samples). When that
        one sample is all, its run is kept for the first analysis (for all of them within KEPT_BYTES)."""
        if self.batches is None:
            evaluator = self.evaluator
            probe = evaluator.run_slice(self._float_session(), slice(0, 1))
            per_sample = max(sum(v.nbytes for v in probe.values()), 1)
            floor = LAYER_MIN_SAMPLES if per_sample * LAYER_MIN_SAMPLES <= 4 * LAYER_BYTES else 1
            self.batches = evaluator.batches.first(max(LAYER_BYTES // per_sample, floor))
            self._keep = per_sample * self.batches.samples <= KEPT_BYTES
            if self.batches.samples == 1:
                if self._keep:
                    self._kept, self._float_bound = [probe], None
                else:
                    self._probe.append(probe)
        return self.batches

    def each_float_part(self) -> Iterator[dict[str, np.ndarray]]:
        """Every main-graph node's outputs in the float model (shapes and ids included: the isolated
        copies are fed whatever their node reads), run by run over the layer samples. They are kept
        between analyses while all of them fit in KEPT_BYTES (a settings change then runs only the NPU
        side again); beyond it each run is made and let go (every layer of one PP-OCRv4 det sample,
        1x3x320x320, is 165 MB; of one CDLA layout sample, 1x3x800x608, 993 MB)."""
        batches = self._plan()
        if self._kept is not None:
            yield from self._kept
        elif self._probe:
            yield self._probe.pop()  # not held by this frame while the caller uses it
        elif not self._keep:
            yield from self.evaluator.each_part(self._float_session(), batches=batches)
        else:
            made = []
            for part in self.evaluator.each_part(self._float_session(), batches=batches):
                made.append(part)
                yield part
            self._kept, self._float_bound = made, None  # its session is not needed again

    def _float_session(self) -> BoundSession:
        """The float model with every node's outputs exposed, in a session without an arena: each
        value is freed with the array that holds it. Built once, let go once the float layers are kept."""
        if self._float_bound is not None:
            return self._float_bound
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
        self._float_bound = BoundSession(evaluator.session(model, lean=True), [o.name for o in model.graph.output], {})
        return self._float_bound

    def layers(self, compilation: Compilation, fp16_activations: bool, stop: Callable[[], bool] | None = None) -> list[Layer]:
        """`stop` is asked between the steps (each run or session build): Esc in the workbench must
        not wait for a 2,000-layer analysis."""

        def check() -> None:
            if stop is not None and stop():
                raise Cancelled()

        evaluator = self.evaluator
        with evaluator.lock:
            check()
            self._plan()
            check()
            graph = evaluator.npu_graph(compilation, fp16_activations, layers=True, half=not self._keep)
            check()
            chunks = self._chunks(graph, compilation, fp16_activations)
            rows, positions = self._rows(compilation, set(graph.layers))
            key = (structure(compilation), fp16_activations)
            held, kept, redo = self._redo(compilation, key, rows, positions)
            stale = self._stale(chunks, compilation)
            accumulated, isolations = self._measure(graph, compilation, [rows[k][2] for k in redo], stale, check)
            fresh = dict(zip(redo, accumulated.comparisons([rows[k][2] for k in redo])))
            found = [fresh[k] if k in fresh else kept[out] for k, (_, _, out, _) in enumerate(rows)]
            self._compared[key] = (held, {out: c for (_, _, out, _), c in zip(rows, found)})
            feeds = weight_feeds(compilation)
            for chunk, measured in zip(stale, isolations):
                chunk.found = _isolated_found(chunk, compilation, measured)
                chunk.held = {n: feeds[n] for n in chunk.bound.fixed}
                chunk.flags = tuple(compilation.plans[w].quantized for _, w in chunk.entries.values())
            isolated = {target: entry for chunk in chunks for target, entry in chunk.found.items()}
        return _ranked(rows, found, isolated)

    def _rows(self, compilation: Compilation, exposed: set[str]) -> tuple[list[tuple[str, str, str, list[str]]], list[int]]:
        """(label, op, output, inputs) of every layer the NPU graph exposes, in graph order (a fused
        Conv+BatchNormalization is one), and each one's node's place in graph order."""
        fused = {
            r.weight.bn.bn.output[0]: r.weight.bn
            for r in compilation.results.values()
            if r.plan.fused and r.weight.bn is not None
        }
        fused_convs = {id(site.conv) for site in fused.values()}
        model = self.evaluator.compiler.inventory.model
        tensorflow = self.evaluator.compiler.inventory.tensorflow
        types = elem_types(model)
        rows = []
        positions = []
        passed_on: dict[str, str] = {}  # a TF reader's helper node's output -> the tensor it moves (layout)
        for position, node in enumerate(model.graph.node):
            if node.op_type == "Constant" or id(node) in fused_convs:
                continue
            if tensorflow and _is_helper(node):  # a layout Transpose is not a layer of the user's graph
                passed_on.update({o: passed_on.get(node.input[0], node.input[0]) for o in node.output if node.input})
                continue
            out = next((o for o in node.output if o and types.get(o) == onnx.TensorProto.FLOAT), None)
            if out is None or out not in exposed:
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
        return rows, positions

    def _redo(
        self, compilation: Compilation, key: tuple, rows: list, positions: list[int]
    ) -> tuple[dict, dict[str, Comparison], list[int]]:
        """The weights as held now, the last comparisons of this graph, and the rows to compare again:
        rows before the first node that reads a weight held differently than last time keep their
        comparison (in graph order nothing before a node depends on it)."""
        held = {name: (r.simulated, r.fused_bias, r.bias_held) for name, r in compilation.results.items()}
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
        return held, kept, redo

    def _first_reader(self, weight: str) -> int:
        """The place in graph order of the first main-graph node reading `weight` (a pass-through
        Transpose of it, the node holding a subgraph that reads it); 0 when none is found."""
        if self._places is None:
            self._places = {}
            for k, node in enumerate(self.evaluator.compiler.inventory.model.graph.node):
                for name in reads(node):
                    self._places.setdefault(name, k)
        return self._places.get(weight, 0)

    def _chunks(self, graph: NpuGraph, compilation: Compilation, fp16_activations: bool) -> list[_Chunk]:
        key = (structure(compilation), fp16_activations)
        if key not in self._isolations:
            self._isolations[key] = self._build(graph.model, graph.feeds, compilation, fp16_activations)
        return self._isolations[key]

    @staticmethod
    def _stale(chunks: list[_Chunk], compilation: Compilation) -> list[_Chunk]:
        """The chunks to run again: one of their weights is held differently, or quantized or not."""
        feeds = weight_feeds(compilation)
        return [
            chunk
            for chunk in chunks
            if tuple(compilation.plans[w].quantized for _, w in chunk.entries.values()) != chunk.flags
            or not all(same_array(feeds[n], chunk.held.get(n)) for n in chunk.bound.fixed)
        ]

    def _measure(
        self, graph: NpuGraph, compilation: Compilation, outputs: list[str], stale: list[_Chunk], check: Callable[[], None]
    ) -> tuple[RunByRun, list[RunByRun]]:
        """Run by run over the layer samples: the float layers, the NPU layers and the stale chunks'
        isolated copies (fed that run's float activations), each run compared and let go."""
        evaluator = self.evaluator
        assert self.batches is not None
        feeds = weight_feeds(compilation)
        graph.bound.update_fixed(feeds)
        for chunk in stale:
            chunk.bound.update_fixed({n: feeds[n] for n in chunk.bound.fixed})
        accumulated = RunByRun(evaluator.batches)
        isolations = [RunByRun(evaluator.batches) for _ in stale]
        measured = _Pass(graph.bound, {n: graph.layers[n] for n in outputs}, accumulated, stale, isolations, compilation, check)
        slices = self.batches.slices()
        index = 0
        for floats in self.each_float_part():  # neither enumerate nor zip: their tuples hold the last run
            check()
            self._measure_run(slices[index], floats, measured)
            index += 1
            del floats  # not held while the next run is made
        return accumulated, isolations

    def _measure_run(self, part: slice, floats: dict[str, np.ndarray], measured: _Pass) -> None:
        """One run of `_measure`: its NPU layers are let go before the isolated copies run."""
        evaluator = self.evaluator
        npu = evaluator.run_slice(measured.npu, part)
        for name, output in measured.outputs.items():
            measured.accumulated.add(name, floats[name], npu[output])
        del npu
        for chunk, isolated in zip(measured.stale, measured.isolations):
            measured.check()
            values = evaluator.run_slice(chunk.bound, part, {t: floats[t] for t in chunk.inputs})
            for target, (out, weight) in chunk.entries.items():
                if measured.compilation.plans[weight].quantized:
                    isolated.add(target, floats[target], values[out])

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
            bound = BoundSession(session, [o.name for o in outputs], weight_feeds(compilation), bind=False)
            chunks.append(_Chunk(bound, {target: (result, weight) for _, target, result, weight in part}, activations))
        return chunks


def _isolated_found(chunk: _Chunk, compilation: Compilation, measured: RunByRun) -> dict[str, tuple[Comparison | None, str]]:
    """Each of a chunk's targets: its isolated comparison (None for a weight not quantized) and weight."""
    targets = [t for t, (_, w) in chunk.entries.items() if compilation.plans[w].quantized]
    found: dict[str, tuple[Comparison | None, str]] = {
        t: (c, chunk.entries[t][1]) for t, c in zip(targets, measured.comparisons(targets))
    }
    for target, (_, weight) in chunk.entries.items():
        found.setdefault(target, (None, weight))
    return found


def _ranked(
    rows: list[tuple[str, str, str, list[str]]],
    accumulated: list[Comparison],
    isolated: dict[str, tuple[Comparison | None, str]],
) -> list[Layer]:
    """The layers with each one's drop from its inputs, the MARKED_DROPS largest drops marked."""
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
