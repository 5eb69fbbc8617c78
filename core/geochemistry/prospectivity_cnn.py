"""Mineral prospectivity from geochemical grids: a ResNet on element windows.

After the Pangxidong study (7,234 stream-sediment samples, 16 elements): each
element is gridded (e.g. by IDW) into one band of a raster stack, a window of
``window x window`` cells around a known deposit is an example of "ore", random
windows away from every deposit are examples of "background", and a residual
network (ResNet) learns to tell them apart from the multi-element pattern. The
trained network then scores windows over the whole area: a coarse grid of cells
(12 x 12 in the study) or windows every ``stride`` cells.

The pipeline, identical at training and inference (the ONNX graph holds steps 2-4):

1. read a window of the element stack (bands in the model's element order);
   pixels where any element is nodata, and cells beyond the raster, are NaN;
2. z-score each element with the mean and standard deviation fitted on the
   training windows (stored in the model's metadata too);
3. NaN -> 0 (the mean), plus, optionally, a 0/1 channel saying which cells are valid;
4. the ResNet: one logit; the graph outputs ``(1 - p, p)`` for the classes
   ``background`` and ``deposit``.

Spatial leakage is the main trap with few deposits: neighbouring windows share
cells, and a jittered copy of a validation window is nearly the same window. So
the area is cut into square blocks, deposits and background centres go to folds
by block (a held-out block is validated whole), augmentation (jitter, random
crops, flips, 90 degree rotations) is done only inside each fold's own training
set, and a training window whose footprint (crop margin included) could share a
cell with any of the fold's validation windows is dropped
(:func:`plan_spatial_folds`). The buffer is drawn around the validation windows,
not around whole blocks: with deposits clustered in one block, a buffer around
the block would leave its fold nothing to train on.

``torch`` is needed for training only and is imported inside the functions that
use it; mapping needs onnxruntime (:class:`core.engine.model_format.OnnxModel`).
"""

import hashlib
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..engine import torch_training
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, write_model
from .grid_meaning import read_meaning, recorded_transform
from .prospectivity_eval import roc_auc
from .prospectivity_network import (CLASSES, INPUT_NAME, OUTPUT_NAME, TASK, _check_window, _torch_classes,
                                    build_resnet, export_onnx, window_model)
from .prospectivity_folds import FoldPlan, WindowSpecs, _boxes_mask, pixel_size, plan_spatial_folds
from .prospectivity_report import training_report
from .prospectivity_data import read_stack
from ..engine.model_format import build_date


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def skip_reason(plan, train, val):
    """Why a fold of ``plan`` cannot be trained or scored, or None when it can: its training or validation part
    lacks deposits or background windows (an AUC needs both in each)."""
    if val.n_positive == 0:
        return "no validation deposit"
    if train.n_positive == 0:
        return ("no training deposit is left: the others lie within the buffer around its validation windows "
                f"({plan.window + plan.crop_pad} cells)")
    if train.n_negative == 0:
        return "no training background window is left"
    if val.n_negative == 0:
        return "no validation background window (its deposits would get no AUC); more negatives per deposit give some"
    return None


def _deposits(n):
    """``"1 deposit"``, ``"3 deposits"``."""
    return f"{n} deposit" + ("" if n == 1 else "s")


def _augment(raw, window, crop_pad, flips, rng):
    """Random crops of ``(n, C, window + 2 crop_pad, ...)`` windows to ``window``, then flips and rot90s."""
    n = raw.shape[0]
    out = np.empty(raw.shape[:2] + (window, window), dtype=np.float32)
    offsets = rng.integers(0, 2 * crop_pad + 1, size=(n, 2)) if crop_pad else np.zeros((n, 2), np.int64)
    turns = rng.integers(0, 4, size=n) if flips else np.zeros(n, np.int64)
    mirror = rng.integers(0, 2, size=n) if flips else np.zeros(n, np.int64)
    for i in range(n):
        a, b = offsets[i]
        x = raw[i, :, a:a + window, b:b + window]
        if mirror[i]:
            x = x[:, :, ::-1]
        out[i] = np.rot90(x, int(turns[i]), axes=(1, 2))
    return out


