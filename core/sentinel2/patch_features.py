"""Features of Sentinel-2 patches for the mine classifier: per-channel statistics (mean, spread and
percentiles of the bands and indices) of each patch, the same at training and at detection.
"""

import warnings

import numpy as np

from .sentinel2 import INDEX_NAMES, INDEX_VERSION, S2_BANDS, compute_indices, indices_for_bands


FEATURE_VERSION = 1

STATS = ("mean", "sd", "p2", "p10", "p50", "p90", "p98")

CHANNELS = S2_BANDS + INDEX_NAMES

#: (name, index, comparison, value): fraction of valid pixels passing the rule.
THRESHOLD_RULES = [
    ("frac_BSI_gt_0.1", "BSI", ">", 0.1),
    ("frac_NDVI_lt_0.2", "NDVI", "<", 0.2),
    ("frac_bare", "BARE", ">", 0.0),  # BSI > 0.1 and NDVI < 0.2
    ("frac_MNDWI_gt_0", "MNDWI", ">", 0.0),  # open water
    ("frac_NBR_lt_0", "NBR", "<", 0.0),  # SWIR2 above NIR: bare rock, burnt or disturbed ground
    ("frac_bare_IRON_OXIDE_gt_1.5", "BARE_IRON_OXIDE", ">", 1.5),  # bare and red (ferric iron)
    ("frac_FERROUS_IRON_gt_1", "FERROUS_IRON", ">", 1.0),
    ("frac_bare_CLAY_gt_1.5", "BARE_CLAY", ">", 1.5),  # bare with a 2.2 um (Al-OH) absorption
]


#: The indices each threshold rule's quantity needs.
_RULE_NEEDS = {"BSI": ["BSI"], "NDVI": ["NDVI"], "BARE": ["BSI", "NDVI"], "MNDWI": ["MNDWI"], "NBR": ["NBR"],
               "BARE_IRON_OXIDE": ["BSI", "NDVI", "IRON_OXIDE"], "FERROUS_IRON": ["FERROUS_IRON"],
               "BARE_CLAY": ["BSI", "NDVI", "CLAY"]}


def _bands(bands):
    return list(S2_BANDS if bands is None else bands)


def channel_indices(bands=None, index_version=INDEX_VERSION):
    """The indices computed from ``bands`` (all 10 for the 12 L2A bands; IRON_OXIDE alone for RGB)."""
    return indices_for_bands(None, _bands(bands), index_version)[0]


def channels(bands=None, index_version=INDEX_VERSION):
    """Channels of the features of patches with ``bands``: the bands, then the indices they allow."""
    return _bands(bands) + channel_indices(bands, index_version)


def threshold_rules(bands=None, index_version=INDEX_VERSION):
    """The rules of :data:`THRESHOLD_RULES` whose indices ``bands`` allow."""
    have = set(channel_indices(bands, index_version))
    return [r for r in THRESHOLD_RULES if all(i in have for i in _RULE_NEEDS[r[1]])]


def feature_names(bands=None, index_version=INDEX_VERSION):
    """Names of the patch features of patches with ``bands`` (the 12 L2A bands by default), in column order."""
    return [f"{c}_{s}" for c in channels(bands, index_version) for s in STATS] + \
        [rule[0] for rule in threshold_rules(bands, index_version)]


def feature_definition(bands=None):
    """The feature definition stored in a model (enough to recompute the features)."""
    return {"version": FEATURE_VERSION, "index_version": INDEX_VERSION, "bands": _bands(bands),
            "indices": channel_indices(bands),
            "stats": list(STATS), "percentiles": "linear interpolation over valid pixels",
            "threshold_rules": [list(r) for r in threshold_rules(bands)], "input": "surface reflectance (0-1)",
            "names": feature_names(bands)}


def _percentiles(values, counts, qs):
    """Linear-interpolation percentiles of each row of ``values`` (NaN = not valid; ``counts`` valid values a row).

    Returns one float64 array per percentile in ``qs``, NaN for rows without a valid value: the
    same numbers as sorting each row (NaN last) and interpolating between the ranks
    ``q / 100 * (count - 1)``. Rows that are all valid (the usual case) only need their few ranks
    in place, so they are partitioned (O(n)) rather than sorted; the others are sorted. ``values``
    may be float32: the ranks and the interpolation are computed in float64.
    """
    m, n = values.shape
    counts = np.asarray(counts)
    out = [np.full(m, np.nan) for _ in qs]
    full = counts == n
    if full.any() and n:
        pos = [(q / 100.0) * (n - 1) for q in qs]
        lo = [int(np.floor(p)) for p in pos]
        hi = [min(k + 1, n - 1) for k in lo]
        part = np.partition(values[full], sorted(set(lo + hi)), axis=1)
        for i, p in enumerate(pos):
            a = part[:, lo[i]].astype(np.float64)
            b = part[:, hi[i]].astype(np.float64)
            out[i][full] = a + (b - a) * (p - np.floor(p))
    rest = ~full & (counts > 0)
    if rest.any():
        srt = np.sort(values[rest], axis=1)
        c = counts[rest]
        for i, q in enumerate(qs):
            pos = (q / 100.0) * (c - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, c - 1)
            a = np.take_along_axis(srt, lo[:, None], axis=1)[:, 0].astype(np.float64)
            b = np.take_along_axis(srt, hi[:, None], axis=1)[:, 0].astype(np.float64)
            out[i][rest] = a + (b - a) * (pos - np.floor(pos))
    return out


