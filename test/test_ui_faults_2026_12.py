"""Faults of the plugin's windows found in the December 2026 audit: cancelling the package installer, the cost of
the options page, OK overwriting settings the user did not touch, adding models to a folder that cannot be written."""

import os
import subprocess
import sys
import time

import pytest

from conftest import PLUGIN_IN_SUBPROCESS, ROOT, qgis_env

from oremap.core.engine import compute
from oremap.core.engine import package_installer as pi
from oremap.core.engine.raster import MEMORY_SETTING
from oremap.processing_provider import settings

BUNDLED = os.path.join(ROOT, "models", "usgs_minerals_cnn.onnx")
NO_CUDA = {"onnxruntime": False, "torch": False, "name": ""}


def _wait_for(condition, seconds=10):
    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    return condition()


# -- Install optional packages: cancelling ------------------------------------------------------------------------

def test_a_pip_silent_while_it_downloads_is_stopped_soon_after_cancel(tmp_path):
    """pip prints one 'Downloading' line for torch and then nothing for minutes: cancellation was looked at only
    when pip printed, so a cancelled pip went on to the end (and the dialog waited for it)."""
    marker = tmp_path / "pip_finished"
    fake_pip = [sys.executable, "-c", "import time; print('Downloading torch-2.13.0+cpu.whl (190.4 MB)', flush=True);"
                                      f"time.sleep(3); open({str(marker)!r}, 'w').write('done')"]
    logged = []
    start = time.monotonic()
    tail = pi._run_pip(fake_pip, 1, logged.append, lambda p: None, lambda: time.monotonic() > start + 0.5)
    took = time.monotonic() - start
    assert took < 2.0, f"_run_pip returned {took:.1f} s after it started, 0.5 s after the cancel"
    assert tail is not None and "Downloading torch" in tail   # not a success
    assert logged[-1] == "Cancelled: pip was stopped."
    time.sleep(max(0.0, start + 4 - time.monotonic()))
    assert not marker.exists()   # pip was stopped, not left to finish


def test_closing_the_installer_while_pip_runs_does_not_block_and_closes_when_it_stopped(qgis_app, tmp_path,
                                                                                        monkeypatch):
    """Close during an installation waited up to 30 s for pip on the GUI thread (QGIS frozen). Now it asks the
    worker to cancel, returns at once with the buttons disabled, and closes the dialog when the worker ended."""
    from oremap.ui import install_packages

    def fake_install(groups, folder, log=None, progress=None, is_canceled=None):
        log("Downloading torch-2.13.0+cpu.whl (190.4 MB)")
        deadline = time.monotonic() + 20
        while not is_canceled() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.5)   # stopping pip and removing the staging folder take a moment
        raise pi.InstallError("The installation was cancelled; nothing was installed.")

    monkeypatch.setattr(install_packages.package_installer, "install", fake_install)
    dialog = install_packages.InstallPackagesDialog(pi.folder_for_profile(str(tmp_path)))
    dialog.show()
    dialog.start()
    assert _wait_for(lambda: "Downloading torch" in dialog.log.toPlainText())
    start = time.monotonic()
    dialog.reject()   # Close, Esc or the window's close button
    assert time.monotonic() - start < 0.5
    assert dialog.isVisible() and not dialog.buttons.isEnabled() and dialog.worker.cancel_requested
    assert "Cancelling" in dialog.log.toPlainText()
    assert _wait_for(lambda: not dialog.isVisible())
    assert dialog.worker.wait(5000)
    assert dialog.log.toPlainText().splitlines()[-1] == ("Failed. The installation was cancelled; nothing was "
                                                         "installed.")
    dialog.deleteLater()


# -- Settings > Options: building the page ------------------------------------------------------------------------

OPTIONS_PAGE = r"""
import importlib.util, os, sys
root = sys.argv[1]
""" + PLUGIN_IN_SUBPROCESS + r"""
app = QgsApplication([], True)
app.initQgis()
from oremap.core.engine import compute
from oremap.processing_provider import settings
settings.set_value(compute.DEVICE_SETTING, "cuda")
from oremap.ui.settings_dialog import OreMapOptionsFactory
page = OreMapOptionsFactory().createWidget(None)
widget = page.widget
print("imported:", sorted(name for name in ("torch", "onnxruntime") if name in sys.modules))
check = getattr(widget, "check_devices", None)
print(widget.device.currentData(), "|", widget.device.currentText(), "|",
      check is not None and check.isVisibleTo(widget))
"""


