"""oremap:sam_classify and oremap:unmix_fcls through processing.run on real data.

The cube is a real AVIRIS-NG tile (432 bands, ENVI, rotated UTM grid); references are real
USGS splib07 spectra. Expected values are computed here independently: the library is
interpolated to the image bands with np.interp (the library, sampled every ~10 nm, is too
coarse for the 5 nm AVIRIS-NG response, so the algorithm uses linear interpolation too), angles
by the textbook formula, abundances by scipy's NNLS with a heavily weighted sum-to-one row.
"""

import json
import os

import numpy as np
import pytest
import rasterio
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProcessingException, QgsVectorLayer

from conftest import AVIRIS_NG, AVIRIS_NG_2, USGS_LIBRARY
from fcls_reference import weighted_nnls
from oremap.core.hyperspectral.spectral_library import read_library
from oremap.core.engine.wavelengths import band_info_from_raster

MINERALS = ["Kaolinite CM9", "Alunite GDS84", "Muscovite GDS107", "Calcite WS272", "Goethite WS222",
            "Lawn_Grass GDS91"]


def reference_matrix(cube_path=AVIRIS_NG):
    """Image cube (pixels x good bands) and library on those bands, computed independently."""
    with rasterio.open(cube_path) as ds:
        cube = ds.read().reshape(ds.count, -1).T.astype(float)  # row-major pixels
        info = band_info_from_raster(ds)
    lib = read_library(USGS_LIBRARY).subset(MINERALS)
    # good bands the library covers (its first channel is at 383 nm, above the first good band), without
    # the bands whose median reflectance over the scene (fill outside the footprint left out) is negative
    scene = cube[cube.max(axis=1) > cube.min(axis=1)]
    good = ~info.bad & (info.centers >= lib.wavelengths.min()) & (info.centers <= lib.wavelengths.max())
    good &= np.median(scene, axis=0) >= 0
    refs = np.array([np.interp(info.centers[good], lib.wavelengths, s) for s in lib.spectra])
    return cube[:, good], refs, lib.names


@pytest.mark.parametrize("cube", [AVIRIS_NG, AVIRIS_NG_2])
def test_sam_real_tile_matches_independent_angles(run_alg, tmp_path, cube):
    result = run_alg("sam_classify", {
        "INPUT": cube, "LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(MINERALS), "METHOD": 0,
        "THRESHOLD": 0.2, "OUTPUT_CLASSES": str(tmp_path / "classes.tif"),
        "OUTPUT_SCORE": str(tmp_path / "angle.tif")})
    X, refs, names = reference_matrix(cube)
    with rasterio.open(cube) as ds:
        raw = ds.read()
    fill = (raw == raw[:1]).all(axis=0).ravel()  # outside the footprint: one value in every band (tile 2: 60)
    assert fill.sum() == (0 if cube == AVIRIS_NG else 60)
    cos = (X @ refs.T) / np.linalg.norm(X, axis=1)[:, None] / np.linalg.norm(refs, axis=1)[None, :]
    angles = np.arccos(np.clip(cos, -1, 1))
    with rasterio.open(result["OUTPUT_SCORE"]) as ds:
        got_angle = ds.read(1).ravel()
        assert (got_angle[fill] == ds.nodata).all()
    with rasterio.open(result["OUTPUT_CLASSES"]) as ds:
        got_class = ds.read(1).ravel()
        legend = json.loads(ds.tags()["OREMAP_CLASSES"])
        assert ds.colormap(1)[0][:3] == (0, 0, 0)
        assert (got_class[fill] == ds.nodata).all()
    np.testing.assert_allclose(got_angle[~fill], angles.min(axis=1)[~fill], atol=2e-6)
    expected = angles.argmin(axis=1) + 1
    expected[angles.min(axis=1) > 0.2] = 0
    assert np.array_equal(got_class[~fill], expected[~fill])
    if cube == AVIRIS_NG:  # the threshold bites on this tile, but not everywhere
        assert 0 < (expected == 0).sum() < 100
    else:  # every pixel inside the footprint lies within 0.2 rad of a mineral (only the fill was ever beyond)
        assert (expected[~fill] == 0).sum() == 0 and (angles.min(axis=1)[fill] > 2.4).all()
    assert [c["name"] for c in legend] == ["Unclassified"] + names
    assert os.path.exists(str(tmp_path / "classes.qml"))
    assert result["VALID_PIXELS"] == 100 - fill.sum()


