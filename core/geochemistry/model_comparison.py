"""Prospectivity models side by side under one spatial cross-validation.

Logistic regression, random forest, gradient boosting and a multilayer perceptron on window
statistics (:mod:`core.geochemistry.prospectivity_models`), the ResNet of
:mod:`core.geochemistry.prospectivity_cnn`, the best single element and a rank-mean ensemble,
all judged on exactly the same windows:

* one fold plan (:func:`core.geochemistry.prospectivity_cnn.plan_spatial_folds`, the ResNet
  trainer's own): the same deposit windows, background windows, blocks, folds and exclusion
  zones. Every model of a fold learns from the fold's training windows only (the jittered
  deposit copies included) and scores its validation windows; the ResNet is trained exactly as
  by ``train_prospectivity_cnn`` (same seeds), so its fold AUCs are that trainer's;
* the baseline: each element's grid value at the window's centre cell as the score; the row
  shows the element with the highest mean fold AUC (chosen on the validation folds, which can
  only favour the baseline);
* the ensemble: per fold, each model's score becomes its share of the fold's *training*
  background windows scoring lower; the ensemble is the mean share. Nothing of the validated
  fold goes into it.

Measures (per model): ROC-AUC per fold (mean and sample sd over the scored folds); a
deposit-level AUC (each validated deposit's share of its own fold's validation background
windows that score lower; their mean is the deposit-weighted fold AUC) with a bootstrap
interval over deposits, and paired bootstrap intervals of the differences between models;
average precision and ROC and success-rate curves of the out-of-fold map: each fold's models
score a sample of the valid cells of the fold's held-out blocks, scores become the share of
those cells scoring lower, so that the folds join into one out-of-fold map.
"""

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, build_date, write_model
from ..engine.torch_training import session
from . import prospectivity_cnn as pc
from . import prospectivity_folds as pf
from . import prospectivity_network as pn
from . import prospectivity_report as pr
from . import prospectivity_models as pm
from .grid_meaning import read_meaning, recorded_transform
from .prospectivity_eval import average_precision, roc_auc, roc_curve, success_rate_curve

#: Every model, in report order.
METHODS = ("logistic", "random_forest", "gradient_boosting", "mlp", "resnet")

LABELS = {"logistic": "Logistic regression", "random_forest": "Random forest",
          "gradient_boosting": "Gradient boosting", "mlp": "MLP", "resnet": "ResNet",
          "ensemble": "Rank-mean ensemble", "baseline": "Best single element"}

COLOURS = {"logistic": "#1f77b4", "random_forest": "#2ca02c", "gradient_boosting": "#ff7f0e", "mlp": "#9467bd",
           "resnet": "#d62728", "ensemble": "#000000", "baseline": "#7f7f7f"}

#: Below this many validated deposits the report warns that the uncertainty is wide.
FEW_DEPOSITS = 15


@dataclass
class ComparisonResult:
    """What :func:`compare_models` returns.

    ``rows``: one dict per model (``key``, ``label``, ``fold_auc``, ``auc_mean``, ``auc_sd``,
    ``deposit_auc``, ``deposit_ci``, ``ap``, ``success_auc``, ``n_deposits``, curves...);
    ``pairs``: paired bootstrap differences; ``deposits``: every input point with its status;
    ``models``: saved model paths by key; ``plan``: the fold plan; ``scores``: per fold, per key,
    the validation-window scores (for tests and reports).
    """

    rows: list
    pairs: list
    deposits: list
    plan: object
    folds: list
    models: dict = field(default_factory=dict)
    scores: list = field(default_factory=list)
    elements: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def row(self, key):
        return next(r for r in self.rows if r["key"] == key)


# ---------------------------------------------------------------------------
# Deposits the models cannot use
# ---------------------------------------------------------------------------


def deposit_status(stack, plan, deposits_xy, names=None, samples_xy=None):
    """One dict per input deposit point: ``id``, ``name``, ``x``, ``y``, ``status`` (``used``, ``off the grid``,
    ``on nodata``, ``window mostly nodata``, or ``shares a cell with another deposit (counted once)``),
    ``distance_to_valid`` (to the nearest valid cell centre, map units) and ``distance_to_sample`` (to the
    nearest sample, when samples are given)."""
    from scipy.spatial import cKDTree

    xy = np.asarray(deposits_xy, dtype=np.float64).reshape(-1, 2)
    h, w = stack.height, stack.width
    rows, cols, inside = pf.deposit_cells(xy, stack.transform, h, w)
    valid = stack.valid
    vr, vc = np.nonzero(valid)
    tree_valid = cKDTree(pf.cell_centres(stack.transform, vr, vc)) if vr.size else None
    tree_samples = None
    if samples_xy is not None and len(samples_xy):
        tree_samples = cKDTree(np.asarray(samples_xy, dtype=np.float64).reshape(-1, 2))
    window, max_nodata = plan.window, plan.info["max_nodata"]
    seen = set()
    out = []
    for i, (x, y) in enumerate(xy):
        name = str(names[i]) if names is not None and i < len(names) and names[i] not in (None, "") else f"#{i + 1}"
        if not inside[i]:
            status = "off the grid"
        elif not valid[rows[i], cols[i]]:
            status = "on nodata"
        elif pf.nodata_fraction(valid, [rows[i]], [cols[i]], window)[0] > max_nodata:
            status = "window mostly nodata"
        elif (rows[i], cols[i]) in seen:
            status = "shares a cell with another deposit (counted once)"
        else:
            status = "used"
            seen.add((rows[i], cols[i]))
        entry = {"id": i + 1, "name": name, "x": float(x), "y": float(y), "status": status,
                 "distance_to_valid": float(tree_valid.query([x, y])[0]) if tree_valid is not None else float("nan"),
                 "distance_to_sample": float(tree_samples.query([x, y])[0]) if tree_samples is not None
                 else float("nan")}
        out.append(entry)
    return out


