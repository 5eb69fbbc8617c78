"""The prospectivity ResNet's report: an HTML page with the spatial folds, the cross-validated
scores and the training curves.
"""

import os

import numpy as np


def score_text(value, digits=3):
    """A score as text; "n/a" for a missing or non-finite one (never "nan")."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def cv_auc_text(cv, n_deposits):
    """The fold AUC as the note states it: mean +/- sd, or what is known when one or no fold was scored.

    The sample sd of one fold is undefined (NaN): the note then says so instead of printing "+/- nan".
    """
    n, mean, sd = cv["n_folds_scored"], cv["auc_mean"], cv["auc_sd"]
    validated = f"validating {cv['n_deposits_validated']} of {n_deposits} deposits"
    if mean is None or not np.isfinite(mean):
        return f"AUC n/a (no fold could be scored, {validated})"
    if sd is None or not np.isfinite(sd):
        scored = "one scored fold" if n == 1 else f"{n} scored folds"
        return f"AUC {score_text(mean)} ({scored}, no sd, {validated})"
    return (f"AUC {score_text(mean)} +/- {score_text(sd)} (mean +/- sample sd over the {n} scored folds, "
            f"{validated})")


def _fold_map_svg(plan, height, width, size=480):
    """Blocks coloured by fold, deposits (black) and background centres (grey) as an SVG."""
    from ..engine.colors import PALETTE, hex_colour
    from ..engine.report import _esc, _n

    scale = size / max(height, width)
    W, H = width * scale, height * scale
    bh, bw = plan.block_shape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-plot" width="{_n(W + 20)}" '
           f'height="{_n(H + 20)}" viewBox="0 0 {_n(W + 20)} {_n(H + 20)}" role="img" '
           'aria-label="Spatial folds"><title>Spatial folds</title>']
    for (i, j), f in np.ndenumerate(plan.block_fold):
        colour = "#eeeeee" if f < 0 else hex_colour(PALETTE[int(f) % len(PALETTE)])
        x, y = 10 + j * bw * scale, 10 + i * bh * scale
        w_, h_ = min(bw, width - j * bw) * scale, min(bh, height - i * bh) * scale
        label = "no data" if f < 0 else f"fold {int(f) + 1}"
        out.append(f'<rect class="block" x="{_n(x)}" y="{_n(y)}" width="{_n(w_)}" height="{_n(h_)}" '
                   f'fill="{colour}" fill-opacity="0.45" stroke="#ffffff"><title>{_esc(label)}</title></rect>')
        if f >= 0 and min(w_, h_) >= 14:
            out.append(f'<text x="{_n(x + w_ / 2)}" y="{_n(y + h_ / 2 + 4)}" text-anchor="middle" font-size="11" '
                       f'fill="#333333" font-family="sans-serif">{int(f) + 1}</text>')
    for r, c in zip(plan.negatives.rows, plan.negatives.cols):
        out.append(f'<circle cx="{_n(10 + (c + 0.5) * scale)}" cy="{_n(10 + (r + 0.5) * scale)}" r="1.5" '
                   'fill="#777777"/>')
    for r, c in zip(plan.deposits.rows, plan.deposits.cols):
        out.append(f'<circle class="deposit" cx="{_n(10 + (c + 0.5) * scale)}" cy="{_n(10 + (r + 0.5) * scale)}" '
                   'r="3.5" fill="#000000" stroke="#ffffff"/>')
    out.append("</svg>")
    return "".join(out)


def training_report(result, height, width, raster_path=""):
    """The HTML report: data, settings, fold map, per-fold and pooled metrics, learning curves."""
    from ..engine import report

    plan, cv, info = result.plan, result.cv, result.info
    p = info.training["parameters"]
    pi = plan.info
    settings = [
        ("Element stack", f"{os.path.basename(str(raster_path))}: {len(info.band_names)} elements "
                          f"({', '.join(info.band_names)}), {width} x {height} cells"),
        ("Deposits", f"{pi['n_deposits']} used of {pi['n_points']} points ({pi['n_outside']} off the raster, "
                     f"{pi['n_on_nodata']} on nodata, {pi['n_mostly_nodata']} with mostly-nodata windows, "
                     f"{pi['n_shared_cells']} sharing a cell)"),
        ("Background windows", f"{pi['n_negatives']}, at least {pi['min_distance']:g} map units from every deposit"),
        ("Window", f"{plan.window} x {plan.window} cells; random crops of +/- {plan.crop_pad} cells"
                   + (", flips and 90 degree rotations" if p["flips"] else "")),
        ("Positive augmentation", f"{pi['jitter_copies']} copies shifted by up to {pi['jitter']} cells"),
        ("Network", f"ResNet-{p['depth']}, width {p['width']}" + (", validity-mask channel" if p["mask_channel"]
                                                                   else "")),
        ("Optimiser", f"SGD, Nesterov momentum {p['momentum']:g}, learning rate {p['lr']:g} (cosine decay), "
                      f"weight decay {p['weight_decay']:g}, batch {p['batch_size']}, {p['cv_epochs']} epochs"
                      + (f" (early stopping, patience {p['patience']})" if p["patience"] else "")),
        ("Spatial folds", f"{pi['n_folds']} folds over {pi['n_blocks']} blocks of {pi['block_size']:g} map units "
                          f"({pi['block_cells'][0]} cells), each held out whole; training windows whose centre lies "
                          f"closer than {plan.window + plan.crop_pad} cells to a validation window's centre (so "
                          "that they could share a cell with it, crop margin included) are left out"
         if plan.folds else "none (no cross-validation was asked for): the model has no validation figure"),
        ("Seed", str(p["seed"])),
    ]
    sections = [("Data and settings", report.html_table(["Setting", "Value"], settings))]
    if plan.folds:
        sections.append(("Spatial folds", _fold_map_svg(plan, height, width) + report.paragraph(
            "Blocks coloured and numbered by fold; black dots: deposits; grey dots: background window centres. Each "
            "fold's deposits and background windows are validated by a model trained without them, their augmented "
            "copies, or any window that overlaps them.", "note")))
        rows = []
        for f in result.folds:
            m = f["metrics"]
            rows.append([f["fold"], f.get("n_train_positive"), f.get("n_train_negative"), f.get("n_val_positive"),
                         f.get("n_val_negative"), f.get("buffered_deposits"), m["auc"], m["accuracy"],
                         m["balanced_accuracy"], m["f1"]])

        def mean_sd(key):
            """Mean +/- sample sd of a metric over the scored folds (the AUC's as the cross-validation gives it)."""
            if key == "auc":
                mean, sd = cv["auc_mean"], cv["auc_sd"]
            else:
                values = np.array([f["metrics"][key] for f in result.folds if not f.get("skipped")
                                   and f["metrics"].get(key) is not None], dtype=float)
                values = values[np.isfinite(values)]
                if not values.size:
                    return None
                mean, sd = values.mean(), values.std(ddof=1) if values.size > 1 else np.nan
            if not np.isfinite(mean):
                return None
            return report.Raw(f"{mean:.3f} &plusmn; {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}")

        rows.append(["mean +/- sd", None, None, None, None, None] + [mean_sd(k) for k in
                                                                    ("auc", "accuracy", "balanced_accuracy", "f1")])
        rows.append(["pooled (all validation windows)", None, None, None, None, None, cv["pooled_auc"],
                     cv["accuracy"], cv["balanced_accuracy"], cv["f1"]])
        table = report.html_table(
            ["Fold", "training deposit windows", "training background", "validation deposits",
             "validation background", "deposits buffered out", "AUC", "accuracy", "balanced accuracy", "F1"], rows)
        aucs = [np.nan if a is None else a for a in cv["auc_per_fold"]]
        chart = report.svg_bar_chart([f"fold {f['fold']}" for f in result.folds if not f["skipped"]], [aucs],
                                     ["AUC"], "Validation AUC per spatial fold", "AUC", y_range=(0, 1))
        note = report.paragraph(
            f"{cv_auc_text(cv, plan.info['n_deposits'])}; pooled over all validation windows: AUC "
            f"{score_text(cv['pooled_auc'])}, accuracy {score_text(cv['accuracy'])}, F1 {score_text(cv['f1'])} "
            "(deposit class, threshold 0.5). Accuracy counts every background window; with many more background "
            "than deposit windows, AUC and balanced accuracy say more.", "note")
        sections.append(("Spatial cross-validation", table + chart + note))
        sections.append(("Confusion matrix (all folds' validation windows)", report.svg_confusion_matrix(
            cv["confusion_matrix"], ["background", "deposit"], "Validation windows, threshold 0.5")))
        curves = []
        for f in result.folds:
            if f["skipped"]:
                continue
            epochs = list(range(1, len(f["history"]["train_loss"]) + 1))
            curves.append(report.svg_line_chart(
                [("training loss", epochs, f["history"]["train_loss"], "#1f77b4"),
                 ("validation loss", epochs, f["history"]["val_loss"], "#ff7f0e")],
                f"Fold {f['fold']}", "epoch", "class-balanced cross-entropy"))
        sections.append(("Learning curves", "".join(curves)))
    epochs = list(range(1, len(result.history["train_loss"]) + 1))
    sections.append(("Final model", report.svg_line_chart(
        [("training loss", epochs, result.history["train_loss"], "#1f77b4")], "Final model on all windows",
        "epoch", "class-balanced cross-entropy") + report.paragraph(
        f"Trained on {plan.final.n_positive} deposit windows (with augmented copies) and {plan.final.n_negative} "
        "background windows. Element means and standard deviations (z-score, stored in the model): "
        + ", ".join(f"{n} {m:.4g}/{s:.4g}" for n, m, s in zip(info.band_names, info.preprocessing["mean"],
                                                                 info.preprocessing["sd"])) + ".", "note")))
    return report.html_report("Geochemical prospectivity ResNet: training report", sections,
                              subtitle=info.description + " - " + info.training["date"])
