"""Tests for core.engine.unmixing: exact FCLS/NNLS against independent references.

Endmembers are real USGS mineral spectra (splib07, AVIRIS-1995 resampling)
read from the shared ENVI spectral library. Mixtures use sparse abundances on
the simplex, a brightness factor, noise, and pixels pushed outside the simplex
so the constraints are active.
"""

import itertools
import os

import numpy as np
import pytest
from scipy.optimize import nnls

from conftest import SHARED_DATA, core_warnings
from fcls_reference import kkt_violation, mixtures, weighted_nnls
from oremap.core.engine.errors import Cancelled, OreMapError
from oremap.core.engine.feedback import Feedback
from oremap.core.engine import unmixing
from oremap.core.hyperspectral.spectral_library import read_library
from oremap.core.engine.unmixing import check_endmembers, fcls, unmix

LIBRARY = os.path.join(SHARED_DATA, "hyperspectral", "s07_AV95_envi")
MINERALS = (
    "Kaolinite CM9 BECKb AREF",
    "Alunite GDS82 Na82 BECKb AREF",
    "Muscovite GDS107 BECKa AREF",
    "Calcite CO2004 BECKb AREF",
    "Goethite HS36.3 BECKb AREF",
    "Hematite FE2602 BECKb AREF",
    "Montmorillonite SAz-1 BECKb AREF",
    "Jarosite GDS24 Na BECKb AREF",
)


@pytest.fixture(scope="module")
def library():
    """All 8 minerals on every other AVIRIS channel: E of shape (112, 8)."""
    if not os.path.exists(LIBRARY + ".sli"):
        pytest.skip("USGS spectral library not available in shared/data")
    E = read_library(LIBRARY + ".sli").subset(list(MINERALS)).spectra.T[::2]
    assert np.isfinite(E).all()
    return E


def _brute_force(X, E, sum_to_one):
    """Global optimum by enumerating every support (independent of the module).

    For each subset S, the equality-constrained least squares is solved in a
    null-space form with lstsq on the spectra themselves (no normal
    equations): a_last = 1 - sum(others). Feasible solutions compete on the
    directly computed objective.
    """
    n, p = X.shape[0], E.shape[1]
    best = np.full(n, np.inf)
    A = np.zeros((n, p))
    if not sum_to_one:  # the empty support: a = 0
        best = (X ** 2).sum(axis=1)
    for k in range(1, p + 1):
        for support in itertools.combinations(range(p), k):
            S = list(support)
            ES = E[:, S]
            if sum_to_one:
                D = ES[:, :-1] - ES[:, -1:]
                z = np.linalg.lstsq(D, (X - ES[:, -1]).T, rcond=None)[0].T
                aS = np.hstack([z, 1.0 - z.sum(axis=1, keepdims=True)])
            else:
                aS = np.linalg.lstsq(ES, X.T, rcond=None)[0].T
            obj = ((aS @ ES.T - X) ** 2).sum(axis=1)
            better = (aS >= 0).all(axis=1) & (obj < best)
            best[better] = obj[better]
            A[better] = 0.0
            A[np.ix_(better, S)] = aS[better]
    return A, best


# ---------------------------------------------------------------------------
# fcls: exactness against independent references
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 3, 6, 8])
@pytest.mark.parametrize("sum_to_one", [True, False])
def test_matches_brute_force(library, p, sum_to_one):
    rng = np.random.default_rng(p)
    E = library[:, :p]
    X = mixtures(E, 120 if p == 8 else 300, rng)
    A = fcls(X, E, sum_to_one=sum_to_one)
    A_ref, obj_ref = _brute_force(X, E, sum_to_one)
    assert (A == 0).any(), "data should make some constraints active"
    np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-6)
    obj = ((A @ E.T - X) ** 2).sum(axis=1)
    assert np.all(obj <= obj_ref * (1 + 1e-12) + 1e-15)


@pytest.mark.parametrize("p", [2, 3, 6, 8])
def test_matches_scipy_weighted_row(library, p):
    rng = np.random.default_rng(100 + p)
    E = library[:, :p]
    X = mixtures(E, 200, rng)
    A = fcls(X, E)
    A_ref = weighted_nnls(X, E)
    # The penalty only approximates sum(a) = 1 (to ~1e-6), hence 1e-5.
    np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-5)
    # Against the rescaled (feasible) reference ours is never worse.
    A_feas = A_ref / A_ref.sum(axis=1, keepdims=True)
    res = np.linalg.norm(A @ E.T - X, axis=1)
    res_ref = np.linalg.norm(A_feas @ E.T - X, axis=1)
    assert np.all(res <= res_ref + 1e-12)


