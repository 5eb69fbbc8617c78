"""Model files OreMap did not write, or whose metadata were damaged or edited by hand: each is refused before the
run with an OreMapError that blames the model (``parameter="model"``) and says what is wrong, never a traceback,
a map computed from another file's bytes, or a refusal that blames a parameter the user left at its default.

The models are damaged copies of the bundled spectral classifier and of tiny graphs carrying each task's
metadata as its trainer writes them (the loaders read the metadata, not the weights).
"""

import copy
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import AVIRIS_NG, ROOT
from oremap.core.abundance.abundance_map import AbundanceModel
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.evaluation_guard import VALIDATION_TAG, validation_tags
from oremap.core.engine.model_format import METADATA_KEY, ModelInfo, OnnxModel, model_bytes, read_model_info
from oremap.core.geochemistry.prospectivity_mapping import _check_model
from oremap.core.geochemistry.vae_anomaly import AnomalyModel
from oremap.core.hyperspectral import mapping, ood
from oremap.core.sentinel2.mine_detection import detect_mines
from oremap.core.sentinel2.patch_features import feature_definition

BUNDLED = os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx")


def meta_of(path):
    model = onnx.load_model(path, load_external_data=False)
    return json.loads([p.value for p in model.metadata_props if p.key == METADATA_KEY][-1])


def damaged(src, dst, edit):
    """Copy of model ``src`` at ``dst`` with its metadata changed by ``edit(dict)``, written without any check
    (as a hand edit or another tool would)."""
    model = onnx.load_model(str(src), load_external_data=False)
    meta = meta_of(str(src))
    edit(meta)
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(meta)
    with open(dst, "wb") as f:
        f.write(model.SerializeToString())
    return str(dst)


def refusal(call):
    """The OreMapError ``call()`` raises."""
    with pytest.raises(OreMapError) as info:
        call()
    return info.value


def graph_model(path, nodes, inputs, outputs, info, inits=()):
    """An OreMap model of a graph ``nodes`` (``inputs``/``outputs``: ``(name, dims)``) described by ``info``."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in outputs],
                              initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with open(path, "wb") as f:
        f.write(model_bytes(model, info))
    return str(path)


def classes(*names):
    return [{"name": n, "color": "#102030"} for n in names]


# ---------------------------------------------------------------------------
# 1. External data: never read, whatever the working folder holds
# ---------------------------------------------------------------------------
def external_model(path, location, in_subgraph=False):
    W = TensorProto()
    W.name, W.data_type = "W", TensorProto.FLOAT
    W.dims.extend([4, 3])
    W.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "48")):
        entry = W.external_data.add()
        entry.key, entry.value = key, value
    if in_subgraph:   # the weights in a Constant of an If's branch
        branch = helper.make_graph([helper.make_node("Constant", [], ["Wc"], value=W)], "then", [],
                                   [helper.make_tensor_value_info("Wc", TensorProto.FLOAT, [4, 3])])
        nodes = [helper.make_node("Constant", [], ["yes"], value=numpy_helper.from_array(np.array(True), "yes")),
                 helper.make_node("If", ["yes"], ["Wi"], then_branch=branch, else_branch=branch),
                 helper.make_node("MatMul", ["spectra", "Wi"], ["logits"])]
        inits = []
    else:
        nodes, inits = [helper.make_node("MatMul", ["spectra", "W"], ["logits"])], [W]
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("spectra", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = {"schema_version": 1, "task": "spectral_classification", "classes": classes("a", "b", "c"),
            "input": {"name": "spectra", "n_bands": 4}, "output": {"name": "probabilities", "kind": "probabilities"}}
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return str(path)


@pytest.mark.parametrize("in_subgraph", [False, True])
def test_a_model_with_external_data_is_refused_and_no_other_file_is_read(tmp_path, monkeypatch, in_subgraph):
    secret = np.arange(12, dtype=np.float32)
    secret.tofile(tmp_path / "secret.bin")          # beside the model and in the working folder
    monkeypatch.chdir(tmp_path)
    path = external_model(tmp_path / "model.onnx", "secret.bin", in_subgraph)
    for call in (lambda: OnnxModel(path), lambda: read_model_info(path)):
        err = refusal(call)
        assert err.parameter == "model"
        assert "'model.onnx'" in err.message and "'W'" in err.message and "external data" in err.message
        assert "one file" in err.fix


# ---------------------------------------------------------------------------
# 2. A graph onnxruntime loads but cannot run
# ---------------------------------------------------------------------------
def _reshape_model(tmp_path):
    """A 4-band spectral classifier whose graph reshapes its input to rows of 3: it runs only on a multiple of 3
    values."""
    info = ModelInfo(task="spectral_classification", classes=classes("a", "b", "c"),
                     input={"name": "spectra", "n_bands": 4})
    path = graph_model(tmp_path / "reshape.onnx", [helper.make_node("Reshape", ["spectra", "s"], ["probabilities"])],
                       [("spectra", [None, 4])], [("probabilities", [None, 3])], info,
                       [numpy_helper.from_array(np.array([-1, 3], np.int64), "s")])
    return OnnxModel(path)


def test_a_graph_that_fails_at_run_time_is_refused_naming_the_model_and_the_input_shape(tmp_path):
    model = _reshape_model(tmp_path)
    err = refusal(lambda: model.run(np.ones((5, 4), np.float32)))   # 20 values: not rows of 3
    assert err.parameter == "model"
    assert "onnxruntime cannot run the model 'reshape.onnx' on input of shape (5, 4)" in err.message
    assert model.run_outputs(np.ones((3, 4), np.float32))["probabilities"].shape == (4, 3)   # 12 values: it runs


def test_onnxruntime_out_of_memory_is_a_memory_error_not_a_damaged_model(tmp_path):
    """onnxruntime's bad_alloc was reported as a damaged model ('retrain the model'); it is the memory budget's
    matter, which Processing's out-of-memory message names."""
    model = _reshape_model(tmp_path)

    class Exhausted:
        def run(self, names, feeds):
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : std::bad_alloc")

    model._session = Exhausted()
    with pytest.raises(MemoryError, match="bad_alloc"):
        model.run(np.ones((3, 4), np.float32))


