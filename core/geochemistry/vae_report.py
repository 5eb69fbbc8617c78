"""The VAE anomaly report: loss curve, score histogram with the class thresholds, class map of points or a
raster thumbnail, the elements that contribute most to the strongest anomalies, and the settings table.

Split out of :mod:`core.geochemistry.vae_anomaly` (report seam); it builds HTML and inline SVG from the
results the training and scoring functions return, and imports nothing from them.
"""

import math

import numpy as np

from ..engine import report
from .vae_anomaly import CLASS_COLOURS, COLLAPSED_KL, class_legend


def _shares(errors):
    e = np.nan_to_num(np.asarray(errors, float))
    total = e.sum(axis=1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def _top_elements(errors_row, names, k=3):
    share = _shares(errors_row[None, :])[0]
    order = np.argsort(-share, kind="stable")[:k]
    return ", ".join(f"{names[j]} {100 * share[j]:.0f} %" for j in order if share[j] > 0)


def _loss_svg(history):
    epochs = list(range(1, len(history["train_recon"]) + 1))
    recon = report.svg_line_chart(
        [("training", epochs, history["train_recon"], "#1f77b4"),
         ("validation", epochs, history["val_recon"], "#ff7f0e")],
        "Reconstruction error", "epoch", "sum of squared errors per sample")
    kl = report.svg_line_chart(
        [("training", epochs, history["train_kl"], "#1f77b4"), ("validation", epochs, history["val_kl"], "#ff7f0e")],
        "KL divergence", "epoch", "KL per sample")
    return recon + "\n" + kl


def _histogram_svg(centres, counts, thresholds, percentiles):
    counts = np.asarray(counts, float)
    series = [("Samples", centres, counts, "#4d4d4d")]
    top = float(counts.max()) if counts.size else 1.0
    for i, (p, t) in enumerate(zip(percentiles, thresholds)):
        x = math.log10(max(float(t), 1e-30))
        series.append((f"P{p:g} = {t:.3g}", [x, x], [0, top], CLASS_COLOURS[i + 1]))
    return report.svg_line_chart(series, "Score histogram and class thresholds", "log10 anomaly score", "count")


def _points_histogram(scores, thresholds, percentiles):
    finite = scores[np.isfinite(scores)]
    positive = finite[finite > 0]
    if positive.size == 0:
        return ""
    floor = np.log10(np.percentile(positive, 0.5))   # scores below (0 included: enrichment only) in the first bin
    logs = np.log10(np.maximum(finite, 10.0 ** floor))
    lo = min(floor, np.log10(max(min(thresholds), 1e-30)))
    hi = max(logs.max(), np.log10(max(max(thresholds), 1e-30)))
    edges = np.linspace(lo, hi + 1e-9, 41)
    counts, _ = np.histogram(logs, edges)
    xs = np.repeat(edges, 2)[1:-1]
    ys = np.repeat(counts, 2)
    return _histogram_svg(xs, ys, thresholds, percentiles)


def _map_svg_points(x, y, classes, legend, deposits=None, width=560):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return ""
    dx, dy = np.ptp(x[ok]) or 1.0, np.ptp(y[ok]) or 1.0
    height = int(min(760, max(280, 90 + (width - 60) * dy / dx)))
    groups = [("Not scored", x[classes < 0], y[classes < 0], "#9ecae1", 1.2)] if (classes < 0).any() else []
    for c in legend:
        sel = classes == c["value"]
        groups.append((f"{c['name']} ({int(sel.sum())})", x[sel], y[sel], c["color"], 2.2 + 0.6 * c["value"]))
    if deposits is not None and len(deposits):
        dep = np.asarray(deposits, float).reshape(-1, 2)
        groups.append(("Known deposits", dep[:, 0], dep[:, 1], "#000000", 2.0))
    return report.svg_scatter(groups, "Map of the anomaly classes", "Easting (m)", "Northing (m)", width=width,
                              height=height, identity=False)


def _map_svg_raster(thumb, factor, legend, width=560):
    th, tw = thumb.shape
    cell = max(1.0, min(6.0, (width - 20) / tw))
    top = 48
    w, h = max(tw * cell + 20, 360), top + th * cell + 20 + 16 * len(legend)
    colours = {c["value"]: c["color"] for c in legend}
    note = "each cell: the highest class of its pixels" if factor == 1 else \
        f"each cell: the highest class of a block of {factor} x {factor} pixels"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-plot" width="{w:.0f}" height="{h:.0f}" '
           f'viewBox="0 0 {w:.0f} {h:.0f}" font-family="{report.FONT}">',
           '<text x="10" y="20" font-size="14" font-weight="bold">Map of the anomaly classes</text>',
           f'<text x="10" y="37" font-size="11" fill="#555555">{report._esc(note)}</text>', '<g class="raster">']
    for r in range(th):
        row = thumb[r]
        start = 0
        for c in range(1, tw + 1):
            if c == tw or row[c] != row[start]:
                v = int(row[start])
                if v >= 0:
                    colour = colours.get(v, "#000000")
                    out.append(f'<rect x="{10 + start * cell:.2f}" y="{top + r * cell:.2f}" '
                               f'width="{(c - start) * cell:.2f}" height="{cell:.2f}" fill="{colour}"/>')
                start = c
    out.append("</g>")
    y0 = top + th * cell + 20
    for i, c in enumerate(legend):
        out.append(f'<rect x="10" y="{y0 + 16 * i - 9:.0f}" width="18" height="10" fill="{c["color"]}"/>'
                   f'<text x="34" y="{y0 + 16 * i:.0f}" font-size="11">{report._esc(c["name"])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _contribution_sections(names, errors_top, labels_top, scores_top, classes_top, class_labels, share_top_class,
                           share_all, n_top_class):
    rows = []
    for rank, (label, s, c, e) in enumerate(zip(labels_top, scores_top, classes_top, errors_top), start=1):
        rows.append([rank, label, float(s), class_labels[int(c)] if c >= 0 else "", _top_elements(e, names)])
    table = report.html_table(["Rank", "Sample", "Score", "Class", "Largest contributions (share of the score)"],
                              rows, number_format="{:.4g}")
    parts = [table]
    if share_top_class is not None:
        groups, gnames = [100 * np.asarray(share_top_class)], [f"Highest class ({n_top_class})"]
        if share_all is not None:
            groups.append(100 * np.asarray(share_all))
            gnames.append("All scored")
        parts.append(report.svg_bar_chart(names, groups, gnames, "Contribution of each element to the score",
                                          "% of the score", colours=["#e31a1c", "#9e9e9e"][:len(groups)]))
    parts.append(report.paragraph(
        "An element's contribution is its squared reconstruction error (scaled units, mean over the latent draws) as "
        "a share of the sample's total: the elements the background structure cannot explain.", "note"))
    return [("Top anomalies and element contributions", "\n".join(parts))]