def test_nnls_matches_scipy(library):
    rng = np.random.default_rng(7)
    E = library[:, :6]
    X = mixtures(E, 200, rng) * rng.uniform(0.2, 2.0, size=(200, 1))
    X[:5] = -X[:5]  # all-negative pixels: the answer is a = 0
    A = fcls(X, E, sum_to_one=False)
    A_ref = np.array([nnls(E, x)[0] for x in X])
    np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-9)
    assert np.all(A[:5] == 0)


def test_pure_endmembers_are_one_hot(library):
    E = library
    eye = np.eye(E.shape[1])
    np.testing.assert_allclose(fcls(E.T, E), eye, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fcls(E.T, E, sum_to_one=False), eye, rtol=0, atol=1e-12)


def test_noiseless_mixtures_are_recovered(library):
    rng = np.random.default_rng(3)
    E = library[:, :6]
    A_true = rng.dirichlet(np.full(6, 0.5), size=400)
    A_true[rng.random(A_true.shape) < 0.4] = 0.0
    A_true[A_true.sum(axis=1) == 0, 0] = 1.0
    A_true /= A_true.sum(axis=1, keepdims=True)
    X = A_true @ E.T
    np.testing.assert_allclose(fcls(X, E), A_true, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fcls(X, E, sum_to_one=False), A_true, rtol=0, atol=1e-8)


@pytest.mark.parametrize("p", [3, 8])
@pytest.mark.parametrize("sum_to_one", [True, False])
def test_feasible_and_kkt(library, p, sum_to_one):
    rng = np.random.default_rng(11 * p)
    E = library[:, :p]
    X = mixtures(E, 2000, rng, outside=0.4)
    A = fcls(X, E, sum_to_one=sum_to_one)
    assert A.dtype == np.float64 and A.shape == (2000, p)
    assert A.min() >= 0
    if sum_to_one:
        np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert kkt_violation(X, E, A, sum_to_one).max() < 1e-9


