"""Training sets for spectral classifiers: from spectral libraries or from labelled image pixels.

Library spectra get a class from their name (the mineral name is the first word of a
USGS name such as ``"Kaolinite CM9 BECKb AREF"``) or from a table, and are resampled
by wavelength to the target sensor's bands. Image training pixels come from points
or polygons over a raster (:mod:`core.engine.sampling`). Every sample carries a group id
(the source spectrum, or the feature it came from) so that validation can be grouped.
"""

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..engine.class_order import sorted_class_names
from ..engine.errors import OreMapError
from ..engine.files import read_table
from ..engine.feedback import ensure
from ..engine.names import name_key, one_spelling
from .spectral_library import read_library
from ..engine.wavelengths import BandInfo

# Atmospheric water-vapour absorption windows (nm) where airborne and satellite reflectance is unusable.
WATER_WINDOWS = ((1330.0, 1460.0), (1760.0, 1970.0))


@dataclass
class TrainingSet:
    """Samples ``X`` (n, n_bands) with class indexes ``y`` into ``class_names`` and ``groups``.

    ``source`` says where the samples come from: ``"library"`` (spectra resampled to a sensor's bands),
    ``"image"`` (pixels of one raster, whose bands are its good bands) or ``"outliers"``; a model records it.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    class_names: list
    band_info: BandInfo = None
    sample_names: list = field(default_factory=list)
    source: str = ""
    features: np.ndarray = None
    """Image sets: the index, among the features given to :func:`image_training_set`, of each sample's feature
    (``groups`` number the features in another order, see there); None otherwise."""

    def counts(self):
        return {name: int((self.y == i).sum()) for i, name in enumerate(self.class_names)}


def class_from_name(name, rule="first_word"):
    """Class of a library spectrum: its first word (``'Kaolinite CM9 BECKb'`` -> ``'Kaolinite'``) or
    the whole name."""
    name = " ".join(str(name).split())
    if rule == "whole_name":
        return name
    if rule != "first_word":
        raise OreMapError(f"Unknown class rule '{rule}'.", "class_rule")
    word = name.split(" ")[0] if name else ""
    return re.sub(r"[,;:.]+$", "", word)


_RECORD_SUFFIX = re.compile(r"^[A-Z]{4}$")  # AREF, RREF, RTGC...: the kind of record
_INSTRUMENT = re.compile(r"^(BECK|ASD|NIC|AVIRIS|CRISM)[A-Za-z0-9]*$")  # spectrometer + quality code


def sample_id(name):
    """The physical sample a library spectrum was measured on.

    USGS names end with the spectrometer and the record kind (``"Kaolinite CM9 BECKb AREF"``,
    ``"Kaolinite CM9 ASDNGb AREF"``): both are measurements of sample ``"Kaolinite CM9"``, and
    must stay on the same side of a validation split. So must the splits and grain sizes of one
    sample, which follow its code (``"Quartz HS32.1B"`` and ``"HS32.2B"``, ``"Hematite GDS69.a"`` to
    ``".g"``, ``"Goethite WS222 Coarse Gr."`` and ``"Medium Gr."``, ``"Pyrophyllite PYS1A <5um"``):
    the sample is the name up to and including its code (the first word after the mineral's name
    that holds a digit), the code cut at its first full stop. Other names are their own sample.
    """
    words = " ".join(str(name).split()).split(" ")
    if len(words) >= 3 and _RECORD_SUFFIX.match(words[-1]) and _INSTRUMENT.match(words[-2]):
        words = words[:-2]
        code = next((i for i, w in enumerate(words[1:], 1) if re.search(r"\d", w)), None)
        if code is not None:
            words = words[:code] + [words[code].split(".")[0]]
    return " ".join(words)


#: Second-column words of a class table's header row.
_CLASS_HEADERS = {"class", "classes", "label", "labels", "class label", "group", "mineral", "minerals", "category",
                  "class name", "klasse", "classe", "clase", "mineral class"}
#: First-column words of a class table's header row.
_NAME_HEADERS = {"name", "names", "spectrum", "spectra", "spectrum name", "spectrum id", "sample", "sample name",
                 "sample id", "id"}


def read_class_table(path):
    """``{spectrum name: class}`` from a CSV whose first two columns are name and class."""
    if not os.path.exists(path):
        raise OreMapError(f"Class table '{path}' does not exist.", "class_table")
    table = {}

    def word(cell):
        return " ".join(cell.replace("_", " ").replace("-", " ").lower().split())

    first = True
    for row in read_table(path):  # UTF-8 or Windows' code page; ';' as Excel writes it in Europe
        if len(row) < 2 or not row[0].strip() or row[0].lstrip().startswith("#") or \
                row[0].strip().lower().startswith("sep="):
            continue
        if first and (word(row[1]) in _CLASS_HEADERS or word(row[0]) in _NAME_HEADERS):
            first = False
            continue   # a header row (only the first: 'Spectrum 1', OreMap's name of an unnamed spectrum, is a row)
        first = False
        table[" ".join(row[0].split())] = row[1].strip()
    if not table:
        raise OreMapError(f"Class table '{path}' has no 'name,class' rows.", "class_table")
    return table


def _begins_with(name, key):
    """True when ``name`` is ``key`` or begins with it followed by a separator: a space, ``_``, ``-``, ``.`` or, after
    a key not ending in a digit, a digit (field names such as ``kaol_00001``, ``kaol-3``, ``kaol00001``)."""
    if name == key:
        return True
    if not key or not name.startswith(key):
        return False
    after = name[len(key)]
    return after in " _-." or (after.isdigit() and not key[-1].isdigit())


class ClassTable:
    """A class table's ``{name: class}`` matched to spectrum names: an entry takes the spectra its name is, or
    begins followed by a separator (:func:`_begins_with`: ``kaol`` takes ``kaol_00001``): ``Muscovite GDS107`` takes
    every measurement of that sample (``Muscovite GDS107 BECKa AREF``...). The longest matching entry wins;
    :meth:`unused` lists the entries that took no spectrum."""

    def __init__(self, table):
        self.table = dict(table)
        self.keys = {key: name_key(key) for key in self.table}  # as :meth:`label` compares them
        self.used = set()
        self.matched = set()  # entries that matched a spectrum, which a longer entry may have taken

    def label(self, name):
        """The class of spectrum ``name``, or None. Names are compared by :func:`core.engine.names.name_key`
        (case, runs of spaces and the Unicode form ignored): a row 'Hämatit' typed on Windows takes a spectrum
        'Hämatit 2' whose accent macOS wrote as a combining mark. Rows that are one name in two spellings are
        used together."""
        spectrum = name_key(name)
        hits = [key for key in self.table if _begins_with(spectrum, self.keys[key])]
        if not hits:
            return None
        key = max(hits, key=lambda k: len(self.keys[k]))
        self.used.update(k for k in hits if self.keys[k] == self.keys[key])
        self.matched.update(hits)
        return self.table[key]

    def unused(self):
        """Entries that matched no spectrum at all."""
        return [key for key in self.table if key not in self.matched]

    def shadowed(self):
        """Entries whose every spectrum a longer entry took."""
        return [key for key in self.table if key in self.matched and key not in self.used]


def target_bands(band_info, exclude_water=True):
    """The target sensor's usable bands: good bands, optionally without the water-vapour windows."""
    keep = ~np.asarray(band_info.bad, dtype=bool)
    if exclude_water:
        for lo, hi in WATER_WINDOWS:
            keep &= ~((band_info.centers >= lo) & (band_info.centers <= hi))
    keep = np.flatnonzero(keep)
    keep = keep[np.argsort(band_info.centers[keep], kind="stable")]  # by wavelength, whatever the file order
    fwhm = None if band_info.fwhm is None else band_info.fwhm[keep]
    return BandInfo(centers=band_info.centers[keep], fwhm=fwhm, bad=np.zeros(keep.size, bool))


