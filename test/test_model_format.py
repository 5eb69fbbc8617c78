"""The OreMap model format: metadata round trip, refusals of bad files, onnxruntime inference.

The models here are built with onnx.helper (softmax of a matrix product), so the
format is tested without torch and every probability has a hand-computable value.
"""

import json
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from oremap.core.engine.errors import OreMapError  # noqa: E402
from oremap.core.engine.model_format import (  # noqa: E402
    METADATA_KEY,
    SCHEMA_VERSION,
    ModelInfo,
    OnnxModel,
    model_bytes,
    plugin_version,
    read_model_info,
    write_model,
)

N_BANDS, N_CLASSES = 6, 3
W = np.arange(N_BANDS * N_CLASSES, dtype=np.float32).reshape(N_BANDS, N_CLASSES) / 10.0 - 0.8


def softmax_graph(n_bands=N_BANDS, weights=W, input_name="spectra", output_name="probabilities"):
    """ONNX model: probabilities = softmax(spectra @ weights), dynamic batch axis."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", [input_name, "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], [output_name], axis=1)],
        "softmax_of_matmul",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["n", n_bands])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["n", weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def make_info(**changes):
    values = dict(
        task="spectral_classification",
        classes=[{"name": "Kaolinite", "color": "#1f78b4"}, {"name": "Alunite", "color": "#ff7f00"},
                 {"name": "Calcite", "color": "#00ced1"}],
        input={"name": "spectra", "n_bands": N_BANDS},
        output={"name": "probabilities", "kind": "probabilities"},
        wavelengths=[2100.0, 2150.5, 2200.0, 2250.0, 2300.25, 2350.0],
        fwhm=[10.0] * N_BANDS,
        band_names=[f"B{i}" for i in range(1, N_BANDS + 1)],
        preprocessing={"method": "brightness", "future_option": [1, 2]},
        training={"date": "2024-05-01T10:00:00+00:00", "data_hash": "ab" * 32, "n_samples": 120,
                  "metrics": {"val_accuracy": 0.95}, "parameters": {"epochs": 30, "lr": 0.001}},
        description="Test model",
    )
    values.update(changes)
    return ModelInfo(**values)


def with_raw_metadata(model, text):
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    return model


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_round_trip_through_a_real_onnx_file(tmp_path):
    info = make_info()
    info.extra = {"future_key": {"a": 1}}
    model = softmax_graph()
    other = model.metadata_props.add()
    other.key, other.value = "author", "someone"
    path = write_model(model, info, tmp_path / "m.onnx")
    assert path == str(tmp_path / "m.onnx")
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]  # no temporary file left behind
    back = read_model_info(path)
    assert back == info
    assert back.to_dict() == info.to_dict()
    assert back.extra == {"future_key": {"a": 1}}
    assert back.preprocessing == {"method": "brightness", "future_option": [1, 2]}
    assert back.wavelengths == [2100.0, 2150.5, 2200.0, 2250.0, 2300.25, 2350.0]
    assert back.class_names == ["Kaolinite", "Alunite", "Calcite"]
    assert back.class_rgb[1] == (255, 127, 0)
    assert back.n_bands == N_BANDS and back.preprocessing_method == "brightness"
    assert back.schema_version == 1 and SCHEMA_VERSION == 2   # nothing needs more than OreMap 0.2.0's reader
    stored = onnx.load(path)
    assert {p.key: p.value for p in stored.metadata_props}["author"] == "someone"  # other metadata kept
    raw = json.loads({p.key: p.value for p in stored.metadata_props}[METADATA_KEY])
    assert raw["schema_version"] == 1 and raw["future_key"] == {"a": 1}
    assert list(raw)[:3] == ["schema_version", "task", "classes"]
    # Writing again replaces the entry instead of adding a second one, and overwrites the file.
    write_model(stored, make_info(description="Second"), path)
    again = onnx.load(path)
    assert [p.key for p in again.metadata_props].count(METADATA_KEY) == 1
    assert read_model_info(path).description == "Second"


def test_info_converts_numpy_and_json_text():
    info = make_info(wavelengths=np.linspace(2100, 2350, N_BANDS), fwhm=None, band_names=None,
                     input={"name": "spectra", "n_bands": np.int64(N_BANDS)})
    assert isinstance(info.wavelengths, list) and isinstance(info.wavelengths[0], float)
    text = info.to_json()
    assert ModelInfo.from_json(text) == info
    assert ModelInfo.from_json(json.loads(text)) == info
    assert make_info().oremap_version == plugin_version() != "0.0.0"


def test_newer_schema_version_is_refused(tmp_path):
    data = make_info().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "newer.onnx"
    onnx.save(with_raw_metadata(softmax_graph(), json.dumps(data)), path)
    with pytest.raises(OreMapError) as err:
        read_model_info(path)
    assert err.value.parameter == "model"
    assert "newer OreMap" in err.value.message and "version 3" in err.value.message
    assert "Update the OreMap plugin" in err.value.fix
    with pytest.raises(OreMapError, match="newer OreMap"):
        OnnxModel(path)


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"task": "spectral_classification"}), "schema_version"),
    (json.dumps({**make_info().to_dict(), "classes": []}), "no classes"),
    (json.dumps({**make_info().to_dict(), "wavelengths": [1.0, 2.0]}), "wavelengths should list 6"),
    (json.dumps({**make_info().to_dict(), "classes": [{"name": "A", "color": "red"}]}), "#rrggbb"),
    (json.dumps({**make_info().to_dict(), "input": {"name": "x", "n_bands": 6}}), "no input 'x'"),
    (json.dumps({**make_info().to_dict(), "input": {"name": "spectra", "n_bands": 5},
                 "wavelengths": None, "fwhm": None, "band_names": None}), "takes 6 bands"),
    # found by an audit: each passed, to fail later (onnxruntime's own error, classes past the list's end, a NaN
    # wavelength blamed on the raster, the model card's AttributeError, a RecursionError)
    (json.dumps({**make_info().to_dict(), "classes": make_info().classes[:2]}),
     "gives 3 class probabilities, its metadata list 2 classes"),
    (json.dumps(make_info().to_dict()).replace("2150.5", "NaN"), "wavelengths hold a value that is not a finite"),
    (json.dumps({**make_info().to_dict(), "training": {"ood": True}}), "training 'ood' is not a JSON object"),
    (json.dumps({**make_info().to_dict(), "training": {"metrics": [0.9]}}), "training 'metrics' is not a JSON"),
    ('{"a": ' * 100000 + "1" + "}" * 100000, "nested too deeply"),
])
def test_malformed_metadata_is_refused(tmp_path, text, words):
    path = tmp_path / "bad.onnx"
    onnx.save(with_raw_metadata(softmax_graph(), text), path)
    with pytest.raises(OreMapError) as err:
        read_model_info(path)
    assert err.value.parameter == "model"
    assert words in err.value.message


def test_missing_truncated_corrupted_and_foreign_files(tmp_path):
    good = write_model(softmax_graph(), make_info(), tmp_path / "good.onnx")
    data = open(good, "rb").read()

    with pytest.raises(OreMapError) as err:
        read_model_info(tmp_path / "absent.onnx")
    assert err.value.parameter == "model" and "does not exist" in err.value.message

    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 7):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(OreMapError) as err:
            read_model_info(path)
        assert err.value.parameter == "model", cut
        assert "not an OreMap model" in err.value.message or "not a valid ONNX model" in err.value.message

    for name, content in (("empty.onnx", b""), ("text.onnx", b"this is a text file, not a model\n" * 20),
                          ("noise.onnx", np.random.default_rng(0).bytes(5000))):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(OreMapError) as err:
            read_model_info(path)
        assert err.value.parameter == "model", name
        assert "not an ONNX model" in err.value.message or "not a valid ONNX model" in err.value.message

    foreign = tmp_path / "foreign.onnx"
    onnx.save(softmax_graph(), foreign)
    with pytest.raises(OreMapError) as err:
        read_model_info(foreign)
    assert err.value.parameter == "model"
    assert "not an OreMap model" in err.value.message
    with pytest.raises(OreMapError, match="not an OreMap model"):
        OnnxModel(foreign)


def test_write_model_checks_info_against_graph(tmp_path):
    with pytest.raises(OreMapError, match="takes 6 bands"):
        write_model(softmax_graph(), make_info(input={"name": "spectra", "n_bands": 7}, wavelengths=None,
                                               fwhm=None, band_names=None), tmp_path / "m.onnx")
    with pytest.raises(OreMapError, match="no output 'proba'"):
        write_model(softmax_graph(), make_info(output={"name": "proba", "kind": "probabilities"}),
                    tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)
    with pytest.raises(OreMapError) as err:
        write_model(softmax_graph(), make_info(), tmp_path / "no_such_folder" / "m.onnx")
    assert err.value.parameter == "output"


def test_onnx_model_runs_with_known_probabilities(tmp_path):
    path = write_model(model_bytes(softmax_graph(), make_info()), make_info(), tmp_path / "m.onnx")
    model = OnnxModel(path, threads=1)
    assert model.providers_used == ["CPUExecutionProvider"]
    assert model.info == make_info()
    X = np.random.default_rng(1).uniform(0, 1, (1000, N_BANDS)).astype(np.float32)
    expected = softmax(X.astype(np.float64) @ W.astype(np.float64))
    got = model.run(X, batch_size=300)  # several batches
    assert got.dtype == np.float32 and got.shape == (1000, N_CLASSES)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # A hand-computed row: x = e1 picks the first row of W.
    one = model.run(np.eye(1, N_BANDS, dtype=np.float32))
    np.testing.assert_allclose(one[0], softmax(W[:1].astype(np.float64))[0], atol=1e-7)
    assert model.run(np.zeros((0, N_BANDS))).shape == (0, N_CLASSES)


def test_onnx_model_checks_input_width(tmp_path):
    model = OnnxModel(write_model(softmax_graph(), make_info(), tmp_path / "m.onnx"))
    for bad in (np.zeros((4, N_BANDS + 1)), np.zeros((4, N_BANDS - 2)), np.zeros(N_BANDS)):
        with pytest.raises(OreMapError) as err:
            model.run(bad)
        assert err.value.parameter == "raster"
        assert f"expects spectra of {N_BANDS} bands" in err.value.message
    with pytest.raises(OreMapError, match="given 7 bands"):
        model.run(np.zeros((2, 7)))


def test_model_file_gets_the_usual_permissions_and_no_temporary_file_is_left(tmp_path):
    try:  # read, not set: setting the umask is what write_atomic must avoid (other threads)
        with open("/proc/self/status", encoding="ascii") as status:
            umask = int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    except (OSError, StopIteration):
        pytest.skip("the process umask cannot be read here")
    path = write_model(softmax_graph(), make_info(), tmp_path / "m.onnx")
    write_model(softmax_graph(), make_info(description="again"), path)  # replaces the file
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["m.onnx"]
    assert read_model_info(path).description == "again"


def test_run_outputs_gives_every_output_over_several_batches(tmp_path):
    """A graph with two outputs (logits and probabilities): both, batch by batch, equal X @ W and its softmax."""
    graph = softmax_graph()
    graph.graph.output.insert(0, helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", N_CLASSES]))
    model = OnnxModel(write_model(graph, make_info(), tmp_path / "m.onnx"), threads=1)
    X = np.random.default_rng(2).uniform(-1, 1, (700, N_BANDS)).astype(np.float32)
    out = model.run_outputs(X, batch_size=256)
    assert list(out) == ["logits", "probabilities"]
    logits = X.astype(np.float64) @ W.astype(np.float64)
    np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], softmax(logits), atol=1e-6)
    with pytest.raises(OreMapError, match="given 7 bands"):
        model.run_outputs(np.zeros((2, 7)))


def window_graph(window=2):
    """ONNX model on windows: probabilities = softmax(mean over the window of each band @ W)."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["windows"], ["means"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["means", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "window_softmax",
        [helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["n", N_BANDS, window, window])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", N_CLASSES])],
        initializer=[numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_window_model_takes_windows_of_its_size_only(tmp_path):
    info = make_info(input={"name": "windows", "n_bands": N_BANDS, "window": 2})
    model = OnnxModel(write_model(window_graph(), info, tmp_path / "w.onnx"), threads=1)
    X = np.random.default_rng(3).uniform(0, 1, (50, N_BANDS, 2, 2)).astype(np.float32)
    expected = softmax(X.astype(np.float64).mean(axis=(2, 3)) @ W.astype(np.float64))
    np.testing.assert_allclose(model.run(X, batch_size=16), expected, atol=1e-6)
    for bad in (X[:, :, :1], X[:, :-1], X.mean(axis=(2, 3))):
        with pytest.raises(OreMapError, match=f"expects windows of {N_BANDS} bands and 2 x 2 cells") as err:
            model.run(bad)
        assert err.value.parameter == "raster"
    # run_dense takes windows of any size, but still the model's bands
    with pytest.raises(OreMapError, match=f"expects windows of {N_BANDS} bands, but"):
        model.run_dense(X[:, :-1])


def test_graph_inputs_of_another_type_or_window_are_refused_on_reading(tmp_path):
    """A float64 input, or windows of another size than the metadata say, passed reading and stopped at run time with
    onnxruntime's 'InvalidArgument'."""
    graph = window_graph(window=3)
    with pytest.raises(OreMapError, match="takes windows of 3 x 3 cells, its metadata say 2") as err:
        write_model(graph, make_info(input={"name": "windows", "n_bands": N_BANDS, "window": 2}), tmp_path / "w.onnx")
    assert err.value.parameter == "model"
    doubles = softmax_graph()
    doubles.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    with pytest.raises(OreMapError, match="takes other values than float32"):
        write_model(doubles, make_info(), tmp_path / "d.onnx")
    assert not os.listdir(tmp_path)


def test_build_date_follows_source_date_epoch(monkeypatch):
    """make models sets SOURCE_DATE_EPOCH so a rebuilt model records the same date (bit for bit)."""
    from oremap.core.engine.model_format import build_date, build_time

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796342400")
    assert build_date() == "2026-12-04T00:00:00+00:00"
    assert build_time().strftime("%Y-%m-%d %H:%M") == "2026-12-04 00:00"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert build_time().tzinfo is not None and build_time().microsecond == 0


def test_output_guard_puts_back_and_removes(tmp_path):
    from oremap.core.engine.files import OutputGuard, write_atomic

    old, new = tmp_path / "old.tif", tmp_path / "new.tif"
    old.write_bytes(b"old")
    (tmp_path / "old.tif.aux.xml").write_text("old stats")
    guard = OutputGuard()
    guard.add(str(old))
    guard.add(str(new))
    write_atomic(str(old), b"replaced")
    os.remove(tmp_path / "old.tif.aux.xml")
    write_atomic(str(new), b"made")
    write_atomic(str(tmp_path / "new.qml"), "style")
    guard.rollback()
    assert old.read_bytes() == b"old" and (tmp_path / "old.tif.aux.xml").read_text() == "old stats"
    assert sorted(os.listdir(tmp_path)) == ["old.tif", "old.tif.aux.xml"]
    # a completed run keeps the new files and drops the kept copies
    guard = OutputGuard()
    guard.add(str(old))
    write_atomic(str(old), b"replaced")
    guard.commit()
    assert old.read_bytes() == b"replaced" and sorted(os.listdir(tmp_path)) == ["old.tif", "old.tif.aux.xml"]
    # an output given as a link: the link is what a writer replaces, and what a failed run puts back
    target = tmp_path / "data.tif"
    target.write_bytes(b"user data")
    link = tmp_path / "link.tif"
    os.symlink(target, link)
    guard = OutputGuard()
    guard.add(str(link))
    write_atomic(str(link), b"new")
    assert not link.is_symlink()
    guard.rollback()
    assert link.is_symlink() and link.read_bytes() == b"user data" and not any(
        n.startswith(".") for n in os.listdir(tmp_path))


def test_output_guard_copy_that_cannot_be_put_back(tmp_path, monkeypatch):
    """A restore that fails (on Windows, the old output held open in QGIS) leaves the old file under its kept name
    and says so; a later run writing the same output removes that copy once the run that kept it is gone, and never
    a copy of a run still going."""
    import shutil
    import subprocess

    from oremap.core.engine import files
    from oremap.core.engine.files import OutputGuard, host_tag, write_atomic

    out = tmp_path / "map.tif"
    out.write_bytes(b"old")
    guard = OutputGuard()
    guard.add(str(out))
    write_atomic(str(out), b"failed run")
    real_replace = os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (_ for _ in ()).throw(PermissionError(13, "in use")))
    unrestored = guard.rollback()
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert len(unrestored) == 1 and unrestored[0][0] == str(out)
    kept = unrestored[0][1]
    assert os.path.basename(kept).startswith(f".map.tif.oremap-kept-{host_tag()}-{os.getpid()}-")
    assert open(kept, "rb").read() == b"old" and out.read_bytes() == b"failed run"
    # the run that kept it still lives (this process): a new run leaves the copy alone
    later = OutputGuard()
    assert later.add(str(out)) == [] and os.path.exists(kept)
    later.commit()
    # once that process is gone, the copy is removed by the next run writing map.tif, and named for the log
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = str(tmp_path / f".map.tif.oremap-kept-{host_tag()}-{gone.pid}-0a1b2c3d")
    os.rename(kept, stale)
    other = str(tmp_path / f".map.tif.oremap-kept-{'0' * 6 if host_tag() != '0' * 6 else '1' * 6}-1-0a1b2c3d")
    shutil.copy(stale, other)
    os.utime(other, (0, 0))  # a copy keeps the old output's time: age says nothing of its run
    later = OutputGuard()
    assert later.add(str(out)) == [stale] and not os.path.exists(stale)
    later.commit()
    assert os.path.exists(other)  # another machine's run (a shared folder): its process cannot be checked
    os.remove(other)
    assert sorted(os.listdir(tmp_path)) == ["map.tif"] and out.read_bytes() == b"failed run"


