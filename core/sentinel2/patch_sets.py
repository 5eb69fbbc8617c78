"""Patch sets of the mine classifier: labelled patches from a folder and a label table (the
competition layout) or cut from a raster with mine polygons.
"""

from dataclasses import dataclass, field
import os

import numpy as np

from ..engine import affine_ops
from ..engine.errors import OreMapError
from ..engine.files import read_table
from ..engine.feedback import ensure
from .patch_features import patch_features
from .band_sets import resolve_bands
from .sentinel2 import S2_BANDS, InputWarnings, open_sentinel2
from .chip_sets import (check_mask_grid, chip_groups, common_frame, labelled_pixels, mask_set_rule,
                        median_pixel_size, mine_pixels, to_frame)
from .ground_units import pixel_size_m
from .segmentation_data import repaired


@dataclass
class PatchSet:
    """Labelled patches: features always, reflectance patches when kept (for the CNN).

    ``centres`` (n, 2) map coordinates and ``crs_keys`` (one CRS text per patch) are
    ``None`` when positions are unknown; ``pixel_size`` in CRS units (``pixel_size_xy`` per axis, where known:
    chips), ``pixel_size_m`` the ground size ``[x, y]`` (m) of a pixel (the median over the patches' rasters),
    ``epsg`` their CRS when they share one. ``groups`` (the chip of each patch, chips sharing ground as one, for
    patches cut from chips) groups the cross-validation folds instead of the positions; ``chips`` is then each
    patch's chip.
    """

    features: np.ndarray
    labels: np.ndarray
    names: list
    patches: np.ndarray = None
    centres: np.ndarray = None
    crs_keys: list = None
    pixel_size: float = None
    patch_shape: tuple = None
    source: str = ""
    notes: list = field(default_factory=list)
    bands: list = field(default_factory=lambda: list(S2_BANDS))
    groups: np.ndarray = None
    chips: np.ndarray = None
    pixel_size_m: list = None
    epsg: int = None
    pixel_size_xy: list = None   # [x, y] in CRS units where known per axis (chips: their common frame)

    @property
    def n(self):
        return int(self.labels.size)

    @property
    def n_positive(self):
        return int((self.labels == 1).sum())

    @property
    def n_negative(self):
        return int((self.labels == 0).sum())


_TRUE = {"1", "true", "yes", "y", "mine", "positive", "pos", "t"}

_FALSE = {"0", "false", "no", "n", "no mine", "no_mine", "nomine", "negative", "neg", "background", "f", "none"}

_FILE_COLUMNS = ("file", "filename", "file_name", "path", "image", "patch", "name", "id")

_LABEL_COLUMNS = ("label", "class", "mine", "target", "y", "is_mine")



def _patch_reflectance(source, row, col, size, max_nodata, labelled=None):
    """Reflectance of the ``size`` x ``size`` patch at ``(row, col)``, NaN where nodata; None when more than
    ``max_nodata`` of it is nodata. ``labelled`` (``size`` x ``size``, a mask chip's labelled pixels): its
    unlabelled pixels count as nodata."""
    from rasterio.windows import Window

    data, valid = source.read(Window(col, row, size, size))
    if labelled is not None:
        valid = valid & labelled
    if 1.0 - valid.mean() > max_nodata:
        return None
    refl = np.array(data, dtype=np.float32)
    refl[~valid] = np.nan
    return refl

def _labelled_patch(source, row, col, size, share, min_overlap, max_nodata, labelled=None):
    """``(reflectance, label)`` of the patch at ``(row, col)`` whose area is ``share`` mine, or the reason it is
    left out: ``"ambiguous"`` (touching a mine by less than ``min_overlap``) or ``"nodata"`` (``labelled``: see
    :func:`_patch_reflectance`)."""
    if 0.0 < share < min_overlap:
        return "ambiguous"
    refl = _patch_reflectance(source, row, col, size, max_nodata, labelled)
    if refl is None:
        return "nodata"
    return refl, 1 if share >= min_overlap else 0


def _parse_label(value, row_number):
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    try:
        number = float(text)
    except ValueError:
        number = None
    if number in (0.0, 1.0):
        return int(number)
    raise OreMapError(f"Row {row_number} of the label table has the label '{value}', not 0/1 (or mine/no mine).",
                      "labels", "Use 1 for a patch with a mine and 0 for one without.")


