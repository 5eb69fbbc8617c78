"""Per-pixel mineral classification with a 1D CNN over the spectrum (after DeepGeoMap).

A small convolutional network reads one spectrum at a time along its
wavelength axis and outputs class probabilities. It is trained on library
spectra (made realistic by :func:`augment`) or on labelled image pixels, and
exported to the OreMap model format (:mod:`core.engine.model_format`): an ONNX graph
from preprocessed spectra to probabilities, plus the metadata needed to use it
on another image (wavelengths, preprocessing, classes and colours).

The pipeline, identical at training and inference:

1. resample the spectra to the model's wavelengths (the caller's job);
2. :func:`preprocess` (``"none"``, ``"brightness"`` or ``"continuum_removal"``);
3. the ONNX graph: per-band standardisation (fitted on the training data),
   the network, softmax.

``torch`` is needed for training only and is imported inside the functions
that use it, so this module imports without it; inference needs onnxruntime
(:class:`core.engine.model_format.OnnxModel`).
"""

import hashlib
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..engine import torch_training
from ..engine.colors import class_colours, hex_colour
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, build_date, write_model
from ..engine.spectra import PREPROCESSING_METHODS, _unknown_preprocessing, preprocess
from . import ood
from ..engine.spectral_network import (DEFAULT_NETWORK, DISTANCE_NAME, INPUT_NAME, OUTPUT_NAME, SpectralCNN,
                                      _torch_classes, ensemble_module, export_onnx, feature_distances,
                                      feature_references, predict_proba_torch, with_feature_reference)


#: Task name written into the models made here.
TASK = "spectral_classification"


# ---------------------------------------------------------------------------
# Augmentation and splitting
# ---------------------------------------------------------------------------


def _uniform(rng, bounds, size):
    lo, hi = (bounds, bounds) if np.isscalar(bounds) else (float(bounds[0]), float(bounds[1]))
    return rng.uniform(lo, hi, size) if hi > lo else np.full(size, float(lo))


