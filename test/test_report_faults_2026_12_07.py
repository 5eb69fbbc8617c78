"""Report faults found by the 2026-12-07 audit: tick labels, one-fold AUC note, long class names, control characters.

Known answers are written out by hand: the labels each tick and class name must read as, the note's exact words.
"""

import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np

from oremap.core.engine import report
from oremap.core.engine.report import (
    _esc,
    _short_labels,
    _tick_label,
    html_report,
    nice_ticks,
    svg_bar_chart,
    svg_confusion_matrix,
    svg_line_chart,
    write_report,
)
from oremap.core.geochemistry.prospectivity_report import training_report

SVG = "{http://www.w3.org/2000/svg}"
ALTERATION = ["Advanced argillic alteration (strong)", "Advanced argillic alteration (moderate)",
              "Advanced argillic alteration (weak)", "Propylitic"]


def labels_of(ticks_and_step):
    ticks, step = ticks_and_step
    return [_tick_label(t, step) for t in ticks]


def group_texts(svg, css_class):
    """The texts of the ``<g class=css_class>`` group of an SVG, in order."""
    root = ET.fromstring(svg)
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == css_class)
    return [t.text for t in group.iter(f"{SVG}text")]


# --------------------------------------------------------------------------------------
# 1. Tick labels
# --------------------------------------------------------------------------------------
def test_tick_labels_of_northings_and_close_scores_differ_from_their_neighbours():
    """UTM northings 1000 m apart all read '6.3e+06', scores 5e-5 apart all '0.5' ('.3g' ignored the step)."""
    assert labels_of(nice_ticks(6301000, 6305000)) == ["6301000", "6302000", "6303000", "6304000", "6305000"]
    assert labels_of(nice_ticks(1234000, 1236000)) == ["1234000", "1234500", "1235000", "1235500", "1236000"]
    assert labels_of(nice_ticks(0.50001, 0.5003)) == ["0.50005", "0.5001", "0.50015", "0.5002", "0.50025",
                                                      "0.5003"]
    assert labels_of(nice_ticks(1.2345e9, 1.2349e9)) == ["1.2345e+09", "1.2346e+09", "1.2347e+09", "1.2348e+09",
                                                         "1.2349e+09"]
    assert labels_of(nice_ticks(1e-5, 3e-5)) == ["1e-05", "1.5e-05", "2e-05", "2.5e-05", "3e-05"]
    # Unchanged where they were right.
    assert labels_of(nice_ticks(0, 1)) == ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert labels_of(nice_ticks(400, 2500)) == ["500", "1000", "1500", "2000", "2500"]
    for lo, width in [(6.3e6, 4e3), (6.3e6, 37.0), (7.654321e6, 0.9), (4.1e8, 2e5), (0.5, 3e-4), (-2.5e6, 11.0),
                      (3.3e9, 7e4), (1e-7, 4e-12)]:
        labels = labels_of(nice_ticks(lo, lo + width))
        assert all(a != b for a, b in zip(labels, labels[1:])), (lo, width, labels)


def test_a_chart_of_northings_labels_every_tick_by_its_value():
    svg = svg_line_chart([("profile", [6318000, 6331000], [6301000, 6305000], None)], "Profile", "Easting",
                         "Northing")
    assert group_texts(svg, "x-ticks") == ["6318000", "6320000", "6322000", "6324000", "6326000", "6328000",
                                           "6330000"]
    assert group_texts(svg, "y-ticks") == ["6301000", "6302000", "6303000", "6304000", "6305000"]


# --------------------------------------------------------------------------------------
# 2. The prospectivity ResNet report with one scored fold
# --------------------------------------------------------------------------------------
def fake_result(cv, folds):
    """What training_report reads of a ProspectivityResult, for a 16 x 16 stack of 2 folds."""
    info = {"n_deposits": 3, "n_points": 3, "n_outside": 0, "n_on_nodata": 0, "n_mostly_nodata": 0,
            "n_shared_cells": 0, "n_negatives": 9, "min_distance": 500.0, "jitter_copies": 1, "jitter": 1,
            "n_folds": 2, "n_blocks": 4, "block_size": 2000.0, "block_cells": (8, 8)}
    points = SimpleNamespace(rows=np.array([3, 12]), cols=np.array([4, 9]))
    plan = SimpleNamespace(info=info, window=4, crop_pad=1, folds=[0, 1], block_shape=(8, 8),
                           block_fold=np.array([[0, 1], [1, 0]]), negatives=points, deposits=points,
                           final=SimpleNamespace(n_positive=6, n_negative=9))
    parameters = {"flips": True, "depth": 0, "width": 4, "mask_channel": False, "momentum": 0.9, "lr": 0.05,
                  "weight_decay": 1e-4, "batch_size": 32, "cv_epochs": 2, "patience": 0, "seed": 1}
    model_info = SimpleNamespace(band_names=["Au", "As"], training={"parameters": parameters, "date": "2026-12-07"},
                                 preprocessing={"mean": [1.0, 2.0], "sd": [0.5, 0.25]}, description="test")
    return SimpleNamespace(plan=plan, cv=cv, info=model_info, folds=folds, history={"train_loss": [0.7, 0.6]})


