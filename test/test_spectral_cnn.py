"""Spectral CNN: preprocessing and augmentation known answers, grouped split, training on real
USGS spectra, ONNX export equal to torch, determinism and cancellation."""

import os

import numpy as np
import pytest

from conftest import SHARED_DATA, USGS_LIBRARY
from oremap.core.engine import spectra, spectral_network
from oremap.core.hyperspectral import ood, spectral_cnn as sc
from oremap.core.engine.colors import class_colours, hex_colour
from oremap.core.engine.errors import Cancelled, OreMapError
from oremap.core.engine.feedback import Feedback
from oremap.core.hyperspectral.spectral_library import read_library

FULL_LIBRARY = os.path.join(SHARED_DATA, "hyperspectral", "s07_AV95_envi.sli")
TINY = {"channels": (8, 16, 32), "kernels": (7, 5, 3), "hidden": 32}
SUBSET = ["Kaolinite CM9", "Alunite GDS84", "Calcite WS272", "Goethite WS222", "Lawn_Grass GDS91"]
SUBSET_CLASSES = ["Kaolinite", "Alunite", "Calcite", "Goethite", "Green vegetation"]


def needs_torch():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")


# ---------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------


def reference_continuum(x, y):
    """Upper convex hull, one spectrum at a time (monotone chain), for comparison."""
    hull = []
    for j in range(len(x)):
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            if (x[a] - x[o]) * (y[j] - y[o]) - (y[a] - y[o]) * (x[j] - x[o]) >= 0:
                hull.pop()
            else:
                break
        hull.append(j)
    return np.interp(x, x[hull], y[hull])


def test_continuum_removal_of_a_straight_line_is_one():
    wl = np.linspace(400.0, 2500.0, 211)
    lines = np.vstack([0.1 + 2e-4 * wl, 0.9 - 3e-4 * wl, np.full(wl.size, 0.37)])
    out = spectra.continuum_removal(lines, wl)
    np.testing.assert_allclose(out, 1.0, atol=1e-12)
    assert spectra.preprocess(lines, "continuum_removal", wl).dtype == np.float32


def test_continuum_removal_triangular_absorption_depth():
    wl = np.linspace(2000.0, 2400.0, 81)  # 5 nm steps
    continuum = 0.2 + 2.5e-4 * wl  # sloped: 0.7 at 2000 nm, 0.8 at 2400 nm
    centre, half_width, depth = 2200.0, 50.0, 0.21
    spectrum = continuum - depth * np.clip(1 - np.abs(wl - centre) / half_width, 0, None)
    out = spectra.continuum_removal(spectrum, wl)
    k = int(np.argmin(np.abs(wl - centre)))
    # At the centre: (0.75 - 0.21) / 0.75 = 0.72, exactly.
    assert out[k] == pytest.approx((0.75 - 0.21) / 0.75, abs=1e-12) == pytest.approx(0.72, abs=1e-12)
    # Halfway down the flank the band depth is halved: 1 - 0.105 / continuum.
    k2 = int(np.argmin(np.abs(wl - (centre + half_width / 2))))
    assert out[k2] == pytest.approx(1 - 0.105 / continuum[k2], abs=1e-12)
    outside = np.abs(wl - centre) >= half_width
    np.testing.assert_allclose(out[outside], 1.0, atol=1e-12)


def test_continuum_removal_matches_per_spectrum_hull_on_random_data():
    rng = np.random.default_rng(5)
    wl = np.sort(rng.uniform(400, 2500, 60))
    X = rng.uniform(0.05, 1.0, (300, 60))
    expected = np.array([x / reference_continuum(wl, x) for x in X])
    np.testing.assert_allclose(spectra.continuum_removal(X, wl), expected, atol=1e-12)
    # Band order does not matter: the hull is taken over sorted wavelengths.
    order = rng.permutation(60)
    np.testing.assert_allclose(spectra.continuum_removal(X[:, order], wl[order]), expected[:, order], atol=1e-12)
    # Without wavelengths the band number is the axis.
    idx = np.arange(60.0)
    np.testing.assert_allclose(spectra.continuum_removal(X[:5]),
                               [x / reference_continuum(idx, x) for x in X[:5]], atol=1e-12)


def test_continuum_removal_with_ties_and_collinear_bands_over_several_chunks(monkeypatch):
    """Integer spectra put many bands exactly on a hull edge or level with a vertex (the pop rule's ``>=``), and
    small chunks make the rows run through several of them and a short last one."""
    monkeypatch.setattr(spectra, "_HULL_CHUNK", 7)
    rng = np.random.default_rng(11)
    X = rng.integers(1, 4, (40, 30)).astype(np.float64)
    X[5] = 2.0  # flat: every band on the hull
    X[6] = np.arange(30.0) + 1  # a straight line
    idx = np.arange(30.0)
    expected = np.array([x / reference_continuum(idx, x) for x in X])
    np.testing.assert_allclose(spectra.continuum_removal(X), expected, atol=1e-12)
    np.testing.assert_array_equal(spectra.continuum_removal(X)[[5, 6]], 1.0)


def test_continuum_removal_of_dark_negative_and_missing_spectra():
    wl = np.linspace(400, 2500, 50)
    X = np.vstack([np.zeros(50), -np.ones(50), np.r_[np.full(25, -0.01), np.full(25, 0.2)],
                   np.r_[np.nan, np.full(49, 0.3)]])
    with np.errstate(all="raise"):
        out = spectra.continuum_removal(X, wl)
    np.testing.assert_array_equal(out[0], 1.0)  # no continuum: flat, no absorption
    np.testing.assert_array_equal(out[1], 1.0)
    # Hull from (band 0, -0.01) to (band 25, 0.2): not positive at bands 0 and 1 (value 1), positive
    # from band 2 on, where the negative reflectance is clipped to 0; the bright half lies on the hull.
    np.testing.assert_array_equal(out[2], np.r_[1, 1, np.zeros(23), np.ones(25)])
    assert np.isnan(out[3]).all()