@pytest.mark.parametrize("k", [2, 3, 6])
@pytest.mark.parametrize("sum_to_one", [True, False])
def test_rank_deficient_endmembers(library, k, sum_to_one):
    # The first spectrum twice: R is singular; the split between the twins is
    # arbitrary but their total and the fit must be right. Vertices and edge
    # midpoints are the cases where rounding in R could be mistaken for a
    # real (tiny) difference between the twins.
    rng = np.random.default_rng(5)
    Ek = library[:, :k]
    E = np.column_stack([Ek, Ek[:, 0]])
    i, j = np.triu_indices(k, 1)
    midpoints = (Ek[:, i] + Ek[:, j]).T / 2
    X = np.vstack([Ek.T, midpoints, mixtures(Ek, 200, rng)])
    A = fcls(X, E, sum_to_one=sum_to_one)
    A_ref, obj_ref = _brute_force(X, Ek, sum_to_one)
    assert A.min() >= 0
    if sum_to_one:
        np.testing.assert_allclose(A.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(A[:, 1:k], A_ref[:, 1:], atol=1e-6)
    np.testing.assert_allclose(A[:, 0] + A[:, k], A_ref[:, 0], atol=1e-6)
    obj = ((A @ E.T - X) ** 2).sum(axis=1)
    assert np.all(obj - obj_ref <= 1e-12 * (X ** 2).sum(axis=1))


@pytest.mark.parametrize("sum_to_one", [True, False])
def test_look_alike_endmembers_stay_exact(library, sum_to_one):
    # Two spectra 1e-5 apart (cond(E) ~ 1e6): normal equations (cond^2 ~ 1e12)
    # lose most digits here; the QR-based solver must still match brute force.
    rng = np.random.default_rng(17)
    E = library[:, :4].copy()
    E[:, 1] = E[:, 0] * (1 + 1e-5 * rng.standard_normal(E.shape[0]))
    A_true = rng.dirichlet(np.ones(4), size=200)
    X = A_true @ E.T
    X[100:] += 1e-3 * rng.standard_normal((100, E.shape[0]))
    A = fcls(X, E, sum_to_one=sum_to_one)
    _, obj_ref = _brute_force(X, E, sum_to_one)
    obj = ((A @ E.T - X) ** 2).sum(axis=1)
    scale = (X ** 2).sum(axis=1)
    assert np.all(obj - obj_ref <= 1e-14 * scale)
    np.testing.assert_allclose(A[:100], A_true[:100], atol=1e-6)


def test_float32_input_and_small_example():
    E = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(fcls([[0.25, 0.75, 1.0]], E), [[0.25, 0.75]], atol=1e-15)
    # Outside the segment: projected onto the nearest vertex.
    np.testing.assert_allclose(fcls([[2.0, -1.0, 1.0]], E), [[1.0, 0.0]], atol=1e-15)
    # Least squares along the segment: a = (0.75, 0.25) exactly.
    np.testing.assert_allclose(fcls([[1.0, 0.5, 1.0]], E), [[0.75, 0.25]], atol=1e-15)
    X = np.array([[0.3, 0.6, 0.9]], dtype=np.float32)
    np.testing.assert_allclose(fcls(X, E), fcls(X.astype(np.float64), E), atol=1e-15)


# ---------------------------------------------------------------------------
# unmix
# ---------------------------------------------------------------------------
class _Recorder(Feedback):
    def __init__(self, cancel_after=None):
        self.percents, self.warnings = [], []
        self._cancel_after = cancel_after

    def progress(self, percent):
        self.percents.append(percent)

    def warning(self, message):
        self.warnings.append(message)

    def is_canceled(self):
        return self._cancel_after is not None and len(self.percents) >= self._cancel_after


def test_unmix_fcls(library, monkeypatch):
    monkeypatch.setattr(unmixing, "CHUNK_PIXELS", 300)  # several chunks
    rng = np.random.default_rng(21)
    E = library[:, :6]
    X = mixtures(E, 1000, rng).astype(np.float32)
    fb = _Recorder()
    A, rmse = unmix(X, E, feedback=fb)
    assert A.dtype == np.float32 and rmse.dtype == np.float32
    assert A.min() >= 0
    np.testing.assert_allclose(A.sum(axis=1, dtype=np.float64), 1.0, atol=1e-6)
    A64 = fcls(X, E)
    np.testing.assert_allclose(A, A64, atol=1e-6)
    expected = np.sqrt(np.mean((X - A64 @ E.T) ** 2, axis=1))
    np.testing.assert_allclose(rmse, expected, rtol=1e-6)
    assert fb.percents == pytest.approx([30.0, 60.0, 90.0, 100.0])
    assert fb.warnings == []


def test_unmix_noiseless_rmse_is_zero(library):
    E = library[:, :4]
    A_true = np.array([[0.5, 0.5, 0, 0], [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 1.0]])
    A, rmse = unmix(A_true @ E.T, E)
    np.testing.assert_allclose(A, A_true, atol=1e-7)
    assert rmse.max() < 1e-12


@pytest.mark.parametrize("c", [0.3, 2.0])
def test_nn_closed_is_scale_invariant(library, c):
    rng = np.random.default_rng(31)
    E = library[:, :6]
    X = mixtures(E, 500, rng)
    A, rmse = unmix(X, E, mode="nn_closed")
    A_c, rmse_c = unmix(c * X, E, mode="nn_closed")
    np.testing.assert_allclose(A_c, A, atol=1e-6)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, atol=1e-6)
    # The misfit is that of the NNLS fit before closure, so it scales with c.
    np.testing.assert_allclose(rmse_c, c * rmse, rtol=1e-5)
    A_nnls = fcls(X, E, sum_to_one=False)
    expected = np.sqrt(np.mean((X - A_nnls @ E.T) ** 2, axis=1))
    np.testing.assert_allclose(rmse, expected, rtol=1e-6)


def test_nn_closed_recovers_shaded_mixture(library):
    E = library[:, :3]
    A_true = np.array([[0.2, 0.3, 0.5]])
    A, rmse = unmix(0.4 * A_true @ E.T, E, mode="nn_closed")
    np.testing.assert_allclose(A, A_true, atol=1e-6)
    assert rmse[0] < 1e-7
    # Strict FCLS cannot explain the darker pixel; its misfit is large.
    assert unmix(0.4 * A_true @ E.T, E)[1][0] > 0.05


def test_nn_closed_zero_fit_gives_nan(library):
    E = library[:, :3]
    X = np.vstack([np.zeros(E.shape[0]), -E[:, 0], 0.5 * E[:, 1]])
    A, rmse = unmix(X, E, mode="nn_closed")
    assert np.isnan(A[:2]).all()
    np.testing.assert_allclose(A[2], [0, 1, 0], atol=1e-7)
    np.testing.assert_allclose(rmse[1], np.sqrt(np.mean(E[:, 0] ** 2)), rtol=1e-6)


