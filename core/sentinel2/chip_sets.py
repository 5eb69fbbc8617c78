"""Training sets of many chips or scenes for the mine segmentation.

Published mine datasets come as a folder of image chips with a matching folder of mask chips (one
mask per image, same size, mine pixels non-zero), and field teams have several scenes each with its
own polygon layer, each in its own CRS. :class:`ChipTiles` cuts every chip (or scene) into tiles of
the U-Net's size, labels them from its mask or its polygons, and serves them to
:func:`core.sentinel2.segmentation_data.select_tiles`; the spatial hold-out is grouped by chip (a chip
is a block: no held-out tile shares a chip with a training tile), chips that share ground (overlapping footprints,
copies) being one block (:func:`chip_groups`). Chips are opened one at a time, so
there is no limit to their number beyond the mine tiles' memory; background tiles beyond the budget
are streamed (:class:`core.sentinel2.segmentation_data.BackgroundStream`).
"""

import hashlib
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from ..engine import affine_ops
from ..engine.disjoint_sets import DisjointSets
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .segmentation_data import FeatureReader, load_polygons, mine_pixels_per_tile, select_tiles, tile_inside
from .ground_units import pixel_size_m
from .sentinel2 import InputWarnings

_IMAGE_EXT = (".tif", ".tiff", ".vrt", ".img", ".jp2", ".png")
_MASK_WORDS = re.compile(r"(?:^|[_\-. ])(?:mask|masks|label|labels|gt|annotation|annotations|target|seg)(?=$|[_\-. ])",
                         re.IGNORECASE)


@dataclass
class Chip:
    """One training image: ``raster`` with its ``mask`` raster (non-zero = mine) or ``polygons`` (any CRS)."""

    name: str
    raster: str
    mask: str = None
    polygons: object = None


def _stem_key(name):
    stem = os.path.splitext(os.path.basename(name))[0]
    return _MASK_WORDS.sub("", stem).strip("_-. ").lower()


def _rasters(folder, parameter):
    if not folder or not os.path.isdir(folder):
        raise OreMapError(f"The folder '{folder}' does not exist.", parameter, "Choose a folder of GeoTIFF chips.")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(_IMAGE_EXT)
                  and not f.startswith("."))


def _mask_words(path):
    return len(_MASK_WORDS.findall(os.path.splitext(os.path.basename(path))[0]))


def _split_one_folder(files):
    """``(images, masks)`` of one folder holding both: among the files of one chip (one :func:`_stem_key`) the
    masks are those whose names hold the most mask words (``seg 02_mask.tif`` beside the image ``seg 02.tif``); a
    file alone is a mask when its name holds one."""
    groups = {}
    for path in files:
        groups.setdefault(_stem_key(path), []).append(path)
    images, masks = [], []
    for group in groups.values():
        top = max(_mask_words(p) for p in group)
        for path in group:
            words = _mask_words(path)
            (masks if words and words == top else images).append(path)
    return sorted(images), sorted(masks)


def find_chip_pairs(image_folder, mask_folder, feedback=None):
    """Chips of an image folder with their masks of a mask folder, matched by file name.

    A mask matches an image when their names are equal once words such as ``mask``, ``label`` or ``gt``
    (and the extension) are left out: ``tile_017.tif`` and ``tile_017_mask.tif`` or ``mask_tile_017.png``.
    Images without a mask are refused (naming some); masks without an image are ignored with a warning. Both may
    be one folder: then, among the files of one chip, the one whose name holds more such words is the mask
    (``seg 02.tif`` and ``seg 02_mask.tif``).
    """
    feedback = ensure(feedback)
    images = _rasters(image_folder, "chips")
    masks = _rasters(mask_folder, "masks")
    if os.path.realpath(image_folder) == os.path.realpath(mask_folder):  # one folder: the names say which is which
        images, masks = _split_one_folder(images)
    if not images:
        raise OreMapError(f"The chip folder '{image_folder}' holds no raster.", "chips",
                          "Choose the folder of image chips (GeoTIFF).")
    by_key = {}
    for path in masks:
        key = _stem_key(path)
        if key in by_key:
            raise OreMapError(f"Two masks match the same chip: {os.path.basename(by_key[key])} and "
                              f"{os.path.basename(path)}.", "masks", "Keep one mask per chip.")
        by_key[key] = path
    chips, missing = [], []
    for path in images:
        key = _stem_key(path)
        if key not in by_key:
            missing.append(os.path.basename(path))
            continue
        chips.append(Chip(name=os.path.splitext(os.path.basename(path))[0], raster=path, mask=by_key.pop(key)))
    if missing:
        raise OreMapError(f"{len(missing)} chips have no mask in '{mask_folder}' (e.g. {', '.join(missing[:3])}).",
                          "masks", "Give each chip a mask of the same name (a suffix such as _mask is allowed).")
    if by_key:
        feedback.warning(f"{len(by_key)} masks match no chip and are ignored (e.g. "
                         f"{', '.join(os.path.basename(p) for p in list(by_key.values())[:3])}).")
    return chips


