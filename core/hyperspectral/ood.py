"""Out-of-distribution check of spectral classifiers: leave a pixel unclassified rather than be confidently wrong.

A closed-set network gives every spectrum one of its classes, often with high confidence, also to minerals it was
never trained on. The check looks at the spectrum itself, not at the network: for the class the network gives
(the most probable one, so it works on any probabilities, an ensemble's too), it measures the spectral angle
to the nearest *exemplar* of that class (the mean spectrum of one of its training groups: a physical sample, a
polygon) in the views :data:`VIEWS` of the spectrum:

``preprocessed``
    the model's own input (continuum removed for the bundled model): absorption features over the whole range;
``swir_depth``
    absorption depth (1 - continuum-removed reflectance) over the bands at or beyond :data:`SWIR_FROM` nm, where
    the Al-OH, Fe-OH, Mg-OH and carbonate features lie: a feature a few tens of nanometres off (talc,
    serpentine, amphiboles against chlorite) changes this angle much more than the angle over the whole range;
``reflectance`` (not used by default)
    the spectrum as given (the angle ignores brightness). On library spectra of untrained minerals it catches a
    few more (bundled model: 16 % let through instead of 20 %), but on a real AVIRIS-NG tile it rejected 31 more
    of 100 pixels, nearly all featureless background whose continuum differs from the laboratory spectra
    (atmospheric correction, soil): the continuum is what continuum removal deliberately ignores.

A spectrum is out of distribution when any angle exceeds its class's threshold for that view. Thresholds come
from spectra the network did not train on when there are some: the :data:`QUANTILE` of the angles of the
held-out groups' spectra (augmented as for training) to the exemplars of the *training* groups of their class,
that is, how far a new sample of a class lies from the samples seen. A class without enough held-out spectra
takes its spread on the augmented training spectra times the held-out quantile of all classes' angles measured
in units of that spread. With several views the quantile is taken per view such that the views *together* reject
:data:`QUANTILE`'s complement of the held-out spectra (:func:`joint_quantile`; ``fit(joint=False)``: each view at
:data:`QUANTILE`, the bundled model's rule); without any held-out data the thresholds are ``margin x quantile`` of the augmented
training spectra's angles (the rule of models made before the held-out calibration).
The model stores exemplars and thresholds in ``training["ood"]`` (:func:`fit`, :func:`check_of`).

Measured on the bundled model: ``bench/bench_ood.py`` and the model card.
"""

import numpy as np

from ..engine.compute import gemm
from ..engine.errors import OreMapError
from ..engine.model_format import is_number
from ..engine.spectra import preprocess
from ..engine.spectral_network import DISTANCE_NAME

#: Without held-out data: the threshold is this many times that quantile of the augmented training spectra.
OOD_MARGIN = 1.25
#: Factor on the angle views' held-out thresholds of models trained on labelled pixels without groups (each pixel
#: its own group) and with the feature view: their held-out pixels come from the training samples, so their angles
#: understate a new sample's; the feature view rejects what the wider angle thresholds let through
#: (``bench/experiment_cnn_accuracy.py``).
PIXEL_MARGIN = 2.0
#: The same factor for models without the feature view.
PIXEL_MARGIN_ANGLES_ONLY = 1.25
#: Fewest spectra of a class for its own threshold; classes with fewer take the pooled one.
OOD_MIN_SPECTRA = 10
#: Thresholds at or below this angle (rad) carry no spread (spectra equal to their exemplars).
OOD_MIN_ANGLE = 1e-6
#: Most exemplars stored per class (evenly chosen when a class has more groups).
OOD_MAX_EXEMPLARS = 40
#: The ``swir_depth`` view: bands at or beyond this wavelength (nm) ...
SWIR_FROM = 1900.0
#: ... when the model has at least this many of them.
SWIR_MIN_BANDS = 8
#: Quantile of a class's held-out angles used as threshold (the check's false-rejection target is 1 - this); also
#: the quantile of the augmented training spectra's angles that measures a class's spread.
QUANTILE = 0.99
#: The views of a spectrum the check measures by default, in this order (``"reflectance"`` is also understood).
VIEWS = ("preprocessed", "swir_depth")
#: The feature view: neighbours counted (the distance is to the k-th nearest reference spectrum's features).
FEATURE_K = 5
#: Most training spectra in a model's feature reference (evenly chosen per class beyond it): each costs every
#: pixel one product of the hidden layer's length.
FEATURE_REFERENCE_MAX = 1024
#: Factor on the feature view's held-out threshold of models trained on labelled pixels without groups (as
#: :data:`PIXEL_MARGIN` for the angle views).
FEATURE_PIXEL_MARGIN = 1.0
#: Name of the feature view in a model's check.
FEATURE_VIEW = "feature"