def _fill_small_gaps(values, wavelengths, max_fraction=0.05):
    """Fill NaN bands of a spectrum by interpolation when they are few (e.g. a missing last channel)."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    if bad.mean() > max_fraction or bad.all():
        return None
    out = values.copy()
    out[bad] = np.interp(wavelengths[bad], wavelengths[~bad], values[~bad])
    return out


def canonical_order(y, names, X):
    """Order of library spectra that does not depend on the order of the libraries or of the spectra in them:
    by class index ``y``, physical sample (:func:`sample_id`), name, then the values (``X``'s row bytes), so that
    only spectra identical in all four tie. The validation split and the augmentation draw samples in the order of
    the training set: in the files' order, the libraries [a, b] and [b, a] held out other spectra."""
    X = np.ascontiguousarray(X)
    keys = [(int(c), sample_id(n), str(n), X[i].tobytes()) for i, (c, n) in enumerate(zip(y, names))]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


#: More classes than this, none named: :func:`library_training_set` warns that the whole library is trained.
MANY_CLASSES = 50


def library_training_set(paths, band_info, class_rule="first_word", class_table=None, classes=None,
                         exclude_water=True, min_spectra=1, feedback=None):
    """Training set from spectral library files resampled to a target sensor.

    Parameters
    ----------
    paths : list of str
        ENVI ``.sli`` or CSV libraries.
    band_info : BandInfo
        Target sensor (band centres, FWHM, bad bands); see :func:`target_bands`.
    class_rule : {"first_word", "whole_name"}
    class_table : str, optional
        CSV ``name,class``; spectra it names get that class (others follow ``class_rule``).
    classes : list of str, optional
        Keep only these classes (case, spaces and Unicode form ignored: :func:`core.engine.names.name_key`).
    min_spectra : int
        Classes with fewer spectra are dropped (logged).

    Returns
    -------
    TrainingSet
        ``groups`` numbers the physical samples (:func:`sample_id`): all measurements of one sample,
        and the augmented copies of each, stay on one side of a validation split. The spectra are in
        :func:`canonical_order` (since 0.2.17), and the groups numbered in it: the same spectra give the same
        training set, held-out samples and model whatever the order of ``paths`` and of the spectra in them.
    """
    feedback = ensure(feedback)
    if not paths:
        raise OreMapError("No spectral library was given.", "libraries", "Choose one or more library files.")
    libraries = [read_library(path, feedback=feedback) for path in paths]
    # bands inside every library's wavelength range (no extrapolation)
    lo = max(lib.wavelengths.min() for lib in libraries)
    hi = min(lib.wavelengths.max() for lib in libraries)
    if lo >= hi:
        raise OreMapError("The libraries cover no common wavelength range: " + ", ".join(
            f"{os.path.basename(str(p))} {lib.wavelengths.min():.0f}-{lib.wavelengths.max():.0f} nm"
            for p, lib in zip(paths, libraries)) + ".", "libraries",
            "Use libraries whose wavelength ranges overlap (leave out the library of another range, or train a "
            "model on each).")
    target = target_bands(band_info, exclude_water)
    inside = (target.centers >= lo) & (target.centers <= hi)
    if not inside.all():
        narrow = [os.path.basename(str(p)) for p, lib in zip(paths, libraries)
                  if (lib.wavelengths.min() == lo and lo > target.centers.min())
                  or (lib.wavelengths.max() == hi and hi < target.centers.max())]
        feedback.warning(f"Training is limited to {lo:.0f}-{hi:.0f} nm, {int(inside.sum())} of the target's "
                         f"{target.n_bands} bands: the range every library covers" + (
                             f" ({', '.join(narrow)} cover{'s' if len(narrow) == 1 else ''} the least)" if narrow
                             else "") + ". Leave out a library of a narrower range to train on every band.")
    target = BandInfo(centers=target.centers[inside], fwhm=None if target.fwhm is None else target.fwhm[inside],
                      bad=None)
    if target.n_bands < 5:
        raise OreMapError(f"The target sensor has fewer than 5 usable bands within {lo:.0f}-{hi:.0f} nm, the range "
                          "every library covers.", "wavelengths",
                          "Check the reference raster or wavelength list.")
    table = ClassTable(read_class_table(class_table) if class_table else {})
    wanted = {name_key(c): c for c in classes} if classes else None
    X, labels, names, dropped = [], [], [], 0
    for lib in libraries:
        resampled = lib.resample(target).spectra
        for name, spectrum in zip(lib.names, resampled):
            label = table.label(name) or class_from_name(name, class_rule)
            if wanted is not None and name_key(label) not in wanted:
                continue
            filled = _fill_small_gaps(spectrum, target.centers)
            if filled is None:
                dropped += 1
                continue
            X.append(filled)
            labels.append(label)
            names.append(name)
    if dropped:
        feedback.info(f"{dropped} spectra do not cover the target bands and were left out.")
    unused = table.unused()
    if unused:
        feedback.warning(f"{len(unused)} class-table row(s) name no spectrum of the libraries: "
                         + ", ".join(unused[:10]) + (" ..." if len(unused) > 10 else "")
                         + ". A row takes the spectra whose names are, or begin with, its name.")
    shadowed = table.shadowed()
    if shadowed:
        feedback.warning(f"{len(shadowed)} class-table row(s) took no spectrum, since longer rows took all theirs: "
                         + ", ".join(shadowed[:10]) + (" ..." if len(shadowed) > 10 else "") + ".")
    # 'Kaolinit' and 'kaolinit' are one class (a tie between spellings broken by the spelling, not the files' order)
    labels = one_spelling(labels, "The library", "Fix the spelling in the library or class table to silence this.",
                          ensure(feedback).warning)
    if wanted:
        found = {name_key(label) for label in labels}
        missing = sorted(name for key, name in wanted.items() if key not in found)
        if missing:
            raise OreMapError(f"No usable spectrum for the classes {', '.join(missing)}.", "classes",
                              "Check the class names against the library (first word of each spectrum name"
                              + (", or the class table's classes)." if table.table else ")."))
    labels = np.array(labels, dtype=object)
    class_names = sorted_class_names(labels)
    small = [c for c in class_names if (labels == c).sum() < min_spectra]
    if small:
        feedback.info(f"Classes with fewer than {min_spectra} spectra left out: {', '.join(small)}.")
        class_names = [c for c in class_names if c not in small]
    if len(class_names) < 2:
        raise OreMapError("Training needs at least 2 classes.", "libraries",
                          "Add spectra of more minerals, or check the class rule.")
    keep = np.isin(labels, class_names)
    index = {c: i for i, c in enumerate(class_names)}
    X = np.asarray(X, dtype=np.float32)[keep]
    y = np.array([index[c] for c in labels[keep]], dtype=np.int64)
    names = [n for n, k in zip(names, keep) if k]
    order = canonical_order(y, names, X)   # the same spectra, whatever the order of the files: the same split
    X, y, names = X[order], y[order], [names[i] for i in order]
    # a spectrum listed twice (a library given twice, or one file inside another) is one spectrum: trained on twice it
    # weighed double in the loss, the class balance and the augmentation; exact copies are side by side in this order
    copy = np.zeros(y.size, dtype=bool)
    copy[1:] = [(y[i] == y[i - 1] and names[i] == names[i - 1] and np.array_equal(X[i], X[i - 1], equal_nan=True))
                for i in range(1, y.size)]
    if copy.any():
        feedback.warning(f"{int(copy.sum())} spectra repeat another exactly (same name, class and values: a library "
                         "given twice, or a spectrum listed twice); each is trained on once.")
        X, y, names = X[~copy], y[~copy], [n for n, c in zip(names, copy) if not c]
    samples = {}
    groups = np.array([samples.setdefault(sample_id(n), len(samples)) for n in names], dtype=np.int64)
    feedback.info(f"{y.size} spectra of {len(samples)} physical samples (measurements of one sample by "
                  "several spectrometers are validated together).")
    if classes is None and len(class_names) > MANY_CLASSES:
        feedback.warning(f"{len(class_names)} classes: every class of the libraries is trained, as no classes were "
                         f"named (e.g. {', '.join(class_names[:3])}). A whole library such as USGS splib07 also "
                         "holds soils, vegetation, liquids and man-made materials, and a model of this many classes "
                         "trains for a long time. To map minerals, name the classes to train (e.g. 'Kaolinite; "
                         "Alunite; Calcite').")
    return TrainingSet(X=X, y=y, groups=groups, class_names=class_names, band_info=target, sample_names=names,
                       source="library")


#: Deepest absorption (1 - continuum-removed reflectance at the model's bands) an outlier spectrum must reach to
#: be used for outlier exposure: flatter spectra look like a featureless background once the continuum is removed,
#: whatever they are (the USGS quartz and feldspar spectra have a median of 0.064).
OUTLIER_MIN_DEPTH = 0.10


def outlier_set(paths, data, materials=None, min_depth=OUTLIER_MIN_DEPTH, feedback=None):
    """Library spectra of materials outside the classes of ``data`` (a :class:`TrainingSet` with band centres),
    for outlier exposure (:func:`core.hyperspectral.spectral_cnn.train_classifier`'s ``outliers``).

    Each spectrum's material is the first word of its name. Spectra of ``data``'s classes (the class name or one
    of its parts split at '-', '/', '+', ',' or spaces, any case: 'Muscovite-Illite' covers both minerals, or the
    material of a spectrum ``data`` was trained on, as a class table maps them to classes of other names),
    of materials not in ``materials`` (when given), that do not cover the bands (small gaps filled as for training)
    or are not positive, and featureless ones (deepest continuum-removed absorption below ``min_depth``) are left
    out, each count logged. Returns a TrainingSet at ``data``'s bands whose classes are the materials, its spectra
    in :func:`canonical_order` (the libraries' order changes nothing).
    """
    from ..engine.spectra import continuum_removal

    feedback = ensure(feedback)
    info = data.band_info
    if info is None or info.centers is None:
        raise OreMapError("Outlier spectra are matched to the training bands by wavelength, and the training data "
                          "have none.", "outliers", "Give the raster wavelengths, or train without outlier spectra.")
    target = BandInfo(centers=info.centers, fwhm=info.fwhm, bad=None)
    own = {name_key(c) for c in data.class_names}  # as the classes were matched: case and accent encoding ignored
    own |= {part for c in own for part in re.split(r"[-/+,\s]+", c) if part}
    # and the materials of the spectra trained on: a class table names classes by group ('Kaolin group',
    # 'Sulfate'), and the very kaolinite and alunite spectra of the training were kept as outliers, trained
    # towards a flat output
    own |= {name_key(class_from_name(n)) for n in (getattr(data, "sample_names", None) or []) if n}
    wanted = None if materials is None else set(materials)
    X, found, names = [], [], []
    left = {"of your classes": 0, "not covering the bands or not positive": 0, "featureless": 0}
    for lib in (read_library(path) for path in paths):
        for name, spectrum in zip(lib.names, lib.resample(target).spectra):
            material = class_from_name(name)
            if wanted is not None and material not in wanted:
                continue
            if name_key(material) in own:
                left["of your classes"] += 1
                continue
            filled = _fill_small_gaps(spectrum, target.centers)
            if filled is None or not (filled > 0).all():
                left["not covering the bands or not positive"] += 1
                continue
            X.append(filled)
            found.append(material)
            names.append(name)
    if X:  # deepest absorption of each, all in one continuum removal
        featured = 1.0 - continuum_removal(np.asarray(X), target.centers).min(axis=1) >= min_depth
        left["featureless"] = int((~featured).sum())
        X, found, names = ([v for v, k in zip(values, featured) if k] for values in (X, found, names))
    if any(left.values()):
        feedback.info("Outlier spectra left out: " + ", ".join(f"{n} {why}" for why, n in left.items() if n) + ".")
    if len(X) < 2:
        raise OreMapError("Fewer than 2 outlier spectra remain (of materials outside your classes, covering the "
                          "training bands, with an absorption feature).", "outliers",
                          "Give libraries of other minerals and materials, or train without outlier spectra.")
    class_names = sorted(set(found))
    y = np.array([class_names.index(m) for m in found], dtype=np.int64)
    X = np.asarray(X, dtype=np.float32)
    order = canonical_order(y, names, X)   # as training sets: the same spectra, whatever the libraries' order
    return TrainingSet(X=X[order], y=y[order], groups=y[order], class_names=class_names,
                       band_info=target, sample_names=[names[i] for i in order], source="outliers")


def feature_order(geometries, labels):
    """Indexes of ``geometries`` in an order that does not depend on the layer's: by label (as text), then the
    geometry's bounds rounded to 1e-6 of the CRS unit, then its big-endian WKB bytes, then the index (only identical
    features of one label tie, and they are alike). The bounds come first so that the last bits of a coordinate
    (a layer saved in another CRS and brought back) do not decide: little-endian WKB bytes compare those first."""
    import shapely

    def big_endian(geom):   # shapely 2 (Debian 13) and 1.8 (Debian 12)
        if hasattr(shapely, "to_wkb"):
            return shapely.to_wkb(geom, byte_order=0)
        from shapely import wkb

        return wkb.dumps(geom, big_endian=True)

    def key(i):
        geom = geometries[i]
        if geom is None or geom.is_empty:
            return (str(labels[i]), (), b"", i)
        return (str(labels[i]), tuple(np.round(geom.bounds, 6).tolist()), big_endian(geom), i)

    return np.array(sorted(range(len(geometries)), key=key), dtype=np.int64)


def image_training_set(source, geometries, labels, band_info=None, feedback=None, names=None):
    """Training set from pixels of ``source`` (a RasterSource) under labelled features.

    A pixel under features of different classes is left out, and ``feedback`` told
    (:func:`core.engine.sampling.training_pixels`), naming the features ``names[i]`` (``feature i`` without); one under
    several features of one class is used once. The same features give the same set whatever their order in the
    layer (since 0.2.17; the split and the training draw samples in the set's order): the pixels come in raster
    order, a pixel of several features of one class is taken for the first in :func:`feature_order`, and ``groups``
    numbers each pixel's feature by where its first pixel lies in raster order, so pixels of one polygon never sit
    on both sides of a split and the numbers do not depend on the layer's CRS or order.
    ``features`` holds each pixel's feature as an index into ``geometries`` (:func:`sample_groups` groups by it).
    """
    from ..engine.sampling import training_pixels

    order = feature_order(geometries, labels)
    shown = names if names is not None else [f"feature {i}" for i in range(len(geometries))]
    X, pixel_labels, groups = training_pixels(source, [geometries[i] for i in order], [labels[i] for i in order],
                                              feedback=feedback, names=[shown[i] for i in order])
    groups = np.asarray(groups, dtype=np.int64)
    features = order[groups]
    # groups numbered as the features first appear among the pixels (raster order), not by the sort above: the
    # seeded split follows the numbers, which must not depend on how the features' coordinates were stored
    groups = _by_first_appearance(groups)
    pixel_labels = np.array([str(v) for v in pixel_labels], dtype=object)
    class_names = sorted_class_names(pixel_labels)
    if len(class_names) < 2:
        raise OreMapError("The training features hold fewer than 2 classes.", "training",
                          "Label features of at least two classes.")
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[c] for c in pixel_labels], dtype=np.int64)
    return TrainingSet(X=X.astype(np.float32), y=y, groups=groups, class_names=class_names,
                       band_info=band_info, source="image", features=features)


def sample_groups(data, samples):
    """Groups of an image training set ``data`` by physical sample: ``samples[i]`` is the sample of feature ``i``
    (indexes into the features given to :func:`image_training_set`, as ``data.features``); features of equal
    samples are one group. Groups are numbered in the order the samples first appear among ``data``'s pixels,
    which does not depend on the layer's order either."""
    features = np.asarray(data.features, dtype=np.int64)
    present = np.unique(features)
    codes = {}
    code = np.zeros(int(present.max()) + 1 if present.size else 0, dtype=np.int64)
    for i in present:
        code[i] = codes.setdefault(samples[int(i)], len(codes))
    return _by_first_appearance(code[features])


def _by_first_appearance(keys):
    """Integer ``keys`` (one a pixel) renumbered 0, 1, ... in the order they first appear."""
    keys = np.asarray(keys, dtype=np.int64)
    present, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(present.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(present.size)
    return rank[np.ravel(inverse)]