def fold(number, auc, skipped=False):
    return {"fold": number, "skipped": skipped, "n_train_positive": 2, "n_train_negative": 6, "n_val_positive": 1,
            "n_val_negative": 3, "buffered_deposits": 0,
            "metrics": {"auc": auc, "accuracy": 0.6, "balanced_accuracy": 0.5, "f1": 0.0},
            "history": {"train_loss": [0.7, 0.6], "val_loss": [0.8, 0.7]}}


def cv_note(html):
    return re.search(r'<p class="note">(AUC [^<]*)</p>', html).group(1)


def test_one_scored_fold_is_said_instead_of_plus_minus_nan():
    """t12_cnn_one_fold: 'AUC 0.750 +/- nan (mean +/- sample sd over the 1 scored folds ...)'."""
    cv = {"auc_per_fold": [0.75], "auc_mean": 0.75, "auc_sd": float("nan"), "n_folds_scored": 1,
          "n_deposits_validated": 1, "accuracy": 0.6, "balanced_accuracy": 0.5, "f1": 0.0,
          "confusion_matrix": [[3, 0], [1, 0]], "pooled_auc": 0.75}
    html = training_report(fake_result(cv, [fold(1, 0.75), fold(2, None, skipped=True)]), 16, 16, "stack.tif")
    assert cv_note(html).startswith("AUC 0.750 (one scored fold, no sd, validating 1 of 3 deposits); pooled over "
                                    "all validation windows: AUC 0.750, accuracy 0.600, F1 0.000 (deposit class")
    assert not re.search(r"\bnan\b", html)


def test_pooled_scores_that_are_not_finite_read_n_a_and_two_folds_keep_their_sd():
    cv = {"auc_per_fold": [0.8, 0.6], "auc_mean": 0.7, "auc_sd": float(np.std([0.8, 0.6], ddof=1)),
          "n_folds_scored": 2, "n_deposits_validated": 2, "accuracy": 0.5, "balanced_accuracy": 0.5,
          "f1": float("nan"), "confusion_matrix": [[3, 0], [1, 0]], "pooled_auc": float("nan")}
    html = training_report(fake_result(cv, [fold(1, 0.8), fold(2, 0.6)]), 16, 16, "stack.tif")
    assert cv_note(html).startswith("AUC 0.700 +/- 0.141 (mean +/- sample sd over the 2 scored folds, validating 2 "
                                    "of 3 deposits); pooled over all validation windows: AUC n/a, accuracy 0.500, "
                                    "F1 n/a (deposit class")
    assert not re.search(r"\bnan\b", html)


# --------------------------------------------------------------------------------------
# 3. Long class names sharing a start
# --------------------------------------------------------------------------------------
def test_class_names_sharing_a_long_start_keep_distinct_labels_in_plots():
    """All three 'Advanced argillic alteration (...)' classes read 'Advanced argillic alteratio…'."""
    cm = svg_confusion_matrix(np.eye(4) * 5, ALTERATION, "Alteration")
    expected = ["Advanced argillic a\u2026(strong)", "Advanced argillic\u2026(moderate)",
                "Advanced argillic alt\u2026(weak)", "Propylitic"]
    assert group_texts(cm, "row-labels") == expected
    assert group_texts(cm, "col-labels") == expected
    bars = svg_bar_chart(ALTERATION, [[0.9, 0.8, 0.7, 0.6]], ["F1"], "F1 per class", "F1", y_range=(0, 1))
    assert group_texts(bars, "x-labels") == ["Advanced argill\u2026(strong)", "Advanced argi\u2026(moderate)",
                                             "Advanced argillic\u2026(weak)", "Propylitic"]


def test_short_labels_number_what_start_and_end_cannot_tell_apart():
    names = ["Very long common start of the name, number one, end",
             "Very long common start of the name, number two, end",
             "Quartz sericite pyrite, sample A, as logged in core",
             "Quartz sericite pyrite, sample B, as logged in core",
             "Unique but also a long name for a class", "Short", "Short"]
    assert _short_labels(names, 20) == ["Very long c\u2026one, end", "Very long c\u2026two, end",
                                        "Quartz se\u2026in core #3", "Quartz se\u2026in core #4",
                                        "Unique but also a l\u2026", "Short", "Short"]
    assert all(len(label) <= 20 for label in _short_labels(names, 20))


# --------------------------------------------------------------------------------------
# 4. Characters XML forbids
# --------------------------------------------------------------------------------------
def test_control_characters_in_class_names_leave_the_svg_valid_xml():
    """A vertical tab in a class name (t20_control_chars): the confusion matrix SVG did not parse."""
    assert _esc("Kaolinite\x0bwell <&> \x00\x1f\ufffe\uffff\ud800 \t\n\r") == \
        "Kaolinite\ufffdwell &lt;&amp;&gt; \ufffd\ufffd\ufffd\ufffd\ufffd \t\n\r"
    svg = svg_confusion_matrix([[1, 0], [0, 1]], ["Kaolinite\x0bwell", "Alunite"], "Classes\x0c")
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "Classes\ufffd"
    assert group_texts(svg, "row-labels") == ["Kaolinite\ufffdwell", "Alunite"]


def test_a_report_with_a_lone_surrogate_is_written(tmp_path):
    path = str(tmp_path / "r.html")
    write_report(path, html_report("Spectra \ud800", [("x", report.paragraph("a\x08b"))]))
    text = open(path, encoding="utf-8").read()
    assert "<h1>Spectra \ufffd</h1>" in text and "<p>a\ufffdb</p>" in text