# ---------------------------------------------------------------------------
# Fitting one fold (every model reads the stack only through here while it learns)
# ---------------------------------------------------------------------------


def _resnet_options(window, crop_pad, depth, width, epochs, batch_size, lr):
    return {"window": window, "crop_pad": crop_pad, "depth": int(depth), "width": int(width), "epochs": int(epochs),
            "batch_size": int(batch_size), "lr": float(lr), "momentum": 0.9, "weight_decay": 1e-4, "patience": 0,
            "flips": True, "mask_channel": False}


def _fit_fold(stack, train, methods, options, seed, feedback, label):
    """Fit every model on the training windows ``train``; returns ``{key: member}`` and, for the ensemble, each
    member's scores of the training background windows (its reference).

    The only place where models learn: the spy test watches every window read from here on.
    """
    members, references = {}, {}
    background = train.subset(train.labels == 0)
    tabular = [m for m in methods if m in pm.TABULAR]
    n_fits = len(tabular) + ("resnet" in methods)   # each fit's share of the fold's progress, in order
    if tabular:
        X = pm.stack_features(stack, train, options["window"])
        X_bg = X[train.labels == 0]
        for i, method in enumerate(tabular):
            feedback.check()
            member = pm.TabularMember(method, X, train.labels, seed)
            members[method] = member
            references[method] = member.predict(X_bg)
            feedback.progress(100 * (i + 1) / n_fits)
    if "resnet" in methods:
        module, history, kept, n_cells = pc._train_one(stack, train, pc.WindowSpecs.empty(), options, seed,
                                                       feedback.scaled(100 * len(tabular) / n_fits, 100), label)
        members["resnet"] = module
        references["resnet"] = pn.predict_torch(module, stack.windows(background.rows, background.cols,
                                                                      options["window"]))
        members["resnet_history"] = history
        members["resnet_cells"] = n_cells
    return members, references


def _score(members, key, stack, rows, cols, window, chunk=512):
    """Deposit probability of the windows centred on ``(rows, cols)`` by one fitted model."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    out = np.empty(rows.size, dtype=np.float32)
    for i in range(0, rows.size, chunk):
        wins = stack.windows(rows[i:i + chunk], cols[i:i + chunk], window)
        if key == "resnet":
            out[i:i + chunk] = pn.predict_torch(members[key], wins)
        else:
            out[i:i + chunk] = members[key].predict(pm.window_features(wins))
    return out


def _area_cells(plan, valid, max_nodata, max_cells, rng, f):
    """A random sample (at most ``max_cells``) of the valid cells of fold ``f``'s held-out blocks, with windows
    of at most ``max_nodata`` nodata (cells the map would score)."""
    h, w = valid.shape
    bh, bw = plan.block_shape
    rr, cc = np.nonzero(valid)
    mine = plan.block_fold[rr // bh, cc // bw] == f
    rr, cc = rr[mine], cc[mine]
    ok = pf.nodata_fraction(valid, rr, cc, plan.window) <= max_nodata
    rr, cc = rr[ok], cc[ok]
    if rr.size > max_cells:
        pick = np.sort(rng.choice(rr.size, max_cells, replace=False))
        rr, cc = rr[pick], cc[pick]
    return rr, cc


# ---------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------


def _deposit_shares(scores, labels):
    """Per validation deposit: share of the fold's validation background windows it outranks (ties 1/2)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if neg.size == 0:
        return np.full(pos.size, np.nan)
    return pm.background_share(pos, neg)


def _bootstrap(u, n_boot, rng):
    """Indices ``(n_boot, n)`` of deposits drawn with replacement."""
    return rng.integers(0, u.shape[-1], size=(int(n_boot), u.shape[-1]))