def chips_from_scenes(pairs):
    """Chips of ``[(raster, polygons), ...]``: several scenes, each with its own polygon layer (any CRS)."""
    chips = []
    for k, (raster, polygons) in enumerate(pairs):
        name = os.path.splitext(os.path.basename(os.path.normpath(str(raster))))[0] or f"scene{k + 1}"
        chips.append(Chip(name=name, raster=str(raster), polygons=polygons))
    if not chips:
        raise OreMapError("No scene was given.", "raster", "Give at least one raster with its mine polygons.")
    return chips


def _whole_positive(nodata):
    """Whether a mask's declared ``nodata`` could be a mine value: a positive whole number."""
    return nodata is not None and bool(np.isfinite(nodata)) and nodata > 0 and nodata == int(nodata)


def nodata_is_mine_value(mask_paths):
    """Whether a set of mask chips uses its nodata as the mine value (0/255 masks saved with nodata 255).

    Decided once over the whole set (a first pass, block by block), not per chip: it does when no mask holds a
    finite non-zero value other than its nodata, some mask holds its nodata, every mask that declares a nodata
    declares the same positive whole one (never a negative or fractional one such as -9999), and the masks saved
    without a nodata hold no other non-zero value (one set saved both ways). A set with another mine
    value (0/1 masks with nodata 255) keeps its nodata as nodata, in its mine-free chips too, whose nodata edge
    would otherwise be taken for mine pixels.
    """
    return _MaskScan(mask_paths).nodata_is_mine


def mine_pixels(values, nodata, name, feedback=None, nodata_is_mine=False):
    """The mine pixels of a mask chip's ``values``: non-zero, finite and not its ``nodata``.

    With ``nodata_is_mine`` (:func:`nodata_is_mine_value` of the chip set, decided over all its masks) a positive
    whole nodata is the mine value: a set of masks whose declared nodata is their only non-zero value would
    otherwise lose every mine pixel (such chips trained as mine-free ground before); ``feedback`` is warned.
    """
    values = np.asarray(values)
    mine = (values != 0) & np.isfinite(values)
    if nodata is None or nodata == 0 or not (values == nodata).any():
        return mine
    if nodata_is_mine and _whole_positive(nodata):
        ensure(feedback).warning(f"The mask {name} declares its only non-zero value ({nodata:g}) as nodata: those "
                                 "pixels are taken as mine pixels. Clear the mask's nodata value to silence this.")
        return mine
    return mine & (values != nodata)


def labelled_pixels(values, nodata, nodata_is_mine=False):
    """The labelled pixels of a mask chip's ``values``: finite and not its ``nodata`` (a nodata of 0 is background,
    and a nodata that :func:`mine_pixels` takes as the mine value, ``nodata_is_mine``, is labelled). Unlabelled
    pixels are neither mine nor background: they were trained and scored as background before."""
    values = np.asarray(values)
    labelled = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, dtype=bool)
    if nodata is None or nodata == 0 or not np.isfinite(nodata):
        return labelled
    if nodata_is_mine and _whole_positive(nodata):
        return labelled
    return labelled & (values != nodata)


#: Share of a mask set's labelled pixels above which the masks are taken for class codes (1 = background, 2 =
#: mine), not 0 = background: a set of mine chips is not over 95 % mine.
MAX_MINE_SHARE = 0.95


def check_mask_values(mask_paths, nodata_is_mine=False):
    """Refuse a set of mask chips whose 0 is not background: no labelled pixel is 0, or over
    :data:`MAX_MINE_SHARE` of the labelled pixels (:func:`labelled_pixels`) are non-zero. Masks coded
    1 = background, 2 = mine trained the U-Net on "everything is mine" without a word, and the classifier blamed
    the label count. Read block by block, over the whole set (one chip may well be all mine)."""
    _MaskScan(mask_paths).check(nodata_is_mine)


def mask_set_rule(mask_paths):
    """:func:`nodata_is_mine_value` of a set of mask chips, after :func:`check_mask_values` under it: one read of
    the masks for both."""
    scan = _MaskScan(mask_paths)
    scan.check(scan.nodata_is_mine)
    return scan.nodata_is_mine


