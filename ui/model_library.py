"""The model library dock: bundled models and your own, their cards, and what to do with them.

Lists ``models/`` and the model folder of the settings (searched recursively for ``.onnx``),
shows the card of the selected model (task, classes and colours, expected bands, training,
metrics, versions), and opens the Processing algorithm of the model's task with the model
chosen (``core/engine/model_library.py``, ``TASK_ALGORITHMS``), shows the full card, reveals the
file, adds model files to the folder, or removes one of yours.
"""

import os
import shutil
import subprocess
import sys

from qgis.core import QgsApplication
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QFile, Qt, QUrl
from qgis.PyQt.QtGui import QColor, QDesktopServices, QIcon
from qgis.PyQt.QtWidgets import (
    QAction,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.engine import model_library
from ..core.engine.errors import OreMapError
from ..processing_provider import settings

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
PATH_ROLE = Qt.ItemDataRole.UserRole + 1


def _theme_icon(name):
    return QgsApplication.getThemeIcon(name)


def reveal_in_file_manager(path):
    """Show ``path`` selected in the system's file manager (its folder opened, on Linux)."""
    if sys.platform.startswith("win"):
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])  # noqa: S603,S607
    elif sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])  # noqa: S603,S607
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))


def _home_trash():
    return os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "Trash")


def _top_dir(path):
    """The mount point of the file system that holds ``path`` (the top directory of the trash specification)."""
    path = os.path.abspath(path)
    device = os.stat(path).st_dev
    while True:
        parent = os.path.dirname(path)
        if parent == path or os.stat(parent).st_dev != device:
            return path
        path = parent


def _trash_for(path):
    """``(trash folder, the Path= of its info file)`` for ``path`` (freedesktop.org Trash specification 1.0): the home
    trash where it is on the file's device, else the device's own ``$topdir/.Trash-$uid`` (a USB disk, a network
    share), made when missing; None where neither can be made (a read-only device)."""
    path = os.path.abspath(path)
    home = _home_trash()
    try:
        for sub in ("files", "info"):
            os.makedirs(os.path.join(home, sub), mode=0o700, exist_ok=True)
        if os.stat(path).st_dev == os.stat(home).st_dev:
            return home, path
    except OSError:
        pass
    top = _top_dir(os.path.dirname(path))
    trash = os.path.join(top, f".Trash-{os.getuid()}")
    try:
        for sub in ("files", "info"):
            os.makedirs(os.path.join(trash, sub), mode=0o700, exist_ok=True)
    except OSError:
        return None
    return trash, os.path.relpath(path, top)


