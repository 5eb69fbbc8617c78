"""Names and numbers as other locales write them (audit 5, "locale"): library classes spelt in several ways (case,
an accent precomposed or as a combining mark, as macOS writes it), wavelengths typed with decimal commas, element
fields with the full-width punctuation of Chinese and Japanese input methods, and grid units read as survey hygiene
reads them."""

import numpy as np
import pytest

from conftest import core_warnings
from oremap.core.engine.errors import OreMapError
from oremap.core.engine.wavelengths import BandInfo

NFC = "H\u00e4matit"    # 'Hämatit' typed on Windows or Linux
NFD = "Ha\u0308matit"   # the same name as macOS writes it: 'a' and a combining diaeresis


def write_csv(path, wavelengths, spectra):
    """A CSV library: a wavelength column, one column per named spectrum (UTF-8)."""
    names = list(spectra)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("wavelength_nm," + ",".join(names) + "\n")
        for i, wl in enumerate(wavelengths):
            fh.write(f"{wl}," + ",".join(f"{spectra[n][i]:.6f}" for n in names) + "\n")
    return str(path)


def dip(wavelengths, centre, depth=0.3):
    """A spectrum of reflectance 0.5 with one Gaussian absorption of ``depth`` (relative) at ``centre`` nm."""
    return 0.5 * (1.0 - depth * np.exp(-0.5 * ((wavelengths - centre) / 40.0) ** 2))


@pytest.fixture
def spelt_library(tmp_path):
    """Six spectra of three minerals, Kaolinit and Hämatit spelt in two and three ways."""
    wl = np.arange(400.0, 2501.0, 10.0)
    names = ["Kaolinit A1", "kaolinit B2", f"{NFC} 1", f"{NFD} 2", "H\u00c4MATIT 3", "Calcit 1"]
    spectra = {n: dip(wl, 800.0 + 200.0 * i) for i, n in enumerate(names)}
    return write_csv(tmp_path / "classes.csv", wl, spectra), BandInfo(centers=wl, fwhm=None, bad=None)


def counts(data):
    return {name: int((data.y == i).sum()) for i, name in enumerate(data.class_names)}


def test_library_classes_spelt_in_several_ways_are_one_class_each(spelt_library):
    """F2: the six spectra gave six classes for three minerals; each mineral is now one class, spelt as most of its
    spectra spell it (the first on a tie: the precomposed 'Hämatit'), and the log says which spellings were joined."""
    from oremap.core.hyperspectral.training import library_training_set

    path, target = spelt_library
    log = core_warnings()
    data = library_training_set([path], target, feedback=log)
    assert counts(data) == {"Calcit": 1, NFC: 3, "Kaolinit": 2}
    assert data.class_names[1] == NFC   # the precomposed spelling, not the combining one
    assert [w for w in log.warnings if "more than one way" in w] == [
        "The library spells some classes in more than one way, taken as one class each (case, spaces and "
        f"accent encoding ignored): '{NFC}' = 'H\u00c4MATIT' = '{NFD}' (accent as a combining mark); 'Kaolinit' = "
        "'kaolinit'. Fix the spelling in the library or class table to silence this."]


def test_the_classes_filter_keeps_every_spelling_of_a_class(spelt_library):
    """F2: CLASSES 'Hämatit; Kaolinit' (typed precomposed) dropped the spectrum whose accent is a combining mark."""
    from oremap.core.hyperspectral.training import library_training_set

    path, target = spelt_library
    data = library_training_set([path], target, classes=[NFC, "KAOLINIT"])
    assert counts(data) == {NFC: 3, "Kaolinit": 2}
    data = library_training_set([path], target, classes=[NFD, "calcit"])   # typed on macOS
    assert counts(data) == {"Calcit": 1, NFC: 3}
    with pytest.raises(OreMapError) as err:   # only the class no spectrum has is missing
        library_training_set([path], target, classes=[NFD, "Gold"])
    assert err.value.message == "No usable spectrum for the classes Gold."


def test_a_class_table_row_takes_the_spectra_of_every_spelling(spelt_library, tmp_path):
    """F2: a row 'Hämatit' (precomposed, a Windows table) did not take the spectrum 'Hämatit 2' with a combining
    mark, which kept a class of its own; two rows of one name in two cases were reported as shadowed."""
    from oremap.core.hyperspectral.training import ClassTable, library_training_set

    path, target = spelt_library
    table = tmp_path / "table.csv"
    table.write_bytes(f"name;class\r\n{NFC};Eisenoxid\r\nKaolinit;Ton\r\nkaolinit;Ton\r\nCalcit;Karbonat\r\n"
                      .encode("cp1252"))
    log = core_warnings()
    data = library_training_set([path], target, class_table=str(table), feedback=log)
    assert counts(data) == {"Eisenoxid": 3, "Karbonat": 1, "Ton": 2}
    assert not [w for w in log.warnings if "class-table row" in w]
    assert ClassTable({NFD: "Eisenoxid"}).label(f"{NFC} GDS27 BECKa AREF") == "Eisenoxid"