def augment(spectra, labels, groups, n_per_spectrum, rng, snr_db=(30.0, 50.0), brightness=(0.6, 1.3),
            slope=0.2, mix_max=0.3, shade_max=0.5, dark=0.02, wavelengths=None):
    """Make realistic variants of library spectra, for training on libraries alone.

    Each variant of a spectrum ``s`` of class ``c`` is, in this order:

    1. mixed with a random other spectrum ``t`` of a *different* class:
       ``(1 - f) s + f t`` with ``f ~ U(0, mix_max)``; the label stays ``c``;
    2. shaded: ``(1 - h) x + h dark`` with ``h ~ U(0, shade_max)`` (a dark,
       flat spectrum of reflectance ``dark``);
    3. tilted: multiplied by ``1 + t (w - w_mid) / (w_max - w_min)`` with
       ``t ~ U(-slope, slope)`` (an illumination slope across wavelength);
    4. scaled by ``b ~ U(*brightness)``;
    5. given Gaussian noise of standard deviation ``mean(|x|) / 10**(snr/20)``
       with ``snr ~ U(*snr_db)`` (dB).

    Parameters
    ----------
    spectra : array-like of shape (n, n_bands)
    labels : array-like of int of shape (n,)
    groups : array-like of shape (n,)
        Group id of each spectrum (the physical sample it comes from);
        variants keep their source's group.
    n_per_spectrum : int
        Variants made from each spectrum.
    rng : numpy.random.Generator or int
        Random source (an int seeds a new Generator); the result is fully
        determined by it.
    snr_db : float or (float, float), default (30, 50)
    brightness : float or (float, float), default (0.6, 1.3)
    slope : float, default 0.2
    mix_max : float, default 0.3
        Largest fraction of another class; 0 disables mixing, as does a
        single class.
    shade_max : float, default 0.5
    dark : float, default 0.02
    wavelengths : array-like of shape (n_bands,), optional
        Axis of the tilt; band numbers when ``None``.

    Returns
    -------
    X : ndarray of float64 of shape (m, n_bands)
        ``m = n * n_per_spectrum``; variants of spectrum ``i`` are rows
        ``i * n_per_spectrum ... (i + 1) * n_per_spectrum - 1``.
    y : ndarray of int64 of shape (m,)
    groups : ndarray of shape (m,)
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    S = np.asarray(spectra, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    if S.ndim != 2 or S.shape[0] != labels.size or groups.size != labels.size:
        raise OreMapError("Spectra, labels and groups must have the same number of rows.", parameter="training")
    n, b = S.shape
    k = int(n_per_spectrum)
    if k < 0:
        raise OreMapError("The number of augmented copies must not be negative.", parameter="training")
    src = np.repeat(np.arange(n), k)
    m = src.size
    X = S[src].copy()
    y = labels[src]

    # 1. mixing with a spectrum of another class
    partner = np.zeros(m, dtype=np.int64)
    has_partner = np.zeros(m, dtype=bool)
    fraction = _uniform(rng, (0.0, mix_max), m)
    for c in np.unique(labels):
        others = np.flatnonzero(labels != c)
        rows = np.flatnonzero(y == c)
        choice = rng.integers(0, max(others.size, 1), rows.size)
        if others.size:
            partner[rows] = others[choice]
            has_partner[rows] = True
    f = np.where(has_partner, fraction, 0.0)[:, None]
    X = (1.0 - f) * X + f * S[partner]
    # 2. shade
    h = _uniform(rng, (0.0, shade_max), m)[:, None]
    X = (1.0 - h) * X + h * float(dark)
    # 3. illumination slope
    w = np.arange(b, dtype=np.float64) if wavelengths is None else np.asarray(wavelengths, np.float64).reshape(-1)
    span = np.ptp(w) if w.size > 1 and np.ptp(w) > 0 else 1.0
    axis = (w - 0.5 * (w.min() + w.max())) / span
    t = _uniform(rng, (-slope, slope), m)[:, None]
    X = X * (1.0 + t * axis[None, :])
    # 4. brightness
    X = X * _uniform(rng, brightness, m)[:, None]
    # 5. noise at a chosen SNR
    snr = _uniform(rng, snr_db, m)[:, None]
    sigma = np.mean(np.abs(X), axis=1, keepdims=True) / 10.0 ** (snr / 20.0)
    X = X + sigma * rng.standard_normal((m, b))
    return X, y, groups[src]


def grouped_split(y, groups, val_fraction, seed=0):
    """Split samples into training and validation by whole groups, class by class.

    Each group goes to the class most of its samples have (ties: the lowest
    label). For a class with ``k >= 2`` groups, ``round(val_fraction * k)``
    of them, at least 1 and at most ``k - 1``, go to validation; a class with
    a single group stays in training (reported in ``info``).

    Parameters
    ----------
    y : array-like of int of shape (n,)
    groups : array-like of shape (n,)
        Group of each sample (source spectrum, polygon, drill hole...).
    val_fraction : float in [0, 1)
        0 puts everything in training.
    seed : int, default 0

    Returns
    -------
    train_idx, val_idx : ndarray of int64
        Sorted sample indexes; no group has samples on both sides.
    info : dict
        ``n_groups``, ``n_val_groups``, ``classes_without_validation``
        (labels of classes with one group), ``mixed_groups`` (groups holding
        several classes).
    """
    y = np.asarray(y).astype(np.int64).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    if groups.size != y.size:
        raise OreMapError("Labels and groups must have the same length.", parameter="training")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise OreMapError(f"The validation fraction must be in [0, 1), not {val_fraction}.", parameter="training")
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(groups, return_inverse=True)
    n_groups = unique.size
    classes = np.unique(y)
    # Majority class of each group.
    counts = np.zeros((n_groups, classes.size), dtype=np.int64)
    np.add.at(counts, (inverse, np.searchsorted(classes, y)), 1)
    group_class = classes[np.argmax(counts, axis=1)]
    mixed = int(((counts > 0).sum(axis=1) > 1).sum())
    in_val = np.zeros(n_groups, dtype=bool)
    single = []
    for c in classes:
        members = np.flatnonzero(group_class == c)
        k = members.size
        if k == 0:
            continue
        if k == 1:
            single.append(int(c))
            continue
        n_val = int(np.floor(val_fraction * k + 0.5))
        if val_fraction > 0:
            n_val = min(max(n_val, 1), k - 1)
        in_val[rng.permutation(members)[:n_val]] = True
    val_mask = in_val[inverse]
    info = {"n_groups": int(n_groups), "n_val_groups": int(in_val.sum()),
            "classes_without_validation": single if val_fraction > 0 else [], "mixed_groups": mixed}
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask), info


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------


def predict_proba(model, X, batch_size=8192, with_angle=False):
    """Class probabilities of raw spectra with an OreMap model: its preprocessing, then the graph.

    Parameters
    ----------
    model : core.engine.model_format.OnnxModel
    X : array-like of shape (n, n_bands)
        Spectra already resampled to ``model.info.wavelengths``.
    with_angle : bool
        Also return each spectrum's angles (rad) to the nearest exemplar of its most probable class in each
        view of the model's out-of-distribution check (:func:`core.hyperspectral.ood.angles`); one column of
        NaN when the model stores no exemplars. :func:`core.hyperspectral.ood.out_of_distribution` compares them with the thresholds.

    Returns
    -------
    ndarray of float32 of shape (n, n_classes), and with ``with_angle`` the angles (n, n_views)
    """
    info = model.info
    P = preprocess(X, info.preprocessing_method, info.wavelengths)
    if not (with_angle and ood.has_feature_view(info)):
        probs = model.run(P, batch_size=batch_size)
        return probs if not with_angle else (probs, ood.angles(info, X, P, probs.argmax(axis=1)))
    out = model.run_outputs(P, batch_size=batch_size)
    probs = np.asarray(out[OUTPUT_NAME], dtype=np.float32)
    return probs, ood.angles(info, X, P, probs.argmax(axis=1), out[DISTANCE_NAME])



# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What :func:`train_classifier` returns.

    Attributes
    ----------
    onnx_bytes : bytes
        The exported graph *without* OreMap metadata (so two runs with the
        same seed give identical bytes although their dates differ); use
        :meth:`save` for a complete model.
    info : ModelInfo
    history : dict of list of float
        Per epoch: ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``
        (validation entries NaN without validation). ``train_loss`` is the
        classes' cross-entropy (the loss ``val_loss`` measures on the
        validation spectra) over the epoch's training batches, as they were
        trained (training mode), without the outliers' term of outlier
        exposure; with exposure, ``train_outlier_loss`` holds that term
        (weight x the outliers' cross-entropy to a flat output), the loss
        optimised being the sum of the two.
    train_indices, val_indices : ndarray of int64
        Rows of the input ``X`` used for training and validation.
    val_labels : ndarray of int64
        Label of each validation sample evaluated (augmented copies when
        augmentation was used, else ``y[val_indices]``).
    val_spectra : ndarray of float64 of shape (n_val, n_bands)
        Those samples' spectra before preprocessing (for baselines such as
        SAM on the same validation data).
    val_proba : ndarray of float32 of shape (n_val, n_classes)
        Probabilities of those samples from the best network.
    val_summary : dict or None
        :func:`core.engine.accuracy.summary` of those predictions (confusion matrix,
        per-class figures); ``None`` without validation data.
    source_proba : ndarray of float32 of shape (len(val_indices), n_classes) or None
        Probabilities of the held-out spectra themselves (``X[val_indices]``, not augmented) from the network
        validated; None without augmentation (then they are the validation samples) or validation.
    torch_model : torch.nn.Module
        The export module (standardisation, network, softmax) in eval mode.
    """

    onnx_bytes: bytes
    info: ModelInfo
    history: dict
    train_indices: np.ndarray
    val_indices: np.ndarray
    val_labels: np.ndarray
    val_spectra: np.ndarray
    val_proba: np.ndarray
    val_summary: dict = None
    torch_model: object = field(default=None, repr=False, compare=False)
    source_proba: np.ndarray = None

    def save(self, path):
        """Write the OreMap model file (atomically); returns the path."""
        return write_model(self.onnx_bytes, self.info, path)