def test_a_package_that_is_installed_but_will_not_load_is_not_called_missing(monkeypatch):
    """On Windows onnxruntime or torch can be installed and still fail to load ('DLL load failed while importing
    onnxruntime_pybind11_state', '[WinError 126] ... c10.dll'): the error said 'not installed, install it', which
    the installer then found installed, and torch's OSError was reported as a file that could not be written."""
    import builtins

    from oremap.core.engine import compute
    from oremap.core.engine.dependencies import import_failure

    message, fix = import_failure("numpy", ImportError("DLL load failed while importing _multiarray_umath"), "go")
    assert message.startswith("The Python package 'numpy' is installed but cannot be loaded (ImportError: DLL load")
    assert "Visual C++ Redistributable" in fix and "Restart QGIS" in fix
    missing = ModuleNotFoundError("No module named 'flatbuffers'", name="flatbuffers")
    message, fix = import_failure("numpy", missing, "go")
    assert "a package it needs, 'flatbuffers', is not" in message and "Install the package again" in fix
    message, fix = import_failure("no_such_package_oremap", ImportError("x"), "go")
    assert "'no_such_package_oremap' is not installed" in message and fix.startswith("Missing Python package")
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "torch":
            raise OSError("[WinError 126] The specified module could not be found. Error loading c10.dll")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(OreMapError) as err:
        compute.require_torch()
    assert "'torch' is installed but cannot be loaded (OSError: [WinError 126]" in err.value.message
    assert err.value.parameter == "training"


