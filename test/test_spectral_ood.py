"""The spectral CNN abstains on spectra unlike its training data and keeps its class under brightness scaling.

A small model is trained on real USGS spectra of six minerals (test/data/usgs_train.sli), resampled to the
AVIRIS-NG tile's good bands; it is then shown real library spectra of minerals it never saw
(test/data/usgs_minerals.sli) and scaled copies of the spectra of its own minerals.
"""

import os

import numpy as np
import pytest

from conftest import AVIRIS_NG, DATA, USGS_LIBRARY
from oremap.core.engine.model_format import OnnxModel
from oremap.core.hyperspectral import cnn_training, mapping, ood, spectral_cnn, training
from oremap.core.hyperspectral.spectral_library import read_library

TRAINED = ["Alunite", "Calcite", "Goethite", "Kaolinite", "Montmorillonite", "Muscovite"]
UNSEEN = ["Jarosite GDS99 K 200C Syn BECKa AREF", "Gypsum SU2202 BECKa AREF", "Buddingtonite GDS85 D-206 BECKb AREF",
          "Chlorite SMR-13.a 104-150um BECKa AREF", "Epidote GDS26.a 75-200um BECKb AREF",
          "Hematite GDS27 BECKa AREF", "Lawn_Grass GDS91 green BECKa AREF", "Grass_Golden_Dry GDS480 ASDFRa AREF",
          "Opal TM8896 (Hyalite) BECKa AREF", "Pyrophyllite PYS1A <850um BECKa AREF"]


def train_fixture_model(folder, **options):
    """The small model of these tests (six minerals of the test library at the tile's bands), with ``options`` of
    train_and_report on top: ``(OnnxModel, summary)``."""
    path = str(folder / "model.onnx")
    target = mapping.image_band_info(AVIRIS_NG)
    data = training.library_training_set([os.path.join(DATA, "usgs_train.sli")], target)
    summary = cnn_training.train_and_report(data, path, None, preprocessing="continuum_removal", augment_copies=40,
                                            snr=100, epochs=30, patience=8, seed=3, **options)
    return OnnxModel(path), summary


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train_fixture_model(tmp_path_factory.mktemp("ood"))


def library_at_model_bands(lib, info):
    from oremap.core.engine.wavelengths import BandInfo

    return lib.resample(BandInfo(centers=info.wavelengths, fwhm=info.fwhm)).spectra


def test_model_card_holds_prototypes_and_thresholds(model):
    onnx, summary = model
    ood = onnx.info.training["ood"]
    assert onnx.info.class_names == TRAINED
    assert ood["calibration"] == "held-out groups" and ood["quantile"] == 0.99
    wl = np.asarray(onnx.info.wavelengths)
    assert [v["view"] for v in ood["views"]] == ["preprocessed", "swir_depth"]
    widths = [onnx.info.n_bands, int((wl >= 1900).sum())]
    for view, width in zip(ood["views"], widths):
        # one exemplar per physical sample (23 in the library: 3 of calcite, 4 of each other mineral)
        assert np.asarray(view["exemplars"]).shape == (23, width)
        assert np.bincount(view["exemplar_class"]).tolist() == [4, 3, 4, 4, 4, 4]
        assert len(view["max_angle"]) == 6 and all(0 < a < 1.0 for a in view["max_angle"])
    metrics = onnx.info.training["metrics"]
    # held-out samples of trained minerals (augmented) are seldom rejected, and those kept are classified well;
    # so are the held-out library spectra themselves
    assert metrics["val_out_of_distribution"] <= 0.2
    assert metrics["val_source_out_of_distribution"] <= 0.2
    assert metrics["val_accuracy_in_distribution"] >= metrics["val_accuracy"]
    assert onnx.info.training["parameters"]["refit"] is True