def pixel_margin(feature_view):
    """The angle views' held-out margin of models trained on labelled pixels without groups:
    :data:`PIXEL_MARGIN` with the feature view, :data:`PIXEL_MARGIN_ANGLES_ONLY` without."""
    return PIXEL_MARGIN if feature_view else PIXEL_MARGIN_ANGLES_ONLY


# ---------------------------------------------------------------------------
# Angles and exemplars (one view)
# ---------------------------------------------------------------------------


def _unit_rows(P):
    P = np.asarray(P, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return P / np.linalg.norm(P, axis=1, keepdims=True)


#: Rows per chunk of :func:`prototype_angle` and :func:`angles` (the views and cosines of one chunk are held).
ANGLE_CHUNK = 1024


def prototype_angle(P, classes, exemplars, exemplar_class=None):
    """Spectral angle (rad) of spectra ``P`` to the nearest exemplar of their (0-based) class.

    ``exemplar_class`` gives each exemplar's class; without it exemplar ``c`` is class ``c``'s prototype.
    NaN for a spectrum of zero norm or a class without exemplars. Works in chunks of :data:`ANGLE_CHUNK` rows.
    """
    E = _unit_rows(exemplars)
    classes = np.asarray(classes, dtype=np.int64)
    owner = np.arange(E.shape[0]) if exemplar_class is None else np.asarray(exemplar_class, dtype=np.int64)
    best = np.full(classes.shape[0], -np.inf)
    if E.shape[0]:
        for lo in range(0, classes.shape[0], ANGLE_CHUNK):
            hi = lo + ANGLE_CHUNK
            cos = gemm(_unit_rows(P[lo:hi]), E.T)
            cos = np.where(owner[None, :] == classes[lo:hi, None], cos, -np.inf)
            best[lo:hi] = cos.max(axis=1)
    return np.arccos(np.clip(np.where(np.isfinite(best), best, np.nan), -1.0, 1.0))


def prototype_angle_bytes(n_bands, n_exemplars):
    """Bytes :func:`prototype_angle` holds whatever the number of rows (one chunk: unit rows in float64, their
    square, the cosines and their masked copy, the class mask)."""
    return ANGLE_CHUNK * (3 * 8 * int(n_bands) + 17 * int(n_exemplars))


def ood_exemplars(P, y, groups, n_classes, max_per_class=OOD_MAX_EXEMPLARS):
    """Exemplars of each class: the mean spectrum of each of its groups (physical samples, polygons), at most
    ``max_per_class`` (evenly spaced in group order). Returns ``(exemplars, classes)``."""
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y)
    groups = np.asarray(groups)
    rows, owner = [], []
    for c in range(n_classes):
        members = np.unique(groups[y == c])
        if members.size > max_per_class:
            members = members[np.linspace(0, members.size - 1, max_per_class).round().astype(int)]
        for g in members:
            rows.append(P[(y == c) & (groups == g)].mean(axis=0))
            owner.append(c)
    return np.array(rows).reshape(len(rows), P.shape[1]), np.array(owner, dtype=np.int64)