def test_a_model_needing_more_than_the_first_reader_says_so_and_older_readers_refuse_it(tmp_path, monkeypatch):
    """OreMap 0.2.0 reads schema 1 and ran later models without a word: a CNN without its out-of-distribution
    check (every pixel classified), a mine model with other Sentinel-2 indices, a geochemical model without the
    check of its grid's transform. Such a model is now written as schema 2 with what it needs; one that needs
    nothing more stays schema 1, so older OreMaps keep using it."""
    from oremap.core.engine import model_format

    plain = make_info()
    assert model_format.required_features(plain) == [] and plain.to_dict()["schema_version"] == 1
    assert "requires" not in plain.to_dict()
    cases = [
        (make_info(training={"ood": {"views": []}}), ["ood_check"]),
        (make_info(task="mine_segmentation"), ["sentinel2_index_version_2"]),
        (make_info(task="mine_patch_classification",
                   extra={"mine_classifier": {"classifier": "hgb", "features": {"index_version": 2}}}),
         ["sentinel2_index_version_2"]),
        (make_info(task="prospectivity", preprocessing={"method": "zscore", "input_transform": "log10"}),
         ["input_transform_check"]),
    ]
    for info, needs in cases:
        assert model_format.required_features(info) == needs
        data = info.to_dict()
        assert data["schema_version"] == 2 and data["requires"] == needs
        back = ModelInfo.from_json(info.to_json())
        assert back.schema_version == 2 and "requires" not in back.extra and back.to_dict() == data
    # not needed: a patch CNN (indices in its graph), version-1 features, a grid transform nobody recorded
    for info in (make_info(task="mine_patch_classification",
                           extra={"mine_classifier": {"classifier": "cnn", "features": {"index_version": 2}}}),
                 make_info(task="mine_patch_classification",
                           extra={"mine_classifier": {"classifier": "hgb", "features": {"index_version": 1}}}),
                 make_info(task="geochemical_anomaly", preprocessing={"method": "none", "input_transform": None})):
        assert model_format.required_features(info) == [] and info.to_dict()["schema_version"] == 1
    # a reader of schema 1 (0.2.0 to 0.2.9) refuses the schema-2 file instead of skipping the check
    path = tmp_path / "m.onnx"
    write_model(softmax_graph(), cases[0][0], str(path))
    monkeypatch.setattr(model_format, "SCHEMA_VERSION", 1)
    with pytest.raises(OreMapError, match="made by a newer OreMap .model format version 2; this OreMap reads up to "
                                          "version 1"):
        read_model_info(str(path))
    monkeypatch.undo()
    assert read_model_info(str(path)).training["ood"] == {"views": []}
    # a later OreMap's need this one does not know is refused by name
    data = cases[0][0].to_dict()
    data["requires"] = ["ood_check", "something_later"]
    with pytest.raises(OreMapError) as err:
        ModelInfo.from_json(data)
    assert err.value.parameter == "model" and err.value.fix == "Update the OreMap plugin to use this model."
    assert err.value.message.startswith("The model was made by a newer OreMap: it needs something_later,")
    # the bundled CNN (written by 0.2.0's layout with the check) is read as it is, and would be written as 2
    bundled = read_model_info(os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx"))
    assert bundled.schema_version == 1 and bundled.to_dict()["requires"] == ["ood_check"]
