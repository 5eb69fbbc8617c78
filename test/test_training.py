"""Training sets from libraries: classes from names, physical-sample groups, target bands."""

import numpy as np
import pytest

from conftest import core_warnings
from oremap.core.engine.errors import OreMapError
from oremap.core.hyperspectral.training import class_from_name, library_training_set, sample_id, target_bands
from oremap.core.engine.wavelengths import BandInfo


def write_csv(path, wavelengths, spectra):
    names = list(spectra)
    with open(path, "w") as fh:
        fh.write("wavelength_nm," + ",".join(names) + "\n")
        for i, wl in enumerate(wavelengths):
            fh.write(f"{wl}," + ",".join("" if np.isnan(spectra[n][i]) else f"{spectra[n][i]:.6f}"
                                          for n in names) + "\n")
    return str(path)


def test_class_and_sample_from_usgs_names():
    assert class_from_name("Kaolinite CM9 BECKb AREF") == "Kaolinite"
    assert class_from_name("Kaolinite CM9 BECKb AREF", "whole_name") == "Kaolinite CM9 BECKb AREF"
    assert sample_id("Kaolinite CM9 BECKb AREF") == sample_id("Kaolinite  CM9   ASDNGb AREF") == "Kaolinite CM9"
    assert sample_id("Grass-FescueNeedlg YNP-FN-1 AVIRISb RTGC") == "Grass-FescueNeedlg YNP-FN-1"
    assert sample_id("field spectrum 12") == "field spectrum 12"
    # splits and grain sizes of one sample are that sample (their spectra are 0.1 degree apart: a split between
    # them is no held-out sample)
    for names, sample in ((["Quartz HS32.1B BECKb AREF", "Quartz HS32.2B ASDFRb AREF"], "Quartz HS32"),
                          (["Hematite GDS69.a BECKa AREF", "Hematite GDS69.g BECKb AREF"], "Hematite GDS69"),
                          (["Goethite WS222 Coarse Gr. BECKb AREF", "Goethite WS222 Medium Gr. BECKa AREF"],
                           "Goethite WS222"),
                          (["Pyrophyllite PYS1A <5um BECKb AREF", "Pyrophyllite PYS1A >250um BECKb AREF"],
                           "Pyrophyllite PYS1A"),
                          (["Chlorite SMR-13.a BECKb AREF", "Chlorite SMR-13.e BECKb AREF"], "Chlorite SMR-13")):
        assert {sample_id(n) for n in names} == {sample}
    with pytest.raises(OreMapError):
        class_from_name("x", "last_word")


def test_library_training_set_groups_bands_and_gaps(tmp_path):
    wl = np.arange(400.0, 2501.0, 10.0)
    flat = np.full(wl.size, 0.5)
    gap = flat.copy()
    gap[-2:] = np.nan  # last channels missing: filled, not dropped (under 5 %)
    holey = flat.copy()
    holey[::3] = np.nan  # a third missing: dropped
    path = write_csv(tmp_path / "lib.csv", wl, {
        "Kaolinite CM9 BECKb AREF": flat * 0.9, "Kaolinite CM9 ASDNGb AREF": gap,
        "Kaolinite KGa-1 BECKb AREF": flat * 0.8, "Alunite GDS84 BECKa AREF": flat * 0.7,
        "Alunite HS295 BECKa AREF": holey, "Calcite WS272 BECKa AREF": flat * 0.6})
    target = BandInfo(centers=np.arange(350.0, 2601.0, 5.0), fwhm=None, bad=None)
    data = library_training_set([path], target, classes=["kaolinite", "Alunite"])
    assert data.class_names == ["Alunite", "Kaolinite"]  # the names as asked, calcite left out
    assert data.sample_names == ["Alunite GDS84 BECKa AREF", "Kaolinite CM9 ASDNGb AREF",
                                 "Kaolinite CM9 BECKb AREF", "Kaolinite KGa-1 BECKb AREF"]
    assert data.y.tolist() == [0, 1, 1, 1]
    assert data.groups.tolist() == [0, 1, 1, 2]  # two measurements of sample CM9: one group
    # no extrapolation beyond the library (400-2500 nm), no water-vapour windows
    c = data.band_info.centers
    assert c.min() == 400.0 and c.max() == 2500.0
    assert not np.any((c > 1330) & (c < 1460)) and not np.any((c > 1760) & (c < 1970))
    np.testing.assert_allclose(data.X[1], 0.5, atol=1e-6)  # gap filled by interpolation
    with pytest.raises(OreMapError) as err:
        library_training_set([path], target, classes=["Kaolinite", "Gold"])
    assert err.value.parameter == "classes" and "Gold" in err.value.message


