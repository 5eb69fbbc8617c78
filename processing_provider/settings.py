"""OreMap's settings, in one place: memory budget, threads, compute device, model folder.

Each setting is a Processing setting (QgsSettings key ``Processing/Configuration/<NAME>``),
registered by the provider so that *Processing > Options > Providers > OreMap* shows
them, and edited as well by OreMap's own settings page (*Settings > Options > OreMap*,
or *Plugins > OreMap > Settings*), which offers CUDA only where it is available.
Read them with :func:`value` and write them with :func:`set_value`: both go
through ProcessingConfig when it is loaded (keeping its cache right), else straight to
QgsSettings under the same key.
"""

import os
from dataclasses import dataclass

from qgis.core import QgsApplication, QgsSettings

from ..core.engine.compute import DEVICE_SETTING, THREADS_SETTING, normalise_device
from ..core.engine.raster import DEFAULT_MEMORY_MB, MEMORY_SETTING, memory_budget_mb

MODEL_FOLDER_SETTING = "OREMAP_MODEL_FOLDER"
GROUP = "OreMap"
PREFIX = "Processing/Configuration/"


@dataclass(frozen=True)
class SettingSpec:
    name: str
    label: str
    default: object
    kind: str  # "int", "folder" or "device"
    hidden: bool = False  # not shown in Processing's options page (edited in OreMap's)


SETTINGS = [
    SettingSpec(MEMORY_SETTING, "Memory budget of one algorithm run (MB)", DEFAULT_MEMORY_MB, "int"),
    SettingSpec(THREADS_SETTING, "Threads for neural networks (onnxruntime, torch; 0 = all cores)", 0, "int"),
    SettingSpec(MODEL_FOLDER_SETTING, "Folder of your OreMap models (empty = in the QGIS profile)", "", "folder"),
    # The device list depends on the machine (CUDA only where available): edited in OreMap's page only.
    SettingSpec(DEVICE_SETTING, "Compute device (cpu or cuda)", "cpu", "device", hidden=True),
]
SPECS = {s.name: s for s in SETTINGS}


def _config():
    """ProcessingConfig when the Processing plugin is loaded and OreMap's settings are registered."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return None
    return ProcessingConfig if all(s.name in ProcessingConfig.settings for s in SETTINGS) else None


def register(icon=None):
    """Add the settings to ProcessingConfig (no-op without the Processing plugin)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:
        return
    if icon is not None:
        ProcessingConfig.settingIcons[GROUP] = icon
    kinds = {"int": Setting.INT, "folder": Setting.FOLDER, "device": Setting.STRING}
    for spec in SETTINGS:
        setting = Setting(GROUP, spec.name, spec.label, spec.default, hidden=spec.hidden, valuetype=kinds[spec.kind])
        if spec.kind == "folder":
            setting.validator = lambda v: None  # an absent folder is created when first used
        ProcessingConfig.addSetting(setting)
        setting.read()


def unregister():
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return
    for spec in SETTINGS:
        ProcessingConfig.settings.pop(spec.name, None)


def is_stored(name):
    """Whether setting ``name`` was ever saved (by the user, in Processing's options or OreMap's page)."""
    return QgsSettings().contains(PREFIX + name)


def raw_value(name):
    """The value of setting ``name``: the stored one; else, for the memory, threads and device settings, the
    environment variable of the same name (``OREMAP_MEMORY_MB`` ...; scripts and ``qgis_process``); else the
    default. A value saved in QGIS wins over the environment, the environment over an unset setting."""
    spec = SPECS[name]
    env = os.environ.get(name, "").strip()
    if env and spec.kind != "folder" and not is_stored(name):
        return env
    config = _config()
    value = config.getSetting(name) if config is not None else QgsSettings().value(PREFIX + name, None)
    return spec.default if value is None or value == "" and spec.kind != "folder" else value


def set_value(name, value):
    """Store setting ``name`` (checked and normalised first)."""
    spec = SPECS[name]
    if spec.kind == "int":
        value = int(value)
        if value < 0 or (name == MEMORY_SETTING and value < 16):
            raise ValueError(f"{spec.label}: {value} is too small.")
    elif spec.kind == "device":
        value = normalise_device(value)
    else:
        value = str(value or "").strip()
    config = _config()
    if config is not None:
        config.setSettingValue(name, value)
    else:
        QgsSettings().setValue(PREFIX + name, value)


def memory_mb():
    """Memory budget in MB (``$OREMAP_MEMORY_MB`` when the setting is unreadable)."""
    try:
        return memory_budget_mb(float(raw_value(MEMORY_SETTING)))
    except (TypeError, ValueError):
        return memory_budget_mb(None)


def threads():
    """Threads for onnxruntime and torch; 0 = all cores."""
    try:
        return max(0, int(raw_value(THREADS_SETTING)))
    except (TypeError, ValueError):
        return 0


def device():
    """The chosen compute device, ``"cpu"`` or ``"cuda"`` (whether CUDA is available is checked per run)."""
    return normalise_device(raw_value(DEVICE_SETTING))


def default_model_folder():
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "oremap", "models")


def model_folder():
    """The folder of the user's models: the setting, or ``<QGIS profile>/oremap/models``."""
    folder = str(raw_value(MODEL_FOLDER_SETTING) or "").strip()
    return os.path.abspath(os.path.expanduser(folder)) if folder else default_model_folder()
