"""One ONNX graph from several regressors: weighted ensemble, closure and spread.

The abundance models of :mod:`core.abundance.abundance` are ensembles of scikit-learn
regressors (converted with skl2onnx, or with :func:`hgb_to_onnx` for
HistGradientBoosting) and a torch 1D CNN (``torch.onnx.export``). This module
joins them into a single graph so that a model file is one self-contained ONNX
file that any onnxruntime can run:

``spectra (n, b)`` -> every member -> ``P (n, m, d)`` -> weighted sum with
non-negative stacking weights -> ``E (n, d)`` -> closure to ``total``:

* ``space="simplex"``: ``E`` holds the parts directly; the closure is the
  Euclidean projection onto the simplex (sort, cumulative sum, threshold: the same
  algorithm as :func:`core.engine.compositional.project_simplex`, in ONNX operators);
* ``space="ilr"``: ``E`` holds isometric log-ratio coordinates; the closure is
  the inverse transform ``softmax(E V) * total``.

Outputs: ``abundances (n, k)``; ``spread (n, k)``, the standard deviation of
the members' predictions (in parts of ``total``), which scales the conformal
intervals; and ``members (n, m, d)``, each member's own prediction (before
closure), for comparisons.
"""

import numpy as np

from .errors import OreMapError
from .dependencies import install_hint

OPSET = 17
ML_OPSET = 3
IR_VERSION = 8
INPUT_NAME = "spectra"
OUTPUTS = ("abundances", "spread", "members")


