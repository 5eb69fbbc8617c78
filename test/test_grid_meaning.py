"""Outputs that carry their meaning (issue 25): IDW grids record their transform, units and that the survey
conventions were applied, in band metadata; readers use it (no below-detection or log10 step twice) and log it.
The Graphical Modeler chain element_selection -> IDW (log10) -> VAE runs headless from a .model3 file."""

import json
import os
import re

import numpy as np
import pytest
import rasterio

from conftest import DATA, SHARED_DATA, load_script

from oremap.core.geochemistry import grid_meaning as gm
from oremap.core.engine.errors import OreMapError

DEMO = load_script("demo_prospectivity")
SURVEY = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au.csv")
SITES = os.path.join(SHARED_DATA, "geochem", "area1_sediment_au_site.csv")


def test_units_from_field_names():
    assert [gm.units_from_name(n) for n in ("Au_ppm", "Au_ppb", "Fe2O3_pct", "SiO2 (%)", "Cu ppm", "Au", "ppm_Au",
                                            "As_ppm_rep", "Pt_g/t")] == \
        ["ppm", "ppb", "%", "%", "ppm", "", "", "ppm", "g/t"]


def meaning(transform, applied=True, names=("Au_ppm", "Hg_ppb")):
    return [{"name": n, "transform": transform, "units": gm.units_from_name(n), "detection_applied": applied}
            for n in names]


def test_adapt_never_repeats_a_step():
    below, transform, notes = gm.adapt_preprocessing(meaning("log10"), "half", "log10")
    assert (below, transform) == ("none", "none")
    assert notes[0] == ("Band metadata: Au_ppm (log10 of ppm, survey conventions already applied); Hg_ppb (log10 of "
                        "ppb, survey conventions already applied).")
    assert "no second log10" in notes[-1]
    # a grid of concentrations: the log10 is still to do, below-detection is not
    assert gm.adapt_preprocessing(meaning("none"), "half", "log10")[:2] == ("none", "log10")
    assert gm.adapt_preprocessing(meaning("none"), "half", "clr")[:2] == ("none", "clr")
    # a raster without OreMap metadata: the choices as they are, and the log says nothing was recorded
    below, transform, notes = gm.adapt_preprocessing(meaning(None, applied=False), "half", "log10")
    assert (below, transform) == ("half", "log10") and "do not say" in notes[0]
    with pytest.raises(OreMapError, match="centred log-ratio was asked of a raster of log10 values"):
        gm.adapt_preprocessing(meaning("log10"), "half", "clr")
    mixed = meaning("log10") + meaning(None, names=("Cu",))
    with pytest.raises(OreMapError, match="Au_ppm: log10, Hg_ppb: log10, Cu: unknown"):
        gm.adapt_preprocessing(mixed, "half", "log10")


def test_model_that_would_log_a_log10_grid_again_is_refused():
    class Prep:
        below, transform = "half", "log10"

    with pytest.raises(OreMapError, match="a log10 transform"):
        gm.check_model_input(meaning("log10"), Prep.below, Prep.transform)
    with pytest.raises(OreMapError, match="below-detection handling"):
        gm.check_model_input(meaning("log10"), "half", "none")
    gm.check_model_input(meaning("log10"), "none", "none")  # trained on such a grid
    gm.check_model_input(meaning("none"), "half", "log10")  # concentrations: log10 once


@pytest.fixture(scope="module")
def chain(qgis_process, tmp_path_factory):
    for path in (SURVEY, SITES):
        if not os.path.exists(path):
            pytest.fail(f"The shared survey data is missing: {path}")
    out = tmp_path_factory.mktemp("model3")
    paths = {"grid": str(out / "grid.tif"), "score": str(out / "score.tif"), "model": str(out / "vae.onnx")}
    proc = qgis_process("--json", "run", os.path.join(DATA, "geochem_vae_chain.model3"), "--",
                        f"points={DEMO.csv_uri(SURVEY)}", f"deposits={DEMO.csv_uri(SITES, types=False)}",
                        f"idw:grid={paths['grid']}", f"vae:score={paths['score']}", f"vae:model={paths['model']}")
    return paths, json.loads(proc.stdout[proc.stdout.index("{"):]), proc.stdout + proc.stderr


