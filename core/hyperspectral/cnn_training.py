"""Train a spectral CNN, compare it with SAM on the same validation data, write model and report.

The one workflow behind ``oremap:train_spectral_cnn`` and ``make models``::

    data = training.library_training_set(paths, band_info)
    summary = cnn_training.train_and_report(data, "model.onnx", "report.html")
"""

import math

import numpy as np

from ..engine import accuracy, report
from . import sam
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo
from ..engine.spectra import PREPROCESSING
from .spectral_cnn import validation_metrics, train_classifier
from ..engine.model_format import build_time

PREPROCESSING_LABELS = dict(PREPROCESSING)

# Defaults of ``oremap:train_spectral_cnn`` chosen on 1,051 labelled AVIRIS-channel pixels of 12 minerals,
# 5-fold grouped by physical sample (bench/experiment_cnn_accuracy.py; figures in the README):
#: Preprocessing: continuum removal (96.0 +- 2.7 % against 93.5 +- 2.9 % with brightness normalisation).
DEFAULT_PREPROCESSING = "continuum_removal"
#: Augmented copies of each labelled image pixel (library spectra: the algorithm's AUGMENT_COPIES): 95.7 +- 2.6 %
#: alone, 97.1 +- 2.9 % with continuum removal.
PIXEL_AUGMENT_COPIES = 5
#: Networks of different seeds averaged in a model: 3 and 5 did not beat one (93.6 and 93.3 % against
#: 93.5 %) and classify 3-5 times slower, so one by default; ENSEMBLE offers more.
ENSEMBLE_DEFAULT = 1


def augment_options(copies, snr):
    """Augmentation settings for ``copies`` variants per spectrum with noise around ``snr`` (linear)."""
    if not copies:
        return None
    snr_db = 20.0 * math.log10(max(float(snr), 1.0))
    return {"n_per_spectrum": int(copies), "snr_db": (max(snr_db - 6.0, 0.0), snr_db + 6.0)}


def sam_baseline(train_X, train_y, val_X, n_classes):
    """SAM with each class's mean training spectrum as reference: predicted class of each validation spectrum."""
    refs = np.array([train_X[train_y == k].mean(axis=0) for k in range(n_classes)])
    classes, _ = sam.classify(val_X, refs)
    return classes - 1  # 0-based, as the CNN's