def data_hash(X, y):
    """sha256 hex digest of the training data (X as little-endian float64, y as int64)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    return digest.hexdigest()


def validation_metrics(found):
    """The validation entries of ``training["metrics"]`` from an :func:`core.engine.accuracy.summary`."""
    recalls = [c["recall"] for c in found["per_class"] if c["support"] > 0]
    per_class = {c["name"]: {"precision": c["precision"], "recall": c["recall"], "f1": c["f1"],
                             "support": c["support"]} for c in found["per_class"]}
    return {"val_accuracy": found["overall_accuracy"], "val_balanced_accuracy": float(np.mean(recalls)),
            "val_kappa": found["kappa"], "val_macro_f1": found["macro_f1"],
            "confusion_matrix": found["matrix"], "per_class": per_class}


def _check_training_data(X, y, class_names, groups, wavelengths, fwhm, preprocessing):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise OreMapError("Training spectra must be a non-empty 2-D array (n_samples, n_bands).",
                          parameter="training")
    n, b = X.shape
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise OreMapError(f"Labels must be {n} integer class indexes.", parameter="training")
    y = y.astype(np.int64)
    class_names = [str(c) for c in class_names]
    k = len(class_names)
    if k < 2:
        raise OreMapError("Training needs at least 2 classes.", parameter="training")
    if y.min() < 0 or y.max() >= k:
        raise OreMapError(f"Labels must lie between 0 and {k - 1} (one per class name).", parameter="training")
    empty = [class_names[i] for i in range(k) if not np.any(y == i)]
    if empty:
        raise OreMapError(f"No training samples for the classes {', '.join(empty)}.", parameter="training",
                          fix="Give samples of every class, or leave those classes out.")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        raise OreMapError(
            f"{int(bad.sum())} training spectra hold missing (NaN) or infinite values.", parameter="training",
            fix="Leave out or fill spectra that do not cover the model's bands.")
    groups = np.arange(n) if groups is None else np.asarray(groups).reshape(-1)
    if groups.size != n:
        raise OreMapError(f"{groups.size} group ids were given for {n} samples.", parameter="training")
    for name, values in (("wavelengths", wavelengths), ("fwhm", fwhm)):
        if values is not None and np.asarray(values).size != b:
            raise OreMapError(f"{np.asarray(values).size} {name} were given for spectra of {b} bands.",
                              parameter="wavelengths")
    if preprocessing not in PREPROCESSING_METHODS:
        raise _unknown_preprocessing(preprocessing, "preprocessing")
    return X, y, class_names, groups


def _evaluate(net, torch, Z, y, loss_fn, batch_size=4096):
    """Mean loss and accuracy of a network on standardised data (in eval mode, without gradients)."""
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(torch.from_numpy(Z[i:i + batch_size])) for i in range(0, Z.shape[0], batch_size)])
        target = torch.from_numpy(y)
        loss = float(loss_fn(logits, target))
        acc = float((logits.argmax(dim=1) == target).float().mean())
    return loss, acc


class _Exposure:
    """Outlier exposure (Hendrycks, Mazeika and Dietterich 2019, "Deep anomaly detection with outlier
    exposure"): beside each training batch, as many spectra of materials outside every class, drawn with
    ``rng``, go through the network in the same forward pass; their cross-entropy to the uniform
    distribution, times ``weight``, is added to the loss, so the network learns to give spectra unlike its
    classes a flat, low-confidence output. ``P``: the outliers preprocessed; ``mean``, ``std``: the
    standardisation of the training spectra."""

    def __init__(self, torch, P, mean, std, weight, rng):
        self.torch = torch
        self.Z = torch.from_numpy(np.ascontiguousarray((P - mean) / std, dtype=np.float32))
        self.weight = float(weight)
        self.rng = rng

    def loss(self, net, xb, yb, loss_fn):
        """(loss of the batch with its outliers, logits of the training batch, the classes' cross-entropy alone:
        the loss without ``weight`` x the outliers' term)."""
        torch = self.torch
        n = xb.shape[0]
        rows = torch.from_numpy(self.rng.integers(0, self.Z.shape[0], n))
        logits = net(torch.cat([xb, self.Z[rows]]))
        flat = -torch.log_softmax(logits[n:], dim=1).mean()
        classes = loss_fn(logits[:n], yb)
        return classes + self.weight * flat, logits[:n], classes


def _batch_loss(net, loss_fn, xb, yb, exposure):
    """(loss, logits, classes' loss) of one training batch, with the outliers of ``exposure`` when given: the loss
    optimised, the logits of the batch's spectra and their cross-entropy ``loss_fn`` alone (the loss itself without
    outliers), the quantity :func:`_evaluate` measures on the validation spectra."""
    if exposure is None:
        logits = net(xb)
        loss = loss_fn(logits, yb)
        return loss, logits, loss
    return exposure.loss(net, xb, yb, loss_fn)


def _weight_sum(loss_fn, yb):
    """Denominator of ``loss_fn``'s mean over a batch: the summed class weights of its labels (its size without
    weights). Batch losses times it, summed and divided by its sum, give ``loss_fn`` over all the batches at once
    (a weighted cross-entropy's mean, label smoothing included, divides by the labels' weights)."""
    weight = getattr(loss_fn, "weight", None)
    return float(yb.shape[0]) if weight is None else float(weight[yb].sum())


def _fit(net, torch, optimiser, loss_fn, train, val, history, rng, schedule, feedback, exposure=None,
         progress=95.0):
    """The epochs of :func:`train_classifier` on the shared loop (:func:`core.engine.torch_training.train_epochs`).

    ``train``: (spectra, labels) tensors; ``val``: (spectra, labels) arrays, possibly empty;
    ``schedule``: (epochs, batch size, patience, minimum epochs); ``exposure``: an :class:`_Exposure` or None;
    ``progress``: the percent the epochs run up to. Fills ``history``; returns the loop's outcome with the best
    epoch's weights loaded into ``net``.
    """
    X_all, y_all = train
    Zva, yva_t = val
    epochs, batch_size, patience, min_epochs = schedule
    has_val = Zva.shape[0] > 0
    tally = {}

    def start_epoch(epoch):
        net.train()
        tally.update(correct=0, seen=0, classes=0.0, classes_weight=0.0, outliers=0.0)

    def step(batch):
        xb, yb = X_all[batch], y_all[batch]
        optimiser.zero_grad()
        loss, logits, classes = _batch_loss(net, loss_fn, xb, yb, exposure)
        loss.backward()
        optimiser.step()
        tally["correct"] += int((logits.argmax(dim=1) == yb).sum())
        tally["seen"] += batch.numel()
        weight = _weight_sum(loss_fn, yb)
        tally["classes"] += classes.item() * weight
        tally["classes_weight"] += weight
        if exposure is not None:  # weight x the outliers' cross-entropy to a flat output (as many as the batch)
            tally["outliers"] += (loss.item() - classes.item()) * batch.numel()
        return loss

    def end_epoch(epoch, train_loss):
        # train_loss: the loss optimised (with the outliers' term under exposure); the curve records the classes'
        # cross-entropy over the epoch's batches, as _evaluate measures the validation spectra's
        train_acc = tally["correct"] / max(tally["seen"], 1)
        classes_loss = tally["classes"] / tally["classes_weight"] if tally["classes_weight"] > 0 else float("nan")
        if has_val:
            val_loss, val_acc = _evaluate(net, torch, Zva, yva_t, loss_fn)
        else:
            val_loss, val_acc = float("nan"), float("nan")
        for key, value in (("train_loss", classes_loss), ("val_loss", val_loss), ("train_acc", train_acc),
                           ("val_acc", val_acc)):
            history[key].append(value)
        if exposure is not None:
            history.setdefault("train_outlier_loss", []).append(tally["outliers"] / max(tally["seen"], 1))
        return val_loss if has_val else train_loss  # early stopping without validation: on the loss optimised

    def log(epoch, train_loss):
        if (epoch + 1) % 10 == 0 or epoch == 0:
            line = (f"Epoch {epoch + 1}: training loss {history['train_loss'][-1]:.4f}"
                    + (f" (+ outlier exposure {history['train_outlier_loss'][-1]:.4f})" if exposure is not None else "")
                    + f", accuracy {100 * history['train_acc'][-1]:.1f} %")
            if has_val:
                line += (f"; validation loss {history['val_loss'][-1]:.4f}, "
                         f"accuracy {100 * history['val_acc'][-1]:.1f} %")
            feedback.info(line)

    def stopped(epoch, best_epoch):
        return (f"Early stop after epoch {epoch + 1}: no improvement for {patience} epochs; "
                f"keeping epoch {best_epoch + 1}.")

    return torch_training.train_epochs(
        int(y_all.shape[0]), batch_size, epochs, rng, step, feedback, start_epoch=start_epoch, end_epoch=end_epoch,
        model=net, patience=patience, progress=(0.0, float(progress)), log=log, early_stop_message=stopped,
        as_tensor=torch, min_epochs=min_epochs)


def _augment_settings(augment_options, wl):
    """Keyword arguments of :func:`augment` from ``train_classifier``'s ``augment_options`` (20 copies unless
    given; the tilt along the wavelengths)."""
    return {"n_per_spectrum": 20, "wavelengths": wl, **augment_options}


def _prepare_arrays(X, y, groups, class_names, val_fraction, seed, augment_options, preprocessing, wl, feedback):
    """Data preparation of :func:`train_classifier`: grouped split, augmentation, preprocessing and
    standardisation (fitted on the training spectra); a dict of the arrays."""
    n_bands = X.shape[1]
    train_idx, val_idx, split_info = grouped_split(y, groups, val_fraction, seed)
    single = [class_names[label] for label in split_info["classes_without_validation"]]
    if len(single) == 1:
        feedback.warning(f"Class '{single[0]}' has a single group of samples: it is used for training only and not "
                         "validated.")
    elif single:  # one line, however many (a whole library gives hundreds)
        feedback.warning(f"{len(single)} of {len(class_names)} classes have a single group of samples: they are used "
                         f"for training only and not validated ({', '.join(single[:10])}"
                         f"{', ...' if len(single) > 10 else ''}).")
    if val_fraction > 0 and val_idx.size == 0:
        feedback.warning("No class has two groups of samples, so nothing is held out for validation; "
                         "early stopping follows the training loss.")

    Xtr, ytr, gtr = X[train_idx], y[train_idx], groups[train_idx]
    Xva, yva, gva = X[val_idx], y[val_idx], groups[val_idx]
    if augment_options is not None:
        options = _augment_settings(augment_options, wl)
        copies = int(options["n_per_spectrum"])
        feedback.info(f"Augmenting {X.shape[0]} spectra into {copies} copies each ({X.shape[0] * copies} spectra).")
        Xtr, ytr, gtr = augment(Xtr, ytr, gtr, rng=np.random.default_rng([seed, 1]), **options)
        if Xva.shape[0]:
            Xva, yva, _ = augment(Xva, yva, gva, rng=np.random.default_rng([seed, 2]), **options)
    feedback.check()
    has_val = Xva.shape[0] > 0
    feedback.info(f"Training on {ytr.size} spectra ({train_idx.size} before augmentation), validating on "
                  f"{yva.size} ({val_idx.size} before augmentation, {split_info['n_val_groups']} of "
                  f"{split_info['n_groups']} groups).")

    Ptr = preprocess(Xtr, preprocessing, wl)
    Pva = preprocess(Xva, preprocessing, wl) if has_val else np.zeros((0, n_bands), np.float32)
    mean = Ptr.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = Ptr.std(axis=0, dtype=np.float64).astype(np.float32)
    std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    Ztr = np.ascontiguousarray((Ptr - mean) / std, dtype=np.float32)
    Zva = np.ascontiguousarray((Pva - mean) / std, dtype=np.float32)
    ytr_t = np.ascontiguousarray(ytr, dtype=np.int64)
    yva_t = np.ascontiguousarray(yva, dtype=np.int64)
    return dict(train_idx=train_idx, val_idx=val_idx, split_info=split_info, has_val=has_val, ytr=ytr, Xva=Xva,
                Xtr=Xtr, Ptr=Ptr,
                yva=yva, Pva=Pva, mean=mean, std=std, Ztr=Ztr, Zva=Zva, ytr_t=ytr_t, yva_t=yva_t)


def _prepare_outliers(outliers, outlier_groups, weight, n_bands, seed, augment_options, preprocessing, wl, feedback):
    """The outlier-exposure spectra of :func:`train_classifier`, checked, augmented like the training spectra
    (mixed only with outliers of other groups) and preprocessed: ``(P, record for the model)``, the record holding
    the weight."""
    O = np.asarray(outliers, dtype=np.float64)
    if O.ndim != 2 or O.shape[1] != n_bands or O.shape[0] < 2 or not np.isfinite(O).all():
        raise OreMapError(f"Outlier spectra must be a table of at least two finite spectra with {n_bands} bands "
                          "(the training spectra's).", parameter="outliers")
    g = np.arange(O.shape[0]) if outlier_groups is None else np.asarray(outlier_groups).reshape(-1)
    if g.size != O.shape[0]:
        raise OreMapError("Give one outlier group per outlier spectrum.", parameter="outliers")
    codes = np.unique(g, return_inverse=True)[1].reshape(-1)
    n = O.shape[0]
    if augment_options is not None:
        O, _, _ = augment(O, codes, codes, rng=np.random.default_rng([seed, 5]),
                          **_augment_settings(augment_options, wl))
    materials = None if outlier_groups is None else [str(v) for v in np.unique(g)]
    record = {"n_spectra": n, "n_materials": n if materials is None else len(materials), "weight": float(weight),
              "materials": materials}
    feedback.info(f"Outlier exposure: {n} spectra of {record['n_materials']} materials outside the classes "
                  f"({O.shape[0]} after augmentation), trained towards a flat output (weight {float(weight):g}).")
    return preprocess(O, preprocessing, wl), record


def _train_members(torch, tc, X, y, groups, class_names, seed, augment_options, preprocessing, wl, network, schedule,
                   feedback, members, prepared=None, label_smoothing=0.0, exposure=None, progress=(0.0, 95.0)):
    """New networks trained for the epochs early stopping chose, on every sample (the refit: ``prepared`` None)
    or on the training groups of the early-stopping run (``prepared``: its :func:`_prepare_arrays`);
    ``(export modules, n samples)``.

    ``members`` lists the member numbers to train: member 0 draws the refit's random numbers (torch seed
    ``seed + 1``, batches from ``[seed, 4]``, outliers from ``[seed, 6]``), member ``k`` seed ``seed + 1 + k``,
    ``[seed, 4, k]`` and ``[seed, 6, k]``; all see the same (augmented) spectra. ``exposure``: ``(preprocessed
    outliers, record with the weight)`` of :func:`_prepare_outliers`, or None. ``progress``: (start, span) in
    percent, shared equally by the members.
    """
    lr, weight_decay, batch_size, epochs = schedule
    share = float(progress[1]) / max(len(members), 1)
    d = prepared if prepared is not None else _prepare_arrays(X, y, groups, class_names, 0.0, seed, augment_options,
                                                              preprocessing, wl, feedback)
    n_classes = len(class_names)
    ytr = d["ytr"]
    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, ytr.size / (n_classes * np.maximum(counts, 1)), 0.0)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                                        label_smoothing=float(label_smoothing))
    Z, t = torch.from_numpy(d["Ztr"]), torch.from_numpy(d["ytr_t"])
    modules = []
    for number, k in enumerate(members):
        feedback.check()
        torch.manual_seed(int(seed) + 1 + int(k))
        net = SpectralCNN(X.shape[1], n_classes, **network)
        optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)

        outliers = None if exposure is None else _Exposure(
            torch, exposure[0], d["mean"], d["std"], exposure[1]["weight"],
            np.random.default_rng([seed, 6] if k == 0 else [seed, 6, int(k)]))

        def step(batch, net=net, optimiser=optimiser, outliers=outliers):
            net.train()
            optimiser.zero_grad()
            loss, _, _ = _batch_loss(net, loss_fn, Z[batch], t[batch], outliers)
            loss.backward()
            optimiser.step()
            return loss

        rng = np.random.default_rng([seed, 4] if k == 0 else [seed, 4, int(k)])
        torch_training.train_epochs(int(t.shape[0]), batch_size, epochs, rng, step, feedback,
                                    progress=(float(progress[0]) + number * share, share), as_tensor=torch)
        net.eval()
        module = tc["export"](net, d["mean"], d["std"])
        module.eval()
        modules.append(module)
    return modules, int(ytr.size)