def test_unmix_cancel_and_bad_mode(library, monkeypatch):
    monkeypatch.setattr(unmixing, "CHUNK_PIXELS", 100)
    E = library[:, :3]
    X = mixtures(E, 400, np.random.default_rng(0))
    with pytest.raises(Cancelled):
        unmix(X, E, feedback=_Recorder(cancel_after=2))
    with pytest.raises(OreMapError) as err:
        unmix(X, E, mode="sum_to_one")
    assert err.value.parameter == "mode"
    with pytest.raises(OreMapError) as err:
        unmix(X[:, :-1], E)
    assert "bands" in err.value.message


# ---------------------------------------------------------------------------
# check_endmembers
# ---------------------------------------------------------------------------
def test_check_endmembers_accepts_good_input(library):
    names = ["kaolinite", "alunite", "muscovite", "calcite"]
    assert check_endmembers(library[:, :4], names) is None


@pytest.mark.parametrize(
    "E, names, words",
    [
        (np.ones((10, 1)), ["kaolinite"], ["at least 2", "1 given"]),
        (np.arange(30.0).reshape(10, 3), ["kaolinite", "alunite", "kaolinite"],
         ["unique", "'kaolinite'"]),
        (np.arange(30.0).reshape(10, 3), ["a", "b"], ["3 endmember", "2 names"]),
        (np.arange(8.0).reshape(2, 4), ["a", "b", "c", "d"], ["4 endmembers", "2 usable bands"]),
        (np.where(np.arange(30).reshape(10, 3) == 4, np.nan, 1.0), ["a", "b", "c"],
         ["missing", "'b' (1 bands)"]),
        (np.ones(10), ["a"], ["bands x endmembers"]),
    ],
)
def test_check_endmembers_errors(E, names, words):
    with pytest.raises(OreMapError) as err:
        check_endmembers(E, names)
    assert err.value.parameter == "endmembers"
    assert err.value.fix
    for word in words:
        assert word in err.value.message


# ---------------------------------------------------------------------------
# Residual of the closed abundances (issue 23) and the scale-mismatch hint (issue 22)
# ---------------------------------------------------------------------------
def test_closed_abundances_residual_known_values(library):
    E = library[:, :3]
    A_true = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    X = 0.4 * A_true @ E.T  # a shaded scene: 40 % of the endmembers' brightness
    A, rmse = unmix(X, E, mode="nn_closed")
    np.testing.assert_allclose(A, A_true, atol=1e-6)
    assert rmse.max() < 1e-7  # the non-negative fit (free brightness) explains the pixels exactly
    closed = unmixing.reconstruction_rmse(X, A, E)
    # the closed abundances reproduce the pixels at the endmembers' brightness: residual = 0.6 x the mixture's rms
    expected = 0.6 * np.sqrt(np.mean((A_true @ E.T) ** 2, axis=1))
    np.testing.assert_allclose(closed, expected, rtol=1e-5)
    assert closed.dtype == np.float32
    # a pixel without proportions (NaN abundances) has no residual either
    nan_row = unmixing.reconstruction_rmse(X[:1], np.full((1, 3), np.nan), E)
    assert np.isnan(nan_row[0])


def jasper_scene():
    """The real Jasper Ridge window as reflectance (pixels x bands) and three of its own pixels as endmembers
    (water, vegetation, road), picked by their spectra as in test_algorithms."""
    import rasterio

    from oremap.core.engine.wavelengths import band_info_from_raster

    with rasterio.open(os.path.join(os.path.dirname(__file__), "data", "jasper_ridge_40x40.tif")) as ds:
        refl = ds.read().astype(np.float64) / 10000.0
        info = band_info_from_raster(ds)
    nir, red, swir = (refl[np.argmin(abs(info.centers - wl))] for wl in (860, 660, 1650))
    picks = [np.unravel_index(np.argmin(nir), nir.shape),
             np.unravel_index(np.argmax((nir - red) / (nir + red)), nir.shape),
             np.unravel_index(np.argmax(swir * (nir < 1.3 * red)), nir.shape)]
    E = np.column_stack([refl[:, r, c] for r, c in picks])
    return refl.reshape(refl.shape[0], -1).T, E


def _hint(X, E, step=1):
    A, rmse = unmix(X, E)
    sums = unmixing.scale_sums(X, E, rmse, step=step)
    names = ["water", "vegetation", "road"]
    return sums, unmixing.scale_mismatch_hint(sums, dict(zip(names, A.mean(axis=0))))


