"""Mineral abundance from spectra: an ensemble of regressors, closed to 100 %, with intervals.

Sites that scan rock, core or conveyor material with VNIR/SWIR cameras hold laboratory
compositions (XRD phases in %) for some samples. Here those samples are regions of
interest (ROIs) on the image, each with a measured composition; every pixel of an ROI
carries its ROI's composition and its ROI id (the group of cross-validation).

Training (:func:`train_abundance_model`):

1. the composition table is checked and put in % (fractions are detected), with an
   optional "Other" part for what the chosen minerals do not cover
   (:func:`prepare_compositions`);
2. the ROIs are split into folds (whole ROIs, never pixels: :func:`roi_folds`); inside
   each training fold the spectra are augmented (noise, brightness) *after* the split,
   preprocessed, and every model family is fitted: PLS, ridge, extra trees, gradient
   boosting and a 1D CNN (:data:`FAMILIES`);
3. out-of-fold predictions give each family's honest error and the stacking weights
   (non-negative least squares per mineral, :func:`stacking_weights`); the ensemble's
   own out-of-fold error uses weights fitted without the fold (nested);
4. closure: predictions are projected onto the simplex (non-negative, summing to
   exactly 100 %), or the models work in isometric log-ratio (ILR) space whose inverse
   is closed by construction;
5. intervals: split-conformal on the grouped out-of-fold residuals, scaled by the
   members' disagreement (the spread): ``|y - a| / (spread + floor)`` has an
   empirical quantile ``q`` per mineral, and the interval ``a -/+ q (spread + floor)``
   clipped to [0, 100] holds the truth at the chosen rate on new ROIs. Its coverage
   is checked on each fold with a quantile from the other folds only;
6. a physics baseline on the same folds: endmember spectra estimated from the training
   ROIs (least squares on the compositions) and :func:`core.unmixing.unmix`, so the
   report shows when plain unmixing is as good;
7. the final members are refitted on all ROIs and joined into one ONNX graph
   (:mod:`core.onnx_ensemble`) with the metadata that prediction needs.

Prediction (:func:`predict_abundance_map`) streams a raster through the block engine:
abundance bands (%), lower and upper interval bands, the dominant mineral, and summary
statistics.
"""

import datetime
import hashlib
from dataclasses import dataclass, field

import numpy as np

from . import compositional, compute
from .colors import class_colours, hex_colour
from .errors import OreMapError
from .feedback import ensure
from .model_format import ModelInfo, OnnxModel, write_model

TASK = "mineral_abundance"
INPUT_NAME = "spectra"

FAMILIES = [
    ("pls", "PLS regression"),
    ("ridge", "Ridge regression"),
    ("extra_trees", "Extra trees"),
    ("hgb", "Gradient boosting (HistGradientBoosting)"),
    ("cnn", "1D CNN regressor"),
]
FAMILY_LABELS = dict(FAMILIES)
SPACES = ("simplex", "ilr")
TOTAL = 100.0

#: Probability levels at which the conformal scores are stored in the model (any level can be asked later).
_SCORE_LEVELS = np.linspace(0.0, 1.0, 1001)


# ---------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------
@dataclass
class Compositions:
    """ROI compositions ready for training: ``values`` (n_roi, k) in % summing to 100."""

    names: list
    values: np.ndarray
    units: str
    other_added: bool
    messages: list = field(default_factory=list)
    kept: np.ndarray = None  # ROIs kept (rows without missing values)


def prepare_compositions(values, names, units="auto", add_other=True, tolerance=1.0):
    """Check a table of measured compositions and bring it to % summing to 100.

    Parameters
    ----------
    values : array (n_roi, k)
        Measured amounts per ROI (NaN = not measured: the ROI is left out).
    names : list of str
        Mineral names (k >= 1; with a single mineral, "Other" is required).
    units : {"auto", "percent", "fraction"}
        ``"auto"``: fractions when no value exceeds 1 (and rows sum to at most 1.05),
        else %. The choice is reported in ``messages``.
    add_other : bool
        Add an "Other" part, 100 - sum, when some rows sum to less than 100 - ``tolerance``.
        Without it such rows are closed (divided by their sum), which is reported.
    tolerance : float
        Percent points of slack on the row sums (rounding of lab reports).
    """
    values = np.asarray(values, dtype=np.float64)
    names = [str(n) for n in names]
    if values.ndim != 2 or values.shape[1] != len(names) or not names:
        raise OreMapError("The composition table must have one column per mineral.", "fields")
    if len(set(names)) != len(names):
        raise OreMapError("Mineral names must be unique.", "fields")
    messages = []
    kept = np.isfinite(values).all(axis=1)
    if not kept.all():
        messages.append(f"{int((~kept).sum())} ROIs without a value for every mineral were left out.")
    v = values[kept]
    if v.shape[0] == 0:
        raise OreMapError("No ROI has a value for every chosen mineral.", "fields",
                          "Fill the composition fields of the ROIs.")
    if (v < 0).any():
        raise OreMapError(f"Negative abundances were found (smallest {v.min():.4g}).", "fields",
                          "Abundances must be >= 0 (in % or fractions).")
    if units == "auto":
        units = "fraction" if v.max() <= 1.0 + 1e-9 and v.sum(axis=1).max() <= 1.05 else "percent"
        messages.append("Abundances read as fractions (0-1) and converted to %." if units == "fraction"
                        else "Abundances read as percentages (0-100).")
    if units == "fraction":
        v = v * 100.0
    elif units != "percent":
        raise OreMapError(f"Unknown unit '{units}'.", "units")
    sums = v.sum(axis=1)
    if (sums > 100.0 + tolerance).any():
        n_over = int((sums > 100.0 + tolerance).sum())
        messages.append(f"{n_over} ROIs sum to more than 100 % (up to {sums.max():.1f} %); they were closed to "
                        "100 %.")
    other = bool(add_other and (sums < 100.0 - tolerance).any())
    if other:
        if "Other" in names:
            raise OreMapError("A field is already called 'Other'.", "fields", "Rename it.")
        v = np.column_stack([v, np.clip(100.0 - sums, 0.0, None)])
        names = names + ["Other"]
        messages.append(f"An 'Other' part (100 % minus the chosen minerals) was added: the chosen minerals "
                        f"cover {sums.min():.1f}-{sums.max():.1f} % of the ROIs.")
    elif (sums < 100.0 - tolerance).any():
        messages.append("Rows summing to less than 100 % were closed to 100 % (no 'Other' part).")
    if len(names) < 2:
        raise OreMapError("At least two parts are needed (two minerals, or one mineral and 'Other').", "fields")
    sums = v.sum(axis=1)
    if (sums <= 0).any():
        raise OreMapError("Some ROIs have all abundances zero.", "fields")
    v = v / sums[:, None] * 100.0
    return Compositions(names, v, units, other, messages, kept)