def _spread_thresholds(angles, y, n_classes, quantile):
    """The ``quantile`` of each class's angles; the pooled value for classes with too few (NaN: no spread)."""
    finite = np.isfinite(angles)
    pooled = float(np.quantile(angles[finite], quantile)) if finite.any() else float("nan")
    pooled = pooled if pooled > OOD_MIN_ANGLE else float("nan")
    thresholds = []
    for c in range(n_classes):
        own = angles[(y == c) & finite]
        value = float(np.quantile(own, quantile)) if own.size >= OOD_MIN_SPECTRA else float("nan")
        thresholds.append(value if value > OOD_MIN_ANGLE else pooled)
    return np.array(thresholds, dtype=np.float64)


# ---------------------------------------------------------------------------
# Views of a spectrum
# ---------------------------------------------------------------------------


def swir_bands(wavelengths):
    """Indexes of the ``swir_depth`` view's bands, or None when the model has too few of them (or no
    wavelengths)."""
    if wavelengths is None:
        return None
    index = np.flatnonzero(np.asarray(wavelengths, dtype=np.float64) >= SWIR_FROM)
    return index if index.size >= SWIR_MIN_BANDS else None


def views(X, P, wavelengths, preprocessing, names=VIEWS):
    """``{view: spectra}`` of raw spectra ``X`` (at the model's bands) and their preprocessed ``P``."""
    out = {}
    for name in names:
        if name == "preprocessed":
            out[name] = np.asarray(P, dtype=np.float64)
        elif name == "reflectance":
            out[name] = np.asarray(X, dtype=np.float64)
        elif name == "swir_depth":
            bands = swir_bands(wavelengths)
            if bands is None:
                continue
            cr = P if preprocessing == "continuum_removal" else preprocess(X, "continuum_removal", wavelengths)
            out[name] = 1.0 - np.asarray(cr, dtype=np.float64)[:, bands]
    return out


# ---------------------------------------------------------------------------
# The check: fit, read, apply
# ---------------------------------------------------------------------------


def exemplar_views(X, P, y, groups, n_classes, wavelengths, preprocessing, names=VIEWS):
    """``{view: (exemplars, exemplar_class)}`` of the training spectra (one exemplar per group and class) in the
    views ``names`` (``swir_depth`` left out when the model has too few bands beyond 1900 nm)."""
    return {name: ood_exemplars(V, y, groups, n_classes)
            for name, V in views(X, P, wavelengths, preprocessing, names).items()}