def onnx_modules(parameter="training"):
    """``(onnx, helper, numpy_helper)``, or an error naming ``parameter`` that says how to install onnx."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise OreMapError("The Python package 'onnx' is not installed; OreMap needs it to save models.",
                          parameter=parameter, fix=install_hint(["onnx"])) from None
    return onnx, helper, numpy_helper


def _onnx():
    return onnx_modules("training")


def _float32_floor(values):
    """Largest float32 not above each value: ``x <= t`` gives the same answer for float32 ``x``."""
    values = np.asarray(values, dtype=np.float64)
    f = values.astype(np.float32)
    above = f.astype(np.float64) > values
    f[above] = np.nextafter(f[above], np.float32(-np.inf))
    return f


def hgb_to_onnx(models, n_features, input_name="X", output_name="variable"):
    """A TreeEnsembleRegressor graph equivalent to one HistGradientBoostingRegressor per output.

    ``models[j]`` predicts output ``j``. Each boosting iteration's tree becomes one
    tree of the ensemble whose leaves add to target ``j``; the baseline prediction is
    the target's base value. Thresholds are rounded down to float32, so a float32 input
    takes the same branch as in scikit-learn (which compares in float64). Written here
    because skl2onnx 1.20 cannot convert the trees of scikit-learn 1.2.
    """
    onnx, helper, _ = _onnx()
    attrs = {key: [] for key in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    base_values = []
    tree_id = 0
    for target, model in enumerate(models):
        base_values.append(float(np.asarray(model._baseline_prediction).reshape(-1)[0]))
        for predictors in model._predictors:
            nodes = predictors[0].nodes
            n = len(nodes)
            leaf = nodes["is_leaf"].astype(bool)
            if "is_categorical" in nodes.dtype.names and nodes["is_categorical"].any():
                raise OreMapError("Categorical splits cannot be exported.", parameter="training")
            ids = np.arange(n)
            attrs["nodes_treeids"] += [tree_id] * n
            attrs["nodes_nodeids"] += ids.tolist()
            attrs["nodes_featureids"] += np.where(leaf, 0, nodes["feature_idx"]).astype(int).tolist()
            attrs["nodes_values"] += np.where(leaf, 0.0, _float32_floor(nodes["num_threshold"])).tolist()
            attrs["nodes_modes"] += ["LEAF" if v else "BRANCH_LEQ" for v in leaf]
            attrs["nodes_truenodeids"] += np.where(leaf, 0, nodes["left"]).astype(int).tolist()
            attrs["nodes_falsenodeids"] += np.where(leaf, 0, nodes["right"]).astype(int).tolist()
            attrs["nodes_missing_value_tracks_true"] += np.where(
                leaf, 0, nodes["missing_go_to_left"]).astype(int).tolist()
            leaves = ids[leaf]
            attrs["target_treeids"] += [tree_id] * leaves.size
            attrs["target_nodeids"] += leaves.tolist()
            attrs["target_ids"] += [target] * leaves.size
            attrs["target_weights"] += nodes["value"][leaves].astype(np.float64).tolist()
            tree_id += 1
    node = helper.make_node(
        "TreeEnsembleRegressor", [input_name], [output_name], domain="ai.onnx.ml",
        n_targets=len(models), base_values=base_values, aggregate_function="SUM", post_transform="NONE",
        **attrs)
    graph = helper.make_graph(
        [node], "hgb",
        [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, [None, int(n_features)])],
        [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, [None, len(models)])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                   helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
                             ir_version=IR_VERSION)


def hgb_binary_classifier_to_onnx(model, n_features, input_name="X", output_name="probabilities"):
    """A graph equivalent to a binary HistGradientBoostingClassifier's ``predict_proba``.

    The raw score (baseline + the trees, as in :func:`hgb_to_onnx`) goes through a
    sigmoid: ``p = 1 / (1 + exp(-raw))``; the output is ``(n, 2)`` float32 ``[1 - p, p]``.
    """
    onnx, helper, numpy_helper = _onnx()
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise OreMapError("Only a two-class HistGradientBoostingClassifier can be exported this way.",
                          parameter="training")
    base = hgb_to_onnx([model], n_features, input_name=input_name, output_name="raw_score")
    nodes = list(base.graph.node) + [
        helper.make_node("Sigmoid", ["raw_score"], ["p_positive"]),
        helper.make_node("Sub", ["one", "p_positive"], ["p_negative"]),
        helper.make_node("Concat", ["p_negative", "p_positive"], [output_name], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "hgb_binary_classifier", list(base.graph.input),
        [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(np.ones((1, 1), np.float32), "one")])
    model_proto = helper.make_model(graph, opset_imports=list(base.opset_import), ir_version=IR_VERSION)
    onnx.checker.check_model(model_proto)
    return model_proto


def sklearn_to_onnx(estimator, n_features):
    """skl2onnx conversion of a fitted regressor or pipeline (float32 input ``X``, output ``variable``)."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise OreMapError("The Python package 'skl2onnx' is not installed; OreMap needs it to save "
                          "scikit-learn models.", parameter="training", fix=install_hint(["skl2onnx"])) from None
    return to_onnx(estimator, np.zeros((1, int(n_features)), np.float32),
                   target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})


def _member_nodes(model, prefix):
    """Nodes and initialisers of a member graph with prefixed names, reading :data:`INPUT_NAME`."""
    onnx, _, _ = _onnx()
    from onnx import compose

    if isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    graph = model.graph
    if len(graph.input) != 1:
        raise OreMapError("An ensemble member must have one input.", parameter="training")
    model = compose.add_prefix(model, prefix)
    graph = model.graph
    old_input, output = graph.input[0].name, graph.output[0].name
    nodes = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old_input:
                node.input[i] = INPUT_NAME
        nodes.append(node)
    opsets = {o.domain or "": o.version for o in model.opset_import}
    return nodes, list(graph.initializer), output, opsets


