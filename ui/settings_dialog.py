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
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
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


def status_html(support=None):
    """HTML: the optional packages, installed or how to install them, and the CUDA devices found (``support``, a
    ``compute.cuda_support`` answer; None: not checked yet)."""
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
    if support is None:
        lines.append("CUDA: not checked yet (<i>Check devices</i> asks onnxruntime and torch; loading them takes a "
                     "few seconds).")
        return "<br>".join(lines)
    found = [name for name in ("onnxruntime", "torch") if support[name]]
    lines.append("CUDA: " + (f"available through {' and '.join(found)}" + (f" ({support['name']})"
                                                                            if support["name"] else "")
                             if found else "no CUDA device reported by onnxruntime or torch; OreMap runs on the CPU."))
    return "<br>".join(lines)


class SettingsWidget(QWidget):
    """Edits OreMap's settings; :meth:`apply` stores those the user changed.

    Building it imports neither onnxruntime nor torch (seconds, and QGIS builds every options page when its
    Options dialog opens): CUDA devices are looked for when the user presses *Check devices*, unless the answer
    is known already (``compute.cuda_support_if_cheap``).
    """

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
        self.device.setToolTip("CUDA is listed only when onnxruntime or torch reports a CUDA device. Every run "
                               "logs the device chosen and the one used.")
        self.check_devices = QPushButton("Check devices")
        self.check_devices.setToolTip("Ask onnxruntime and torch for CUDA devices (loading them takes a few seconds).")
        self.check_devices.clicked.connect(self.probe_devices)
        device_row = QHBoxLayout()
        device_row.addWidget(self.device, 1)
        device_row.addWidget(self.check_devices)
        self.support = compute.cuda_support_if_cheap()
        self.check_devices.setVisible(self.support is None)
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
        form.addRow("Compute device", device_row)
        form.addRow("", self.device_note)
        form.addRow("Model folder", self.folder)
        box = QGroupBox("OreMap")
        box.setLayout(form)
        self.status = QLabel(status_html(self.support))
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
        """Show the stored values, and remember them (:meth:`apply`)."""
        self.memory.setValue(int(settings.memory_mb()))
        self.threads.setValue(settings.threads())
        self.show_devices(settings.device())
        self.folder.setFilePath(str(settings.raw_value(settings.MODEL_FOLDER_SETTING) or ""))
        self.shown = self.values()

    def show_devices(self, wanted):
        """List the devices found (only the CPU before they are checked) with ``wanted`` selected. A choice that is
        not available, or not checked yet, stays listed (marked so): OK must not turn it into the CPU."""
        available = compute.available_devices(self.support) if self.support is not None else ["cpu"]
        self.device.clear()
        for name in available:
            self.device.addItem(compute.DEVICES[name], name)
        if wanted not in available:
            why = "not available now" if self.support is not None else "not checked yet"
            self.device.addItem(f"{compute.DEVICES[wanted]} ({why})", wanted)
        self.device.setCurrentIndex(self.device.findData(wanted))
        if wanted in available:
            note = "" if self.support is not None else "Check devices lists CUDA where this computer has it."
        elif self.support is not None:
            note = "CUDA was chosen, but no CUDA device is available here: runs use the CPU."
        else:
            note = "CUDA was chosen; runs use the CPU where no CUDA device is found (Check devices)."
        self.device_note.setText(note)

    def probe_devices(self):
        """Ask onnxruntime and torch for CUDA devices (the *Check devices* button), then list them."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.support = compute.cuda_support()
        finally:
            QApplication.restoreOverrideCursor()
        self.show_devices(self.device.currentData() or "cpu")
        self.status.setText(status_html(self.support))
        self.check_devices.setVisible(False)

    def values(self):
        """``{setting: value shown}``."""
        return {MEMORY_SETTING: self.memory.value(), compute.THREADS_SETTING: self.threads.value(),
                compute.DEVICE_SETTING: self.device.currentData() or "cpu",
                settings.MODEL_FOLDER_SETTING: self.folder.filePath()}

    def apply(self):
        """Store the values the user changed since :meth:`load`. QGIS applies every options page when the user
        presses OK, whatever page was edited: storing every value shown made a memory budget from the environment
        (``OREMAP_MEMORY_MB``) a stored one that then overrode the environment."""
        for name, value in self.values().items():
            if value != self.shown[name]:
                settings.set_value(name, value)
                self.shown[name] = value


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
