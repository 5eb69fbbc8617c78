"""Window-statistics prospectivity models (scikit-learn) as OreMap window models.

The models analysts already use for prospectivity (logistic regression, random forest,
gradient boosting, a multilayer perceptron) work on a table of values per place, not on
windows. To compare them with the ResNet on the very same windows, and to map with them
through ``oremap:prospectivity_map``, each window of the element stack becomes a row of
three statistics per element (:data:`FEATURES`):

* ``centre``: the element at the window's centre cell (the grid value at the place scored);
* ``mean``: the mean of the window's valid cells (the neighbourhood);
* ``max``: the largest valid value in the window (a nearby high).

The features are z-scored with the training rows' mean and standard deviation (missing
features, e.g. a window without a valid cell of an element, become 0 = the mean) and go to
the classifier. The ONNX graph (:func:`tabular_onnx`) holds all of it: raw windows
``(n, elements, window, window)`` with NaN for nodata in, ``(1 - p, p)`` out, exactly like the
ResNet's graph, so the same mapping algorithm runs both. scikit-learn members are converted
with skl2onnx; HistGradientBoosting with OreMap's own converter
(:func:`core.engine.onnx_ensemble.hgb_binary_classifier_to_onnx`).

:func:`rank_mean_onnx` joins several window models into one graph: each member's probability
becomes its share of a reference set of background windows scoring lower (ties count half),
and the ensemble's score is the mean of those shares.
"""

import numpy as np

from ..engine.errors import OreMapError
from ..engine.dependencies import install_hint

#: Names of the tabular methods, in report order.
TABULAR = ("logistic", "random_forest", "gradient_boosting", "mlp")

#: Statistics per element, in feature order (all statistics of element 1, then element 2...).
FEATURES = ("centre", "mean", "max")

#: Graph input and output names (those of the prospectivity ResNet).
INPUT_NAME = "windows"
OUTPUT_NAME = "probabilities"

OPSET = 17
ML_OPSET = 3


def feature_names(elements):
    """``element:statistic`` for every feature column."""
    return [f"{e}:{s}" for e in elements for s in FEATURES]


def window_features(windows):
    """``(n, elements * 3)`` float32 statistics of raw windows ``(n, C, w, w)`` (NaN = nodata).

    Column ``3 j + k`` is statistic ``FEATURES[k]`` of element ``j``. A statistic without a valid
    cell is NaN.
    """
    x = np.asarray(windows, dtype=np.float32)
    n, c, h, w = x.shape
    valid = np.isfinite(x)
    count = valid.sum(axis=(2, 3)).astype(np.float32)
    total = np.where(valid, x, np.float32(0)).sum(axis=(2, 3), dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    top = np.where(valid, x, np.float32(-np.inf)).max(axis=(2, 3))
    top = np.where(count > 0, top, np.float32(np.nan))
    centre = x[:, :, h // 2, w // 2]
    return np.stack([centre, mean, top], axis=2).reshape(n, c * len(FEATURES)).astype(np.float32)


def stack_features(stack, specs, window, chunk=1024):
    """Features of the windows centred on ``specs``' cells of an :class:`ElementStack`, read in chunks."""
    out = np.empty((len(specs), stack.n_elements * len(FEATURES)), dtype=np.float32)
    for i in range(0, len(specs), chunk):
        out[i:i + chunk] = window_features(stack.windows(specs.rows[i:i + chunk], specs.cols[i:i + chunk], window))
    return out


def _scaled(X, mean, sd):
    z = (np.asarray(X, np.float32) - mean) / sd
    return np.where(np.isfinite(z), z, np.float32(0)).astype(np.float32)


def make_estimator(method, seed):
    """A scikit-learn classifier sized for tens of deposits and a few hundred windows."""
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    if method == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=200, min_samples_leaf=3, max_features="sqrt",
                                      class_weight="balanced", random_state=int(seed), n_jobs=1)
    if method == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, max_leaf_nodes=8,
                                              min_samples_leaf=5, l2_regularization=1.0, class_weight="balanced",
                                              random_state=int(seed))
    if method == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=(16,), alpha=1.0, solver="lbfgs", max_iter=1000,
                             random_state=int(seed))
    raise OreMapError(f"Unknown model '{method}' (use {', '.join(TABULAR)} or resnet).", "methods")


