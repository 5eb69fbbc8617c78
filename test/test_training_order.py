"""The same data and seed give the same model whatever the order the data come in (since 0.2.17).

Audit of 2026-12-07: spectral libraries given as [a, b] or [b, a] held out 6 or 7 spectra (validation accuracy
0.833 against 1.000, 34 of 200 pixels of another class); the same 24 labelled points in reverse order scored 0.833
against 0.500; ROIs in reverse order gave the same abundances but other intervals (up to 3.9 points) and members
(up to 8 points). Library spectra are now put in one canonical order, image pixels come in raster order with the
features in a canonical order, and abundance folds follow the order of the pixels, not the ids of the ROIs.
"""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from conftest import AVIRIS_NG, DATA, USGS_LIBRARY, core_warnings
from oremap.core.engine.wavelengths import BandInfo, band_info_from_raster
from oremap.core.hyperspectral import spectral_cnn, training

TRAIN_LIBRARY = f"{DATA}/usgs_train.sli"

TINY = {"epochs": 2, "batch_size": 64, "patience": 5, "seed": 7, "augment_options": {"n_per_spectrum": 3},
        "network_options": {"channels": (4, 4, 4), "hidden": 8}}


def _same_set(a, b):
    assert a.X.tobytes() == b.X.tobytes()
    assert a.y.tolist() == b.y.tolist() and a.groups.tolist() == b.groups.tolist()
    assert a.class_names == b.class_names and a.sample_names == b.sample_names


def test_libraries_in_either_order_give_the_same_training_set_split_and_model():
    target = band_info_from_raster(AVIRIS_NG)
    ab = training.library_training_set([TRAIN_LIBRARY, USGS_LIBRARY], target)
    ba = training.library_training_set([USGS_LIBRARY, TRAIN_LIBRARY], target)
    _same_set(ab, ba)
    # the canonical order: by class, then physical sample, then name. The two libraries share 'Kaolinite CM9',
    # 'Alunite GDS84', 'Muscovite GDS107' and 'Calcite WS272', the same measurements: each is trained on once (47
    # spectra before 0.2.20, the four twice)
    said = core_warnings()
    _same_set(training.library_training_set([TRAIN_LIBRARY, USGS_LIBRARY], target, feedback=said), ab)
    assert "4 spectra repeat another exactly (same name, class and values: a library given twice, or a spectrum " \
           "listed twice); each is trained on once." in said.warnings
    assert ab.X.shape[0] == 43 and ab.sample_names[:5] == ["Alunite AL706 Na100 BECKb AREF",
                                                           "Alunite GDS82 Na82 BECKb AREF",
                                                           "Alunite GDS83 Na63 BECKb AREF",
                                                           "Alunite GDS84 Na03 BECKa AREF",
                                                           "Buddingtonite GDS85 D-206 BECKb AREF"]
    assert ab.sample_names.count("Kaolinite CM9") <= 1 and ab.groups[:5].tolist() == [0, 1, 2, 3, 4]
    # one library given twice is that library once
    _same_set(training.library_training_set([USGS_LIBRARY, USGS_LIBRARY], target),
              training.library_training_set([USGS_LIBRARY], target))
    assert ab.groups.tolist() == sorted(ab.groups.tolist())   # numbered in that order
    # the split the audit saw differ (6 against 7 held-out spectra), and the model, byte for byte
    val = spectral_cnn.grouped_split(ab.y, ab.groups, 0.25, seed=7)[1]
    assert val.tolist() == spectral_cnn.grouped_split(ba.y, ba.groups, 0.25, seed=7)[1].tolist()
    models = [spectral_cnn.train_classifier(d.X, d.y, d.class_names, groups=d.groups, wavelengths=d.band_info.centers,
                                            **TINY) for d in (ab, ba)]
    assert models[0].val_indices.tolist() == models[1].val_indices.tolist() == val.tolist()
    assert models[0].onnx_bytes == models[1].onnx_bytes


def _csv_library(path, wavelengths, spectra):
    with open(path, "w") as fh:
        fh.write("wavelength_nm," + ",".join(spectra) + "\n")
        for i, wl in enumerate(wavelengths):
            fh.write(f"{wl}," + ",".join(f"{v[i]:.6f}" for v in spectra.values()) + "\n")
    return str(path)