def _row_measures(key, per_fold, n_folds_total):
    """Table measures of one model from its per-fold validation and area scores."""
    aucs = np.array([roc_auc(f["scores"], f["labels"]) for f in per_fold], dtype=float)
    finite = aucs[np.isfinite(aucs)]
    u = np.concatenate([_deposit_shares(f["scores"], f["labels"]) for f in per_fold]) if per_fold else np.zeros(0)
    # the out-of-fold map: each score as its share of the fold's held-out area scoring lower
    q_val, lab, q_area, q_dep = [], [], [], []
    for f in per_fold:
        q_val.append(pm.background_share(f["scores"], f["area"]))
        lab.append(f["labels"])
        q_area.append(pm.background_share(f["area"], f["area"]))
        q_dep.append(q_val[-1][f["labels"] == 1])
    row = {"key": key, "label": LABELS.get(key, key), "fold_auc": [float(a) for a in aucs],
           "auc_mean": float(finite.mean()) if finite.size else float("nan"),
           "auc_sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
           "n_folds": int(finite.size), "u": u, "deposit_auc": float(u.mean()) if u.size else float("nan"),
           "n_deposits": int(u.size)}
    if per_fold:
        qv, lb = np.concatenate(q_val), np.concatenate(lab)
        row["ap"] = average_precision(qv, lb)
        row["pooled_auc"] = roc_auc(qv, lb)
        row["roc"] = roc_curve(qv, lb)[:2]
        area, dep = np.concatenate(q_area), np.concatenate(q_dep)
        if area.size and dep.size:
            sr = success_rate_curve(area, dep)
            row["success_auc"] = sr["auc"]
            row["success"] = (sr["area"], sr["deposits"])
        else:
            row["success_auc"], row["success"] = float("nan"), None
    else:
        row.update(ap=float("nan"), pooled_auc=float("nan"), success_auc=float("nan"), roc=None, success=None)
    return row


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------


def model_keys(methods):
    """The models a comparison writes (``<key>.onnx``): each method's, and the ensemble of two or more."""
    methods = list(methods)
    return methods + (["ensemble"] if len(methods) > 1 else [])


