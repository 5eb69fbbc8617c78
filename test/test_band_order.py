"""Band centres as sensors deliver them: detector by detector, overlapping, repeated (issue 14, points 1 and 5).

The AVIRIS-Classic cube is built from the real AVIRIS-1995 band centres and the library's AVIRIS-1995
spectra of known minerals (test/aviris_classic.py); the bundled model must find each mineral.
"""

import os

import numpy as np
import pytest
import rasterio

from aviris_classic import MINERALS, av95_records, make_cube, write_envi
from conftest import USGS_LIBRARY

from oremap.core.hyperspectral import mapping
from oremap.core.engine.band_order import overlap_bands, sorted_unique
from oremap.core.engine.errors import OreMapError
from oremap.core.hyperspectral.spectral_library import read_library
from oremap.core.engine.wavelengths import BandInfo, resample_spectra

BUNDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "usgs_minerals_cnn.onnx")


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    warning = info

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@pytest.fixture(scope="module")
def av95():
    names, records, centres, fwhm = av95_records()
    return centres, fwhm


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("aviris") / "f950101t01p01_r01_sc01.img")
    return path, make_cube(path)


def test_aviris_classic_overlaps_left_out(av95):
    centres, fwhm = av95
    # the real list goes back twice (bands 33 and 97) and has a near repeat at 1880 nm
    assert np.flatnonzero(np.diff(centres) <= 0).tolist() == [31, 95]
    dropped, notes = overlap_bands(centres, fwhm)
    # 1-based: 31, 32 (677.2, 687.0 nm) and 33, 34 (664.3, 673.9) around the 675.6 nm cut; 96 (1269.0) and
    # 97 (1252.4) around 1260.7 nm; 161 (1879.9 nm, 0.35 nm from band 160)
    assert (np.flatnonzero(dropped) + 1).tolist() == [31, 32, 33, 34, 96, 97, 161]
    kept = centres[~dropped]
    assert np.all(np.diff(kept) > 0) and kept.size == 217
    assert "cut at 675." in notes[0] and "cut at 1260.7 nm" in notes[1] and "band 161" in notes[2]


def test_overlap_bands_other_orders():
    # bad bands take no part; a list from long to short is only sorted
    dropped, notes = overlap_bands([500.0, 510.0, 505.0], bad=[False, False, True])
    assert not dropped.any() and notes == []
    dropped, notes = overlap_bands([700.0, 600.0, 500.0])
    assert not dropped.any() and "not in increasing order" in notes[-1]
    # exact repeats: the later band goes
    dropped, _ = overlap_bands([400.0, 500.0, 500.0, 600.0], fwhm=[10.0] * 4)
    assert dropped.tolist() == [False, False, True, False]


def test_resample_accepts_unsorted_and_repeated_source():
    src = np.array([400.0, 500.0, 600.0, 550.0, 650.0, 650.0])
    values = np.array([[0.1, 0.2, 0.3, 0.25, 0.5, 0.3]])
    out = resample_spectra(values, src, [450.0, 575.0, 650.0])
    # sorted: 400 .1, 500 .2, 550 .25, 600 .3, 650 mean(.5, .3) = .4
    np.testing.assert_allclose(out, [[0.15, 0.275, 0.4]])
    wl, merged, fw = sorted_unique(src, values, np.arange(6.0))
    assert wl.tolist() == [400.0, 500.0, 550.0, 600.0, 650.0] and fw.tolist() == [0.0, 1.0, 3.0, 2.0, 4.5]
    with pytest.raises(OreMapError):
        resample_spectra([1.0, 2.0], [500.0, np.nan], [500.0])