def test_unseen_minerals_are_left_unclassified_or_low_confidence(model):
    onnx, _ = model
    lib = read_library(USGS_LIBRARY).subset(UNSEEN)
    X = library_at_model_bands(lib, onnx.info)
    finite = np.isfinite(X).all(axis=1)
    assert finite.sum() == 9  # the ASD grass spectrum stops short of the model's last bands
    probs, angle = spectral_cnn.predict_proba(onnx, X[finite], with_angle=True)
    far = ood.out_of_distribution(onnx.info, angle, probs.argmax(axis=1))
    confident_and_kept = ~far & (probs.max(axis=1) >= 0.9)
    report = dict(zip(np.array(UNSEEN)[finite], np.round(angle, 3)))
    assert far.sum() >= 7, report  # without the check every one of them gets a trained mineral's class
    assert confident_and_kept.sum() <= 2, report


def test_scaled_copies_of_trained_minerals_keep_their_class(model):
    """x10000 (integer reflectance), x0.3 (shade) and x80 (radiance-like) copies: same class, still accepted."""
    onnx, _ = model
    lib = read_library(os.path.join(DATA, "usgs_train.sli"))
    X = library_at_model_bands(lib, onnx.info)
    finite = np.isfinite(X).all(axis=1)
    X = X[finite]
    probs, angle = spectral_cnn.predict_proba(onnx, X, with_angle=True)
    base = probs.argmax(axis=1)
    truth = np.array([TRAINED.index(training.class_from_name(n)) for n, ok in zip(lib.names, finite) if ok])
    assert (base == truth).mean() >= 0.9
    assert not ood.out_of_distribution(onnx.info, angle, base)[base == truth].any()
    for factor in (1e4, 0.3, 80.0):
        p, a = spectral_cnn.predict_proba(onnx, X * factor, with_angle=True)
        assert np.array_equal(p.argmax(axis=1), base)
        np.testing.assert_allclose(a, angle, atol=1e-4)


def test_thresholds_need_spread_to_calibrate_on():
    """Without held-out data (:func:`ood.fit`): single training pixels (each its own exemplar, no augmentation)
    give zero angles, so the check is off for them instead of rejecting every pixel; otherwise a class's
    threshold is the margin times the quantile of its training spectra's angles, and a class with too few
    spectra takes the pooled threshold."""
    from types import SimpleNamespace

    from oremap.core.hyperspectral import ood

    wl = np.linspace(400, 2500, 20)
    rng = np.random.default_rng(0)
    P = rng.uniform(0.2, 0.8, size=(6, 20))
    y = np.array([0, 0, 1, 1, 2, 2])
    exemplars = {"preprocessed": ood.ood_exemplars(P, y, np.arange(6), 3)}
    check = ood.fit((P, P, y), None, exemplars, 3, wl, "none")
    assert check["calibration"] == "augmented training spectra"
    assert all(np.isnan(check["views"][0]["max_angle"]))
    info = SimpleNamespace(training={"ood": check})
    assert not ood.out_of_distribution(info, np.array([0.0, 0.3, 1.2]), np.array([0, 1, 2])).any()

    # class 0: 40 noisy copies of one spectrum; class 1: 3 copies (too few): it takes the pooled threshold
    base = rng.uniform(0.2, 0.8, size=(2, 20))
    P = np.vstack([base[0] + rng.normal(0, 0.01, (40, 20)), base[1] + rng.normal(0, 0.01, (3, 20))])
    y = np.array([0] * 40 + [1] * 3)
    exemplars = {"preprocessed": ood.ood_exemplars(P, y, np.array([0] * 40 + [1] * 3), 2)}
    check = ood.fit((P, P, y), None, exemplars, 2, wl, "none")
    E, owner = exemplars["preprocessed"]
    angles = ood.prototype_angle(P, y, np.round(E, 6), owner)   # the exemplars as the model stores them
    limits = check["views"][0]["max_angle"]
    assert limits[0] == pytest.approx(ood.OOD_MARGIN * np.quantile(angles[:40], ood.QUANTILE))
    assert limits[1] == pytest.approx(ood.OOD_MARGIN * np.quantile(angles, ood.QUANTILE))