def test_a_class_table_names_spectra_by_their_start_and_says_what_it_did_not_use(tmp_path):
    """A row names the spectra whose names are, or begin with, its name (a sample name takes every measurement of
    the sample), the longest row wins, and rows that name no spectrum are listed (they were silently ignored, and
    the error then pointed at the first-word rule)."""
    wl = np.arange(400.0, 2501.0, 10.0)
    flat = np.full(wl.size, 0.5)
    path = write_csv(tmp_path / "lib.csv", wl, {
        "Muscovite GDS107 BECKa AREF": flat * 0.9, "Muscovite GDS107 ASDNGb AREF": flat * 0.85,
        "Muscovite GDS108 BECKb AREF": flat * 0.8, "Illite IL105 BECKa AREF": flat * 0.7,
        "Calcite WS272 BECKa AREF": flat * 0.6, "Muscovite GDS1070 BECKa AREF": flat * 0.5})
    table = tmp_path / "classes.csv"
    table.write_text("name,class\nMuscovite GDS107,White mica\nMuscovite,Mica (other)\nIllite IL105 BECKa AREF,"
                     "White mica\nPhlogopite GDS20,Mica (other)\n", encoding="utf-8")
    target = BandInfo(centers=np.arange(400.0, 2501.0, 10.0), fwhm=None, bad=None)
    log = core_warnings()
    data = library_training_set([path], target, class_table=str(table), feedback=log)
    assert data.class_names == ["Calcite", "Mica (other)", "White mica"]
    by_name = dict(zip(data.sample_names, (data.class_names[i] for i in data.y)))
    assert by_name == {"Muscovite GDS107 BECKa AREF": "White mica", "Muscovite GDS107 ASDNGb AREF": "White mica",
                       "Muscovite GDS108 BECKb AREF": "Mica (other)", "Illite IL105 BECKa AREF": "White mica",
                       "Calcite WS272 BECKa AREF": "Calcite", "Muscovite GDS1070 BECKa AREF": "Mica (other)"}
    assert log.warnings == ["1 class-table row(s) name no spectrum of the libraries: Phlogopite GDS20. A row takes "
                            "the spectra whose names are, or begin with, its name."]
    # a row whose every spectrum a longer row takes is said to be shadowed, not to name nothing
    table.write_text("name,class\nMuscovite GDS108,White mica\nMuscovite GDS108 BECKb AREF,Mica (other)\n",
                     encoding="utf-8")
    log = core_warnings()
    library_training_set([path], target, class_table=str(table), feedback=log)
    assert log.warnings == ["1 class-table row(s) took no spectrum, since longer rows took all theirs: "
                            "Muscovite GDS108."]
    table.write_text("name,class\nMuscovite GDS107,White mica\nMuscovite,Mica (other)\nIllite IL105 BECKa AREF,"
                     "White mica\nPhlogopite GDS20,Mica (other)\n", encoding="utf-8")
    with pytest.raises(OreMapError) as err:
        library_training_set([path], target, class_table=str(table), classes=["White mica", "Biotite"])
    assert "Biotite" in err.value.message and "class table" in err.value.fix


def test_target_bands_drop_bad_and_water():
    info = BandInfo(centers=np.array([500.0, 1400.0, 1850.0, 2200.0]), fwhm=np.full(4, 10.0),
                    bad=np.array([False, False, False, True]))
    assert target_bands(info).centers.tolist() == [500.0]
    assert target_bands(info, exclude_water=False).centers.tolist() == [500.0, 1400.0, 1850.0]


