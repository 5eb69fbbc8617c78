"""Multivariate geochemical anomalies with a variational autoencoder (after Luo, Xiong & Zuo 2020).

A variational autoencoder (VAE) learns the joint structure of the background: the
correlations between elements that most samples share. A sample that breaks that
structure is reconstructed badly, even when each of its elements is within its
normal range; its reconstruction error is its anomaly score.

Pipeline, identical at training and scoring:

1. **Preprocessing** (:mod:`core.geochemistry.geochem`): missing codes and values below detection
   (:func:`core.geochemistry.geochem.below_detection`), zeros (the ``zeros`` option of
   :func:`core.geochemistry.geochem.preprocess`), a log10 or centred log-ratio transform, then
   per-element centring and scaling (:class:`core.geochemistry.geochem.Scaler`, robust by
   default) with the statistics of the training samples, stored in the model. With
   ``below="none"`` values are taken as they are (e.g. rasters of log10 grids).
2. **Network**: encoder ``m -> 24 -> 12 -> (mean, log-variance) of a 3-D latent
   code``, decoder mirrored ``3 -> 12 -> 24 -> m`` (sizes configurable). Trained on
   ``sum of squared errors + kl_weight x KL(q(z|x) || N(0, I))`` with Adam; the
   epoch with the lowest validation loss is kept.
3. **Score**: for each sample, the squared error of each (scaled) element averaged
   over ``draws`` latent codes ``z = mean + sd * eps`` with *fixed* noise draws
   ``eps`` (drawn once from the seed and stored in the graph), so scores are
   deterministic; the score is the mean of those per-element errors over the
   sample's observed elements, and each element's share of it is its contribution.
   ``draws = 0`` decodes the latent mean only. With ``direction="high"`` only values
   above their reconstruction count (enrichment; a depleted sample is not anomalous).
4. **Classes** by percentiles of the training scores (85, 95 and 99 by default):
   0 = background, then one class per threshold exceeded.

Missing elements: a sample may miss at most ``max_missing`` (a share, default 0) of
its elements; a missing element enters the network at the training centre (0 after
scaling) and is left out of the error and the score. Samples missing more are not
scored (NaN).

The model is an OreMap ONNX file (:mod:`core.engine.model_format`, task
``"geochemical_anomaly"``): the graph maps scaled elements ``(n, m)`` (NaN =
missing) to ``element_errors`` ``(n, m)`` and ``score`` ``(n, 1)``; the metadata hold
the element names, the preprocessing with its scaling statistics, the percentile
thresholds of the training scores and the number of draws, so the same model scores
another survey or a raster (:func:`score_raster`, streamed through the block engine).

``torch`` is needed for training only and is imported when used.

Reference: Luo, Z., Xiong, Y. and Zuo, R. (2020). Recognition of geochemical
anomalies using a deep variational autoencoder network. Applied Geochemistry 122,
104710.
"""

import hashlib
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..engine import report, torch_training
from . import geochem
from .anomaly_methods import distinct_records
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, OnnxModel, write_model
from ..engine.model_format import build_date

TASK = "geochemical_anomaly"
_FIX_VAE_MODEL = "Choose a model trained by 'Geochemical anomalies with a VAE'."
INPUT_NAME = "elements"
OUTPUT_ERRORS = "element_errors"
OUTPUT_SCORE = "score"
OPSET = 17

DEFAULT_HIDDEN = (24, 12)
DEFAULT_LATENT = 3
DEFAULT_PERCENTILES = (85.0, 95.0, 99.0)
DEFAULT_DRAWS = 10
ACTIVATIONS = ("elu", "relu", "tanh")
DIRECTIONS = ("both", "high")
"""Score residuals in both directions (Luo et al.), or only values above their reconstruction (enrichment)."""

BELOW_MODES = ("half", "limit", "nan", "none")
"""Below-detection handling: those of :func:`core.geochemistry.geochem.below_detection`, or ``"none"`` (values as
they are)."""