def _model_info(X, y, class_names, wl, fwhm, preprocessing, description, training):
    """The model's metadata as stored (NaN -> None, tuples -> lists): classes and colours, bands, preprocessing,
    and ``training`` (metrics, parameters, out-of-distribution check) with the date and the data's hash."""
    colours = class_colours(class_names)
    info = ModelInfo(
        task=TASK,
        classes=[{"name": name, "color": hex_colour(c)} for name, c in zip(class_names, colours)],
        input={"name": INPUT_NAME, "n_bands": int(X.shape[1])},
        output={"name": OUTPUT_NAME, "kind": "probabilities"},
        wavelengths=None if wl is None else [float(v) for v in wl],
        fwhm=None if fwhm is None else [float(v) for v in np.asarray(fwhm, dtype=np.float64).reshape(-1)],
        preprocessing={"method": preprocessing},
        training={"date": build_date(), "data_hash": data_hash(X, y), "n_samples": int(X.shape[0]), **training},
        description=str(description),
    )
    return ModelInfo.from_json(info.to_json())


def train_classifier(X, y, class_names, groups=None, wavelengths=None, fwhm=None, preprocessing="brightness",
                     epochs=200, batch_size=256, lr=1e-3, patience=15, val_fraction=0.25, seed=0,
                     augment_options=None, feedback=None, description="",
                     network_options=None, weight_decay=0.0, refit=True, ensemble=1, label_smoothing=0.0,
                     ood_joint=True, outliers=None, outlier_groups=None, outlier_weight=0.5, min_epochs=1,
                     feature_check=False):
    # Over 100 lines by its docstring (every parameter documented) and its code (about 110 lines: the early-stopping
    # run, the refit and ensemble members, the out-of-distribution check and the validation figures share their arrays).
    """Train a spectral CNN classifier and export it to the OreMap model format.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_bands)
        Reflectance spectra at the model's bands (finite values only).
    y : array-like of int of shape (n_samples,)
        Class index of each spectrum into ``class_names``.
    class_names : sequence of str
        Every class must have samples.
    groups : array-like of shape (n_samples,), optional
        Group of each spectrum (physical sample, polygon...); validation takes
        whole groups (:func:`grouped_split`). Each sample is its own group
        when ``None``.
    wavelengths, fwhm : array-like of shape (n_bands,), optional
        Band centres and widths (nm), stored in the model; the wavelengths
        are also the axis of continuum removal and of the augmentation tilt.
    preprocessing : {"none", "brightness", "continuum_removal"}, default "brightness"
    epochs : int, default 200
        Largest number of passes over the training data.
    batch_size : int, default 256
    lr : float, default 1e-3
        Adam learning rate.
    patience : int, default 15
        Stop after this many epochs without a lower validation loss (the loss
        optimised, outlier exposure's term included, without validation); the
        best epoch's weights are kept.
    min_epochs : int, default 1
        Early stopping keeps no epoch before this one (at most ``epochs``) and counts patience from it. With
        outlier exposure the validation loss can be lowest after a few epochs, while the network is still
        unsure of the held-out samples of its classes.
    val_fraction : float, default 0.25
        About this fraction of each class's groups is held out; 0 = none.
    seed : int, default 0
        Same data, options and seed give the same model, byte for byte.
    augment_options : dict, optional
        When given (``{}`` for defaults), keyword arguments of
        :func:`augment` (``n_per_spectrum`` defaults to 20): training and
        validation spectra are augmented separately *after* the split, so
        validation holds held-out spectra with noise, mixing and shade.
    feedback : Feedback, optional
        Progress per epoch, a line every 10 epochs, cancellation between
        epochs.
    description : str, default ""
        Stored in the model.
    network_options : dict, optional
        Keyword arguments of :func:`SpectralCNN` (``channels``, ``kernels``,
        ``hidden``, ``dropout``) overriding :data:`DEFAULT_NETWORK`.
    weight_decay : float, default 0.0
        Adam L2 penalty.
    refit : bool, default True
        After early stopping on the held-out groups, train a new network on *all* samples (held-out
        ones included, augmented alike) for the number of epochs early stopping chose, and export that
        one. The validation figures are those of the held-out run: an estimate for the procedure.
    ensemble : int, default 1
        Networks averaged in the saved model (a seed ensemble in one ONNX graph: the mean of their
        class probabilities). Early stopping runs once; each member is a network of another seed trained
        for the epochs it chose, on all samples with ``refit`` (else on the training groups, the first
        member being the early-stopped network). The validation figures are those of the single
        held-out network.
    label_smoothing : float, default 0.0
        Label smoothing of the cross-entropy loss (0 = none).
    ood_joint : bool, default True
        Calibrate the out-of-distribution check's views together, so that they reject at most 1 % of the held-out
        spectra together (:func:`core.hyperspectral.ood.joint_quantile`); False: each view at the 0.99 quantile
        (up to 2 % together with two views; the bundled model's rule, which lets fewer untrained minerals through).
    outliers : array-like of shape (n_outliers, n_bands), optional
        Outlier exposure: spectra of materials that belong to no class (same bands as ``X``). They are augmented
        like the training spectra and, beside each training batch, trained towards a uniform output, so the
        network gives spectra unlike every class a low confidence (:class:`_Exposure`). Choose materials that
        are really outside every class: a variant or mixture of a class taught as "none of them" makes the
        network doubt that class.
    outlier_groups : array-like of shape (n_outliers,), optional
        Material (group) of each outlier spectrum: augmentation mixes outliers only with other groups', and
        the model records the materials' names (``training["parameters"]["outlier_exposure"]["materials"]``).
    outlier_weight : float, default 0.5
        Weight of the outliers' cross-entropy to the uniform distribution beside the classes' cross-entropy
        (Hendrycks et al. use 0.5).
    feature_check : bool, default False
        Add the feature view to the out-of-distribution check: the graph also returns each spectrum's cosine
        distance, in the network's penultimate features, to the :data:`core.hyperspectral.ood.FEATURE_K`-th
        nearest of (at most :data:`core.hyperspectral.ood.FEATURE_REFERENCE_MAX`) training spectra, and a
        spectrum beyond the threshold is out of distribution. The threshold is the held-out spectra's quantile
        in the validated network, carried to a refit network by the ratio of the two networks' median distances
        between training spectra (:func:`core.hyperspectral.ood.feature_check`). Where the angle views see how
        far a spectrum lies from the samples of its class, this view sees whether the network recognises it:
        it rejects mostly spectra the network gets wrong.

    Returns
    -------
    TrainingResult
        ``info.training["metrics"]`` holds ``best_epoch``, ``epochs_run``,
        ``train_loss`` (the classes' cross-entropy of ``history``), ``train_accuracy``, ``n_train``,
        ``n_validation`` and,
        with validation data, ``val_loss``, ``val_accuracy``,
        ``val_balanced_accuracy``, ``val_kappa``, ``val_macro_f1``,
        ``confusion_matrix`` and ``per_class``.

    Raises
    ------
    OreMapError
        ``parameter="training"`` for inconsistent or non-finite training
        data, or when the loss is not a number in every epoch (divergence);
        ``parameter="wavelengths"`` when wavelengths/FWHM do not match
        the bands; ``parameter="preprocessing"`` for an unknown method.
    Cancelled
        When ``feedback`` asks to stop.
    """
    feedback = ensure(feedback)
    if int(epochs) < 1 or int(batch_size) < 2 or int(patience) < 1 or not lr > 0 or int(ensemble) < 1 \
            or not 0.0 <= float(label_smoothing) < 1.0 or not float(outlier_weight) >= 0.0 or int(min_epochs) < 1:
        raise OreMapError("Epochs, minimum epochs, patience and ensemble members must be at least 1, the batch size "
                          "at least 2, the learning rate positive, label smoothing in [0, 1) and the outlier weight at "
                          "least 0.", parameter="training")
    X, y, class_names, groups = _check_training_data(X, y, class_names, groups, wavelengths, fwhm, preprocessing)
    n, n_bands = X.shape
    n_classes = len(class_names)
    network = {**DEFAULT_NETWORK, **(network_options or {})}
    wl = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64).reshape(-1)
    tc = _torch_classes()
    torch = tc["torch"]
    feedback.check()

    d = _prepare_arrays(X, y, groups, class_names, val_fraction, seed, augment_options, preprocessing, wl, feedback)
    train_idx, val_idx, split_info, has_val = d["train_idx"], d["val_idx"], d["split_info"], d["has_val"]
    ytr, Xva, yva, Pva, mean, std = d["ytr"], d["Xva"], d["yva"], d["Pva"], d["mean"], d["std"]
    Ztr, Zva, ytr_t, yva_t = d["Ztr"], d["Zva"], d["ytr_t"], d["yva_t"]

    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, ytr.size / (n_classes * np.maximum(counts, 1)), 0.0)
    exposed = None if outliers is None or not float(outlier_weight) > 0 else _prepare_outliers(
        outliers, outlier_groups, outlier_weight, n_bands, seed, augment_options, preprocessing, wl, feedback)
    P_source = preprocess(X, preprocessing, wl)
    exemplars = ood.exemplar_views(X[train_idx], P_source[train_idx], y[train_idx], groups[train_idx], n_classes, wl,
                                   preprocessing)

    history = {"train_loss": [], "val_loss": [], "train_acc": [], "val_acc": []}
    rng = np.random.default_rng([seed, 3])
    with torch_training.seeded(torch, seed, deterministic=True, feedback=feedback):
        net = SpectralCNN(n_bands, n_classes, **network)
        loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                                            label_smoothing=float(label_smoothing))
        optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        exposure = None if exposed is None else _Exposure(torch, exposed[0], mean, std, exposed[1]["weight"],
                                                          np.random.default_rng([seed, 7]))
        refitting = bool(refit and has_val)
        members = list(range(int(ensemble))) if refitting else list(range(1, int(ensemble)))
        fit_share = 95.0 / (1 + len(members))  # early stopping and each network trained after it: equal shares
        outcome = _fit(net, torch, optimiser, loss_fn, (torch.from_numpy(Ztr), torch.from_numpy(ytr_t)),
                       (Zva, yva_t), history, rng, (epochs, batch_size, patience, min_epochs), feedback,
                       exposure, progress=fit_share)
        best_epoch = outcome.best_epoch
        feedback.check()
        if outcome.best_state is None:  # the monitored loss was NaN in every epoch
            raise OreMapError(
                "Training diverged: the loss is not a number.", parameter="training",
                fix="Lower the learning rate (e.g. 0.001), or check the training spectra for extreme values.")
        net.eval()
        module = tc["export"](net, mean, std)
        module.eval()
        n_refit = 0
        held = module   # the network the held-out figures describe
        if members:
            if refitting:
                feedback.info(f"Refit: training {len(members)} new network(s) on all {y.size} labelled samples "
                              f"(the held-out ones included) for the {best_epoch + 1} epochs early stopping chose.")
            else:
                feedback.info(f"Ensemble: training {len(members)} more network(s) of other seeds on the training "
                              f"samples for the {best_epoch + 1} epochs early stopping chose.")
            trained, n_trained = _train_members(
                torch, tc, X, y, groups, class_names, seed, augment_options, preprocessing, wl, network,
                (lr, weight_decay, batch_size, best_epoch + 1), feedback, members,
                prepared=None if refitting else d, label_smoothing=label_smoothing, exposure=exposed,
                progress=(fit_share, 95.0 - fit_share))
            n_refit = n_trained if refitting else 0
            module = ensemble_module(trained if refitting else [module] + trained)
            if not refitting:   # the average is saved, and none of its networks saw a held-out spectrum
                held = module
        val_proba = predict_proba_torch(held, Pva) if has_val else np.zeros((0, n_classes), np.float32)
        # the held-out spectra as measured (before augmentation), for the out-of-distribution check's figures
        source_proba = predict_proba_torch(held, P_source[val_idx]) if has_val and augment_options is not None \
            else None
        if feature_check:  # the validated network's feature distances of the held-out spectra
            k = ood.FEATURE_K
            ref_train = train_idx[ood.feature_reference_rows(y[train_idx])]
            validated = with_feature_reference(held, P_source[ref_train], k)
            held_distance = feature_distances(validated, Pva) if has_val else None
            source_distance = feature_distances(validated, P_source[val_idx]) if source_proba is not None else None
            validated_spread = ood.reference_distances(feature_references(validated), k)
        # held-out groups of one spectrum each (labelled pixels without a group) come from the training samples:
        # their angles (and feature distances) understate a new sample's, so their thresholds get a margin
        singletons = np.unique(groups, return_counts=True)[1].max() == 1
        feature = None
        if feature_check:  # the saved network's reference: every group's spectra after a refit
            ref_rows, spread = ref_train, validated_spread
            if held is module:   # the network validated is the one saved
                module = validated
            else:   # a refit: every group's spectra are its reference
                ref_rows = ood.feature_reference_rows(y)
                module = with_feature_reference(module, P_source[ref_rows], k)
                spread = ood.reference_distances(feature_references(module), k)
            validated_scale = float(np.median(validated_spread))
            scale = float(np.median(spread)) / validated_scale if has_val and validated_scale > 0 else 1.0
            margin = ood.FEATURE_PIXEL_MARGIN if singletons else 1.0
            feature = (ood.feature_check(n_classes, k, ref_train.size, held_distance, None, margin=margin)
                       if has_val else None,
                       ood.feature_check(n_classes, k, ref_rows.size, held_distance, spread, margin=margin,
                                         scale=scale))
        onnx_bytes = export_onnx(module, n_bands)

    # out-of-distribution check: thresholds from the held-out groups (spectra neither the network nor the
    # exemplars saw), else from the augmented training spectra
    check = ood.fit((d["Xtr"], d["Ptr"], ytr), (Xva, Pva, yva) if has_val else None, exemplars, n_classes, wl,
                    preprocessing, held_out_margin=ood.pixel_margin(feature_check) if singletons else 1.0,
                    joint=ood_joint)
    if feature is not None and has_val:  # the validated network's threshold for the validation figures
        check["feature"] = feature[0]
    checked = SimpleNamespace(training={"ood": check}, wavelengths=wl, preprocessing_method=preprocessing)
    metrics = {"best_epoch": best_epoch + 1, "epochs_run": len(history["train_loss"]),
               "train_loss": history["train_loss"][best_epoch], "train_accuracy": history["train_acc"][best_epoch],
               "n_train": int(ytr.size), "n_validation": int(yva.size), "refit_samples": int(n_refit)}
    val_summary = None
    if has_val:
        from ..engine.accuracy import summary

        val_summary = summary(yva, val_proba.argmax(axis=1), list(range(n_classes)), class_names)
        found = validation_metrics(val_summary)
        far = ood.out_of_distribution(checked, ood.angles(checked, Xva, Pva, val_proba.argmax(axis=1),
                                                          held_distance if feature else None),
                                      val_proba.argmax(axis=1))
        found["val_out_of_distribution"] = float(far.mean())
        found["val_accuracy_in_distribution"] = float((val_proba.argmax(axis=1) == yva)[~far].mean()) if (~far).any() \
            else float("nan")
        if source_proba is not None:  # the held-out library spectra or pixels themselves, not augmented
            given = source_proba.argmax(axis=1)
            far = ood.out_of_distribution(checked, ood.angles(checked, X[val_idx], P_source[val_idx], given,
                                                              source_distance if feature else None), given)
            found["val_source_accuracy"] = float((given == y[val_idx]).mean())
            found["val_source_out_of_distribution"] = float(far.mean())
        metrics.update({"val_loss": history["val_loss"][best_epoch], **found})
        feedback.info(f"Validation accuracy {100 * found['val_accuracy']:.1f} % (balanced "
                      f"{100 * found['val_balanced_accuracy']:.1f} %) at epoch {best_epoch + 1}.")

    if refitting:  # the saved model knows every group: exemplars of all of them, same thresholds
        check = ood.with_exemplars(check, ood.exemplar_views(X, P_source, y, groups, n_classes, wl, preprocessing))
    if feature is not None:  # the saved network's threshold
        check["feature"] = feature[1]
    counts = np.bincount(y, minlength=n_classes)
    few = [i for i in range(n_classes) if counts[i] < ood.MIN_CHECKED_SPECTRA]
    if feature_check and few:   # a model of image pixels: a class of one pixel was trained but never mapped
        check = ood.unchecked(check, few)
        listed = ", ".join(f"'{class_names[i]}' ({counts[i]})" for i in few)
        feedback.warning(f"Too few labelled pixels for the out-of-distribution check: {listed}. It is off for "
                         f"{'this class' if len(few) == 1 else 'these classes'} (such pixels are classified by "
                         f"the network's confidence alone): label at least {ood.MIN_CHECKED_SPECTRA} pixels of "
                         f"each class for the check to run, and {ood.FEATURE_K} or more (more points, or a polygon) "
                         "for it to judge them well.")
    parameters = {
        "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "patience": int(patience),
        "min_epochs": int(min_epochs),
        "val_fraction": float(val_fraction), "seed": int(seed), "weight_decay": float(weight_decay),
        "augment_options": None if augment_options is None else
        {k: v for k, v in augment_options.items() if k != "wavelengths"},
        "network": {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in network.items()},
        "class_counts": {name: int((y == i).sum()) for i, name in enumerate(class_names)},
        "split": split_info,
        "refit": refitting,
        "ensemble": int(ensemble),
        "label_smoothing": float(label_smoothing),
        "outlier_exposure": None if exposed is None else exposed[1],
        "feature_check": bool(feature_check),
        # another thread count sums in another order: the same seed and data then give a network a few last digits
        # apart, which can move a held-out figure (kappa 0.623 against 0.640 at 4 epochs on 1 and 2 threads)
        "torch_threads": int(torch.get_num_threads()),
    }
    info = _model_info(X, y, class_names, wl, fwhm, preprocessing, description,
                       {"metrics": metrics, "parameters": parameters, "ood": check})
    feedback.progress(100.0)
    return TrainingResult(
        onnx_bytes=onnx_bytes, info=info, history=history, train_indices=train_idx, val_indices=val_idx,
        val_labels=yva, val_spectra=Xva, val_proba=val_proba, val_summary=val_summary, torch_model=module,
        source_proba=source_proba)
