"""Forward FLOPs per example of a Keras model, counted on its traced TensorFlow graph.

`tf.compat.v1.profiler` knows MatMul/BatchMatMul and a few element-wise ops but not Einsum,
BiasAdd, Relu, Sigmoid, Exp, ..., so this module walks the graph of the model's forward
concrete function itself (nested function bodies included) and counts, with static shapes:

* MatMul, BatchMatMul*: 2·M·K·N per product (times the batch dimensions);
* Einsum: 2 · product of the sizes of all distinct indices (the contraction done naively);
* element-wise arithmetic and activations: one FLOP per output element (Exp, Log, Tanh,
  Sigmoid, Rsqrt, ... also one: the count is of arithmetic, not of instruction latency);
* reductions (Sum, Mean, Max, Min, Prod, Softmax's parts): one per input element; Softmax,
  LogSoftmax: five per element.

Gathers, reshapes, concatenations, casts and comparisons used for masks move data and count
zero. The graph is traced at a fixed batch size and the total divided by it. Training costs
about 3x the forward pass (forward + two matrix products per weight in the backward pass);
the optimizer's update is not counted.

Works with TF 2.15 (DeepCTR's venv) and TF 2.16 + tf_keras (the project's venv).
"""
import re
from typing import Dict, Iterable, Tuple

import tensorflow as tf

_ELEMENTWISE = {
    "Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "MulNoNan", "Maximum",
    "Minimum", "Neg", "Reciprocal", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Log1p",
    "Tanh", "Sigmoid", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Softplus", "Abs",
    "BiasAdd", "SquaredDifference", "Pow", "Erf", "Gelu", "Sign", "Select", "SelectV2",
    "FloorDiv", "FloorMod", "AddN",
}
_REDUCE = {"Sum", "Mean", "Max", "Min", "Prod", "EuclideanNorm"}
_SOFTMAX = {"Softmax", "LogSoftmax"}


def _shape(t) -> Tuple[int, ...]:
    s = t.shape
    if s.rank is None:
        return None
    dims = tuple(s.as_list())
    return None if any(d is None for d in dims) else dims


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _op_flops(op) -> Tuple[int, bool]:
    """(flops, counted) for one op; counted is False when shapes were unknown."""
    t = op.type
    if t == "MatMul":
        a, b = _shape(op.inputs[0]), _shape(op.inputs[1])
        if a is None or b is None:
            return 0, False
        ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
        m, k = (a[1], a[0]) if ta else a
        n = b[0] if tb else b[1]
        return 2 * m * k * n, True
    if t.startswith("BatchMatMul"):
        out = _shape(op.outputs[0])
        a = _shape(op.inputs[0])
        if out is None or a is None:
            return 0, False
        adj = op.get_attr("adj_x")
        k = a[-2] if adj else a[-1]
        return 2 * _numel(out) * k, True
    if t == "Einsum":
        eq = op.get_attr("equation").decode()
        lhs = eq.split("->")[0].split(",")
        sizes: Dict[str, int] = {}
        for spec, inp in zip(lhs, op.inputs):
            dims = _shape(inp)
            if dims is None or "." in spec:
                return 0, False
            for c, d in zip(spec, dims):
                sizes[c] = d
        return 2 * _numel(sizes.values()), True
    if t in _ELEMENTWISE:
        out = _shape(op.outputs[0])
        if out is None:
            return 0, False
        return _numel(out) * max(1, len(op.inputs) - 1 if t == "AddN" else 1), True
    if t in _REDUCE:
        inp = _shape(op.inputs[0])
        if inp is None:
            return 0, False
        return _numel(inp), True
    if t in _SOFTMAX:
        out = _shape(op.outputs[0])
        if out is None:
            return 0, False
        return 5 * _numel(out), True
    return 0, True


def _function_defs(graph) -> Iterable:
    seen = set()
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for name, f in getattr(g, "_functions", {}).items():
            if name in seen:
                continue
            seen.add(name)
            fg = getattr(f, "graph", None)
            if fg is None:
                try:  # TF 2.15/2.16 AtomicFunction / _DefinedFunction
                    from tensorflow.python.framework import function_def_to_graph
                    fg = function_def_to_graph.function_def_to_graph(f.definition)
                except Exception:  # noqa: BLE001
                    fg = None
            if fg is not None:
                stack.append(fg)


def count_graph_flops(graph) -> Dict[str, object]:
    total, by_type, uncounted = 0, {}, {}
    for g in _function_defs(graph):
        for op in g.get_operations():
            f, ok = _op_flops(op)
            if not ok:
                uncounted[op.type] = uncounted.get(op.type, 0) + 1
            if f:
                by_type[op.type] = by_type.get(op.type, 0) + f
                total += f
    return {"total": total, "by_type": by_type, "unknown_shape_ops": uncounted}


def forward_flops_per_example(model, features: Dict[str, tf.Tensor]) -> Dict[str, object]:
    """Traces model(features, training=False) at the features' (static) batch size."""
    batch = int(next(iter(features.values())).shape[0])
    spec = {k: tf.TensorSpec(v.shape, v.dtype, name=re.sub(r"[^A-Za-z0-9_.\-/]", "_", k))
            for k, v in features.items()}

    @tf.function(input_signature=[spec])
    def fwd(x):
        return model(x, training=False)

    graph = fwd.get_concrete_function().graph
    res = count_graph_flops(graph)
    res["per_example"] = res["total"] / float(batch)
    res["batch"] = batch
    return res