class _MaskScan:
    """One block-by-block pass over a set of mask chips gathering what :func:`nodata_is_mine_value` decides and
    what :func:`check_mask_values` counts, the latter under either rule (counted once: they differ only by the
    pixels of a nodata taken as the mine value)."""

    def __init__(self, mask_paths):
        import rasterio

        self.possible, self.held, self.declared, self.plain = True, False, set(), set()
        self.zero, self.other, self.found = {False: 0, True: 0}, {False: 0, True: 0}, {False: set(), True: set()}
        for path in mask_paths:
            if not path:
                continue
            try:
                ds = rasterio.open(path)
            except rasterio.errors.RasterioIOError as exc:
                raise OreMapError(f"Cannot read the mask '{path}': {exc}.", "masks") from None
            with ds:
                nodata = None if ds.nodata == 0 else ds.nodata
                if nodata is not None and not _whole_positive(nodata):
                    self.possible = False
                if nodata is not None:
                    self.declared.add(float(nodata))
                # the rules differ only where a positive whole nodata is taken as the mine value: those pixels
                # (non-zero) are labelled, and mine, under the second one; everything else is counted once
                mine_nodata = _whole_positive(ds.nodata)
                for _, window in ds.block_windows(1):
                    v = ds.read(1, window=window)
                    self._rule(v, nodata)
                    labelled = labelled_pixels(v, ds.nodata, False)
                    n_zero = int((labelled & (v == 0)).sum())
                    n_other = int(labelled.sum()) - n_zero
                    n_nodata = int((v == ds.nodata).sum()) if mine_nodata else 0
                    values = None
                    for rule, extra in ((False, 0), (True, n_nodata)):
                        self.zero[rule] += n_zero
                        self.other[rule] += n_other + extra
                        if len(self.found[rule]) < 12:
                            values = np.unique(v[labelled]) if values is None else values
                            more = np.union1d(values, [ds.nodata]) if extra else values
                            self.found[rule] |= {float(x) for x in more[:12]}

    def _rule(self, v, nodata):
        if not self.possible:
            return
        other = (v != 0) & np.isfinite(v)
        if nodata is None:  # a mask saved without nodata: its mine value must be the others' nodata
            self.plain |= {float(x) for x in np.unique(v[other])}
            self.possible = len(self.plain) <= 1
        elif (other & (v != nodata)).any():
            self.possible = False
        else:
            self.held = self.held or bool((v == nodata).any())

    @property
    def nodata_is_mine(self):
        return self.possible and self.held and len(self.declared) == 1 and self.plain <= self.declared

    def check(self, nodata_is_mine):
        zero, other = self.zero[bool(nodata_is_mine)], self.other[bool(nodata_is_mine)]
        if not other or other <= MAX_MINE_SHARE * (zero + other):   # refused only over the share
            return
        found = self.found[bool(nodata_is_mine)]
        values = ", ".join(f"{x:g}" for x in sorted(found)[:10]) + (" ..." if len(found) > 10 else "")
        share = 100.0 * other / (zero + other)
        raise OreMapError(f"{share:.1f} % of the labelled mask pixels are non-zero (values found: {values}): a "
                          "mask's 0 must be background and any other value mine; masks coded 1 = background, 2 = "
                          "mine would train every pixel as mine.", "masks",
                          "Recode the masks to 0 = background and non-zero = mine (class codes 1/2: subtract 1).")


def _georeferenced(crs, transform):
    return crs is not None and transform is not None and not transform.is_identity


def _same_crs(a, b):
    if a == b:
        return True
    epsg = a.to_epsg()
    return epsg is not None and epsg == b.to_epsg()


def _crs_label(crs):
    epsg = crs.to_epsg()
    if epsg is not None:
        return f"EPSG:{epsg}"
    text = crs.to_string()
    return text if len(text) <= 60 else text[:57] + "..."


def _distance(value, crs):
    """``abs(value)`` in the units of ``crs``: ``600 m``, ``0.0054°``."""
    if crs.is_geographic:
        return f"{abs(value):.6g}\u00b0"
    units = crs.linear_units
    return f"{abs(value):.6g} {'m' if units in ('metre', 'meter', 'm') else 'map units'}"


def _grid_difference(mask_crs, mt, chip_crs, ct):
    """Why a mask's grid (``mask_crs``, transform ``mt``) is not its chip's (``chip_crs``, ``ct``), or None when it
    is: the CRS differs, the pixel size or orientation differs by more than 1e-6 of a pixel, or the origin lies more
    than 0.01 pixel away."""
    if not _same_crs(mask_crs, chip_crs):
        return f"its CRS is {_crs_label(mask_crs)}, its chip's {_crs_label(chip_crs)}"
    pixel = max(abs(ct.a), abs(ct.b), abs(ct.d), abs(ct.e))
    if any(abs(m - c) > 1e-6 * pixel for m, c in zip((mt.a, mt.b, mt.d, mt.e), (ct.a, ct.b, ct.d, ct.e))):
        if (mt.e > 0) != (ct.e > 0) and mt.b == ct.b == mt.d == ct.d == 0:
            up = {True: "south-up", False: "north-up"}
            return f"it is {up[mt.e > 0]}, its chip {up[ct.e > 0]}"
        if (mt.a > 0) != (ct.a > 0) and mt.b == ct.b == mt.d == ct.d == 0:
            return "it is flipped east-west against its chip"
        if mt.b == ct.b == mt.d == ct.d == 0:
            return (f"its pixels are {_distance(mt.a, chip_crs)} x {_distance(mt.e, chip_crs)}, its chip's "
                    f"{_distance(ct.a, chip_crs)} x {_distance(ct.e, chip_crs)}")
        return "its pixel grid is rotated or sheared against its chip's"
    col, row = ~ct * (mt.c, mt.f)
    if abs(col) <= 0.01 and abs(row) <= 0.01:
        return None
    dx, dy = mt.c - ct.c, mt.f - ct.f
    parts = []
    if abs(col) > 0.01 and dx:
        parts.append(f"{_distance(dx, chip_crs)} {'east' if dx > 0 else 'west'}")
    if abs(row) > 0.01 and dy:
        parts.append(f"{_distance(dy, chip_crs)} {'north' if dy > 0 else 'south'}")
    shift = " and ".join(parts) or f"{_distance(math.hypot(dx, dy), chip_crs)} away"
    return f"its origin lies {shift} of its chip's ({col:+.3g} columns, {row:+.3g} rows)"