def read_label_table(csv_path):
    """``[(file, label), ...]`` from a CSV with a file column and a 0/1 label column."""
    if not csv_path or not os.path.isfile(csv_path):
        raise OreMapError(f"The label table '{csv_path}' does not exist.", "labels",
                          "Choose the CSV with columns file,label.")
    table = [row for row in read_table(csv_path) if row]  # UTF-8 or Windows' code page
    fields = table[0] if table else []
    header = {h.strip().lower(): j for j, h in enumerate(fields)}
    file_col = next((header[c] for c in _FILE_COLUMNS if c in header), None)
    label_col = next((header[c] for c in _LABEL_COLUMNS if c in header), None)
    if file_col is None or label_col is None:
        raise OreMapError(f"The label table needs a file column and a label column; it has "
                          f"{', '.join(fields) or 'no header'}.", "labels", "Give a CSV whose header is 'file,label'.")
    rows = []
    for i, row in enumerate(table[1:], start=2):
        name = row[file_col].strip() if file_col < len(row) else ""
        if not name:
            continue
        rows.append((name, _parse_label(row[label_col] if label_col < len(row) else None, i)))
    if not rows:
        raise OreMapError("The label table lists no patches.", "labels", "Fill the CSV with file,label rows.")
    return rows


def _resolve(folder, name):
    candidates = [name if os.path.isabs(name) else os.path.join(folder, name)]
    if not os.path.splitext(name)[1]:
        candidates += [candidates[0] + ext for ext in (".tif", ".tiff", ".TIF")]
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


def load_patch_folder(csv_path, folder=None, keep_patches=False, band_map=None, feedback=None, mask_clouds=True,
                      bands=None):
    """Patches listed in a label table (``file,label``), read as reflectance; see :class:`PatchSet`.

    ``folder`` holds the patch files (the CSV's folder by default). Each patch goes
    through :func:`core.sentinel2.sentinel2.open_sentinel2` (band names, DN scaling; ``mask_clouds``
    for patches that are folders with a scene classification). ``bands``: the bands to use, from RGB to
    the 12 L2A bands; by default those of the first patch by file name (every patch must have them). The patches
    are read in file-name order, whatever the table's row order, so the same table gives the same model. What opening the patches
    says is logged once (:class:`core.sentinel2.sentinel2.InputWarnings`): each distinct warning with the number of
    patches that gave it.
    """
    feedback = ensure(feedback)
    said = InputWarnings(feedback, "patches")
    try:
        return _load_patch_folder(csv_path, folder, keep_patches, band_map, feedback, mask_clouds, bands, said)
    finally:
        said.flush()


def _load_patch_folder(csv_path, folder, keep_patches, band_map, feedback, mask_clouds, bands, said):
    # one order whatever the table's: the CNN's folds, batches and so its model followed the rows (a table's rows
    # reversed moved F1 from 0.541 to 0.625 and the mine area of a scene from 453 to 358 ha)
    rows = sorted(read_label_table(csv_path), key=lambda row: (str(row[0]), str(row[1])))
    folder = folder or os.path.dirname(os.path.abspath(csv_path))
    missing = [name for name, _ in rows if _resolve(folder, name) is None]
    if missing:
        raise OreMapError(f"{len(missing)} patch files of the label table are not in '{folder}' (e.g. "
                          f"{', '.join(missing[:3])}).", "labels",
                          "Put the patches next to the CSV, or choose their folder.")
    bands = resolve_bands(_resolve(folder, rows[0][0]), bands, band_map, mask_clouds, said.of(rows[0][0]))
    features, labels, names, kept, centres, crs_keys = [], [], [], [], [], []
    shapes, pixel_sizes, ground_sizes, epsgs, notes = set(), [], [], set(), None
    for i, (name, label) in enumerate(rows):
        feedback.check()
        with open_sentinel2(_resolve(folder, name), band_map=band_map, mask_clouds=mask_clouds,
                            required=bands, feedback=said.of(name)) as s2:
            refl = s2.read_reflectance(bands)
            notes = notes or list(s2.notes)
            t = s2.transform
            georeferenced = s2.crs is not None and not t.is_identity
            centre = affine_ops.apply(t, s2.width / 2.0, s2.height / 2.0) if georeferenced else None
            crs_key = s2.crs.to_string() if georeferenced else None
            if georeferenced:
                pixel_sizes.append(abs(t.a))
                ground_sizes.append(pixel_size_m(t, s2.crs, s2.width, s2.height))
                epsgs.add(s2.crs.to_epsg())
        if not np.isfinite(refl).all(axis=2).any():
            feedback.warning(f"Patch {name} has no valid pixel: left out.")
            continue
        shapes.add(refl.shape[:2])
        features.append(patch_features(refl, bands=bands)[0])
        labels.append(label)
        names.append(name)
        centres.append(centre)
        crs_keys.append(crs_key)
        if keep_patches:
            kept.append(refl)
        feedback.progress(100.0 * (i + 1) / len(rows))
    if not features:
        raise OreMapError("No patch has valid pixels.", "labels", "Check the patches.")
    known = all(c is not None for c in centres)
    if not known and any(c is not None for c in centres):
        feedback.warning("Some patches are not georeferenced: cross-validation is not spatially grouped.")
    patches = None
    if keep_patches:
        if len(shapes) > 1:
            raise OreMapError(f"The patches differ in size ({', '.join(f'{r}x{c}' for r, c in sorted(shapes))}); the "
                              "CNN needs patches of one size.", "labels",
                              "Cut the patches to one size, or use the gradient boosting classifier.")
        patches = np.stack(kept).astype(np.float32)
    return PatchSet(features=np.stack(features), labels=np.asarray(labels, dtype=np.int64), names=names,
                    patches=patches, centres=np.asarray(centres, dtype=np.float64) if known else None,
                    crs_keys=crs_keys if known else None,
                    pixel_size=float(np.median(pixel_sizes)) if pixel_sizes else None,
                    patch_shape=next(iter(shapes)) if len(shapes) == 1 else None,
                    source=os.path.abspath(csv_path), notes=notes or [], bands=list(bands),
                    pixel_size_m=[float(v) for v in np.median(ground_sizes, axis=0)] if ground_sizes else None,
                    epsg=epsgs.pop() if len(epsgs) == 1 else None)