CLASS_COLOURS = ["#d9d9d9", "#fed976", "#fd8d3c", "#e31a1c", "#800026", "#4a0014"]
SCORE_NODATA = -9999.0
CLASS_NODATA = 255
COLLAPSED_KL = 0.25
"""KL per sample (nats) below which the report says the latent code carries almost no information."""
MAX_RASTER_TRAINING = 100_000


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------
def parse_int_list(text, parameter="hidden"):
    """``"24,12"`` -> ``(24, 12)``; empty text -> ``()``. Sizes must be positive integers."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = [p for p in str(text or "").replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        values = tuple(int(p) for p in parts)
        if any(float(p) != int(p) for p in parts):
            raise ValueError
    except (TypeError, ValueError):
        raise OreMapError(f"'{text}' is not a list of whole numbers.", parameter,
                          "Give layer sizes separated by commas, e.g. 24,12.") from None
    if any(v < 1 for v in values):
        raise OreMapError(f"Layer sizes must be positive (got {text}).", parameter, "e.g. 24,12.")
    return values


def parse_percentiles(text, parameter="percentiles"):
    """``"85,95,99"`` -> ``(85.0, 95.0, 99.0)``: increasing values strictly between 0 and 100."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = [p for p in str(text or "").replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise OreMapError(f"'{text}' is not a list of numbers.", parameter,
                          "Give percentiles separated by commas, e.g. 85,95,99.") from None
    if not values or any(not 0 < v < 100 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise OreMapError(f"Percentiles must increase and lie between 0 and 100 (got '{text}').", parameter,
                          "e.g. 85,95,99.")
    if len(values) > len(CLASS_COLOURS) - 1:
        raise OreMapError(f"At most {len(CLASS_COLOURS) - 1} percentiles.", parameter, "e.g. 85,95,99.")
    return values


def class_names(percentiles):
    """Names of the classes: background below the first percentile, then one per interval."""
    p = [f"{v:g}" for v in percentiles]
    names = [f"Background (< P{p[0]})"]
    names += [f"P{a}-P{b}" for a, b in zip(p, p[1:])]
    names.append(f"Above P{p[-1]}")
    return names


def class_legend(percentiles):
    """``[{"value", "name", "color"}]`` of the class codes 0..k (for styles and reports)."""
    return [{"value": i, "name": n, "color": CLASS_COLOURS[i]} for i, n in enumerate(class_names(percentiles))]


def classify(scores, thresholds):
    """Class codes: 0 up to the first threshold, i above threshold i; -1 where the score is NaN.

    A score equal to a threshold stays in the class below (so a run of zero scores, possible when
    only enrichment counts, stays background even when it reaches past the first percentile).
    """
    scores = np.asarray(scores, dtype=float)
    codes = np.searchsorted(np.asarray(thresholds, float), scores, side="left").astype(np.int16)
    codes[~np.isfinite(scores)] = -1
    return codes


@dataclass
class Preprocessing:
    """How raw concentrations become the network's input; stored in the model.

    ``below``: ``"half"``, ``"limit"``, ``"nan"`` (:func:`core.geochemistry.geochem.below_detection`)
    or ``"none"`` (values as they are: no below-detection or zero handling, e.g. grids
    already log-transformed). ``zeros``: one of :data:`core.geochemistry.geochem.ZERO_MODES` (see
    (``None``: its default). ``transform``: ``"log10"``, ``"clr"`` or ``"none"``.
    ``scale``: ``"robust"``, ``"zscore"`` or ``"none"`` (:class:`core.geochemistry.geochem.Scaler`).
    ``max_missing``: share of a sample's elements that may be missing (0 = complete
    samples only). ``scaler`` and ``zero_values`` are fitted on the training samples.
    """

    below: str = "half"
    transform: str = "log10"
    scale: str = "robust"
    zeros: str = geochem.DEFAULT_ZEROS
    missing: float = -9999.0
    max_missing: float = 0.0
    scaler: geochem.Scaler = None
    zero_values: list = None
    input_transform: str = None
    zero_fill: list = None
    clr_delta: float = None

    def check(self):
        if self.below not in BELOW_MODES:
            raise OreMapError(f"Unknown below-detection handling '{self.below}'.", "below_detection",
                              f"Use one of: {', '.join(BELOW_MODES)}.")
        if self.zeros not in geochem.ZERO_MODES:
            raise OreMapError(f"Unknown zero handling '{self.zeros}'.", "zeros",
                              f"Use one of: {', '.join(geochem.ZERO_MODES)}.")
        if self.transform not in geochem.TRANSFORMS:
            raise OreMapError(f"Unknown transform '{self.transform}'.", "transform",
                              f"Use one of: {', '.join(geochem.TRANSFORMS)}.")
        if self.scale not in geochem.SCALINGS:
            raise OreMapError(f"Unknown scaling '{self.scale}'.", "scale",
                              f"Use one of: {', '.join(geochem.SCALINGS)}.")
        if not 0.0 <= float(self.max_missing) < 1.0:
            raise OreMapError(f"The share of missing elements must be in [0, 1) (got {self.max_missing}).",
                              "max_missing", "e.g. 0 (complete samples only) or 0.25.")
        return self

    def to_dict(self):
        return {"method": "geochem", "below": self.below, "transform": self.transform, "scale": self.scale,
                "zeros": self.zeros, "missing": self.missing, "max_missing": float(self.max_missing),
                "scaler": None if self.scaler is None else self.scaler.to_dict(),
                "zero_values": self.zero_values, "input_transform": self.input_transform,
                **({"zero_fill": self.zero_fill} if self.zero_fill is not None else {}),
                **({"clr_delta": self.clr_delta} if self.clr_delta is not None else {})}

    @classmethod
    def from_dict(cls, data):
        """The preprocessing stored in a model; OreMapError (``parameter="model"``) when a value is unreadable
        or not one this OreMap knows: the model's, not a parameter the user set."""
        try:
            missing, zero_values = data.get("missing"), data.get("zero_values")
            prep = cls(below=str(data["below"]), transform=str(data["transform"]), scale=str(data["scale"]),
                       zeros=str(data.get("zeros", geochem.DEFAULT_ZEROS)),
                       missing=None if missing is None else float(missing),
                       max_missing=float(data.get("max_missing", 0.0)),
                       scaler=geochem.Scaler.from_dict(data["scaler"]),
                       zero_values=None if zero_values is None else [None if v is None else float(v)
                                                                     for v in zero_values],
                       input_transform=data.get("input_transform"), zero_fill=data.get("zero_fill"),
                       clr_delta=data.get("clr_delta"))
        except (KeyError, TypeError, ValueError) as exc:
            raise OreMapError(f"The model's preprocessing metadata are damaged ({exc}).", "model") from None
        try:
            return prep.check()
        except OreMapError as exc:
            what = exc.message.rstrip(".")
            raise OreMapError(f"The model's preprocessing metadata are damaged ({what}).", "model",
                              _FIX_VAE_MODEL) from None

    def describe(self):
        """One line for logs and reports."""
        if self.below == "none":
            text = "values taken as they are"
        else:
            below = {"half": "half the detection limit", "limit": "the detection limit", "nan": "missing"}[self.below]
            text = f"below detection: {below}; zeros: {self.zeros}"
        missing = "none" if self.missing is None else f"{self.missing:g}"
        return (f"{text}; missing code {missing}; transform {self.transform}; scaling {self.scale}; at most "
                f"{100 * self.max_missing:g} % of a sample's elements missing")


def _transformed(values, names, prep):
    """Below-detection, zeros and transform (no scaling): ``(X float64 with NaN, raw zero mask, messages)``."""
    V = np.array(values, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != len(names):
        raise OreMapError(f"Expected {len(names)} element columns, got an array of shape {V.shape}.", "values")
    if prep.below == "none":
        if prep.missing is not None:
            V[V == float(prep.missing)] = np.nan
        V[np.isinf(V)] = np.nan  # 'BDL' read as -inf: no value without a below-detection rule
        return geochem.transform(V, prep.transform, names=names), np.zeros(V.shape, bool), []
    zero = V == 0
    X, _, messages = geochem.preprocess(V, names, below=prep.below, transform=prep.transform, scale="none",
                                        missing=prep.missing, zeros=prep.zeros, clr_delta=prep.clr_delta)
    return X, zero, messages


def prepare(values, names, prep, fit_rows=None):
    """Scaled network input of raw values, fitting the scaler first when ``prep.scaler`` is None.

    Returns ``(Z float64 (n, m) with NaN for missing, usable bool (n,), messages)``;
    ``usable`` marks the samples with enough observed elements (``prep.max_missing``).
    Zeros become, per element, what they became in the training samples (stored in
    ``prep.zero_values``), so a model treats a zero of another survey, or of a raster
    block, as it treated zeros at training.
    """
    names = [str(n) for n in names]
    fitting = prep.scaler is None
    # what a zero becomes is fixed by the training samples, not by the batch scored: a sample's score changed with
    # its companions, a raster's with the memory budget, and a batch without a positive value of an element stopped
    # under log10
    if fitting and prep.below != "none":
        if prep.zeros == "half_min":   # half the smallest value of each element, in the input's units
            raw = geochem.below_detection(values, mode=prep.below, missing=prep.missing, zeros="keep")[0]
            positive = np.where(np.isfinite(raw) & (raw > 0), raw, np.inf).min(axis=0)
            prep.zero_fill = [float(0.5 * v) if np.isfinite(v) else None for v in positive]
        if prep.transform == "clr":   # the zeros a clr keeps: a share of the smallest value of the table
            prep.clr_delta = geochem.clr_zero_delta(values, names, prep.below, prep.missing, prep.zeros)
    elif not fitting and prep.zero_fill is not None and prep.below != "none":
        values = np.array(values, dtype=np.float64)
        fill = np.asarray([np.nan if v is None else v for v in prep.zero_fill], dtype=np.float64)
        if fill.size == values.shape[-1]:
            values = np.where((values == 0) & np.isfinite(fill)[None, :], fill[None, :], values)
    X, zero, messages = _transformed(values, names, prep)
    if not fitting and prep.zero_values is not None and prep.transform != "clr":
        stored = np.asarray([np.nan if v is None else v for v in prep.zero_values], dtype=np.float64)
        fill = zero & np.isfinite(stored)[None, :]
        if fill.any():
            X = np.where(fill, np.broadcast_to(stored, X.shape), X)
    observed = np.isfinite(X)
    X = np.where(observed, X, np.nan)
    m = X.shape[1]
    n_observed = observed.sum(axis=1)
    usable = (n_observed >= 1) & (n_observed >= math.ceil((1.0 - float(prep.max_missing)) * m - 1e-9))
    if fitting:
        rows = usable if fit_rows is None else (usable & _mask(fit_rows, X.shape[0]))
        if not rows.any():
            raise OreMapError("No sample has enough elements with a value to fit the scaling.", "values",
                              "Allow missing elements, or choose elements measured in most samples.")
        prep.scaler = geochem.Scaler.fit(X[rows], prep.scale, names=names)
        messages = list(messages) + [f"Scaling: {note}." for note in prep.scaler.notes]
        if prep.transform != "clr":
            zero_values = []
            for j in range(m):
                hit = zero[rows, j] & np.isfinite(X[rows, j])
                zero_values.append(float(X[rows, j][hit][0]) if hit.any() else None)
            prep.zero_values = zero_values
    Z = prep.scaler.transform(X)
    return Z, usable, messages


def _mask(rows, n):
    rows = np.asarray(rows)
    if rows.dtype == bool:
        return rows
    mask = np.zeros(n, bool)
    mask[rows] = True
    return mask


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
@dataclass
class TrainingResult:
    """What :func:`train_vae` returns.

    ``scores`` (n,), ``element_errors`` (n, m) and ``classes`` (n,) are those of every
    input sample (NaN / -1 where not scored); ``history`` holds per epoch
    ``train_recon``, ``train_kl``, ``val_recon``, ``val_kl`` (reconstruction: sum of
    squared errors of the scaled elements per sample; KL per sample; both with the
    fixed draws). ``onnx_bytes`` is the graph without metadata; :meth:`save` writes
    the model.
    """

    onnx_bytes: bytes
    info: ModelInfo
    names: list
    preprocessing: Preprocessing
    history: dict
    scores: np.ndarray
    element_errors: np.ndarray
    classes: np.ndarray
    thresholds: np.ndarray
    percentiles: tuple
    train_rows: np.ndarray
    val_rows: np.ndarray
    best_epoch: int
    messages: list = field(default_factory=list)
    scorer: object = field(default=None, repr=False, compare=False)

    def save(self, path):
        return write_model(self.onnx_bytes, self.info, path)

    @property
    def settings(self):
        return self.info.training["parameters"]


def data_hash(values):
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()


def _epoch_metrics(torch, vae, X0, M, eps, batch_size=8192):
    """Mean reconstruction error (sum over observed elements, mean over the fixed draws) and KL per sample."""
    vae.eval()
    recon, kl = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, X0.shape[0], batch_size):
            x, m = X0[i:i + batch_size], M[i:i + batch_size]
            mu, logvar = vae.encode(x)
            z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps.unsqueeze(0)
            err = ((vae.decoder(z) - x.unsqueeze(1)) ** 2).mean(dim=1) * m
            recon += float(err.sum())
            kl += float((-0.5 * (1.0 + logvar - mu * mu - torch.exp(logvar))).sum())
    n = max(X0.shape[0], 1)
    return recon / n, kl / n


def train_vae(values, names, below="half", transform="log10", scale="robust", zeros=geochem.DEFAULT_ZEROS,
              missing=-9999.0,
              max_missing=0.0, hidden=DEFAULT_HIDDEN, latent=DEFAULT_LATENT, activation="elu", kl_weight=1.0,
              epochs=100, batch_size=64, lr=1e-3, val_fraction=0.2, draws=DEFAULT_DRAWS, seed=0,
              percentiles=DEFAULT_PERCENTILES, direction="both", description="", feedback=None,
              input_transform="none"):
    # Over 100 lines: left whole while the VAE is reworked; vae_anomaly.py is split after that (issue 17).
    """Train the VAE on survey samples and score them.

    Parameters
    ----------
    values : array (n, m)
        Raw concentrations (missing code, negative = below detection), one column per element.
    names : sequence of m str
        Element (column) names; unit suffixes (``_ppm``, ``_ppb``, ``_pct``) are used by the CLR.
    below, transform, scale, zeros, missing, max_missing
        Preprocessing, see :class:`Preprocessing`.
    hidden : sequence of int, default (24, 12)
        Encoder layer sizes; the decoder mirrors them.
    latent : int, default 3
    activation : {"elu", "relu", "tanh"}
    kl_weight : float, default 1
        Weight of the KL term (beta); 0 gives a plain (noisy) autoencoder.
    epochs, batch_size, lr
        Adam training; the epoch with the lowest validation loss is kept (the last one
        without validation).
    val_fraction : float in [0, 0.9]
        Share of the scored samples held out for the validation loss curves.
    draws : int, default 10
        Latent draws averaged in the score (0: the latent mean only).
    seed : int
        Same data, settings and seed give the same scores.
    percentiles : sequence of float
        Class thresholds as percentiles of the scores of the training samples.
    input_transform : {"none", "log10", None}
        What the values already hold (survey concentrations: ``"none"``; a log10 grid: ``"log10"``; None: not
        recorded), stored so that a grid transformed otherwise is refused when scored
        (:func:`core.geochemistry.grid_meaning.check_input_transform`).
    """
    from .vae_network import _torch, export_onnx, fixed_draws, score_torch
    feedback = ensure(feedback)
    tc = _torch()
    torch = tc["torch"]
    names = [str(n) for n in names]
    V = np.asarray(values, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != len(names) or V.shape[1] < 2:
        raise OreMapError(f"Expected a table of samples x at least 2 elements ({len(names)} names), got shape "
                          f"{V.shape}.", "values", "Choose two or more element fields.")
    hidden = parse_int_list(hidden, "hidden")
    latent, draws, epochs, batch_size = int(latent), int(draws), int(epochs), int(batch_size)
    if latent < 1:
        raise OreMapError("The latent dimension must be at least 1.", "latent", "e.g. 3.")
    if epochs < 1 or batch_size < 1:
        raise OreMapError("Epochs and batch size must be at least 1.", "epochs", "e.g. 100 epochs of 64 samples.")
    if not (lr > 0 and math.isfinite(lr)):
        raise OreMapError(f"The learning rate must be positive (got {lr}).", "learning_rate", "e.g. 0.001.")
    if not (kl_weight >= 0 and math.isfinite(kl_weight)):
        raise OreMapError(f"The KL weight must be zero or positive (got {kl_weight}).", "kl_weight", "e.g. 1.")
    if not 0.0 <= float(val_fraction) <= 0.9:
        raise OreMapError(f"The validation share must be in [0, 0.9] (got {val_fraction}).", "val_fraction",
                          "e.g. 0.2.")
    if activation not in ACTIVATIONS:
        raise OreMapError(f"Unknown activation '{activation}'.", "activation", f"Use one of {', '.join(ACTIVATIONS)}.")
    percentiles = parse_percentiles(percentiles)
    if direction not in DIRECTIONS:
        raise OreMapError(f"Unknown score direction '{direction}'.", "direction",
                          f"Use one of {', '.join(DIRECTIONS)}.")
    prep = Preprocessing(below=below, transform=transform, scale=scale, zeros=zeros, missing=missing,
                         max_missing=float(max_missing), input_transform=input_transform).check()

    # split first (the scaler is fitted on the training rows only), then preprocess
    n, m = V.shape
    _, usable0, _ = prepare(V, names, Preprocessing(below, transform, "none", zeros, missing, max_missing))
    candidates = np.flatnonzero(usable0)
    if candidates.size < 10:
        raise OreMapError(f"Only {candidates.size} samples have enough elements with a value; the autoencoder "
                          "needs at least 10.", "values",
                          "Choose elements measured in most samples, or allow some missing elements.")
    rng = np.random.default_rng([int(seed), 1])
    n_val = int(round(float(val_fraction) * candidates.size))
    n_val = min(n_val, candidates.size - 5)
    shuffled = rng.permutation(candidates)
    val_rows, train_rows = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
    Z, usable, messages = prepare(V, names, prep, fit_rows=train_rows)
    for line in messages:
        feedback.info(line)
    if (usable != usable0).any():  # cannot happen: scaling does not create missing values
        raise OreMapError("Internal error: scaling changed the missing values.", "values")
    not_scored = n - int(usable.sum())
    if not_scored:
        feedback.warning(f"{not_scored} of {n} samples miss more than {100 * prep.max_missing:g} % of the elements: "
                         "they are not scored.")
    feedback.info(f"Training on {train_rows.size} samples, validating on {val_rows.size}; {m} elements.")

    M_all = np.isfinite(Z)
    X0_all = np.where(M_all, Z, 0.0).astype(np.float32)
    M_all = M_all.astype(np.float32)
    eps_fixed = fixed_draws(draws, latent, seed)
    history = {"train_recon": [], "train_kl": [], "val_recon": [], "val_kl": []}
    order_rng = np.random.default_rng([int(seed), 2])
    # Linear layers and element-wise operations are deterministic on the CPU; a network this small is fastest on
    # one thread (and the same on every machine)
    with torch_training.seeded(torch, seed, threads=1, feedback=feedback):
        vae = tc["vae"](m, hidden, latent, activation)
        optimiser = torch.optim.Adam(vae.parameters(), lr=float(lr))
        Xtr, Mtr = torch.from_numpy(X0_all[train_rows]), torch.from_numpy(M_all[train_rows])
        Xva, Mva = torch.from_numpy(X0_all[val_rows]), torch.from_numpy(M_all[val_rows])
        eps_t = torch.from_numpy(eps_fixed)

        def step(idx):
            xb, mb = Xtr[idx], Mtr[idx]
            mu, logvar = vae.encode(xb)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = (((vae.decoder(z) - xb) ** 2) * mb).sum(dim=1)
            kl = -0.5 * (1.0 + logvar - mu * mu - torch.exp(logvar)).sum(dim=1)
            loss = (recon + float(kl_weight) * kl).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            return loss

        def end_epoch(epoch, train_loss):
            tr = _epoch_metrics(torch, vae, Xtr, Mtr, eps_t)
            va = _epoch_metrics(torch, vae, Xva, Mva, eps_t) if val_rows.size else (np.nan, np.nan)
            for key, value in zip(history, tr + va):
                history[key].append(float(value))
            monitored = (va[0] + kl_weight * va[1]) if val_rows.size else (tr[0] + kl_weight * tr[1])
            if not math.isfinite(monitored):
                raise OreMapError("Training diverged: the loss is not a number.", "learning_rate",
                                  "Lower the learning rate (e.g. 0.001), or check the data for extreme values.")
            return monitored

        def log(epoch, train_loss):
            if epoch == 0 or (epoch + 1) % 20 == 0 or epoch + 1 == epochs:
                line = (f"Epoch {epoch + 1}: reconstruction {history['train_recon'][-1]:.4f}, "
                        f"KL {history['train_kl'][-1]:.4f}")
                if val_rows.size:
                    line += (f"; validation reconstruction {history['val_recon'][-1]:.4f}, "
                             f"KL {history['val_kl'][-1]:.4f}")
                feedback.info(line)

        # the best epoch on the held-out samples; the last one without them
        best_epoch = torch_training.train_epochs(
            train_rows.size, batch_size, epochs, order_rng, step, feedback, start_epoch=lambda epoch: vae.train(),
            end_epoch=end_epoch, model=vae if val_rows.size else None, progress=(0.0, 90.0), log=log, min_batch=1,
            as_tensor=torch).best_epoch
        vae.eval()
        scorer = tc["scorer"](vae, eps_fixed, direction)
        scorer.eval()
        onnx_bytes = export_onnx(scorer, m)
    feedback.check()
    errors = np.full((n, m), np.nan)
    scores = np.full(n, np.nan)
    e, s = score_torch(scorer, np.where(np.isfinite(Z), Z, np.nan)[usable])
    errors[usable] = np.where(np.isfinite(Z[usable]), e, np.nan)
    scores[usable] = s
    thresholds = np.percentile(scores[usable], percentiles)
    classes = classify(scores, thresholds)
    if history["train_kl"][best_epoch] < COLLAPSED_KL:
        feedback.warning(f"The KL divergence is {history['train_kl'][best_epoch]:.3g} per sample: the latent code "
                         "carries almost no information, so the score is close to a per-element deviation index. "
                         "A lower KL weight keeps more of the multivariate structure.")
    feedback.info(f"Best epoch {best_epoch + 1} of {epochs}; score thresholds " + ", ".join(
        f"P{p:g} = {t:.4g}" for p, t in zip(percentiles, thresholds)) + ".")

    parameters = {"hidden": list(hidden), "latent": latent, "activation": activation, "kl_weight": float(kl_weight),
                  "epochs": epochs, "batch_size": batch_size, "lr": float(lr), "val_fraction": float(val_fraction),
                  "draws": draws, "seed": int(seed), "percentiles": list(percentiles),
                  "direction": direction}
    metrics = {"best_epoch": best_epoch + 1, "n_train": int(train_rows.size), "n_validation": int(val_rows.size),
               "n_scored": int(usable.sum()), "train_recon": history["train_recon"][best_epoch],
               "train_kl": history["train_kl"][best_epoch], "val_recon": history["val_recon"][best_epoch],
               "val_kl": history["val_kl"][best_epoch]}
    info = ModelInfo(
        task=TASK, classes=[{"name": c["name"], "color": c["color"]} for c in class_legend(percentiles)],
        input={"name": INPUT_NAME, "n_bands": m}, output={"name": OUTPUT_SCORE, "kind": "anomaly_score"},
        band_names=names, preprocessing=prep.to_dict(),
        training={"date": build_date(),
                  "data_hash": data_hash(V), "n_samples": int(n), "metrics": metrics, "parameters": parameters},
        description=str(description or "Geochemical anomaly VAE"),
        extra={"anomaly": {"percentiles": list(percentiles), "thresholds": [float(t) for t in thresholds],
                           "draws": draws, "errors_output": OUTPUT_ERRORS,
                           "score": "mean over the observed elements of the squared error of the scaled element, "
                                    "averaged over the fixed latent draws"}})
    info = ModelInfo.from_json(info.to_json())
    feedback.progress(100)
    return TrainingResult(onnx_bytes=onnx_bytes, info=info, names=names, preprocessing=prep, history=history,
                          scores=scores, element_errors=errors, classes=classes, thresholds=thresholds,
                          percentiles=percentiles, train_rows=train_rows, val_rows=val_rows, best_epoch=best_epoch + 1,
                          messages=list(messages), scorer=scorer)


# --------------------------------------------------------------------------------------
# Scoring with a model file
# --------------------------------------------------------------------------------------
class AnomalyModel:
    """An OreMap geochemical anomaly model (ONNX) ready to score raw values."""

    def __init__(self, path, threads=None):
        self.path = os.fspath(path)
        self.onnx = OnnxModel(self.path, threads=threads)
        info = self.info = self.onnx.info
        from ..engine.model_task import check_task

        check_task(info, TASK, self.path)
        anomaly = info.extra.get("anomaly")
        if not isinstance(anomaly, dict) or info.band_names is None:
            raise OreMapError("The model's anomaly metadata are missing.", "model",
                              _FIX_VAE_MODEL)
        try:
            self.percentiles = tuple(float(p) for p in anomaly["percentiles"])
            self.thresholds = np.asarray(anomaly["thresholds"], dtype=float)
            self.draws = int(anomaly["draws"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OreMapError(f"The model's anomaly metadata are damaged ({exc}).", "model") from None
        if self.thresholds.size != len(self.percentiles):
            raise OreMapError("The model's thresholds do not match its percentiles.", "model")
        self.names = list(info.band_names)
        self.preprocessing = Preprocessing.from_dict(info.preprocessing)
        stored = self.preprocessing.zero_values
        if stored is not None and len(stored) != len(self.names):
            raise OreMapError(f"The model's preprocessing metadata are damaged (its zero_values list {len(stored)} "
                              f"values for {len(self.names)} elements).", "model",
                              _FIX_VAE_MODEL)

    def column_order(self, names, parameter="fields"):
        """Indexes of the model's elements among ``names`` (exact, then case-insensitive match)."""
        names = [str(n) for n in names]
        lower = {n.lower(): i for i, n in enumerate(names)}
        order, missing = [], []
        for name in self.names:
            if name in names:
                order.append(names.index(name))
            elif name.lower() in lower:
                order.append(lower[name.lower()])
            else:
                missing.append(name)
        if missing:
            raise OreMapError(f"The model needs the elements {', '.join(missing)}, which are not among the inputs "
                              f"({', '.join(names[:12])}{' ...' if len(names) > 12 else ''}).", parameter,
                              "Give fields or bands named as the model's elements.")
        return order

    def score_scaled(self, Z, batch_size=8192):
        out = self.onnx.run_outputs(np.asarray(Z, np.float32), batch_size=batch_size)
        return out[OUTPUT_ERRORS], out[OUTPUT_SCORE][:, 0]

    def score(self, values, names=None, batch_size=8192):
        """Scores of raw values: dict ``scores`` (n,), ``element_errors`` (n, m), ``classes`` (n,), ``messages``.

        ``names``: the columns of ``values``; the model's elements are picked among them
        (by default ``values`` holds the model's elements in order).
        """
        V = np.asarray(values, dtype=np.float64)
        if V.ndim == 1:
            V = V[None, :]
        if names is not None:
            V = V[:, self.column_order(names)]
        if V.shape[1] != len(self.names):
            raise OreMapError(f"The model takes {len(self.names)} elements, got {V.shape[1]}.", "fields")
        Z, usable, messages = prepare(V, self.names, self.preprocessing)
        n = V.shape[0]
        scores = np.full(n, np.nan)
        errors = np.full(V.shape, np.nan)
        if usable.any():
            e, s = self.score_scaled(Z[usable], batch_size)
            errors[usable] = np.where(np.isfinite(Z[usable]), e, np.nan)
            scores[usable] = s
        return {"scores": scores, "element_errors": errors, "classes": classify(scores, self.thresholds),
                "messages": messages, "n_not_scored": int(n - usable.sum())}


def load_model(path, threads=None):
    """:class:`AnomalyModel` of an OreMap ``.onnx`` file (OreMapError ``"model"`` when it is not one)."""
    return AnomalyModel(path, threads=threads)


# --------------------------------------------------------------------------------------
# Workflows (used by the Processing algorithm)
# --------------------------------------------------------------------------------------
def _evaluate_points(x, y, scores, deposits_xy, positive_radius, negative_min_distance, feedback):
    from . import prospectivity_eval as pe

    return pe.evaluate_points(x, y, scores, deposits_xy, positive_radius, negative_min_distance, n_draws=20,
                              seed=0, feedback=feedback)


def _check_points_for_model(values, model, feedback):
    """Refuse (or warn of) samples whose values, scaled by the model's own scaling, lie far from those it was trained
    on, as a raster is (:func:`core.geochemistry.grid_meaning.check_training_range`): survey concentrations given to
    a model trained on log10 grids were scored at up to 1,500 times the grid's scores, every sample above P99, with
    no word. A model trained on log10 grids is said to expect log10 values."""
    from .grid_meaning import check_training_range

    prep = model.preprocessing
    if getattr(prep, "input_transform", None) == "log10" and prep.transform == "none":
        feedback.info("This model was trained on log10 values (grids made with LOG10): the samples' fields must "
                         "hold log10 values too, not concentrations.")
    if prep.scale not in ("robust", "zscore"):   # without scaling there is no training range
        return
    try:   # the scaler is set: nothing is fitted
        z = prepare(values, model.names, prep)[0]
    except OreMapError:
        return   # values the preprocessing cannot take: the scoring itself says which and what to do
    check_training_range(z, model.names, feedback.warning, robust=prep.scale == "robust", samples=True)


def run_points(x, y, values, names, model_path=None, model_out=None, report_path=None, labels=None,
               deposits_xy=None, positive_radius=2000.0, negative_min_distance=4000.0, options=None,
               title="Geochemical anomalies (VAE)", subtitle=None, extra_settings=(), feedback=None):
    """Train (or load ``model_path``) and score samples; write the model, the report; evaluate against deposits.

    ``x``, ``y``: coordinates in a projected CRS (for the map and the evaluation);
    ``options``: keyword arguments of :func:`train_vae`. Returns a dict with
    ``scores``, ``classes``, ``element_errors``, ``thresholds``, ``percentiles``,
    ``names``, ``evaluation`` (or None), ``training`` (a :class:`TrainingResult` or None).
    """
    from .vae_report import _map_svg_points, _shares, report_html, settings_rows
    feedback = ensure(feedback)
    values = np.asarray(values, dtype=np.float64)
    names = [str(n) for n in names]
    options = dict(options or {})
    training = None
    if model_path:
        model = load_model(model_path)
        order = model.column_order(names)
        names = model.names
        values = values[:, order]
        _check_points_for_model(values, model, feedback)
        out = model.score(values)
        for line in out["messages"]:
            feedback.info(line)
        if out["n_not_scored"]:
            feedback.warning(f"{out['n_not_scored']} samples miss too many elements and are not scored.")
        scores, errors, classes = out["scores"], out["element_errors"], out["classes"]
        thresholds, percentiles, prep = model.thresholds, model.percentiles, model.preprocessing
        parameters = model.info.training.get("parameters")
        feedback.progress(70)
    else:   # trained on the columns in one order, whatever order they come in (geochem.canonical_columns)
        order = geochem.canonical_columns(names)
        values, names = values[:, order], [names[j] for j in order]
        first, copy_of = distinct_records(values, x, y)
        if first.size < len(values):
            feedback.info(f"{len(values) - first.size} repeated records (same place, same values: a compilation's "
                          f"repeated rows) are trained on once; each copy gets its record's score.")
        training = train_vae(values[first], names, feedback=feedback.scaled(0, 70), **options)
        scores, errors, classes = (training.scores[copy_of], training.element_errors[copy_of],
                                   training.classes[copy_of])
        thresholds, percentiles, prep = training.thresholds, training.percentiles, training.preprocessing
        parameters = training.settings
    evaluation = None
    if deposits_xy is not None:  # before anything is written: bad deposits leave no output behind
        evaluation = _evaluate_points(x, y, scores, deposits_xy, positive_radius, negative_min_distance,
                                      feedback.scaled(70, 90))
        feedback.info(f"ROC-AUC against the deposits {evaluation['auc_mean']:.3f} +- {evaluation['auc_sd']:.3f} "
                      f"over 20 draws of negatives.")
    if training is not None and model_out:
        training.save(model_out)
    if report_path:
        labels = list(range(1, len(scores) + 1)) if labels is None else list(labels)
        finite = np.isfinite(scores)
        order = np.flatnonzero(finite)[np.argsort(-scores[finite], kind="stable")][:10]
        top_class = classes == len(thresholds)
        top = {"labels": [labels[i] for i in order], "scores": scores[order], "classes": classes[order],
               "errors": errors[order], "share_top_class": _shares(errors[top_class]).mean(axis=0)
               if top_class.any() else None,
               "share_all": _shares(errors[finite]).mean(axis=0) if finite.any() else None,
               "n_top_class": int(top_class.sum())}
        extra = [["Samples", f"{len(scores)} ({int(finite.sum())} scored)"]] + [list(r) for r in extra_settings]
        html = report_html(title, names, settings_rows(names, prep, parameters, model_path, extra),
                           history=None if training is None else training.history, scores=scores,
                           thresholds=thresholds, percentiles=percentiles,
                           map_svg=_map_svg_points(x, y, classes, class_legend(percentiles),
                                                   None if deposits_xy is None else deposits_xy),
                           top=top, evaluation=evaluation, subtitle=subtitle,
                           notes=[] if training is None else training.messages[:40],
                           kept_epoch=None if training is None else training.best_epoch)
        report.write_report(report_path, html)
    feedback.progress(100)
    return {"scores": scores, "classes": classes, "element_errors": errors, "thresholds": thresholds,
            "percentiles": percentiles, "names": names, "evaluation": evaluation, "training": training}


def run_raster(raster_path, score_path, class_path=None, model_path=None, model_out=None, report_path=None,
               bands=None, nodata=None, max_samples=MAX_RASTER_TRAINING, deposits_xy=None, positive_radius=2000.0,
               negative_min_distance=4000.0, options=None, title="Geochemical anomalies (VAE)", subtitle=None,
               memory_mb=None, feedback=None):
    """Train on a random sample of pixels (or load ``model_path``), then score the whole raster.

    ``bands``: 1-based bands to train on (default all; their descriptions are the
    element names). A model file must be saved to score (``model_out``, or a
    temporary file). Returns a dict with the :func:`score_raster` statistics,
    ``thresholds``, ``percentiles``, ``names``, ``evaluation``, ``training``.
    """
    from .vae_report import _map_svg_raster, report_html, settings_rows
    from .vae_raster import class_thumbnail, raster_bands, sample_raster, score_raster
    import tempfile

    feedback = ensure(feedback)
    options = dict(options or {})
    training = None
    tmp_model = None
    try:
        from .grid_meaning import check_raster_for_model, check_training_range, options_for_raster, raster_sample

        if model_path:
            model = load_model(model_path)
            parameters = model.info.training.get("parameters")
            model_bands = raster_bands(raster_path, model.names)[0]
            check_raster_for_model(raster_path, model_bands, model.preprocessing, feedback.info)
            if model.preprocessing.scale in ("robust", "zscore"):  # without scaling there is no training range
                try:  # the scaler is set: nothing is fitted
                    z = prepare(raster_sample(raster_path, model_bands, nodata), model.names, model.preprocessing)[0]
                except OreMapError:
                    pass  # values the preprocessing cannot take: the scoring itself says which and what to do
                else:
                    check_training_range(z, model.names, feedback.warning,
                                         robust=model.preprocessing.scale == "robust")
        else:
            from ..engine.raster import band_descriptions

            all_names = band_descriptions(raster_path)
            chosen = list(range(1, len(all_names) + 1)) if not bands else [int(b) for b in bands]
            chosen = [chosen[j] for j in geochem.canonical_columns([all_names[b - 1] for b in chosen])]
            names = [all_names[b - 1] for b in chosen]
            if len(set(n.lower() for n in names)) != len(names):
                raise OreMapError("Band names repeat: " + ", ".join(names) + ".", "raster",
                                  "Give the bands distinct names (descriptions), one element each.")
            options = options_for_raster(raster_path, chosen, options, feedback.info)
            seed = int(options.get("seed", 0))
            sample, n_valid = sample_raster(raster_path, chosen, nodata, max_samples, seed, memory_mb,
                                            feedback.scaled(0, 10),
                                            partial=float(options.get("max_missing", 0.0)) > 0)
            if n_valid < 10:  # train_vae's own error would blame the element fields of the points mode
                raise OreMapError(f"The raster has only {n_valid} valid pixel{'s' if n_valid != 1 else ''}; the "
                                  "autoencoder needs at least 10 to learn from.", "raster",
                                  "Use a grid covering more of the survey, or a finer cell size.")
            feedback.info(f"Training on a random sample of {sample.shape[0]} of the {n_valid} valid pixels.")
            training = train_vae(sample, names, feedback=feedback.scaled(10, 60), **options)
            if not model_out:
                handle, tmp_model = tempfile.mkstemp(suffix=".onnx")
                os.close(handle)
            training.save(model_out or tmp_model)
            model = load_model(model_out or tmp_model)
            parameters = training.settings
        stats = score_raster(model, raster_path, score_path, class_path, nodata=nodata, memory_mb=memory_mb,
                             feedback=feedback.scaled(60, 85))
    finally:
        if tmp_model and os.path.exists(tmp_model):
            os.remove(tmp_model)
    feedback.info(f"{stats['scored']} pixels scored; per class: " + ", ".join(
        f"{c['name']} {int(n)}" for c, n in zip(class_legend(model.percentiles), stats["class_counts"])) + ".")
    evaluation = None
    if deposits_xy is not None:
        from . import prospectivity_eval as pe

        try:
            evaluation = pe.evaluate_raster(score_path, deposits_xy, positive_radius, negative_min_distance,
                                            n_draws=20, seed=0, feedback=feedback.scaled(85, 95), memory_mb=memory_mb)
        except BaseException:  # bad deposits or a cancel: remove what this run wrote
            from ..engine.raster import _remove_quietly

            for path in (score_path, class_path, None if model_path else model_out):
                if path:
                    _remove_quietly(path)
            raise
        feedback.info(f"ROC-AUC against the deposits {evaluation['auc_mean']:.3f} +- {evaluation['auc_sd']:.3f} "
                      f"over 20 draws of negatives.")
    if report_path:
        map_svg = ""
        if class_path:
            thumb, factor = class_thumbnail(class_path, memory_mb=memory_mb)
            map_svg = _map_svg_raster(thumb, factor, class_legend(model.percentiles))
        edges = stats["hist_edges"]
        centres = np.r_[edges[0] - 0.5 * (edges[1] - edges[0]), 0.5 * (edges[1:] + edges[:-1]),
                        edges[-1] + 0.5 * (edges[1] - edges[0])]
        n_top = stats["top_scores"].size
        top = {"labels": ["pixel"] * n_top, "scores": stats["top_scores"],
               "classes": classify(stats["top_scores"], model.thresholds), "errors": stats["top_errors"],
               "share_top_class": stats["top_class_share"], "share_all": None, "n_top_class": stats["top_class_n"]}
        extra = [["Raster", str(raster_path)], ["Pixels scored", stats["scored"]],
                 ["Bands", ", ".join(str(b) for b in stats["bands"]) + (" (by order)" if stats["by_order"] else "")]]
        if training is not None:
            extra.append(["Training pixels", f"{training.scores.size} (uniform random sample, at most {max_samples})"])
        html = report_html(title, model.names, settings_rows(model.names, model.preprocessing, parameters,
                                                             model_path, extra),
                           history=None if training is None else training.history, thresholds=model.thresholds,
                           percentiles=model.percentiles, map_svg=map_svg, top=top, evaluation=evaluation,
                           histogram=(centres, stats["hist_counts"]), subtitle=subtitle,
                           notes=[] if training is None else training.messages[:40],
                           kept_epoch=None if training is None else training.best_epoch)
        report.write_report(report_path, html)
    feedback.progress(100)
    return {**stats, "thresholds": model.thresholds, "percentiles": model.percentiles, "names": model.names,
            "evaluation": evaluation, "training": training}