def fit(train, held_out, exemplars, n_classes, wavelengths, preprocessing, quantile=QUANTILE, held_out_margin=1.0,
        joint=True):
    """The check stored in a model as ``training["ood"]``.

    Parameters
    ----------
    train : (X, P, y)
        (Augmented) training spectra, raw and preprocessed, and their classes.
    held_out : (X, P, y) or None
        Spectra of groups the network and the exemplars did not see (augmented alike), or None.
    exemplars : dict
        :func:`exemplar_views` of the training groups.
    held_out_margin : float
        Factor on the held-out thresholds. 1 when the held-out groups are whole samples or polygons; larger when
        each group is one spectrum (labelled pixels without a group): a held-out pixel then comes from the same
        samples as the training pixels, so its angles understate how far a new sample lies (labelled-pixel
        benchmark of ``bench/experiment_cnn_accuracy.py``, pixels of unseen samples, unclassified counted wrong:
        88.3 % at 1, 93.4 % at :data:`OOD_MARGIN`, 96.8 % without the check).
    joint : bool
        With held-out data and several views: one per-view quantile (:func:`joint_quantile`, recorded as
        ``view_quantile``) at which the views together reject ``1 - quantile`` of the held-out spectra (as
        thresholds, margin included, apply them). False: each view at ``quantile``, so two views reject up to
        twice that (the bundled model's rule: on it the joint rule halves the held-out spectra rejected but lets
        22.0 % of the untrained minerals through instead of 20.2 %).
    """
    # the exemplars as the model stores them (6 decimals): thresholds of the unrounded ones put a class's farthest
    # held-out spectrum (the threshold itself, at a joint quantile of 1) 1e-8 to 3e-6 rad beyond the stored check,
    # which then rejected 4.2 % of held-out spectra calibrated to reject none
    exemplars = {name: (np.asarray(E, dtype=np.float64).round(6), owner) for name, (E, owner) in exemplars.items()}
    Xt, Pt, yt = train
    yt = np.asarray(yt)
    vt = views(Xt, Pt, wavelengths, preprocessing, list(exemplars))
    has_held_out = held_out is not None and np.asarray(held_out[2]).size > 0
    if has_held_out:
        Xh, Ph, yh = held_out
        yh = np.asarray(yh)
        vh = views(Xh, Ph, wavelengths, preprocessing, list(exemplars))
    spreads = {name: _spread_thresholds(prototype_angle(vt[name], yt, E, owner), yt, n_classes, quantile)
               for name, (E, owner) in exemplars.items()}
    view_quantile = quantile
    if has_held_out:
        held = {name: prototype_angle(vh[name], yh, E, owner) for name, (E, owner) in exemplars.items()}
        if joint:
            view_quantile = joint_quantile(held, yh, spreads, n_classes, quantile, held_out_margin)
    out = []
    for name, (E, owner) in exemplars.items():
        if has_held_out:
            thresholds = held_out_margin * _held_out_thresholds(held[name], yh, spreads[name], n_classes, view_quantile)
        else:
            thresholds = OOD_MARGIN * spreads[name]
        entry = {"view": name, "exemplars": E.tolist(),
                 "exemplar_class": [int(c) for c in owner], "max_angle": [float(t) for t in thresholds]}
        if name == "swir_depth":
            entry["bands"] = [int(b) for b in swir_bands(wavelengths)]
        out.append(entry)
    found = {"method": "angles_to_nearest_class_exemplar", "quantile": float(quantile),
             "calibration": "held-out groups" if has_held_out else "augmented training spectra",
             "margin": (float(held_out_margin) if held_out_margin != 1.0 else None) if has_held_out else OOD_MARGIN,
             "views": out}
    if has_held_out and joint and len(out) > 1:
        found["view_quantile"] = float(view_quantile)
    return found


def feature_reference_rows(y, max_rows=FEATURE_REFERENCE_MAX):
    """Rows of the training spectra (classes ``y``) kept as the feature reference: all of them up to
    ``max_rows``, else evenly spaced rows of each class in proportion to its size (each class at least one)."""
    y = np.asarray(y)
    if y.size <= max_rows:
        return np.arange(y.size)
    keep = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        take = max(1, int(round(max_rows * rows.size / y.size)))
        keep.append(rows[np.linspace(0, rows.size - 1, min(take, rows.size)).round().astype(int)])
    return np.sort(np.unique(np.concatenate(keep)))


def reference_distances(references, k):
    """Feature distance of each reference spectrum to its ``k``-th nearest *other* reference spectrum (cosine
    distance of unit feature vectors), averaged over the networks of an ensemble (``references``: one unit-row
    array per network). How far the training spectra lie from each other in the feature space: the scale that
    carries a threshold from the network that was validated to a network refit on all data."""
    out = []
    for R in references:
        R = np.asarray(R, dtype=np.float64)
        kk = int(min(max(k, 1), R.shape[0] - 1))
        if kk < 1:
            return np.zeros(R.shape[0])
        d = np.empty(R.shape[0])
        for lo in range(0, R.shape[0], ANGLE_CHUNK):
            cos = gemm(R[lo:lo + ANGLE_CHUNK], R.T)
            cos[np.arange(cos.shape[0]), np.arange(lo, lo + cos.shape[0])] = -np.inf
            d[lo:lo + ANGLE_CHUNK] = 1.0 - np.sort(cos, axis=1)[:, -kk]
        out.append(d)
    return np.mean(out, axis=0)