def patches_from_raster(raster, geometries, patch_size=120, stride=None, min_overlap=0.02, max_nodata=0.5,
                        keep_patches=False, band_map=None, feedback=None, mask_clouds=True, bands=None):
    """Patches cut on a grid over a Sentinel-2 raster, labelled by their overlap with mine polygons.

    A patch is a mine (1) when polygons cover at least ``min_overlap`` of its area,
    no mine (0) when they do not touch it; patches in between are left out (too
    little of a mine to call either way), as are patches with more than
    ``max_nodata`` of nodata pixels (clouds included when a folder's scene
    classification masks them, ``mask_clouds``). ``geometries`` are in the raster's CRS.
    A ``stride`` below the patch size overlaps the patches: spatial folds group them by
    the block of their centre, so patches on either side of a block's edge then share
    pixels across folds (70 of 281 held-out patches at stride 20 for patches of 40), and
    cross-validation is optimistic; the log says so.
    """
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    feedback = ensure(feedback)
    size = int(patch_size)
    step = int(stride or size)
    if size < 8 or step < 1:
        raise OreMapError("The patch size must be at least 8 pixels.", "patch_size")
    if step < size:
        feedback.warning(f"Patches of {size} pixels every {step} overlap: patches on either side of a spatial "
                         "block's edge share pixels across cross-validation folds, so held-out figures are "
                         "optimistic. A stride of the patch size keeps the folds apart.")
    if not 0.0 < float(min_overlap) <= 1.0:
        raise OreMapError("The minimum overlap must lie in (0, 1].", "min_overlap")
    geoms = [g for g in geometries if g is not None and not g.is_empty]
    if not geoms:
        raise OreMapError("No mine polygons were given.", "polygons", "Choose a layer with mine polygons.")
    mines = unary_union([repaired(g) for g in geoms])
    said = InputWarnings(feedback)   # the raster is opened twice: its warnings said once
    bands = resolve_bands(raster, bands, band_map, mask_clouds, said.of(raster))
    with open_sentinel2(raster, band_map=band_map, feedback=said.of(raster), mask_clouds=mask_clouds,
                        required=bands) as s2:
        said.flush()
        if s2.width < size or s2.height < size:
            raise OreMapError(f"The raster ({s2.width} x {s2.height}) is smaller than one patch ({size}).",
                              "patch_size", "Choose a smaller patch size.")
        t = s2.transform
        starts = [(r, c) for r in range(0, s2.height - size + 1, step) for c in range(0, s2.width - size + 1, step)]
        boxes = []
        for r, c in starts:
            corners = [affine_ops.apply(t, c + dc, r + dr) for dc, dr in ((0, 0), (size, 0), (size, size), (0, size))]
            boxes.append(Polygon(corners))
        overlap = np.array([mines.intersection(b).area / b.area if mines.intersects(b) else 0.0 for b in boxes])
        features, labels, names, kept, centres = [], [], [], [], []
        skipped_ambiguous = skipped_nodata = 0
        with s2.open_source(bands) as source:
            for i, (r, c) in enumerate(starts):
                feedback.check()
                patch = _labelled_patch(source, r, c, size, overlap[i], min_overlap, max_nodata)
                if isinstance(patch, str):
                    skipped_ambiguous += patch == "ambiguous"
                    skipped_nodata += patch == "nodata"
                    continue
                refl, label = patch
                features.append(patch_features(refl, bands=bands)[0])
                labels.append(label)
                names.append(f"row{r}_col{c}")
                centres.append(affine_ops.apply(t, c + size / 2.0, r + size / 2.0))
                if keep_patches:
                    kept.append(refl)
                feedback.progress(100.0 * (i + 1) / len(starts))
        crs_key = s2.crs.to_string() if s2.crs is not None else None
        notes = list(s2.notes)
        pixel = abs(t.a)
        ground = pixel_size_m(t, s2.crs, s2.width, s2.height) if crs_key else None
        epsg = s2.crs.to_epsg() if crs_key else None
    if skipped_ambiguous:
        feedback.info(f"{skipped_ambiguous} patches touch a mine polygon by less than {100 * min_overlap:g} % of their "
                      "area: left out.")
    if skipped_nodata:
        feedback.info(f"{skipped_nodata} patches are more than {100 * max_nodata:g} % nodata: left out.")
    if not features:
        raise OreMapError("No patch could be cut from the raster.", "raster", "Check the raster and the patch size.")
    labels = np.asarray(labels, dtype=np.int64)
    feedback.info(f"{labels.size} patches of {size} x {size} pixels: {int(labels.sum())} with a mine, "
                  f"{int((labels == 0).sum())} without.")
    return PatchSet(features=np.stack(features), labels=labels, names=names,
                    patches=np.stack(kept).astype(np.float32) if keep_patches else None,
                    centres=np.asarray(centres, dtype=np.float64) if crs_key else None,
                    crs_keys=[crs_key] * labels.size if crs_key else None, pixel_size=pixel,
                    patch_shape=(size, size), source=os.path.abspath(raster), notes=notes, bands=list(bands),
                    pixel_size_m=[float(v) for v in ground] if ground else None, epsg=epsg)