# ---------------------------------------------------------------------------
# Folds, stacking, metrics
# ---------------------------------------------------------------------------
def roi_folds(groups, n_folds=5, seed=0):
    """Fold number of every sample: whole groups (ROIs) per fold, groups shuffled with ``seed``.

    Groups are dealt to folds in a random order, so folds hold (nearly) equal numbers
    of ROIs. Raises when there are fewer than 3 groups.
    """
    groups = np.asarray(groups).reshape(-1)
    unique, inverse = np.unique(groups, return_inverse=True)
    if unique.size < 3:
        raise OreMapError(f"Cross-validation needs at least 3 ROIs; {unique.size} cover valid pixels.", "training",
                          "Digitise more ROIs with measured compositions.")
    k = int(min(max(2, n_folds), unique.size))
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of_group = np.empty(unique.size, dtype=np.int64)
    fold_of_group[order] = np.arange(unique.size) % k
    return fold_of_group[inverse], k


def stacking_weights(P, T, shared=True):
    """Non-negative stacking weights that sum to one (a convex combination of the members).

    ``P`` (n, m, d) member predictions, ``T`` (n, d) targets. With ``shared`` one weight
    vector serves every output (fewer parameters: steadier with few ROIs), else one per
    output. Solved exactly as a fully constrained least-squares problem
    (:func:`core.unmixing.fcls`: the members' predictions play the endmembers). Returns (m, d).
    """
    from .unmixing import fcls

    P = np.asarray(P, np.float64)
    T = np.asarray(T, np.float64)
    n, m, d = P.shape
    if m == 1:
        return np.ones((1, d))
    if shared:
        E = P.transpose(0, 2, 1).reshape(n * d, m)
        w = np.asarray(fcls(T.reshape(1, n * d), E), np.float64).reshape(m)
        return np.repeat(w[:, None], d, axis=1)
    return np.column_stack([np.asarray(fcls(T[None, :, j], P[:, :, j]), np.float64).reshape(m)
                            for j in range(d)])


def regression_metrics(Y, A, names):
    """Per part: RMSE, bias (mean prediction - truth), R2 (1 - SSE/SST); plus the mean RMSE."""
    Y = np.asarray(Y, np.float64)
    A = np.asarray(A, np.float64)
    rows = {}
    for j, name in enumerate(names):
        e = A[:, j] - Y[:, j]
        sst = float(((Y[:, j] - Y[:, j].mean()) ** 2).sum())
        rows[name] = {"rmse": float(np.sqrt(np.mean(e ** 2))), "bias": float(e.mean()),
                      "r2": float(1.0 - (e ** 2).sum() / sst) if sst > 0 else float("nan")}
    rows["mean_rmse"] = float(np.mean([rows[n]["rmse"] for n in names]))
    return rows


def conformal_quantile(scores, level):
    """The split-conformal quantile: the ceil((n+1) level)-th smallest score (inf when n is too small)."""
    scores = np.sort(np.asarray(scores, np.float64).reshape(-1))
    n = scores.size
    rank = int(np.ceil((n + 1) * float(level)))
    return float(scores[rank - 1]) if 1 <= rank <= n else float("inf")


def intervals(A, spread, quantiles, floors):
    """Lower and upper bounds ``a -/+ q (spread + floor)``, clipped to [0, 100]."""
    half = np.asarray(quantiles)[None, :] * (np.asarray(spread) + np.asarray(floors)[None, :])
    return np.clip(A - half, 0.0, TOTAL), np.clip(A + half, 0.0, TOTAL)


# ---------------------------------------------------------------------------
# Model families
# ---------------------------------------------------------------------------
DEFAULT_CNN = {"channels": (16, 32, 32), "kernels": (7, 5, 3), "hidden": 64, "dropout": 0.1,
               "epochs": 30, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4}


