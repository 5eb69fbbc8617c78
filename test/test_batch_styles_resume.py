"""oremap:batch_on_cluster styles every scene it leaves written, however the run ends.

A cancelled batch keeps the scenes it finished, but their .qml styles were written only at the very end of the
run, which a cancel skips; a rerun with Resume counted them as skipped and styled only the scenes it wrote, so they
stayed bare grey rasters for good. The finished scenes are now styled before the cancel propagates, and Resume
styles skipped scenes whose outputs have no .qml, from what the outputs themselves keep (the class legend, the mine
threshold, the abundance bands' means) and the model, as an uninterrupted run styles them.
"""

import os
import shutil

import numpy as np
import pytest
import rasterio

from conftest import AVIRIS_NG, AVIRIS_NG_2, DATA, USGS_LIBRARY, dask_client, ensure_provider
from oremap.core.scaleout import batch

distributed = pytest.importorskip("distributed")

CNN = os.path.join(os.path.dirname(DATA), "..", "models", "usgs_minerals_cnn.onnx")
ENDMEMBERS = ["Kaolinite CM9", "Alunite GDS84", "Muscovite GDS107", "Calcite WS272"]
SCENES = [AVIRIS_NG, AVIRIS_NG_2]
CNN_PARAMS = {"ALGORITHM": list(batch.ALGORITHMS).index("classify_cnn"), "MODEL_FILE": CNN, "INPUTS": SCENES}


@pytest.fixture(scope="module")
def client():
    yield from dask_client(1)


def qml(path):
    return os.path.splitext(path)[0] + ".qml"


def read(path):
    with open(path) as handle:
        return handle.read()


def styles_of(algorithm, out_dir):
    """``{(scene, suffix): .qml text or None}`` of every output of the scenes in ``out_dir``."""
    return {(scene, suffix): read(qml(path)) if os.path.exists(qml(path)) else None
            for scene in SCENES for suffix, path in batch.output_paths(algorithm, scene, out_dir).items()}


def current_styles(algorithm, outputs, summary, folder, info=None):
    """The .qml texts the batch wrote before this fix at the end of a complete run (style_scenes: the styles of
    the scene's numbers), written here onto copies of the outputs in ``folder``."""
    from oremap.algorithms import styles
    from oremap.algorithms.batch_on_cluster import output_styles

    os.makedirs(folder, exist_ok=True)
    out = {}
    for suffix, style in output_styles(algorithm, summary, info).items():
        copy = os.path.join(folder, os.path.basename(outputs[suffix]))
        shutil.copyfile(outputs[suffix], copy)
        out[suffix] = read(styles.write_style(copy, style))
    return out


@pytest.fixture(scope="module")
def full_run(processing_initialised, client, tmp_path_factory):
    """An uninterrupted classify_cnn batch of both scenes through QGIS: its output folder."""
    import processing

    ensure_provider()

    out = str(tmp_path_factory.mktemp("full") / "maps")
    result = processing.run("oremap:batch_on_cluster", dict(CNN_PARAMS, SCHEDULER=client.scheduler.address,
                                                            OUTPUT_FOLDER=out))
    assert (result["SCENES_DONE"], result["SCENES_SKIPPED"], result["SCENES_FAILED"]) == (2, 0, 0)
    return out


def test_an_uninterrupted_batch_styles_its_scenes_as_before(full_run, tmp_path):
    """The styles of a complete run are those of the scenes' numbers, as before (the .qml text itself)."""
    for scene in SCENES:
        outputs = batch.output_paths("classify_cnn", scene, full_run)
        ref = batch.output_paths("classify_cnn", scene, str(tmp_path / "single"))
        os.makedirs(os.path.dirname(ref["classes"]), exist_ok=True)
        result = batch.run_scene("classify_cnn", scene, CNN, ref)
        expected = current_styles("classify_cnn", outputs, batch.scene_summary([result]),
                                  str(tmp_path / batch.scene_stem(scene)))
        assert sorted(expected) == ["classes", "confidence"]
        for suffix, text in expected.items():
            assert read(qml(outputs[suffix])) == text, (scene, suffix)
    assert sorted(os.listdir(full_run)) == sorted(
        os.path.basename(p) for scene in SCENES for path in batch.output_paths("classify_cnn", scene, full_run).values()
        for p in (path, qml(path)))