def report_html(title, names, settings_rows, history=None, scores=None, thresholds=(), percentiles=(),
                map_svg="", top=None, evaluation=None, notes=(), histogram=None, subtitle=None, kept_epoch=None):
    """The HTML report: settings, loss curves, histogram with thresholds, map, contributions, evaluation.

    ``top``: dict ``labels``, ``scores``, ``classes``, ``errors`` (the top anomalies),
    ``share_top_class``, ``share_all``, ``n_top_class``. ``histogram``: ``(centres, counts)``
    (rasters); else built from ``scores``. ``evaluation``: a result of
    :func:`core.geochemistry.prospectivity_eval.evaluate_points` / ``evaluate_raster``.
    """
    from . import evaluation_report

    legend = class_legend(percentiles)
    sections = [("Settings (to reproduce this run)", report.html_table(["Setting", "Value"], settings_rows))]
    if history is not None and history.get("train_recon"):
        kl = np.asarray(history["train_kl"], float)
        # the network kept (early stopping's epoch, 1-based ``kept_epoch``), as the training's warning says: the
        # last epoch's KL could say otherwise
        at = int(kept_epoch) - 1 if kept_epoch and 0 < int(kept_epoch) <= kl.size else kl.size - 1
        if kl.size and np.isfinite(kl[at]) and kl[at] < COLLAPSED_KL:
            notes = list(notes) + [
                f"The KL divergence of the network kept (epoch {at + 1}) is {kl[at]:.3g} per sample: the latent code "
                "carries almost no information "
                "(posterior collapse, e.g. with a high KL weight), so reconstructions stay close to the background "
                "centre and the score approaches a per-element deviation index rather than a multivariate one."]
    if notes:
        sections.append(("Notes", "\n".join(report.paragraph(n) for n in notes)))
    if history is not None and history.get("train_recon"):
        sections.append(("Training and validation loss", _loss_svg(history) + "\n" + report.paragraph(
            "Reconstruction: sum over the elements of the squared error of the scaled values, per sample, averaged "
            "over the fixed latent draws. KL: divergence of the latent code from a standard normal, per sample. "
            "The epoch with the lowest validation loss (reconstruction + KL weight x KL) is kept.", "note")))
    if histogram is not None:
        hist = _histogram_svg(histogram[0], histogram[1], thresholds, percentiles)
    else:
        hist = _points_histogram(np.asarray(scores, float), thresholds, percentiles) if scores is not None else ""
    rows = [[c["name"], float(t) if i else None] for i, (c, t) in enumerate(zip(legend, [None] + list(thresholds)))]
    sections.append(("Scores and classes", hist + "\n" + report.html_table(
        ["Class", "Score from"], rows, number_format="{:.5g}") + "\n" + report.paragraph(
        "Thresholds are percentiles of the scores of the training samples; the score is the mean squared "
        "reconstruction error of the scaled elements (higher = more anomalous). The lowest scores (0 included, "
        "where only enrichment counts) are gathered in the first bin.", "note")))
    if map_svg:
        sections.append(("Map", map_svg))
    if top is not None and len(top["scores"]):
        sections += _contribution_sections(names, top["errors"], top["labels"], top["scores"], top["classes"],
                                           [c["name"] for c in legend], top.get("share_top_class"),
                                           top.get("share_all"), top.get("n_top_class", 0))
    if evaluation is not None:
        sections += evaluation_report.evaluation_sections(evaluation, prefix="Evaluation against deposits: ")
    return report.html_report(title, sections, subtitle=subtitle)


