"""Reports of a prospectivity evaluation: the HTML sections (ROC, success-rate and prediction-area
curves, the summary table) and the CSV table, from the result of
:func:`core.geochemistry.prospectivity_eval.evaluate_points` or ``evaluate_raster``.
"""

import csv
import io
import math

import numpy as np

from ..engine import report


def _fmt(value, digits=3):
    if value is None or not np.isfinite(value):
        return report.MISSING
    return f"{value:.{digits}f}"


def _all_negatives_label(result):
    """The row of the AUC against every negative at once: against all candidates, or (a raster with more negative
    pixels than the memory-sized pool) against the pool, a uniform random sample of them."""
    pool, candidates = result.get("n_negative_pool"), result["n_negative_candidates"]
    if pool is not None and pool < candidates:
        return f"ROC-AUC against a random sample of {pool} of the {candidates} negative candidates"
    return "ROC-AUC against all negative candidates"


def _summary_rows(result, for_html=False):
    unit = "pixels" if result["kind"] == "raster" else "samples"
    threshold = result["pa_threshold"]
    if for_html and threshold is not None and np.isfinite(threshold):
        threshold = f"{threshold:.4g}"  # 4 significant digits: scores in ppm can be 0.0004
    rows = [
        ["ROC-AUC, mean over draws", result["auc_mean"]],
        ["ROC-AUC, standard deviation over draws", result["auc_sd"]],
        [_all_negatives_label(result), result["auc_all"]],
        ["Standard error of the mean AUC (Hanley & McNeil)", result["auc_se"]],
        ["ZAUC = (AUC - 0.5) / SE", result["zauc"]],
        ["Average precision, mean over draws", result["ap_mean"]],
        ["Average precision, standard deviation", result["ap_sd"]],
        ["Success-rate AUC", result["success"]["auc"]],
        ["P-A intersection: threshold", threshold],
        ["P-A intersection: prediction rate (%)", result["pa_rate"]],
        ["P-A intersection: area (%)", 100.0 - result["pa_rate"] if np.isfinite(result["pa_rate"]) else None],
        [f"Positive {unit} (within {result['positive_radius']:g} m of a deposit)", result["n_positive"]],
        [f"Negative candidates (at least {result['negative_min_distance']:g} m from every deposit)",
         result["n_negative_candidates"]],
        [f"{unit.capitalize()} left out between the two distances", result["n_excluded"]],
        ["Negatives per draw", result["n_negatives_per_draw"]],
        ["Draws", result["n_draws"]],
        ["Seed", result["seed"] if isinstance(result["seed"], int) else str(result["seed"])],
        ["Deposits", result["n_deposits"]],
        ["Deposits with a score (success rate, P-A)", result["n_deposits_scored"]],
        [f"Scored {unit}", result["n_scored"]],
    ]
    if result.get("n_deposit_places") is not None:
        rows.append([f"Distinct {unit} holding them (several deposits on one count each)", result["n_deposit_places"]])
    return rows


EVALUATION_NOTE = (
    "Positives are the scored places within the positive radius of a known deposit; negatives are drawn at "
    "random, as many as there are positives unless set otherwise, from the places at least the negative minimum "
    "distance from every deposit; places in between are left out. ROC-AUC is the probability that a positive "
    "scores higher than a negative (0.5 = chance, 1 = perfect separation), averaged over the draws. Neighbouring "
    "places are not independent, so the standard error and ZAUC are optimistic."
)


def _roc_svg(result):
    fpr = result["roc_fpr"]
    xs = np.concatenate([np.r_[fpr, np.nan] for _ in result["roc_tpr"]])
    ys = np.concatenate([np.r_[t, np.nan] for t in result["roc_tpr"]])
    series = [(f"Draws ({len(result['roc_tpr'])})", xs, ys, "#b8c4d0"),
              (f"Mean (AUC {_fmt(result['auc_mean'])})", fpr, result["roc_tpr_mean"], "#1f78b4"),
              ("Chance", [0, 1], [0, 1], "#999999")]
    return report.svg_line_chart(series, "ROC curves of the draws", "False-positive rate", "True-positive rate")


def _success_svg(result):
    s = result["success"]
    series = [(f"Success rate (AUC {_fmt(s['auc'])})", 100 * s["area"], 100 * s["deposits"], "#e31a1c"),
              ("Random ranking", [0, 100], [0, 100], "#999999")]
    unit = "pixels" if result["kind"] == "raster" else "samples"
    return report.svg_line_chart(series, "Success-rate curve", f"Area, % of {unit} ranked by decreasing score",
                                 "Deposits captured (%)")


