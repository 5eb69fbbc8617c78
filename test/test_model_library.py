"""The model library: task table, listing, cards, removal; the dock under pytest-qgis (offscreen)."""

import dataclasses
import html
import os
import re

import pytest

from oremap.core.engine import model_library
from oremap.core.engine.bundled import MODELS_DIR, bundled_models
from oremap.core.engine.model_format import model_bytes, read_model_info

BUNDLED = os.path.join(MODELS_DIR, "usgs_minerals_cnn.onnx")


def user_model(folder, name, task, description="", sidecars=False):
    """A copy of the bundled model with another task (and title), written to ``folder/name``."""
    info = dataclasses.replace(read_model_info(BUNDLED), task=task, description=description)
    with open(BUNDLED, "rb") as handle:
        data = model_bytes(handle.read(), info)
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    if sidecars:
        stem = os.path.splitext(path)[0]
        for suffix, text in ((".md", "# Card\n\nMy model."), ("_report.html", "<html>report</html>")):
            with open(stem + suffix, "w", encoding="utf-8") as handle:
                handle.write(text)
    return path


@pytest.fixture
def library(tmp_path):
    """A user folder: a CNN copy (with card and report), an abundance model in a subfolder, a model of an
    unknown task, and a file that is not a model."""
    folder = tmp_path / "models"
    paths = {
        "cnn": user_model(str(folder), "my_cnn.onnx", "spectral_classification", "My CNN", sidecars=True),
        "abundance": user_model(str(folder), "core/abundance.onnx", "mineral_abundance", "Core abundance"),
        "unknown": user_model(str(folder), "z_future.onnx", "weather_forecast", "Future task"),
    }
    broken = folder / "broken.onnx"
    broken.write_bytes(b"not a model")
    paths["broken"] = str(broken)
    return str(folder), paths


def test_listing_and_the_one_task_table(library):
    folder, paths = library
    entries = model_library.list_models(folder)
    assert [e.path for e in entries if e.source == model_library.BUNDLED] == [p for _, p in bundled_models()]
    user = [e for e in entries if e.source == model_library.USER]
    # sorted by path inside the folder, subfolders searched
    assert [os.path.relpath(e.path, folder) for e in user] == ["broken.onnx", "core/abundance.onnx", "my_cnn.onnx",
                                                               "z_future.onnx"]
    by_path = {e.path: e for e in entries}
    assert by_path[paths["broken"]].info is None and "not a valid ONNX model" in by_path[paths["broken"]].error
    # bundled CNN: chosen in the MODEL enum by position; a user CNN: 'Model file' (after the bundled ones)
    assert model_library.algorithm_parameters(by_path[BUNDLED]) == ("oremap:classify_spectral_cnn", {"MODEL": 0})
    n_bundled = len(bundled_models("spectral_classification"))
    assert model_library.algorithm_parameters(by_path[paths["cnn"]]) == (
        "oremap:classify_spectral_cnn", {"MODEL": n_bundled, "MODEL_FILE": paths["cnn"]})
    assert model_library.algorithm_parameters(by_path[paths["abundance"]]) == (
        "oremap:predict_abundance", {"MODEL_FILE": paths["abundance"]})
    assert model_library.algorithm_parameters(by_path[paths["unknown"]]) is None
    assert model_library.algorithm_parameters(by_path[paths["broken"]]) is None
    assert by_path[paths["cnn"]].sidecars() == [paths["cnn"][:-5] + ".md", paths["cnn"][:-5] + "_report.html"]


def test_every_registered_task_algorithm_takes_the_model(processing_provider):
    """Each table row names a real parameter; a bundled enum lists the task's bundled models, then 'Model file'."""
    registered = {a.id(): a for a in processing_provider.algorithms()}
    checked = 0
    for task, spec in model_library.TASK_ALGORITHMS.items():
        alg = registered.get(spec.algorithm)
        if alg is None:  # an algorithm still being written (vae_anomaly, detect_mines)
            continue
        assert alg.parameterDefinition(spec.file_parameter) is not None, spec
        if spec.bundled_parameter:
            options = alg.parameterDefinition(spec.bundled_parameter).options()
            assert options == [t for t, _ in bundled_models(task)] + ["Model file"]
        checked += 1
    assert checked >= 3