def patches_from_chips(chips, patch_size=112, min_overlap=0.02, max_nodata=0.5, keep_patches=False, band_map=None,
                       feedback=None, mask_clouds=True, bands=None):
    """Patches cut on a grid over many chips with mask chips (:func:`core.sentinel2.chip_sets.find_chip_pairs`),
    labelled by the share of mine pixels (at least ``min_overlap``: mine; none: no mine; in between: left out).

    The chip of each patch is its cross-validation group (:attr:`PatchSet.groups`), chips that share ground being
    one group (:func:`core.sentinel2.chip_sets.chip_groups`). Mask pixels of the mask's nodata are unlabelled: they
    count as nodata (``max_nodata``) and the mine share is that of the labelled pixels. ``bands``: those of
    the first chip by default (every chip must have them). What opening the chips says is logged once
    (:class:`core.sentinel2.sentinel2.InputWarnings`).
    """
    feedback = ensure(feedback)
    size = int(patch_size)
    if size < 8:
        raise OreMapError("The patch size must be at least 8 pixels.", "patch_size")
    said = InputWarnings(feedback, "chips")
    try:
        return _patches_from_chips(list(chips), size, min_overlap, max_nodata, keep_patches, band_map, feedback,
                                   mask_clouds, bands, said)
    finally:
        said.flush()