def _two_libraries(tmp_path, second):
    """``(a, b, target)``: CSV library 'a' (Kaolinite CM9 and Calcite WS272, one absorption at 2200 nm), library 'b'
    holding ``second(band)`` (names to spectra), and the 20 nm grid the tests train on."""
    wl = np.arange(400.0, 2501.0, 10.0)
    band = 0.5 - 0.2 * np.exp(-0.5 * ((wl - 2200.0) / 20.0) ** 2)
    a = _csv_library(tmp_path / "a.csv", wl, {"Kaolinite CM9 BECKb AREF": band, "Calcite WS272 BECKa AREF": band * 0.7})
    b = _csv_library(tmp_path / "b.csv", wl, second(band))
    return a, b, BandInfo(centers=np.arange(400.0, 2501.0, 20.0), fwhm=None, bad=None)


def test_a_class_spelt_two_ways_once_each_takes_one_spelling_whatever_the_order(tmp_path):
    """'Kaolinite' in one library and 'kaolinite' in the other, once each: the class was named after whichever
    library came first."""
    a, b, target = _two_libraries(tmp_path, lambda band: {"kaolinite KGa-1 BECKb AREF": band * 0.9,
                                                          "Calcite CO2004 BECKb AREF": band * 0.6})
    ab, ba = (training.library_training_set(paths, target) for paths in ([a, b], [b, a]))
    _same_set(ab, ba)
    assert ab.class_names == ["Calcite", "Kaolinite"] and ab.y.tolist() == [0, 0, 1, 1]
    assert ab.sample_names == ["Calcite CO2004 BECKb AREF", "Calcite WS272 BECKa AREF", "Kaolinite CM9 BECKb AREF",
                               "kaolinite KGa-1 BECKb AREF"]


def test_only_exact_copies_of_a_spectrum_are_trained_on_once(tmp_path):
    """A copy is a spectrum with the same name, class and values: a remeasurement under the same name (values 1 %
    apart) and one measurement under two names are spectra of their own."""
    a, b, target = _two_libraries(tmp_path, lambda band: {"Kaolinite CM9 BECKb AREF": band * 1.01,
                                                          "Calcite CO2004 BECKb AREF": band * 0.7})
    said = core_warnings()
    both = training.library_training_set([a, b], target, feedback=said)
    assert both.X.shape[0] == 4 and not any("repeat another exactly" in w for w in said.warnings)
    said = core_warnings()
    twice = training.library_training_set([a, a, b], target, feedback=said)
    _same_set(twice, both)
    assert "2 spectra repeat another exactly" in " ".join(said.warnings)


def test_outlier_spectra_in_either_order(tmp_path):
    wl = np.arange(2000.0, 2401.0, 10.0)

    def band(centre, depth):
        return 0.5 - depth * np.exp(-0.5 * ((wl - centre) / 20.0) ** 2)

    a = _csv_library(tmp_path / "a.csv", wl, {"Garnet g1": band(2200, 0.15), "Dolomite d1": band(2320, 0.2)})
    b = _csv_library(tmp_path / "b.csv", wl, {"Garnet g2": band(2210, 0.12), "Talc t1": band(2310, 0.18)})
    data = training.TrainingSet(X=np.ones((2, wl.size)), y=np.array([0, 1]), groups=np.array([0, 1]),
                                class_names=["Kaolinite", "Alunite"],
                                band_info=BandInfo(centers=wl, fwhm=None, bad=None))
    ab, ba = (training.outlier_set(paths, data) for paths in ([a, b], [b, a]))
    _same_set(ab, ba)
    assert ab.sample_names == ["Dolomite d1", "Garnet g1", "Garnet g2", "Talc t1"]
    assert ab.class_names == ["Dolomite", "Garnet", "Talc"] and ab.groups.tolist() == [0, 1, 1, 2]


