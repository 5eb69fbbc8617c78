"""Reading sample points without keeping them (algorithms/survey_input.py: read_points, features_by_id), shared by
oremap:geochem_anomaly, oremap:vae_anomaly and oremap:element_selection.

read_points kept every QgsFeature with all its attributes (3.7 KB per sample of a 131-field compilation) to copy them
into the output, built a Python list of rows of Python floats, and told nothing while reading: 100,000 samples held
1.46 GB after 160 s without progress. Now the chosen fields go straight into one float array, only the feature ids are
kept, and the output reads the layer a second time (features_by_id)."""

import gc
import os
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA

SURVEY = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv")
SITES = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au_site.csv")


# -- the reader as it was (every feature kept, a list of rows): the reference the outputs must still equal ----------

def old_read_points(alg, source, context, crs, fields, feedback=None, share=None, say_over=True, over=None,
                    key_field=None, keys=None):
    """survey_input.read_points before the fix (features kept, rows of Python floats), returning the ids it would
    return now; :func:`old_features_by_id` gives back the features it kept."""
    from oremap.algorithms.base import assay_number, column_reader

    index = [source.fields().lookupField(f) for f in fields]
    features, xs, ys, gx, gy, rows = [], [], [], [], [], []
    flags = over   # the over-limit flags of each feature (read_points' argument since 0.2.20), when asked for
    over = dict.fromkeys(fields, 0)
    parse = column_reader(assay_number, source, fields)
    for feature, geometry in alg.source_features(source, context, crs, name="POINTS"):
        attributes = feature.attributes()
        rows.append([parse(attributes[i]) if i >= 0 else float("nan") for i in index])
        for f, i in zip(fields, index):
            if i >= 0 and isinstance(attributes[i], str) and attributes[i].strip().startswith(">"):
                over[f] += 1
        if flags is not None:
            flags.append([i >= 0 and isinstance(attributes[i], str) and attributes[i].strip().startswith(">")
                          for i in index])
        x = y = ox = oy = float("nan")
        if geometry is not None:
            point = next(iter(geometry.vertices()))
            x, y = point.x(), point.y()
            original = next(iter(feature.geometry().vertices()))
            ox, oy = original.x(), original.y()
        features.append(feature)
        if keys is not None:   # no sample id field in these runs (read_points' argument since 0.2.21)
            assert key_field is None
            keys.append(None)
        xs.append(x)
        ys.append(y)
        gx.append(ox)
        gy.append(oy)
    values = np.array(rows, dtype=float).reshape(len(rows), len(fields))
    over = {f: n for f, n in over.items() if n}
    if over and feedback is not None and say_over:
        feedback.info(f"{sum(over.values())} values over the laboratory's upper limit ('>x') are read as the limit, "
                      "a lower bound of the true value: " + ", ".join(f"{f} {n}" for f, n in over.items()) + ".")
    KEPT.update((f.id(), f) for f in features)
    return (np.array([f.id() for f in features], dtype=np.int64), np.array(xs), np.array(ys), np.array(gx),
            np.array(gy), values)


KEPT = {}


def old_features_by_id(source, ids, feedback=None, share=None):
    return (KEPT[int(i)] for i in ids)


@pytest.fixture
def old_reader(monkeypatch):
    from oremap.algorithms import geochem_anomaly, survey_input, vae_anomaly

    KEPT.clear()
    monkeypatch.setattr(survey_input, "read_points", old_read_points)   # every algorithm reads through read_survey
    for module in (geochem_anomaly, survey_input, vae_anomaly):
        monkeypatch.setattr(module, "features_by_id", old_features_by_id)
    yield
    KEPT.clear()