class TabularMember:
    """A fitted window-statistics model: feature scaling plus a scikit-learn classifier."""

    def __init__(self, method, X, y, seed=0):
        X = np.asarray(X, np.float32)
        y = np.asarray(y, np.int64)
        if (y == 1).sum() == 0 or (y == 0).sum() == 0:
            raise OreMapError("A model needs deposit and background windows to learn from.", "deposits")
        self.method = method
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(X, axis=0)
            sd = np.nanstd(X, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        sd = np.where(np.isfinite(sd) & (sd > 1e-12 * np.maximum(np.abs(mean), 1.0)), sd, 1.0)
        self.mean = mean.astype(np.float32)
        self.sd = sd.astype(np.float32)
        self.estimator = make_estimator(method, seed)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs iteration limits on tiny data: the fit is still usable
            self.estimator.fit(_scaled(X, self.mean, self.sd), y)
        self.n_features = X.shape[1]

    def predict(self, X):
        """Deposit probability of feature rows."""
        return self.estimator.predict_proba(_scaled(X, self.mean, self.sd))[:, 1].astype(np.float32)


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------


def _onnx():
    from ..engine.onnx_ensemble import onnx_modules

    return onnx_modules("output")


class _GraphParts:
    """The nodes and initialisers of an ONNX graph being built, with helpers for constants and operators."""

    def __init__(self):
        self.onnx, self.helper, self.numpy_helper = _onnx()
        self.nodes, self.inits = [], []

    def const(self, name, value, dtype=np.float32):
        self.inits.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind, inputs, output, **kwargs):
        self.nodes.append(self.helper.make_node(kind, inputs, [output], **kwargs))
        return output


def _classifier_graph(member):
    """The classifier alone: float32 ``X (n, features)`` -> ``probabilities (n, 2)``."""
    from ..engine.onnx_ensemble import hgb_binary_classifier_to_onnx

    if member.method == "gradient_boosting":
        return hgb_binary_classifier_to_onnx(member.estimator, member.n_features, input_name="X",
                                             output_name="probabilities")
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise OreMapError("The Python package 'skl2onnx' is not installed; OreMap needs it to save scikit-learn "
                          "models.", parameter="output", fix=install_hint(["skl2onnx"])) from None
    model = to_onnx(member.estimator, np.zeros((1, member.n_features), np.float32),
                    options={id(member.estimator): {"zipmap": False}},
                    target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    outputs = [o.name for o in model.graph.output]
    if "probabilities" not in outputs:
        raise OreMapError(f"The converted {member.method} model has no probability output ({outputs}).", "output")
    return model


def _append(graph_nodes, inits, model, prefix, inputs):
    """Add ``model``'s nodes and initialisers with prefixed names; ``inputs`` maps its graph inputs to ours.

    Returns the prefixed names of its outputs and its opsets.
    """
    from onnx import compose

    model = compose.add_prefix(model, prefix)
    mapping = {prefix + k: v for k, v in inputs.items()}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        graph_nodes.append(node)
    inits.extend(model.graph.initializer)
    return [o.name for o in model.graph.output], {o.domain or "": o.version for o in model.opset_import}


def tabular_onnx(member, n_elements, window):
    """One graph: raw windows ``(n, C, w, w)`` -> features -> z-score, NaN to 0 -> classifier -> ``(1 - p, p)``."""
    graph = _GraphParts()
    onnx, helper, nodes, inits, const, op = graph.onnx, graph.helper, graph.nodes, graph.inits, graph.const, graph.op

    c, h = int(n_elements), int(window) // 2
    x = INPUT_NAME
    nan = op("IsNaN", [x], "nan")
    validf = op("Cast", [op("Not", [nan], "valid")], "validf", to=onnx.TensorProto.FLOAT)
    axes = const("axes_hw", [2, 3], np.int64)
    count = op("ReduceSum", [validf, axes], "count", keepdims=0)
    total = op("ReduceSum", [op("Where", [nan, const("zero", 0.0), x], "x0"), axes], "total", keepdims=0)
    mean = op("Div", [total, count], "mean")
    top = op("ReduceMax", [op("Where", [nan, const("neg_inf", -np.inf), x], "x_low")], "top_raw", axes=[2, 3],
             keepdims=0)
    has = op("Greater", [count, const("zero_b", 0.0)], "has")
    top = op("Where", [has, top, const("nan_c", np.nan)], "top")
    centre = op("Slice", [x, const("starts", [h, h], np.int64), const("ends", [h + 1, h + 1], np.int64),
                          const("slice_axes", [2, 3], np.int64)], "centre_4d")
    centre = op("Reshape", [centre, const("shape_nc", [-1, c], np.int64)], "centre")
    parts = [op("Unsqueeze", [v, const(f"ax2_{k}", [2], np.int64)], f"{v}_3d")
             for k, v in enumerate((centre, mean, top))]
    feats = op("Reshape", [op("Concat", parts, "feats_3d", axis=2), const("shape_f", [-1, c * len(FEATURES)],
                                                                          np.int64)], "features")
    z = op("Div", [op("Sub", [feats, const("f_mean", member.mean[None])], "centred"),
                   const("f_sd", member.sd[None])], "z_raw")
    z = op("Where", [op("IsNaN", [z], "z_nan"), const("zero_z", 0.0), z], "features_z")
    outputs, opsets = _append(nodes, inits, _classifier_graph(member), "clf_", {"X": z})
    proba = [o for o in outputs if o.endswith("probabilities")][0]
    op("Identity", [proba], OUTPUT_NAME)
    versions = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    for domain, version in opsets.items():
        versions[domain] = max(versions.get(domain, 0), version)
    graph = helper.make_graph(
        nodes, f"oremap_prospectivity_{member.method}",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, c, int(window), int(window)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [None, 2])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in versions.items()],
                              ir_version=8)
    onnx.checker.check_model(model)
    return model