# ---------------------------------------------------------------------------
# Labelled image pixels
# ---------------------------------------------------------------------------
def _cube(path, rows=10, cols=12, bands=16, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.1, 0.6, (bands, rows, cols)).astype(np.float32)
    values[:, :, cols // 2:] *= np.linspace(0.6, 1.4, bands, dtype=np.float32)[:, None, None]  # two 'minerals'
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=bands, dtype="float32",
                       crs="EPSG:32612", transform=from_origin(500000.0, 4000000.0, 1.0, 1.0)) as ds:
        ds.write(values)
    return path


def _features():
    """24 points, 12 per class, two of them in one pixel (same class), one polygon, and a point of each class in
    one pixel (left out); their samples: pairs of points."""
    from shapely.geometry import Point, box

    x0, y0 = 500000.0, 4000000.0
    geometries, labels = [], []
    for k in range(12):
        for label, c0 in (("dark", 0), ("bright", 6)):
            r, c = k % 10, c0 + k // 10 * 2 + (k % 3)
            geometries.append(Point(x0 + c + 0.5, y0 - r - 0.5))
            labels.append(label)
    geometries.append(Point(x0 + 0.3, y0 - 0.3))      # pixel (0, 0) again, 'dark': used once
    labels.append("dark")
    geometries.append(box(x0 + 9.2, y0 - 9.8, x0 + 11.8, y0 - 8.2))   # 'bright' polygon: pixels (8-9, 9-11)
    labels.append("bright")
    geometries += [Point(x0 + 5.5, y0 - 9.5), Point(x0 + 5.5, y0 - 9.5)]   # one pixel, two classes: left out
    labels += ["dark", "bright"]
    samples = [f"S{i // 2}" for i in range(len(geometries))]
    return geometries, labels, samples


def test_labelled_pixels_in_either_order_give_the_same_training_set_and_model(tmp_path):
    from conftest import core_warnings
    from oremap.core.engine.raster import RasterSource

    path = _cube(str(tmp_path / "cube.tif"))
    geometries, labels, samples = _features()
    n = len(geometries)
    sets, logs = [], []
    for order in (np.arange(n), np.arange(n)[::-1]):
        log = core_warnings()
        with RasterSource(path) as src:
            data = training.image_training_set(src, [geometries[i] for i in order], [labels[i] for i in order],
                                               feedback=log, names=[f"f{i}" for i in order])
        sets.append((data, order))
        logs.append(log.warnings)
    (fwd, _), (rev, order) = sets
    _same_set(fwd, rev)
    assert fwd.X.shape[0] == 24 + 6   # 24 points, the polygon's 6 pixels; the repeated and the ambiguous pixels not
    assert fwd.class_names == ["bright", "dark"] and fwd.y.tolist().count(1) == 12
    # 'features' indexes the features as given: each pixel's feature is the same one in both orders
    assert order[rev.features].tolist() == fwd.features.tolist()
    # the pixel of two 'dark' points is the first's in the canonical order (by label, then place), in both orders
    assert sorted({0, 24} & set(fwd.features.tolist())) == [fwd.features[0]]
    assert logs[0] == logs[1] == ["1 pixel lies in features of different classes and was left out (their class is "
                                  "ambiguous): f27 and f26 (1 pixel). Make the features disjoint to keep them.",
                                  "2 of the features lost every pixel to overlaps and were left out: f27, f26."]
    # groups by sample field: the same numbers whatever the order
    assert training.sample_groups(fwd, samples).tolist() == \
        training.sample_groups(rev, [samples[i] for i in order]).tolist()
    grouped = training.sample_groups(fwd, samples)
    assert all(len({samples[f] for f in fwd.features[grouped == g]}) == 1 for g in np.unique(grouped))
    # the split and the model, byte for byte
    models = [spectral_cnn.train_classifier(d.X, d.y, d.class_names, groups=d.groups, preprocessing="none", **TINY)
              for d in (fwd, rev)]
    assert models[0].val_indices.tolist() == models[1].val_indices.tolist()
    assert models[0].onnx_bytes == models[1].onnx_bytes