def test_continuum_removal_with_repeated_wavelengths():
    # Bands sharing a wavelength share the continuum: the higher value there.
    with np.errstate(all="raise"):
        np.testing.assert_allclose(spectra.continuum_removal([0.1, 0.6, 0.5], [400, 500, 500]), [1, 1, 0.5 / 0.6],
                                   atol=1e-12)
        np.testing.assert_allclose(spectra.continuum_removal([0.5, 0.6, 0.1], [400, 400, 500]), [0.5 / 0.6, 1, 1],
                                   atol=1e-12)
        np.testing.assert_allclose(spectra.continuum_removal([0.1, 0.6, 0.5, 0.7], [400, 500, 500, 600]),
                                   [1, 1, 0.5 / 0.6, 1], atol=1e-12)
    # three bands at the first wavelength: the highest (1.03) left the hull, and 0.98 was its own continuum
    got = spectra.continuum_removal([0.54, 1.03, 0.98, 1.33, 1.2], [400, 400, 400, 500, 600])
    np.testing.assert_allclose(got, [0.54 / 1.03, 1, 0.98 / 1.03, 1, 1], atol=1e-12)
    rng = np.random.default_rng(5)   # against the hull of each wavelength's highest value, repeats anywhere
    for _ in range(300):
        x = np.sort(rng.choice(np.arange(400.0, 1400.0, 100.0), 6, replace=False))
        x = np.r_[x[0], x[0], x]   # three bands share the first wavelength
        y = rng.uniform(0.5, 1.5, 8)
        unique = np.unique(x)
        top = np.array([y[x == u].max() for u in unique])
        expected = y / np.interp(x, unique, reference_continuum(unique, top))
        np.testing.assert_allclose(spectra.continuum_removal(y, x), np.clip(expected, 0, 1), atol=1e-12)


