"""OreMap's settings page: memory budget, threads, compute device, model folder, and the optional packages.

The same :class:`SettingsWidget` is a page of *Settings > Options* (:class:`OreMapOptionsFactory`)
and a dialog of its own (:class:`SettingsDialog`, from *Plugins > OreMap* and the model library).
Values are read and written through ``processing_provider/settings.py`` only.
"""

import os

from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.engine import compute, dependencies
from ..core.engine.raster import MEMORY_SETTING
from ..processing_provider import settings

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))


def package_status():
    """``[(package, installed version or None, what OreMap uses it for)]`` of the optional packages."""
    from importlib import metadata

    rows = []
    for package, (purpose, spec) in dependencies.OPTIONAL_PACKAGES.items():
        version = None
        if dependencies.is_installed(package):
            try:
                version = metadata.version(spec.split()[0].split("==")[0])   # the distribution (scikit-learn)
            except metadata.PackageNotFoundError:
                version = "installed"
        rows.append((package, version, purpose))
    return rows


def status_html():
    """HTML: the optional packages, installed or how to install them, and the CUDA devices found."""
    lines = []
    for package, version, purpose in package_status():
        if version:
            lines.append(f"<b>{package}</b> {version}: {purpose}.")
        else:
            way = (f"Debian/Ubuntu: <code>sudo apt install {dependencies.SYSTEM_PACKAGES[package]}</code>"
                   if package in dependencies.SYSTEM_PACKAGES else
                   "<i>Plugins &gt; OreMap &gt; Install optional packages</i>")
            commands = dependencies.install_command([package])   # none for a package never to pip-install
            pip = f", or <code>{' ; '.join(commands)}</code>" if commands else (
                " (from the system only: its wheels would replace QGIS's numpy)")
            lines.append(f"<b>{package}</b>: <span style='color:#b00000'>not installed</span> ({purpose}). "
                         f"{way}{pip}")
    support = compute.cuda_support()
    found = [name for name in ("onnxruntime", "torch") if support[name]]
    lines.append("CUDA: " + (f"available through {' and '.join(found)}" + (f" ({support['name']})"
                                                                            if support["name"] else "")
                             if found else "no CUDA device reported by onnxruntime or torch; OreMap runs on the CPU."))
    return "<br>".join(lines)


class SettingsWidget(QWidget):
    """Edits OreMap's settings; :meth:`apply` stores them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.memory = QSpinBox()
        self.memory.setRange(16, 1024 * 1024)
        self.memory.setSingleStep(128)
        self.memory.setSuffix(" MB")
        self.memory.setToolTip("Largest amount of memory one algorithm run uses for raster blocks; larger "
                               "scenes are processed block by block.")
        self.threads = QSpinBox()
        self.threads.setRange(0, 1024)
        self.threads.setSpecialValueText("all cores")
        self.threads.setToolTip("Threads onnxruntime and torch may use when an algorithm's own Threads "
                                "parameter is 0.")
        self.device = QComboBox()
        for name in compute.available_devices():
            self.device.addItem(compute.DEVICES[name], name)
        self.device.setToolTip("CUDA is listed only when onnxruntime or torch reports a CUDA device. Every run "
                               "logs the device chosen and the one used.")
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder.lineEdit().setPlaceholderText(settings.default_model_folder())
        self.folder.setToolTip("Your own .onnx models, listed in the OreMap model library. Empty: "
                               + settings.default_model_folder())
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Memory budget", self.memory)
        form.addRow("Threads", self.threads)
        form.addRow("Compute device", self.device)
        form.addRow("", self.device_note)
        form.addRow("Model folder", self.folder)
        box = QGroupBox("OreMap")
        box.setLayout(form)
        self.status = QLabel(status_html())
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        packages = QGroupBox("Optional packages and devices")
        packages_layout = QVBoxLayout(packages)
        packages_layout.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addWidget(packages)
        layout.addStretch(1)
        self.load()

    def load(self):
        """Show the stored values."""
        self.memory.setValue(int(settings.memory_mb()))
        self.threads.setValue(settings.threads())
        wanted = settings.device()
        index = self.device.findData(wanted)
        self.device.setCurrentIndex(max(index, 0))
        self.device_note.setText("" if index >= 0 else
                                 "CUDA was chosen, but no CUDA device is available here: runs use the CPU.")
        self.folder.setFilePath(str(settings.raw_value(settings.MODEL_FOLDER_SETTING) or ""))

    def apply(self):
        """Store the values shown."""
        settings.set_value(MEMORY_SETTING, self.memory.value())
        settings.set_value(compute.THREADS_SETTING, self.threads.value())
        settings.set_value(compute.DEVICE_SETTING, self.device.currentData() or "cpu")
        settings.set_value(settings.MODEL_FOLDER_SETTING, self.folder.filePath())


class SettingsDialog(QDialog):
    """:class:`SettingsWidget` with OK and Cancel."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("OreMap settings")
        self.widget = SettingsWidget(self)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.widget)
        layout.addWidget(buttons)
        self.resize(560, 420)

    def accept(self):
        self.widget.apply()
        super().accept()


class OreMapOptionsPage(QgsOptionsPageWidget):
    """The OreMap page of Settings > Options."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.widget = SettingsWidget(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.widget)

    def apply(self):
        self.widget.apply()


class OreMapOptionsFactory(QgsOptionsWidgetFactory):
    """Registers :class:`OreMapOptionsPage` with ``iface.registerOptionsWidgetFactory``."""

    def __init__(self):
        super().__init__("OreMap", QIcon(os.path.join(PLUGIN_DIR, "icon.svg")))

    def createWidget(self, parent):  # noqa: N802 (QGIS API)
        return OreMapOptionsPage(parent)