def test_thresholds_from_held_out_groups():
    """Known answers for the held-out calibration: a class's threshold is the 0.99 quantile of its held-out
    spectra's angles to the exemplars of its training groups; a class with too few held-out spectra takes its
    spread on the training spectra times the pooled quantile of held-out angles in units of that spread."""
    from types import SimpleNamespace

    from oremap.core.hyperspectral import ood

    wl = np.linspace(1000, 2400, 15)
    # two classes; each training group is one unit spectrum, each held-out spectrum lies at a known angle from it
    e0, e1 = np.eye(15)[0] + 1.0, np.eye(15)[5] + 1.0
    e0, e1 = e0 / np.linalg.norm(e0), e1 / np.linalg.norm(e1)

    def at_angle(e, theta, k):  # unit spectrum at angle theta from e, towards band k
        u = np.eye(15)[k] - (np.eye(15)[k] @ e) * e
        return np.cos(theta) * e + np.sin(theta) * u / np.linalg.norm(u)

    train = np.array([at_angle(e0, t, 9) for t in np.linspace(0, 0.02, 20)] + [at_angle(e1, t, 9) for t in
                                                                                np.linspace(0, 0.04, 20)])
    y = np.array([0] * 20 + [1] * 20)
    groups = np.array([0] * 20 + [1] * 20)
    held_theta = np.linspace(0.01, 0.2, 30)
    held = np.array([at_angle(e0, t, 12) for t in held_theta] + [at_angle(e1, 0.06, 12)] * 3)
    y_held = np.array([0] * 30 + [1] * 3)
    exemplars = {"reflectance": ood.ood_exemplars(train, y, groups, 2)}
    check = ood.fit((train, train, y), (held, held, y_held), exemplars, 2, wl, "none")
    E, owner = exemplars["reflectance"]
    E = np.round(E, 6)   # as the model stores them: the thresholds are of these (the check applies these)
    assert np.array_equal(E, check["views"][0]["exemplars"])
    train_angles = ood.prototype_angle(train, y, E, owner)
    spread = [np.quantile(train_angles[y == c], 0.99) for c in (0, 1)]
    held_angles = ood.prototype_angle(held, y_held, E, owner)
    limits = check["views"][0]["max_angle"]
    assert check["calibration"] == "held-out groups"
    assert limits[0] == pytest.approx(np.quantile(held_angles[:30], 0.99))
    pooled = np.quantile(held_angles / np.array(spread)[y_held], 0.99)
    assert limits[1] == pytest.approx(spread[1] * pooled)
    # applied: a spectrum of class 0 at 0.05 rad from its exemplar is in, one at 0.3 rad is out
    info = SimpleNamespace(training={"ood": check}, wavelengths=wl, preprocessing_method="none")
    e = E[0] / np.linalg.norm(E[0])
    probe = np.array([at_angle(e, 0.05, 12), at_angle(e, 0.3, 12)])
    angles = ood.angles(info, probe, probe, np.array([0, 0]))
    assert angles[:, 0] == pytest.approx([0.05, 0.3], abs=1e-5)  # exemplars stored to 6 decimals
    assert ood.out_of_distribution(info, angles, np.array([0, 0])).tolist() == [False, True]

    # held-out groups of single pixels: the same thresholds times the margin, recorded in the check
    wide = ood.fit((train, train, y), (held, held, y_held), exemplars, 2, wl, "none", held_out_margin=1.25)
    assert wide["views"][0]["max_angle"] == pytest.approx([1.25 * t for t in limits])
    assert wide["margin"] == 1.25 and check["margin"] is None
    # without held-out data: margin x quantile of the training spectra's angles (the older rule)
    check = ood.fit((train, train, y), None, exemplars, 2, wl, "none")
    assert check["views"][0]["max_angle"] == pytest.approx([ood.OOD_MARGIN * s for s in spread])


