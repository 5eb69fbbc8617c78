"""Memory of an ONNX graph's activations per input row, for sizing blocks under a memory budget.

onnxruntime allocates each intermediate tensor of a run and frees it after its last consumer (OreMap turns its
CPU memory arena off, :class:`core.engine.model_format.OnnxModel`, so freed memory goes back at once). The peak
of one run is then the largest set of tensors alive at the same time. :func:`activation_bytes_per_row` walks
the graph in its (topological) node order with the shapes ONNX's shape inference gives and returns that peak for
one row of the batch dimension; a batch of ``n`` rows needs about ``n`` times as much.
"""

_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def _row_bytes(value_info):
    """Bytes of one row (all dimensions but the first) of a tensor, or None when its shape is not known."""
    tensor = value_info.type.tensor_type
    dims = tensor.shape.dim
    if not len(dims):
        return None
    size = 1
    for d in list(dims)[1:]:
        if not d.dim_value:
            return None
        size *= int(d.dim_value)
    return size * _ITEMSIZE.get(tensor.elem_type, 4)


def activation_bytes_per_row(model):
    """Peak bytes of the tensors alive at once while the graph of ``model`` (a ModelProto) runs, per row of the
    batch (the graph inputs included, the weights not). Tensors whose shape inference cannot tell count as the
    largest known one. Returns 0 for a graph without nodes."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - an unusual graph: fall back to the shapes it declares
        inferred = model
    graph = inferred.graph
    weights = {t.name for t in graph.initializer}
    sizes = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.name not in weights:
            sizes[vi.name] = _row_bytes(vi)
    known = [v for v in sizes.values() if v]
    fallback = max(known) if known else 0
    last_use = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = i
    outputs = {o.name for o in graph.output}
    live = {vi.name: sizes.get(vi.name) or fallback for vi in graph.input if vi.name not in weights}
    peak = sum(live.values())
    for i, node in enumerate(graph.node):
        for name in node.output:
            if name:
                live[name] = sizes.get(name) or fallback
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= i and n not in outputs]:
            del live[name]
    return int(peak)
