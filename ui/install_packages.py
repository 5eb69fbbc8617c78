"""Plugins > OreMap > Install optional packages: a thin dialog over ``core/engine/package_installer.py``.

Shows which optional packages QGIS's Python has, lets the user choose the groups (onnx/onnxruntime by
default; CPU torch and skl2onnx on request), runs pip in a worker thread with progress and a log, and
puts the profile's packages folder on ``sys.path`` when it is done.
"""

import html

from qgis.PyQt.QtCore import QThread, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
)

from ..core.engine import package_installer


class InstallWorker(QThread):
    """Runs :func:`core.engine.package_installer.install` off the GUI thread."""

    line = pyqtSignal(str)
    percent = pyqtSignal(int)
    finished_with = pyqtSignal(bool, str)

    def __init__(self, groups, folder, parent=None):
        super().__init__(parent)
        self.groups, self.folder = groups, folder
        self.cancel_requested = False

    def run(self):
        try:
            result = package_installer.install(self.groups, self.folder, log=self.line.emit,
                                               progress=self.percent.emit,
                                               is_canceled=lambda: self.cancel_requested)
        except package_installer.InstallError as exc:
            self.finished_with.emit(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user, never lost in a thread
            self.finished_with.emit(False, f"Unexpected error: {exc}")
        else:
            done = ", ".join(result["installed"]) or "nothing (all there already)"
            self.finished_with.emit(True, f"Installed {done} into {result['folder']}.")


def status_text(folder):
    """HTML lines: each group's main package, installed (where) or not."""
    lines = []
    for _, title, packages in package_installer.status(folder):
        for name, version, where in packages:
            state = (f"{version} ({'OreMap packages folder' if where == 'profile' else 'QGIS Python'})"
                     if version else "<span style='color:#b00000'>not installed</span>")
            lines.append(f"<b>{name}</b>: {state}. <i>{title}</i>")
    unused = package_installer.unused_for_other_python(folder)
    if unused:
        lines.append(f"<i>{html.escape(unused)}</i>")
    return "<br>".join(lines)


class InstallPackagesDialog(QDialog):
    def __init__(self, folder, parent=None):
        super().__init__(parent)
        self.setWindowTitle("OreMap: install optional packages")
        self.folder = folder
        self.worker = None
        self.pins = package_installer.read_pins()
        layout = QVBoxLayout(self)
        intro = QLabel(
            "The neural-network algorithms need packages that QGIS does not ship. OreMap installs the versions "
            f"it was tested with into <code>{folder}</code> (no administrator rights needed), never replacing "
            "QGIS's own numpy or GDAL. An internet connection is needed.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.status = QLabel(status_text(folder))
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.boxes = {}
        for group, spec in self.pins.items():
            box = QCheckBox(spec["title"])
            box.setChecked(group in package_installer.DEFAULT_GROUPS)
            self.boxes[group] = box
            layout.addWidget(box)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMinimumHeight(200)
        layout.addWidget(self.log)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.install_button = self.buttons.addButton("Install", QDialogButtonBox.ButtonRole.AcceptRole)
        self.install_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(640, 520)

    def groups(self):
        return [g for g, box in self.boxes.items() if box.isChecked()]

    def start(self):
        groups = self.groups()
        if not groups:
            self.log.appendPlainText("Choose at least one group of packages.")
            return
        self.install_button.setEnabled(False)
        self.log.clear()
        self.worker = InstallWorker(groups, self.folder, self)
        self.worker.line.connect(self.log.appendPlainText)
        self.worker.percent.connect(self.progress.setValue)
        self.worker.finished_with.connect(self.done_installing)
        self.worker.finished.connect(self._worker_stopped)
        self.worker.start()

    def done_installing(self, ok, message):
        self.log.appendPlainText(("Done. " if ok else "Failed. ") + message)
        if ok:
            self.log.appendPlainText("The algorithms can run now; restart QGIS if one still says a package is missing.")
        self.status.setText(status_text(self.folder))
        self.install_button.setEnabled(True)

    def reject(self):
        """Close; while pip runs, cancel it and close once the worker has stopped (:meth:`_worker_stopped`; pip is
        stopped within a second, see ``package_installer._run_pip``). Waiting for the worker here froze QGIS."""
        if self.worker is not None and self.worker.isRunning():
            if not self.worker.cancel_requested:
                self.worker.cancel_requested = True
                self.log.appendPlainText("Cancelling: stopping pip; the dialog closes when it has stopped.")
                self.buttons.setEnabled(False)
            return
        super().reject()

    def _worker_stopped(self):
        """The worker ended: close the dialog if the user closed it meanwhile (:meth:`reject`)."""
        if self.worker is not None and self.worker.cancel_requested:
            self.buttons.setEnabled(True)
            super().reject()