def test_the_stored_check_rejects_what_it_was_calibrated_to():
    """Few held-out spectra per class: the joint quantile reaches 1 and each threshold is its class's farthest
    held-out angle. Computed with the exemplars before their rounding to 6 decimals, the stored check put those
    spectra 1e-8 to 3e-6 rad beyond it: 12.5 % of these held-out spectra were rejected instead of none."""
    from types import SimpleNamespace

    from oremap.core.engine.spectra import preprocess
    from oremap.core.hyperspectral import ood

    rng = np.random.default_rng(0)
    wl = np.linspace(400, 2500, 200)
    base = [0.3 + 0.2 * np.sin(wl / 300 + c) - 0.1 * np.exp(-((wl - 2000 - 40 * c) / 30) ** 2) for c in range(6)]

    def spectra(groups):
        X, y, g = [], [], []
        for c in range(6):
            for group in groups:
                s = base[c] * rng.uniform(0.9, 1.1) + 0.01 * rng.standard_normal(wl.size)
                X += [s + 0.003 * rng.standard_normal(wl.size) for _ in range(4)]
                y += [c] * 4
                g += [c * 100 + group] * 4
        return np.array(X), np.array(y), np.array(g)

    Xt, yt, gt = spectra(range(4))
    Xh, yh, _ = spectra(range(4, 7))
    Pt, Ph = preprocess(Xt, "continuum_removal", wl), preprocess(Xh, "continuum_removal", wl)
    exemplars = ood.exemplar_views(Xt, Pt, yt, gt, 6, wl, "continuum_removal")
    check = ood.fit((Xt, Pt, yt), (Xh, Ph, yh), exemplars, 6, wl, "continuum_removal")
    assert check["view_quantile"] == 1.0 and yh.size == 72
    info = SimpleNamespace(training={"ood": check}, wavelengths=wl, preprocessing_method="continuum_removal")
    assert not ood.out_of_distribution(info, ood.angles(info, Xh, Ph, yh), yh).any()


def test_views_together_reject_the_target_share_of_held_out_spectra():
    """Known answer for :func:`ood.joint_quantile`: 1,000 held-out spectra of one class whose angles rank in
    opposite orders in two views. Each view at the 0.99 quantile rejects its own 10 spectra, so the pair would
    reject 20 (2 %); the joint per-view quantile makes each reject 5, together 10 (the 1 % target)."""
    a = np.arange(1000) / 1000.0
    held = {"preprocessed": a, "swir_depth": a[::-1].copy()}
    y = np.zeros(1000, dtype=np.int64)
    spreads = {"preprocessed": np.ones(1), "swir_depth": np.ones(1)}
    assert ood._union_rejected(held, y, spreads, 1, 0.99, 1.0) == pytest.approx(0.02)
    q = ood.joint_quantile(held, y, spreads, 1, 0.99)
    assert 0.994 < q < 0.996
    for angle in held.values():
        assert (angle > np.quantile(angle, q)).sum() == 5
    assert ood._union_rejected(held, y, spreads, 1, q, 1.0) == pytest.approx(0.01)
    # one view, or views that already meet the target together (the margin widens them): the quantile itself
    assert ood.joint_quantile({"preprocessed": a}, y, spreads, 1, 0.99) == 0.99
    assert ood.joint_quantile(held, y, spreads, 1, 0.99, margin=1.25) == 0.99