def test_brightness_normalisation():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.05, 0.9, (20, 30))
    out = spectra.preprocess(x, "brightness")
    np.testing.assert_allclose(out, x / x.mean(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(spectra.preprocess(0.37 * x, "brightness"), out, rtol=1e-6)  # shade-invariant
    np.testing.assert_allclose(spectra.preprocess([1.0, 2.0, 3.0], "brightness"), [0.5, 1.0, 1.5])
    edge = spectra.brightness_normalise(np.array([[0.0, 0.0], [-1.0, 0.5], [np.nan, 1.0]]))
    np.testing.assert_array_equal(edge[:2], 0.0)
    assert np.isnan(edge[2]).all()
    np.testing.assert_array_equal(spectra.preprocess(x, "none"), x.astype(np.float32))
    with pytest.raises(OreMapError, match="Unknown preprocessing 'snv'"):
        spectra.preprocess(x, "snv")


# ---------------------------------------------------------------------------
# Augmentation and split
# ---------------------------------------------------------------------------


def test_augment_is_deterministic_and_keeps_labels_and_groups():
    rng = np.random.default_rng(0)
    S = rng.uniform(0.1, 0.8, (6, 40))
    labels, groups = np.array([0, 0, 1, 1, 2, 2]), np.array([10, 11, 20, 21, 30, 30])
    a = sc.augment(S, labels, groups, 5, np.random.default_rng(7))
    b = sc.augment(S, labels, groups, 5, 7)  # an int seeds the same Generator
    c = sc.augment(S, labels, groups, 5, np.random.default_rng(8))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(a[0], c[0])
    X, y, g = a
    assert X.shape == (30, 40)
    np.testing.assert_array_equal(y, np.repeat(labels, 5))
    np.testing.assert_array_equal(g, np.repeat(groups, 5))


def test_augment_mixes_only_with_other_classes():
    # Class 0 holds two flat spectra (1 and 2), class 1 a ramp from 5 to 15. With mixing
    # alone, a class-0 variant is (1 - f) s + f ramp: its slope gives f, and the rest must
    # be s exactly (mixing with the other flat class-0 spectrum would break this); a class-1
    # variant is (1 - f) ramp + f c with c one of the flat spectra.
    ramp = np.linspace(5.0, 15.0, 11)
    S = np.vstack([np.full(11, 1.0), np.full(11, 2.0), ramp])
    X, y, g = sc.augment(S, [0, 0, 1], [0, 1, 2], 200, 3, snr_db=np.inf, brightness=1.0, slope=0.0,
                         mix_max=0.3, shade_max=0.0)
    src = np.repeat(np.arange(3), 200)
    f = (X[:400, -1] - X[:400, 0]) / 10.0
    assert f.min() >= 0 and f.max() < 0.3 and f.max() > 0.25
    np.testing.assert_allclose(X[:400], (1 - f[:, None]) * S[src[:400]] + f[:, None] * ramp, atol=1e-12)
    f1 = 1.0 - (X[400:, -1] - X[400:, 0]) / 10.0
    assert f1.min() >= 0 and f1.max() < 0.3
    c = (X[400:, 0] - (1 - f1) * 5.0) / f1
    np.testing.assert_allclose(c[f1 > 0.01], np.round(c[f1 > 0.01]), atol=1e-6)
    assert set(np.round(c[f1 > 0.01])) == {1.0, 2.0}
    np.testing.assert_array_equal(y, np.repeat([0, 0, 1], 200))
    np.testing.assert_array_equal(g, src)
    # A single class cannot mix: the variants are the spectrum itself.
    alone, _, _ = sc.augment(S[:2], [0, 0], [0, 1], 5, 3, snr_db=np.inf, brightness=1.0, slope=0.0,
                             shade_max=0.0)
    np.testing.assert_array_equal(alone, np.repeat(S[:2], 5, axis=0))


def test_augment_brightness_slope_shade_and_noise_known_answers():
    wl = np.linspace(400, 2400, 101)
    S = np.full((1, 101), 0.5)
    quiet = dict(snr_db=np.inf, mix_max=0.0)
    Xb, _, _ = sc.augment(S, [0], [0], 300, 1, brightness=(0.6, 1.3), slope=0.0, shade_max=0.0, **quiet)
    factor = Xb[:, 0] / 0.5
    assert np.allclose(Xb, Xb[:, :1]) and factor.min() >= 0.6 and factor.max() <= 1.3
    Xs, _, _ = sc.augment(S, [0], [0], 300, 1, brightness=1.0, slope=0.2, shade_max=0.0, wavelengths=wl,
                          **quiet)
    tilt = Xs / 0.5 - 1.0  # t * (wl - 1400) / 2000, linear in wavelength, |t| <= 0.2
    t = tilt[:, -1] / 0.5
    np.testing.assert_allclose(tilt, t[:, None] * ((wl - 1400.0) / 2000.0)[None, :], atol=1e-12)
    assert np.abs(t).max() <= 0.2 and np.abs(t).max() > 0.15
    Xh, _, _ = sc.augment(S, [0], [0], 300, 1, brightness=1.0, slope=0.0, shade_max=0.5, dark=0.02, **quiet)
    h = (0.5 - Xh[:, 0]) / (0.5 - 0.02)
    assert h.min() >= 0 and h.max() < 0.5
    big = np.full((1, 4000), 0.5)
    Xn, _, _ = sc.augment(big, [0], [0], 4, 1, snr_db=20.0, brightness=1.0, slope=0.0, shade_max=0.0,
                          mix_max=0.0)
    np.testing.assert_allclose((Xn - 0.5).std(axis=1), 0.05, rtol=0.05)  # 0.5 / 10**(20/20)


def test_grouped_split_whole_groups_per_class():
    # Class 0: 8 groups of 3 samples, class 1: 4 groups, class 2: a single group.
    y = np.r_[np.zeros(24), np.ones(12), np.full(5, 2)].astype(int)
    groups = np.r_[np.repeat(np.arange(8), 3), np.repeat(np.arange(100, 104), 3), np.full(5, 200)]
    train, val, info = sc.grouped_split(y, groups, 0.25, seed=3)
    assert np.intersect1d(groups[train], groups[val]).size == 0
    assert np.array_equal(np.sort(np.r_[train, val]), np.arange(y.size))
    assert len(set(groups[val][y[val] == 0])) == 2  # round(0.25 * 8)
    assert len(set(groups[val][y[val] == 1])) == 1  # round(0.25 * 4)
    assert not np.any(y[val] == 2) and info["classes_without_validation"] == [2]
    assert info == {"n_groups": 13, "n_val_groups": 3, "classes_without_validation": [2], "mixed_groups": 0}
    again = sc.grouped_split(y, groups, 0.25, seed=3)
    np.testing.assert_array_equal(again[1], val)
    other = [sc.grouped_split(y, groups, 0.25, seed=s)[1] for s in range(6)]
    assert len({tuple(v) for v in other}) > 1
    # Two groups: one goes to validation even when 0.1 * 2 rounds to 0; none with fraction 0.
    _, val2, _ = sc.grouped_split([0, 0, 1, 1], ["a", "b", "c", "d"], 0.1)
    assert sorted(np.asarray([0, 0, 1, 1])[val2].tolist()) == [0, 1]
    train0, val0, info0 = sc.grouped_split(y, groups, 0.0)
    assert val0.size == 0 and train0.size == y.size and info0["classes_without_validation"] == []
    with pytest.raises(OreMapError):
        sc.grouped_split(y, groups, 1.0)


# ---------------------------------------------------------------------------
# Network and training
# ---------------------------------------------------------------------------


def subset_library():
    lib = read_library(USGS_LIBRARY).subset(SUBSET)
    return lib


def augmented_subset(n_per_spectrum=40, seed=0):
    lib = subset_library()
    X, y, g = sc.augment(lib.spectra, np.arange(5), np.arange(5), n_per_spectrum, seed,
                         wavelengths=lib.wavelengths)
    return lib, X, y, g


@pytest.fixture(scope="module")
def tiny_result():
    needs_torch()
    lib, X, y, _ = augmented_subset(30)
    result = sc.train_classifier(X, y, SUBSET_CLASSES, wavelengths=lib.wavelengths, fwhm=lib.fwhm,
                                 preprocessing="continuum_removal", epochs=4, seed=1, network_options=TINY,
                                 description="tiny test model")
    return lib, X, y, result


def test_network_refuses_too_short_spectra():
    needs_torch()
    with pytest.raises(OreMapError, match="too short"):
        spectral_network.SpectralCNN(7, 3)
    with pytest.raises(OreMapError, match="odd kernel"):
        spectral_network.SpectralCNN(64, 3, kernels=(7, 4, 3))
    net = spectral_network.SpectralCNN(224, 5)
    assert sum(p.numel() for p in net.parameters()) > 100_000  # default (16, 32, 64) channels


def test_onnx_equals_torch_eager(tiny_result, tmp_path):
    from oremap.core.engine.model_format import OnnxModel

    lib, X, _, result = tiny_result
    path = result.save(tmp_path / "tiny.onnx")
    model = OnnxModel(path, threads=1)
    # Real-like spectra: fresh augmented copies of the library spectra, plus shaded ones.
    _, fresh, _, _ = augmented_subset(100, seed=99)
    fresh = np.vstack([fresh, 0.3 * fresh[:50]])
    P = spectra.preprocess(fresh, "continuum_removal", lib.wavelengths)
    eager = spectral_network.predict_proba_torch(result.torch_model, P)
    onnx_p = model.run(P)
    assert onnx_p.shape == (550, 5)
    np.testing.assert_allclose(onnx_p, eager, atol=1e-5)
    np.testing.assert_allclose(onnx_p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(sc.predict_proba(model, fresh), onnx_p, atol=1e-6)  # preprocessing + graph
    assert eager.std() > 0.01  # not a constant output


def test_training_result_info(tiny_result, tmp_path):
    from oremap.core.engine.model_format import OnnxModel, read_model_info

    lib, X, y, result = tiny_result
    path = result.save(tmp_path / "tiny.onnx")
    info = read_model_info(path)
    assert info == result.info
    assert info.task == "spectral_classification"
    assert info.class_names == SUBSET_CLASSES
    assert [c["color"] for c in info.classes] == [hex_colour(c) for c in class_colours(SUBSET_CLASSES)]
    assert info.wavelengths == lib.wavelengths.tolist() and info.fwhm == lib.fwhm.tolist()
    assert info.input == {"name": "spectra", "n_bands": 224}
    assert info.preprocessing == {"method": "continuum_removal"}
    assert info.description == "tiny test model"
    training = info.training
    assert training["data_hash"] == sc.data_hash(X, y) and len(training["data_hash"]) == 64
    assert training["n_samples"] == 150
    metrics = training["metrics"]
    assert np.sum(metrics["confusion_matrix"]) == metrics["n_validation"] == result.val_labels.size
    # the held-out network's probabilities give the stored figure; the saved network was refit on all 150
    assert metrics["val_accuracy"] == pytest.approx(np.mean(result.val_proba.argmax(axis=1) == result.val_labels))
    assert training["parameters"]["refit"] is True and metrics["refit_samples"] == 150
    saved = sc.predict_proba(OnnxModel(path), result.val_spectra)
    assert saved.shape == result.val_proba.shape and np.allclose(saved.sum(axis=1), 1.0, atol=1e-5)
    assert {"val_loss", "val_balanced_accuracy", "val_kappa", "val_macro_f1", "per_class"} <= set(metrics)
    assert result.val_summary["overall_accuracy"] == metrics["val_accuracy"]
    assert training["parameters"]["network"]["channels"] == [8, 16, 32]
    assert set(result.history) == {"train_loss", "val_loss", "train_acc", "val_acc"}
    assert len(result.history["val_loss"]) == metrics["epochs_run"] == 4
    assert np.intersect1d(result.train_indices, result.val_indices).size == 0
    np.testing.assert_array_equal(result.val_labels, y[result.val_indices])
    np.testing.assert_array_equal(result.val_spectra, X[result.val_indices])  # raw, before preprocessing
    assert [m for m, _ in spectra.PREPROCESSING] == list(spectra.PREPROCESSING_METHODS)


def test_seed_ensemble_is_the_mean_of_its_members_in_one_graph(tmp_path):
    """ensemble=3: one ONNX graph whose probabilities are the mean of three networks of different seeds; the
    first member is the single model's network (same seed), the out-of-distribution check is the same."""
    from oremap.core.engine.model_format import OnnxModel

    needs_torch()
    lib, X, y, _ = augmented_subset(20)
    kwargs = dict(wavelengths=lib.wavelengths, preprocessing="continuum_removal", epochs=3, seed=4,
                  network_options=TINY)
    single = sc.train_classifier(X, y, SUBSET_CLASSES, **kwargs)
    trio = sc.train_classifier(X, y, SUBSET_CLASSES, ensemble=3, **kwargs)
    members = trio.torch_model.members
    assert len(members) == 3 and trio.info.training["parameters"]["ensemble"] == 3
    first, single_state = members[0].state_dict(), single.torch_model.state_dict()
    assert first.keys() == single_state.keys() and all((first[k] == single_state[k]).all() for k in first)
    _, fresh, _, _ = augmented_subset(20, seed=7)
    P = spectra.preprocess(fresh, "continuum_removal", lib.wavelengths)
    each = np.array([spectral_network.predict_proba_torch(m, P) for m in members])
    assert np.abs(each[1] - each[0]).max() > 0.01 and np.abs(each[2] - each[1]).max() > 0.01  # other seeds
    onnx_p = OnnxModel(trio.save(tmp_path / "trio.onnx"), threads=1).run(P)
    np.testing.assert_allclose(onnx_p, each.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(onnx_p.sum(axis=1), 1.0, atol=1e-5)
    assert trio.info.training["ood"] == single.info.training["ood"]
    assert trio.info.training["metrics"]["val_accuracy"] == single.info.training["metrics"]["val_accuracy"]
    # without refit: the early-stopped network and two more trained on the same training groups
    kept = sc.train_classifier(X, y, SUBSET_CLASSES, ensemble=2, refit=False, **kwargs)
    no_refit = sc.train_classifier(X, y, SUBSET_CLASSES, refit=False, **kwargs)
    np.testing.assert_allclose(spectral_network.predict_proba_torch(kept.torch_model.members[0], P),
                               spectral_network.predict_proba_torch(no_refit.torch_model, P), atol=1e-7)
    with pytest.raises(OreMapError, match="ensemble members must be at least 1") as err:
        sc.train_classifier(X, y, SUBSET_CLASSES, ensemble=0, **kwargs)
    assert err.value.parameter == "training"


def test_progress_runs_through_the_refit():
    """Early stopping and the refit after it share the progress bar: the refit no longer sits at the
    early-stopping run's last percent."""
    needs_torch()

    class Recorder(Feedback):
        def __init__(self):
            self.percent = []

        def progress(self, percent):
            self.percent.append(percent)

    lib, X, y, _ = augmented_subset(10)
    feedback = Recorder()
    result = sc.train_classifier(X, y, SUBSET_CLASSES, epochs=3, patience=10, network_options=TINY, seed=2,
                                 feedback=feedback)
    refit_epochs = result.info.training["metrics"]["best_epoch"]
    assert result.info.training["metrics"]["refit_samples"] == y.size
    # three early-stopping epochs up to 47.5 %, then the refit's epochs up to 95 %
    for k in (1, 2, 3):
        assert any(abs(p - 47.5 * k / 3) < 1e-9 for p in feedback.percent)
    assert feedback.percent[-2:] == pytest.approx([95.0, 100.0]) and feedback.percent == sorted(feedback.percent)
    refit = [p for p in feedback.percent[:-1] if p > 47.5 + 1e-9]
    assert refit[-refit_epochs:] == pytest.approx([47.5 + 47.5 * k / refit_epochs
                                                   for k in range(1, refit_epochs + 1)])


def test_default_network_is_the_one_recorded():
    needs_torch()
    X = np.random.default_rng(0).uniform(0.1, 0.5, (40, 32))
    y = np.repeat([0, 1], 20)
    result = sc.train_classifier(X, y, ["a", "b"], epochs=1, val_fraction=0.0)
    recorded = result.info.training["parameters"]["network"]
    assert recorded == {k: list(v) if isinstance(v, tuple) else v for k, v in spectral_network.DEFAULT_NETWORK.items()}
    net = result.torch_model.net
    convs = [m for m in net.features if type(m).__name__ == "Conv1d"]
    assert [m.out_channels for m in convs] == recorded["channels"]
    assert [m.kernel_size[0] for m in convs] == recorded["kernels"]
    dense = [m for m in net.head if type(m).__name__ == "Linear"]
    dropout = [m for m in net.head if type(m).__name__ == "Dropout"]
    assert dense[0].out_features == recorded["hidden"] and dropout[0].p == recorded["dropout"]


def test_diverging_training_is_reported():
    needs_torch()
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 0.5, (40, 16))
    y = np.repeat([0, 1], 20)
    with pytest.raises(OreMapError, match="diverged") as err:
        sc.train_classifier(X, y, ["a", "b"], lr=1e30, epochs=5, patience=2, network_options=TINY,
                            preprocessing="none")
    assert err.value.parameter == "training" and "learning rate" in err.value.fix


def test_min_epochs_keeps_early_stopping_from_ending_before_it():
    """Labels without any relation to the spectra: the held-out loss is lowest after the first epoch, and with a
    patience of 1 training ends after the second; with min_epochs 8 no epoch before the 8th is kept."""
    needs_torch()
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 0.5, (60, 16))
    y = np.repeat([0, 1, 2], 20)
    kwargs = dict(epochs=8, patience=1, lr=0.05, network_options=TINY, preprocessing="none", seed=1, refit=False)
    plain = sc.train_classifier(X, y, ["a", "b", "c"], **kwargs).info.training["metrics"]
    assert (plain["best_epoch"], plain["epochs_run"]) == (1, 2)
    held = sc.train_classifier(X, y, ["a", "b", "c"], min_epochs=8, **kwargs).info.training
    assert (held["metrics"]["best_epoch"], held["metrics"]["epochs_run"]) == (8, 8)
    assert held["parameters"]["min_epochs"] == 8


def test_same_seed_gives_identical_model():
    needs_torch()
    lib, X, y, _ = augmented_subset(20)
    kwargs = dict(wavelengths=lib.wavelengths, epochs=3, seed=5, network_options=TINY)
    a = sc.train_classifier(X, y, SUBSET_CLASSES, **kwargs)
    b = sc.train_classifier(X, y, SUBSET_CLASSES, **kwargs)
    c = sc.train_classifier(X, y, SUBSET_CLASSES, **{**kwargs, "seed": 6})
    assert a.onnx_bytes == b.onnx_bytes
    assert a.history == b.history
    np.testing.assert_array_equal(a.val_proba, b.val_proba)
    assert a.onnx_bytes != c.onnx_bytes


def test_cancellation_stops_training():
    needs_torch()

    class CancelAfter(Feedback):
        def __init__(self, epochs):
            self.calls, self.epochs = 0, epochs

        def progress(self, percent):
            self.calls += 1

        def is_canceled(self):
            return self.calls >= self.epochs

    lib, X, y, _ = augmented_subset(10)
    feedback = CancelAfter(2)
    with pytest.raises(Cancelled):
        sc.train_classifier(X, y, SUBSET_CLASSES, epochs=50, network_options=TINY, feedback=feedback)
    assert feedback.calls == 2


def test_training_refuses_bad_data():
    needs_torch()
    X = np.random.default_rng(0).uniform(0.1, 0.5, (20, 32))
    y = np.repeat([0, 1], 10)
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(OreMapError, match="1 training spectra hold missing") as err:
        sc.train_classifier(bad, y, ["a", "b"])
    assert err.value.parameter == "training"
    with pytest.raises(OreMapError, match="No training samples for the classes c"):
        sc.train_classifier(X, y, ["a", "b", "c"])
    with pytest.raises(OreMapError, match="3 wavelengths"):
        sc.train_classifier(X, y, ["a", "b"], wavelengths=[1, 2, 3])


def test_subset_minerals_are_learnt():
    """Always-run learning check on the 24-spectrum subset (one spectrum per mineral).

    With one source spectrum per class a grouped split is impossible, so this is a random
    split of augmented copies: it shows the network separates the minerals under noise,
    shade, tilt and mixing, not that it generalises to unseen samples (see the next test).
    """
    needs_torch()
    lib, X, y, _ = augmented_subset(60)
    result = sc.train_classifier(X, y, SUBSET_CLASSES, wavelengths=lib.wavelengths, epochs=30, seed=0,
                                 network_options=TINY)
    assert result.info.training["metrics"]["val_accuracy"] >= 0.9


def full_library_set():
    """Several USGS spectra per class; the group is the physical sample ("Kaolinite CM9")."""
    lib = read_library(FULL_LIBRARY)
    vegetation = ("Lawn_Grass GDS91 green", "Aspen_Leaf-A DW92-2", "Aspen_Leaf-B DW92-3",
                  "Blackbrush ANP92-9A leaves", "Maple_Leaves DW92-1", "Walnut_Leaf SUN (Green)",
                  "Pinon_Pine ANP92-14A needle")
    X, y, groups = [], [], []
    for name, spectrum in zip(lib.names, lib.spectra):
        words = name.split()
        if words[0] in SUBSET_CLASSES[:4]:
            label, group = SUBSET_CLASSES.index(words[0]), " ".join(words[:2])
        elif name.startswith(vegetation):
            label, group = 4, name
        else:
            continue
        missing = np.isnan(spectrum)
        if missing.sum() > 2:  # spectra not covering the range
            continue
        if missing.any():  # the ASD spectra lack one edge channel
            spectrum = spectrum.copy()
            spectrum[missing] = np.interp(lib.wavelengths[missing], lib.wavelengths[~missing], spectrum[~missing])
        X.append(spectrum)
        y.append(label)
        groups.append(group)
    return lib, np.array(X), np.array(y), np.array(groups)


@pytest.mark.skipif(not os.path.exists(FULL_LIBRARY), reason="full USGS library not in the shared data")
def test_held_out_usgs_samples_are_classified():
    """Grouped validation: whole physical samples never seen in training, augmented separately."""
    needs_torch()
    lib, X, y, groups = full_library_set()
    assert [len(set(groups[y == c])) for c in range(5)] == [8, 11, 4, 7, 7]
    result = sc.train_classifier(X, y, SUBSET_CLASSES, groups=groups, wavelengths=lib.wavelengths, epochs=30,
                                 val_fraction=0.3, seed=0, augment_options={"n_per_spectrum": 20},
                                 network_options=TINY)
    metrics = result.info.training["metrics"]
    assert np.intersect1d(groups[result.train_indices], groups[result.val_indices]).size == 0
    assert set(y[result.val_indices]) == set(range(5))  # every class validated
    assert result.val_labels.size == result.val_spectra.shape[0] == 20 * result.val_indices.size
    assert metrics["val_accuracy"] >= 0.9
    assert metrics["val_balanced_accuracy"] >= 0.9


def test_module_works_without_torch_and_onnxruntime(tmp_path):
    """Preprocessing needs numpy only; training and inference say which package is missing."""
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import importlib.util, sys\n"
        "sys.modules['torch'] = None; sys.modules['onnxruntime'] = None\n"
        f"spec = importlib.util.spec_from_file_location('oremap', r'{ROOT}/__init__.py', "
        f"submodule_search_locations=[r'{ROOT}'])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['oremap'] = m; spec.loader.exec_module(m)\n"
        "import numpy as np\n"
        "from oremap.core.hyperspectral import spectral_cnn as sc\n"
        "from oremap.core.engine import model_format as mf, spectra\n"
        "from oremap.core.engine.errors import OreMapError\n"
        "print(spectra.preprocess(np.ones((2, 16)), 'continuum_removal').sum())\n"
        "try:\n"
        "    sc.train_classifier(np.random.rand(10, 16), np.repeat([0, 1], 5), ['a', 'b'])\n"
        "except OreMapError as e:\n"
        "    print(e.parameter, 'torch' in e.message, 'pip install torch' in e.fix)\n"
        "try:\n"
        f"    mf.OnnxModel(sys.argv[1])\n"
        "except OreMapError as e:\n"
        "    print(e.parameter, 'onnxruntime' in e.message, 'pip install onnxruntime' in e.fix)\n"
    )
    from test_model_format import make_info, softmax_graph

    from oremap.core.engine.model_format import write_model

    path = write_model(softmax_graph(), make_info(), tmp_path / "m.onnx")
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["32.0", "training True True", "model True True"]


JASPER = os.path.join(os.path.dirname(USGS_LIBRARY), "jasper_ridge_40x40.tif")
PIXEL_CLASSES = {"Alunite": 0, "Kaolinite": 1, "Halloysite": 2, "Montmorillonite": 3, "Muscovite": 4, "Jarosite": 5}


def labelled_pixels(n_per_class=25, seed=0):
    """Labelled pixels as a scene gives them: a USGS mineral spectrum (grouped by physical sample) mixed with a
    real Jasper Ridge pixel (mineral fraction 0.5-1), illumination 0.75-1.15, noise of SNR 50-200, on the 198
    AVIRIS channels the scene keeps (bench/experiment_cnn_accuracy.py builds the full benchmark this way)."""
    import rasterio

    from oremap.core.hyperspectral.training import class_from_name, sample_id

    lib = read_library(FULL_LIBRARY)
    with rasterio.open(JASPER) as ds:
        background = ds.read().reshape(ds.count, -1).T / 10000.0
        centres = np.array([float(ds.tags(i)["wavelength"]) for i in range(1, ds.count + 1)])
    channels = np.array([np.argmin(np.abs(lib.wavelengths - c)) for c in centres])
    spectra, labels, samples = [], [], []
    for name, spectrum in zip(lib.names, lib.spectra):
        label = PIXEL_CLASSES.get(class_from_name(name))
        if label is not None and np.isfinite(spectrum[channels]).all():
            spectra.append(spectrum[channels])
            labels.append(label)
            samples.append(sample_id(name))
    spectra, labels, samples = np.array(spectra), np.array(labels), np.array(samples)
    rng = np.random.default_rng(seed)
    X, y, groups = [], [], []
    for c in range(len(PIXEL_CLASSES)):
        names = np.unique(samples[labels == c])
        for i in range(n_per_class):
            rows = np.flatnonzero(samples == names[i % names.size])
            a = rng.uniform(0.5, 1.0)
            x = rng.uniform(0.75, 1.15) * (a * spectra[rng.choice(rows)]
                                           + (1 - a) * background[rng.integers(background.shape[0])])
            X.append(x + x.mean() / rng.uniform(50, 200) * rng.standard_normal(x.size))
            y.append(c)
            groups.append(names[i % names.size])
    return np.array(X), np.array(y), np.array(groups), centres


@pytest.mark.skipif(not os.path.exists(FULL_LIBRARY), reason="full USGS library not in the shared data")
def test_default_training_classifies_pixels_of_unseen_samples(tmp_path):
    """train_and_report with the defaults of oremap:train_spectral_cnn for labelled pixels (continuum removal, 5
    augmented copies per pixel, refit, one network) on 150 labelled pixels of six minerals; the pixels of whole physical samples never trained on are classified
    through the saved model."""
    from oremap.core.engine.model_format import OnnxModel
    from oremap.core.engine.wavelengths import BandInfo
    from oremap.core.hyperspectral import cnn_training
    from oremap.core.hyperspectral.training import TrainingSet

    needs_torch()
    X, y, groups, centres = labelled_pixels()
    held_out = np.isin(groups, [groups[y == c][-1] for c in range(len(PIXEL_CLASSES))])  # one sample per class
    names = list(PIXEL_CLASSES)
    data = TrainingSet(X=X[~held_out].astype(np.float32), y=y[~held_out], groups=np.arange((~held_out).sum()),
                       class_names=names, band_info=BandInfo(centers=centres, fwhm=None, bad=None), source="image")
    summary = cnn_training.train_and_report(data, tmp_path / "pixels.onnx", seed=42,
                                            augment_copies=cnn_training.PIXEL_AUGMENT_COPIES)
    info = summary["info"]
    # image pixels: the source is recorded (the model's bands are then read as a scene's good bands) and the
    # feature view of the out-of-distribution check is on without being asked for
    assert info.training["source"] == "image" and info.training["parameters"]["feature_check"] is True
    assert OnnxModel(tmp_path / "pixels.onnx", threads=1).info.training["source"] == "image"
    assert info.training["parameters"]["ensemble"] == cnn_training.ENSEMBLE_DEFAULT == 1
    assert info.training["parameters"]["augment_options"]["n_per_spectrum"] == 5
    assert info.training["parameters"]["refit"] is True and info.preprocessing_method == "continuum_removal"
    # each labelled pixel its own group: the out-of-distribution thresholds carry the margin for new samples, wider
    # for the angle views with the feature view beside them
    assert info.training["ood"]["calibration"] == "held-out groups"
    assert info.training["ood"]["margin"] == ood.PIXEL_MARGIN == 2.0
    assert info.training["ood"]["feature"]["margin"] == ood.FEATURE_PIXEL_MARGIN == 1.0
    assert info.training["ood"]["feature"]["calibration"] == "held-out groups"
    # the report's figures are the held-out pixels' as they are (on augmented copies, mixed with other classes and
    # shaded, SAM looked 8-15 points worse than on the pixels): the CNN's from the validated network, SAM's from the
    # training pixels' class means, both on data.X[val_indices]
    result, val = summary["result"], summary["result"].val_indices
    assert summary["n_validation"] == val.size and result.val_labels.size == 5 * val.size
    assert summary["cnn"]["overall_accuracy"] == pytest.approx(np.mean(result.source_proba.argmax(axis=1) ==
                                                                       data.y[val]))
    train = result.train_indices
    means = np.array([data.X[train][data.y[train] == c].mean(axis=0) for c in range(len(names))])
    cosine = (data.X[val] @ means.T) / np.linalg.norm(data.X[val], axis=1)[:, None] / np.linalg.norm(means, axis=1)
    assert summary["sam"]["overall_accuracy"] == pytest.approx(np.mean(cosine.argmax(axis=1) == data.y[val]))
    metrics = info.training["metrics"]
    assert metrics["val_accuracy"] == summary["cnn"]["overall_accuracy"] and metrics["n_validation"] == val.size
    assert metrics["sam_val_accuracy"] == summary["sam"]["overall_accuracy"]
    assert 0 < metrics["val_copies_accuracy"] <= 1 and metrics["validation_counts"] == "held-out pixels"
    pred = sc.predict_proba(OnnxModel(tmp_path / "pixels.onnx", threads=1), X[held_out]).argmax(axis=1)
    assert held_out.sum() == 23 and set(y[held_out]) == set(range(6))   # splits of a sample are one sample
    assert np.mean(pred == y[held_out]) >= 0.9


def test_outlier_exposure_lowers_confidence_on_minerals_of_neither_set():
    """Outlier exposure (Hendrycks et al. 2019) on the 24-spectrum test library: five classes (kaolinite, alunite,
    calcite, goethite, green grass), six other minerals as outliers, and six further minerals that neither the
    classes nor the outliers hold as the test. Same seed and data with and without exposure: the network stays as
    accurate on its classes, and far fewer spectra of the test minerals get a confidence of 0.5 or more
    (measured: 90 % without exposure, 68 % with)."""
    needs_torch()
    lib = read_library(USGS_LIBRARY)
    first = [n.split()[0] for n in lib.names]

    def rows(minerals):
        return [i for i, m in enumerate(first) if m in minerals]

    classes = rows(["Kaolinite", "Alunite", "Calcite", "Goethite", "Lawn_Grass"])
    outliers = rows(["Gypsum", "Buddingtonite", "Epidote", "Pyrophyllite", "Jarosite", "Opal"])
    others = rows(["Chlorite", "Montmorillonite", "Dickite", "Hematite", "Nontronite", "Muscovite"])
    wl = lib.wavelengths
    X, y, _ = sc.augment(lib.spectra[classes], np.arange(5), np.arange(5), 40, 0, wavelengths=wl)
    test_classes, test_y, _ = sc.augment(lib.spectra[classes], np.arange(5), np.arange(5), 20, 2, wavelengths=wl)
    test_others, _, _ = sc.augment(lib.spectra[others], np.arange(6), np.arange(6), 20, 1, wavelengths=wl)
    confident, accuracy, exposure = [], [], []
    for weight in (0.0, 0.5):
        result = sc.train_classifier(X, y, SUBSET_CLASSES, wavelengths=wl, preprocessing="continuum_removal",
                                     epochs=40, seed=0, val_fraction=0, network_options=TINY,
                                     outliers=lib.spectra[outliers] if weight else None, outlier_weight=weight)
        module = result.torch_model
        p_others = spectral_network.predict_proba_torch(module, spectra.preprocess(test_others, "continuum_removal", wl))
        p_classes = spectral_network.predict_proba_torch(module, spectra.preprocess(test_classes, "continuum_removal", wl))
        confident.append(float((p_others.max(axis=1) >= 0.5).mean()))
        accuracy.append(float((p_classes.argmax(axis=1) == test_y).mean()))
        exposure.append(result.info.training["parameters"]["outlier_exposure"])
    assert accuracy[0] >= 0.98 and accuracy[1] >= 0.98
    assert confident[0] >= 0.85
    assert confident[1] <= confident[0] - 0.15
    assert exposure == [None, {"n_spectra": 6, "n_materials": 6, "weight": 0.5, "materials": None}]


def test_outlier_exposure_refuses_spectra_of_other_bands():
    needs_torch()
    X = np.random.default_rng(0).uniform(0.1, 0.5, (20, 32))
    y = np.repeat([0, 1], 10)
    with pytest.raises(OreMapError, match="with 32 bands") as err:
        sc.train_classifier(X, y, ["a", "b"], outliers=X[:4, :30])
    assert err.value.parameter == "outliers"
    with pytest.raises(OreMapError, match="outlier weight"):
        sc.train_classifier(X, y, ["a", "b"], outliers=X[:4], outlier_weight=-1)


def test_training_curve_is_the_classes_loss_measured_as_the_validation_one():
    """With outlier exposure the loss optimised is the classes' cross-entropy plus weight x the outliers'
    cross-entropy to a flat output (at least weight x ln K); the validation curve has no such term. The training
    curve records the classes' part alone, measured as the validation curve is, and the outliers' term apart.
    Known answer: a network that does not change (learning rate 0), validated on its own training spectra, gives
    both curves the same value every epoch: the loss function over all the spectra at once (class weights, label
    smoothing, batches of uneven class make-up). Before, the training curve was about 2 ln 3 higher."""
    needs_torch()
    import torch

    rng = np.random.default_rng(3)
    Z = rng.normal(size=(50, 12)).astype(np.float32)
    y = np.repeat([0, 1, 2], [10, 15, 25]).astype(np.int64)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([2.0, 1.0, 0.5]), label_smoothing=0.1)
    torch.manual_seed(0)
    net = torch.nn.Linear(12, 3)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.0)
    exposure = sc._Exposure(torch, rng.normal(size=(7, 12)), np.zeros(12, np.float32), np.ones(12, np.float32), 2.0,
                            np.random.default_rng(1))
    history = {"train_loss": [], "val_loss": [], "train_acc": [], "val_acc": []}
    sc._fit(net, torch, optimiser, loss_fn, (torch.from_numpy(Z), torch.from_numpy(y)), (Z, y), history,
            np.random.default_rng(2), (3, 16, 10, 1), Feedback(), exposure)   # batches of 16, 16, 16 and 2
    with torch.no_grad():
        expected = float(loss_fn(net(torch.from_numpy(Z)), torch.from_numpy(y)))
    np.testing.assert_allclose(history["train_loss"], [expected] * 3, rtol=1e-5)
    np.testing.assert_allclose(history["val_loss"], history["train_loss"], rtol=1e-5)
    assert history["train_acc"] == pytest.approx(history["val_acc"])
    assert len(history["train_outlier_loss"]) == 3 and min(history["train_outlier_loss"]) >= 2.0 * np.log(3) - 1e-5


