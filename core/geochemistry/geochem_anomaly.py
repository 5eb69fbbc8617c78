"""Geochemical anomaly workflow: survey hygiene, every anomaly score side by side, evaluation, report.

Used by ``oremap:geochem_anomaly``; plain arrays in, plain dicts out (no QGIS).
"""

import numpy as np

from . import anomaly_methods as am
from . import geochem, pathfinders
from ..engine import report
from . import prospectivity_eval as pe
from . import survey_hygiene as sh
from .distance_advice import check_distances
from ..engine.errors import OreMapError
from ..engine.feedback import ensure

N_DRAWS = 20
"""Draws of negatives in the evaluation (the published benchmark protocol)."""

METHOD_COLOURS = {"fusion": "#000000", "target": "#e31a1c", "enrichment": "#ff7f00", "mcd": "#1f78b4",
                  "rpca": "#6a3d9a", "iforest": "#33a02c", "spatial": "#b15928", "vae": "#fb9a99",
                  "suite": "#a6cee3"}
_P = am.CLASS_PERCENTILES
MAP_CLASSES = [(0.0, f"Below the {_P[0]:g}th percentile", "#d9d9d9"), (_P[0], f"{_P[0]:g}-{_P[1]:g}th", "#fed976"),
               (_P[1], f"{_P[1]:g}-{_P[2]:g}th", "#fd8d3c"), (_P[2], f"Top {100 - _P[2]:g} %", "#bd0026")]
"""The map's classes, those of :func:`anomaly_methods.anomaly_classes` (lower percentile, label, colour)."""


def class_legend():
    """``[{"value", "name", "color"}]`` of the class codes 0..3 of :data:`MAP_CLASSES` (for styles)."""
    return [{"value": k, "name": label, "color": colour} for k, (_, label, colour) in enumerate(MAP_CLASSES)]


NO_TARGET_HINT = ("No commodity target: the scores look for any multi-element departure from the survey "
                  "(lithology, regolith and contamination as well as mineralisation). If you explore for one "
                  "commodity, set TARGET: its pathfinders are scored instead (README, 'Tell OreMap what you explore "
                  "for').")


#: Share of the samples in which a target's commodity element must be measured to be scored when ``COVERAGE`` asks
#: for more: below ``COVERAGE`` but at least this, the coverage bar of the run comes down to the commodity's own.
COMMODITY_MIN_COVERAGE = 0.5