def test_scale_mismatch_hint_on_a_real_scene():
    X, E = jasper_scene()
    sums, hint = _hint(X, E)
    # as it is: pixels and endmembers share a scale (geometric mean factor 1.0x), no hint
    assert 2 ** (sums[1] / sums[0]) == pytest.approx(1.0, abs=0.1) and hint is None
    # 0.8 x: a mild difference the strict fit absorbs, no hint
    assert _hint(0.8 * X, E)[1] is None
    for factor in (0.5, 2.0, 10.0):
        sums, hint = _hint(factor * X, E)
        measured = 2 ** (sums[1] / sums[0])
        assert measured == pytest.approx(factor, rel=0.12)  # the non-negative fit finds the factor
        assert hint is not None and f"about {measured:.2g} times as bright" in hint
        assert "scale-invariant" in hint and "SCALE" in hint
        # the RMSEs quoted are those of the pixels sampled, and say so (they differ from the scene's mean RMSE)
        assert f"(mean RMSE {sums[2] / sums[0]:.3g} against {sums[3] / sums[0]:.3g} on a sample of " \
               f"{sums[0]:.0f} pixels)" in hint
    # ten times too bright (a scale factor of 1000 for data stored x 10000): vegetation is pushed out
    assert "vegetation is near 0 almost everywhere" in _hint(10.0 * X, E)[1]
    # a sample of every 16th pixel gives the same answer
    assert _hint(0.5 * X, E, step=16)[1] is not None and _hint(X, E, step=16)[1] is None


def test_unmix_map_names_residual_bands_and_warns_of_a_scale_mismatch(tmp_path):
    import rasterio
    from affine import Affine

    from oremap.core.hyperspectral import mapping
    from oremap.core.hyperspectral.spectral_library import SpectralLibrary

    X, E = jasper_scene()
    centers = np.linspace(400.0, 2480.0, E.shape[0])
    lib = SpectralLibrary(names=["water", "vegetation", "road"], wavelengths=centers, spectra=E.T.copy())

    for factor, mode in ((1.0, "fcls"), (0.5, "fcls"), (0.5, "nn_closed")):
        cube = str(tmp_path / f"cube{factor}.tif")
        with rasterio.open(cube, "w", driver="GTiff", width=40, height=40, count=E.shape[0], dtype="float32",
                           crs="EPSG:32610", transform=Affine(30.0, 0, 0, 0, -30.0, 0)) as ds:
            ds.write((factor * X).T.reshape(E.shape[0], 40, 40).astype(np.float32))
        out = str(tmp_path / f"ab_{factor}_{mode}.tif")
        log = core_warnings()
        stats = mapping.unmix_map(cube, lib, out, mode=mode, image_bands=list(range(1, E.shape[0] + 1)),
                                  feedback=log)
        with rasterio.open(out) as ds:
            names, data = ds.descriptions, ds.read().reshape(ds.count, -1).T
        A, rmse = unmix(factor * X, E, mode=mode)
        np.testing.assert_allclose(data[:, :3], A, atol=1e-6)
        np.testing.assert_allclose(data[:, 3], rmse, rtol=1e-5, atol=1e-7)
        if mode == "fcls":
            assert names[3:] == ("RMSE (fully constrained fit)",)
            assert (stats["scale_hint"] is not None) == (factor == 0.5) == bool(log.warnings)
        else:
            assert names[3:] == ("RMSE (non-negative fit)", "RMSE (closed abundances)")
            np.testing.assert_allclose(data[:, 4], unmixing.reconstruction_rmse(factor * X, A, E), rtol=1e-5)
            assert stats["mean_closed_rmse"] > 2 * stats["mean_rmse"] and log.warnings == []