@pytest.mark.slow
def test_model3_chain_idw_log10_grid_is_read_as_log10_by_the_vae(chain):
    from oremap.core.geochemistry import vae_anomaly as vae

    paths, result, log = chain
    with rasterio.open(paths["grid"]) as ds:
        names = list(ds.descriptions)
        assert names == ["Au_ppm", "Hg_ppm"]  # selected on the real survey (README: Au, Hg)
        for b in (1, 2):
            tags = ds.tags(b)
            assert {k: tags.get(k) for k in ("OREMAP_TRANSFORM", "UNITS", "OREMAP_DETECTION")} == \
                {"OREMAP_TRANSFORM": "log10", "UNITS": "ppm", "OREMAP_DETECTION": "applied"}
        grid = ds.read(masked=True).astype(np.float64)
    valid = ~np.ma.getmaskarray(grid).any(axis=0)
    values = np.stack([grid[b].data[valid] for b in range(2)], axis=1)
    assert (values < 0).mean() > 0.5  # log10 of ppm: most cells are negative, and they are real values
    model = vae.load_model(paths["model"])
    prep = model.preprocessing
    assert (prep.below, prep.transform, prep.scale) == ("none", "none", "robust")
    # the network's inputs are the grid's log10 values: the robust centre is their median (every valid cell
    # trains, none held out), which a second log10 or a below-detection step would have changed
    np.testing.assert_allclose(prep.scaler.center, np.median(values, axis=0), rtol=0, atol=1e-9)
    assert "The values are log10 already: used as they are, no second log10." in log
    assert "Below-detection values and zeros were handled when the grid was made: not again." in log
    # below-detection notes come from the survey points (element selection, IDW), never from the grid's cells
    assert "(of 1392 samples)" in log and f"(of {int(valid.sum())} samples)" not in log
    assert result["results"]["vae:score"] == paths["score"]
    with rasterio.open(paths["score"]) as ds:
        score = ds.read(1, masked=True)
    assert int(score.count()) == int(valid.sum())  # every valid cell scored


def test_a_model_trained_on_one_transform_refuses_a_grid_of_the_other():
    gm.check_input_transform("log10", meaning("log10"))
    gm.check_input_transform("none", meaning("none"))
    gm.check_input_transform(None, meaning("none"))            # not recorded by the model: no check
    gm.check_input_transform("log10", meaning(None, False))    # not recorded by the raster: no check
    with pytest.raises(OreMapError) as err:
        gm.check_input_transform("log10", meaning("none"))
    assert err.value.parameter == "raster"
    assert str(err.value).startswith("The model was trained on log10 values, but this raster holds untransformed "
                                     "values (concentrations) (band metadata OREMAP_TRANSFORM=none)")
    assert "idw_interpolate with LOG10 on" in err.value.fix
    with pytest.raises(OreMapError, match="trained on untransformed values .* holds log10 values"):
        gm.check_input_transform("none", meaning("log10"))
    assert gm.recorded_transform(meaning("log10") + meaning(None, names=("Cu",))) is None


def _grid(path, values, transform):
    names = ["Au_ppm", "As_ppm", "Cu_ppm"]
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=3, dtype="float32", nodata=-9999.0,
                       crs="EPSG:32750", transform=rasterio.Affine(100, 0, 500000, 0, -100, 6300000)) as dst:
        dst.write(values.astype("float32"))
        for b, (name, tags) in enumerate(zip(names, gm.band_tags(names, transform)), start=1):
            dst.set_band_description(b, name)
            dst.update_tags(b, **tags)
    return str(path)


def test_vae_trained_on_a_log10_grid_refuses_a_grid_of_concentrations(tmp_path):
    """The reported chain: IDW with LOG10 -> vae_anomaly trains; IDW at its default (no log10) -> scored with that
    model put all 8,679 pixels above P99 (scores to 666,369). The model records what its grid held and refuses."""
    from oremap.core.geochemistry import vae_anomaly as va

    rng = np.random.default_rng(0)
    log10 = np.array([-2.5, 1.0, 1.5])[:, None, None] + 0.3 * rng.standard_normal((3, 20, 20))
    trained_on = _grid(tmp_path / "log10.tif", log10, "log10")
    model = str(tmp_path / "vae.onnx")
    va.run_raster(trained_on, str(tmp_path / "s.tif"), model_out=model, options={"epochs": 3, "seed": 1})
    assert va.load_model(model).preprocessing.input_transform == "log10"
    va.run_raster(trained_on, str(tmp_path / "again.tif"), model_path=model)  # the same kind of grid: scored
    plain = _grid(tmp_path / "ppm.tif", 10.0 ** log10, "none")
    with pytest.raises(OreMapError) as err:
        va.run_raster(plain, str(tmp_path / "wrong.tif"), model_path=model)
    assert err.value.parameter == "raster" and "trained on log10 values" in str(err.value)
    assert not os.path.exists(tmp_path / "wrong.tif")