def combine(members, weights, bias, n_features, n_parts, space="simplex", total=100.0, basis=None):
    """The ensemble graph (an ``onnx.ModelProto``).

    Parameters
    ----------
    members : list of ModelProto or bytes
        Each maps ``(n, n_features)`` float32 to ``(n, d)`` on its first output.
    weights : array (m, d)
        Non-negative stacking weight of member ``i`` for output ``j``.
    bias : array (d,)
    n_features, n_parts : int
        Input width and number of parts ``k`` (``d = k`` in simplex space, ``k - 1`` in ilr).
    space : {"simplex", "ilr"}
    basis : array (k - 1, k)
        The ilr basis (:func:`core.engine.compositional.ilr_basis`) for ``space="ilr"``.
    """
    onnx, helper, numpy_helper = _onnx()
    weights = np.asarray(weights, np.float32)
    m, d = weights.shape
    k = int(n_parts)
    if len(members) != m or np.asarray(bias).size != d:
        raise OreMapError("Ensemble weights do not match the members.", parameter="training")
    nodes, inits = [], []
    opsets = {"": OPSET, "ai.onnx.ml": ML_OPSET}

    def const(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(kind, inputs, output, **kwargs):
        nodes.append(helper.make_node(kind, inputs, [output], **kwargs))
        return output

    axis1 = const("axis1", [1], np.int64)
    stacked = []
    for i, member in enumerate(members):
        member_nodes, member_inits, out, member_opsets = _member_nodes(member, f"m{i}_")
        for domain, version in member_opsets.items():
            if version > opsets.get(domain, 0):
                if domain in ("", "ai.onnx.ml"):
                    raise OreMapError(f"Member {i} needs opset {version} of '{domain}'.", parameter="training")
                opsets[domain] = version
        nodes += member_nodes
        inits += member_inits
        shaped = op("Reshape", [out, const(f"shape_m{i}", [-1, 1, d], np.int64)], f"m{i}_3d")
        stacked.append(shaped)
    P = op("Concat", stacked, "members", axis=1) if m > 1 else op("Identity", stacked, "members")
    weighted = op("Mul", [P, const("weights", weights[None])], "weighted")
    E = op("Add", [op("ReduceSum", [weighted, axis1], "ensemble_sum", keepdims=0), const("bias", bias)], "ensemble")
    total_c = const("total", total)
    if space == "ilr":
        V = const("ilr_basis", basis)
        op("Mul", [op("Softmax", [op("MatMul", [E, V], "clr")], "closed", axis=1), total_c], "abundances")
        Q = op("Mul", [op("Softmax", [op("MatMul", [P, V], "member_clr")], "member_closed", axis=-1), total_c],
               "member_parts")
    elif space == "simplex":
        U = "sorted"
        nodes.append(helper.make_node("TopK", [E, const("k", [k], np.int64)], [U, "sorted_idx"],
                                      axis=1, largest=1, sorted=1))
        css = op("Sub", [op("CumSum", [U, const("axis_scalar", 1, np.int64)], "cumsum"), total_c], "css")
        j = const("ranks", np.arange(1, k + 1)[None])
        cond = op("Greater", [op("Sub", [U, op("Div", [css, j], "css_j")], "gap"), const("zero", 0.0)], "support")
        rho = op("ReduceSum", [op("Cast", [cond], "support_f", to=onnx.TensorProto.FLOAT), axis1], "rho", keepdims=1)
        idx = op("Cast", [op("Sub", [rho, const("one", 1.0)], "rho_1")], "rho_idx", to=onnx.TensorProto.INT64)
        tau = op("Div", [op("GatherElements", [css, idx], "css_rho", axis=1), rho], "tau")
        op("Relu", [op("Sub", [E, tau], "shifted")], "abundances")
        Q = P
    else:
        raise OreMapError(f"Unknown modelling space '{space}'.", parameter="space")
    mean = op("ReduceMean", [Q], "member_mean", axes=[1], keepdims=1)
    diff = op("Sub", [Q, mean], "member_diff")
    op("Sqrt", [op("ReduceMean", [op("Mul", [diff, diff], "member_sq")], "member_var", axes=[1], keepdims=0)], "spread")
    graph = helper.make_graph(
        nodes, "oremap_abundance_ensemble",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, int(n_features)])],
        [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, k]) for name in OUTPUTS[:2]]
        + [helper.make_tensor_value_info("members", onnx.TensorProto.FLOAT, [None, m, d])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(dom, ver) for dom, ver in opsets.items()],
                              ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model