# ---------------------------------------------------------------------------
# 3. The spectral classifier's out-of-distribution check
# ---------------------------------------------------------------------------
def _view0(key, value):
    return lambda d: d["training"]["ood"]["views"][0].__setitem__(key, value)


OOD_CASES = {
    "views_text": (lambda d: d["training"]["ood"].__setitem__("views", "x"), "views are not a list"),
    "views_of_text": (lambda d: d["training"]["ood"].__setitem__("views", ["x"]), "views are not a list"),
    "view_unknown": (_view0("view", "nonsense"), "view 'nonsense', which this OreMap does not know"),
    "view_missing": (lambda d: d["training"]["ood"]["views"][0].pop("view"), "one of its views has no name"),
    "exemplars_narrow": (
        lambda d: _view0("exemplars", [r[:5] for r in d["training"]["ood"]["views"][0]["exemplars"]])(d),
        "exemplars of its preprocessed view are not a table of numbers with 166 columns"),
    "exemplars_ragged": (lambda d: d["training"]["ood"]["views"][0]["exemplars"].__setitem__(0, [1.0]),
                         "not a table of numbers with 166 columns"),
    "exemplar_class_text": (_view0("exemplar_class", ["x"]), "exemplar classes of its preprocessed view"),
    "exemplar_class_out_of_range": (
        lambda d: _view0("exemplar_class", [99] * len(d["training"]["ood"]["views"][0]["exemplar_class"]))(d),
        "class numbers from 0 to 17"),
    "max_angle_short": (_view0("max_angle", [0.1]), "thresholds of its preprocessed view are not 18 numbers"),
    "max_angle_text": (_view0("max_angle", ["a"] * 18), "thresholds of its preprocessed view are not 18 numbers"),
    "swir_without_swir_bands": (lambda d: d.__setitem__("wavelengths", [w / 1000 for w in d["wavelengths"]]),
                                "swir_depth view needs at least 8 bands at or beyond 1900 nm"),
}