def test_outlier_spectra_of_a_class_in_another_spelling_are_left_out(tmp_path):
    """The outlier exposure library kept 'Hämatit' spectra with a combining mark as outliers of a model trained on
    the class 'Hämatit' (precomposed), training the model away from its own class."""
    from oremap.core.hyperspectral.training import TrainingSet, outlier_set

    wl = np.arange(400.0, 2501.0, 10.0)
    path = write_csv(tmp_path / "outliers.csv", wl, {f"{NFD} 9": dip(wl, 900.0), "Goethit 1": dip(wl, 950.0),
                                                     "Jarosit 1": dip(wl, 2260.0)})
    data = TrainingSet(X=np.zeros((2, wl.size)), y=np.array([0, 1]), groups=np.array([0, 1]),
                       class_names=[NFC, "Kaolinit"], band_info=BandInfo(centers=wl, fwhm=None, bad=None))
    log = core_warnings()
    found = outlier_set([path], data, feedback=log)
    assert found.class_names == ["Goethit", "Jarosit"]
    assert log.infos == ["Outlier spectra left out: 1 of your classes."]


def test_wavelengths_with_decimal_commas():
    """F4: '486,5; 561,7' (decimal commas, ';' between values) read as four numbers, '1,6; 2,2' as 1000, 6000, 2000
    and 2000 nm. With ';' in the text a comma between digits is a decimal comma; without, values outside any
    sensor's range are refused with a word on decimal commas."""
    from oremap.core.engine.wavelengths import parse_wavelength_list

    assert parse_wavelength_list("486,5; 561,7; 661,8; 2199,5").tolist() == [486.5, 561.7, 661.8, 2199.5]
    assert parse_wavelength_list("1,6; 2,2").tolist() == [1600.0, 2200.0]
    assert parse_wavelength_list("486.5, 561.7").tolist() == [486.5, 561.7]
    assert parse_wavelength_list("486.5 561.7").tolist() == [486.5, 561.7]
    assert parse_wavelength_list("450, 550.5; 650").tolist() == [450.0, 550.0 + 0.5, 650.0]
    assert parse_wavelength_list("400,500,600; 700").tolist() == [400.0, 500.0, 600.0, 700.0]   # commas separate
    for text in ("486,5, 561,7", "486,5 561,7"):   # 486, 5, 561, 7 nm
        with pytest.raises(OreMapError) as err:
            parse_wavelength_list(text)
        assert err.value.parameter == "wavelengths"
        assert err.value.message.startswith("2 of the 4 wavelengths read lie outside")
        assert "decimal comma" in err.value.fix


@pytest.mark.parametrize("name, element, unit, factor", [
    ("Au\uff08ppm\uff09", "Au", "ppm", 1.0),          # Au（ppm）
    ("Cu\uff0cppm", "Cu", "ppm", 1.0),                 # Cu，ppm
    ("Au\uff3bppb\uff3d", "Au", "ppb", 1e-3),          # Au［ppb］
    ("Cu_ppm\uff08ICP\uff09", "Cu", "ppm", 1.0),       # Cu_ppm（ICP）
    ("Cu\u3000ppm", "Cu", "ppm", 1.0),                 # an ideographic space
    ("Au (\u00b5g/g)", "Au", "\u03bcg/g", 1.0),        # micro sign: read as the Greek mu, a unit all the same
    ("Au (\u03bcg/g)", "Au", "\u03bcg/g", 1.0),
    ("Pd (\u00b5g/kg)", "Pd", "\u03bcg/kg", 1e-3),
])
def test_element_fields_with_full_width_punctuation(name, element, unit, factor):
    """F5: names as Chinese and Japanese input methods type them were 'not an element'; the name stays as given."""
    from oremap.core.geochemistry.survey_hygiene import parse_column

    column = parse_column(name)
    assert (column.name, column.element, column.unit, column.factor, column.reason) == \
        (name, element, unit, factor, "")


def test_a_survey_with_full_width_field_names_keeps_its_elements():
    """F5: the IDW default kept 1 element of a survey with fields 'Au（ppm）', 'Cu（ppm）', 'Zn（ppm）', 'Pb_ppm'."""
    from oremap.core.geochemistry.survey_hygiene import plan_elements

    names = ["\u6837\u54c1\u53f7", "Au\uff08ppm\uff09", "Cu\uff08ppm\uff09", "Zn\uff08ppm\uff09", "Pb_ppm"]
    plan = plan_elements(names, np.arange(1.0, 26.0).reshape(5, 5))
    assert plan.fields == names[1:]
    assert plan.elements == ["Au", "Cu", "Zn", "Pb"]


def test_grid_units_are_read_as_survey_hygiene_reads_them():
    """F6: 'Au (µg/g)' and 'Pb.ppm' were gridded as elements in ppm, but their bands got no UNITS tag."""
    from oremap.core.geochemistry import grid_meaning as gm

    names = ["Au (\u00b5g/g)", "Cu (ppm)", "Pb.ppm", "Fe2O3T_%", "Pd (ng/g)", "Au\uff08ppb\uff09", "Au", "LOI_pct"]
    assert [gm.units_from_name(n) for n in names] == ["ppm", "ppm", "ppm", "%", "ppb", "ppb", "", "%"]
    assert [t.get(gm.UNITS_KEY) for t in gm.band_tags(names[:3] + ["Au"])] == ["ppm", "ppm", "ppm", None]