def _fit_stats(stack, specs, size):
    """Per-element mean and sd over the valid cells covered by ``specs``' windows (each cell once)."""
    r0, c0 = specs.rows - size // 2, specs.cols - size // 2
    covered = _boxes_mask(r0, r0 + size, c0, c0 + size, stack.height, stack.width) & stack.valid
    if not covered.any():
        covered = stack.valid
    core = stack.core
    mean = np.array([core[b][covered].mean(dtype=np.float64) for b in range(stack.n_elements)])
    sd = np.array([core[b][covered].std(dtype=np.float64) for b in range(stack.n_elements)])
    sd = np.where(sd > 1e-12 * np.maximum(np.abs(mean), 1.0), sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32), int(covered.sum())


def _balanced_loss(torch, logits, target, w_pos, w_neg):
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weights = torch.where(target > 0.5, torch.full_like(target, w_pos), torch.full_like(target, w_neg))
    return (per * weights).sum() / weights.sum()


def _class_weights(labels):
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    return 0.5 / max(n_pos, 1), 0.5 / max(n_neg, 1)


def _evaluate(module, torch, stack, specs, window, batch_size):
    """Probabilities and class-balanced loss of centred windows (eval mode)."""
    if len(specs) == 0:
        return np.zeros(0, np.float32), float("nan")
    module.eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(specs), batch_size):
            raw = stack.windows(specs.rows[i:i + batch_size], specs.cols[i:i + batch_size], window)
            logits.append(module.logit(torch.from_numpy(raw)))
    logits = torch.cat(logits)
    target = torch.from_numpy(specs.labels.astype(np.float32))
    w_pos, w_neg = _class_weights(specs.labels)
    loss = float(_balanced_loss(torch, logits, target, w_pos, w_neg))
    return torch.sigmoid(logits).numpy().astype(np.float32), loss


def _train_one(stack, train, val, options, seed, feedback, label):
    """Train one network on ``train`` windows; returns the export module, history and the epoch kept."""
    tc = _torch_classes()
    torch = tc["torch"]
    window, crop_pad = options["window"], options["crop_pad"]
    mean, sd, n_cells = _fit_stats(stack, train, window)
    rng = np.random.default_rng([int(seed), 7])
    with torch_training.seeded(torch, seed, feedback=feedback):
        channels = stack.n_elements + (1 if options["mask_channel"] else 0)
        net = build_resnet(channels, options["depth"], options["width"], window)
        module = window_model(net, mean, sd, options["mask_channel"])
        optimiser = torch.optim.SGD(net.parameters(), lr=options["lr"], momentum=options["momentum"],
                                    weight_decay=options["weight_decay"], nesterov=True)
        w_pos, w_neg = _class_weights(train.labels)
        epochs, batch_size, patience = options["epochs"], options["batch_size"], options["patience"]
        history = {"train_loss": [], "val_loss": []}
        tracked = bool(patience and len(val))  # the best epoch is kept only with early stopping on held-out cells

        def start_epoch(epoch):
            for group in optimiser.param_groups:  # cosine decay to 1 % of the initial rate
                group["lr"] = options["lr"] * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)))
            module.train()

        def step(batch):
            raw = stack.windows(train.rows[batch], train.cols[batch], window + 2 * crop_pad)
            x = torch.from_numpy(_augment(raw, window, crop_pad, options["flips"], rng))
            y = torch.from_numpy(train.labels[batch].astype(np.float32))
            optimiser.zero_grad()
            loss = _balanced_loss(torch, module.logit(x), y, w_pos, w_neg)
            loss.backward()
            optimiser.step()
            return loss

        def end_epoch(epoch, train_loss):
            _, val_loss = _evaluate(module, torch, stack, val, window, 256) if len(val) else (None, float("nan"))
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            if not np.isfinite(train_loss):
                raise OreMapError("Training diverged: the loss is not a number.", "learning_rate",
                                  "Lower the learning rate (e.g. 0.01 or 0.001).")
            return val_loss

        def log(epoch, train_loss):
            if (epoch + 1) % 10 == 0 or epoch == 0 or epoch + 1 == epochs:
                line = f"{label}, epoch {epoch + 1}: training loss {train_loss:.4f}"
                feedback.info(line + (f", validation loss {history['val_loss'][-1]:.4f}" if len(val) else ""))

        outcome = torch_training.train_epochs(
            len(train), batch_size, epochs, rng, step, feedback, start_epoch=start_epoch, end_epoch=end_epoch,
            model=module if tracked else None, patience=patience if tracked else 0, log=log,
            early_stop_message=lambda epoch, best: f"{label}: early stop after epoch {epoch + 1}, keeping epoch "
                                                   f"{best + 1}.")
    module.eval()
    return module, history, outcome.best_epoch, n_cells