@pytest.mark.parametrize("case", sorted(OOD_CASES))
def test_a_damaged_out_of_distribution_check_is_refused(tmp_path, case):
    edit, words = OOD_CASES[case]
    info = read_model_info(damaged(BUNDLED, tmp_path / f"{case}.onnx", edit))
    err = refusal(lambda: ood.check_of(info))
    assert err.parameter == "model"
    assert err.message.startswith("The model's out-of-distribution check is damaged: ")
    assert words in err.message


def test_the_bundled_models_check_reads_as_before():
    check = ood.check_of(read_model_info(BUNDLED))
    assert [v["view"] for v in check] == ["preprocessed", "swir_depth"]
    assert check[0]["exemplars"].shape == (186, 166) and check[1]["exemplars"].shape == (186, 47)
    assert check[0]["max_angle"].shape == (18,)


def test_a_damaged_check_is_refused_before_the_map_is_written(tmp_path):
    """Exemplars of a class the model does not have: every pixel was left unclassified, silently."""
    path = damaged(BUNDLED, tmp_path / "m.onnx", OOD_CASES["exemplar_class_out_of_range"][0])
    out = tmp_path / "classes.tif"
    for check in (True, False):
        err = refusal(lambda: mapping.cnn_classify_map(AVIRIS_NG, path, str(out), ood=check))
        assert err.parameter == "model" and "exemplar classes" in err.message
    assert not out.exists()


def test_a_feature_view_without_the_graphs_feature_output_is_refused(tmp_path):
    path = damaged(BUNDLED, tmp_path / "m.onnx",
                   lambda d: d["training"]["ood"].__setitem__("feature", {"max_distance": [0.1] * 18}))
    err = refusal(lambda: OnnxModel(path))
    assert err.parameter == "model"
    assert "feature view, but the graph has no output 'feature_distance'" in err.message


def test_a_validation_figure_that_is_not_a_number_counts_as_absent():
    assert validation_tags("m.onnx", "overall accuracy", "high") == {}
    assert validation_tags("m.onnx", "overall accuracy", True) == {}
    assert validation_tags("m.onnx", "overall accuracy", [0.9]) == {}
    assert validation_tags("m.onnx", "overall accuracy", None) == {}
    tag = json.loads(validation_tags("m.onnx", "overall accuracy", np.float32(0.5))[VALIDATION_TAG])
    assert tag == {"model": "m.onnx", "measure": "overall accuracy", "value": 0.5}


# ---------------------------------------------------------------------------
# 4. and 5. Other tasks' metadata; values from the model blame the model
# ---------------------------------------------------------------------------
@pytest.fixture
def abundance_model(tmp_path):
    k, m = 5, 6
    info = ModelInfo(task="mineral_abundance", classes=classes(*"ABCDE"), input={"name": "spectra", "n_bands": m},
                     output={"name": "abundances", "kind": "abundance_percent", "spread": "spread"},
                     extra={"abundance": {"space": "simplex", "total": 100.0, "other_part": False,
                                          "conformal": {"floors": [1.0] * k, "levels": [0.0, 0.5, 1.0],
                                                        "scores": [[0.0, 1.0, 2.0]] * k, "n_calibration": 12,
                                                        "units": "groups", "default_level": 0.9}}})
    W = numpy_helper.from_array(np.ones((m, k), np.float32), "W")
    return graph_model(tmp_path / "abundance.onnx",
                       [helper.make_node("MatMul", ["spectra", "W"], ["l"]),
                        helper.make_node("Softmax", ["l"], ["abundances"], axis=1),
                        helper.make_node("Abs", ["l"], ["spread"])],
                       [("spectra", [None, m])], [("abundances", [None, k]), ("spread", [None, k])], info, [W])


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["abundance"].__setitem__("conformal", "x"), "its abundance settings are unreadable"),
    (lambda d: d["abundance"].__setitem__("conformal", {}),
     "its abundance settings are unreadable: 'levels' is missing"),
    (lambda d: d["abundance"]["conformal"].__setitem__("scores", [[0.0, 1.0]]),
     "do not hold one row for each of its 5 minerals"),
    (lambda d: d["abundance"].pop("space"), "its abundance settings are unreadable: 'space' is missing"),
    (lambda d: d["abundance"].__setitem__("space", "x"), "space is 'x', not one of simplex, ilr"),
    (lambda d: d.__setitem__("classes", d["classes"][:1]), "the graph gives 5 abundances, its metadata list 1"),
])
def test_damaged_abundance_metadata_are_refused(abundance_model, tmp_path, edit, words):
    assert AbundanceModel(abundance_model).names == list("ABCDE")
    err = refusal(lambda: AbundanceModel(damaged(abundance_model, tmp_path / "bad.onnx", edit)))
    assert err.parameter == "model" and words in err.message