@pytest.fixture(scope="module")
def area1_half(tmp_path_factory):
    """Every second sample of the real area1 survey (696 samples, 123 columns, text columns of '<0.5' values), a
    few without a place, and the known sites."""
    import geopandas as gpd

    folder = tmp_path_factory.mktemp("area1_half")
    table = pd.read_csv(SURVEY, low_memory=False).iloc[::2].reset_index(drop=True)
    geometry = list(gpd.points_from_xy(table["X"], table["Y"]))
    for i in (3, 250):
        geometry[i] = None
    points = str(folder / "area1_half.gpkg")
    gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326").to_file(points, driver="GPKG")
    sites = pd.read_csv(SITES, usecols=["X", "Y", "SITE_CODE"])
    deposits = str(folder / "sites.gpkg")
    gpd.GeoDataFrame(sites[["SITE_CODE"]], geometry=gpd.points_from_xy(sites["X"], sites["Y"]),
                     crs="EPSG:4326").to_file(deposits, driver="GPKG")
    return points, deposits


def _features(path):
    """``[(geometry WKT, attributes)]`` of every feature of a vector file, in its order, and the field names."""
    from qgis.core import QgsVectorLayer
    from qgis.PyQt.QtCore import QVariant

    layer = QgsVectorLayer(path, "out", "ogr")
    assert layer.isValid()
    rows = [(f.geometry().asWkt(17), [None if isinstance(v, QVariant) and v.isNull() else v for v in f.attributes()])
            for f in layer.getFeatures()]
    return rows, [f.name() for f in layer.fields()]


def _same(new, old):
    rows_new, names_new = new
    rows_old, names_old = old
    assert names_new == names_old
    assert len(rows_new) == len(rows_old)
    for (g_new, a_new), (g_old, a_old) in zip(rows_new, rows_old):
        assert g_new == g_old
        assert len(a_new) == len(a_old)
        for v_new, v_old in zip(a_new, a_old):
            if isinstance(v_old, float) and np.isnan(v_old):
                assert isinstance(v_new, float) and np.isnan(v_new)
            else:
                assert v_new == v_old and type(v_new) is type(v_old)


def _runs(run_alg, name, params, tmp_path, request):
    """The algorithm's results and output rows with the reader as it is, then with the reader as it was."""
    new = run_alg(name, dict(params, OUTPUT=str(tmp_path / "new.gpkg")) if "OUTPUT" in params else params)
    request.getfixturevalue("old_reader")
    old = run_alg(name, dict(params, OUTPUT=str(tmp_path / "old.gpkg")) if "OUTPUT" in params else params)
    return new, old


def test_geochem_anomaly_output_is_what_it_was(run_alg, area1_half, tmp_path, request):
    points, deposits = area1_half
    params = {"POINTS": points, "DEPOSITS": deposits, "TARGET": 1, "OUTPUT": "", "SUPPORT": 2,
              "OUTPUT_HTML": str(tmp_path / "r.html")}
    new, old = _runs(run_alg, "geochem_anomaly", params, tmp_path, request)
    assert KEPT   # the old reader did run
    for key in ("AUC_MEAN", "AUC_SD", "N_SCORED", "ELEMENTS"):
        assert new[key] == old[key] or (np.isnan(new[key]) and np.isnan(old[key])), key
    rows, names = _features(new["OUTPUT"])
    assert len(rows) == 696 and names[-2:] == ["anomaly_score", "anomaly_class"]
    _same((rows, names), _features(old["OUTPUT"]))


@pytest.mark.parametrize("fields", [None, ["Au_ppm", "As_ppm", "Cu_ppm", "Zn_ppm"]], ids=["default", "chosen"])
def test_vae_anomaly_output_is_what_it_was(run_alg, area1_half, tmp_path, request, fields):
    """Default and chosen element fields (with chosen ones the algorithm's own read of the points is read_points
    now): the output as it was."""
    points, _ = area1_half
    params = {"POINTS": points, "EPOCHS": 2, "OUTPUT": "", "OUTPUT_HTML": str(tmp_path / "r.html"),
              "OUTPUT_MODEL": str(tmp_path / "m.onnx"), **({"FIELDS": fields} if fields else {})}
    new, old = _runs(run_alg, "vae_anomaly", params, tmp_path, request)
    assert KEPT
    assert new["N_SCORED"] == old["N_SCORED"] > 0
    _same(_features(new["OUTPUT"]), _features(old["OUTPUT"]))