def choose_elements(columns, values, geometry_x=None, geometry_y=None, fields=None, target="none",
                    coverage=sh.DEFAULT_COVERAGE, units=None, missing=-9999.0, zeros=geochem.DEFAULT_ZEROS,
                    over=None):
    """The element table a run scores: ``(names, table, commodity columns, pathfinder columns, log, coverage,
    warnings)``, ``coverage`` the bar the run used, ``warnings`` the lines of ``log`` that are warnings.

    ``fields`` (the user's choice) win; else the survey's elements by coverage
    (:func:`core.geochemistry.survey_hygiene.plan_elements`), narrowed to the target's pathfinders when a
    target is given (:mod:`core.geochemistry.pathfinders`). A target's commodity element measured in fewer samples
    than ``coverage`` asks, but in at least :data:`COMMODITY_MIN_COVERAGE` of them, lowers the bar to its own
    coverage (a warning): a lithium survey with Li in 54 % of its rock chips scored the pegmatite sites lowest of
    all (ROC-AUC 0.207 against 0.983) without it.
    """
    zeros_missing = zeros == "missing"
    survey = dict(fields=fields, units=units, missing=missing, zeros_missing=zeros_missing, over=over)
    names, table, plan = sh.survey_elements(list(columns), values, geometry_x, geometry_y, coverage=coverage,
                                            **survey)
    log, warned = list(plan.log), []

    def say(message):   # a warning: in the log (and the report) and told apart from the other lines
        log.append(message)
        warned.append(message)

    used = coverage
    commodity, pathfinder_cols = [], None
    if target and target != "none" and not fields and target in pathfinders.PRESETS:
        # commodity elements left out for their coverage only (not a constant column, not a bare name)
        short = {e: plan.coverage[e] for e in pathfinders.PRESETS[target]["commodity"]
                 if e not in plan.elements and plan.coverage.get(e, coverage) < coverage}
        # every commodity element measured in at least half the samples is scored: the bar comes down to the least
        bar = min((share for share in short.values() if share >= COMMODITY_MIN_COVERAGE), default=None)
        if bar is not None:
            names, table, plan = sh.survey_elements(list(columns), values, geometry_x, geometry_y, coverage=bar,
                                                    **survey)
            log, used = list(plan.log), bar
            lowered = [e for e, v in short.items() if v >= COMMODITY_MIN_COVERAGE]
            say(f"Target {target}: its commodity element ({', '.join(lowered)}) is measured in "
                f"{'as few as ' if len(lowered) > 1 else ''}{100 * bar:.3g} % of the samples, fewer than COVERAGE asks "
                f"({100 * coverage:.3g} %): the bar is lowered to {100 * bar:.3g} % for this run, so that it is scored "
                "(samples without it are ranked on the pathfinders alone).")
    if target and target != "none":
        symbols = [plan.elements[k] for k in range(len(plan.elements))]
        commodity, pathfinder_cols, absent = pathfinders.preset_columns(target, symbols, names)
        preset = pathfinders.PRESETS[target]
        bare = _bare_fields(plan)

        def left_bare(wanted):   # why a wanted element is missing, when a bare-named field of it was left out
            found = [f"{', '.join(bare[e])} (for {e})" for e in wanted if e in bare]
            return (f" The field(s) {'; '.join(found)} name the element without a unit and were left out, as other "
                    "fields state theirs: give their units in UNITS (e.g. AU=ppm) or choose the element fields."
                    if found else "")

        def reason(e, needed=""):   # why a preset element is not in the set: its own reason (coverage, constant...)
            if e in plan.coverage and plan.coverage[e] < used:
                return f"measured in {100 * plan.coverage[e]:.3g} % of the samples{needed}"
            if e in bare:
                return f"{', '.join(bare[e])}, a bare name without a unit while other fields state theirs"
            return plan.left_out.get((plan.columns.get(e) or [""])[0]) or "not measured"

        if absent:
            log.append(f"Target {target}: pathfinders not in the element set (not measured, in fewer than "
                       f"{100 * used:.3g} % of the samples, or left out for the reason given): "
                       f"{'; '.join(f'{e} {reason(e)}' for e in absent)}.{left_bare(absent)}")
        unscored = [e for e in preset["commodity"] if e not in plan.elements]
        needed = f"; at least {100 * COMMODITY_MIN_COVERAGE:.0f} % is needed to score it"
        why = [f"{e}: {reason(e, needed)}" for e in unscored]   # each missing commodity element with its reason
        if unscored and commodity:
            log.append(f"Target {target}: not scored with the commodity elements: {'; '.join(why)}.")
        elif unscored:
            say(f"Target {target}: its commodity element is not scored ({'; '.join(why)}), so there is no target "
                "score: the pathfinders are ranked on the scores of a run without a target."
                + (left_bare(unscored) or ("" if fields else " Choose the element fields to score it.")))
        if not fields:
            if len(pathfinder_cols) < 2:
                raise OreMapError(
                    f"Only {len(pathfinder_cols)} of the {target} pathfinders ({', '.join(preset['pathfinders'])}) "
                    f"are measured in at least {100 * used:.3g} % of the samples."
                    + left_bare(preset["pathfinders"]), "target",
                    "Choose another target, lower the coverage, or choose the element fields.")
            keep = [names.index(c) for c in pathfinder_cols]
            names, table = [names[k] for k in keep], table[:, keep]
            log.append(f"Target {target} ({preset['label']}): {', '.join(names)}.")
    elif not fields:
        log.append(NO_TARGET_HINT)
    return names, table, commodity, pathfinder_cols, log, used, warned


def _bare_fields(plan):
    """``{element symbol: [fields]}`` left out as bare names without a unit beside fields that state theirs."""
    bare = {}
    for name, reason in plan.left_out.items():
        if reason.startswith("bare name"):
            element = sh.parse_column(name).element
            if element:
                bare.setdefault(element, []).append(name)
    return bare


def evaluate_methods(x, y, scores, deposits_xy, positive_radius, negative_min_distance, seed=0, feedback=None):
    """Per method the :func:`core.geochemistry.prospectivity_eval.evaluate_points` result (ROC-AUC over 20 draws...)."""
    feedback = ensure(feedback)
    dep = pe.deposit_array(deposits_xy)
    first = next(iter(scores.values()))
    finite = np.isfinite(first) & np.isfinite(x) & np.isfinite(y)
    check_distances(np.asarray(x)[finite], np.asarray(y)[finite], dep, positive_radius, negative_min_distance,
                    pe.MIN_POSITIVES, 2, what="scored samples")
    out = {}
    for i, (method, score) in enumerate(scores.items()):
        feedback.check()
        out[method] = pe.evaluate_points(x, y, score, dep, positive_radius, negative_min_distance, n_draws=N_DRAWS,
                                         seed=seed)
        feedback.progress(100 * (i + 1) / len(scores))
    return out