def test_labelled_pixels_whose_coordinates_moved_in_their_last_bits_give_the_same_split(tmp_path):
    """Training polygons saved in EPSG:4326 and brought back to the raster's CRS differ in the last bits of their
    coordinates: the features were sorted by little-endian WKB bytes (those bits first), so the groups were
    numbered otherwise and the seeded split held other pixels out (validation accuracy 0.667 against 0.833, 20 of
    100 map pixels changed). The groups now follow the pixels' raster order."""
    from shapely import affinity

    from oremap.core.engine.raster import RasterSource

    path = _cube(str(tmp_path / "cube.tif"))
    geometries, labels, _ = _features()
    nudged = [affinity.translate(g, 1e-9 * ((i * 7919) % 5 - 2), 1e-9 * ((i * 104729) % 3 - 1))
              for i, g in enumerate(geometries)]
    sets = []
    for given in (geometries, nudged):
        with RasterSource(path) as src:
            sets.append(training.image_training_set(src, given, labels))
    _same_set(*sets)
    assert sets[0].groups.tolist() == sets[1].groups.tolist() and sets[0].features.tolist() == sets[1].features.tolist()
    # numbered as they first appear in raster order
    _, first = np.unique(sets[0].groups, return_index=True)
    assert np.all(np.diff(first) > 0)
    # and for pairs of features whose order the old WKB key decided by a last bit
    points = [affinity.translate(geometries[0], 100.0), geometries[0]]
    moved = [affinity.translate(points[0], 1e-9), points[1]]
    assert training.feature_order(points, ["a", "a"]).tolist() == training.feature_order(moved, ["a", "a"]).tolist()


def test_training_points_in_reverse_order_train_the_same_model(run_alg, tmp_path):
    """oremap:train_spectral_cnn from a points layer and from the same points in reverse order."""
    import geopandas as gpd

    from oremap.core.engine.model_format import OnnxModel

    path = _cube(str(tmp_path / "cube.tif"))
    geometries, labels, _ = _features()
    layer = gpd.GeoDataFrame({"mineral": labels[:24]}, geometry=geometries[:24], crs="EPSG:32612")
    results = []
    for name, frame in (("fwd", layer), ("rev", layer.iloc[::-1].reset_index(drop=True))):
        frame.to_file(str(tmp_path / f"{name}.gpkg"), driver="GPKG")
        results.append(run_alg("train_spectral_cnn", {
            "INPUT": path, "TRAINING": str(tmp_path / f"{name}.gpkg"), "CLASS_FIELD": "mineral", "EPOCHS": 3,
            "SEED": 3, "OUTPUT_MODEL": str(tmp_path / f"{name}.onnx")}))
    assert results[0]["VALIDATION_ACCURACY"] == results[1]["VALIDATION_ACCURACY"]
    assert results[0]["KAPPA"] == results[1]["KAPPA"]
    with rasterio.open(path) as ds:
        cube = ds.read().reshape(ds.count, -1).T.astype(np.float64)
    probs = [spectral_cnn.predict_proba(OnnxModel(r["OUTPUT_MODEL"]), cube) for r in results]
    assert np.array_equal(probs[0], probs[1])