def test_unmix_real_tile_matches_reference_solver(run_alg, tmp_path):
    result = run_alg("unmix_fcls", {
        "INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": ", ".join(MINERALS), "MODE": 0,
        "OUTPUT": str(tmp_path / "abundances.tif")})
    X, refs, names = reference_matrix()
    expected = weighted_nnls(X, refs.T)
    with rasterio.open(result["OUTPUT"]) as ds:
        got = ds.read().reshape(ds.count, -1).T
        assert list(ds.descriptions) == names + ["RMSE (fully constrained fit)"]
        assert ds.dtypes[0] == "float32"
        assert ds.crs.to_epsg() == 32612
    np.testing.assert_allclose(got[:, :-1], expected, atol=2e-4)  # weighted-row reference is approximate
    np.testing.assert_allclose(got[:, :-1].sum(axis=1), 1.0, atol=1e-5)
    assert got[:, :-1].min() >= 0.0
    rmse = np.sqrt(np.mean((X - got[:, :-1].astype(float) @ refs) ** 2, axis=1))
    np.testing.assert_allclose(got[:, -1], rmse, rtol=1e-3, atol=1e-5)


def test_closed_mode_is_scale_invariant_on_real_tile(run_alg, tmp_path):
    base = {"LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(MINERALS[:4]), "MODE": 1}
    a = run_alg("unmix_fcls", dict(base, INPUT=AVIRIS_NG, OUTPUT=str(tmp_path / "a.tif")))
    # the same cube, 40 % darker (shade), as a GeoTIFF carrying the wavelengths as band metadata
    with rasterio.open(AVIRIS_NG) as src:
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=src.count, dtype="float32",
                       crs=src.crs, transform=src.transform)
        data = src.read() * 0.6
        envi = src.tags(ns="ENVI")
    dark = str(tmp_path / "dark.tif")
    with rasterio.open(dark, "w", **profile) as dst:
        dst.write(data.astype("float32"))
        dst.update_tags(ns="ENVI", **envi)
    b = run_alg("unmix_fcls", dict(base, INPUT=dark, OUTPUT=str(tmp_path / "b.tif")))
    with rasterio.open(a["OUTPUT"]) as da, rasterio.open(b["OUTPUT"]) as db:
        assert da.descriptions[4:] == ("RMSE (non-negative fit)", "RMSE (closed abundances)")
        np.testing.assert_allclose(da.read()[:4], db.read()[:4], atol=1e-5)
        np.testing.assert_allclose(db.read(5), 0.6 * da.read(5), rtol=1e-4, atol=1e-7)  # RMSE scales
        # the closed abundances times the endmembers, against the pixels: computed independently
        X, refs, _ = reference_matrix()
        refs = refs[:4]
        for data, factor in ((da.read(), 1.0), (db.read(), 0.6)):
            abundances = data[:4].reshape(4, -1).T.astype(float)
            expected = np.sqrt(np.mean((factor * X - abundances @ refs) ** 2, axis=1))
            np.testing.assert_allclose(data[5].ravel(), expected, rtol=2e-3, atol=1e-5)
        # darker pixels leave the proportions alone but not the closed residual
        assert db.read(6).mean() > da.read(6).mean()


def pixel_centre(transform, row, col):
    x, y = transform * (col + 0.5, row + 0.5)
    return x, y


def point_layer(points, crs="EPSG:32612"):
    layer = QgsVectorLayer(f"Point?crs={crs}&field=mineral:string", "endmembers", "memory")
    features = []
    for name, (x, y) in points:
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        f.setAttribute("mineral", name)
        features.append(f)
    layer.dataProvider().addFeatures(features)
    return layer


def test_endmembers_from_points_recover_pure_pixels(run_alg, tmp_path):
    with rasterio.open(AVIRIS_NG) as ds:
        transform = ds.transform  # rotated by 75 degrees
    pixels = {"bright": (1, 2), "dark": (7, 8), "mid": (4, 5)}
    layer = point_layer([(name, pixel_centre(transform, *rc)) for name, rc in pixels.items()])
    try:
        unmix = run_alg("unmix_fcls", {"INPUT": AVIRIS_NG, "POINTS": layer, "NAME_FIELD": "mineral",
                                       "MODE": 0, "OUTPUT": str(tmp_path / "ab.tif")})
        sam = run_alg("sam_classify", {"INPUT": AVIRIS_NG, "POINTS": layer, "NAME_FIELD": "mineral",
                                       "OUTPUT_CLASSES": str(tmp_path / "cl.tif"),
                                       "OUTPUT_SCORE": str(tmp_path / "an.tif")})
    finally:
        del layer
    with rasterio.open(unmix["OUTPUT"]) as ds:
        ab = ds.read()
        assert list(ds.descriptions) == ["bright", "dark", "mid", "RMSE (fully constrained fit)"]
    with rasterio.open(sam["OUTPUT_CLASSES"]) as ds:
        classes = ds.read(1)
    with rasterio.open(sam["OUTPUT_SCORE"]) as ds:
        angle = ds.read(1)
    for k, (r, c) in enumerate(pixels.values()):
        expected = np.zeros(3)
        expected[k] = 1.0
        np.testing.assert_allclose(ab[:3, r, c], expected, atol=1e-5)
        assert ab[3, r, c] == pytest.approx(0.0, abs=1e-6)
        assert classes[r, c] == k + 1
        assert angle[r, c] == pytest.approx(0.0, abs=2e-3)  # float32 arccos near 1