def compare_models(raster_path, deposits_xy, deposit_names=None, samples_xy=None, out_dir=None, report_path=None,
                   methods=METHODS, window=16, depth=18, width=16, epochs=30, batch_size=32, lr=0.05, n_folds=5,
                   block_size=None, min_distance=None, negatives_per_positive=10, jitter_copies=8, max_nodata=0.5,
                   seed=0, n_bootstrap=2000, max_area_cells=3000, nodata=None, memory_mb=None, threads=None,
                   overwrite=True, feedback=None):
    """Cross-validate every model on one spatial fold plan, then fit each on all windows and save it.

    Parameters
    ----------
    raster_path : str
        Element stack (band descriptions = element names), as for the ResNet trainer.
    deposits_xy : array-like (n, 2)
        Deposits in the raster's CRS.
    deposit_names : list of str, optional
        A name or id per deposit, for the list of deposits the models cannot use.
    samples_xy : array-like (m, 2), optional
        The survey's sample locations (raster CRS): that list then says how far each unused deposit lies from
        the nearest sample.
    out_dir : str, optional
        Folder for the models: ``<method>.onnx`` for each model and ``ensemble.onnx``, all accepted by
        :func:`core.geochemistry.prospectivity_mapping.prospectivity_map`.
    report_path : str, optional
        The HTML report.
    methods : sequence of str
        A subset of :data:`METHODS`.
    window, depth, width, epochs, batch_size, lr
        The window (cells) of every model; the ResNet's settings (see
        :func:`core.geochemistry.prospectivity_cnn.train_prospectivity`).
    n_folds, block_size, min_distance, negatives_per_positive, jitter_copies, max_nodata, seed
        The fold plan (:func:`core.geochemistry.prospectivity_cnn.plan_spatial_folds`).
    n_bootstrap : int
        Bootstrap draws over deposits for intervals and model differences.
    max_area_cells : int
        Cells of each fold's held-out blocks scored for the success-rate curve (a random sample).
    threads : int, optional
        Threads torch may use while training.
    """
    feedback = ensure(feedback)
    unknown = set(methods) - set(METHODS)
    methods = [m for m in METHODS if m in set(methods)]
    if not methods or unknown:
        raise OreMapError("Choose at least one of the models " + ", ".join(METHODS) + ".", "methods")
    window = pc._check_window(window)
    if "resnet" in methods:
        pc.build_resnet(1, depth, width, window)
    crop = max(window // 8, 1)
    if out_dir:
        if not overwrite:
            taken = [f"{k}.onnx" for k in model_keys(methods) if os.path.exists(os.path.join(out_dir, f"{k}.onnx"))]
            if taken:
                raise OreMapError(f"The folder already holds {', '.join(taken)}.", "output",
                                  "Choose an empty folder.")
    stack = pc.read_stack(raster_path, pad=window + crop + 2, nodata=nodata, memory_mb=memory_mb)
    feedback.progress(2)
    plan = pc.plan_spatial_folds(stack.valid, deposits_xy, stack.transform, window, n_folds, block_size, min_distance,
                                 negatives_per_positive, jitter_copies, None, crop, max_nodata, seed, feedback,
                                 no_folds_fix="A comparison needs cross-validation: with these deposits, train one "
                                              "model without it instead (oremap:train_prospectivity_cnn, FOLDS 0), "
                                              "or use more deposits, spread wider.")
    if not plan.folds:
        raise OreMapError("The comparison needs at least 2 spatial folds.", "folds", "Choose 2 or more folds.")
    deposits = deposit_status(stack, plan, deposits_xy, deposit_names, samples_xy)
    for d in deposits:
        if d["status"] in ("off the grid", "on nodata", "window mostly nodata"):
            where = (f", {d['distance_to_sample']:.0f} map units from the nearest sample"
                     if np.isfinite(d["distance_to_sample"]) else "")
            state = "has a window mostly of nodata" if d["status"] == "window mostly nodata" else f"is {d['status']}"
            feedback.warning(f"Deposit {d['name']} (id {d['id']}) {state} and is not used: "
                             f"{d['distance_to_valid']:.0f} map units from the nearest valid cell{where}.")
    options = _resnet_options(window, plan.crop_pad, depth, width, epochs, batch_size, lr)
    torch = pc._torch_classes()["torch"] if "resnet" in methods else None
    n_runs = len(plan.folds) + 1
    folds, per_key = [], {}
    elements = list(stack.names)
    rng_area = np.random.default_rng([int(seed), 23])
    keys = model_keys(methods)
    with _torch_session(torch, threads, feedback):
        for f, fold in enumerate(plan.folds):
            train, val = fold["train"], fold["val"]
            part = feedback.scaled(3 + 90 * f / n_runs, 3 + 90 * (f + 1) / n_runs)
            why = pc.skip_reason(plan, train, val)   # a fold without validation background made every
            if why:                                   # deposit-level AUC, interval and paired difference NaN
                feedback.warning(f"Fold {f + 1} is skipped for every model ({pc._deposits(val.n_positive)} not "
                                 f"validated): {why}.")
                folds.append({"fold": f + 1, "skipped": True, "n_val_positive": val.n_positive})
                part.progress(100)
                continue
            members, refs = _fit_fold(stack, train, methods, options, seed + 1000 * (f + 1), part, f"Fold {f + 1}")
            ar, ac = _area_cells(plan, stack.valid, max_nodata, max_area_cells, rng_area, f)
            scores = {}
            for key in methods:
                scores[key] = {"scores": _score(members, key, stack, val.rows, val.cols, window),
                               "area": _score(members, key, stack, ar, ac, window), "labels": val.labels}
            if "ensemble" in keys:
                scores["ensemble"] = {
                    name: np.mean([pm.background_share(scores[k][name], refs[k]) for k in methods], axis=0)
                    for name in ("scores", "area")}
                scores["ensemble"]["labels"] = val.labels
            centre = stack.windows(val.rows, val.cols, 1)[:, :, 0, 0]
            centre_area = stack.windows(ar, ac, 1)[:, :, 0, 0]
            for j, name in enumerate(elements):
                scores[f"element:{name}"] = {"scores": centre[:, j], "area": centre_area[:, j], "labels": val.labels}
            for key, s in scores.items():
                per_key.setdefault(key, []).append(s)
            line = ", ".join(f"{LABELS[k]} {roc_auc(scores[k]['scores'], val.labels):.3f}" for k in keys)
            feedback.info(f"Fold {f + 1} ({val.n_positive} deposits, {val.n_negative} background windows): AUC {line}.")
            folds.append({"fold": f + 1, "skipped": False, "n_val_positive": val.n_positive,
                          "n_val_negative": val.n_negative, "n_train_positive": train.n_positive,
                          "n_train_negative": train.n_negative, "n_area": int(ar.size), "scores": scores,
                          "resnet_history": members.get("resnet_history")})
            part.progress(100)   # the tabular models said nothing: the bar stood at 2 % through every fold
        if not any(not f["skipped"] for f in folds):
            raise OreMapError("No fold could be scored: every fold lacks training or validation deposits.", "folds",
                              "Try fewer folds or another block size.")
        rows = [_row_measures(k, per_key[k], len(plan.folds)) for k in keys]
        element_rows = [_row_measures(f"element:{n}", per_key[f"element:{n}"], len(plan.folds)) for n in elements]
        best = max(element_rows, key=lambda r: (np.nan_to_num(r["auc_mean"], nan=-1), r["deposit_auc"]))
        baseline = dict(best, key="baseline", element=best["key"].split(":", 1)[1],
                        label=f"Best single element ({best['key'].split(':', 1)[1]})")
        rows.append(baseline)
        pairs = _paired_differences(rows, n_bootstrap, seed)
        for r in rows:
            r["deposit_ci"] = _interval(r["u"], n_bootstrap, seed)
        models = {}
        if out_dir:
            models = _final_models(stack, plan, methods, options, seed, folds, rows, out_dir, raster_path,
                                   feedback.scaled(93, 99), max_nodata, n_folds, negatives_per_positive)
    result = ComparisonResult(rows=rows, pairs=pairs, deposits=deposits, plan=plan, folds=folds, models=models,
                              scores=per_key, elements=elements,
                              info={"element_rows": element_rows, "window": window, "methods": methods,
                                    "n_bootstrap": int(n_bootstrap), "max_area_cells": int(max_area_cells),
                                    "seed": int(seed), "raster": os.path.basename(str(raster_path)),
                                    "height": stack.height, "width": stack.width,
                                    "resnet": {"depth": int(depth), "width": int(width), "epochs": int(epochs),
                                               "lr": float(lr), "batch_size": int(batch_size)}})
    for line in summary_lines(result):
        feedback.info(line)
    if report_path:
        from ..engine import report

        report.write_report(report_path, comparison_report(result))
    feedback.progress(100)
    return result


def _torch_session(torch, threads, feedback=None):
    """Deterministic torch with the asked threads (as the ResNet trainer), restored afterwards; nothing without
    torch."""
    return contextlib.nullcontext() if torch is None else session(torch, deterministic=True, threads=threads,
                                                                  feedback=feedback)


def _interval(u, n_boot, seed):
    if u.size < 2:
        return (float("nan"), float("nan"))
    idx = _bootstrap(u, n_boot, np.random.default_rng([int(seed), 31]))
    means = u[idx].mean(axis=1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


def _paired_differences(rows, n_boot, seed):
    """Paired bootstrap over deposits of the deposit-level AUC difference of every pair of rows."""
    out = []
    n = min((r["u"].size for r in rows), default=0)
    if n < 2:
        return out
    idx = _bootstrap(rows[0]["u"], n_boot, np.random.default_rng([int(seed), 37]))
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            d = a["u"] - b["u"]
            boots = d[idx].mean(axis=1)
            lo, hi = float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))
            out.append({"a": a["key"], "b": b["key"], "difference": float(d.mean()), "ci": (lo, hi),
                        "significant": bool(lo > 0 or hi < 0)})
    return out