def test_bundled_cnn_classifies_aviris_classic_cube(cube, tmp_path):
    path, expected = cube
    log = Log()
    out = str(tmp_path / "classes.tif")
    stats = mapping.cnn_classify_map(path, BUNDLED, out, feedback=log)
    legend = {d["value"]: d["name"] for d in stats["legend"]}
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    got = np.vectorize(legend.get)(classes)
    assert (got == np.array(expected)[:, None]).all()
    assert stats["resampled"] and stats["valid_pixels"] == classes.size
    text = "\n".join(log.lines)
    assert "overlap at 664.3-687.0 nm" in text and "the edge bands 31-34 are left out" in text
    # 217 bands after the overlaps, less the 25 of them in the water-vapour windows (bad bands of the scene)
    assert "f950101t01p01_r01_sc01.img" in text and "192 good bands" in text


def test_sam_on_aviris_classic_cube(cube, tmp_path):
    """SAM against the test library (sorted by wavelength when read) on the sensor-ordered cube."""
    path, expected = cube
    lib = read_library(USGS_LIBRARY).subset(["Kaolinite CM9", "Alunite GDS84", "Calcite WS272", "Muscovite GDS107",
                                             "Jarosite GDS99", "Chlorite SMR-13"])
    stats = mapping.sam_map(path, lib, str(tmp_path / "sam.tif"))
    with rasterio.open(tmp_path / "sam.tif") as ds:
        classes = ds.read(1)
    order = list(MINERALS.values())
    assert (classes == (np.array([order.index(e) for e in expected]) + 1)[:, None]).all()
    assert stats["bands_used"] == 192  # 217 after the overlaps, less 25 in the water-vapour windows


def test_wavelengths_typed_in_sensor_order(av95, tmp_path):
    """A cube without wavelength metadata and the AVIRIS list typed as the sensor gives it."""
    centres, fwhm = av95
    rng = np.random.default_rng(1)
    names, records, _, _ = av95_records()
    kaolinite = records[[i for i, n in enumerate(names) if n.startswith("Kaolinite CM9 BECK")][0]]
    cube = np.round(kaolinite[None, None, :] * rng.uniform(0.9, 1.0, (3, 3, 1)) * 10000).astype(np.int16)
    path = str(tmp_path / "nowl.img")
    write_envi(path, cube, centres, fwhm)
    with open(path[:-4] + ".hdr") as fh:
        header = [line for line in fh if not line.startswith(("wavelength", "fwhm"))]
    with open(path[:-4] + ".hdr", "w") as fh:
        fh.writelines(header)
    log = Log()
    info = mapping.image_band_info(path, centres, bad_bands="off", feedback=log)  # the overlaps alone
    assert int(info.bad.sum()) == 7 and "the wavelength parameter" in log.lines[0]
    # the log gives them their reason: this file has no bbl
    assert any(line.strip().startswith("7 bands at the edges of overlapping detectors, or repeating a centre: ")
               for line in log.lines), log.lines
    assert not any("bad-band list (bbl)" in line for line in log.lines)
    stats = mapping.cnn_classify_map(path, BUNDLED, str(tmp_path / "c.tif"), band_info=info, scale=1e-4)
    assert stats["class_counts"]["Kaolinite"] == 9
    with pytest.raises(OreMapError) as err:
        mapping.image_band_info(path, centres[:-1])
    assert err.value.parameter == "wavelengths"


def test_file_wavelengths_blame_the_file(cube, tmp_path):
    """A model outside the raster's range: the error names the raster (INPUT) and where its wavelengths came from."""
    path, _ = cube
    info = mapping.image_band_info(path)
    with pytest.raises(OreMapError) as err:
        mapping.resampling_operator(info, np.arange(2600.0, 2700.0, 10.0))
    assert err.value.parameter == "raster" and "f950101t01p01_r01_sc01.img" in err.value.message


def test_target_bands_sorted_by_wavelength(av95):
    from oremap.core.hyperspectral.training import target_bands

    centres, fwhm = av95
    dropped, _ = overlap_bands(centres, fwhm)
    target = target_bands(BandInfo(centers=centres[::-1], fwhm=fwhm[::-1], bad=dropped[::-1]))
    assert np.all(np.diff(target.centers) > 0)