def feature_check(n_classes, k, n_reference, held_out=None, reference=None, quantile=QUANTILE, margin=1.0,
                  scale=1.0):
    """The feature view stored in a model as ``training["ood"]["feature"]``: one threshold on the graph's feature
    distance (:data:`core.engine.spectral_network.DISTANCE_NAME`) for every class.

    ``held_out``: feature distances of held-out spectra (of groups the validated network did not see) to that
    network's reference; the threshold is ``margin`` x their ``quantile``, times ``scale`` (the saved network's
    :func:`reference_distances` median over the validated network's, when a refit replaced it). Without them:
    :data:`OOD_MARGIN` x the ``quantile`` of ``reference`` (:func:`reference_distances` of the saved network)."""
    if held_out is not None and np.asarray(held_out).size:
        d = np.asarray(held_out, dtype=np.float64)
        threshold = float(margin) * float(np.quantile(d[np.isfinite(d)], quantile)) * float(scale)
        calibration = "held-out groups"
    else:
        threshold = OOD_MARGIN * float(np.quantile(np.asarray(reference, dtype=np.float64), quantile))
        calibration, margin = "training spectra", OOD_MARGIN
    threshold = threshold if threshold > OOD_MIN_ANGLE else float("nan")
    return {"method": "cosine distance of the network's penultimate features to the k-th nearest training spectrum",
            "output": DISTANCE_NAME, "k": int(k), "n_reference": int(n_reference), "quantile": float(quantile),
            "margin": float(margin), "scale": round(float(scale), 6), "calibration": calibration,
            "max_distance": [threshold] * int(n_classes)}


#: Fewest labelled spectra of a class (before augmentation) in a model trained on image pixels for the check to
#: judge its pixels: from one labelled pixel (and its augmented copies) the thresholds carry no spread, and every
#: other pixel of the class lay beyond them (the class was trained but never mapped: 2,000 of 2,012 Jasper Ridge
#: tree pixels unclassified, 1,845 given the class without the check).
MIN_CHECKED_SPECTRA = 2


def unchecked(check, classes):
    """``check`` (:func:`fit`, with its feature view) without thresholds for ``classes``: pixels given one of them
    are classified by the network's confidence alone (a missing threshold checks nothing)."""
    classes = set(int(c) for c in classes)
    for view in check["views"]:
        view["max_angle"] = [None if i in classes else t for i, t in enumerate(view["max_angle"])]
    if check.get("feature"):
        check["feature"]["max_distance"] = [None if i in classes else t
                                            for i, t in enumerate(check["feature"]["max_distance"])]
    check["unchecked_classes"] = sorted(classes)
    return check


def _beyond(angle, limit):
    """True where ``angle`` exceeds ``limit`` or is NaN (a zero spectrum); a NaN limit checks nothing."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(limit) & ~(angle <= limit)


def _union_rejected(held, y, spreads, n_classes, q, margin):
    """Share of held-out spectra beyond any view's threshold at per-view quantile ``q``."""
    far = np.zeros(np.asarray(y).size, dtype=bool)
    for name, angle in held.items():
        far |= _beyond(angle, margin * _held_out_thresholds(angle, y, spreads[name], n_classes, q)[y])
    return float(far.mean()) if far.size else 0.0


def joint_quantile(held, y, spreads, n_classes, quantile=QUANTILE, margin=1.0, steps=24):
    """The per-view quantile at which the views *together* reject at most ``1 - quantile`` of the held-out spectra
    ``held`` (``{view: angles}``, classes ``y``): each view at ``quantile`` rejects up to ``1 - quantile`` on its
    own, so two views together up to twice that. Bisection between ``quantile`` and 1 (one view: ``quantile``)."""
    y = np.asarray(y, dtype=np.int64)
    target = 1.0 - quantile
    if len(held) < 2 or _union_rejected(held, y, spreads, n_classes, quantile, margin) <= target:
        return float(quantile)
    lo, hi = float(quantile), 1.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if _union_rejected(held, y, spreads, n_classes, mid, margin) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def _held_out_thresholds(angles, y, spread, n_classes, quantile):
    """Per class: the quantile of its held-out angles; with too few, its spread times the pooled quantile of all
    held-out angles in units of their class's spread."""
    finite = np.isfinite(angles)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = angles / spread[y]
    ok = finite & np.isfinite(relative)
    factor = float(np.quantile(relative[ok], quantile)) if ok.any() else OOD_MARGIN
    thresholds = []
    for c in range(n_classes):
        own = angles[(y == c) & finite]
        value = float(np.quantile(own, quantile)) if own.size >= OOD_MIN_SPECTRA else float(factor * spread[c])
        thresholds.append(value if value > OOD_MIN_ANGLE else float("nan"))
    return np.array(thresholds)