def patch_channels(refl, bands=None, index_version=INDEX_VERSION):
    """Bands and indices of pixels: ``(..., B)`` reflectance of ``bands`` (the 12 L2A bands by default) ->
    ``(..., len(channels(bands)))`` (22 for the 12 bands); NaN rows stay NaN."""
    bands = _bands(bands)
    refl = np.asarray(refl, dtype=np.float32)
    shape = refl.shape[:-1]
    flat = refl.reshape(-1, refl.shape[-1])
    which = channel_indices(bands, index_version)
    if which:
        indices, _ = compute_indices(flat, bands, which, index_version)
    else:
        indices = np.zeros((flat.shape[0], 0), dtype=np.float32)
    bad = ~np.isfinite(flat).all(axis=1)
    indices[bad] = np.nan
    return np.concatenate([flat, indices], axis=1).reshape(shape + (len(bands) + len(which),))


def patch_features(patches, chunk=16, bands=None, index_version=INDEX_VERSION):
    """Feature matrix of reflectance patches.

    Parameters
    ----------
    patches : array (n, rows, cols, B) or (rows, cols, B), or list of such arrays
        Reflectance of ``bands`` (default: the 12 of :data:`core.sentinel2.sentinel2.S2_BANDS`), in
        that order; NaN = nodata.
    index_version : int
        The index definitions (:data:`core.sentinel2.sentinel2.INDEX_VERSION`): a model's own
        (:func:`core.sentinel2.sentinel2.index_version_of`) at detection.

    Returns
    -------
    ndarray of float32 (n, n_features)
        Columns :func:`feature_names`; NaN where a patch has no valid pixel (or an
        index none).
    """
    if isinstance(patches, np.ndarray) and patches.ndim == 3:
        patches = patches[None]
    if isinstance(patches, np.ndarray):
        groups = [patches[i:i + chunk] for i in range(0, patches.shape[0], chunk)]
    else:
        groups = [np.asarray(p, dtype=np.float32)[None] for p in patches]
    bands = _bands(bands)
    names = channels(bands, index_version)
    nb, nc = len(bands), len(names)
    rules = threshold_rules(bands, index_version)
    rows = []
    for group in groups:
        k = group.shape[0]
        channels32 = patch_channels(group, bands, index_version).reshape(k, -1, nc)
        valid_px = np.isfinite(channels32[..., :nb]).all(axis=2)
        channels32[~valid_px] = np.nan
        values64 = channels32.astype(np.float64)
        counts = np.isfinite(values64).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values64, axis=1)
            sd = np.nanstd(values64, axis=1)
        # percentiles of each (patch, channel) row, in float32 (the values are float32; the order is the same)
        rows32 = np.ascontiguousarray(np.moveaxis(channels32, 1, 2)).reshape(k * nc, -1)
        p2, p10, p50, p90, p98 = (v.reshape(k, nc) for v in
                                  _percentiles(rows32, counts.reshape(-1), (2, 10, 50, 90, 98)))
        stats = np.stack([mean, sd, p2, p10, p50, p90, p98], axis=2).reshape(k, -1)  # channel-major, stat-minor
        n_valid = valid_px.sum(axis=1).astype(np.float64)
        col = {name: values64[..., j] for j, name in enumerate(names) if j >= nb}
        if "BSI" in col and "NDVI" in col:
            with np.errstate(invalid="ignore"):
                bare = (col["BSI"] > 0.1) & (col["NDVI"] < 0.2)
            col["BARE"] = np.where(bare, 1.0, 0.0)
            for name in ("IRON_OXIDE", "CLAY"):
                if name in col:
                    col["BARE_" + name] = np.where(bare, col[name], np.nan)
        fracs = [np.zeros(k)[:, None][:, :0]]
        for _name, index, op, value in rules:
            values = col[index]
            with np.errstate(invalid="ignore"):
                hit = values > value if op == ">" else values < value
            hit &= valid_px
            fracs.append(np.where(n_valid > 0, hit.sum(axis=1) / np.maximum(n_valid, 1), np.nan)[:, None])
        rows.append(np.concatenate([stats] + fracs, axis=1))
    return np.concatenate(rows, axis=0).astype(np.float32)