def _sklearn_member(family, n_samples, n_bands, n_outputs, seed, n_jobs, options):
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if family == "pls":
        n_components = int(options.get("n_components", 12))
        return make_pipeline(StandardScaler(), PLSRegression(
            n_components=int(max(1, min(n_components, n_bands, n_samples - 1))), scale=False))
    if family == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=options.get("alphas", np.logspace(-3, 4, 15))))
    if family == "extra_trees":
        return ExtraTreesRegressor(**{"n_estimators": 30, "min_samples_leaf": 8, "max_features": 0.3, **options},
                                   n_jobs=n_jobs, random_state=seed)
    raise OreMapError(f"Unknown model family '{family}'.", "families")


class _HGBMulti:
    """One HistGradientBoostingRegressor per output (scikit-learn's is single-output)."""

    def __init__(self, seed, options=None):
        self.seed = seed
        # sized for prediction speed too: every tree is walked for every pixel of a scene
        self.options = {"max_iter": 30, "learning_rate": 0.25, "max_leaf_nodes": 15, "min_samples_leaf": 20,
                        "l2_regularization": 1.0, **(options or {})}
        self.models = []

    def fit(self, X, T):
        from sklearn.ensemble import HistGradientBoostingRegressor

        from .compute import openmp_limit

        with openmp_limit(X.shape[0]):
            self.models = [HistGradientBoostingRegressor(**self.options, early_stopping=False,
                                                         random_state=self.seed).fit(X, T[:, j])
                           for j in range(T.shape[1])]
        return self

    def predict(self, X):
        return np.column_stack([m.predict(X) for m in self.models])