def test_means_of_nn_closed_leave_out_pixels_without_a_fit(tmp_path):
    """Pixels whose non-negative fit is all zero (dark or negative spectra: water, shadow) get nodata abundances,
    but the means divided by every valid pixel: 6 mixtures of 50/50 and 2 negative pixels gave means of 0.375."""
    import rasterio
    from affine import Affine

    from oremap.core.hyperspectral import mapping
    from oremap.core.hyperspectral.spectral_library import SpectralLibrary

    E = np.array([[0.2, 0.5, 0.8, 0.4], [0.6, 0.3, 0.1, 0.5]])
    pixels = np.array([0.5 * E[0] + 0.5 * E[1]] * 6 + [-E[0]] * 2)
    cube = str(tmp_path / "dark.tif")
    with rasterio.open(cube, "w", driver="GTiff", width=4, height=2, count=4, dtype="float32", crs="EPSG:32611",
                       transform=Affine(1, 0, 0, 0, -1, 2)) as ds:
        ds.write(pixels.T.reshape(4, 2, 4).astype(np.float32))
    library = SpectralLibrary(names=["A", "B"], spectra=E, wavelengths=np.arange(1, 5.0), wavelengths_known=False)
    log = core_warnings()
    stats = mapping.unmix_map(cube, library, str(tmp_path / "ab.tif"), mode="nn_closed", image_bands=[1, 2, 3, 4],
                              feedback=log)
    assert stats["valid_pixels"] == 8 and stats["unmixed_pixels"] == 6
    assert stats["mean_abundance"] == pytest.approx({"A": 0.5, "B": 0.5}, abs=1e-6)
    assert stats["mean_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert "2 pixels have no non-negative fit (every abundance zero: dark or negative spectra): their abundances " \
        "are nodata, and the means leave them out." in log.infos


def test_endmembers_of_one_shape_are_warned_of(tmp_path):
    """Kaolinite twice under two names (two libraries, two points on one pixel) or with a darker copy: unmixing split
    its abundance between them arbitrarily without a word (on the AVIRIS-NG tile 0.066 / 0.066 in fcls, and 0.128 /
    0.764 for a copy at half brightness). Now the pair and its angle are warned of; distinct minerals are not."""
    import dataclasses

    from conftest import AVIRIS_NG, USGS_LIBRARY
    from oremap.core.hyperspectral import mapping

    lib = read_library(USGS_LIBRARY).subset(["Kaolinite CM9", "Goethite WS222", "Alunite GDS84"])
    assert unmixing.same_shape_pairs(lib.spectra.T, lib.names) == []
    copy = dataclasses.replace(lib, names=lib.names[:2] + ["kaolinite, darker copy"],
                               spectra=np.vstack([lib.spectra[:2], 0.5 * lib.spectra[:1]]))
    pairs = unmixing.same_shape_pairs(copy.spectra.T, copy.names)
    assert [(a, b) for a, b, _ in pairs] == [(copy.names[0], "kaolinite, darker copy")]
    assert pairs[0][2] == pytest.approx(0.0, abs=1e-6)
    E = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.02]])    # columns 1 and 3: 0.02 rad apart, above the default 0.01
    assert unmixing.same_shape_pairs(E, ["a", "b", "c"]) == []
    assert [p[:2] for p in unmixing.same_shape_pairs(E, ["a", "b", "c"], tolerance=0.03)] == [("a", "c")]
    for library, warned in ((lib, False), (copy, True)):
        log = core_warnings()
        mapping.unmix_map(AVIRIS_NG, library, str(tmp_path / f"{warned}.tif"), feedback=log)
        said = [w for w in log.warnings if w.startswith("Endmembers of nearly the same spectral shape")]
        assert len(said) == int(warned)
        if warned:
            assert f"'{copy.names[0]}' and 'kaolinite, darker copy' (0.00 degrees)" in said[0]


def test_too_few_image_bands_for_the_endmembers_blame_the_image_not_the_library(tmp_path):
    """A 3-band image (650, 1650, 2200 nm) with 5 USGS endmembers: the refusal blamed LIBRARY ('use a library that
    covers more of the image's wavelength range') though the library covers all three bands."""
    import rasterio
    from affine import Affine

    from conftest import USGS_LIBRARY
    from oremap.core.hyperspectral import mapping

    path = str(tmp_path / "three.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=3, dtype="float32", crs="EPSG:32612",
                       transform=Affine(30.0, 0, 500000.0, 0, -30.0, 4200000.0)) as ds:
        ds.write(np.random.default_rng(0).uniform(0.1, 0.4, (3, 4, 4)).astype(np.float32))
        for b, nm in enumerate((650.0, 1650.0, 2200.0), start=1):
            ds.update_tags(b, wavelength=str(nm), wavelength_units="Nanometers")
    names = ["Kaolinite CM9", "Alunite GDS84", "Muscovite GDS107", "Calcite WS272", "Goethite WS222"]
    with pytest.raises(OreMapError) as err:
        mapping.unmix_map(path, read_library(USGS_LIBRARY).subset(names), str(tmp_path / "a.tif"))
    assert err.value.parameter == "raster"
    assert err.value.message == "The image has only 3 good bands, and 5 are needed to separate 5 spectra."
    assert err.value.fix == "Use at most 3 spectra (endmembers), or an image with more bands."