def test_card_shows_task_classes_input_training_and_versions(library):
    folder, paths = library
    entry = model_library.read_entry(BUNDLED, model_library.BUNDLED)
    info = entry.info
    card = model_library.card_html(entry)
    for c in info.classes:
        assert f'bgcolor="{c["color"]}"' in card and f"<td>{c['name']}</td>" in card
    assert f"{info.n_bands} bands, 430-2440 nm" in card
    assert "continuum removal" in card and "oremap:classify_spectral_cnn" in card
    assert info.training["date"][:10] in card and f"{info.oremap_version} (model format 1)" in card
    assert f"{info.training['metrics']['val_accuracy']:.3g}" in card  # 0.899
    assert "confusion matrix" not in card  # nested metrics left out
    # the bundled card and report are linked by file URIs (card:C:\... links were percent-encoded into paths that
    # opened nothing on Windows)
    assert 'href="file:///' in card and "_report.html" in card
    from qgis.PyQt.QtCore import QUrl

    hrefs = re.findall(r'href="([^"]+)"', card)
    assert all(os.path.isfile(QUrl(html.unescape(h)).toLocalFile()) for h in hrefs) and len(hrefs) == 2
    # what guards a run: an older file without class exemplars says it has no out-of-distribution check
    assert "<b>Safeguard</b></td><td>out-of-distribution check: spectra unlike every trained class" in card
    old = dataclasses.replace(info, training={k: v for k, v in info.training.items() if k != "ood"})
    assert model_library._safeguard(old).startswith("none: the file stores no class exemplars")
    unknown = model_library.card_html(model_library.read_entry(paths["unknown"], model_library.USER))
    assert "no OreMap algorithm applies this task" in unknown and "weather_forecast" in unknown
    broken = model_library.card_html(model_library.read_entry(paths["broken"], model_library.USER))
    assert "Not usable" in broken


def test_card_escapes_what_the_file_says(tmp_path):
    path = user_model(str(tmp_path), "evil.onnx", "prospectivity", '<script>alert(1)</script> & "x"')
    card = model_library.card_html(model_library.read_entry(path, model_library.USER))
    assert "<script>" not in card and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;" in card


def test_remove_takes_the_card_and_report_and_refuses_bundled(library):
    folder, paths = library
    entry = model_library.read_entry(paths["cnn"], model_library.USER)
    removed = model_library.remove_model(entry)
    assert removed == [paths["cnn"], paths["cnn"][:-5] + ".md", paths["cnn"][:-5] + "_report.html"]
    assert not any(os.path.exists(p) for p in removed)
    from oremap.core.engine.errors import OreMapError

    with pytest.raises(OreMapError) as info:
        model_library.remove_model(model_library.read_entry(BUNDLED, model_library.BUNDLED))
    assert "cannot be removed" in str(info.value)
    del info
    assert os.path.exists(BUNDLED)


@pytest.fixture
def model_folder(tmp_path, processing_provider):
    """Point the model folder setting at ``library``'s folder for one test, then restore it."""
    from oremap.processing_provider import settings

    before = settings.raw_value(settings.MODEL_FOLDER_SETTING)

    def use(folder):
        settings.set_value(settings.MODEL_FOLDER_SETTING, folder)

    yield use
    settings.set_value(settings.MODEL_FOLDER_SETTING, before)


@pytest.fixture
def browser_iface(qgis_iface):
    """pytest-qgis's iface with the browser model the Processing dialogs ask for."""
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()
    qgis_iface.browserModel = lambda: model
    yield qgis_iface
    del qgis_iface.browserModel


def _parameter(dialog, name):
    return dialog.mainWidget().wrappers[name].parameterValue()