def test_element_selection_is_what_it_was(run_alg, area1_half, tmp_path, request):
    points, deposits = area1_half
    params = {"POINTS": points, "DEPOSITS": deposits, "ALLOW_NONE": True,
              "OUTPUT_HTML": str(tmp_path / "r.html"), "OUTPUT_CSV": str(tmp_path / "new.csv")}
    new = run_alg("element_selection", params)
    table_new = open(new["OUTPUT_CSV"], encoding="utf-8-sig").read()
    request.getfixturevalue("old_reader")
    old = run_alg("element_selection", dict(params, OUTPUT_CSV=str(tmp_path / "old.csv")))
    assert KEPT
    assert new["SELECTED"] == old["SELECTED"] and new["N_SELECTED"] == old["N_SELECTED"]
    assert table_new == open(old["OUTPUT_CSV"], encoding="utf-8-sig").read()


# -- the reader on its own -------------------------------------------------------------------------------------------

def _write_survey(path, n, m, seed=0):
    """A CSV compilation of ``n`` samples (UTM metres) and ``m`` element fields, one of them text ('<0.5' values)
    and one with over-range values ('>1000')."""
    rng = np.random.default_rng(seed)
    x, y = 400000 + rng.uniform(0, 50000, n), 6000000 + rng.uniform(0, 50000, n)
    values = rng.lognormal(1, 1, (n, m)).round(3)
    with open(path, "w") as f:
        f.write("SAMPLEID,X,Y," + ",".join(f"E{k}_ppm" for k in range(m)) + "\n")
        for i in range(n):
            row = [f"{v:g}" for v in values[i]]
            if i % 7 == 0:
                row[0] = "<0.5"
            if i % 11 == 0:
                row[1] = ">1000"
            f.write(f"S{i},{x[i]:.2f},{y[i]:.2f}," + ",".join(row) + "\n")
    return values