@pytest.fixture
def prospectivity_model(tmp_path):
    info = ModelInfo(task="prospectivity", classes=classes("background", "deposit"),
                     input={"name": "windows", "n_bands": 2, "window": 16}, band_names=["Au_ppm", "Hg_ppm"],
                     preprocessing={"method": "zscore", "mean": [0.0, 0.0], "sd": [1.0, 1.0], "max_nodata": 0.5},
                     extra={"spatial": {"window": 16, "cell_size": [1000.0, 1000.0]}})
    return graph_model(tmp_path / "prospectivity.onnx",
                       [helper.make_node("ReduceMean", ["windows"], ["m"], axes=[2, 3], keepdims=0),
                        helper.make_node("Softmax", ["m"], ["probabilities"], axis=1)],
                       [("windows", [None, 2, 16, 16])], [("probabilities", [None, 2])], info)


@pytest.mark.parametrize("block, key, value, words", [
    ("preprocessing", "max_nodata", "x", "its preprocessing settings are unreadable: max_nodata is 'x'"),
    ("preprocessing", "max_nodata", None, "max_nodata is None, not a share in [0, 1)"),
    ("spatial", "cell_size", "x", "its spatial settings are unreadable: cell_size is 'x'"),
    ("spatial", "cell_size", [1000.0], "cell_size is [1000.0], not two positive numbers"),
])
def test_damaged_prospectivity_metadata_are_refused(prospectivity_model, tmp_path, block, key, value, words):
    assert _check_model(OnnxModel(prospectivity_model)) == (16, ["Au_ppm", "Hg_ppm"])
    path = damaged(prospectivity_model, tmp_path / "bad.onnx", lambda d: d[block].__setitem__(key, value))
    err = refusal(lambda: _check_model(OnnxModel(path)))
    assert err.parameter == "model" and "The model 'bad.onnx' cannot be used" in err.message and words in err.message


@pytest.fixture
def vae_model(tmp_path):
    info = ModelInfo(task="geochemical_anomaly", classes=classes("Background", "P85-P95", "P95-P99", "> P99"),
                     input={"name": "elements", "n_bands": 2}, output={"name": "score", "kind": "anomaly_score"},
                     band_names=["Au_ppm", "Hg_ppm"],
                     preprocessing={"method": "geochem", "below": "half", "transform": "log10", "scale": "robust",
                                    "zeros": "missing", "missing": -9999.0, "max_missing": 0.0,
                                    "scaler": {"method": "robust", "center": [0.0, 0.0], "scale": [1.0, 1.0]},
                                    "zero_values": [None, None], "input_transform": "none"},
                     extra={"anomaly": {"percentiles": [85.0, 95.0, 99.0], "thresholds": [1.0, 2.0, 3.0],
                                        "draws": 2, "errors_output": "element_errors"}})
    return graph_model(tmp_path / "vae.onnx",
                       [helper.make_node("Mul", ["elements", "elements"], ["element_errors"]),
                        helper.make_node("ReduceMean", ["element_errors"], ["score"], axes=[1], keepdims=1)],
                       [("elements", [None, 2])], [("element_errors", [None, 2]), ("score", [None, 1])], info)


@pytest.mark.parametrize("key, value, words", [
    ("missing", "x", "could not convert string to float: 'x'"),
    ("zero_values", "x", "could not convert string to float: 'x'"),
    ("zero_values", [], "its zero_values list 0 values for 2 elements"),
    # values this OreMap does not know: the model's, not the BELOW_DETECTION, SCALING, ZEROS or MAX_MISSING the
    # user left at its default
    ("below", "x", "Unknown below-detection handling 'x'"),
    ("scale", None, "Unknown scaling 'None'"),
    ("zeros", "x", "Unknown zero handling 'x'"),
    ("max_missing", -1, "The share of missing elements must be in [0, 1) (got -1.0)"),
])
def test_damaged_vae_preprocessing_is_refused_blaming_the_model(vae_model, tmp_path, key, value, words):
    assert AnomalyModel(vae_model).names == ["Au_ppm", "Hg_ppm"]
    path = damaged(vae_model, tmp_path / "bad.onnx", lambda d: d["preprocessing"].__setitem__(key, value))
    err = refusal(lambda: AnomalyModel(path))
    assert err.parameter == "model"
    assert err.message.startswith("The model's preprocessing metadata are damaged (") and words in err.message