def test_dock_lists_models_and_opens_the_right_algorithm_dialog(library, model_folder, browser_iface, tmp_path,
                                                                monkeypatch):
    from oremap.ui.model_library import ModelLibraryDock

    trash = tmp_path / "share" / "Trash"  # removed models go to this trash, never the user's (or the cwd)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))

    folder, paths = library
    model_folder(folder)
    dock = ModelLibraryDock()
    try:
        titles = [item.text(0) for item in dock.items()]
        bundled_titles = [t for t, _ in bundled_models()]
        assert titles == bundled_titles + ["broken", "Core abundance", "My CNN", "Future task"]
        assert folder in dock.folder_label.text()

        dock.select(BUNDLED)
        assert "Quartz-Feldspar" in dock.card.toPlainText()
        assert dock.open_action.isEnabled() and not dock.remove_action.isEnabled()
        dialog = dock.open_algorithm()
        assert dialog.algorithm().id() == "oremap:classify_spectral_cnn"
        assert _parameter(dialog, "MODEL") == 0

        dock.select(paths["cnn"])
        dialog = dock.open_algorithm()
        assert dialog.algorithm().id() == "oremap:classify_spectral_cnn"
        assert _parameter(dialog, "MODEL") == len(bundled_titles) and _parameter(dialog, "MODEL_FILE") == paths["cnn"]

        dock.select(paths["abundance"])
        dialog = dock.open_algorithm()
        assert dialog.algorithm().id() == "oremap:predict_abundance"
        assert _parameter(dialog, "MODEL_FILE") == paths["abundance"]
        assert len(dock.dialogs) == 3

        dock.select(paths["unknown"])  # card shown, no algorithm to open
        assert "weather_forecast" in dock.card.toPlainText()
        assert not dock.open_action.isEnabled() and dock.open_algorithm() is None
        card = dock.show_card()
        assert card.windowTitle() == "Model card - Future task"
        card.close()

        dock.select(paths["cnn"])
        dock.confirm = lambda title, text: False  # the user says no
        assert dock.remove_model() == [] and os.path.exists(paths["cnn"])
        dock.confirm = lambda title, text: "my_cnn.onnx, my_cnn.md, my_cnn_report.html" in text
        assert dock.remove_model()[0] == paths["cnn"]
        assert not os.path.exists(paths["cnn"]) and not os.path.exists(paths["cnn"][:-5] + ".md")
        assert sorted(os.listdir(trash / "files")) == ["my_cnn.md", "my_cnn.onnx", "my_cnn_report.html"]
        assert "My CNN" not in [item.text(0) for item in dock.items()]

        copied = dock.add_models([BUNDLED])  # a file with its card and report, copied into the folder
        assert copied == [os.path.join(folder, "usgs_minerals_cnn.onnx")]
        assert os.path.exists(os.path.join(folder, "usgs_minerals_cnn.md"))
        assert dock.selected_entry().path == copied[0] and dock.selected_entry().source == model_library.USER
        # another model of the same file name, without a report: it replaced the user's model (and left the old
        # report, which the new card then linked) without a question
        other = tmp_path / "elsewhere" / "usgs_minerals_cnn.onnx"
        other.parent.mkdir()
        other.write_bytes(b"other model")
        asked = []
        dock.confirm = lambda title, text: asked.append(text) and False   # the user says no
        assert dock.add_models([str(other)]) == []
        assert asked and "usgs_minerals_cnn.onnx, usgs_minerals_cnn.md, usgs_minerals_cnn_report.html" in asked[0]
        assert open(copied[0], "rb").read() == open(BUNDLED, "rb").read()
        dock.confirm = lambda title, text: True
        assert dock.add_models([str(other)]) == copied
        assert open(copied[0], "rb").read() == b"other model"
        assert not os.path.exists(os.path.join(folder, "usgs_minerals_cnn_report.html"))   # no stale report
        assert not os.path.exists(os.path.join(folder, "usgs_minerals_cnn.md"))
        assert "usgs_minerals_cnn_report.html" in os.listdir(trash / "files")
    finally:
        for dialog in dock.dialogs:
            dialog.close()
            dialog.deleteLater()
        dock.deleteLater()
        del dock


