"""Trained models default to the model library folder (issue 25), not to Processing's temporary folder."""

import os

import pytest
from qgis.core import QgsProcessing, QgsProcessingContext

from oremap.algorithms import ALGORITHMS
from conftest import core_warnings


@pytest.fixture
def library_folder(tmp_path, processing_provider):
    from oremap.processing_provider import settings

    before = settings.raw_value(settings.MODEL_FOLDER_SETTING)
    folder = tmp_path / "my models"  # not created yet: the first model creates it
    settings.set_value(settings.MODEL_FOLDER_SETTING, str(folder))
    yield folder
    settings.set_value(settings.MODEL_FOLDER_SETTING, before)


def trainers(provider):
    return [provider.algorithm(name).create() for name, _ in ALGORITHMS
            if provider.algorithm(name).parameterDefinition("OUTPUT_MODEL") is not None]


def test_every_trainer_saves_a_temporary_model_in_the_library(library_folder, processing_provider):
    algs = trainers(processing_provider)
    assert sorted(a.name() for a in algs) == ["train_abundance_model", "train_mine_classifier",
                                              "train_mine_segmentation", "train_prospectivity_cnn",
                                              "train_spectral_cnn", "vae_anomaly"]
    context = QgsProcessingContext()
    for alg in algs:
        for value in (QgsProcessing.TEMPORARY_OUTPUT, ""):
            log = core_warnings()
            path = alg.output_path({"OUTPUT_MODEL": value}, "OUTPUT_MODEL", context, log)
            assert os.path.dirname(path) == str(library_folder)
            assert os.path.basename(path).startswith(alg.name() + "_") and path.endswith(".onnx")
            assert log.infos == [f"The model goes to the model library folder: {path} "
                                 "(Plugins > OreMap > Model library)."]
        assert "saved in the model library folder" in alg.shortHelpString()
    # a name taken in the same second gets a suffix; a chosen file is kept as chosen
    alg = algs[0]
    first = alg.output_path({"OUTPUT_MODEL": "TEMPORARY_OUTPUT"}, "OUTPUT_MODEL", context, core_warnings())
    open(first, "w").close()
    second = alg.output_path({"OUTPUT_MODEL": "TEMPORARY_OUTPUT"}, "OUTPUT_MODEL", context, core_warnings())
    assert second != first and os.path.dirname(second) == str(library_folder)
    mine = str(library_folder.parent / "mine.onnx")
    assert alg.output_path({"OUTPUT_MODEL": mine}, "OUTPUT_MODEL", context, core_warnings()) == mine
    # the VAE's model is optional: left out of a script, no model is written
    vae = processing_provider.algorithm("vae_anomaly").create()
    assert vae.output_path({}, "OUTPUT_MODEL", context, core_warnings()) is None


def test_trained_vae_lands_in_the_library(run_alg, library_folder, tmp_path):
    from oremap.core.engine import model_library
    from oremap.core.geochemistry import vae_anomaly as va
    from test_vae_anomaly import survey, write_stack

    values, _ = survey(n=300, seed=2)
    raster = write_stack(tmp_path / "stack.tif", values, width=20)
    res = run_alg("vae_anomaly", {"INPUT": raster, "EPOCHS": 3, "SEED": 1, "OUTPUT_SCORE": str(tmp_path / "s.tif"),
                                  "OUTPUT_MODEL": QgsProcessing.TEMPORARY_OUTPUT,
                                  "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert os.path.dirname(res["OUTPUT_MODEL"]) == str(library_folder)
    # the bands' elements, in the canonical order the VAE trains on (by name)
    assert va.load_model(res["OUTPUT_MODEL"]).names == ["Co_ppm", "Cr_ppm", "Cu_ppm", "Ni_ppm", "Pb_ppm", "Zn_ppm"]
    listed = [e.path for e in model_library.list_models(str(library_folder)) if e.source == model_library.USER]
    assert listed == [res["OUTPUT_MODEL"]]