def with_exemplars(check, exemplars):
    """The check with new exemplars (e.g. of every group, after a refit on all of them), same thresholds."""
    out = dict(check)
    out["views"] = [dict(v, exemplars=np.asarray(exemplars[v["view"]][0]).round(6).tolist(),
                         exemplar_class=[int(c) for c in exemplars[v["view"]][1]]) for v in check["views"]]
    return out


def _damaged(what):
    return OreMapError(f"The model's out-of-distribution check is damaged: {what}.", parameter="model",
                       fix="Choose an .onnx model trained or shipped by OreMap.")


def _thresholds(values, n_classes, where):
    """``values`` (one number or null a class; ``n_classes`` None: any number of them) as float64, NaN for null;
    raises when they are not."""
    if not isinstance(values, list) or (n_classes is not None and len(values) != n_classes) or not all(
            t is None or is_number(t) for t in values):
        raise _damaged(f"the thresholds of its {where} are not {n_classes or 'the'} numbers (one a class)")
    return np.array([np.nan if t is None else t for t in values], dtype=np.float64)


def _view_width(info, name):
    """Values a spectrum has in view ``name`` of model ``info``; raises for a view this OreMap does not know."""
    if name in ("preprocessed", "reflectance"):
        return int(info.n_bands)
    if name == "swir_depth":
        bands = swir_bands(info.wavelengths)
        if bands is None:
            raise _damaged(f"its swir_depth view needs at least {SWIR_MIN_BANDS} bands at or beyond "
                           f"{SWIR_FROM:g} nm, and the model's wavelengths have fewer")
        return int(bands.size)
    if name is None:
        raise _damaged("one of its views has no name")
    raise _damaged(f"it has a view {name!r}, which this OreMap does not know (views: "
                   f"{', '.join(VIEWS + ('reflectance',))})")


def check_of(info):
    """The check stored in a model as a list of views ``{"view", "exemplars", "exemplar_class", "max_angle"}``
    (arrays), or None. A model made before the multi-view check stores one ``preprocessed`` view.

    Raises OreMapError (``parameter="model"``) when the stored check cannot be applied as written: a view this
    OreMap does not know, exemplars of another width than the view, exemplar classes out of range, or not one
    threshold a class (any of which would raise, or leave every pixel unclassified)."""
    ood = (info.training or {}).get("ood")
    if not ood:
        return None
    entries = ood.get("views") or ([dict(ood, view="preprocessed")] if ood.get("exemplars") else [])
    if not isinstance(entries, list) or not all(isinstance(v, dict) for v in entries):
        raise _damaged("its views are not a list of objects")
    # a model's metadata; else (no classes) a check being fitted (spectral_cnn), whose sizes are its own
    model = getattr(info, "classes", None) is not None
    n_classes = len(info.classes) if model else None
    out = []
    for v in entries:
        if not v.get("exemplars"):
            continue
        name = v.get("view")
        width = _view_width(info, name) if model else None
        try:
            exemplars = np.asarray(v["exemplars"], dtype=np.float64)
        except (TypeError, ValueError):
            exemplars = None
        if exemplars is None or exemplars.ndim != 2 or exemplars.shape[1] != (width or exemplars.shape[1]):
            raise _damaged(f"the exemplars of its {name} view are not a table of numbers with {width} columns")
        owner = v.get("exemplar_class")
        if model and (not isinstance(owner, list) or len(owner) != exemplars.shape[0] or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_classes for c in owner)):
            raise _damaged(f"the exemplar classes of its {name} view are not {exemplars.shape[0]} class numbers "
                           f"from 0 to {n_classes - 1}")
        out.append({"view": name, "exemplars": exemplars, "exemplar_class": np.asarray(owner, dtype=np.int64),
                    "max_angle": _thresholds(v.get("max_angle"), n_classes, f"{name} view")})
    feature = ood.get("feature")
    if feature:
        if not isinstance(feature, dict):
            raise _damaged("its feature view is not a JSON object")
        out.append({"view": FEATURE_VIEW, "exemplars": None, "exemplar_class": None,
                    "max_angle": _thresholds(feature.get("max_distance"), n_classes, "feature view")})
    return out or None