def train_and_report(data, model_path, report_path=None, preprocessing=DEFAULT_PREPROCESSING, augment_copies=0, snr=100.0,
                     epochs=150, batch_size=256, learning_rate=1e-3, patience=15, val_fraction=0.25, seed=42,
                     description="", network=None, feedback=None, refit=True, ensemble=ENSEMBLE_DEFAULT,
                     label_smoothing=0.0, ood_joint=True, outliers=None, outlier_weight=0.5, min_epochs=1,
                     feature_check=None, validation_groups=None):
    """Train on a :class:`~core.hyperspectral.training.TrainingSet`, write the model and the HTML report.

    ``ensemble`` networks of different seeds are averaged in the saved model and ``label_smoothing`` smooths
    the loss; ``ood_joint`` calibrates the out-of-distribution check's views together; ``outliers``: a
    :class:`~core.hyperspectral.training.TrainingSet` of materials outside every class (its classes are the
    materials), at the same bands, for outlier exposure with ``outlier_weight``
    (:func:`core.hyperspectral.spectral_cnn.train_classifier`), ``min_epochs`` the earliest epoch early stopping
    may keep, ``feature_check`` adds the feature view to the out-of-distribution check (None: for image pixels,
    ``data.source == "image"``). The model records ``data.source`` as ``training["source"]``. ``network`` overrides the network's size (``channels``, ``kernels``, ``hidden``, ``dropout``; see
    :func:`core.engine.spectral_network.SpectralCNN`). ``validation_groups``: how the held-out samples were grouped,
    in words (recorded as ``training["validation_groups"]`` and shown in the report; "point by point" figures are
    flagged as optimistic there).

    The model's ``training["metrics"]`` are those of :func:`core.hyperspectral.spectral_cnn.train_classifier`
    (``val_accuracy``, ``val_kappa``, ``val_macro_f1``, ``n_validation``...) plus
    ``sam_val_accuracy``, ``sam_val_kappa`` and ``sam_val_macro_f1``: the SAM baseline on the same
    validation data (only with validation data).

    Returns
    -------
    dict
        ``cnn`` and ``sam``: accuracy summaries (:func:`core.engine.accuracy.summary`) on the validation
        data; ``history``; ``info`` (the model's metadata); ``n_validation``; ``result``: the
        :class:`~core.hyperspectral.spectral_cnn.TrainingResult` (held-out spectra and their probabilities).
    """
    feedback = ensure(feedback)
    info = data.band_info
    if feature_check is None:
        feature_check = data.source == "image"
    result = train_classifier(
        data.X, data.y, data.class_names, groups=data.groups,
        wavelengths=None if info is None else info.centers, fwhm=None if info is None else info.fwhm,
        preprocessing=preprocessing, epochs=epochs, batch_size=batch_size, lr=learning_rate, patience=patience,
        val_fraction=val_fraction, seed=seed, augment_options=augment_options(augment_copies, snr),
        feedback=feedback.scaled(0, 95), description=description, network_options=network, refit=refit,
        ensemble=ensemble, label_smoothing=label_smoothing, ood_joint=ood_joint,
        outliers=None if outliers is None else outliers.X,
        outlier_groups=None if outliers is None else np.asarray(outliers.class_names)[outliers.y],
        outlier_weight=outlier_weight, min_epochs=min_epochs, feature_check=feature_check)
    labels = list(range(len(data.class_names)))
    train = result.train_indices
    # image pixels are judged as they are: augmented copies of a held-out pixel (mixed with up to 30 % of another
    # class, shaded, tilted) are field conditions the pixels already have, and they made SAM look 8-15 points
    # worse than on the pixels themselves while the CNN, trained on such copies, lost about 2
    pixels = data.source == "image" and result.source_proba is not None
    if pixels:
        y_val, val_spectra = data.y[result.val_indices], data.X[result.val_indices]
    else:
        y_val, val_spectra = np.asarray(result.val_labels), result.val_spectra
    if y_val.size == 0:
        feedback.warning("No validation data (too few groups per class): the report shows training metrics only.")
    sam_pred = sam_baseline(data.X[train], data.y[train], val_spectra, len(labels)) if y_val.size else y_val
    # The CNN was evaluated once, by train_classifier (its figures are in the model's metrics).
    if pixels and y_val.size:
        cnn = accuracy.summary(y_val, result.source_proba.argmax(axis=1), labels, data.class_names)
    else:
        cnn = result.val_summary or accuracy.summary(y_val, y_val, labels, data.class_names)
    summaries = {"cnn": cnn, "sam": accuracy.summary(y_val, sam_pred, labels, data.class_names)}
    training = dict(result.info.training)
    training["source"] = data.source or "unknown"  # library-trained or image-trained: how bands are read later
    if validation_groups:
        training["validation_groups"] = validation_groups
    if y_val.size:
        metrics = dict(training.get("metrics", {}))
        if pixels:   # the pixels' figures are the model's; those of the copies early stopping watched are kept
            copies = {f"val_copies_{k[4:]}": metrics[k] for k in ("val_accuracy", "val_balanced_accuracy",
                                                                  "val_kappa", "val_macro_f1") if k in metrics}
            metrics.update(copies, **validation_metrics(cnn), n_validation=int(y_val.size),
                           validation_counts="held-out pixels")
        training["metrics"] = {**metrics,
                               "sam_val_accuracy": summaries["sam"]["overall_accuracy"],
                               "sam_val_kappa": summaries["sam"]["kappa"],
                               "sam_val_macro_f1": summaries["sam"]["macro_f1"]}
    result.info.training = training
    result.info = ModelInfo.from_json(result.info.to_json())  # as stored (NaN -> None)
    result.save(model_path)
    feedback.progress(97)
    if report_path:
        html = training_report(data, result, summaries, preprocessing, augment_copies, snr, y_val if pixels else None)
        report.write_report(report_path, html)
    feedback.progress(100)
    return {**summaries, "history": result.history, "info": result.info, "n_validation": int(y_val.size),
            "result": result}


def _exposure_text(exposure):
    if not exposure:
        return "none"
    return (f"{exposure['n_spectra']} spectra of {exposure['n_materials']} materials outside the classes, trained "
            f"towards a flat output (weight {exposure['weight']:g})")


def _loss_note(result):
    """What the loss chart shows: the same quantity on both lines (the outliers' term left out of the training one)."""
    exposure = result.info.training.get("parameters", {}).get("outlier_exposure")
    text = ("Both lines are the cross-entropy of the classes' spectra, with the class weights and label smoothing "
            "of training: the training line over each epoch's batches while the network trained on them, the "
            "validation line over the validation spectra after the epoch.")
    if exposure:
        text += (f" Training also minimised the outlier-exposure term (weight {exposure['weight']:g} x the outliers' "
                 "cross-entropy to a flat output, at least the weight x ln(number of classes)); it is left out of the "
                 "training line, which the validation spectra have no counterpart of, and drawn on its own below.")
    return text


def _outlier_chart(history, epochs):
    """The outlier-exposure term of the training loss per epoch (an empty string without exposure)."""
    if not history.get("train_outlier_loss"):
        return ""
    return report.svg_line_chart(
        [("outlier-exposure term", epochs, history["train_outlier_loss"], "#2ca02c")],
        "Outlier exposure (training)", "epoch", "weight x cross-entropy to flat")