@pytest.mark.slow
def test_qgis_process_classifies_aviris_classic(qgis_process, cube, tmp_path):
    path, expected = cube
    out = tmp_path / "cli_classes.tif"
    proc = qgis_process("run", "oremap:classify_spectral_cnn", "--", f"INPUT={path}", "MODEL=0",
                        f"OUTPUT_CLASSES={out}")
    assert "overlap at 664.3-687.0 nm" in proc.stdout + proc.stderr
    with rasterio.open(out) as ds:
        classes = ds.read(1)
        legend = ds.tags()
    import json

    names = {d["value"]: d["name"] for d in json.loads(legend["OREMAP_CLASSES"])}
    got = np.vectorize(names.get)(classes)
    assert (got == np.array(expected)[:, None]).all()


def test_a_third_repeat_meets_the_band_kept():
    """Only neighbours in wavelength order were compared, and a band just dropped was skipped: of three bands at
    500 nm two were kept, and of 500, 500.3 and 500.6 nm (under 1 nm apart) 500 and 500.6, said to be out of order."""
    dropped, notes = overlap_bands([500.0, 500.0, 500.0, 600.0, 700.0])
    assert dropped.tolist() == [False, True, True, False, False]
    assert notes == ["Repeated band centres: band 2 (500.00 nm, same as band 1 at 500.00 nm), 3 (500.00 nm, same as "
                     "band 1 at 500.00 nm) left out."]
    dropped, notes = overlap_bands([500.0, 500.3, 500.6, 600.0, 700.0])
    assert dropped.tolist() == [False, True, True, False, False] and len(notes) == 1
    dropped, _ = overlap_bands([500.0, 500.6, 501.2, 600.0])   # a chain: 501.2 is 1.2 nm from the band kept
    assert dropped.tolist() == [False, True, False, False]


def test_bands_stored_in_another_order_are_sorted_not_cut_at_detector_edges(av95):
    """Bands in the order per-band files are listed (b1, b10, b100, ..., b2), or shuffled, are no detectors listed
    one after the other: each drop in wavelength was taken for a detector edge and 'overlapping' bands were cut
    away (of Jasper Ridge's 198 bands 178). Their drops add up to many times the wavelength range (detectors': 39
    of AVIRIS's 2130 nm), so they are sorted: only the centre repeated at 1880 nm goes, as in channel order."""
    centres, fwhm = av95
    lexicographic = sorted(range(centres.size), key=lambda i: str(i + 1))
    dropped, notes = overlap_bands(centres[lexicographic], fwhm[lexicographic])
    assert np.asarray(lexicographic)[dropped].tolist() == [160]   # channel 161, 0.35 nm from 160, listed after it
    assert len(notes) == 2 and "Repeated band centres" in notes[0] and "(1879.90 nm" in notes[0]
    assert "not in increasing order" in notes[1] and "not listed detector by detector" in notes[1]
    shuffled = np.random.default_rng(0).permutation(centres.size)
    dropped, notes = overlap_bands(centres[shuffled], fwhm[shuffled])
    assert dropped.sum() == 1 and set(shuffled[dropped]) <= {159, 160}
    assert not any("two detectors" in note for note in notes)
    # VNIR then SWIR (PRISMA, EnMAP without their detector lists): still cut at the middle of their overlap
    vnir, swir = np.arange(420.0, 1001.0, 6.5), np.arange(900.0, 2451.0, 10.0)
    dropped, notes = overlap_bands(np.r_[vnir, swir])
    assert np.r_[vnir, swir][dropped].min() >= 900.0 and np.r_[vnir, swir][dropped].max() <= 1000.0
    cut = 0.5 * (swir[0] + vnir[-1])
    assert dropped.sum() == (vnir > cut).sum() + (swir < cut).sum() and "two detectors" in notes[0]


