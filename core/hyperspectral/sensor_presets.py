"""Band centres and FWHM of common imaging spectrometers, shipped as small data files.

``core/hyperspectral/sensor_data/<name>.csv`` (written by ``scripts/make_sensor_presets.py``; sources in
``core/hyperspectral/sensor_data/SOURCES.md``) holds ``band,wavelength_nm,fwhm_nm,detector,good`` per band in the
sensor's own band order. :func:`band_info` returns a :class:`core.engine.wavelengths.BandInfo` for a sensor
with bad bands and the edge bands of overlapping detectors flagged (:mod:`core.engine.band_order`), so a
library-trained model can be made for a sensor without a scene of it.
"""

import csv
import os
from dataclasses import dataclass

import numpy as np

from ..engine.errors import OreMapError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sensor_data")

#: preset name -> (file stem, label shown to users)
SENSORS = {
    "AVIRIS-Classic": ("aviris_classic", "AVIRIS-Classic (224 bands, 1995 calibration)"),
    "AVIRIS-NG": ("aviris_ng", "AVIRIS-NG (432 bands)"),
    "EMIT": ("emit", "EMIT (285 bands)"),
    "EnMAP": ("enmap", "EnMAP (224 bands)"),
    "PRISMA": ("prisma", "PRISMA (234 bands)"),
    "HyMap": ("hymap", "HyMap (126 bands)"),
}


@dataclass
class Preset:
    name: str
    centers: np.ndarray
    fwhm: np.ndarray
    detectors: list
    good: np.ndarray
    source: str


def names():
    """Preset names, in the order offered to users."""
    return list(SENSORS)


def preset(name):
    """The :class:`Preset` of sensor ``name`` (case-insensitive)."""
    key = {k.lower(): k for k in SENSORS}.get(str(name).strip().lower())
    if key is None:
        raise OreMapError(f"Unknown sensor '{name}'.", "sensor", f"Choose one of {', '.join(SENSORS)}.")
    path = os.path.join(DATA, SENSORS[key][0] + ".csv")
    with open(path, newline="", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    source = " ".join(line[1:].strip() for line in lines if line.startswith("#"))
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    return Preset(key, np.array([float(r["wavelength_nm"]) for r in rows]),
                  np.array([float(r["fwhm_nm"]) for r in rows]), [r["detector"] for r in rows],
                  np.array([r["good"] == "1" for r in rows]), source)


def band_info(name, feedback=None):
    """:class:`BandInfo` of sensor ``name``: bad bands and overlap edge bands flagged, each note logged."""
    from ..engine.band_order import flag_overlaps
    from ..engine.wavelengths import BandInfo

    p = preset(name)
    detectors = p.detectors if len(set(p.detectors)) > 1 else None
    info, notes = flag_overlaps(BandInfo(centers=p.centers, fwhm=p.fwhm, bad=~p.good), detectors)
    if feedback is not None:
        for note in notes:
            feedback.info(f"Sensor preset {p.name}: {note}")
    info.origin = f"the {p.name} sensor preset"
    return info