def test_points_in_another_crs_are_reprojected(run_alg, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    with rasterio.open(AVIRIS_NG) as ds:
        transform = ds.transform
    to_wgs84 = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32612"),
                                      QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    pts = []
    for name, rc in {"a": (2, 2), "b": (8, 3)}.items():
        p = to_wgs84.transform(QgsPointXY(*pixel_centre(transform, *rc)))
        pts.append((name, (p.x(), p.y())))
    layer = point_layer(pts, crs="EPSG:4326")
    try:
        res = run_alg("unmix_fcls", {"INPUT": AVIRIS_NG, "POINTS": layer, "NAME_FIELD": "mineral",
                                     "OUTPUT": str(tmp_path / "ab.tif")})
    finally:
        del layer
    with rasterio.open(res["OUTPUT"]) as ds:
        ab = ds.read()
    assert ab[0, 2, 2] == pytest.approx(1.0, abs=1e-5) and ab[1, 8, 3] == pytest.approx(1.0, abs=1e-5)


def test_outputs_load_styled_in_qgis(run_alg, tmp_path):
    from qgis.core import QgsRasterLayer

    sam = run_alg("sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(MINERALS[:3]),
                                   "OUTPUT_CLASSES": str(tmp_path / "c.tif"), "OUTPUT_SCORE": str(tmp_path / "s.tif")})
    unmix = run_alg("unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(MINERALS[:3]),
                                   "OUTPUT": str(tmp_path / "a.tif")})
    classes = QgsRasterLayer(sam["OUTPUT_CLASSES"], "classes")  # loads the .qml beside the file
    score = QgsRasterLayer(sam["OUTPUT_SCORE"], "score")
    abundance = QgsRasterLayer(unmix["OUTPUT"], "abundance")
    try:
        assert classes.renderer().type() == "paletted"
        labels = [c.label for c in classes.renderer().classes()]
        assert labels == ["Unclassified", "Kaolinite CM9 BECKb AREF", "Alunite GDS84 Na03 BECKa AREF",
                          "Muscovite GDS107 BECKa AREF"]
        assert classes.renderer().classes()[1].color.name() == "#1f78b4"  # kaolinite blue
        assert score.renderer().type() == "singlebandpseudocolor"
        assert abundance.renderer().type() == "singlebandpseudocolor"
        assert abundance.renderer().classificationMin() == 0.0 and abundance.renderer().classificationMax() == 1.0
        with rasterio.open(unmix["OUTPUT"]) as ds:
            dominant = 1 + int(np.argmax([ds.read(b).mean() for b in (1, 2, 3)]))
        assert abundance.renderer().band() == dominant
        assert "Kaolinite" in abundance.bandName(1)
    finally:
        del classes, score, abundance


JASPER = os.path.join(os.path.dirname(AVIRIS_NG), "jasper_ridge_40x40.tif")