def test_fitted_views_together_reject_one_percent_of_held_out_spectra():
    """Through :func:`ood.fit`: two views (the spectra as given and their preprocessed copy) in which 1,000
    held-out spectra of one class lie at angles 0.001-1.0 rad from the class's exemplar in opposite orders.
    The joint check rejects 10 of them (1 %), five per view; each view at 0.99 on its own (``joint=False``,
    the bundled model's rule) rejects 20."""
    from types import SimpleNamespace

    wl = np.linspace(1000, 2400, 15)
    e = np.ones(15) / np.sqrt(15)
    u = np.eye(15)[3] - e[3] * e
    u /= np.linalg.norm(u)
    theta = np.arange(1, 1001) / 1000.0
    X_held = np.cos(theta)[:, None] * e + np.sin(theta)[:, None] * u
    P_held = X_held[::-1].copy()
    train = np.repeat(e[None, :], 20, axis=0)
    y = np.zeros(20, dtype=np.int64)
    y_held = np.zeros(1000, dtype=np.int64)
    exemplars = ood.exemplar_views(train, train, y, np.zeros(20), 1, wl, "none", names=("preprocessed", "reflectance"))
    for joint, n_rejected in ((True, 10), (False, 20)):
        check = ood.fit((train, train, y), (X_held, P_held, y_held), exemplars, 1, wl, "none", joint=joint)
        info = SimpleNamespace(training={"ood": check}, wavelengths=wl, preprocessing_method="none")
        far = ood.out_of_distribution(info, ood.angles(info, X_held, P_held, y_held), y_held)
        assert far.sum() == n_rejected
        assert far[:n_rejected // 2].all() and far[-(n_rejected // 2):].all()  # the farthest in each view
        assert (0.994 < check["view_quantile"] < 0.996) if joint else "view_quantile" not in check


# ---------------------------------------------------------------------------
# The feature view: distance in the network's penultimate features to the k-th nearest training spectrum
# ---------------------------------------------------------------------------


def test_feature_reference_keeps_every_class_in_proportion():
    y = np.r_[np.zeros(3000, int), np.ones(1000, int), np.full(3, 2)]
    rows = ood.feature_reference_rows(y, max_rows=1024)
    assert np.bincount(y[rows]).tolist() == [767, 256, 1]  # round(1024 x share), each class at least one
    assert rows[0] == 0 and rows[766] == 2999 and np.all(np.diff(rows) > 0)  # evenly spaced, ends kept
    assert ood.feature_reference_rows(y[:500]).tolist() == list(range(500))  # under the cap: all of them


def test_reference_distances_are_to_the_kth_nearest_other_spectrum():
    s = np.sqrt(0.5)
    R = np.array([[1.0, 0.0], [0.0, 1.0], [s, s], [-1.0, 0.0]])
    # nearest other of each: the diagonal vector for the axes, an axis for the diagonal, (0, 1) for (-1, 0)
    np.testing.assert_allclose(ood.reference_distances([R], 1), [1 - s, 1 - s, 1 - s, 1.0], atol=1e-12)
    np.testing.assert_allclose(ood.reference_distances([R], 2), [1.0, 1.0, 1 - s, 1 + s], atol=1e-12)
    # an ensemble: the mean of its networks' distances
    np.testing.assert_allclose(ood.reference_distances([R, R[[1, 0, 2, 3]]], 1), [1 - s, 1 - s, 1 - s, 1.0])


def test_feature_threshold_arithmetic():
    held = np.linspace(0.0, 1.0, 101)  # 0.99 quantile: 0.99
    check = ood.feature_check(3, 5, 40, held, margin=1.0, scale=0.5)
    assert check["max_distance"] == pytest.approx([0.495] * 3) and check["calibration"] == "held-out groups"
    without = ood.feature_check(3, 5, 40, None, reference=held)  # no held-out spectra: the training spread
    assert without["max_distance"] == pytest.approx([ood.OOD_MARGIN * 0.99] * 3)
    assert without["calibration"] == "training spectra"
    info = type("Info", (), {"training": {"ood": {"views": [], "feature": check}}})()
    far = ood.out_of_distribution(info, np.array([[0.2], [0.495], [0.6], [np.nan]]), np.array([0, 1, 2, 0]))
    assert far.tolist() == [False, False, True, True]


@pytest.fixture(scope="module")
def feature_model(tmp_path_factory):
    """The fixture model's recipe with the feature view."""
    return train_fixture_model(tmp_path_factory.mktemp("ood_feature"), feature_check=True)


def test_graph_returns_the_feature_distance_it_was_calibrated_on(feature_model, model):
    """The saved graph's second output is the cosine distance of a spectrum's unit features to the 5th nearest of
    the reference spectra, as numpy computes it from the torch network; the model records the threshold, and the
    check needs those distances."""
    from oremap.core.engine import spectral_network
    from oremap.core.engine.spectra import preprocess

    assert "feature" not in model[0].info.training["ood"]  # off by default
    assert model[0].info.training["parameters"]["feature_check"] is False
    onnx, summary = feature_model
    feature = onnx.info.training["ood"]["feature"]
    assert feature["k"] == ood.FEATURE_K == 5
    assert feature["calibration"] == "held-out groups" and feature["margin"] == 1.0  # each spectrum its own group
    assert 0 < feature["max_distance"][0] < 1 and len(set(feature["max_distance"])) == 1
    X = library_at_model_bands(read_library(USGS_LIBRARY), onnx.info)
    X = X[np.isfinite(X).all(axis=1)][:40]
    P = preprocess(X, onnx.info.preprocessing_method, onnx.info.wavelengths)
    out = onnx.run_outputs(P)
    module = summary["result"].torch_model
    assert feature["n_reference"] == module.reference.shape[0] > 0  # the metadata say what the graph holds
    F = spectral_network.feature_vectors(module, P)
    cos = np.sort(F @ module.reference.numpy().T, axis=1)[:, -5]
    np.testing.assert_allclose(out[spectral_network.DISTANCE_NAME], 1.0 - cos, atol=1e-5)
    probs, angles = spectral_cnn.predict_proba(onnx, X, with_angle=True)
    np.testing.assert_allclose(angles[:, -1], out[spectral_network.DISTANCE_NAME], atol=1e-6)
    with pytest.raises(ValueError, match="feature distances"):
        ood.angles(onnx.info, X, P, probs.argmax(axis=1))
    # each library spectrum its own group: the angle views get the wider margin, the feature view none
    assert onnx.info.training["ood"]["margin"] == ood.PIXEL_MARGIN == 2.0


def test_a_class_of_one_labelled_pixel_is_mapped_with_the_check_off_for_it(tmp_path):
    """From one labelled pixel (and its augmented copies) the check's thresholds carry no spread: every other pixel
    of the class lay beyond them, so the class was trained but never mapped. The check is now off for such a
    class, and the log says so and what to label."""
    from conftest import core_warnings
    from oremap.core.hyperspectral.training import TrainingSet

    target = mapping.image_band_info(AVIRIS_NG)
    data = training.library_training_set([os.path.join(DATA, "usgs_train.sli")], target)
    kaolinite = data.class_names.index("Kaolinite")
    rows = np.flatnonzero(data.y == kaolinite)
    keep = np.ones(data.y.size, bool)
    keep[rows[1:]] = False                       # one kaolinite spectrum: one labelled pixel
    one = TrainingSet(X=data.X[keep], y=data.y[keep], groups=np.arange(keep.sum()), class_names=data.class_names,
                      band_info=data.band_info)
    log = core_warnings()
    path = str(tmp_path / "m.onnx")
    cnn_training.train_and_report(one, path, None, preprocessing="continuum_removal", augment_copies=5, snr=100,
                                  epochs=30, patience=8, seed=3, feature_check=True, feedback=log)
    assert [w for w in log.warnings if w.startswith("Too few labelled pixels")] == [
        "Too few labelled pixels for the out-of-distribution check: 'Kaolinite' (1). It is off for this class (such "
        "pixels are classified by the network's confidence alone): label at least 2 pixels of each class for the "
        "check to run, and 5 or more (more points, or a polygon) for it to judge them well."]
    model = OnnxModel(path)
    check = model.info.training["ood"]
    assert check["unchecked_classes"] == [kaolinite]
    assert all(v["max_angle"][kaolinite] is None and v["max_angle"][kaolinite - 1] > 0 for v in check["views"])
    assert check["feature"]["max_distance"][kaolinite] is None
    # the other kaolinite spectra of the library (never labelled): classified, not rejected by the check
    others = data.X[rows[1:]]
    probs, angles = spectral_cnn.predict_proba(model, others, with_angle=True)
    given = probs.argmax(axis=1)
    far = ood.out_of_distribution(model.info, angles, given)
    assert not far[given == kaolinite].any() and (given == kaolinite).sum() >= 1