@pytest.fixture
def unet_model(tmp_path):
    info = ModelInfo(task="mine_segmentation", classes=classes("background", "mine"),
                     input={"name": "tiles", "n_bands": 3, "window": 64},
                     output={"name": "probabilities", "kind": "probability_map"},
                     preprocessing={"method": "sentinel2_features", "bands": ["B2", "B3", "B4"], "indices": [],
                                    "index_version": 2},
                     extra={"segmentation": {"tile": 64, "threshold": 0.5, "overlap": 16, "depth": 2, "width": 8},
                            "spatial": {"pixel_size": [10.0, 10.0], "pixel_size_m": [10.0, 10.0]}})
    return graph_model(tmp_path / "unet.onnx",
                       [helper.make_node("ReduceMean", ["tiles"], ["m"], axes=[1], keepdims=1),
                        helper.make_node("Sigmoid", ["m"], ["probabilities"])],
                       [("tiles", [None, 3, None, None])], [("probabilities", [None, 1, None, None])], info)


@pytest.fixture
def patch_model(tmp_path):
    definition = feature_definition()
    n = len(definition["names"])
    info = ModelInfo(task="mine_patch_classification", classes=classes("No mine", "Mine"),
                     input={"name": "features", "n_bands": n},
                     extra={"mine_classifier": {"classifier": "hgb", "bands": definition["bands"], "threshold": 0.5,
                                                "patch_size": [120, 120], "features": definition,
                                                "positive_class": "Mine"},
                            "spatial": {"pixel_size": [10.0, 10.0], "pixel_size_m": [10.0, 10.0]}})
    W = numpy_helper.from_array(np.ones((n, 2), np.float32), "W")
    return graph_model(tmp_path / "patch.onnx",
                       [helper.make_node("MatMul", ["features", "W"], ["l"]),
                        helper.make_node("Softmax", ["l"], ["probabilities"], axis=1)],
                       [("features", [None, n])], [("probabilities", [None, 2])], info, [W])


def _detect(tmp_path, model, **kwargs):
    return detect_mines(str(tmp_path / "no_scene"), model, str(tmp_path / "mines.tif"), **kwargs)


def test_undamaged_mine_models_pass_their_checks(tmp_path, unet_model, patch_model):
    for model in (unet_model, patch_model):   # refused only for the missing scene
        assert refusal(lambda: _detect(tmp_path, model)).parameter != "model"


@pytest.mark.parametrize("block, key, value, words", [
    ("segmentation", "tile", "x", "its segmentation settings are unreadable: invalid literal for int()"),
    ("segmentation", "threshold", None, "its segmentation settings are unreadable: float() argument"),
    ("segmentation", "overlap", "x", "its segmentation settings are unreadable"),
    ("segmentation", "width", "x", "its segmentation settings are unreadable"),
    ("preprocessing", "index_version", None, "its preprocessing settings are unreadable"),
    ("spatial", "pixel_size_m", "x", "its spatial settings are unreadable: could not convert string to float"),
    # the model's values, not the THRESHOLD or OVERLAP the user left at the model's
    ("segmentation", "threshold", -1.5, "its segmentation settings are unreadable: threshold is -1.5, not between 0"),
    ("segmentation", "tile", -64, "its segmentation settings are unreadable: tile is -64 pixels"),
    ("segmentation", "overlap", -20, "overlap is -20 pixels, not 0-32 (half a window)"),
])
def test_damaged_unet_metadata_are_refused_blaming_the_model(tmp_path, unet_model, block, key, value, words):
    path = damaged(unet_model, tmp_path / "bad.onnx", lambda d: d[block].__setitem__(key, value))
    err = refusal(lambda: _detect(tmp_path, path))
    assert err.parameter == "model"
    assert "The model 'bad.onnx' cannot be used" in err.message and words in err.message