def test_detector_edges_are_cut_whatever_stray_bands_or_order(av95):
    """One extra band appended (a NaN or constant band at 1400 nm, which OreMap drops anyway), water-window bands
    appended, or the bands stored from long to short wavelengths made AVIRIS-Classic look 'not listed detector by
    detector': no edge band was cut and every map changed (92 of 1,600 SAM classes on Jasper Ridge). The same
    seven bands are cut in each case."""
    centres, fwhm = av95
    expected = [31, 32, 33, 34, 96, 97, 161]
    for extra in ([1400.0], [1000.5], [1350.0, 1370.0, 1390.0, 1410.0, 1425.0]):
        c, f = np.r_[centres, extra], np.r_[fwhm, [10.0] * len(extra)]
        dropped, notes = overlap_bands(c, f)
        assert (np.flatnonzero(dropped[:centres.size]) + 1).tolist() == expected, extra
        assert "cut at 675." in notes[0] and "cut at 1260.7 nm" in notes[1]
    reverse = np.arange(centres.size)[::-1]
    dropped, notes = overlap_bands(centres[reverse], fwhm[reverse])
    assert sorted((reverse[dropped] + 1).tolist()) == [31, 32, 33, 34, 96, 97, 160]   # of the repeat, the other
    assert sum("two detectors" in note for note in notes) == 2


def test_the_scale_warning_says_what_the_scale_does_to_the_model(cube, tmp_path):
    """The warning on values that are not reflectance of 0-1 said 'SAM, SID and the CNN do not depend on the scale',
    but a CNN with preprocessing 'none' does (one trained on reflectance 0-1 classed 489 of 1,600 Jasper Ridge pixels
    otherwise on reflectance x 10000). The bundled model (continuum removal) and a copy of it with preprocessing
    'none', on the AVIRIS cube as float reflectance 0-1 and x 10000: the warning says which of them depends on the
    scale, and so do their probabilities."""
    from conftest import core_warnings

    from oremap.core.engine.model_format import _load_onnx, read_model_info, write_model
    from oremap.core.engine.wavelengths import band_info_from_raster, band_tags

    path, _ = cube
    with rasterio.open(path) as src:
        raw = src.read().astype(np.float32)
        tags = band_tags(band_info_from_raster(src))
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=src.count, dtype="float32",
                       crs=src.crs, transform=src.transform)
    rasters = {}
    for name, values in (("f01", raw / 10000.0), ("x10000", raw)):
        rasters[name] = str(tmp_path / f"{name}.tif")
        with rasterio.open(rasters[name], "w", **profile) as dst:
            dst.write(values.astype(np.float32))
            for b, band in enumerate(tags, start=1):
                dst.update_tags(b, **band)
    info = read_model_info(BUNDLED)
    assert info.preprocessing_method == "continuum_removal"
    info.preprocessing = {"method": "none"}
    plain = write_model(_load_onnx(BUNDLED)[0], info, str(tmp_path / "plain.onnx"))
    for model, depends in ((BUNDLED, False), (plain, True)):
        probabilities = []
        for name in ("f01", "x10000"):
            log = core_warnings()
            out = str(tmp_path / f"p_{depends}_{name}.tif")
            mapping.cnn_classify_map(rasters[name], model, str(tmp_path / "c.tif"), out, feedback=log)
            with rasterio.open(out) as ds:
                probabilities.append(ds.read())
        doubt = [w for w in log.warnings if w.startswith("The values are not reflectance of 0-1")]
        assert len(doubt) == 1 and "the CNN do not depend" not in doubt[0]
        assert "spectral CNNs and abundance models with preprocessing 'none'" in doubt[0]
        if depends:
            assert doubt[0].endswith("This model's preprocessing is 'none': its classes depend on the scale. Give the "
                                     "reflectance scale factor that puts the values on the scale of the spectra it was "
                                     "trained on (reflectance of 0-1, unless its training raster was read otherwise).")
            assert np.abs(probabilities[0] - probabilities[1]).max() > 0.1
        else:
            assert doubt[0].endswith("This model's preprocessing, continuum removal (divide by the upper convex hull), "
                                     "makes its classes independent of the scale.")
            np.testing.assert_allclose(probabilities[0], probabilities[1], atol=1e-4)
