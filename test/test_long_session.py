"""OreMap in a long QGIS session: a failed or cancelled run must not keep what it held (audit of long sessions)."""

import gc
import os

import pytest

DATA = os.path.join(os.path.dirname(__file__), "data")
CUBE = os.path.join(DATA, "ang20150422t163638_corr_v1e_img_4000-4010_550-560.img")
LIBRARY = os.path.join(DATA, "usgs_minerals.sli")


def _alive(kind):
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ == kind)


def test_failed_and_cancelled_runs_leave_no_model_session_alive(processing_provider, tmp_path):
    """QGIS 3.22 keeps the exception a Python algorithm raises for the rest of the session. OreMap raised it inside
    an except block, so it carried the core exception and every frame of the run: per cancelled classification an
    onnxruntime session (and its thread) and the core's open files, for the rest of the session. The
    exception that leaves OreMap now carries nothing but its message. (The input layers stay open in the Processing
    context that QGIS's own caller keeps after a failed run; QGIS's native algorithms do the same.)"""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    class CancelAt(QgsProcessingFeedback):
        def __init__(self, at):
            super().__init__()
            self.progressChanged.connect(lambda p: p >= at and not self.isCanceled() and self.cancel())

    sessions = _alive("InferenceSession")
    for k in range(3):
        with pytest.raises(QgsProcessingException) as err:
            processing.run("oremap:classify_spectral_cnn", {
                "INPUT": CUBE, "MODEL": 0, "OUTPUT_CLASSES": str(tmp_path / f"c{k}.tif"),
                "OUTPUT_PROBABILITIES": str(tmp_path / f"p{k}.tif")}, feedback=CancelAt(20))
        assert "cancel" in str(err.value).lower() and err.value.__context__ is None
        with pytest.raises(QgsProcessingException) as err:
            processing.run("oremap:sam_classify", {"INPUT": CUBE, "LIBRARY": LIBRARY, "SPECTRA": "Nosuchmineral",
                                                   "OUTPUT_CLASSES": str(tmp_path / f"s{k}.tif")})
        assert "Nosuchmineral" in str(err.value) and err.value.__context__ is None
    del err
    assert _alive("InferenceSession") == sessions


def test_prospectivity_training_leaves_torch_s_random_generator_as_it_was(tmp_path):
    """Training promises to leave torch's process-wide state as it was, but its check of depth and width built a
    network first, drawing its initial weights from the process's generator: a user's script that seeded torch drew
    other numbers after a training (here one stopped at reading its raster, right after that check)."""
    import torch

    from oremap.core.engine.errors import OreMapError
    from oremap.core.geochemistry.prospectivity_cnn import train_prospectivity

    torch.manual_seed(123)
    expected = torch.rand(3).tolist()
    torch.manual_seed(123)
    with pytest.raises((OreMapError, OSError)):
        train_prospectivity(str(tmp_path / "missing.tif"), [(0.0, 0.0)], window=16, depth=18, width=8)
    assert torch.rand(3).tolist() == expected