def _source(path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeatureSource, QgsProject, QgsVectorLayer

    layer = QgsVectorLayer(f"file://{path}?delimiter=,&xField=X&yField=Y&crs=EPSG:32750&detectTypes=yes", "survey",
                           "delimitedtext")
    assert layer.isValid()
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return layer, QgsProcessingFeatureSource(layer, context), context


def _algorithm():
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().createAlgorithmById("oremap:geochem_anomaly")


def _qgs_features():
    from qgis.core import QgsFeature

    return sum(1 for o in gc.get_objects() if type(o) is QgsFeature)


#: tracemalloc peak (Python and numpy allocations; a QgsFeature's attributes live in C++, unseen) of read_points on
#: the 20,000 x 102-field survey below: the values alone are 15.6 MB. Measured: 87.6 MB before (a list of 20,000
#: rows of Python floats, then the array), 17.1 MB now.
PEAK_BOUND_MB = 30


def test_the_reader_keeps_ids_not_features_and_little_memory(processing_provider, tmp_path):
    from oremap.algorithms import survey_input as si

    path = str(tmp_path / "survey20k.csv")
    n, m = 20000, 100
    planted = _write_survey(path, n, m)
    layer, source, context = _source(path)
    fields = si.numeric_fields(source)
    assert len(fields) == m + 2   # X and Y are numeric fields too (read_points reads what it is given)
    alg = _algorithm()
    gc.collect()
    before = _qgs_features()
    tracemalloc.start()
    try:
        ids, xs, ys, gx, gy, values = si.read_points(alg, source, context, layer.crs(), fields)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()
    assert _qgs_features() == before   # no feature held (the old reader: 20,000 more)
    assert isinstance(ids, np.ndarray) and ids.dtype == np.int64
    assert ids.tolist() == [f.id() for f in layer.getFeatures()]
    assert values.shape == (n, m + 2) and values.dtype == float
    assert peak < PEAK_BOUND_MB, f"tracemalloc peak {peak:.1f} MB"
    # the values as read before: '<0.5' is minus the limit, '>1000' the limit, the rest the numbers
    expected = planted.copy()
    expected[::7, 0] = -0.5
    expected[::11, 1] = 1000.0
    np.testing.assert_array_equal(values[:, 2:], expected)
    np.testing.assert_array_equal(values[:, 0], xs)
    np.testing.assert_array_equal(gy, ys)


class _Recorder:
    """A core feedback that records progress and cancels once progress has passed ``cancel_at``."""

    def __init__(self, cancel_at=None):
        from oremap.core.engine.feedback import Feedback

        self.feedback = type("F", (Feedback,), {
            "progress": lambda _, p: self.progress.append(p),
            "is_canceled": lambda _: self.cancel_at is not None and any(p > self.cancel_at for p in self.progress),
            "info": lambda _, m: self.infos.append(m)})()
        self.progress, self.infos, self.cancel_at = [], [], cancel_at


def test_the_read_reports_progress_within_its_share_and_can_be_cancelled(processing_provider, tmp_path):
    from oremap.algorithms import survey_input as si
    from oremap.core.engine.errors import Cancelled

    path = str(tmp_path / "survey.csv")
    _write_survey(path, 3000, 5)
    layer, source, context = _source(path)
    fields = ["E0_ppm", "E1_ppm", "E2_ppm"]
    record = _Recorder()
    ids = si.read_points(_algorithm(), source, context, layer.crs(), fields, record.feedback, share=(0.0, 20.0))[0]
    assert len(ids) == 3000
    steps = record.progress
    assert len(steps) >= 10 and steps == sorted(steps) and steps[0] == 0.0 and steps[-1] == 20.0
    assert any(0 < p < 20 for p in steps)
    assert any("over the laboratory's upper limit" in line for line in record.infos)

    record = _Recorder(cancel_at=5.0)
    with pytest.raises(Cancelled):
        si.read_points(_algorithm(), source, context, layer.crs(), fields, record.feedback, share=(0.0, 20.0))
    assert max(record.progress) < 10.0   # stopped soon after the cancel, not at the end of the read


def test_a_cancel_while_reading_stops_the_algorithm(processing_provider, tmp_path, monkeypatch):
    """Through processing.run: a cancel while the points are read ends the run there (the scores never start)."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    from oremap.core.geochemistry import geochem_anomaly as ga

    def scores_started(*args, **kwargs):
        raise AssertionError("the read was not stopped: the scores started")

    monkeypatch.setattr(ga, "run_points", scores_started)

    path = str(tmp_path / "survey.csv")
    _write_survey(path, 3000, 5)
    layer, _, _ = _source(path)

    class Cancelling(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def setProgress(self, value):  # noqa: N802 (QGIS API)
            self.seen.append(float(value))
            super().setProgress(value)
            if 0 < value < 20:
                self.cancel()

    feedback = Cancelling()
    with pytest.raises(QgsProcessingException):
        processing.run("oremap:geochem_anomaly", {"POINTS": layer, "OUTPUT": str(tmp_path / "s.gpkg")},
                       feedback=feedback)
    assert feedback.isCanceled() and any(0 < p < 20 for p in feedback.seen) and max(feedback.seen) < 20


class _Shuffled:
    """A feature source that gives its features in another order the second time (a provider without a stable
    order): features_by_id still gives them in the order of the ids, each by its id."""

    def __init__(self, source):
        self._source, self._reads = source, 0

    def getFeatures(self, request=None):  # noqa: N802 (QGIS API)
        if request is not None:
            return self._source.getFeatures(request)
        self._reads += 1
        features = list(self._source.getFeatures())
        return iter(features if self._reads == 1 else features[::-1])


def test_features_come_back_in_the_order_read_whatever_order_the_source_gives(processing_provider, tmp_path):
    from oremap.algorithms import survey_input as si

    path = str(tmp_path / "survey.csv")
    _write_survey(path, 50, 3)
    layer, source, _ = _source(path)
    ids = np.array([f.id() for f in source.getFeatures()], dtype=np.int64)
    assert [f.id() for f in si.features_by_id(source, ids)] == ids.tolist()
    shuffled = _Shuffled(source)
    assert [f.id() for f in si.features_by_id(shuffled, ids)] == ids.tolist()   # first read: in order
    assert [f["SAMPLEID"] for f in si.features_by_id(shuffled, ids)] == [f"S{i}" for i in range(50)]
    assert [f.id() for f in si.features_by_id(source, ids[[5, 2, 9]])] == ids[[5, 2, 9]].tolist()