def check_mask_grid(mask_path, mask, chip_name, chip):
    """Refuse a mask chip that is not on the grid of its image chip: ``mask`` and ``chip`` are open rasters (or any
    objects with ``width`` and ``height``, and ``crs`` and ``transform`` where known). Their sizes must be equal;
    when both are georeferenced (a CRS and a transform other than the identity) their CRS must be the same and their
    transforms equal to a hundredth of a pixel in origin and to 1e-6 in pixel size (:func:`_grid_difference`): a
    mask of an offset extent, of another UTM zone or south-up would otherwise label the chip with another place.
    A mask without georeference (a plain PNG, or a GeoTIFF without CRS) is paired with its chip by pixel position.
    Used by the segmentation's :class:`ChipTiles` and the classifier's
    :func:`core.sentinel2.patch_sets.patches_from_chips`."""
    name = os.path.basename(mask_path)
    if (mask.width, mask.height) != (chip.width, chip.height):
        raise OreMapError(f"The mask {name} is {mask.width} x {mask.height} pixels, its chip {chip_name} "
                          f"{chip.width} x {chip.height}.", "masks", "Give masks on the grid of their chips.")
    grids = [(getattr(r, "crs", None), getattr(r, "transform", None)) for r in (mask, chip)]
    if not all(_georeferenced(crs, transform) for crs, transform in grids):
        return
    why = _grid_difference(*grids[0], *grids[1])
    if why:
        raise OreMapError(f"Mask chip {name} is not on the grid of image chip {chip_name}: {why}.", "masks",
                          "Export the masks on the chips' grids (same CRS, origin and pixel size), or without "
                          "georeference to pair them with their chips by pixel position.")


def _footprint(grid, crs, points=16):
    """The polygon a chip's ``grid`` (``(crs, transform, width, height)``) covers, in ``crs``: its four edges with
    ``points`` points each, reprojected when its own CRS is another."""
    from rasterio.warp import transform as warp
    from shapely.geometry import Polygon

    own, t, w, h = grid
    step = np.linspace(0.0, 1.0, points, endpoint=False)
    cols = np.concatenate([step * w, np.full(points, float(w)), (1.0 - step) * w, np.zeros(points)])
    rows = np.concatenate([np.zeros(points), step * h, np.full(points, float(h)), (1.0 - step) * h])
    xs, ys = t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f
    if not _same_crs(own, crs):
        xs, ys = warp(own, crs, xs, ys)
    return Polygon(list(zip(xs, ys))).buffer(0)


def _file_hash(path):
    """SHA-256 of a chip file's bytes (None for a folder or an unreadable file)."""
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


#: Side of the pixel blocks whose values find chips without georeference that share ground (see :func:`_block_hashes`).
CONTENT_BLOCK = 16


#: Distinct values a block needs to count (:func:`_block_hashes`): fewer is a flat, masked, saturated or coded area
#: that two unrelated scenes may share.
CONTENT_MIN_VALUES = 16

#: Blocks two chips without georeference must share to be joined (:func:`chip_groups`).
CONTENT_MIN_SHARED = 2