def auc_table(evaluations):
    """Rows ``[method, label, auc mean, auc sd, AP mean, success-rate AUC, positives, negatives per draw]``."""
    rows = []
    for method, ev in evaluations.items():
        rows.append([method, am.METHOD_LABELS[method], ev["auc_mean"], ev["auc_sd"], ev["ap_mean"],
                     ev["success"]["auc"], ev["n_positive"], ev["n_negatives_per_draw"]])
    return rows


def _map_svg(x, y, score, deposits=None):
    x, y, score = np.asarray(x, float), np.asarray(y, float), np.asarray(score, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return ""
    classes = am.anomaly_classes(score)
    groups = []
    if (~np.isfinite(score) & ok).any():
        sel = ~np.isfinite(score) & ok
        groups.append((f"Not scored ({int(sel.sum())})", x[sel], y[sel], "#9ecae1", 1.2))
    for k, (_, label, colour) in enumerate(MAP_CLASSES):
        sel = ok & (classes == k)
        groups.append((f"{label} ({int(sel.sum())})", x[sel], y[sel], colour, 1.8 + 0.7 * k))
    if deposits is not None and len(deposits):
        dep = np.asarray(deposits, float).reshape(-1, 2)
        groups.append(("Known deposits", dep[:, 0], dep[:, 1], "#000000", 2.4))
    dx, dy = np.ptp(x[ok]) or 1.0, np.ptp(y[ok]) or 1.0
    width = 560
    height = int(min(760, max(280, 90 + (width - 60) * dy / dx)))
    return report.svg_scatter(groups, "Map of the fused score (percentile classes)", "Easting (m)", "Northing (m)",
                              width=width, height=height, identity=False)


def report_html(title, names, settings, scores, main, x, y, evaluations=None, deposits=None, log=(), subtitle=None):
    """The HTML report: settings, AUC table, ROC and success-rate curves of every method, map, log."""
    sections = [("Settings", report.html_table(["Setting", "Value"], [[k, str(v)] for k, v in settings]))]
    if evaluations:
        rows = auc_table(evaluations)
        sections.append((f"ROC-AUC of every method ({N_DRAWS} draws of negatives)", report.html_table(
            ["Method", "", "ROC-AUC mean", "sd", "Average precision", "Success-rate AUC", "Positives",
             "Negatives per draw"], rows)))
        roc = [(f"{m} ({ev['auc_mean']:.3f})", ev["roc_fpr"], ev["roc_tpr_mean"], METHOD_COLOURS[m])
               for m, ev in evaluations.items()] + [("Chance", [0, 1], [0, 1], "#999999")]
        success = [(f"{m} ({ev['success']['auc']:.3f})", 100 * ev["success"]["area"], 100 * ev["success"]["deposits"],
                    METHOD_COLOURS[m]) for m, ev in evaluations.items()] + \
                  [("Random ranking", [0, 100], [0, 100], "#999999")]
        sections.append(("ROC curves (mean over the draws)", report.Raw(report.svg_line_chart(
            roc, "ROC curves of every method", "False-positive rate", "True-positive rate"))))
        sections.append(("Success-rate curves", report.Raw(report.svg_line_chart(
            success, "Success-rate curves of every method", "Area, % of samples ranked by decreasing score",
            "Deposits captured (%)"))))
    fused = scores.get("fusion", scores[main])
    sections.append(("Map", report.Raw(_map_svg(x, y, fused, deposits))))
    finite = {m: np.isfinite(s) for m, s in scores.items()}
    sections.append(("Scores", report.html_table(
        ["Method", "Samples scored", "Median", "99th percentile"],
        [[am.METHOD_LABELS[m], int(finite[m].sum()), float(np.nanmedian(s)) if finite[m].any() else None,
          float(np.nanpercentile(s, 99)) if finite[m].any() else None] for m, s in scores.items()])))
    sections.append(("Elements and log", report.paragraph("Elements scored: " + ", ".join(names)) + "".join(
        report.paragraph(line) for line in log)))
    return report.html_report(title, sections, subtitle=subtitle)


def run_points(x, y, columns, values, geometry_x=None, geometry_y=None, fields=None, target="none",
               method="fusion", coverage=sh.DEFAULT_COVERAGE, units=None, below="half", zeros=geochem.DEFAULT_ZEROS,
               missing=-9999.0, transform="log10", support=am.DEFAULT_SUPPORT, k=am.DEFAULT_K, seed=0,
               include_vae=False, vae_options=None, deposits_xy=None, positive_radius=2000.0,
               negative_min_distance=4000.0, report_path=None, subtitle=None, once=True, feedback=None, over=None,
               sample_ids=False, survey_notes=()):
    """Choose the elements, compute every score, evaluate each against deposits, write the report.

    ``x``, ``y``: coordinates in a projected CRS; ``geometry_x``/``geometry_y``: the layer's own
    coordinates (a column equal to them is no element). ``method``: the main score (``"fusion"``
    by default). ``include_vae``: also train the VAE (slow); it is always computed when
    ``method`` is ``"vae"``. ``once``, ``sample_ids``: see :func:`anomaly_methods.score_all`. ``over``: where values
    were over the laboratory's upper limit (:func:`core.geochemistry.survey_hygiene.apply_plan`). ``survey_notes``:
    what the reading of the survey said (rows, records, samples), put first in the report's log. Returns a dict:
    ``names``, ``scores`` (method -> array), ``main``, ``evaluations`` (method -> result, or None), ``log``.
    """
    feedback = ensure(feedback)
    if method not in am.METHODS:
        raise OreMapError(f"Unknown method '{method}'.", "method", f"Use one of: {', '.join(am.METHODS)}.")
    names, table, commodity, pathfinder_cols, log, coverage, warned = choose_elements(
        columns, values, geometry_x, geometry_y, fields=fields, target=target, coverage=coverage, units=units,
        missing=missing, zeros=zeros, over=over)
    for line in log:
        (feedback.warning if line in warned else feedback.info)(line)
    if method == "target" and not commodity:
        raise OreMapError("The target score needs a commodity target whose element the survey measures.", "method",
                          "Choose a target (e.g. Au) or another method.")
    methods = [m for m in am.METHODS if m != "vae" or include_vae or method == "vae"]
    fused = am.TARGET_FUSED if commodity else am.DEFAULT_FUSED
    scores, messages = am.score_all(table, names, x, y, methods=methods, fused=fused, targets=commodity or None,
                                    pathfinders=pathfinder_cols, below=below, zeros=zeros, missing=missing,
                                    transform=transform, support=support, k=k, seed=seed, vae_options=vae_options,
                                    once=once, sample_ids=sample_ids,
                                    feedback=feedback.scaled(0, 70))
    for line in messages:
        feedback.info(line)
    log += messages
    evaluations = None
    if deposits_xy is not None:
        evaluations = evaluate_methods(x, y, scores, deposits_xy, positive_radius, negative_min_distance, seed=0,
                                       feedback=feedback.scaled(70, 95))
        for row in auc_table(evaluations):
            feedback.info(f"{row[0]}: ROC-AUC {row[2]:.3f} +- {row[3]:.3f} over {N_DRAWS} draws "
                          f"({row[6]} positives).")
    if report_path:
        settings = [("Main score", am.METHOD_LABELS[method]), ("Target", target),
                    ("Fusion of", ", ".join(fused)), ("Elements", f"{len(names)}"),
                    ("Coverage rule", f"measured in >= {100 * coverage:.3g} % of the samples" if not fields
                     else "elements chosen by the user"),
                    ("Transform", f"{transform}, robust z-scores"), ("Spatial support (neighbours)", support),
                    ("Spatial context neighbours", k), ("Seed", seed)]
        if deposits_xy is not None:
            settings += [("Positive radius", positive_radius), ("Negative minimum distance", negative_min_distance)]
        if target != "none":
            settings.append(("Pathfinder reference", pathfinders.PRESETS[target]["reference"]))
            settings.append(("What the reference supports", pathfinders.PRESETS[target]["basis"]))
        html = report_html("Geochemical anomalies", names, settings, scores, method, x, y, evaluations,
                           deposits_xy, list(survey_notes) + log, subtitle)
        report.write_report(report_path, html)
    feedback.progress(100)
    return {"names": names, "scores": scores, "main": method, "evaluations": evaluations, "log": log,
            "commodity": commodity, "pathfinders": pathfinder_cols}