class _CNNRegressor:
    """The spectral 1D CNN of :mod:`core.spectral_cnn` with a regression head (MSE on standardised targets)."""

    def __init__(self, seed, options=None, feedback=None):
        self.seed = seed
        self.options = {**DEFAULT_CNN, **(options or {})}
        self.feedback = ensure(feedback)
        self.module = None

    def fit(self, X, T):
        from .spectral_cnn import SpectralCNN, _torch_classes

        torch = _torch_classes()["torch"]
        o = self.options
        X = np.asarray(X, np.float32)
        T = np.asarray(T, np.float64)
        xm, xs = X.mean(axis=0), X.std(axis=0)
        xs = np.where(xs > 1e-6, xs, 1.0)
        tm, ts = T.mean(axis=0), T.std(axis=0)
        ts = np.where(ts > 1e-9, ts, 1.0)
        Z = torch.from_numpy(((X - xm) / xs).astype(np.float32))
        U = torch.from_numpy(((T - tm) / ts).astype(np.float32))
        rng = np.random.default_rng([self.seed, 7])
        previous = torch.are_deterministic_algorithms_enabled()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
            try:
                net = SpectralCNN(X.shape[1], T.shape[1], channels=o["channels"], kernels=o["kernels"],
                                  hidden=o["hidden"], dropout=o["dropout"])
                opt = torch.optim.AdamW(net.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
                epochs = int(o["epochs"])
                sched = torch.optim.lr_scheduler.OneCycleLR(
                    opt, max_lr=o["lr"], total_steps=epochs * max(1, -(-len(Z) // o["batch_size"])))
                loss_fn = torch.nn.MSELoss()
                for epoch in range(epochs):
                    self.feedback.check()
                    net.train()
                    order = torch.from_numpy(rng.permutation(len(Z)))
                    for start in range(0, len(Z), o["batch_size"]):
                        batch = order[start:start + o["batch_size"]]
                        if batch.numel() < 2:
                            sched.step()
                            continue
                        opt.zero_grad()
                        loss = loss_fn(net(Z[batch]), U[batch])
                        loss.backward()
                        opt.step()
                        sched.step()
                    if not np.isfinite(loss.item()):
                        raise OreMapError("The CNN regressor diverged (the loss is not a number).", "training",
                                          "Leave the CNN out or check the spectra for extreme values.")
                    self.feedback.progress(100.0 * (epoch + 1) / epochs)
            finally:
                torch.use_deterministic_algorithms(previous)
        net.eval()
        self.module = _export_module(torch, net, xm, xs, tm, ts)
        return self

    def predict(self, X):
        return compute.torch_predict(self.module, X, 8192).astype(np.float64)

    def to_onnx(self, n_bands):
        from .spectral_cnn import export_onnx

        return export_onnx(self.module, n_bands)


def _export_module(torch, net, xm, xs, tm, ts):
    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            for name, value in (("xm", xm), ("xs", xs), ("tm", tm), ("ts", ts)):
                self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)))

        def forward(self, x):
            return self.net((x - self.xm) / self.xs) * self.ts + self.tm

    module = Regressor()
    module.eval()
    return module


def make_member(family, n_samples, n_bands, n_outputs, seed=0, options=None, n_jobs=None, feedback=None):
    """An unfitted member with ``fit(X, T)`` / ``predict(X)``; ``options`` override its defaults
    (e.g. ``{"epochs": 20}`` for the CNN, ``{"max_iter": 50}`` for gradient boosting)."""
    options = dict(options or {})
    if family == "hgb":
        return _HGBMulti(seed, options)
    if family == "cnn":
        return _CNNRegressor(seed, options, feedback)
    return _sklearn_member(family, n_samples, n_bands, n_outputs, seed, n_jobs, options)


def member_onnx(family, member, n_bands):
    from . import onnx_ensemble

    if family == "hgb":
        return onnx_ensemble.hgb_to_onnx(member.models, n_bands)
    if family == "cnn":
        return member.to_onnx(n_bands)
    return onnx_ensemble.sklearn_to_onnx(member, n_bands)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def augment_spectra(X, T, groups, copies, rng, snr_db=None, brightness=0.0):
    """Training spectra plus ``copies`` noisy/brightened variants of each (targets and groups repeated).

    Noise: Gaussian, standard deviation ``mean(|x|) / 10**(snr_db/20)``; brightness: a factor
    ``U(1 - brightness, 1 + brightness)`` per variant.
    """
    if copies <= 0 or (snr_db is None and brightness <= 0):
        return X, T, groups
    src = np.repeat(np.arange(X.shape[0]), int(copies))
    V = X[src].astype(np.float64)
    if brightness > 0:
        V *= rng.uniform(1.0 - brightness, 1.0 + brightness, (V.shape[0], 1))
    if snr_db is not None:
        sigma = np.mean(np.abs(V), axis=1, keepdims=True) / 10.0 ** (float(snr_db) / 20.0)
        V += sigma * rng.standard_normal(V.shape)
    return (np.concatenate([X, V.astype(X.dtype)]), np.concatenate([T, T[src]]),
            np.concatenate([groups, groups[src]]))


def _to_targets(Y, space):
    if space == "ilr":
        return compositional.ilr(compositional.replace_zeros(Y / TOTAL))
    return Y


def _to_parts(E, space):
    """Closed compositions (%) from ensemble outputs."""
    if space == "ilr":
        return compositional.ilr_inverse(E, TOTAL)
    return compositional.project_simplex(E, TOTAL)


def _member_parts(P, space):
    """Each member's prediction in % (n, m, k) for the spread."""
    if space == "ilr":
        n, m, d = P.shape
        return compositional.ilr_inverse(P.reshape(n * m, d), TOTAL).reshape(n, m, d + 1)
    return P


def _spread(P, space):
    Q = _member_parts(P, space)
    return Q.std(axis=1)


def estimate_endmembers(X, Y):
    """Endmember spectra (k, b) that best reproduce ``X`` from the fractions ``Y / 100``
    (least squares, clipped at 0)."""
    F = np.asarray(Y, np.float64) / TOTAL
    E, *_ = np.linalg.lstsq(F, np.asarray(X, np.float64), rcond=None)
    return np.clip(E, 0.0, None)


@dataclass
class AbundanceResult:
    """What :func:`train_abundance_model` returns."""

    onnx_model: object
    info: ModelInfo
    names: list
    oof: dict            # label -> (n, k) out-of-fold predictions in %, closed
    truth: np.ndarray    # (n, k) in %
    groups: np.ndarray
    folds: np.ndarray
    metrics: dict        # label -> regression_metrics
    coverage: dict       # part -> honest coverage of the intervals
    weights: np.ndarray  # (m, d) final stacking weights
    families: list
    quantiles: np.ndarray
    floors: np.ndarray
    spread: np.ndarray   # (n, k) out-of-fold spread
    widths: dict = field(default_factory=dict)

    def save(self, path):
        return write_model(self.onnx_model, self.info, path)


def train_abundance_model(X, Y, groups, names, wavelengths=None, fwhm=None, band_names=None,
                          preprocessing="none", families=("pls", "ridge", "extra_trees", "hgb", "cnn"),
                          space="simplex", n_folds=5, augment_copies=0, snr_db=None, brightness=0.0,
                          level=0.9, seed=0, fcls=True, member_options=None, n_jobs=None,
                          description="", feedback=None):
    """Train the abundance ensemble; see the module docstring for the steps.

    Parameters
    ----------
    X : array (n, b)
        Reflectance spectra of ROI pixels (at the model's bands).
    Y : array (n, k)
        Composition of each pixel's ROI in %, rows summing to 100 (see :func:`prepare_compositions`).
    groups : array (n,)
        ROI id of each pixel.
    names : list of str
        The k part names.
    preprocessing : {"none", "brightness", "continuum_removal"}
        Applied to spectra before every model (as in :func:`core.spectral_cnn.preprocess`).
    families : sequence of str
        Members, from :data:`FAMILIES`.
    space : {"simplex", "ilr"}
    n_folds : int
        Grouped cross-validation folds (at most the number of ROIs).
    augment_copies, snr_db, brightness
        Augmentation of the training folds only (see :func:`augment_spectra`).
    level : float
        Interval level reported in the training summary (any level can be used at prediction).
    fcls : bool
        Also evaluate linear unmixing with endmembers estimated from the training ROIs.
    member_options : dict, optional
        ``{family: {option: value}}`` overriding a member's defaults (see :func:`make_member`).
    """
    from .spectral_cnn import PREPROCESSING_METHODS, preprocess

    feedback = ensure(feedback)
    X = np.asarray(X, np.float32)
    Y = np.asarray(Y, np.float64)
    groups = np.asarray(groups).reshape(-1)
    names = [str(n) for n in names]
    n, b = X.shape
    k = len(names)
    if Y.shape != (n, k) or groups.size != n:
        raise OreMapError("Spectra, compositions and ROI ids do not match.", "training")
    if not np.isfinite(X).all():
        raise OreMapError("Training spectra hold NaN or infinite values.", "training")
    if np.abs(Y.sum(axis=1) - TOTAL).max() > 1e-6 or (Y < 0).any():
        raise OreMapError("Compositions must be >= 0 and sum to 100 %.", "training")
    families = [f for f in families]
    if not families or any(f not in FAMILY_LABELS for f in families):
        raise OreMapError("Choose at least one model family.", "families",
                          "Families: " + ", ".join(FAMILY_LABELS.values()))
    if space not in SPACES:
        raise OreMapError(f"Unknown modelling space '{space}'.", "space")
    if preprocessing not in PREPROCESSING_METHODS:
        raise OreMapError(f"Unknown preprocessing '{preprocessing}'.", "preprocessing")
    if not 0.5 <= float(level) < 1.0:
        raise OreMapError("The interval level must be between 0.5 and 0.99.", "level")
    wl = None if wavelengths is None else np.asarray(wavelengths, np.float64)
    member_options = {f: dict(o) for f, o in (member_options or {}).items()}
    folds, n_folds = roi_folds(groups, n_folds, seed)
    T = _to_targets(Y, space)
    d = T.shape[1]
    m = len(families)
    P_oof = np.zeros((n, m, d))
    unmix_oof = {"fcls": np.full((n, k), np.nan), "nn_closed": np.full((n, k), np.nan)} if fcls else {}
    n_steps = n_folds + 1
    rng = np.random.default_rng([seed, 11])
    feedback.info(f"{n} pixels from {np.unique(groups).size} ROIs, {b} bands, {k} parts; {n_folds}-fold "
                  f"cross-validation by ROI; members: {', '.join(FAMILY_LABELS[f] for f in families)}.")

    def fit_members(Xtr, Ttr, gtr, step):
        Xa, Ta, _ = augment_spectra(Xtr, Ttr, gtr, augment_copies, rng, snr_db, brightness)
        Pa = preprocess(Xa, preprocessing, wl)
        fitted = []
        for i, family in enumerate(families):
            sub = feedback.scaled(100.0 * (step + i / m) / n_steps, 100.0 * (step + (i + 1) / m) / n_steps)
            member = make_member(family, Pa.shape[0], b, d, seed=seed, options=member_options.get(family),
                                 n_jobs=n_jobs, feedback=sub)
            feedback.check()
            member.fit(Pa, Ta)
            fitted.append(member)
        return fitted

    for f in range(n_folds):
        feedback.check()
        tr, va = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        members = fit_members(X[tr], T[tr], groups[tr], f)
        Pva = preprocess(X[va], preprocessing, wl)
        for i, member in enumerate(members):
            P_oof[va, i] = np.asarray(member.predict(Pva), np.float64).reshape(va.size, d)
        if fcls:
            from .unmixing import unmix

            E = estimate_endmembers(X[tr], Y[tr])
            for mode in unmix_oof:
                A, _ = unmix(X[va], E.T, mode=mode)
                unmix_oof[mode][va] = np.nan_to_num(A.astype(np.float64)) * TOTAL
        feedback.info(f"Fold {f + 1}/{n_folds}: {va.size} pixels of {np.unique(groups[va]).size} ROIs held out.")

    # stacking: final weights on all out-of-fold predictions; the ensemble's own OOF with nested weights
    W = stacking_weights(P_oof, T)
    E_oof = np.zeros((n, d))
    for f in range(n_folds):
        va, tr = folds == f, folds != f
        E_oof[va] = np.einsum("nmd,md->nd", P_oof[va], stacking_weights(P_oof[tr], T[tr]))
    oof = {FAMILY_LABELS[fam]: _to_parts(P_oof[:, i], space) for i, fam in enumerate(families)}
    A_oof = _to_parts(E_oof, space)
    if m > 1:
        oof["Ensemble"] = A_oof
    for mode, A in unmix_oof.items():
        oof["Unmixing (FCLS)" if mode == "fcls" else "Unmixing (NN, closed)"] = compositional.project_simplex(A, TOTAL)
    metrics = {label: regression_metrics(Y, A, names) for label, A in oof.items()}

    # conformal intervals scaled by the members' spread
    S_oof = _spread(P_oof, space)
    floors = np.maximum(np.median(S_oof, axis=0), 0.5) if m > 1 else np.full(k, 1.0)
    R = np.abs(Y - A_oof) / (S_oof + floors)
    quantiles = np.array([conformal_quantile(R[:, j], level) for j in range(k)])
    coverage, widths = {}, {}
    covered = np.zeros((n, k), bool)
    width = np.zeros((n, k))
    for f in range(n_folds):
        va, tr = folds == f, folds != f
        q = np.array([conformal_quantile(R[tr, j], level) for j in range(k)])
        lo, hi = intervals(A_oof[va], S_oof[va], q, floors)
        covered[va] = (Y[va] >= lo - 1e-9) & (Y[va] <= hi + 1e-9)
        width[va] = hi - lo
    for j, name in enumerate(names):
        coverage[name] = float(covered[:, j].mean())
        widths[name] = float(width[:, j].mean())
    coverage["all"] = float(covered.mean())
    score_table = np.array([np.quantile(R[:, j], _SCORE_LEVELS) for j in range(k)])

    # final members on everything
    feedback.info("Fitting the final members on all ROIs.")
    members = fit_members(X, T, groups, n_folds)
    from . import onnx_ensemble

    graph = onnx_ensemble.combine([member_onnx(fam, mem, b) for fam, mem in zip(families, members)], W,
                                  np.zeros(d), b, k, space=space,
                                  basis=compositional.ilr_basis(k) if space == "ilr" else None)
    ens_label = "Ensemble" if m > 1 else FAMILY_LABELS[families[0]]
    summary_metrics = {
        "cv_rmse": {label: {nm: metrics[label][nm]["rmse"] for nm in names} for label in metrics},
        "cv_r2": {label: {nm: metrics[label][nm]["r2"] for nm in names} for label in metrics},
        "ensemble": ens_label,
        "coverage": coverage, "level": float(level), "mean_interval_width": widths,
    }
    colours = class_colours(names)
    digest = hashlib.sha256(np.ascontiguousarray(X, "<f4").tobytes() + np.ascontiguousarray(Y, "<f8").tobytes())
    info = ModelInfo(
        task=TASK,
        classes=[{"name": nm, "color": hex_colour(c)} for nm, c in zip(names, colours)],
        input={"name": INPUT_NAME, "n_bands": int(b)},
        output={"name": "abundances", "kind": "abundance_percent", "spread": "spread"},
        wavelengths=None if wl is None else [float(v) for v in wl],
        fwhm=None if fwhm is None else [float(v) for v in np.asarray(fwhm, np.float64)],
        band_names=None if band_names is None else [str(v) for v in band_names],
        preprocessing={"method": preprocessing},
        training={
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "data_hash": digest.hexdigest(), "n_samples": int(n), "n_rois": int(np.unique(groups).size),
            "metrics": summary_metrics,
            "parameters": {"families": families, "space": space, "n_folds": int(n_folds),
                           "augment_copies": int(augment_copies), "snr_db": snr_db, "brightness": float(brightness),
                           "seed": int(seed), "weights": W.tolist(),
                           "member_options": {f: {k_: list(v) if isinstance(v, (tuple, np.ndarray)) else v
                                                  for k_, v in o.items()} for f, o in member_options.items()}},
        },
        description=str(description),
    )
    info.extra["abundance"] = {
        "space": space, "total": TOTAL, "other_part": "Other" in names,
        "conformal": {"floors": floors.tolist(), "levels": _SCORE_LEVELS.tolist(), "scores": score_table.tolist(),
                      "n_calibration": int(n), "default_level": float(level)},
    }
    info = ModelInfo.from_json(info.to_json())
    feedback.progress(100.0)
    return AbundanceResult(graph, info, names, oof, Y, groups, folds, metrics, coverage, W, families, quantiles,
                           floors, S_oof, widths)


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------
class AbundanceModel:
    """A trained abundance model file, ready to predict (onnxruntime)."""

    def __init__(self, path, threads=None):
        self.onnx = OnnxModel(path, threads=threads)
        self.info = self.onnx.info
        from .model_task import check_task

        check_task(self.info, TASK, path)
        if "abundance" not in self.info.extra:
            raise OreMapError(f"'{path}' has no abundance metadata.", "model",
                              "Choose a model made by 'Train mineral abundance model'.")
        meta = self.info.extra["abundance"]["conformal"]
        self.names = self.info.class_names
        self.levels = np.asarray(meta["levels"], np.float64)
        self.scores = np.asarray(meta["scores"], np.float64)
        self.floors = np.asarray(meta["floors"], np.float64)
        self.n_calibration = int(meta["n_calibration"])

    def quantiles(self, level):
        """Conformal score quantile per part at ``level`` (finite-sample corrected)."""
        if not 0.5 <= float(level) < 1.0:
            raise OreMapError("The interval level must be between 50 and 99 %.", "level")
        p = min(1.0, np.ceil((self.n_calibration + 1) * float(level)) / self.n_calibration)
        return np.array([np.interp(p, self.levels, s) for s in self.scores])

    def predict(self, X, level=0.9, preprocessed=False, members=False):
        """Abundances (%), lower and upper bounds for spectra at the model's bands.

        With ``members``, also each member's closed prediction (n, m, k) in %.
        """
        from .spectral_cnn import preprocess

        X = np.asarray(X, np.float32)
        if not preprocessed:
            X = preprocess(X, self.info.preprocessing_method, self.info.wavelengths)
        out = self.onnx.run_outputs(X)
        A = compositional.project_simplex(out["abundances"].astype(np.float64), TOTAL)
        lo, hi = intervals(A, out["spread"].astype(np.float64), self.quantiles(level), self.floors)
        if not members:
            return A, lo, hi
        P = out["members"].astype(np.float64)
        space = self.info.extra["abundance"]["space"]
        closed = np.stack([_to_parts(P[:, i], space) for i in range(P.shape[1])], axis=1)
        return A, lo, hi, closed


def dominant(A):
    """Index of the largest part of each row."""
    return np.argmax(A, axis=1)


def predict_abundance_map(raster_path, model_path, out_path, interval_path=None, dominant_path=None, level=0.9,
                          image_bands=None, resampler=None, scale=None, nodata=None, memory_mb=None,
                          feedback=None):
    """Abundance (%), interval and dominant-mineral rasters; returns summary statistics.

    ``image_bands`` (1-based) and ``resampler`` (matrix from image bands to model bands) come
    from :func:`core.mapping.model_input` so the image matches the model's wavelengths.
    """
    from .raster import OutputSpec, RasterSource, class_nodata, class_raster_dtype, run_pixelwise

    feedback = ensure(feedback)
    model = AbundanceModel(model_path)
    names = model.names
    k = len(names)
    pct = int(round(100 * float(level)))
    stats = {"n": 0, "sum": np.zeros(k), "sumsq": np.zeros(k), "dominant": np.zeros(k, np.int64),
             "width": np.zeros(k)}
    colours = model.info.class_rgb
    outputs = [OutputSpec(out_path, [f"{nm} (%)" for nm in names], band_tags=[{"mineral": nm, "unit": "%"}
                                                                            for nm in names],
                          tags={"oremap_task": TASK, "oremap_model": model_path})]
    if interval_path:
        outputs.append(OutputSpec(interval_path, [f"{nm} lower {pct}%" for nm in names]
                                  + [f"{nm} upper {pct}%" for nm in names],
                                  tags={"oremap_interval_level": f"{level:g}"}))
    if dominant_path:
        outputs.append(OutputSpec(dominant_path, ["Dominant mineral"], dtype=class_raster_dtype(k),
                                  nodata=class_nodata(k), colormap={i + 1: c for i, c in enumerate(colours)},
                                  tags={"oremap_classes": ";".join(names)}))

    def func(pixels):
        X = pixels if resampler is None else pixels @ resampler
        A, lo, hi = model.predict(X, level)
        stats["n"] += A.shape[0]
        stats["sum"] += A.sum(axis=0)
        stats["sumsq"] += (A ** 2).sum(axis=0)
        top = dominant(A)
        stats["dominant"] += np.bincount(top, minlength=k)
        stats["width"] += (hi - lo).sum(axis=0)
        results = [A.astype(np.float32)]
        if interval_path:
            results.append(np.hstack([lo, hi]).astype(np.float32))
        if dominant_path:
            results.append(top + 1)
        return results

    with RasterSource(raster_path, bands=image_bands, nodata=nodata, scale=scale, feedback=feedback) as source:
        run = run_pixelwise(source, outputs, func, memory_mb=memory_mb, work_bytes_per_pixel=64 * (k + 4) + 8 *
                            model.info.n_bands, feedback=feedback)
        pixel_area = abs(source.transform.a * source.transform.e - source.transform.b * source.transform.d)
    n = max(stats["n"], 1)
    mean = stats["sum"] / n
    sd = np.sqrt(np.maximum(stats["sumsq"] / n - mean ** 2, 0.0))
    table = [{"mineral": nm, "mean_percent": float(mean[j]), "sd_percent": float(sd[j]),
              "area_share_percent": float(mean[j]),
              "dominant_share_percent": float(100.0 * stats["dominant"][j] / n),
              "dominant_area": float(stats["dominant"][j] * pixel_area),
              "mean_interval_width": float(stats["width"][j] / n)} for j, nm in enumerate(names)]
    return {"valid_pixels": run["valid_pixels"], "table": table, "pixel_area": pixel_area, "names": names}


def zone_statistics(abundance_path, geometries, zone_names, names, feedback=None):
    """Per zone (polygon) and mineral: mean, sd and dominant share, read from an abundance raster."""
    from .raster import RasterSource
    from .sampling import pixels_under, read_covered

    with RasterSource(abundance_path, scale=1.0) as source:
        pixels = pixels_under(geometries, source.transform, source.width, source.height, feedback=feedback)
        values, valid = read_covered(source.read, pixels)
    rows = []
    for z, zone in enumerate(zone_names):
        sel = (pixels.index == z) & valid
        A = values[sel] if values is not None else np.zeros((0, len(names)))
        top = np.bincount(np.argmax(A, axis=1), minlength=len(names)) if A.shape[0] else np.zeros(len(names))
        for j, nm in enumerate(names):
            rows.append({"zone": str(zone), "mineral": nm, "pixels": int(A.shape[0]),
                         "mean_percent": float(A[:, j].mean()) if A.shape[0] else float("nan"),
                         "sd_percent": float(A[:, j].std()) if A.shape[0] else float("nan"),
                         "dominant_share_percent": float(100.0 * top[j] / A.shape[0]) if A.shape[0] else float("nan")})
    return rows


# ---------------------------------------------------------------------------
# Report and tables
# ---------------------------------------------------------------------------
def training_report(result, title="Mineral abundance model", data_notes=(), max_points=600, seed=0):
    """HTML report of a :class:`AbundanceResult`: model comparison, predicted vs measured, coverage."""
    from . import report

    names = result.names
    labels = list(result.metrics)
    ens = result.info.training["metrics"]["ensemble"]
    level = result.info.training["metrics"]["level"]
    singles = [FAMILY_LABELS[f] for f in result.families]
    best_single = min(singles, key=lambda lab: result.metrics[lab]["mean_rmse"])
    sections = []
    n_rois = int(np.unique(result.groups).size)
    params = result.info.training["parameters"]
    lines = [f"{result.truth.shape[0]} pixels from {n_rois} ROIs; parts: {', '.join(names)}.",
             f"Cross-validation: {params['n_folds']} folds of whole ROIs (no ROI is ever on both sides); every "
             "figure below is out-of-fold, for ROIs the models did not see.",
             f"Closure: {'projection onto the simplex' if params['space'] == 'simplex' else 'models in isometric log-ratio (ILR) space'}"
             f" (abundances >= 0, summing to exactly 100 %). Preprocessing: {result.info.preprocessing_method}.",
             f"Augmentation of the training folds: {params['augment_copies']} copies per pixel"
             + (f", SNR {10 ** (params['snr_db'] / 20):.0f}:1" if params["snr_db"] is not None else "")
             + (f", brightness +/- {100 * params['brightness']:.0f} %" if params["brightness"] else "") + "."]
    lines += list(data_notes)
    sections.append(("Data and method", "".join(report.paragraph(t) for t in lines)))

    header = ["Model", "Mean RMSE (%)"] + [f"{nm} RMSE" for nm in names]
    rows = [[lab, result.metrics[lab]["mean_rmse"]] + [result.metrics[lab][nm]["rmse"] for nm in names]
            for lab in labels]
    r2_rows = [[lab] + [result.metrics[lab][nm]["r2"] for nm in names] for lab in labels]
    verdict = (f"The ensemble's mean RMSE is {result.metrics[ens]['mean_rmse']:.2f} % against "
               f"{result.metrics[best_single]['mean_rmse']:.2f} % for the best single model ({best_single}).")
    unmix = [lab for lab in labels if lab.startswith("Unmixing")]
    if unmix:
        best_unmix = min(unmix, key=lambda lab: result.metrics[lab]["mean_rmse"])
        u, e = result.metrics[best_unmix]["mean_rmse"], result.metrics[ens]["mean_rmse"]
        verdict += (f" Physics-based unmixing ({best_unmix}, endmembers estimated from the training ROIs) reaches "
                    f"{u:.2f} %: " + ("as good as the ensemble or better; linear mixing explains these data."
                                      if u <= 1.05 * e else "the learned models do better on these data."))
    chart = report.svg_bar_chart(labels, [[result.metrics[lab]["mean_rmse"] for lab in labels]], ["Mean RMSE"],
                                 "Mean RMSE per model (out-of-fold)", "RMSE (% points)")
    sections.append(("Model comparison", report.paragraph(verdict) + chart
                     + report.html_table(header, rows, "{:.2f}")
                     + report.paragraph("R2 per mineral (1 - SSE/SST):")
                     + report.html_table(["Model"] + names, r2_rows, "{:.3f}")))

    rng = np.random.default_rng(seed)
    A = result.oof[ens]
    idx = rng.permutation(A.shape[0])[:max_points]
    plots = []
    colours = result.info.class_rgb
    ids, inverse = np.unique(result.groups, return_inverse=True)
    for j, nm in enumerate(names):
        roi_pred = np.bincount(inverse, A[:, j]) / np.bincount(inverse)
        roi_true = np.bincount(inverse, result.truth[:, j]) / np.bincount(inverse)
        plots.append(report.svg_scatter(
            [("pixels", result.truth[idx, j], A[idx, j], "#bbbbbb", 1.6),
             ("ROI means", roi_true, roi_pred, colours[j], 3.5)],
            f"{nm}", "Measured (%)", "Predicted (%)", limits=(0.0, 100.0)))
    sections.append((f"Predicted vs measured ({ens}, out-of-fold)",
                     '<div style="display:flex;flex-wrap:wrap;gap:8px">' + "".join(plots) + "</div>"))

    cov = result.coverage
    rows = [[nm, level * 100, 100 * cov[nm], result.widths[nm]] for nm in names]
    rows.append(["All parts", level * 100, 100 * cov["all"], float(np.mean(list(result.widths.values())))])
    sections.append((f"Confidence intervals ({100 * level:.0f} %)", report.paragraph(
        "Split-conformal intervals on the grouped out-of-fold residuals, scaled by how much the members disagree "
        "at each pixel, clipped to 0-100 %. Coverage is measured honestly: each fold's intervals use a quantile "
        "computed from the other folds only.") + report.html_table(
        ["Part", "Nominal level (%)", "Empirical coverage (%)", "Mean width (% points)"], rows, "{:.1f}")))

    W = result.weights
    sections.append(("Stacking weights", report.paragraph(
        "Non-negative weights summing to one, fitted on the out-of-fold predictions (the ensemble's own "
        "figures above use weights fitted without the evaluated fold).") + report.html_table(
        ["Member", "Weight"], [[FAMILY_LABELS[f], float(W[i, 0])] for i, f in enumerate(result.families)], "{:.3f}")))
    subtitle = f"Trained {result.info.training['date']} with OreMap {result.info.oremap_version}"
    return report.html_report(title, sections, subtitle)


def write_table_csv(path, rows, parameter="table"):
    """Rows (list of dicts with the same keys) as CSV, written atomically."""
    import csv
    import io

    from .report import write_text_atomic

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return write_text_atomic(path, buffer.getvalue(), parameter=parameter)