def _block_hashes(path):
    """Hashes of the :data:`CONTENT_BLOCK`-pixel blocks of band 1 of a chip, on its own grid of such blocks, that hold
    at least :data:`CONTENT_MIN_VALUES` distinct values and no nodata or non-finite pixel (a flat, masked or coded
    block proves nothing: every chip with a NaN corner shared one): chips cut from one scene with a stride that is a
    multiple of the block share many. Chips without georeference cut so had been held out one by one, their ground
    on both sides of every split (96 % of the held-out mine pixels of a chain at half a chip's stride were trained
    on). Read in strips of rows. An unreadable chip gives none."""
    import rasterio
    from rasterio.windows import Window

    b, found = CONTENT_BLOCK, set()
    try:
        with rasterio.open(path) as ds:
            h, w = (ds.height // b) * b, (ds.width // b) * b
            for r0 in range(0, h, 64 * b):
                rows = min(64 * b, h - r0)
                band = ds.read(1, window=Window(0, r0, w, rows), masked=True)
                bad = np.ma.getmaskarray(band) | ~np.isfinite(band.filled(0))
                tiles = np.ma.getdata(band).reshape(rows // b, b, w // b, b).swapaxes(1, 2).reshape(-1, b * b)
                bad = bad.reshape(rows // b, b, w // b, b).swapaxes(1, 2).reshape(-1, b * b).any(axis=1)
                ordered = np.sort(tiles, axis=1)
                distinct = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
                keep = ~bad & (distinct >= CONTENT_MIN_VALUES)
                found |= {hashlib.sha1(np.ascontiguousarray(t).tobytes()).hexdigest() for t in tiles[keep]}
    except (rasterio.errors.RasterioIOError, OSError):
        return set()
    return found


def common_frame(grids):
    """``(crs, [x, y])``: the first georeferenced chip's CRS and the chips' median pixel size in it (for chips in
    other CRSs, the side of a square pixel of their reprojected footprint's area), or ``(None, None)`` when a chip
    is not georeferenced. Chips in several CRSs are blocked and compared in one."""
    if not grids or not all(g is not None and _georeferenced(g[0], g[1]) for g in grids):
        return None, None
    crs = grids[0][0]
    same = _median_map_pixel(grids)
    if same is not None:
        return crs, same
    sizes = []   # per axis: a chip in another CRS by its reprojected footprint's extent (degrees are not square)
    for g in grids:
        if _same_crs(g[0], crs):
            sizes.append(affine_ops.pixel_size(g[1]))
        else:
            x0, y0, x1, y1 = _footprint(g, crs).bounds
            sizes.append(((x1 - x0) / max(g[2], 1), (y1 - y0) / max(g[3], 1)))
    return crs, [float(v) for v in np.median(np.array(sizes), axis=0)]


def to_frame(points, crss, frame_crs):
    """Map points ``(n, 2)``, point ``i`` in CRS ``crss[i]``, as coordinates of ``frame_crs`` (one transformation
    per CRS)."""
    from rasterio.warp import transform as warp

    points = np.array(points, dtype=np.float64).reshape(-1, 2)
    kinds, wkt = {}, {}
    for i, crs in enumerate(crss):   # one CRS object per chip: its text read once
        key = wkt.setdefault(id(crs), crs.to_wkt())
        kinds.setdefault(key, (crs, []))[1].append(i)
    for crs, index in kinds.values():
        if not _same_crs(crs, frame_crs):
            xs, ys = warp(crs, frame_crs, points[index, 0].tolist(), points[index, 1].tolist())
            points[index] = np.column_stack([xs, ys])
    return points


def overlap_pairs(centres):
    """``(n, 2)`` index pairs of squares of side 1 centred on ``centres`` (in their own side's units) that share
    ground: patches or tiles of chips that overlap."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(np.asarray(centres, dtype=np.float64)).query_pairs(1 - 1e-9, p=np.inf, output_type="ndarray")
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def share_touching(pairs, blocks):
    """The share of items that overlap (``pairs``, :func:`overlap_pairs`) an item of another block."""
    blocks = np.asarray(blocks)
    touched = np.zeros(blocks.size, dtype=bool)
    other = blocks[pairs[:, 0]] != blocks[pairs[:, 1]]
    touched[pairs[other, 0]] = touched[pairs[other, 1]] = True
    return float(touched.mean()) if touched.size else 0.0


def _overlapping_pairs(grids):
    """Pairs ``(a, b)`` of the georeferenced chips (``grids[k]``: ``(crs, transform, width, height)``) whose
    footprints share at least half a pixel of the finer chip, compared in the first one's CRS: chips that merely
    touch along an edge (a grid of chips cut side by side) share nothing."""
    geo = [k for k, g in enumerate(grids) if g is not None and _georeferenced(g[0], g[1])]
    if len(geo) < 2:
        return []
    crs = grids[geo[0]][0]
    feet = {k: _footprint(grids[k], crs) for k in geo}
    pixel = {k: feet[k].area / max(grids[k][2] * grids[k][3], 1) for k in geo}
    pairs, active = [], []
    for k in sorted(geo, key=lambda k: feet[k].bounds[0]):   # sweep west to east
        west = feet[k].bounds[0]
        active = [m for m in active if feet[m].bounds[2] > west]
        for m in active:
            if feet[k].intersects(feet[m]) and \
                    feet[k].intersection(feet[m]).area > 0.5 * min(pixel[k], pixel[m]):
                pairs.append((min(k, m), max(k, m)))
        active.append(k)
    return pairs


def chip_groups(names, grids, paths, feedback=None):
    """The hold-out group of each chip: chips that share ground are one group, so the same place is never on both
    sides of a split. ``grids[k]`` is chip ``k``'s ``(crs, transform, width, height)`` (None when unknown).

    Georeferenced chips whose footprints overlap (:func:`_overlapping_pairs`; CRSs may differ: footprints are
    reprojected) are joined, as are chips without georeference that are byte-identical files (the same chip
    exported twice under two names); joining is transitive (a chain of overlapping chips is one group). A chip set
    cut with a stride below the chip size, or exported twice, gave held-out figures of ground also trained on
    (classifier F1 0.988 grouped by chip file against 0.968 by ground). ``feedback`` is warned when chips are
    joined. Returns group numbers ``0, 1, ...`` in the order of the chips (chip ``k``'s own when it is alone).
    """
    feedback = ensure(feedback)
    n = len(names)
    sets = DisjointSets(range(n))
    for a, b in _overlapping_pairs(grids):
        sets.join(a, b)
    by_hash, blocks = {}, {}
    for k, g in enumerate(grids):
        if g is None or not _georeferenced(g[0], g[1]):
            digest = _file_hash(paths[k])
            if digest is not None:
                by_hash.setdefault(digest, []).append(k)
            for block in _block_hashes(paths[k]):
                blocks.setdefault(block, []).append(k)
    copies = [ks for ks in by_hash.values() if len(ks) > 1]
    for ks in copies:
        for k in ks[1:]:
            sets.join(ks[0], k)
    shared = {}   # chips without georeference cut from one scene: the same pixels in both
    for ks in blocks.values():
        for i, a in enumerate(ks):
            for c in ks[i + 1:]:
                shared[(a, c)] = shared.get((a, c), 0) + 1
    for (a, c), count in shared.items():
        if count >= CONTENT_MIN_SHARED:
            sets.join(a, c)
    number, groups = {}, []
    for k in range(n):
        groups.append(number.setdefault(sets.root(k), len(number)))
    groups = np.asarray(groups, dtype=np.int64)
    if copies:
        feedback.warning(f"{sum(len(ks) for ks in copies)} chips without georeference are byte-identical copies of "
                         f"another (e.g. {' = '.join(names[k] for k in copies[0][:3])}): each set of copies is "
                         "held out as one chip. Remove the copies.")
    sizes = np.bincount(groups)
    joined = [k for k in range(n) if sizes[groups[k]] > 1]
    if joined:
        feedback.warning(f"{len(joined)} chips share ground with another chip (overlapping footprints, the same "
                         "pixels, or copies, e.g. "
                         f"{', '.join(names[k] for k in joined[:4])}): they are joined into "
                         f"{int((sizes > 1).sum())} group(s) held out as wholes ({len(sizes)} group(s) in all), so "
                         "no held-out chip shares ground with a training chip.")
    return groups


#: Relative difference of a chip's ground pixel size from the chips' median above which it is named (detection's
#: tolerance between a raster and its model's training pixels).
PIXEL_SIZE_TOLERANCE = 0.1


def median_pixel_size(names, ground, feedback=None):
    """The median ground pixel size ``[x, y]`` (m) of chips (``ground[k]``: chip ``k``'s, None when not
    georeferenced), or None; ``feedback`` is warned naming the chips whose pixels (the side of a square pixel of
    the same area) differ from the median by over :data:`PIXEL_SIZE_TOLERANCE`: a 20 m chip among 10 m ones
    shows a mine at half the pixels, and the model recorded the first chip's size."""
    known = [(name, g) for name, g in zip(names, ground) if g is not None]
    if not known:
        return None
    sides = np.array([math.sqrt(abs(g[0] * g[1])) for _, g in known])
    median = float(np.median(sides))
    off = [(name, side) for (name, _), side in zip(known, sides)
           if abs(side - median) > PIXEL_SIZE_TOLERANCE * median]
    if off:
        ensure(feedback).warning(
            f"{len(off)} of {len(known)} chips have pixels more than {100 * PIXEL_SIZE_TOLERANCE:g} % from the "
            f"chips' median ground size ({median:.3g} m): "
            + ", ".join(f"{name} ({side:.3g} m)" for name, side in off[:6]) + (" ..." if len(off) > 6 else "")
            + ". A mine covers another number of pixels there; resample the chips to one pixel size. The model "
              "records the median.")
    return [float(v) for v in np.median(np.array([g for _, g in known], dtype=np.float64), axis=0)]


def _mask_tiles(path, reader, tile, name, feedback=None, nodata_is_mine=False, unlabelled=None):
    """``{(i, j): mask}`` of a chip's tiles holding mine pixels, its mask raster read whole (:func:`mine_pixels`;
    ``nodata_is_mine`` is decided over the chip set by :func:`nodata_is_mine_value`). ``unlabelled``, a dict, gets
    ``{(i, j): labelled}`` (:func:`labelled_pixels`) of the tiles holding unlabelled pixels."""
    import rasterio

    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise OreMapError(f"Cannot read the mask '{path}': {exc}.", "masks") from None
    with ds:
        check_mask_grid(path, ds, name, reader)
        values = ds.read(1)
        mine_all = mine_pixels(values, ds.nodata, os.path.basename(path), feedback, nodata_is_mine)
        labelled_all = labelled_pixels(values, ds.nodata, nodata_is_mine)
        out = {}
        for i in range(math.ceil(ds.height / tile)):
            mine = mine_all[i * tile:(i + 1) * tile]
            labelled = labelled_all[i * tile:(i + 1) * tile]
            for j in range(math.ceil(ds.width / tile)):
                part = mine[:, j * tile:(j + 1) * tile]
                if part.any():
                    m = np.zeros((tile, tile), dtype=np.uint8)
                    m[:part.shape[0], :part.shape[1]] = part
                    out[(i, j)] = m
                known = labelled[:, j * tile:(j + 1) * tile]
                if unlabelled is not None and not known.all():
                    lab = np.ones((tile, tile), dtype=bool)
                    lab[:known.shape[0], :known.shape[1]] = known
                    unlabelled[(i, j)] = lab
    return out


def _pixel_origins(grids):
    """``[(row, col)]``: each chip's first pixel on the first chip's grid of pixels, or None unless every chip is
    georeferenced in one CRS, with one pixel size and no rotation, and its origin lies whole pixels from the first
    chip's (chips cut from one scene, whatever their stride)."""
    if not grids or not all(g is not None and _georeferenced(g[0], g[1]) for g in grids):
        return None
    crs, t0 = grids[0][0], grids[0][1]
    origins = []
    for g_crs, t, _, _ in grids:
        if not _same_crs(g_crs, crs) or t.b or t.d or abs(t.a - t0.a) > 1e-9 * abs(t0.a) or \
                abs(t.e - t0.e) > 1e-9 * abs(t0.e):
            return None
        col, row = (t.c - t0.c) / t0.a, (t.f - t0.f) / t0.e
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None
        origins.append((int(round(row)), int(round(col))))
    return origins


def _tile_centre(transform, i, j, tile):
    """Map coordinates of the centre of tile ``(i, j)`` (``tile`` pixels a side) of a chip."""
    return affine_ops.apply(transform, (j + 0.5) * tile, (i + 0.5) * tile)


def _median_map_pixel(grids):
    """The median pixel size ``[x, y]`` in CRS units of georeferenced chips sharing the first one's CRS (None when
    none is georeferenced or their CRSs differ)."""
    geo = [g for g in grids if g is not None and _georeferenced(g[0], g[1])]
    if not geo or not all(_same_crs(g[0], geo[0][0]) for g in geo):
        return None
    return [float(v) for v in np.median(np.array([affine_ops.pixel_size(t) for _, t, _, _ in geo]), axis=0)]


class ChipTiles:
    """The tiles of many chips for :func:`core.sentinel2.segmentation_data.select_tiles`.

    A tile reference is ``(chip, i, j)``; its block is the chip's group (:func:`chip_groups`: chips sharing ground
    are one). Opening reads each chip's size and its mine tiles (a mask read whole, polygons rasterised per tile),
    one chip at a time. Attributes as a :class:`core.sentinel2.segmentation_data.FeatureReader` where training
    needs them: ``channel_names``, ``bands``, ``indices``, ``n_channels``, and the first chip's ``transform``,
    ``crs``, ``width``, ``height``; ``pixel_size_m`` and ``pixel_size`` are the chips' median pixel size
    (:func:`median_pixel_size`). What opening the chips says goes to ``said`` (an
    :class:`core.sentinel2.sentinel2.InputWarnings`, one of ``feedback`` by default), each distinct warning once.
    """

    block_tiles = 1

    def __init__(self, chips, bands, indices, band_map=None, tile=128, feedback=None, mask_clouds=True, said=None,
                 chain_block_tiles=4):
        feedback = ensure(feedback)
        said = said if said is not None else InputWarnings(feedback, "chips")
        self.chain_block_tiles = int(chain_block_tiles)
        try:
            self._open_chips(chips, bands, indices, band_map, tile, feedback, mask_clouds, said)
        finally:
            said.flush()

    def _open_chips(self, chips, bands, indices, band_map, tile, feedback, mask_clouds, said):
        self.chips, self.tile = list(chips), int(tile)
        self.bands, self.indices, self.band_map, self.mask_clouds = bands, indices, band_map, mask_clouds
        self.sizes, self.masks, self.labelled = [], {}, {}
        self._open = (None, None)
        masks = [chip.mask for chip in self.chips if chip.mask]
        nodata_is_mine = bool(masks) and mask_set_rule(masks)
        grids, ground = [], []
        for k, chip in enumerate(self.chips):
            feedback.check()
            unlabelled = {}
            with self._reader(k, said.of(chip.raster)) as reader:
                if k == 0:
                    self.channel_names, self.n_channels = list(reader.channel_names), reader.n_channels
                    self.bands, self.indices = list(reader.bands), list(reader.indices)
                    self.transform, self.crs = reader.transform, reader.crs
                    self.width, self.height = reader.width, reader.height
                self.sizes.append((reader.height, reader.width))
                grids.append((reader.crs, reader.transform, reader.width, reader.height))
                ground.append(pixel_size_m(reader.transform, reader.crs, reader.width, reader.height)
                              if _georeferenced(reader.crs, reader.transform) else None)
                if chip.mask:
                    tiles = _mask_tiles(chip.mask, reader, self.tile, chip.name, feedback, nodata_is_mine, unlabelled)
                else:
                    geoms = load_polygons(chip.polygons, reader.crs)
                    tiles = mine_pixels_per_tile(geoms, reader.transform, reader.height, reader.width, self.tile)
            self.masks.update({(k, i, j): m for (i, j), m in tiles.items()})
            self.labelled.update({(k, i, j): m for (i, j), m in unlabelled.items()})
            feedback.progress(10.0 * (k + 1) / len(self.chips))
        names = [chip.name for chip in self.chips]
        self.groups = chip_groups(names, grids, [chip.raster for chip in self.chips], feedback)
        self.pixel_size_m = median_pixel_size(names, ground, feedback)
        self.pixel_size = _median_map_pixel(grids)
        if not self.masks:
            raise OreMapError(f"None of the {len(self.chips)} chips holds a mine pixel.", "masks",
                              "Check the masks (mine pixels non-zero) or the polygons (they must cover pixel centres).")
        self.spatial, self.overlaps = None, {}
        self._ground_origin = _pixel_origins(grids)
        mine_groups = {int(self.groups[key[0]]) for key in self.masks}
        chained = any(np.count_nonzero(self.groups == g) > 1 for g in mine_groups)   # the mines' chips share ground
        frame = common_frame(grids)
        if len(mine_groups) < 2 and chained and frame[0] is not None:
            self._blocks_by_ground(grids, frame, feedback)
        n_mine_chips = len({key[0] for key in self.masks})
        feedback.info(f"{len(self.chips)} chips, {n_mine_chips} with mines; {len(self.masks)} tiles of {self.tile} x "
                      f"{self.tile} hold mine pixels.")

    def _reader(self, k, feedback=None):
        """The feature reader of chip ``k``; silent unless given ``feedback`` (the first opening of each chip)."""
        chip = self.chips[k]
        return FeatureReader(chip.raster, self.bands, self.indices, self.band_map, feedback, self.mask_clouds)

    def refs(self):
        t = self.tile
        return [(k, i, j) for k, (h, w) in enumerate(self.sizes)
                for i in range(math.ceil(h / t)) for j in range(math.ceil(w / t))]

    def inside(self, ref):
        """The share of tile ``ref`` that lies inside its chip (the rest, over the chip's edge, is nodata)."""
        k, i, j = ref
        return tile_inside(*self.sizes[k], i, j, self.tile)

    def block(self, ref):
        """The hold-out block of a tile: its chip's group (:func:`chip_groups`: chips sharing ground are one), or
        where chips overlap in chains its spatial block (:meth:`_blocks_by_ground`)."""
        if self.spatial is not None:
            return self.spatial[tuple(ref)]
        return (int(self.groups[ref[0]]), 0)

    def ground_origin(self, ref):
        """Tile ``(k, i, j)``'s first pixel as ``(row, col)`` on one grid of ground pixels, where every chip lies on it
        (one CRS, one pixel size, origins whole pixels apart: chips cut from one scene); None otherwise. Mines that
        the edge between two chips cuts are then found (:func:`core.sentinel2.segmentation_data.shared_mine_pixels`)."""
        if self._ground_origin is None:
            return None
        row, col = self._ground_origin[ref[0]]
        return (row + ref[1] * self.tile, col + ref[2] * self.tile)

    def _blocks_by_ground(self, grids, frame, feedback):
        """Blocks of ``chain_block_tiles`` x ``chain_block_tiles`` tiles of ground (by each tile's centre) instead of
        the chips' groups, when the chips sharing ground hold every mine in one group (chips cut from one scene
        with a stride below the chip size overlap in chains): held out by group, no mine would be. The share of
        tiles overlapping a tile of another block is said."""
        crs, pixel = frame   # chips in several CRSs: tile centres in the first chip's
        side = self.tile * np.asarray(pixel, dtype=np.float64)   # a tile's ground, x and y, in that CRS's units
        refs = self.refs()
        centres = to_frame([_tile_centre(grids[k][1], i, j, self.tile) for k, i, j in refs],
                           [grids[k][0] for k, _, _ in refs], crs) / side   # in tiles
        size = self.chain_block_tiles
        keys = [(int(np.floor(x / size)), int(np.floor(y / size))) for x, y in centres]
        self.spatial = dict(zip(refs, keys))
        number = {key: n for n, key in enumerate(sorted(set(keys)))}
        blocks = np.array([number[key] for key in keys])
        pairs = overlap_pairs(centres)
        for a, b in pairs[blocks[pairs[:, 0]] != blocks[pairs[:, 1]]].tolist():   # the buffer of a held-out tile
            self.overlaps.setdefault(refs[a], set()).add(refs[b])
            self.overlaps.setdefault(refs[b], set()).add(refs[a])
        n_mine_blocks = len({self.spatial[tuple(key)] for key in self.masks})
        feedback.warning(
            f"The chips overlap in chains ({len(set(self.groups.tolist()))} group(s) of chips sharing ground): held out "
            "by group, no mine would be. Instead of those groups, the hold-out blocks are squares of "
            f"{self.chain_block_tiles} x {self.chain_block_tiles} tiles of ground ({len(set(keys))} blocks, "
            f"{n_mine_blocks} with mines); {100 * share_touching(pairs, blocks):.1f} % of the tiles overlap a tile of "
            "another block, "
            "and a training tile that overlaps a held-out one is left out of training (a buffer), so no held-out "
            "tile shares ground with one trained on. Chips cut side by side (a stride of the chip size) share no "
            "ground.")

    def read(self, refs, feedback):
        """Raw feature tiles ``(n, C, t, t)`` and valid masks of tile references (chips opened as needed); a pixel is
        valid when its image pixel is and its mask labels it (:func:`labelled_pixels`)."""
        feedback = ensure(feedback)
        t = self.tile
        X = np.empty((len(refs), self.n_channels, t, t), dtype=np.float32)
        V = np.empty((len(refs), t, t), dtype=bool)
        for n, (k, i, j) in enumerate(refs):
            if n % 16 == 0:
                feedback.check()
            if self._open[0] != k:
                self.close()
                self._open = (k, self._reader(k))
            X[n], V[n] = self._open[1].read(i * t, i * t + t, j * t, j * t + t)
            labelled = self.labelled.get((k, i, j))
            if labelled is not None:   # unlabelled mask pixels (the mask's nodata) are neither mine nor background
                V[n] &= labelled
        return X, V

    def layout(self, ref):
        """Cell of a tile in the report's layout: one row of tiles per chip."""
        k, i, j = ref
        return (k, i * math.ceil(self.sizes[k][1] / self.tile) + j)

    def select(self, val_fraction, negatives_per_positive, min_valid, seed, budget_mb, feedback=None):
        return select_tiles(self, self.masks, val_fraction, negatives_per_positive, min_valid, seed, budget_mb,
                            feedback, layout=self.layout)

    def close(self):
        if self._open[1] is not None:
            self._open[1].close()
        self._open = (None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