def _untagged(path, values):
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=3, dtype="float32", nodata=-9999.0,
                       crs="EPSG:32750", transform=rasterio.Affine(100, 0, 500000, 0, -100, 6300000)) as dst:
        dst.write(values.astype("float32"))
        for b, name in enumerate(["Au_ppm", "As_ppm", "Cu_ppm"], start=1):
            dst.set_band_description(b, name)
    return str(path)


def test_a_grid_unlike_the_training_values_is_refused_when_nothing_records_its_transform(tmp_path):
    """Models of OreMap 0.2.0 and grids made elsewhere record no transform, so the metadata check passed them: a
    0.2.0 VAE trained on a log10 grid put all 9,302 pixels of a concentration grid above P99 without a word. The
    values themselves now decide: concentrations lie far from a log10 model's centre and spread far wider."""
    from conftest import core_warnings
    from oremap.core.geochemistry import vae_anomaly as va

    rng = np.random.default_rng(0)
    log10 = np.array([-2.5, 1.0, 1.5])[:, None, None] + 0.3 * rng.standard_normal((3, 20, 20))
    model = str(tmp_path / "vae.onnx")
    va.run_raster(_untagged(tmp_path / "log10.tif", log10), str(tmp_path / "s.tif"), model_out=model,
                  options={"epochs": 3, "seed": 1})
    assert va.load_model(model).preprocessing.input_transform is None  # as a 0.2.0 model: nothing recorded
    # another survey of the same kind: shifted a little, scored without a word
    log = core_warnings()
    va.run_raster(_untagged(tmp_path / "near.tif", log10 + 0.2), str(tmp_path / "near_s.tif"), model_path=model,
                  feedback=log)
    assert not any("unlike" in w or "well away" in w for w in log.warnings)
    with pytest.raises(OreMapError) as err:
        va.run_raster(_untagged(tmp_path / "ppm.tif", 10.0 ** log10), str(tmp_path / "wrong.tif"), model_path=model)
    assert err.value.parameter == "raster" and "unlike those the model was trained on" in err.value.message
    assert "Au_ppm" in err.value.message and not os.path.exists(tmp_path / "wrong.tif")
    # a moderate shift is warned of, not refused
    log = core_warnings()
    va.run_raster(_untagged(tmp_path / "shifted.tif", log10 + 1.8), str(tmp_path / "sh.tif"), model_path=model,
                  feedback=log)
    assert any(w.startswith("The raster's values lie well away") for w in log.warnings)
    # the spread alone (centred, twenty times narrower: log10 values near a concentration model's centre)
    z = 0.05 * rng.standard_normal((400, 3))
    with pytest.raises(OreMapError) as err:
        gm.check_training_range(z, ["Au_ppm", "As_ppm", "Cu_ppm"], print)
    factor = float(re.search(r"their spread differs from the training values' by a factor of ([\d.]+)",
                             err.value.message).group(1))
    assert 15 < factor < 25


def test_a_heavy_tailed_grid_of_concentrations_passes_against_its_own_z_score_model():
    """A ResNet z-scores its inputs with the mean and standard deviation of its training cells. The robust spread of a
    heavy-tailed concentration grid is a small fraction of its standard deviation (area1 gridded without log10: As
    0.0015 of it), so measuring the raster robustly refused a model its own training grid. The raster is now measured
    with the scaling's own statistics."""
    rng = np.random.default_rng(3)
    grid = 10.0 ** (np.array([0.5, -3.0, 1.5])[None, :] + 1.2 * rng.standard_normal((20000, 3)))
    z = (grid - grid.mean(axis=0)) / grid.std(axis=0)
    sample = z[rng.choice(len(z), 4000, replace=False)]
    logged = []
    gm.check_training_range(sample, ["As_ppm", "Au_ppm", "Cu_ppm"], logged.append, robust=False)
    assert logged == []
    with pytest.raises(OreMapError, match="spread differs"):   # as the first version measured it
        gm.check_training_range(sample, ["As_ppm", "Au_ppm", "Cu_ppm"], logged.append, robust=True)
    # concentrations given to the model of their log10 values are still refused
    logs = np.log10(grid)
    z = (grid - logs.mean(axis=0)) / logs.std(axis=0)
    with pytest.raises(OreMapError, match="unlike those the model was trained on"):
        gm.check_training_range(z, ["As_ppm", "Au_ppm", "Cu_ppm"], logged.append, robust=False)