def test_a_cancelled_batch_leaves_its_finished_scenes_styled_and_resume_styles_the_rest(full_run, client,
                                                                                        tmp_path):
    """Cancelled as the first scene is reported done: that scene keeps its outputs, styled as the complete run
    styles them; Resume skips it and writes the other, and every output is then styled as in the complete run."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class CancelAtFirstScene(QgsProcessingFeedback):
        done = None

        def pushInfo(self, text):  # noqa: N802 (QGIS API)
            if text.startswith("Done: ") and self.done is None:
                self.done = text[len("Done: "):]
                self.cancel()
            super().pushInfo(text)

    out = str(tmp_path / "maps")
    params = dict(CNN_PARAMS, SCHEDULER=client.scheduler.address, OUTPUT_FOLDER=out)
    feedback = CancelAtFirstScene()
    with pytest.raises(QgsProcessingException, match="Cancelled: the scenes already finished keep their outputs"):
        processing.run("oremap:batch_on_cluster", params, feedback=feedback)
    assert feedback.done in SCENES
    full, after_cancel = styles_of("classify_cnn", full_run), styles_of("classify_cnn", out)
    for suffix in ("classes", "confidence"):
        assert after_cancel[(feedback.done, suffix)] is not None, f"{suffix} of the finished scene is unstyled"
        assert after_cancel[(feedback.done, suffix)] == full[(feedback.done, suffix)], suffix
    result = processing.run("oremap:batch_on_cluster", dict(params, RESUME=True))
    assert result["SCENES_SKIPPED"] >= 1 and result["SCENES_DONE"] + result["SCENES_SKIPPED"] == 2
    assert styles_of("classify_cnn", out) == full


def test_resume_styles_skipped_scenes_whose_outputs_have_no_style(processing_provider, client, tmp_path):
    """Scenes written without styles (a run stopped before them, or the headless 'python -m oremap.batch'): Resume
    skips them and writes the styles a complete run gives them, here unmixing's (the band of the largest mean
    abundance shown first, read back from the output). A skipped scene's own .qml is left as it is."""
    import processing

    out = str(tmp_path / "maps")
    os.makedirs(out)
    job = batch.BatchJob("unmix_fcls", USGS_LIBRARY, list(SCENES), out, {"spectra": ENDMEMBERS})
    report = batch.run_batch(job, client)   # the core batch writes no style
    assert sorted(report.done) == sorted(SCENES) and not any(f.endswith(".qml") for f in os.listdir(out))
    expected = {}
    for scene in SCENES:
        outputs = batch.output_paths("unmix_fcls", scene, out)
        texts = current_styles("unmix_fcls", outputs, report.summaries[scene], str(tmp_path / batch.scene_stem(scene)))
        expected.update({(scene, suffix): text for suffix, text in texts.items()})
    assert sorted(expected) == sorted((scene, "abundances") for scene in SCENES)
    own = qml(batch.output_paths("unmix_fcls", SCENES[1], out)["abundances"])
    params = {"ALGORITHM": list(batch.ALGORITHMS).index("unmix_fcls"), "MODEL_FILE": USGS_LIBRARY, "INPUTS": SCENES,
              "SPECTRA": "; ".join(ENDMEMBERS), "SCHEDULER": client.scheduler.address, "OUTPUT_FOLDER": out,
              "RESUME": True}
    result = processing.run("oremap:batch_on_cluster", params)
    assert (result["SCENES_DONE"], result["SCENES_SKIPPED"], result["SCENES_FAILED"]) == (0, 2, 0)
    assert styles_of("unmix_fcls", out) == expected
    with open(own, "w") as handle:
        handle.write("the user's own style")
    processing.run("oremap:batch_on_cluster", params)
    assert read(own) == "the user's own style"


def test_the_styles_numbers_are_read_back_from_the_outputs(tmp_path):
    """What the styles need, from the files: the mine mask's threshold, the class legend, and abundance means
    over the pixels with abundances (nodata and non-finite pixels left out, residual bands not counted)."""
    import json

    from oremap.algorithms import styles
    from oremap.algorithms.batch_on_cluster import output_styles, summary_from_outputs

    def write(path, data, nodata=None, tags=None):
        data = np.asarray(data)
        with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                           dtype=data.dtype, nodata=nodata) as ds:
            ds.write(data)
            ds.update_tags(**(tags or {}))
        return path

    mask = write(str(tmp_path / "s.mask.tif"), np.zeros((1, 2, 2), "uint8"), tags={"OREMAP_THRESHOLD": "0.35"})
    prob = write(str(tmp_path / "s.probability.tif"), np.zeros((1, 2, 2), "float32"))
    summary = summary_from_outputs("detect_mines", {"mask": mask, "probability": prob})
    assert summary == {"threshold": 0.35}
    assert output_styles("detect_mines", summary)["mask"] == styles.mine_mask(0.35)
    legend = [{"value": 0, "name": "Unclassified", "color": "#000000"}, {"value": 1, "name": "a", "color": "#ff0000"}]
    classes = write(str(tmp_path / "s.classes.tif"), np.zeros((1, 2, 2), "uint8"),
                    tags={"OREMAP_CLASSES": json.dumps(legend)})
    assert summary_from_outputs("sam_classify", {"classes": classes, "score": prob}) == {"legend": legend}
    # band 2 is the larger on the pixels with abundances; a nodata pixel and a NaN pixel would make band 1 larger;
    # the residual band (the largest) is no abundance
    data = np.array([[[0.2, 0.3], [-9999.0, 0.9]], [[0.8, 0.7], [0.1, np.nan]], [[5.0, 5.0], [5.0, 5.0]]], "float32")
    abundances = write(str(tmp_path / "s.abundances.tif"), data, nodata=-9999.0,
                       tags={"OREMAP_ENDMEMBERS": json.dumps(["A", "B"])})
    summary = summary_from_outputs("unmix_fcls", {"abundances": abundances})
    assert summary["means"] == pytest.approx([0.25, 0.75])
    assert output_styles("unmix_fcls", summary)["abundances"]["band"] == 2
