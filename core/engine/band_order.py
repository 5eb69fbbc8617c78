"""Band order of imaging spectrometers: unsorted, overlapping and repeated band centres.

Imaging spectrometers built from several detectors list their bands detector by detector, and
neighbouring detectors overlap. AVIRIS-Classic (1987-2021) has four spectrometers: band 32 of the
first is at 687.0 nm, band 33 (the second's first) at 664.3 nm; the second and third overlap again
near 1260 nm and the third and fourth meet at 1880 nm with centres 0.35 nm apart. PRISMA and EnMAP
deliver a VNIR and a SWIR cube that overlap between about 900 and 1000 nm.

:func:`overlap_bands` finds the bands to leave out so that the remaining bands, in file order, have
strictly increasing centres:

* A *run* is a maximal sequence of bands whose centres increase in file order (one detector).
  Where a run of two or more bands starts below the end of the run before it, and each reaches
  beyond the other, the two overlap: the overlap is cut at
  its middle wavelength and each run keeps its bands on its own side of the cut. The bands dropped
  are the edge bands of each detector, whose response (and signal-to-noise ratio) is the lowest.
* Detectors are listed one after the other, and overlap over a small part of the range: the drops in wavelength
  from one run to the next add up to less than half the range (AVIRIS-Classic: 39 of 2130 nm). A band order
  whose drops add up to more (bands stored in another order, as per-band files listed b1, b10, b100, ..., b2,
  or shuffled: many short runs, each drop spanning most of the range) is not detector by detector: no edge
  band is left out, and the bands are taken in wavelength order (sorting). Stray bands (a run of one or two: a
  band appended at the end) and the water-vapour windows' bands take no part in that decision, and a file
  listed from long to short wavelengths is read the other way round.
* After that, bands whose centres are closer than a quarter of their FWHM (1 nm when the FWHM is
  unknown), or equal, are one measurement twice: the later band in file order (the next detector's
  edge band) is left out.

The dropped bands are flagged bad (:attr:`core.engine.wavelengths.BandInfo.bad`), so every algorithm that
leaves out bad bands leaves them out, and a note for the log says which ones and why.
"""

import numpy as np

#: Centres closer than this fraction of the FWHM are the same measurement.
DUPLICATE_FWHM_FRACTION = 0.25
#: Centres closer than this (nm) are the same measurement when the FWHM is unknown.
DUPLICATE_NM = 1.0
#: Runs whose drops in wavelength add up to this fraction of the range or more are a permuted band order, not
#: overlapping detectors (their drops: 0.02 of the range for AVIRIS-Classic, about 0.05 for PRISMA and EnMAP).
PERMUTED_DROPS = 0.5