def background_share(scores, reference):
    """Share of ``reference`` scores below each score, ties counting one half (0-1)."""
    ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    s = np.asarray(scores, dtype=np.float64)
    if ref.size == 0:
        return np.full(s.shape, 0.5)
    below = np.searchsorted(ref, s, side="left")
    upto = np.searchsorted(ref, s, side="right")
    return (below + 0.5 * (upto - below)) / ref.size


def rank_mean_onnx(members, references, n_elements, window):
    """One graph averaging the members' background shares (see :func:`background_share`).

    ``members``: window-model graphs (ModelProto or bytes) with input ``windows`` and output
    ``probabilities (n, 2)``; ``references[i]``: member ``i``'s deposit probabilities of the reference
    background windows. The output is ``(1 - e, e)`` with ``e`` the mean share.
    """
    graph = _GraphParts()
    onnx, helper, nodes, inits, const, op = graph.onnx, graph.helper, graph.nodes, graph.inits, graph.const, graph.op

    versions = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    ir = 8
    shares = []
    one_col = (const("s1", [1], np.int64), const("e2", [2], np.int64), const("ax1", [1], np.int64))
    for i, (member, ref) in enumerate(zip(members, references)):
        if isinstance(member, (bytes, bytearray)):
            member = onnx.load_from_string(bytes(member))
        ir = max(ir, int(member.ir_version))
        outputs, opsets = _append(nodes, inits, member, f"m{i}_", {INPUT_NAME: INPUT_NAME})
        for domain, version in opsets.items():
            versions[domain] = max(versions.get(domain, 0), version)
        proba = [o for o in outputs if o.endswith(OUTPUT_NAME)][0]
        p = op("Slice", [proba, *one_col], f"m{i}_p")  # (n, 1)
        r = const(f"m{i}_ref", np.sort(np.asarray(ref, np.float32))[None])  # (1, K)
        below = op("ReduceSum", [op("Cast", [op("Less", [r, p], f"m{i}_lt")], f"m{i}_ltf", to=onnx.TensorProto.FLOAT),
                                 one_col[2]], f"m{i}_below", keepdims=1)
        equal = op("ReduceSum", [op("Cast", [op("Equal", [r, p], f"m{i}_eq")], f"m{i}_eqf", to=onnx.TensorProto.FLOAT),
                                 one_col[2]], f"m{i}_equal", keepdims=1)
        share = op("Div", [op("Add", [below, op("Mul", [equal, const(f"half_{i}", 0.5)], f"m{i}_half")], f"m{i}_rank"),
                           const(f"m{i}_k", float(max(len(ref), 1)))], f"m{i}_share")
        shares.append(share)
    stacked = op("Concat", shares, "shares", axis=1) if len(shares) > 1 else shares[0]
    e = op("ReduceMean", [stacked], "ensemble", axes=[1], keepdims=1)
    op("Concat", [op("Sub", [const("one", 1.0), e], "background"), e], OUTPUT_NAME, axis=1)
    graph = helper.make_graph(
        nodes, "oremap_prospectivity_rank_mean",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT,
                                       [None, int(n_elements), int(window), int(window)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [None, 2])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in versions.items()],
                              ir_version=ir)
    onnx.checker.check_model(model)
    return model