def _metrics(labels, proba):
    """AUC, accuracy, balanced accuracy, F1 (deposit class, threshold 0.5) and the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = (np.asarray(proba) >= 0.5).astype(np.int64)
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    tn, fp, fn, tp = cm.ravel()
    auc = roc_auc(proba, labels)
    n = labels.size
    recall_pos = tp / (tp + fn) if tp + fn else float("nan")
    recall_neg = tn / (tn + fp) if tn + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    return {"auc": auc, "accuracy": float((tp + tn) / n) if n else float("nan"),
            "balanced_accuracy": float(np.nanmean([recall_pos, recall_neg])) if n else float("nan"),
            "f1": float(f1), "confusion_matrix": cm.tolist(), "n_positive": int(tp + fn), "n_negative": int(tn + fp)}


@dataclass
class ProspectivityResult:
    """What :func:`train_prospectivity` returns.

    Attributes
    ----------
    onnx_bytes : bytes
        The graph without OreMap metadata (identical for the same data, options and seed).
    info : ModelInfo
    plan : FoldPlan
    folds : list of dict
        Per fold: ``history`` (``train_loss``, ``val_loss`` per epoch), ``metrics`` (:func:`_metrics`),
        ``labels`` and ``proba`` of its validation windows, ``n_train``, ``n_val``...
    cv : dict
        ``auc_mean``, ``auc_sd`` (sample sd over folds with both classes), ``auc_per_fold``, pooled
        ``accuracy``, ``balanced_accuracy``, ``f1``, ``confusion_matrix``, ``pooled_auc``.
    history : dict
        The final model's training loss per epoch.
    torch_model : torch.nn.Module
        The final export module (eval mode).
    """

    onnx_bytes: bytes
    info: ModelInfo
    plan: FoldPlan
    folds: list
    cv: dict
    history: dict
    torch_model: object = field(default=None, repr=False, compare=False)

    def save(self, path):
        """Write the OreMap model file (atomically); returns the path."""
        return write_model(self.onnx_bytes, self.info, path)


def train_prospectivity(raster_path, deposits_xy, model_path=None, report_path=None, window=16, depth=18,
                        width=16, epochs=30, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4, n_folds=5,
                        block_size=None, min_distance=None, negatives_per_positive=10, jitter_copies=8, jitter=None,
                        crop_pad=None, flips=True, mask_channel=False, max_nodata=0.5, patience=0, seed=0,
                        nodata=None, memory_mb=None, threads=None, description="", feedback=None):
    # Over 100 lines: the docstring documents every setting; the code is the folds' training and the final fit.
    """Train a ResNet prospectivity model with spatial-block cross-validation, then a final model on all data.

    Parameters
    ----------
    raster_path : str
        Element stack: one band per element (band descriptions = element names), e.g. IDW grids of
        (log-)concentrations. Read whole into memory (within the memory budget).
    deposits_xy : array-like (n, 2)
        Known deposits in the raster's CRS.
    model_path, report_path : str, optional
        Where to write the ONNX model and the HTML report.
    window : int, default 16
        Window side in cells (8-256).
    depth, width : ResNet depth (18, 34, 50) and base width, see :func:`build_resnet`.
    epochs, batch_size : int
    lr, momentum, weight_decay : float
        SGD (Nesterov momentum) with a cosine learning-rate decay to 1 %.
    n_folds : int, default 5
        Spatial folds (0 = no cross-validation); block_size, min_distance, negatives_per_positive,
        jitter_copies, jitter, crop_pad, max_nodata: see :func:`plan_spatial_folds`.
    flips : bool, default True
        Random horizontal mirror and 90 degree rotations (the windows are square).
    mask_channel : bool, default False
        Give the network a 0/1 channel of valid cells (nodata is otherwise the mean, 0 after z-scoring).
    patience : int, default 0
        0: train every fold for ``epochs``. Otherwise stop a fold after ``patience`` epochs without a lower
        validation loss and keep its best epoch (its validation data then steer training, so the CV figures
        are optimistic); the final model trains for the median kept epoch count.
    seed : int
        Same data, options and seed give the same model, byte for byte.
    threads : int, optional
        Threads torch may use while training (restored afterwards); torch's default when None or 0.
        Small windows train fastest on 1 thread, and several threads on a busy machine can be many
        times slower than one.

    Returns
    -------
    ProspectivityResult
    """
    feedback = ensure(feedback)
    window = _check_window(window)
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2)):
        if int(value) < low:
            raise OreMapError(f"{name.replace('_', ' ').capitalize()} must be at least {low}.", name)
    if not lr > 0:
        raise OreMapError("The learning rate must be positive.", "learning_rate")
    if int(jitter_copies) < 0:
        raise OreMapError("The number of shifted copies must not be negative.", "jitter_copies")
    if not negatives_per_positive > 0:
        raise OreMapError("Give at least some background windows per deposit.", "negatives_per_positive")
    if not 0.0 <= float(max_nodata) < 1.0:
        raise OreMapError("The largest nodata share of a window must be in [0, 1).", "max_nodata")
    torch = _torch_classes()["torch"]
    # depth and width are checked by building a network before anything is read; its initial weights drew from the
    # process's random generator, which training promises to leave as it was
    with torch.random.fork_rng(devices=[]):
        build_resnet(1, depth, width, window)
    crop = max(window // 8, 1) if crop_pad is None else max(int(crop_pad), 0)
    stack = read_stack(raster_path, pad=window + crop + 2, nodata=nodata, memory_mb=memory_mb)
    feedback.progress(2)
    plan = plan_spatial_folds(stack.valid, deposits_xy, stack.transform, window, n_folds, block_size, min_distance,
                              negatives_per_positive, jitter_copies, jitter, crop, max_nodata, seed, feedback)
    pinfo = plan.info
    if pinfo["n_outside"]:
        feedback.warning(f"{pinfo['n_outside']} of {pinfo['n_points']} deposit points lie off the raster and are "
                         "only used to keep background windows away from them.")
    for key, text in (("n_on_nodata", "lie on nodata cells"), ("n_mostly_nodata", "have windows that are mostly "
                                                                                  "nodata")):
        if pinfo[key]:
            feedback.warning(f"{pinfo[key]} deposit points {text} and are left out.")
    if pinfo["n_shared_cells"]:
        feedback.info(f"{pinfo['n_shared_cells']} deposit points share a cell with another and count once with it.")
    feedback.info(f"{pinfo['n_deposits']} deposit windows, {pinfo['n_negatives']} background windows, "
                  + (f"{pinfo['n_folds']} spatial folds over {pinfo['n_blocks']} blocks of {pinfo['block_cells'][0]} "
                     "cells." if plan.folds else "no cross-validation (0 folds): the model gets no validation figure."))
    options = {"window": window, "crop_pad": plan.crop_pad, "depth": int(depth), "width": int(width),
               "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "momentum": float(momentum),
               "weight_decay": float(weight_decay), "patience": int(patience or 0), "flips": bool(flips),
               "mask_channel": bool(mask_channel)}
    runs = len(plan.folds) + 1
    folds = []
    # torch's generator and flags are the process's: held for this training alone (one training at a time)
    with torch_training.session(torch, deterministic=True, threads=threads, feedback=feedback):
        for f, fold in enumerate(plan.folds):
            train, val = fold["train"], fold["val"]
            part = feedback.scaled(3 + 92 * f / runs, 3 + 92 * (f + 1) / runs)
            why = skip_reason(plan, train, val)
            if why:
                feedback.warning(f"Fold {f + 1} is skipped ({_deposits(val.n_positive)} not validated): {why}.")
                folds.append({"fold": f + 1, "skipped": True, "n_train": len(train), "n_val": len(val),
                              "n_val_positive": val.n_positive,
                              "history": {"train_loss": [], "val_loss": []},
                              "metrics": _metrics(np.zeros(0, np.int64), np.zeros(0))})
                continue
            module, history, kept, _ = _train_one(stack, train, val, options, seed + 1000 * (f + 1), part,
                                                  f"Fold {f + 1}")
            proba, _ = _evaluate(module, torch, stack, val, window, 256)
            metrics = _metrics(val.labels, proba)
            feedback.info(f"Fold {f + 1}: AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f}, "
                          f"F1 {metrics['f1']:.3f} on {val.n_positive} deposit and {val.n_negative} background "
                          "windows.")
            folds.append({"fold": f + 1, "skipped": False, "history": history, "epoch_kept": kept + 1,
                          "metrics": metrics, "labels": val.labels, "proba": proba,
                          "n_train_positive": train.n_positive, "n_train_negative": train.n_negative,
                          "n_val_positive": val.n_positive, "n_val_negative": val.n_negative,
                          "buffered_deposits": fold["buffered_deposits"],
                          "buffered_negatives": fold["buffered_negatives"], "n_train": len(train),
                          "n_val": len(val)})
        final_options = dict(options)
        kept_epochs = [fd["epoch_kept"] for fd in folds if not fd["skipped"]]
        if options["patience"] and kept_epochs:
            final_options["epochs"] = max(1, int(np.median(kept_epochs)))
        part = feedback.scaled(3 + 92 * (runs - 1) / runs, 95)
        module, history, _, n_cells = _train_one(stack, plan.final, WindowSpecs.empty(), final_options, seed,
                                                 part, "Final model")
        onnx_bytes = export_onnx(module, stack.n_elements, window)
    cv = _cv_summary(folds)
    if np.isfinite(cv["auc_mean"]):
        from .prospectivity_report import cv_auc_text, score_text

        feedback.info(f"Spatial cross-validation: {cv_auc_text(cv, plan.info['n_deposits'])}, accuracy "
                      f"{score_text(cv['accuracy'])}, F1 {score_text(cv['f1'])}.")
    if plan.folds and cv["n_deposits_validated"] < plan.info["n_deposits"]:
        feedback.warning(
            f"Spatial cross-validation validated {cv['n_deposits_validated']} of {plan.info['n_deposits']} deposits "
            f"({cv['n_folds_scored']} of {len(plan.folds)} folds scored)"
            + (": its figures speak for those deposits only. " if cv["n_deposits_validated"]
               else ": it gives no figure. ")
            + "When nearly all deposits lie within a window or so of a fold's validation windows, the buffer around "
              "them can leave no training deposit; try a smaller window (WINDOW), fewer folds or another block "
              "size.")
    info = _model_info(stack, plan, cv, folds, options, final_options, module, n_cells, max_nodata, seed, n_folds,
                       negatives_per_positive, description, raster_path)
    result = ProspectivityResult(onnx_bytes=onnx_bytes, info=info, plan=plan, folds=folds, cv=cv, history=history,
                                 torch_model=module)
    if model_path:
        result.save(model_path)
    if report_path:
        from ..engine import report

        report.write_report(report_path, training_report(result, stack.height, stack.width, raster_path))
    feedback.progress(100)
    return result


def _cv_summary(folds):
    done = [f for f in folds if not f["skipped"]]
    aucs = np.array([f["metrics"]["auc"] for f in done], dtype=float)
    finite = aucs[np.isfinite(aucs)]
    out = {"auc_per_fold": [None if not np.isfinite(a) else float(a) for a in aucs],
           "auc_mean": float(finite.mean()) if finite.size else float("nan"),
           "auc_sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
           "n_folds_scored": int(finite.size),
           "n_deposits_validated": int(sum(f["n_val_positive"] for f in done))}
    if done:
        labels = np.concatenate([f["labels"] for f in done])
        proba = np.concatenate([f["proba"] for f in done])
        pooled = _metrics(labels, proba)
        out.update(accuracy=pooled["accuracy"], balanced_accuracy=pooled["balanced_accuracy"], f1=pooled["f1"],
                   confusion_matrix=pooled["confusion_matrix"], pooled_auc=pooled["auc"])
    else:
        out.update(accuracy=float("nan"), balanced_accuracy=float("nan"), f1=float("nan"),
                   confusion_matrix=[[0, 0], [0, 0]], pooled_auc=float("nan"))
    return out


def _stack_hash(stack, plan):
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(stack.core, dtype="<f4").tobytes())
    for values in (plan.deposits.rows, plan.deposits.cols, plan.negatives.rows, plan.negatives.cols):
        digest.update(np.ascontiguousarray(values, dtype="<i8").tobytes())
    return digest.hexdigest()


def _model_info(stack, plan, cv, folds, options, final_options, module, n_cells, max_nodata, seed, n_folds,
                negatives_per_positive, description, raster_path):
    mean = module.mean.numpy().reshape(-1)
    sd = module.sd.numpy().reshape(-1)
    px_w, px_h = pixel_size(stack.transform)
    metrics = {
        "cv_auc_mean": cv["auc_mean"], "cv_auc_sd": cv["auc_sd"], "cv_auc_per_fold": cv["auc_per_fold"],
        "cv_pooled_auc": cv["pooled_auc"], "cv_accuracy": cv["accuracy"],
        "cv_deposits_validated": cv["n_deposits_validated"],
        "cv_balanced_accuracy": cv["balanced_accuracy"], "cv_f1": cv["f1"],
        "cv_confusion_matrix": cv["confusion_matrix"], "n_deposits": plan.info["n_deposits"],
        "n_background_windows": plan.info["n_negatives"], "n_windows": len(plan.final),
        "n_positive_windows": plan.final.n_positive, "n_negative_windows": plan.final.n_negative,
        "n_folds": plan.info["n_folds"], "normalisation_cells": int(n_cells),
        "folds": [{"fold": f["fold"], "skipped": f["skipped"], "auc": f["metrics"]["auc"],
                   "accuracy": f["metrics"]["accuracy"], "f1": f["metrics"]["f1"], "n_train": f["n_train"],
                   "n_val": f["n_val"]} for f in folds],
    }
    parameters = {**{k: v for k, v in final_options.items()}, "cv_epochs": options["epochs"],
                  "n_folds_asked": int(n_folds), "block_size": plan.info["block_size"],
                  "block_cells": plan.info["block_cells"], "min_distance": plan.info["min_distance"],
                  "negatives_per_positive": float(negatives_per_positive),
                  "jitter_copies": plan.info["jitter_copies"], "jitter": plan.info["jitter"],
                  "max_nodata": float(max_nodata), "seed": int(seed),
                  "network": {"depth": options["depth"], "width": options["width"]}}
    info = ModelInfo(
        task=TASK,
        classes=[dict(c) for c in CLASSES],
        input={"name": INPUT_NAME, "n_bands": int(stack.n_elements), "window": int(plan.window)},
        output={"name": OUTPUT_NAME, "kind": "probabilities"},
        band_names=[str(n) for n in stack.names],
        preprocessing={"method": "zscore", "mean": [float(v) for v in mean], "sd": [float(v) for v in sd],
                       "nodata_fill": 0.0, "mask_channel": bool(options["mask_channel"]),
                       "max_nodata": float(max_nodata), "in_graph": True,
                       "input_transform": recorded_transform(read_meaning(raster_path))},
        training={
            "date": build_date(),
            "data_hash": _stack_hash(stack, plan), "n_samples": int(len(plan.deposits) + len(plan.negatives)),
            "metrics": metrics, "parameters": parameters,
            "source": os.path.basename(str(raster_path)),
        },
        description=str(description) or "OreMap geochemical prospectivity ResNet",
        extra={"spatial": {"window": int(plan.window), "cell_size": [float(px_w), float(px_h)],
                           "crs": stack.crs.to_wkt() if stack.crs else None,
                           "epsg": stack.crs.to_epsg() if stack.crs else None}},
    )
    return ModelInfo.from_json(info.to_json())


# ---------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------