def test_outlier_weight_leaves_the_training_curve_and_the_report_compares_like_with_like(tmp_path):
    """train_and_report with outlier exposure, one batch per epoch: the first epoch's forward pass is the same
    whatever the outlier weight, so its training loss (the classes' cross-entropy) is the same for weights 0.5
    and 2, and the recorded outliers' term four times larger; the model's figure is the curve's, and the report
    says what the loss chart shows and draws the outliers' term on its own."""
    from oremap.core.engine.wavelengths import BandInfo
    from oremap.core.hyperspectral import cnn_training
    from oremap.core.hyperspectral.training import TrainingSet

    needs_torch()
    lib = read_library(USGS_LIBRARY)
    first = [n.split()[0] for n in lib.names]
    classes = [first.index(m) for m in ["Kaolinite", "Alunite", "Calcite", "Goethite", "Lawn_Grass"]]
    outliers = [i for i, m in enumerate(first) if m in ("Gypsum", "Buddingtonite", "Epidote", "Jarosite")]
    X, y, _ = sc.augment(lib.spectra[classes], np.arange(5), np.arange(5), 20, 0, wavelengths=lib.wavelengths)
    bands = BandInfo(centers=lib.wavelengths, fwhm=lib.fwhm, bad=None)
    data = TrainingSet(X=X, y=y, groups=np.arange(y.size), class_names=SUBSET_CLASSES, band_info=bands,
                       source="library")
    others = TrainingSet(X=lib.spectra[outliers], y=np.arange(len(outliers)), groups=np.arange(len(outliers)),
                         class_names=[first[i] for i in outliers], band_info=bands, source="outliers")
    runs = {}
    for weight in (0.5, 2.0):
        runs[weight] = cnn_training.train_and_report(
            data, tmp_path / f"m{weight}.onnx", tmp_path / f"r{weight}.html", epochs=2, batch_size=128, patience=5,
            network=TINY, refit=False, outliers=others, outlier_weight=weight, seed=0)
    a, b = runs[0.5]["history"], runs[2.0]["history"]
    assert a["train_loss"][0] == pytest.approx(b["train_loss"][0], rel=1e-6)
    assert b["train_outlier_loss"][0] == pytest.approx(4 * a["train_outlier_loss"][0], rel=1e-5)
    assert a["train_outlier_loss"][0] >= 0.5 * np.log(5) - 1e-5
    metrics = runs[0.5]["info"].training["metrics"]
    assert metrics["train_loss"] == a["train_loss"][metrics["best_epoch"] - 1]
    html = open(tmp_path / "r0.5.html", encoding="utf-8").read()
    assert "classes&#x27; cross-entropy" in html   # the loss chart's axis (escaped)
    assert "Outlier exposure (training)" in html and "left out of the training line" in html