def _final_models(stack, plan, methods, options, seed, folds, rows, out_dir, raster_path, feedback, max_nodata,
                  n_folds, negatives_per_positive):
    """Fit each model on all windows (:attr:`FoldPlan.final`), save it, and the rank-mean ensemble of them."""
    import onnx

    os.makedirs(out_dir, exist_ok=True)
    final = plan.final
    members, refs = _fit_fold(stack, final, methods, options, seed, feedback, "Final model")
    paths, graphs = {}, {}
    by_key = {r["key"]: r for r in rows}
    px_w, px_h = pc.pixel_size(stack.transform)
    spatial = {"window": int(plan.window), "cell_size": [float(px_w), float(px_h)],
               "crs": stack.crs.to_wkt() if stack.crs else None, "epsg": stack.crs.to_epsg() if stack.crs else None}
    date = build_date()
    data_hash = pc._stack_hash(stack, plan)
    input_transform = recorded_transform(read_meaning(raster_path))
    for key in methods:
        row = by_key[key]
        metrics = {"cv_auc_mean": row["auc_mean"], "cv_auc_sd": row["auc_sd"], "cv_auc_per_fold": row["fold_auc"],
                   "cv_deposits_validated": row["n_deposits"], "cv_average_precision": row["ap"],
                   "cv_success_rate_auc": row["success_auc"], "n_deposits": plan.info["n_deposits"],
                   "n_background_windows": plan.info["n_negatives"], "n_folds": plan.info["n_folds"]}
        if key == "resnet":
            cv_folds = []
            for f in folds:
                if f["skipped"]:
                    cv_folds.append({"fold": f["fold"], "skipped": True, "n_train": 0, "n_val": 0,
                                     "n_val_positive": f["n_val_positive"], "metrics": pc._metrics(
                                         np.zeros(0, np.int64), np.zeros(0))})
                    continue
                s = f["scores"]["resnet"]
                cv_folds.append({"fold": f["fold"], "skipped": False, "metrics": pc._metrics(s["labels"], s["scores"]),
                                 "labels": s["labels"], "proba": s["scores"], "n_val_positive": f["n_val_positive"],
                                 "n_train": f["n_train_positive"] + f["n_train_negative"],
                                 "n_val": f["n_val_positive"] + f["n_val_negative"]})
            cv = pc._cv_summary(cv_folds)
            info = pc._model_info(stack, plan, cv, cv_folds, options, options, members["resnet"],
                                  members["resnet_cells"], max_nodata, seed, n_folds, negatives_per_positive,
                                  "OreMap geochemical prospectivity ResNet (model comparison)", raster_path)
            graph = pc.export_onnx(members["resnet"], stack.n_elements, plan.window)
        else:
            member = members[key]
            graph = pm.tabular_onnx(member, stack.n_elements, plan.window).SerializeToString()
            info = ModelInfo(
                task=pc.TASK, classes=[dict(c) for c in pc.CLASSES],
                input={"name": pm.INPUT_NAME, "n_bands": int(stack.n_elements), "window": int(plan.window)},
                output={"name": pm.OUTPUT_NAME, "kind": "probabilities"}, band_names=[str(n) for n in stack.names],
                preprocessing={"method": "window_statistics", "features": list(pm.FEATURES),
                               "feature_names": pm.feature_names(stack.names),
                               "mean": [float(v) for v in member.mean], "sd": [float(v) for v in member.sd],
                               "nodata_fill": 0.0, "max_nodata": float(max_nodata), "in_graph": True,
                               "input_transform": input_transform},
                training={"date": date, "data_hash": data_hash,
                          "n_samples": int(len(plan.deposits) + len(plan.negatives)),
                          "metrics": metrics, "parameters": {"method": key, "estimator": repr(member.estimator),
                                                             "window": int(plan.window), "seed": int(seed),
                                                             "block_size": plan.info["block_size"],
                                                             "min_distance": plan.info["min_distance"]},
                          "source": os.path.basename(str(raster_path))},
                description=f"OreMap geochemical prospectivity: {LABELS[key].lower()} on window statistics",
                extra={"spatial": spatial})
        graphs[key] = graph
        paths[key] = write_model(graph, info, os.path.join(out_dir, f"{key}.onnx"))
    if len(methods) > 1:
        # the ensemble's reference: the final members' scores of every background window
        ensemble = pm.rank_mean_onnx([onnx.load_from_string(graphs[k]) if isinstance(graphs[k], bytes)
                                      else graphs[k] for k in methods], [refs[k] for k in methods],
                                     stack.n_elements, plan.window)
        row = by_key["ensemble"]
        info = ModelInfo(
            task=pc.TASK, classes=[dict(c) for c in pc.CLASSES],
            input={"name": pm.INPUT_NAME, "n_bands": int(stack.n_elements), "window": int(plan.window)},
            output={"name": pm.OUTPUT_NAME, "kind": "probabilities"}, band_names=[str(n) for n in stack.names],
            preprocessing={"method": "rank_mean", "members": list(methods), "max_nodata": float(max_nodata),
                           "in_graph": True, "input_transform": input_transform},
            training={"date": date, "data_hash": data_hash,
                      "n_samples": int(len(plan.deposits) + len(plan.negatives)),
                      "metrics": {"cv_auc_mean": row["auc_mean"], "cv_auc_sd": row["auc_sd"],
                                  "cv_auc_per_fold": row["fold_auc"], "cv_deposits_validated": row["n_deposits"]},
                      "parameters": {"method": "rank_mean", "members": list(methods), "seed": int(seed),
                                     "n_reference": int(len(refs[methods[0]])),
                                     "network": {"depth": options["depth"], "width": options["width"]}},
                      "source": os.path.basename(str(raster_path))},
            description="OreMap geochemical prospectivity: rank-mean ensemble (mean share of background windows "
                        "each model ranks lower)",
            extra={"spatial": spatial})
        paths["ensemble"] = write_model(ensemble, info, os.path.join(out_dir, "ensemble.onnx"))
    feedback.progress(100)
    return paths