def test_outlier_set_leaves_out_own_classes_gaps_and_featureless_spectra(tmp_path):
    """A CSV library with an absorption band (depth 0.3 at 2200 nm), a flat spectrum, spectra of a training class
    and of a part of one ('Calcite-Dolomite'), and one with a long gap: only the first is an outlier; the counts
    are logged."""
    from oremap.core.hyperspectral.training import TrainingSet, outlier_set

    wl = np.arange(2000.0, 2401.0, 10.0)
    band = 0.5 - 0.15 * np.exp(-0.5 * ((wl - 2200.0) / 20.0) ** 2)   # continuum 0.5, depth 0.15 / 0.5 = 0.3
    gap = band.copy()
    gap[5:30] = np.nan
    path = write_csv(tmp_path / "others.csv", wl, {"Garnet g1": band, "Flat f1": np.full(wl.size, 0.4),
                                                   "Kaolinite k9": band, "Zeolite z2": gap,
                                                   "Garnet g2": band * 0.8, "Dolomite d1": band})
    data = TrainingSet(X=np.ones((2, wl.size)), y=np.array([0, 1]), groups=np.array([0, 1]),
                       class_names=["kaolinite", "Calcite-Dolomite"], band_info=BandInfo(centers=wl, fwhm=None, bad=None))
    log = core_warnings()
    out = outlier_set([path], data, feedback=log)
    assert out.class_names == ["Garnet"] and out.y.tolist() == [0, 0]
    assert out.sample_names == ["Garnet g1", "Garnet g2"]
    np.testing.assert_allclose(out.X[1], 0.8 * band, atol=1e-6)  # the CSV holds 6 decimals
    assert log.infos[0] == "Outlier spectra left out: 2 of your classes, 1 not covering the bands or not positive, 1 featureless."
    with pytest.raises(OreMapError, match="Fewer than 2 outlier spectra") as err:
        outlier_set([path], data, materials=["Flat", "Zeolite"])
    assert err.value.parameter == "outliers"
    no_wavelengths = TrainingSet(X=data.X, y=data.y, groups=data.groups, class_names=data.class_names)
    with pytest.raises(OreMapError, match="have none") as err:
        outlier_set([path], no_wavelengths)
    assert err.value.parameter == "outliers"
    # classes named by a class table ('Clays' for the kaolinite): the material trained on is no outlier (it was
    # kept, and the model was trained to doubt its own classes)
    grouped = TrainingSet(X=data.X, y=data.y, groups=data.groups, class_names=["Clays", "Carbonates"],
                          band_info=data.band_info, sample_names=["Kaolinite k9", "Kaolinite k9"])
    out = outlier_set([path], grouped, feedback=log)
    assert out.sample_names == ["Dolomite d1", "Garnet g1", "Garnet g2"]
    assert log.infos[-1].startswith("Outlier spectra left out: 1 of your classes,")


def test_a_whole_library_of_many_classes_is_trained_with_a_warning(tmp_path):
    """All of USGS splib07 with no classes named makes 641 classes (flowers, liquids and paints among them): the log
    says so and how to name the classes; 50 classes, or classes named, train without the warning."""
    from oremap.core.hyperspectral import training

    wl = np.arange(400.0, 2501.0, 10.0)
    rng = np.random.default_rng(0)
    spectra = {f"Material{i:02d} S{i} BECKa AREF": rng.uniform(0.2, 0.6, wl.size) for i in range(51)}
    path = write_csv(tmp_path / "lib.csv", wl, spectra)
    target = BandInfo(centers=wl, fwhm=None, bad=None)
    log = core_warnings()
    data = library_training_set([path], target, feedback=log)
    assert len(data.class_names) == 51 == training.MANY_CLASSES + 1
    assert log.warnings == ["51 classes: every class of the libraries is trained, as no classes were named (e.g. "
                            "Material00, Material01, Material02). A whole library such as USGS splib07 also holds "
                            "soils, vegetation, liquids and man-made materials, and a model of this many classes "
                            "trains for a long time. To map minerals, name the classes to train (e.g. 'Kaolinite; "
                            "Alunite; Calcite')."]
    log = core_warnings()
    library_training_set([path], target, classes=[f"Material{i:02d}" for i in range(51)], feedback=log)
    assert log.warnings == []
    del spectra["Material50 S50 BECKa AREF"]
    log = core_warnings()
    library_training_set([write_csv(tmp_path / "fifty.csv", wl, spectra)], target, feedback=log)
    assert log.warnings == []