def _patches_from_chips(chips, size, min_overlap, max_nodata, keep_patches, band_map, feedback, mask_clouds, bands,
                        said):
    import rasterio

    bands = resolve_bands(chips[0].raster, bands, band_map, mask_clouds, said.of(chips[0].raster))
    features, labels, names, kept, groups, centres, crs_keys = [], [], [], [], [], [], []
    skipped_ambiguous = skipped_nodata = too_small = 0
    notes, ground_sizes, epsgs, grids = [], [], set(), []
    nodata_is_mine = mask_set_rule([chip.mask for chip in chips])
    for k, chip in enumerate(chips):
        feedback.check()
        with open_sentinel2(chip.raster, band_map=band_map, mask_clouds=mask_clouds, required=bands,
                            feedback=said.of(chip.raster)) as s2, rasterio.open(chip.mask) as mds:
            notes = notes or list(s2.notes)
            georeferenced = s2.crs is not None and not s2.transform.is_identity
            grids.append((s2.crs, s2.transform, s2.width, s2.height))
            ground_sizes.append(pixel_size_m(s2.transform, s2.crs, s2.width, s2.height) if georeferenced else None)
            if georeferenced:
                epsgs.add(s2.crs.to_epsg())
            check_mask_grid(chip.mask, mds, chip.name, s2)
            if s2.width < size or s2.height < size:
                too_small += 1
                continue
            mask = mds.read(1)
            mine = mine_pixels(mask, mds.nodata, os.path.basename(chip.mask), feedback, nodata_is_mine)
            labelled = labelled_pixels(mask, mds.nodata, nodata_is_mine)
            with s2.open_source(bands) as source:
                for r in range(0, s2.height - size + 1, size):
                    for c in range(0, s2.width - size + 1, size):
                        known = labelled[r:r + size, c:c + size]
                        n_known = int(known.sum())
                        if not n_known:   # nothing labelled: neither mine nor background
                            skipped_nodata += 1
                            continue
                        share = float(mine[r:r + size, c:c + size].sum()) / n_known   # of the labelled pixels
                        patch = _labelled_patch(source, r, c, size, share, min_overlap, max_nodata,
                                                None if n_known == known.size else known)
                        if isinstance(patch, str):
                            skipped_ambiguous += patch == "ambiguous"
                            skipped_nodata += patch == "nodata"
                            continue
                        refl, label = patch
                        features.append(patch_features(refl, bands=bands)[0])
                        labels.append(label)
                        names.append(f"{chip.name}_row{r}_col{c}")
                        groups.append(k)
                        centres.append(affine_ops.apply(s2.transform, c + size / 2.0, r + size / 2.0)
                                       if georeferenced else None)
                        crs_keys.append(s2.crs if georeferenced else None)
                        if keep_patches:
                            kept.append(refl)
        feedback.progress(100.0 * (k + 1) / len(chips))
    if too_small:
        feedback.warning(f"{too_small} chips are smaller than one patch ({size} pixels): left out.")
    if skipped_ambiguous or skipped_nodata:
        feedback.info(f"Left out: {skipped_ambiguous} patches with less than {100 * min_overlap:g} % mine pixels, "
                      f"{skipped_nodata} more than {100 * max_nodata:g} % nodata (or unlabelled in their mask).")
    names_of_chips = [chip.name for chip in chips]
    chip_group = chip_groups(names_of_chips, grids, [chip.raster for chip in chips], feedback)
    ground = median_pixel_size(names_of_chips, ground_sizes, feedback)
    if not features:
        raise OreMapError("No patch could be cut from the chips.", "patch_size", "Choose a smaller patch size.")
    labels = np.asarray(labels, dtype=np.int64)
    # positions in the first chip's CRS (chips in several CRSs blocked together), where every chip is georeferenced
    frame, frame_centres = common_frame(grids), None
    if frame[0] is not None:
        frame_centres = to_frame(centres, crs_keys, frame[0])
    feedback.info(f"{labels.size} patches of {size} x {size} pixels from {len(set(groups))} chips: "
                  f"{int(labels.sum())} with a mine, {int((labels == 0).sum())} without.")
    return PatchSet(features=np.stack(features), labels=labels, names=names,
                    patches=np.stack(kept).astype(np.float32) if keep_patches else None, patch_shape=(size, size),
                    source=os.path.dirname(os.path.abspath(chips[0].raster)), notes=notes, bands=list(bands),
                    groups=chip_group[np.asarray(groups, dtype=np.int64)], chips=np.asarray(groups, dtype=np.int64),
                    # positions where every chip is georeferenced: the folds fall back to spatial blocks when chips
                    # sharing ground leave too few groups (mine_classifier.train)
                    centres=frame_centres, crs_keys=None if frame_centres is None else [frame[0].to_string()] * labels.size,
                    pixel_size=None if frame[1] is None else frame[1][0],
                    pixel_size_xy=None if frame[1] is None else list(frame[1]), pixel_size_m=ground,
                    epsg=epsgs.pop() if len(epsgs) == 1 else None)
