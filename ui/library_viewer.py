"""A spectral library viewer: browse a library, plot spectra, copy names for the SPECTRA parameter."""

import os

from qgis.PyQt.QtCore import QPointF, Qt
from qgis.PyQt.QtGui import QColor, QPainter, QPainterPath, QPen
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..algorithms.base import LIBRARY_FILTER
from ..core.engine.colors import class_colours
from ..core.engine.errors import OreMapError
from ..core.hyperspectral.spectral_library import read_library


class SpectraPlot(QWidget):
    """Reflectance against wavelength for a few spectra (NaN gaps left open)."""

    MARGIN = 36

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(420, 260)
        self.curves = []  # (wavelengths, values, (r, g, b))

    def set_curves(self, curves):
        self.curves = curves
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        m, w, h = self.MARGIN, self.width(), self.height()
        painter.setPen(QPen(QColor("#666666")))
        painter.drawRect(m, 8, w - m - 8, h - m - 8)
        if not self.curves:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Select spectra to plot")
            return
        import numpy as np

        wl = np.concatenate([c[0] for c in self.curves])
        values = np.concatenate([c[1] for c in self.curves])
        x0, x1 = float(np.nanmin(wl)), float(np.nanmax(wl))
        y1 = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
        y0 = min(0.0, float(np.nanmin(values)))
        sx = (w - m - 8) / max(x1 - x0, 1e-9)
        sy = (h - m - 8) / max(y1 - y0, 1e-9)
        painter.drawText(m, h - 10, f"{x0:.0f} nm")
        painter.drawText(w - 70, h - 10, f"{x1:.0f} nm")
        painter.drawText(2, 20, f"{y1:.2f}")
        for wavelengths, vals, rgb in self.curves:
            path, pen_down = QPainterPath(), False
            for x, y in zip(wavelengths, vals):
                if not np.isfinite(y):
                    pen_down = False
                    continue
                point = QPointF(m + (x - x0) * sx, h - m - (y - y0) * sy)
                if pen_down:
                    path.lineTo(point)
                else:
                    path.moveTo(point)
                    pen_down = True
            painter.setPen(QPen(QColor(*rgb), 1.5))
            painter.drawPath(path)


class LibraryViewerDialog(QDialog):
    """Open a spectral library (ENVI .sli, CSV or a spectrum file), filter and plot spectra, copy the selected names."""

    def __init__(self, parent=None, path=None):
        super().__init__(parent)
        self.setWindowTitle("OreMap - spectral library viewer")
        self.library = None
        self.path_label = QLabel("No library open")
        open_button = QPushButton("Open library…")
        open_button.clicked.connect(self.choose_file)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter names, e.g. kaolinite")
        self.filter_edit.textChanged.connect(self.apply_filter)
        self.names = QListWidget()
        self.names.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.names.itemSelectionChanged.connect(self.plot_selection)
        self.plot = SpectraPlot()
        copy_button = QPushButton("Copy selected names")
        copy_button.setToolTip("Paste into the 'Spectra to use' parameter of an OreMap algorithm")
        copy_button.clicked.connect(self.copy_names)
        top = QHBoxLayout()
        top.addWidget(open_button)
        top.addWidget(self.path_label, 1)
        middle = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(self.filter_edit)
        left.addWidget(self.names)
        left.addWidget(copy_button)
        middle.addLayout(left, 1)
        middle.addWidget(self.plot, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(middle)
        if path:
            self.load(path)

    def choose_file(self):
        path, _ = QFileDialog.getOpenFileName(self, "Spectral library", "", LIBRARY_FILTER)
        if path:
            self.load(path)

    def load(self, path):
        try:
            self.library = read_library(path)
        except OreMapError as exc:
            self.path_label.setText(str(exc))
            self.library = None           # the previous library's names would be plotted and copied as this file's
            self.names.clear()
            self.plot.set_curves([])
            return
        lib = self.library
        self.path_label.setText(f"{os.path.basename(path)}: {len(lib.names)} spectra, "
                                f"{lib.wavelengths.min():.0f}-{lib.wavelengths.max():.0f} nm")
        self.names.clear()
        for i, name in enumerate(lib.names):   # each item keeps its row: two spectra may share a name
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.names.addItem(item)
        self.apply_filter(self.filter_edit.text())

    def apply_filter(self, text):
        text = text.strip().lower()
        for i in range(self.names.count()):
            item = self.names.item(i)
            item.setHidden(bool(text) and text not in item.text().lower())

    def selected_names(self):
        return [item.text() for item in self.names.selectedItems()]

    def plot_selection(self):
        names = self.selected_names()[:12]
        if self.library is None or not names:
            self.plot.set_curves([])
            return
        rows = [item.data(Qt.ItemDataRole.UserRole) for item in self.names.selectedItems()][:12]
        self.plot.set_curves([(self.library.wavelengths, self.library.spectra[row], rgb)
                              for row, rgb in zip(rows, class_colours(names))])

    def copy_names(self):
        QApplication.clipboard().setText("; ".join(self.selected_names()))
