"""Band sets chosen by the user: from RGB (B2, B3, B4) up to the 12 L2A bands.

A model records the bands it was trained on and the spectral indices computed from them; detection
then asks the input for exactly those bands. :func:`resolve_bands` turns the user's band list (or
none: every band the input has) into canonical names, and :func:`resolve_indices` keeps the indices
those bands allow, listing the others.
"""

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .sentinel2 import S2_BANDS, indices_for_bands, normalise_band_name, open_sentinel2, skipped_text

#: The fewest bands a model may use (RGB).
MIN_BANDS = 1


def canonical_bands(bands, parameter="bands"):
    """Canonical S2 names of ``bands`` (``"B04"`` -> ``"B4"``), in the given order; OreMapError for unknown or
    repeated names."""
    names = []
    for b in bands:
        name = normalise_band_name(b)
        if name is None or name == "B10":
            raise OreMapError(f"'{b}' is not a Sentinel-2 L2A band.", parameter,
                              "Use names such as B2, B3, B4, B8, B8A, B11, B12.")
        names.append(name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise OreMapError(f"The band list names {', '.join(dupes)} twice.", parameter)
    return names


def bands_present(path, band_map=None, mask_clouds=True, feedback=None):
    """The L2A bands a Sentinel-2 raster or folder holds, in the standard order; ``feedback`` gets what
    :func:`core.sentinel2.sentinel2.open_sentinel2` says of it."""
    with open_sentinel2(path, band_map=band_map, required=[], mask_clouds=mask_clouds, feedback=feedback) as s2:
        return [b for b in S2_BANDS if b in s2.band_numbers]


def resolve_bands(path, bands=None, band_map=None, mask_clouds=True, feedback=None):
    """The model's bands: ``bands`` in canonical names, or every L2A band the input has when ``bands`` is empty
    (what opening it says goes to ``feedback``: callers that open the input again give an
    :class:`core.sentinel2.sentinel2.InputWarnings` feedback, which says each warning once)."""
    feedback = ensure(feedback)
    if bands:
        return canonical_bands(bands)
    present = bands_present(path, band_map, mask_clouds, feedback)
    if not present:
        raise OreMapError("No Sentinel-2 band of the input could be identified.", "raster",
                          "Name the bands in the raster's band descriptions (B2, B3, ...) or give a band map "
                          "such as 'B2=1, B3=2, B4=3'.")
    feedback.info(f"Bands: the {len(present)} the input has ({', '.join(present)}).")
    return present


def resolve_indices(indices, bands, feedback=None):
    """The indices of ``indices`` that ``bands`` allow (canonical names, in the order of
    :data:`core.sentinel2.sentinel2.INDICES`), and ``{index: missing bands}`` of the others (logged)."""
    feedback = ensure(feedback)
    if not indices:
        return [], {}
    usable, skipped = indices_for_bands(indices, bands)
    if skipped:
        feedback.info(f"Indices left out, their bands are not among the model's bands: {skipped_text(skipped)}.")
    return usable, skipped