def training_report(data, result, summaries, preprocessing, augment_copies, snr, pixel_labels=None):
    """The HTML training report: data, settings, CNN vs SAM, learning curves, confusion matrices.

    ``pixel_labels``: the labels of the held-out image pixels when the figures are those of the pixels themselves
    (the augmented copies then only served early stopping)."""
    cnn, sam_summary = summaries["cnn"], summaries["sam"]
    counts = data.counts()
    evaluated = result.val_labels if pixel_labels is None else pixel_labels
    val_counts = np.bincount(np.asarray(evaluated, dtype=int), minlength=len(data.class_names))
    info = data.band_info
    bands = "band numbers" if info is None else (
        f"{info.n_bands} bands, {info.centers.min():.0f}-{info.centers.max():.0f} nm")
    settings = [
        ("Training samples", f"{data.X.shape[0]} spectra in {len(data.class_names)} classes ({bands})"),
        ("Groups", f"{len(set(np.asarray(data.groups).tolist()))} (validation takes whole groups)" + (
            f", {result.info.training['validation_groups']}" if result.info.training.get("validation_groups") else "")),
        ("Preprocessing", PREPROCESSING_LABELS.get(preprocessing, preprocessing)),
        ("Augmentation", f"{augment_copies} copies per spectrum, noise around SNR {snr:g}:1, mixing, shade, "
                         "slope, brightness" if augment_copies else "none"),
        ("Epochs run", str(len(result.history.get("train_loss", [])))),
        ("Validation samples", (
            f"{len(evaluated)} held-out pixels, as they are: the figures below count them (early stopping watched "
            f"{augment_copies} augmented copies of each)") if pixel_labels is not None else
         f"{len(result.val_labels)}" + (
            f" ({augment_copies} augmented copies of each of the {len(result.val_indices)} held-out spectra, as "
            "training makes them: the figures below count copies)" if augment_copies else "")),
        ("Model saved", (f"refit on all {result.info.training['metrics'].get('refit_samples', 0)} training samples "
                         f"(held-out ones included) for the {result.info.training['metrics'].get('best_epoch')} "
                         "epochs early stopping chose; the figures below are those of the held-out run")
         if result.info.training.get("parameters", {}).get("refit") else
         ("the network of the best epoch" if result.info.training.get("parameters", {}).get("ensemble", 1) <= 1 else
          "the network of the best epoch and the other networks, averaged; the figures below are the average's")),
        ("Ensemble", f"{result.info.training['parameters'].get('ensemble', 1)} network(s) of different seeds, "
                     "their class probabilities averaged in the model"),
        ("Outlier exposure", _exposure_text(result.info.training["parameters"].get("outlier_exposure"))),
        ("Created", build_time().strftime("%Y-%m-%d %H:%M")),
    ]
    sections = [("Training data and settings", report.html_table(["Setting", "Value"], settings) + (
        report.paragraph("Optimistic figures. Each training point was its own validation group: the held-out points are pixels of the same "
                         "outcrops or samples as the training points, so the figures below are optimistic (on the "
                         "project's labelled-pixel benchmark 99.6 % reported against 94.8 % on pixels of new "
                         "samples). Give a sample field to hold out whole samples.")
        if str(result.info.training.get("validation_groups", "")).startswith("point by point") else ""))]
    per_class = [[name, counts[name], int(val_counts[i]), cnn["per_class"][i]["f1"], sam_summary["per_class"][i]["f1"]]
                 for i, name in enumerate(data.class_names)]
    comparison = report.html_table(
        ["", "CNN", "SAM (class mean spectra)"],
        [["Overall accuracy", cnn["overall_accuracy"], sam_summary["overall_accuracy"]],
         ["Cohen's kappa", cnn["kappa"], sam_summary["kappa"]],
         ["Macro F1", cnn["macro_f1"], sam_summary["macro_f1"]]])
    sections.append(("CNN and SAM on the same validation data", comparison + report.svg_bar_chart(
        data.class_names, [[r[3] for r in per_class], [r[4] for r in per_class]], ["CNN", "SAM"],
        "F1 per class on the validation data", "F1")))
    sections.append(("Per class", report.html_table(
        ["class", "spectra (training + validation)", "validation samples", "F1 CNN", "F1 SAM"], per_class)))
    history = result.history
    epochs = list(range(1, len(history.get("train_loss", [])) + 1))
    sections.append(("Learning curves", report.svg_line_chart(
        [("training loss", epochs, history["train_loss"], "#1f77b4"),
         ("validation loss", epochs, history["val_loss"], "#ff7f0e")], "Loss of the classes", "epoch",
        "classes' cross-entropy")
        + report.paragraph(_loss_note(result), "note")
        + _outlier_chart(history, epochs)
        + report.svg_line_chart(
        [("training accuracy", epochs, history["train_acc"], "#1f77b4"),
         ("validation accuracy", epochs, history["val_acc"], "#ff7f0e")], "Accuracy", "epoch", "accuracy")))
    counted = ("Held-out pixels" if pixel_labels is not None else
               "Validation samples (augmented copies of held-out spectra)" if augment_copies else
               "Validation samples (held-out spectra)")
    sections += (accuracy.accuracy_sections(cnn, "CNN: ", counted)
                 + accuracy.accuracy_sections(sam_summary, "SAM: ", counted))
    return report.html_report("Spectral CNN training report", sections,
                              subtitle=result.info.description or "OreMap spectral classifier")