def test_integer_reflectance_real_scene(run_alg, tmp_path):
    """Jasper Ridge (real AVIRIS, uint16 = reflectance x 10000, no scale metadata): the automatic scale
    gives the same abundances as the same scene stored as float reflectance, and image endmembers
    (water, vegetation, road picked by their spectra) unmix to themselves."""
    with rasterio.open(JASPER) as ds:
        raw = ds.read()
        info = band_info_from_raster(ds)
    reflectance = raw.astype(np.float64) / 10000.0
    nir = reflectance[np.argmin(abs(info.centers - 860))]
    red = reflectance[np.argmin(abs(info.centers - 660))]
    swir = reflectance[np.argmin(abs(info.centers - 1650))]
    picks = {"water": np.unravel_index(np.argmin(nir), nir.shape),
             "vegetation": np.unravel_index(np.argmax((nir - red) / (nir + red)), nir.shape),
             "road": np.unravel_index(np.argmax(swir * (nir < 1.3 * red)), nir.shape)}
    library = tmp_path / "endmembers.csv"
    with open(library, "w") as fh:
        fh.write("wavelength_nm," + ",".join(picks) + "\n")
        for b, wl in enumerate(info.centers):
            fh.write(f"{float(wl)!r}," + ",".join(repr(float(reflectance[b][rc])) for rc in picks.values()) + "\n")
    as_float = str(tmp_path / "jasper_float.tif")
    with rasterio.open(JASPER) as src, rasterio.open(as_float, "w", driver="GTiff", width=src.width,
                                                      height=src.height, count=src.count, dtype="float32") as dst:
        dst.write(reflectance.astype("float32"))
        for b in range(1, src.count + 1):
            dst.update_tags(b, **src.tags(b))
    runs = [run_alg("unmix_fcls", {"INPUT": path, "LIBRARY": str(library), "MODE": 0,
                                   "OUTPUT": str(tmp_path / f"ab{k}.tif")}) for k, path in enumerate([JASPER, as_float])]
    with rasterio.open(runs[0]["OUTPUT"]) as a, rasterio.open(runs[1]["OUTPUT"]) as b:
        from_int, from_float = a.read(), b.read()
    np.testing.assert_allclose(from_int, from_float, atol=2e-5)
    for k, (r, c) in enumerate(picks.values()):
        expected = np.zeros(3)
        expected[k] = 1.0
        np.testing.assert_allclose(from_int[:3, r, c], expected, atol=1e-4)
        assert from_int[3, r, c] < 1e-4  # RMSE of a pure pixel
    assert 0.2 < from_int[0].mean() < 0.8  # the window holds part of the lake


def test_fill_outside_the_footprint_is_nodata_not_a_mineral(processing_provider, tmp_path):
    """The second real AVIRIS-NG tile holds -0.005 in all 432 bands in rows 4-9 (outside the flight line's footprint,
    no nodata value in the header): SAM mapped those 60 pixels as goethite at an angle of 2.7 rad. They are nodata
    now, with a warning that counts them; the other 40 pixels are classified as before."""
    import processing

    from conftest import warning_recorder

    with rasterio.open(AVIRIS_NG_2) as ds:
        cube = ds.read()
    fill = (cube == cube[:1]).all(axis=0)
    assert fill.sum() == 60 and fill[4:].all() and not fill[:4].any()
    feedback = warning_recorder()
    res = processing.run("oremap:sam_classify", {"INPUT": AVIRIS_NG_2, "LIBRARY": USGS_LIBRARY,
                                                 "SPECTRA": "Kaolinite CM9;Goethite WS222",
                                                 "OUTPUT_CLASSES": str(tmp_path / "classes.tif")}, feedback=feedback)
    assert res["VALID_PIXELS"] == 40
    assert "60 pixels hold one value in every band (fill outside the scene's footprint, written without a nodata " \
           "value) and are left out as nodata." in feedback.warnings
    with rasterio.open(res["OUTPUT_CLASSES"]) as ds:
        classes = ds.read(1)
        assert (classes[fill] == ds.nodata).all() and (classes[~fill] != ds.nodata).all()


def test_unmixing_on_every_spectrum_of_splib07_says_why(run_alg, tmp_path):
    """Unmixing keeps every spectrum it is given, so the whole splib07 library leaves no band all of them cover. It
    said the library (383-2508 nm) does not overlap the image (396-2505 nm); it now names the part-range records."""
    from conftest import SHARED_DATA

    library = os.path.join(SHARED_DATA, "hyperspectral", "s07_AV95_envi.sli")
    with pytest.raises(QgsProcessingException) as err:
        run_alg("unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": library, "OUTPUT": str(tmp_path / "u.tif")})
    message = str(err.value)
    assert "No good image band is covered by every one of the 2457 library spectra: 908 of them were measured " \
           "over part of the range only (Actinolite HS22.3B NIC4bbb RREF," in message
    assert "Name the spectra to use" in message and "does not overlap" not in message
    assert os.listdir(tmp_path) == []