def _pa_svg(result):
    pa = result["pa"]
    t = pa["thresholds"]
    series = [("Prediction rate (% of deposits)", t, pa["prediction_rate"], "#e31a1c"),
              ("100 - area (%)", t, 100.0 - pa["area_percent"], "#1f78b4")]
    tx, rate = result["pa_threshold"], result["pa_rate"]
    if np.isfinite(tx):
        series.append((f"Intersection: threshold {tx:.4g}, {rate:.1f} % of deposits in {100 - rate:.1f} % of area",
                       [tx, tx], [0, 100], "#33a02c"))
    return report.svg_line_chart(series, "Prediction-area plot", "Score threshold", "Percent")


def evaluation_sections(result, prefix=""):
    """Report sections (heading, HTML) of an :func:`evaluate_points` / :func:`evaluate_raster` result.

    Summary table with a note, ROC curves of the draws with their mean, the
    success-rate curve with the diagonal, the P-A plot with its intersection, and the
    deposits' scores. ``prefix`` starts every heading.
    """
    sections = [("Summary", report.html_table(["Measure", "Value"], _summary_rows(result, for_html=True))
                 + "\n" + report.paragraph(EVALUATION_NOTE, "note"))]
    sections.append(("ROC curves", _roc_svg(result) + "\n" + report.html_table(
        ["Draw", "ROC-AUC", "Average precision"],
        [[i + 1, a, p] for i, (a, p) in enumerate(zip(result["aucs"], result["aps"]))])))
    sections.append(("Success-rate curve", _success_svg(result) + "\n" + report.paragraph(
        "Share of the deposits whose score is at or above a threshold against the share of the area at or above "
        "it, the area ranked from the highest score down. The further above the diagonal, the better; its AUC is the "
        "probability that a deposit scores higher than a random place.", "note")))
    note = ("Where the prediction rate equals 100 minus the area share, that share of the deposits lies in the "
            "complementary share of the area: the lower that area and the higher the rate, the better.")
    if result.get("pa_approximate"):
        note += (" The raster is large: area shares were counted exactly at about 2,000 thresholds (quantiles of a "
                 "random sample of the pixels, about 0.05 % of the area apart) and interpolated between them.")
    sections.append(("Prediction-area plot", _pa_svg(result) + "\n" + report.paragraph(note, "note")))
    dep = result["deposits_xy"]
    sections.append(("Deposits", report.html_table(
        ["Deposit", "X", "Y", "Score"],
        [[i + 1, float(x), float(y), float(s)] for i, ((x, y), s) in enumerate(zip(dep, result["deposit_scores"]))],
        number_format="{:.8g}")))   # as the CSV: .6g put northings to the nearest 100 m
    return [(prefix + heading, fragment) for heading, fragment in sections]


def evaluation_report(result, title, subtitle=None, extra_sections=()):
    """A standalone HTML document of :func:`evaluation_sections` plus ``extra_sections``."""
    if subtitle is None and result.get("raster"):
        subtitle = f"Score raster: {result['raster']}"
    return report.html_report(title, evaluation_sections(result) + list(extra_sections), subtitle=subtitle)


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{float(value):.8g}" if math.isfinite(value) else ""
    return str(value)


def write_evaluation_csv(result, path, parameter="table"):
    """Write the numbers of an evaluation as CSV (UTF-8 with BOM), atomically. Returns ``path``.

    Blocks separated by an empty line: measures; per-draw AUC and AP; the success-rate
    curve; the P-A curves (at most about 1,000 thresholds); the deposits' scores.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["Measure", "Value"])
    for label, value in _summary_rows(result):
        w.writerow([label, _csv_value(value)])
    w.writerow([])
    w.writerow(["Draw", "ROC-AUC", "Average precision"])
    for i, (a, p) in enumerate(zip(result["aucs"], result["aps"])):
        w.writerow([i + 1, _csv_value(a), _csv_value(p)])
    w.writerow([])
    w.writerow(["Area share", "Deposit share (success rate)"])
    for a, d in zip(result["success"]["area"], result["success"]["deposits"]):
        w.writerow([_csv_value(a), _csv_value(d)])
    w.writerow([])
    w.writerow(["Threshold", "Prediction rate (%)", "Area (%)"])
    pa = result["pa"]
    for row in zip(pa["thresholds"], pa["prediction_rate"], pa["area_percent"]):
        w.writerow([_csv_value(v) for v in row])
    w.writerow([])
    w.writerow(["Deposit", "X", "Y", "Score"])
    for i, ((x, y), s) in enumerate(zip(result["deposits_xy"], result["deposit_scores"])):
        w.writerow([i + 1, _csv_value(x), _csv_value(y), _csv_value(s)])
    return report.write_text_atomic(path, buf.getvalue(), parameter=parameter, encoding="utf-8-sig")


def write_evaluation_outputs(result, title, html_path, csv_path=None, subtitle=None, extra_sections=()):
    """Write the HTML report and, if ``csv_path``, the CSV. Errors name ``"report"`` / ``"table"``."""
    report.write_report(html_path, evaluation_report(result, title, subtitle, extra_sections), parameter="report")
    if csv_path:
        write_evaluation_csv(result, csv_path, parameter="table")
    return html_path, (csv_path or None)