def settings_rows(names, prep, parameters=None, model_path=None, extra=()):
    """Rows of the settings table: elements, preprocessing, network (or the model used), extras."""
    rows = [["Elements", f"{len(names)}: " + ", ".join(names)],
            ["Preprocessing", prep.describe()]]
    if prep.scaler is not None:
        rows.append(["Scaling statistics (centre / scale)", "; ".join(
            f"{n} {c:.4g} / {s:.4g}" for n, c, s in zip(names, prep.scaler.center, prep.scaler.scale))])
    if parameters:
        p = parameters
        rows += [["Hidden layers (encoder; decoder mirrored)", ",".join(str(h) for h in p["hidden"])],
                 ["Latent dimension", p["latent"]], ["Activation", p["activation"]], ["KL weight", p["kl_weight"]],
                 ["Epochs", p["epochs"]], ["Batch size", p["batch_size"]], ["Learning rate", p["lr"]],
                 ["Validation share", p["val_fraction"]], ["Latent draws in the score", p["draws"]],
                 ["Residuals counted in the score", {"both": "both directions (squared error)",
                                                     "high": "enrichment only (values above their reconstruction)"}
                  .get(p.get("direction", "both"), p.get("direction"))],
                 ["Seed", p["seed"]], ["Percentiles", ",".join(f"{v:g}" for v in p["percentiles"])]]
    if model_path:
        rows.append(["Model", str(model_path)])
    rows += [list(r) for r in extra]
    return rows