def test_the_users_own_threshold_and_overlap_are_still_checked_as_theirs(tmp_path, unet_model):
    assert refusal(lambda: _detect(tmp_path, unet_model, overlap=40)).parameter == "overlap"
    assert refusal(lambda: _detect(tmp_path, unet_model, threshold=1.5)).parameter == "threshold"
    # a damaged stored threshold does not matter when the user gives one
    path = damaged(unet_model, tmp_path / "bad.onnx", lambda d: d["segmentation"].__setitem__("threshold", 0))
    assert refusal(lambda: _detect(tmp_path, path, threshold=0.4)).parameter != "model"


@pytest.mark.parametrize("key, value, words", [
    ("threshold", "x", "its mine_classifier settings are unreadable: could not convert string to float"),
    ("threshold", 0, "its mine_classifier settings are unreadable: threshold is 0, not between 0 and 1"),
    ("patch_size", ["x"], "its mine_classifier settings are unreadable: invalid literal for int()"),
    ("patch_size", [120], "its mine_classifier settings are unreadable: list index out of range"),
    ("patch_size", [0, 0], "patch_size is 0 x 0 pixels"),
    ("features", "x", "its mine_classifier settings are unreadable"),
    ("bands", ["B2"], "bands B2 give 7 features, but the graph takes 162"),   # a one-band model
])
def test_damaged_patch_classifier_metadata_are_refused_blaming_the_model(tmp_path, patch_model, key, value, words):
    path = damaged(patch_model, tmp_path / "bad.onnx", lambda d: d["mine_classifier"].__setitem__(key, value))
    err = refusal(lambda: _detect(tmp_path, path))
    assert err.parameter == "model"
    assert "The model 'bad.onnx' cannot be used" in err.message and words in err.message


def test_a_window_layout_on_a_flat_graph_is_the_models_fault(tmp_path):
    path = damaged(BUNDLED, tmp_path / "m.onnx", lambda d: d["input"].__setitem__("window", 5))
    err = refusal(lambda: read_model_info(path))
    assert err.parameter == "model"
    assert "its input window is 5 cells, but the graph takes arrays of 2 dimensions, not windows" in err.message


# ---------------------------------------------------------------------------
# 6. Names GDAL and QML cannot carry
# ---------------------------------------------------------------------------
def _class_name(name):
    return lambda d: d["classes"][1].__setitem__("name", name)


@pytest.mark.parametrize("edit, words", [
    (_class_name("bell\x07"), "the name of class 2 holds a control or invalid character ('\\x07')"),
    (_class_name("nul\x00x"), "the name of class 2 holds a control or invalid character ('\\x00')"),
    (_class_name("esc\x1b[31m"), "the name of class 2 holds a control or invalid character ('\\x1b')"),
    (_class_name("\ud800lone"), "the name of class 2 holds a control or invalid character ('\\ud800')"),
    (_class_name("x\uffff"), "the name of class 2 holds a control or invalid character ('\\uffff')"),
    (lambda d: d.__setitem__("band_names", ["b\x0c"] * len(d["wavelengths"])),
     "its band_names hold a name with a control or invalid character"),
    (lambda d: d.__setitem__("description", "a\x1fb"), "its description holds a control or invalid character"),
])
def test_names_with_control_or_invalid_characters_are_refused(tmp_path, edit, words):
    err = refusal(lambda: read_model_info(damaged(BUNDLED, tmp_path / "m.onnx", edit)))
    assert err.parameter == "model" and words in err.message


def test_names_with_tabs_line_breaks_and_other_scripts_are_kept(tmp_path):
    names = ["tab\there", "two\nlines", "cr\rlf", "Kaolinit\u00e4 \u9ad8\u5cad\u571f", "\u202eright-to-left"]

    def edit(d):
        for i, name in enumerate(names):
            d["classes"][i]["name"] = name
        d["description"] = "line one\nline two"

    info = read_model_info(damaged(BUNDLED, tmp_path / "m.onnx", edit))
    assert info.class_names[:5] == names
    copy.deepcopy(info).validate()