# ---------------------------------------------------------------------------
# Summary and report
# ---------------------------------------------------------------------------


def _f(value, digits=3):
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def not_significant(result):
    """Pairs of rows whose deposit-level AUCs do not differ significantly (95 % paired bootstrap)."""
    return [p for p in result.pairs if not p["significant"]]


def summary_lines(result):
    """Plain-text table for the log."""
    lines = ["Model comparison on one spatial cross-validation (ROC-AUC mean +/- sd over folds; deposit-level AUC "
             "with a 95 % bootstrap interval over deposits; average precision; success-rate AUC):"]
    for r in result.rows:
        lo, hi = r["deposit_ci"]
        lines.append(f"  {r['label']:<34s} {_f(r['auc_mean'])} +/- {_f(r['auc_sd'])}  deposit AUC "
                     f"{_f(r['deposit_auc'])} [{_f(lo)}, {_f(hi)}]  AP {_f(r['ap'])}  success {_f(r['success_auc'])}"
                     f"  deposits {r['n_deposits']}")
    n = result.rows[0]["n_deposits"]
    if n < FEW_DEPOSITS:
        lines.append(f"Only {n} deposits were validated: differences smaller than the fold sd or the bootstrap "
                     "intervals are not evidence that one model is better.")
    return lines


def _verdict(result):
    rows = {r["key"]: r for r in result.rows}
    models = [r for r in result.rows if r["key"] != "baseline" and np.isfinite(r["auc_mean"])]
    base = rows["baseline"]
    if not models:
        return ""
    top = max(models, key=lambda r: r["auc_mean"])
    margin = top["auc_mean"] - base["auc_mean"]
    pair = next((p for p in result.pairs if {p["a"], p["b"]} == {top["key"], "baseline"}), None)
    sd = top["auc_sd"]
    text = (f"Highest mean fold AUC: {top['label']} ({_f(top['auc_mean'])} +/- {_f(sd)}), "
            f"{_f(margin)} {'above' if margin >= 0 else 'below'} the best single element, {base['element']} "
            f"({_f(base['auc_mean'])} +/- {_f(base['auc_sd'])}). ")
    if np.isfinite(sd) and margin > sd:
        text += "The margin is larger than the model's fold sd. "
    else:
        text += "The margin is not larger than the model's fold sd: on these deposits the model does not " \
                "demonstrably beat the element grid alone. "
    if pair is not None:
        lo, hi = pair["ci"]
        text += (f"Paired bootstrap over deposits of the difference in deposit-level AUC: 95 % interval "
                 f"[{_f(lo)}, {_f(hi)}] ({'significant' if pair['significant'] else 'not significant'}).")
    return text