def has_feature_view(info):
    """True when the model's check has the feature view: its graph returns feature distances, which
    :func:`angles` then needs."""
    return bool(((info.training or {}).get("ood") or {}).get("feature"))


def angles(info, X, P, classes, feature_distance=None):
    """Angles (n, n_views) of spectra ``X`` (raw, at the model's bands; ``P`` preprocessed) to the nearest
    exemplar of their 0-based ``classes`` in each view of the model's check (n, 1) of NaN without one.
    The views are built :data:`ANGLE_CHUNK` rows at a time, so the memory held does not grow with ``n``.
    With the feature view (:func:`has_feature_view`) its column is ``feature_distance``, the graph's second
    output, which must then be given."""
    check = check_of(info)
    X, P = np.asarray(X), np.asarray(P)
    n = P.shape[0]
    if check is None:
        return np.full((n, 1), np.nan)
    classes = np.asarray(classes, dtype=np.int64)
    names = [v["view"] for v in check]
    out = np.full((n, len(check)), np.nan)
    for lo in range(0, n, ANGLE_CHUNK):
        hi = min(n, lo + ANGLE_CHUNK)
        V = views(X[lo:hi], P[lo:hi], info.wavelengths, info.preprocessing_method, names)
        for j, v in enumerate(check):
            if v["view"] in V:
                out[lo:hi, j] = prototype_angle(V[v["view"]], classes[lo:hi], v["exemplars"], v["exemplar_class"])
    if FEATURE_VIEW in names:
        if feature_distance is None:
            raise ValueError("The model's check has the feature view: give the graph's feature distances.")
        out[:, names.index(FEATURE_VIEW)] = np.asarray(feature_distance, dtype=np.float64).reshape(n)
    return out


def angles_bytes(info):
    """Bytes :func:`angles` holds whatever the number of rows: one chunk's views (float64, and a continuum
    removal when the model's preprocessing is another) and each view's :func:`prototype_angle_bytes`."""
    check = check_of(info)
    if check is None:
        return 0
    m = int(info.n_bands)
    total = ANGLE_CHUNK * 8 * m * (len(check) + (0 if info.preprocessing_method == "continuum_removal" else 2))
    for v in check:
        if v["exemplars"] is not None:
            total += prototype_angle_bytes(v["exemplars"].shape[1], len(v["exemplars"]))
    return total


def out_of_distribution(info, angle, classes):
    """True where any view's angle (:func:`angles`; a 1-D array: the first view) exceeds the model's threshold
    for that view and class. A NaN angle is out (a zero spectrum); a NaN threshold checks nothing."""
    check = check_of(info)
    angle = np.asarray(angle, dtype=np.float64)
    angle = angle[:, None] if angle.ndim == 1 else angle
    if check is None:
        return np.zeros(angle.shape[0], dtype=bool)
    classes = np.asarray(classes, dtype=np.int64)
    far = np.zeros(angle.shape[0], dtype=bool)
    for j in range(angle.shape[1]):
        far |= _beyond(angle[:, j], check[j]["max_angle"][classes])
    return far


def describe(info):
    """One line for logs: the views and the range of thresholds of each."""
    check = check_of(info)
    if check is None:
        return ""
    parts = []
    for v in check:
        t = v["max_angle"][np.isfinite(v["max_angle"])]
        unit = "" if v["view"] == FEATURE_VIEW else " rad"
        parts.append(f"{v['view']} {t.min():.3f}-{t.max():.3f}{unit}" if t.size else f"{v['view']} off")
    return "; ".join(parts)