def test_the_options_page_is_built_without_importing_torch_or_onnxruntime(tmp_path):
    """QGIS builds every options page when Settings > Options opens: OreMap's imported torch and onnxruntime on the
    GUI thread to list CUDA devices (seconds, hundreds of MB). Now a fresh QGIS builds it without them, the stored
    device still shown, and *Check devices* looks for CUDA on request."""
    proc = subprocess.run([sys.executable, "-c", OPTIONS_PAGE, ROOT], capture_output=True, text=True,
                          env=qgis_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported, device = proc.stdout.strip().splitlines()[-2:]
    assert imported == "imported: []"
    assert device == "cuda | CUDA (NVIDIA GPU) (not checked yet) | True"


@pytest.fixture
def stored_settings():
    """OreMap's stored settings put back as they were (stored or not) after the test."""
    from qgis.core import QgsSettings

    names = [s.name for s in settings.SETTINGS]
    before = {name: (settings.is_stored(name), settings.raw_value(name)) for name in names}
    yield
    for name, (stored, value) in before.items():
        if stored:
            settings.set_value(name, value)
        else:
            QgsSettings().remove(settings.PREFIX + name)


def test_check_devices_lists_cuda_when_found_and_keeps_the_choice(qgis_app, stored_settings, monkeypatch):
    from oremap.ui.settings_dialog import SettingsWidget

    monkeypatch.setattr(compute, "cuda_support_if_cheap", lambda: None)
    asked = []
    monkeypatch.setattr(compute, "cuda_support",
                        lambda refresh=False: asked.append(1) or {"onnxruntime": True, "torch": False, "name": ""})
    settings.set_value(compute.DEVICE_SETTING, "cpu")
    widget = SettingsWidget()
    try:
        assert not asked and "CUDA: not checked yet" in widget.status.text()
        assert [widget.device.itemData(i) for i in range(widget.device.count())] == ["cpu"]
        widget.check_devices.click()
        assert asked and [widget.device.itemData(i) for i in range(widget.device.count())] == ["cpu", "cuda"]
        assert widget.device.currentData() == "cpu" and "CUDA: available through onnxruntime" in widget.status.text()
        assert widget.check_devices.isHidden()
    finally:
        widget.deleteLater()


# -- Settings > Options > OK: only what the user changed ----------------------------------------------------------

@pytest.mark.parametrize("checked", [False, True], ids=["devices not checked", "devices checked"])
def test_ok_stores_only_what_the_user_changed(qgis_app, stored_settings, monkeypatch, checked):
    """QGIS applies every options page on OK: OreMap's stored every value shown, so a 'cuda' chosen on a session
    with CUDA became 'cpu', and a memory budget from OREMAP_MEMORY_MB became a stored value that overrode the
    environment from then on."""
    from qgis.core import QgsSettings

    from oremap.ui.settings_dialog import SettingsWidget

    monkeypatch.setattr(compute, "cuda_support", lambda refresh=False: dict(NO_CUDA))
    monkeypatch.setattr(compute, "cuda_support_if_cheap", lambda: dict(NO_CUDA) if checked else None)
    monkeypatch.setenv("OREMAP_MEMORY_MB", "4096")
    QgsSettings().remove(settings.PREFIX + MEMORY_SETTING)
    settings.set_value(compute.DEVICE_SETTING, "cuda")   # chosen on a session where CUDA was found
    settings.set_value(compute.THREADS_SETTING, 2)
    widget = SettingsWidget()
    try:
        assert widget.memory.value() == 4096
        widget.apply()   # OK, after editing some other page
        assert not settings.is_stored(MEMORY_SETTING)
        monkeypatch.setenv("OREMAP_MEMORY_MB", "8192")
        assert settings.memory_mb() == 8192
        assert settings.raw_value(compute.DEVICE_SETTING) == "cuda"
        # the stored choice is shown, marked, rather than replaced by the CPU
        assert widget.device.currentData() == "cuda"
        assert widget.device.currentText().endswith("(not available now)" if checked else "(not checked yet)")
        if checked:
            assert "no CUDA device is available here: runs use the CPU" in widget.device_note.text()
        widget.threads.setValue(5)   # what the user changes is stored, and only that
        widget.apply()
        assert settings.threads() == 5 and not settings.is_stored(MEMORY_SETTING)
        assert settings.raw_value(compute.DEVICE_SETTING) == "cuda"
        widget.device.setCurrentIndex(widget.device.findData("cpu"))
        widget.apply()
        assert settings.raw_value(compute.DEVICE_SETTING) == "cpu"
    finally:
        widget.deleteLater()


# -- Model library: adding models to a folder that cannot be written -----------------------------------------------

class _MessageBox:
    """Stands in for QMessageBox in the dock: keeps the warnings instead of showing them."""

    shown = []

    @staticmethod
    def warning(parent, title, text):
        _MessageBox.shown.append((title, text))


def test_adding_models_to_a_folder_that_cannot_be_written_says_so(qgis_app, tmp_path, monkeypatch):
    """The model folder under a file (or an unmapped drive, a read-only or full disk): add_models raised OSError
    out of the slot (QGIS's Python error dialog). Now the dock says which folder and where to choose another."""
    from oremap.ui import model_library as dock_module

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    folder = str(blocker / "models")
    monkeypatch.setattr(dock_module.settings, "model_folder", lambda: folder)
    monkeypatch.setattr(dock_module, "QMessageBox", _MessageBox)
    monkeypatch.setattr(_MessageBox, "shown", [])
    dock = dock_module.ModelLibraryDock()
    try:
        assert dock.add_models([BUNDLED]) == []
        [(title, text)] = _MessageBox.shown
        assert title == "Add model" and folder in text and "OreMap settings" in text

        # a folder that exists but takes no more bytes: one warning for all the files, no half-copied model left
        folder = str(tmp_path / "full")
        os.makedirs(folder)
        dock.refresh()

        def disk_full(source, target):
            with open(target, "wb") as handle:
                handle.write(b"half")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(dock_module.shutil, "copy2", disk_full)
        _MessageBox.shown.clear()
        other = tmp_path / "other.onnx"
        other.write_bytes(b"model")
        assert dock.add_models([BUNDLED, str(other)]) == []
        [(title, text)] = _MessageBox.shown
        assert folder in text and "No space left on device" in text
        assert os.listdir(folder) == []
    finally:
        dock.deleteLater()
