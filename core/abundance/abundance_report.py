"""The abundance model's training report (out-of-fold scores, predicted against measured, member
weights) and its CSV tables.
"""

import numpy as np

from .abundance import FAMILY_LABELS, calibration_warning


def training_report(result, title="Mineral abundance model", data_notes=(), max_points=600, seed=0):
    """HTML report of a :class:`AbundanceResult`: model comparison, predicted vs measured, coverage."""
    from ..engine import report

    names = result.names
    labels = list(result.metrics)
    ens = result.info.training["metrics"]["ensemble"]
    level = result.info.training["metrics"]["level"]
    singles = [FAMILY_LABELS[f] for f in result.families]
    best_single = min(singles, key=lambda lab: result.metrics[lab]["mean_rmse"])
    sections = []
    n_groups = int(np.unique(result.groups).size)
    n_rois = int(result.info.training.get("n_rois", n_groups))
    params = result.info.training["parameters"]
    lines = [f"{result.truth.shape[0]} pixels from {n_rois} ROIs"
             + (f" ({n_groups} groups: ROIs of one sample, with one composition, are one group)"
                if n_groups != n_rois else "") + f"; parts: {', '.join(names)}.",
             f"Cross-validation: {params['n_folds']} folds of whole ROI groups (no ROI is ever on both sides); every "
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
        "computed from the other folds only, each ROI (group) counting once.")
        + ("" if np.all(np.isfinite(result.quantiles)) else report.paragraph(
            "Warning: " + calibration_warning(n_groups, level, "ROIs" if n_groups == n_rois else "ROI groups")
            + " The coverage below says nothing.")) + report.html_table(
        ["Part", "Nominal level (%)", "Empirical coverage (%)", "Mean width (% points)"], rows, "{:.1f}")))

    W = result.weights
    sections.append(("Stacking weights", report.paragraph(
        "Non-negative weights summing to one, fitted on the out-of-fold predictions (the ensemble's own "
        "figures above use weights fitted without the evaluated fold).") + report.html_table(
        ["Member", "Weight"], [[FAMILY_LABELS[f], float(W[i, 0])] for i, f in enumerate(result.families)], "{:.3f}")))
    subtitle = f"Trained {result.info.training['date']} with OreMap {result.info.oremap_version}"
    return report.html_report(title, sections, subtitle)


def _cell(value):
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def write_table_csv(path, rows, parameter="table"):
    """Rows (list of dicts with the same keys) as CSV, written atomically; NaN and None are empty cells."""
    import csv
    import io

    from ..engine.report import write_text_atomic

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    # with a byte-order mark, as OreMap's other tables: spreadsheets then read mineral and zone names as UTF-8
    return write_text_atomic(path, buffer.getvalue(), parameter=parameter, encoding="utf-8-sig")