def test_adding_a_model_asks_before_replacing_the_users_card_and_follows_the_folder_setting(model_folder, tmp_path,
                                                                                             monkeypatch):
    """The user's own usgs_minerals_cnn.md and _report.html (no model of that name) were overwritten by the bundled
    card and report without a question; after the folder was changed in Settings > Options the open panel copied
    into the old folder, and the model then appeared nowhere."""
    from oremap.ui.model_library import ModelLibraryDock

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    old, new = tmp_path / "old_models", tmp_path / "new_models"
    old.mkdir()
    model_folder(str(old))
    dock = ModelLibraryDock()
    try:
        model_folder(str(new))                   # changed elsewhere (Settings > Options) while the panel is open
        (new).mkdir()
        (new / "usgs_minerals_cnn.md").write_text("MY FIELD NOTES")
        asked = []
        dock.confirm = lambda title, text: asked.append(text) and False
        assert dock.add_models([BUNDLED]) == []
        assert "usgs_minerals_cnn.md" in asked[0] and (new / "usgs_minerals_cnn.md").read_text() == "MY FIELD NOTES"
        dock.confirm = lambda title, text: True
        assert dock.add_models([BUNDLED]) == [str(new / "usgs_minerals_cnn.onnx")] and not os.listdir(old)
        assert (tmp_path / "share" / "Trash" / "files" / "usgs_minerals_cnn.md").read_text() == "MY FIELD NOTES"
        assert str(new) in dock.folder_label.text()
    finally:
        dock.deleteLater()
        del dock


def test_a_model_no_trash_can_take_is_deleted_only_when_the_user_was_told(library, model_folder, tmp_path,
                                                                          monkeypatch):
    """On another disk without a trash, Remove deleted the files for good after asking only "Remove ...?"; a move
    that failed (a read-only folder) left a phantom entry in the trash."""
    from oremap.ui import model_library as ui

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    folder, paths = library
    model_folder(folder)
    dock = ui.ModelLibraryDock()
    try:
        monkeypatch.setattr(ui, "trash_available", lambda path: False)
        dock.select(paths["cnn"])
        asked = []
        dock.confirm = lambda title, text: asked.append(text) and False
        assert dock.remove_model() == [] and os.path.exists(paths["cnn"])
        assert "deleted for good" in asked[0]
        dock.confirm = lambda title, text: True
        assert dock.remove_model()[0] == paths["cnn"] and not os.path.exists(paths["cnn"])
        assert not (tmp_path / "share" / "Trash").exists() or not os.listdir(tmp_path / "share" / "Trash" / "files")
    finally:
        dock.deleteLater()
        del dock

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(ui.os, "replace", refuse)
    with pytest.raises(PermissionError):
        ui.move_to_trash(paths["abundance"])
    assert os.path.exists(paths["abundance"]) and os.listdir(tmp_path / "share" / "Trash" / "info") == []


def test_an_unreadable_memory_variable_falls_back_and_is_said(monkeypatch):
    from oremap.core.engine import raster
    from oremap.processing_provider import settings

    monkeypatch.setenv("OREMAP_MEMORY_MB", "2GB")
    assert raster.memory_budget_mb() == 512.0 and "OREMAP_MEMORY_MB='2GB' is not a number" in raster.memory_env_problem()
    if not settings.is_stored(settings.MEMORY_SETTING):   # the variable is the setting: the pages and runs read it
        assert settings.memory_mb() == 512.0
    monkeypatch.setenv("OREMAP_MEMORY_MB", "2048")
    assert raster.memory_budget_mb() == 2048.0 and raster.memory_env_problem() is None


def test_the_library_viewer_plots_the_spectrum_chosen_when_two_share_a_name(tmp_path, qgis_iface):
    from oremap.ui.library_viewer import LibraryViewerDialog

    path = tmp_path / "dup.csv"
    path.write_text("wavelength_nm,kaolinite,kaolinite\n400,0.1,0.9\n500,0.2,0.8\n600,0.3,0.7\n")
    viewer = LibraryViewerDialog(None, str(path))
    try:
        plotted = []
        viewer.plot.set_curves = lambda curves: plotted.append([list(c[1]) for c in curves])
        viewer.names.item(0).setSelected(True)
        viewer.plot_selection()
        assert plotted[-1] == [[0.1, 0.2, 0.3]]
        viewer.names.clearSelection()
        viewer.names.item(1).setSelected(True)
        viewer.plot_selection()
        assert plotted[-1] == [[0.9, 0.8, 0.7]]
        broken = tmp_path / "broken.csv"
        broken.write_text("")
        viewer.load(str(broken))                 # the previous library's names no longer listed
        assert viewer.names.count() == 0 and viewer.library is None
    finally:
        viewer.deleteLater()