def comparison_report(result):
    """The HTML report: data, table, curves, uncertainty, unused deposits, fold map."""
    from ..engine import report

    plan, info = result.plan, result.info
    pi = plan.info
    rn = info["resnet"]
    settings = [
        ("Element stack", f"{info['raster']}: {len(result.elements)} elements ({', '.join(result.elements)}), "
                          f"{info['width']} x {info['height']} cells"),
        ("Deposits", f"{pi['n_deposits']} used of {pi['n_points']} points ({pi['n_outside']} off the grid, "
                     f"{pi['n_on_nodata']} on nodata, {pi['n_mostly_nodata']} with mostly-nodata windows, "
                     f"{pi['n_shared_cells']} sharing a cell)"),
        ("Background windows", f"{pi['n_negatives']}, at least {pi['min_distance']:g} map units from every deposit"),
        ("Spatial folds", f"{pi['n_folds']} folds over {pi['n_blocks']} blocks of {pi['block_size']:g} map units; "
                          f"training windows within {plan.window + plan.crop_pad} cells of a validation window's "
                          "centre are left out (the ResNet trainer's plan, shared by every model)"),
        ("Window", f"{plan.window} x {plan.window} cells; training deposits with {pi['jitter_copies']} copies shifted "
                   f"by up to {pi['jitter']} cells (every model learns from the same windows)"),
        ("Window statistics", "per element: value at the centre cell, mean and maximum of the window's valid cells; "
                              "z-scored on the training windows, missing = mean"),
        ("Models", "logistic regression (C = 1, balanced classes); random forest (200 trees, leaves of at least 3, "
                   "balanced); gradient boosting (HistGradientBoosting, 100 rounds of 8 leaves, rate 0.05, balanced); "
                   "MLP (16 hidden units, L2 1.0, L-BFGS); "
                   f"ResNet-{rn['depth']} width {rn['width']}, {rn['epochs']} epochs, learning rate {rn['lr']:g}"),
        ("Ensemble", "mean over the models of each one's share of the fold's training background windows scoring "
                     "lower (the validated fold takes no part)"),
        ("Baseline", "each element's grid value at the window's centre cell as the score; the element with the "
                     "highest mean fold AUC is shown (chosen on the validation folds: this can only favour it)"),
        ("Seed", str(info["seed"])),
    ]
    sections = [("Data and settings", report.html_table(["Setting", "Value"], settings))]
    table_rows = []
    for r in result.rows:
        lo, hi = r["deposit_ci"]
        table_rows.append([r["label"], report.Raw(f"{_f(r['auc_mean'])} &plusmn; {_f(r['auc_sd'])}"),
                           report.Raw(f"{_f(r['deposit_auc'])} [{_f(lo)}, {_f(hi)}]"), r["ap"], r["success_auc"],
                           f"{r['n_deposits']} of {pi['n_deposits']}"])
    table = report.html_table(["Model", "ROC-AUC (mean +/- sd over folds)",
                               "deposit-level AUC [95 % bootstrap]", "average precision", "success-rate AUC",
                               "deposits validated"], table_rows)
    note = report.paragraph(
        "ROC-AUC per fold: validation deposit windows against the fold's validation background windows. "
        "Deposit-level AUC: each validated deposit's share of its fold's background windows scoring lower, "
        "averaged; the interval resamples deposits. Average precision and the curves below use the out-of-fold "
        f"map: each fold's models score up to {info['max_area_cells']} valid cells of the fold's held-out blocks, and "
        "every score becomes the share of those cells scoring lower, so the folds join into one map. "
        "Held-out blocks can hold training windows of other folds away from the validation windows, so the "
        "success rate is, if anything, pessimistic.", "note")
    sections.append(("Models on the same folds", table + report.paragraph(_verdict(result)) + note))
    roc_series, sr_series = [], []
    for r in result.rows:
        colour = COLOURS.get(r["key"])
        if r.get("roc") is not None:
            roc_series.append((r["label"], list(r["roc"][0]), list(r["roc"][1]), colour))
        if r.get("success") is not None:
            sr_series.append((r["label"], list(r["success"][0]), list(r["success"][1]), colour))
    roc_series.append(("chance", [0.0, 1.0], [0.0, 1.0], "#cccccc"))
    sr_series.append(("chance", [0.0, 1.0], [0.0, 1.0], "#cccccc"))
    sections.append(("ROC and success-rate curves (out-of-fold)", report.svg_line_chart(
        roc_series, "ROC, validation windows of all folds", "false-positive rate", "true-positive rate")
        + report.svg_line_chart(sr_series, "Success rate, held-out area of all folds", "share of the area",
                                "share of the deposits")))
    n = result.rows[0]["n_deposits"]
    unc = []
    if n < FEW_DEPOSITS:
        unc.append(report.paragraph(
            f"Only {n} deposits were validated (fewer than {FEW_DEPOSITS}). One deposit more or less changes a fold's "
            f"AUC by a lot: the fold sd and the bootstrap intervals above show how wide the uncertainty is. Read "
            "differences inside them as ties."))
    ns = not_significant(result)
    sig = [p for p in result.pairs if p["significant"]]
    pair_rows = [[LABELS.get(p["a"], p["a"]) if p["a"] != "baseline" else result.row("baseline")["label"],
                  LABELS.get(p["b"], p["b"]) if p["b"] != "baseline" else result.row("baseline")["label"],
                  p["difference"], report.Raw(f"[{_f(p['ci'][0])}, {_f(p['ci'][1])}]"), p["significant"]]
                 for p in result.pairs]
    unc.append(report.paragraph(
        f"{len(ns)} of {len(result.pairs)} pairs of models do not differ significantly (95 % paired bootstrap over "
        f"deposits, {info['n_bootstrap']} draws); {len(sig)} do. The bootstrap treats deposits as independent; "
        "deposits of one cluster are not, so the intervals are, if anything, too narrow."))
    unc.append(report.html_table(["model A", "model B", "A - B (deposit-level AUC)", "95 % interval",
                                  "significant"], pair_rows))
    sections.append(("Few deposits: how sure is this?", "".join(unc)))
    fold_rows = []
    for f in result.folds:
        if f["skipped"]:
            fold_rows.append([f["fold"], "skipped", None, None] + [None] * len(result.rows))
            continue
        fold_rows.append([f["fold"], "scored", f["n_val_positive"], f["n_val_negative"]]
                         + [r["fold_auc"][[g["fold"] for g in result.folds if not g["skipped"]].index(f["fold"])]
                            for r in result.rows])
    sections.append(("AUC per fold", report.html_table(
        ["Fold", "", "validation deposits", "validation background"] + [r["label"] for r in result.rows], fold_rows)))
    el_rows = [[r["key"].split(":", 1)[1], report.Raw(f"{_f(r['auc_mean'])} &plusmn; {_f(r['auc_sd'])}"),
                r["deposit_auc"]] for r in info["element_rows"]]
    sections.append(("Single elements", report.html_table(["Element", "ROC-AUC (mean +/- sd over folds)",
                                                           "deposit-level AUC"], el_rows)))
    unused = [d for d in result.deposits if d["status"] != "used"]
    if unused:
        dep_rows = [[d["id"], d["name"], d["status"], d["distance_to_valid"], d["distance_to_sample"]]
                    for d in unused]
        sections.append(("Deposits not used on their own", report.html_table(
            ["id", "name", "why", "distance to the nearest valid cell", "distance to the nearest sample"], dep_rows,
            number_format="{:.0f}") + report.paragraph(
            "Deposits off the grid or on nodata cannot be validated. Enlarge the grid's extent or the IDW's maximum "
            "distance to bring them in (distances in map units; the sample distance needs the survey points).",
            "note")))
    sections.append(("Spatial folds", pr._fold_map_svg(plan, info["height"], info["width"]) + report.paragraph(
        "Blocks coloured and numbered by fold; black dots: deposits; grey dots: background window centres.", "note")))
    if result.models:
        sections.append(("Saved models", report.html_table(
            ["Model", "file"], [[LABELS.get(k, k), os.path.basename(p)] for k, p in result.models.items()]) +
            report.paragraph("Each is an OreMap prospectivity model for 'Prospectivity map from a ResNet' "
                             "(oremap:prospectivity_map), fitted on every window after the cross-validation.",
                             "note")))
    return report.html_report("Geochemical prospectivity: models side by side", sections,
                              subtitle=f"{info['raster']} - seed {info['seed']}")