def test_sam_with_every_spectrum_of_splib07_runs(run_alg, tmp_path):
    """SAM's default (SPECTRA empty: the whole library) on the real splib07 library failed with 'does not overlap
    the image's good bands': its part-range records left no band common to all. They are left out and listed."""
    from conftest import SHARED_DATA

    library = os.path.join(SHARED_DATA, "hyperspectral", "s07_AV95_envi.sli")
    result = run_alg("sam_classify", {"INPUT": AVIRIS_NG, "LIBRARY": library,
                                      "OUTPUT_CLASSES": str(tmp_path / "all.tif")})
    with rasterio.open(result["OUTPUT_CLASSES"]) as ds:
        legend = json.loads(ds.tags()["OREMAP_CLASSES"])
        classes = ds.read(1)
    assert len(legend) == 1 + 1586 and result["VALID_PIXELS"] == 100
    assert classes.min() >= 1  # no threshold: every pixel gets its nearest spectrum


def test_class_spellings_are_one_class():
    """'Kaolinite' and 'kaolinite ' became two classes (two colours on the map, validation accuracy 0.75 instead of
    1); spellings of one name are now one class, the most frequent spelling kept, and the log says so."""
    from conftest import core_warnings
    from oremap.algorithms.base import _one_spelling

    log = core_warnings()
    labels = _one_spelling(["Kaolinite", "kaolinite ", "Kaolinite", "Alunite", 3, "ALUNITE  K"], "class", log)
    assert labels == ["Kaolinite", "Kaolinite", "Kaolinite", "Alunite", 3, "ALUNITE  K"]
    assert log.warnings == ["'class' spells some classes in more than one way, taken as one class each (case, "
                            "spaces and accent encoding ignored): 'Kaolinite' = 'kaolinite '. Fix the spelling in the "
                            "layer to silence this."]
    assert _one_spelling(["A", "B"], "class", log) == ["A", "B"] and len(log.warnings) == 1


def test_names_with_commas_stay_whole():
    """USGS names hold commas: 'Jarosite GDS99 K,Sy 200C' alone was split into two requests of one spectrum; a
    batch PATTERN folder with a comma was split although its help says ';' separates."""
    from oremap.algorithms.base import split_names

    names = ["Jarosite GDS99 K,Sy 200C", "Kaolinite CM9 BECKb AREF", "Alunite GDS84 Na03 BECKa AREF"]
    assert split_names("Jarosite GDS99 K,Sy 200C", known=names) == ["Jarosite GDS99 K,Sy 200C"]
    assert split_names("jarosite gds99 k,sy", known=names) == ["jarosite gds99 k,sy"]
    assert split_names("Kaolinite CM9, Alunite GDS84", known=names) == ["Kaolinite CM9", "Alunite GDS84"]
    assert split_names("Jarosite GDS99 K,Sy 200C; Kaolinite", known=names) == ["Jarosite GDS99 K,Sy 200C",
                                                                                "Kaolinite"]
    assert split_names("/data/scenes, 2017/*.tif", commas=False) == ["/data/scenes, 2017/*.tif"]


def test_unmixing_blames_the_spectra_chosen_when_they_leave_one_endmember(run_alg, tmp_path):
    # one name chosen out of the whole library: the fix is SPECTRA's, not the library's
    with pytest.raises(QgsProcessingException) as caught:
        run_alg("unmix_fcls", {"INPUT": AVIRIS_NG, "LIBRARY": USGS_LIBRARY, "SPECTRA": MINERALS[0], "MODE": 0,
                               "OUTPUT": str(tmp_path / "one.tif")})
    assert "(SPECTRA): 1 spectrum is named" in str(caught.value) and "(LIBRARY)" not in str(caught.value)
    assert not os.path.exists(tmp_path / "one.tif")


def test_pixels_without_a_non_negative_fit_are_written_as_the_declared_nodata(run_alg, tmp_path):
    cube = np.fromfile(AVIRIS_NG, dtype="<f4").reshape(10, 10, 432).copy()
    cube[0, :3] *= -1.0                      # three pixels no non-negative mixture fits
    scene = str(tmp_path / "dark.img")
    cube.astype("<f4").tofile(scene)
    with open(os.path.splitext(AVIRIS_NG)[0] + ".hdr") as src, open(str(tmp_path / "dark.hdr"), "w") as dst:
        dst.write(src.read())
    result = run_alg("unmix_fcls", {"INPUT": scene, "LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(MINERALS[:4]),
                                    "MODE": 1, "OUTPUT": str(tmp_path / "closed.tif")})
    with rasterio.open(result["OUTPUT"]) as ds:
        values = ds.read()
        assert ds.nodata == -9999.0 and not np.isnan(values).any()
        assert (values[:4, 0, :3] == -9999.0).all() and (values[:, 1:] != -9999.0).all()   # the 4 abundances
        assert (ds.read_masks(1)[0, :3] == 0).all() and (ds.read_masks(1)[1:] == 255).all()