def test_without_refit_an_ensembles_figures_are_those_of_the_saved_average(tmp_path):
    """REFIT off and ENSEMBLE 3: the report and the model's metadata gave the first network's validation figures
    (accuracy 0.396 where the saved average scored 0.563 on the same held-out spectra)."""
    from oremap.core.engine.model_format import OnnxModel, read_model_info
    from oremap.core.engine.wavelengths import BandInfo
    from oremap.core.hyperspectral import cnn_training
    from oremap.core.hyperspectral.training import TrainingSet

    needs_torch()
    lib = read_library(USGS_LIBRARY)
    want = ["Kaolinite", "Dickite", "Halloysite", "Illite", "Muscovite", "Montmorillonite"]
    first = [n.split()[0] for n in lib.names]
    rows = [first.index(w) for w in want]
    X, y, _ = sc.augment(lib.spectra[rows], np.arange(6), np.arange(6), 24, 0, snr_db=(8, 14),
                         wavelengths=lib.wavelengths)
    data = TrainingSet(X=X.astype(np.float32), y=y, groups=y * 100 + (np.arange(y.size) % 24) // 6,
                       class_names=want, band_info=BandInfo(centers=np.asarray(lib.wavelengths), fwhm=None, bad=None),
                       source="library")
    model, report = str(tmp_path / "m.onnx"), str(tmp_path / "r.html")
    out = cnn_training.train_and_report(data, model, report, preprocessing="continuum_removal", epochs=6, seed=1,
                                        network={"channels": (8, 16, 32), "kernels": (7, 5, 3), "hidden": 32},
                                        refit=False, ensemble=3, min_epochs=6, patience=50)
    result = out["result"]
    saved = sc.predict_proba(OnnxModel(model, threads=1), result.val_spectra).argmax(axis=1)
    truth = np.asarray(result.val_labels)
    metrics = read_model_info(model).training["metrics"]
    assert metrics["val_accuracy"] == pytest.approx(float((saved == truth).mean()), abs=1e-9)
    assert (result.val_proba.argmax(axis=1) == saved).all()
    assert "the other networks, averaged; the figures below are the average" in open(report, encoding="utf-8").read()