def _runs(centers):
    """``[(start, stop)]`` of maximal increasing runs in file order (stop exclusive)."""
    breaks = np.flatnonzero(np.diff(centers) <= 0) + 1
    edges = np.concatenate(([0], breaks, [centers.size]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


#: Increasing runs of fewer bands than this are stray bands (one appended, a band out of place), not detectors.
MIN_DETECTOR_BANDS = 3
#: Share of the bands the detectors' runs must hold for a file to be listed detector by detector.
DETECTOR_SHARE = 0.9


def _detector_runs(centers, runs):
    """The runs of ``centers`` that are detectors listed one after the other (small drops between them), or None for
    a permuted band order (see :data:`PERMUTED_DROPS`). Stray bands (runs under :data:`MIN_DETECTOR_BANDS`) take no
    part, so a band appended at the end or one out of place does not make a file permuted."""
    long = [r for r in runs if r[1] - r[0] >= MIN_DETECTOR_BANDS]
    if not long or sum(b - a for a, b in long) < DETECTOR_SHARE * centers.size:
        return None
    drops = sum(max(centers[a1 - 1] - centers[b0], 0.0) for (_, a1), (b0, _) in zip(long[:-1], long[1:]))
    return long if drops < PERMUTED_DROPS * (centers.max() - centers.min()) else None


def _ranges(indexes):
    """``"33-35, 97"`` for 0-based indexes, written 1-based."""
    indexes = sorted(int(i) + 1 for i in indexes)
    parts, start = [], None
    for k, i in enumerate(indexes):
        if start is None:
            start = i
        if k + 1 == len(indexes) or indexes[k + 1] != i + 1:
            parts.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ", ".join(parts)


def overlap_bands(centers, fwhm=None, bad=None, detectors=None):
    """Bands to leave out so that the good bands have strictly increasing, distinct centres.

    Parameters
    ----------
    centers : array-like of shape (n,)
        Band centres (nm) in file order, finite.
    fwhm : array-like of shape (n,), optional
    bad : array-like of bool of shape (n,), optional
        Bands already flagged bad: they take no part (never kept, never reported).
    detectors : array-like of shape (n,), optional
        The detector of each band (``"VNIR"``, ``"SWIR"``) when the product says so (EnMAP's
        channel lists, PRISMA's two cubes): then the runs are the detectors' bands, whatever
        the file order.

    Returns
    -------
    dropped : ndarray of bool, shape (n,)
        ``True`` for the bands this function leaves out (not those already bad).
    notes : list of str
        One sentence per overlap or repeated centre, for the log.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1)
    n = centers.size
    bad = np.zeros(n, bool) if bad is None else np.asarray(bad, dtype=bool).reshape(-1)
    fwhm = None if fwhm is None else np.asarray(fwhm, dtype=np.float64).reshape(-1)
    dropped = np.zeros(n, bool)
    notes = []
    good = np.flatnonzero(~bad)
    if good.size < 2:
        return dropped, notes
    if detectors is not None:
        # one run per detector, ordered by its shortest wavelength, each sorted by wavelength
        labels = np.asarray(detectors, dtype=object).reshape(-1)[good]
        groups = [good[labels == d] for d in dict.fromkeys(labels.tolist())]
        groups = [g[np.argsort(centers[g], kind="stable")] for g in groups]
        groups.sort(key=lambda g: centers[g[0]])
        good = np.concatenate(groups)
        sizes = np.cumsum([0] + [g.size for g in groups])
        runs = list(zip(sizes[:-1].tolist(), sizes[1:].tolist()))
    permuted, aside = False, ""
    if detectors is None:
        # water-vapour bands take no part in finding the detectors (noisy or filled bands appended there made a file
        # look permuted); they are left out later, or kept as they are at the user's word
        from .bad_bands import WATER_WINDOWS

        dry = good[~np.any([(centers[good] >= lo) & (centers[good] <= hi) for lo, hi in WATER_WINDOWS], axis=0)]
        aside = " (water-vapour bands aside)" if 2 <= dry.size < good.size else ""
        good = dry if dry.size >= 2 else good
        if np.count_nonzero(np.diff(centers[good]) < 0) * 2 > good.size - 1:
            good = good[::-1]   # listed from long to short wavelengths: the detectors read the other way round
    c = centers[good]
    if detectors is None:
        runs = _detector_runs(c, _runs(c))
        permuted = runs is None
        if permuted:
            runs = []   # a permuted band order: sorted below, no detector edge left out
    for (a0, a1), (b0, b1) in zip(runs[:-1], runs[1:]):
        end, start = c[a1 - 1], c[b0]
        # two detectors overlap in part: each at least 2 bands, neither inside the other's range
        if start >= end or a1 - a0 < 2 or b1 - b0 < 2 or start <= c[a0] or end >= c[b1 - 1]:
            continue
        cut = 0.5 * (start + end)
        first = [good[i] for i in range(a0, a1) if c[i] > cut]
        second = [good[i] for i in range(b0, b1) if c[i] < cut]
        if start == end or (not first and not second):
            continue
        dropped[first] = True
        dropped[second] = True
        if detectors is not None:
            names = np.asarray(detectors, dtype=object).reshape(-1)
            da, db = names[good[a0]], names[good[b0]]
            notes.append(f"the {da} and {db} detectors overlap at {start:.1f}-{end:.1f} nm: cut at {cut:.1f} nm, "
                         f"{len(first)} {da} bands above and {len(second)} {db} bands below it are left out.")
            continue
        notes.append(
            f"Bands {_ranges(good[a0:a1])} and {_ranges(good[b0:b1])}{aside} "
            f"overlap at {start:.1f}-{end:.1f} nm (two detectors): cut at {cut:.1f} nm, the edge bands "
            f"{_ranges(first + second)} are left out.")
    # repeated centres among the bands still kept
    keep = np.flatnonzero(~bad & ~dropped)
    order = keep[np.argsort(centers[keep], kind="stable")]
    repeated = []
    anchor = order[0] if order.size else None   # the last band kept, in wavelength order: each band is compared
    for j in order[1:]:                         # with it, so a third repeat meets the band kept of the first two
        i = anchor
        gap = abs(centers[j] - centers[i])
        limit = DUPLICATE_NM
        if fwhm is not None and np.isfinite(fwhm[i]) and np.isfinite(fwhm[j]):
            limit = DUPLICATE_FWHM_FRACTION * min(fwhm[i], fwhm[j])
        if gap < limit or gap == 0:
            later = max(i, j)
            dropped[later] = True
            repeated.append((min(i, j), later))
            anchor = min(i, j)
        else:
            anchor = j
    if repeated:
        pairs = ", ".join(f"{b + 1} ({centers[b]:.2f} nm, same as band {a + 1} at {centers[a]:.2f} nm)"
                          for a, b in repeated[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        notes.append(f"Repeated band centres: band {pairs}{more} left out.")
    # any order still left (e.g. bands listed from long to short wavelengths) is handled by sorting
    kept = np.flatnonzero(~bad & ~dropped)
    if detectors is None and kept.size > 1 and np.any(np.diff(centers[kept]) <= 0):
        notes.append("The band centres are not in increasing order: the spectra are resampled by wavelength."
                     + (" They are not listed detector by detector (in file order they go back down by more than "
                        "half the wavelength range in all): no band is left out as a detector's edge band."
                        if permuted else ""))
    return dropped, notes


def flag_overlaps(info, detectors=None):
    """``info`` (a :class:`core.engine.wavelengths.BandInfo`) with overlapping and repeated bands flagged bad.

    Returns ``(band_info, notes)``; ``band_info`` is a new object when bands were flagged.
    """
    from .wavelengths import BandInfo

    dropped, notes = overlap_bands(info.centers, info.fwhm, info.bad, detectors)
    if not dropped.any():
        return info, notes
    return BandInfo(centers=info.centers, fwhm=info.fwhm, bad=np.asarray(info.bad, bool) | dropped), notes


def sorted_unique(wavelengths, values=None, fwhm=None):
    """Sort by wavelength and average repeated wavelengths.

    Parameters
    ----------
    wavelengths : array-like of shape (n,)
    values : array-like of shape (m, n), optional
        Columns follow ``wavelengths``; repeated wavelengths are averaged (NaN ignored).
    fwhm : array-like of shape (n,), optional
        Averaged the same way.

    Returns
    -------
    (wavelengths, values, fwhm) with strictly increasing wavelengths; ``values``/``fwhm`` None when
    not given.
    """
    wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    order = np.argsort(wl, kind="stable")
    ws = wl[order]
    starts = np.flatnonzero(np.r_[True, np.diff(ws) > 0])
    out_wl = ws[starts]

    def merge(a):
        a = a[..., order]
        if starts.size == ws.size:
            return a
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(a)
            sums = np.add.reduceat(np.where(finite, a, 0.0), starts, axis=-1)
            counts = np.add.reduceat(finite.astype(np.float64), starts, axis=-1)
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    out_values = None if values is None else merge(np.asarray(values, dtype=np.float64))
    out_fwhm = None if fwhm is None else merge(np.asarray(fwhm, dtype=np.float64).reshape(-1))
    return out_wl, out_values, out_fwhm