def test_class_table_rows_named_spectrum_are_rows_not_headers(tmp_path):
    """Every row whose name began with 'name' or 'spectrum' was skipped as a header: 'Spectrum 1' (OreMap's name of an
    unnamed spectrum) made a table 'without name,class rows', and 'spectrum_kaol' was dropped without a word. Only
    a first row of header words is skipped."""
    from oremap.core.hyperspectral.training import read_class_table

    table = tmp_path / "classes.csv"
    table.write_text("name,class\nSpectrum 1,kaolinite\nSpectrum 2,alunite\n")
    assert read_class_table(str(table)) == {"Spectrum 1": "kaolinite", "Spectrum 2": "alunite"}
    table.write_text("spectrum_kaol,kaolinite\nMuscovite,muscovite\nNamibite sample,namibite\n")
    assert read_class_table(str(table)) == {"spectrum_kaol": "kaolinite", "Muscovite": "muscovite",
                                           "Namibite sample": "namibite"}
    table.write_text("Spectrum;Mineral\nKaolinite CM9;kaolinite\n")
    assert read_class_table(str(table)) == {"Kaolinite CM9": "kaolinite"}
    # the header after a blank line, a comment or Excel's 'sep=' line, or written with underscores
    for text in ("\nname,class\nKaolinite CM9,kaolinite\n", "# classes\nname,class\nKaolinite CM9,kaolinite\n",
                 "sep=;\nname;class\nKaolinite CM9;kaolinite\n", "spectrum_id,class_label\nKaolinite CM9,kaolinite\n",
                 "Spectrum_Name;Class_Name\nKaolinite CM9;kaolinite\n"):
        table.write_text(text)
        assert read_class_table(str(table)) == {"Kaolinite CM9": "kaolinite"}, text


def test_tables_saved_by_excel_and_notepad_on_windows_are_read(tmp_path):
    """Excel on Windows saves a CSV in the Western code page (cp1252), with ';' where the decimal mark is a comma,
    and Notepad saves lists in it too: a class table naming 'Hämatit' stopped with a UnicodeDecodeError traceback,
    and a ';' table had 'no name,class rows'."""
    from oremap.core.hyperspectral.training import read_class_table
    from oremap.core.scaleout.batch import expand_inputs
    from oremap.core.sentinel2 import patch_sets

    table = tmp_path / "classes.csv"
    table.write_bytes("name;class\r\nHematite GDS27;Hämatit\r\nKaolinite CM9;Kaolinit – gut\r\n".encode("cp1252"))
    assert read_class_table(str(table)) == {"Hematite GDS27": "Hämatit", "Kaolinite CM9": "Kaolinit – gut"}
    labels = tmp_path / "labels.csv"
    labels.write_bytes("file;label\r\nPatch Zoë.tif;1\r\nb.tif;0\r\n".encode("cp1252"))
    assert patch_sets.read_label_table(str(labels)) == [("Patch Zoë.tif", 1), ("b.tif", 0)]
    scene = tmp_path / "Szene Müller.tif"
    scene.write_bytes(b"")
    listing = tmp_path / "scenes.txt"
    listing.write_bytes("# Szenen\r\nSzene Müller.tif\r\n".encode("cp1252"))
    assert expand_inputs([], list_files=[str(listing)]) == [str(scene)]
    # tab-separated, one comma in every name: the tie goes to the tab
    table.write_text("name\tclass\nJarosite GDS99 K,Sy 200C\tJarosite\n", encoding="utf-8")
    assert read_class_table(str(table)) == {"Jarosite GDS99 K,Sy 200C": "Jarosite"}