# ---------------------------------------------------------------------------
# Abundance
# ---------------------------------------------------------------------------
def test_rois_in_reverse_order_give_the_same_abundance_model(run_alg, tmp_path):
    """oremap:train_abundance_model: ROIs in reverse order gave other intervals (7,708 of 8,840 interval values,
    up to 3.86 points) and members (up to 8 points). Two ROIs are pure kaolinite: their groups were numbered in
    the layer's order, and with seed 4 the folds dealt them differ (with seed 3 they share a fold)."""
    import geopandas as gpd

    from abundance_scene import LISTED, make_scene, roi_pixels
    from oremap.core.abundance.abundance_map import AbundanceModel

    scene = make_scene(str(tmp_path), n_rows=3, n_cols=4, roi_size=3, seed=2)
    rois = gpd.read_file(scene["rois"])
    for i in (1, 6):
        rois.loc[i, [m.lower() for m in LISTED]] = [100.0, 0.0, 0.0, 0.0]
    outputs = []
    for name, frame in (("fwd", rois), ("rev", rois.iloc[::-1].reset_index(drop=True))):
        frame.to_file(str(tmp_path / f"{name}.gpkg"), driver="GPKG")
        outputs.append(run_alg("train_abundance_model", {
            "INPUT": scene["raster"], "ROIS": str(tmp_path / f"{name}.gpkg"), "FIELDS": [m.lower() for m in LISTED],
            "FAMILIES": [0, 1, 2], "FOLDS": 3, "SEED": 4, "OUTPUT_MODEL": str(tmp_path / f"{name}.onnx")}))
    for key in ("ENSEMBLE_RMSE", "BEST_SINGLE_RMSE", "UNMIXING_RMSE", "COVERAGE"):
        assert outputs[0][key] == outputs[1][key], key
    models = [AbundanceModel(out["OUTPUT_MODEL"]) for out in outputs]
    centres = band_info_from_raster(scene["raster"]).centers   # the model's bands: the raster's good ones
    X = roi_pixels(scene)[0][:, np.isin(np.round(centres, 6), np.round(models[0].info.wavelengths, 6))]
    assert models[0].info.training["data_hash"] == models[1].info.training["data_hash"]
    fwd, rev = (m.predict(X, 0.9, members=True) for m in models)
    for a, b in zip(fwd, rev):   # abundances, lower and upper bounds, members: bit for bit
        assert np.array_equal(a, b)


def test_roi_folds_follow_the_order_of_the_pixels_not_the_ids():
    from oremap.core.abundance.abundance import roi_folds

    groups = np.array([5, 5, 2, 2, 9, 0, 0, 7])
    relabelled = np.array([1, 1, 3, 3, 0, 8, 8, 2])   # the same partition, other ids
    folds, k = roi_folds(groups, 3, seed=4)
    assert k == 3 and folds.tolist() == roi_folds(relabelled, 3, seed=4)[0].tolist()
    assert all(len(set(folds[groups == g])) == 1 for g in np.unique(groups))
    # ids that appear in increasing order are dealt as before 0.2.17
    rising = np.array([0, 0, 1, 1, 2, 3, 3, 4])
    expected = np.empty(5, np.int64)
    expected[np.random.default_rng(4).permutation(5)] = np.arange(5) % 3
    assert roi_folds(rising, 3, seed=4)[0].tolist() == expected[rising].tolist()


def test_a_sample_field_groups_whole_samples_in_either_order(run_alg, tmp_path, monkeypatch):
    """oremap:train_spectral_cnn with GROUP_FIELD: the groups trained on are whole samples (pixels of points of one
    sample value), numbered alike whatever the layer's order. ``groups`` number the features in their canonical
    order; the algorithm groups by the sample field through ``features`` (:func:`training.sample_groups`)."""
    import geopandas as gpd

    from oremap.core.hyperspectral import cnn_training

    seen = []
    original = cnn_training.train_and_report

    def spy(data, *args, **kwargs):
        seen.append((data.groups.copy(), data.features.copy()))
        return original(data, *args, **kwargs)

    monkeypatch.setattr(cnn_training, "train_and_report", spy)
    path = _cube(str(tmp_path / "cube.tif"))
    geometries, labels, _ = _features()
    samples = [f"{label}{i // 4}" for i, label in enumerate(labels[:24])]   # two points of a class per sample
    layer = gpd.GeoDataFrame({"mineral": labels[:24], "sample": samples}, geometry=geometries[:24], crs="EPSG:32612")
    for name, frame in (("fwd", layer), ("rev", layer.iloc[::-1].reset_index(drop=True))):
        frame.to_file(str(tmp_path / f"{name}.gpkg"), driver="GPKG")
        run_alg("train_spectral_cnn", {"INPUT": path, "TRAINING": str(tmp_path / f"{name}.gpkg"),
                                       "CLASS_FIELD": "mineral", "GROUP_FIELD": "sample", "EPOCHS": 1, "SEED": 3,
                                       "OUTPUT_MODEL": str(tmp_path / f"{name}.onnx")})
        groups, features = seen[-1]
        given = frame["sample"].tolist()
        assert groups.max() + 1 == 12 and all(len({given[f] for f in features[groups == g]}) == 1
                                              for g in range(12)), name
    assert seen[0][0].tolist() == seen[1][0].tolist()