def _freedesktop_trash(path):
    """Move ``path`` into its trash (:func:`_trash_for`); False where it has none. Qt's own moveToTrash was seen to
    make a trash in the working folder (``./files``, ``./info``) inside QGIS, so Linux uses this. A move that fails
    (a read-only folder) takes back its info file and raises: a phantom entry stayed in the trash."""
    import datetime
    from urllib.parse import quote

    found = _trash_for(path)
    if found is None:
        return False
    trash, recorded = found
    base, ext = os.path.splitext(os.path.basename(path))
    name, n = base + ext, 1
    while True:  # the info file is created first and exclusively, as the specification asks
        try:
            fd = os.open(os.path.join(trash, "info", name + ".trashinfo"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            n += 1
            name = f"{base}.{n}{ext}"
    info = os.path.join(trash, "info", name + ".trashinfo")
    with os.fdopen(fd, "w") as f:
        f.write("[Trash Info]\nPath={}\nDeletionDate={}\n".format(
            quote(recorded), datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")))
    try:
        os.replace(path, os.path.join(trash, "files", name))
    except OSError:
        os.remove(info)
        raise
    return True


def trash_available(path):
    """Whether :func:`move_to_trash` can move ``path`` to a trash (Linux: its home or device trash; elsewhere Qt's,
    which Windows and macOS have)."""
    if sys.platform.startswith("linux"):
        try:
            return _trash_for(path) is not None
        except OSError:
            return False
    return hasattr(QFile, "moveToTrash")


def move_to_trash(path):
    """Move ``path`` to the trash; raises OSError where there is none (:func:`trash_available`), so that nothing is
    deleted for good without being asked (:func:`delete_file`)."""
    if sys.platform.startswith("linux"):
        if _freedesktop_trash(path):
            return
    elif hasattr(QFile, "moveToTrash") and QFile.moveToTrash(path)[0]:
        return
    raise OSError(f"no trash can take {path}")


def delete_file(path):
    """Delete ``path`` for good (after the user agreed: :meth:`ModelLibraryDock.confirm`)."""
    os.remove(path)


def remover(files):
    """``(remove, what the question adds)`` for ``files``: a move to the trash, or, where no trash can take one of
    them (another disk without one), deletion for good, which the question then says."""
    if all(trash_available(p) for p in files):
        return move_to_trash, ""
    return delete_file, " No trash can take them there (another disk without one): they will be deleted for good."


class CardDialog(QDialog):
    """The full card of a model: the summary from its metadata and its Markdown card, if any."""

    def __init__(self, entry, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Model card - {entry.title}")
        tabs = QTabWidget()
        summary = QTextBrowser()
        summary.setOpenLinks(False)
        summary.anchorClicked.connect(_open_link)
        summary.setHtml(model_library.card_html(entry))
        tabs.addTab(summary, "Summary")
        if entry.card_file:
            card = QTextBrowser()
            with open(entry.card_file, encoding="utf-8", errors="replace") as handle:
                card.setMarkdown(handle.read())
            tabs.addTab(card, "Model card")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)
        self.resize(640, 600)


def _open_link(url):
    """Links of a card (file URIs of the model card and the training report) open with the system."""
    QDesktopServices.openUrl(url)


class ModelLibraryDock(QgsDockWidget):
    """Dock listing OreMap models; see the module docstring."""

    OBJECT_NAME = "OreMapModelLibrary"

    def __init__(self, parent=None):
        super().__init__("OreMap models", parent)
        self.setObjectName(self.OBJECT_NAME)
        self.entries = {}
        self.dialogs = []  # algorithm dialogs opened from here (kept alive while shown)
        self.folder = None
        icon = QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))

        self.toolbar = QToolBar()
        self.toolbar.setIconSize(self.toolbar.iconSize() * 0.75)
        self.open_action = self._action(_theme_icon("/processingAlgorithm.svg"), "Open in algorithm",
                                        "Open the Processing algorithm of this model's task with the model chosen",
                                        self.open_algorithm)
        self.card_action = self._action(_theme_icon("/mActionPropertiesWidget.svg"), "Show card",
                                        "Show the model card", self.show_card)
        self.reveal_action = self._action(_theme_icon("/mActionFileOpen.svg"), "Reveal file",
                                          "Show the model file in the file manager", self.reveal_file)
        self.remove_action = self._action(_theme_icon("/mActionDeleteSelected.svg"), "Remove",
                                          "Remove this model (yours only) with its card and report",
                                          self.remove_model)
        self.toolbar.addSeparator()
        self.add_action = self._action(_theme_icon("/mActionAdd.svg"), "Add model files…",
                                       "Copy .onnx model files into your model folder", self.add_models)
        self.refresh_action = self._action(_theme_icon("/mActionRefresh.svg"), "Refresh",
                                           "List the models again", self.refresh)
        self.settings_action = self._action(icon, "Settings…", "OreMap settings (model folder, device, ...)",
                                            self.show_settings)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Task"])
        self.tree.setRootIsDecorated(True)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.currentItemChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda item, column: self.open_algorithm())
        self.card = QTextBrowser()
        self.card.setOpenLinks(False)
        self.card.anchorClicked.connect(_open_link)
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.splitter = splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.card)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.toolbar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.folder_label)
        self.setWidget(body)
        self.refresh()

    def _action(self, icon, text, tip, slot):
        action = QAction(icon, text, self)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        self.toolbar.addAction(action)
        return action

    # -- listing ------------------------------------------------------------------------------
    def refresh(self):
        """List the bundled models and those in the model folder; keep the selection."""
        current = self.selected_entry()
        self.folder = settings.model_folder()
        self.tree.clear()
        self.entries = {}
        groups = {model_library.BUNDLED: QTreeWidgetItem(self.tree, ["Bundled with OreMap", ""]),
                  model_library.USER: QTreeWidgetItem(self.tree, ["Your models", ""])}
        groups[model_library.USER].setToolTip(0, self.folder)
        for entry in model_library.list_models(self.folder):
            item = QTreeWidgetItem(groups[entry.source], [entry.title, entry.task_title])
            item.setData(0, PATH_ROLE, entry.path)
            item.setToolTip(0, entry.path)
            if entry.info is None:
                item.setForeground(0, QColor("#b00000"))
                item.setToolTip(1, entry.error)
            elif entry.algorithm is None:
                item.setToolTip(1, "No OreMap algorithm applies this task in this version.")
            self.entries[entry.path] = entry
        for group in groups.values():
            group.setExpanded(True)
            group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            if not group.childCount():
                empty = QTreeWidgetItem(group, ["(none)", ""])
                empty.setFlags(Qt.ItemFlag.NoItemFlags)
        state = ("" if os.path.isdir(self.folder) else
                 " (a file, not a folder: choose another in Settings…)" if os.path.exists(self.folder) else
                 " (not created yet)")
        self.folder_label.setText(f"Your model folder: {self.folder}{state}")
        self.select(current.path if current else None)

    def items(self):
        """The model items, in list order."""
        found = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            found += [group.child(j) for j in range(group.childCount()) if group.child(j).data(0, PATH_ROLE)]
        return found

    def select(self, path=None):
        """Select the model at ``path`` (the first model when ``None`` or not listed)."""
        items = self.items()

        def same(a, b):  # one file whatever the separators and letter case (Windows)
            return bool(a and b) and os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))

        chosen = next((it for it in items if same(it.data(0, PATH_ROLE), path)), items[0] if items else None)
        if chosen is not None:
            self.tree.setCurrentItem(chosen)
        else:
            self._selection_changed(None, None)

    def selected_entry(self):
        item = self.tree.currentItem() if hasattr(self, "tree") else None
        path = item.data(0, PATH_ROLE) if item is not None else None
        return self.entries.get(path)

    def _selection_changed(self, current, previous):
        entry = self.selected_entry()
        self.card.setHtml(model_library.card_html(entry) if entry else
                          "<p>Select a model to see its card.</p>")
        runnable = entry is not None and self.algorithm_available(entry)
        self.open_action.setEnabled(runnable)
        if entry is not None and entry.algorithm is not None and not runnable:
            self.open_action.setToolTip(f"{entry.algorithm.algorithm} is not available in this OreMap.")
        else:
            self.open_action.setToolTip("Open the Processing algorithm of this model's task with the model chosen")
        for action in (self.card_action, self.reveal_action):
            action.setEnabled(entry is not None)
        self.remove_action.setEnabled(entry is not None and entry.source == model_library.USER)

    @staticmethod
    def algorithm_available(entry):
        """True when the model's task has an algorithm and it is registered."""
        spec = entry.algorithm
        return spec is not None and QgsApplication.processingRegistry().algorithmById(spec.algorithm) is not None

    def _context_menu(self, position):
        if self.selected_entry() is None:
            return
        menu = QMenu(self)
        for action in (self.open_action, self.card_action, self.reveal_action, self.remove_action):
            menu.addAction(action)
        menu.exec(self.tree.viewport().mapToGlobal(position))

    # -- actions -------------------------------------------------------------------------------
    def open_algorithm(self):
        """Open the algorithm dialog of the selected model's task with the model filled in; returns it."""
        entry = self.selected_entry()
        if entry is None or not self.algorithm_available(entry):
            return None
        import processing

        algorithm_id, parameters = model_library.algorithm_parameters(entry)
        dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
        if dialog is None:
            return None
        self.dialogs = [d for d in self.dialogs if _alive(d)] + [dialog]
        dialog.show()
        return dialog

    def show_card(self):
        entry = self.selected_entry()
        if entry is None:
            return None
        dialog = CardDialog(entry, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def reveal_file(self):
        entry = self.selected_entry()
        if entry is not None:
            reveal_in_file_manager(entry.path)

    def confirm(self, title, text):
        """Ask yes/no (replaced in tests)."""
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        return QMessageBox.question(self, title, text, yes | no, no) == yes

    def remove_model(self):
        """Remove the selected user model, its card and report (to the trash where there is one)."""
        entry = self.selected_entry()
        if entry is None or entry.source != model_library.USER:
            return []
        files = [entry.path] + entry.sidecars()
        names = ", ".join(os.path.basename(p) for p in files)
        remove, said = remover(files)
        if not self.confirm("Remove model", f"Remove {names} from {os.path.dirname(entry.path)}?{said}"):
            return []
        try:
            removed = model_library.remove_model(entry, remove=remove)
        except (OSError, OreMapError) as exc:
            QMessageBox.warning(self, "Remove model", f"Could not remove the model: {exc}")
            removed = []
        self.refresh()
        return removed

    def add_models(self, paths=None):
        """Copy model files (and their .md card and _report.html) into the model folder; returns the copies.

        A model of the same file name already in the folder is replaced only when the user agrees, and then
        with its card and report (to the trash where there is one): a report left behind would be linked from
        the new model's card."""
        if not paths:
            paths, _ = QFileDialog.getOpenFileNames(self, "Add OreMap models", "", "ONNX models (*.onnx)")
        if not paths:
            return []
        self.folder = settings.model_folder()   # changed in Settings > Options since the panel last listed it
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            self._cannot_write(exc)
            return []
        copied = []
        for path in paths:
            source = model_library.ModelEntry(os.path.abspath(path), model_library.USER)  # sidecars only
            target = os.path.join(self.folder, os.path.basename(source.path))
            if os.path.exists(target) and os.path.samefile(source.path, target):   # already the folder's own
                copied.append(target)
                continue
            # every file the copy would write that is there already (a card or report of the user's own without its
            # model counts: it was overwritten without a word)
            parts = [os.path.join(self.folder, os.path.basename(p)) for p in [source.path] + source.sidecars()]
            existing = model_library.ModelEntry(target, model_library.USER) if os.path.exists(target) else None
            there = [existing.path] + existing.sidecars() if existing is not None else []
            there += [p for p in parts if os.path.exists(p) and p not in there]
            if there:
                names = ", ".join(os.path.basename(p) for p in there)
                remove, said = remover(there)
                if not self.confirm("Replace model", f"The model folder already holds {names}. Replace "
                                                     f"{'them' if len(there) > 1 else 'it'} with the files of "
                                                     f"{source.path}?{said}"):
                    continue
                try:
                    if existing is not None:   # the model with its card and report, and forgotten by the library
                        model_library.remove_model(existing, remove=remove)
                    for old_file in there:
                        if os.path.exists(old_file):
                            remove(old_file)
                except OSError as exc:
                    QMessageBox.warning(self, "Add model", f"Could not replace {target}: {exc}")
                    continue
            written = []
            try:
                for part in [source.path] + source.sidecars():
                    written.append(os.path.join(self.folder, os.path.basename(part)))
                    shutil.copy2(part, written[-1])
            except OSError as exc:   # the folder is read-only or full: the next files would fail the same way
                for partial in written:   # no half-copied model left in the list
                    if os.path.isfile(partial):
                        try:
                            os.remove(partial)
                        except OSError:
                            pass
                self._cannot_write(exc)
                break
            copied.append(target)
        self.refresh()
        if copied:
            self.select(copied[-1])
        return copied

    def _cannot_write(self, exc):
        """Say that the model folder cannot take the files (an unmapped network drive, a read-only or full disk, a
        path under a file), and where to choose another: an uncaught error here showed QGIS's Python error dialog."""
        QMessageBox.warning(self, "Add model", f"Could not copy the model into your model folder {self.folder}: "
                                               f"{exc}\n\nChoose another model folder in the OreMap settings "
                                               "(Settings… in this panel).")

    def show_settings(self):
        from .settings_dialog import SettingsDialog

        if SettingsDialog(self).exec():
            self.refresh()


def _alive(widget):
    from qgis.PyQt import sip

    return not sip.isdeleted(widget) and widget.isVisible()
