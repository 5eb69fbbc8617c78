"""OreMap runs at the same time in one QGIS (Processing runs algorithms in background threads): what is process-wide
must come back as it was, and two runs must not take one file name."""

import os
import threading

import numpy as np


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_overlapping_one_thread_products_give_back_the_blas_thread_count(monkeypatch):
    """Each product saved BLAS's (process-wide) thread count on entry and put back what it saw: when two overlapped
    and the first left first, the second put back the first's 1, and the session stayed on one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from oremap.core.engine import compute

    inside, first_left = threading.Barrier(2), threading.Event()
    seen = {}

    def product(a, b):   # both inside at once; the second leaves after the first
        name = threading.current_thread().name
        inside.wait(timeout=30)
        seen[name] = _blas_threads()
        if name == "second":
            first_left.wait(timeout=30)
        return a @ b

    monkeypatch.setattr(compute, "gemm", product)
    a = np.ones((3, 2), np.float32)

    def run(name):
        compute.matmul_one_thread(a, a.T)
        if name == "first":
            first_left.set()

    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        threads = [threading.Thread(target=run, args=(n,), name=n) for n in ("first", "second")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert seen["first"] and seen["first"] == seen["second"] == [1] * len(seen["first"])   # one thread inside
        assert set(_blas_threads()) == {2}


def test_two_trainings_in_one_second_get_two_library_names(processing_provider, oremap_setting, tmp_path,
                                                           monkeypatch):
    """Two trainings started in the same second took one model-library name (date-time to the second), and the
    second was refused for an output its user never chose. A name another process is writing is skipped too."""
    from oremap.algorithms import base
    from oremap.core.engine import files
    from oremap.processing_provider import settings

    oremap_setting(settings.MODEL_FOLDER_SETTING, str(tmp_path))
    monkeypatch.setattr(base.time, "strftime", lambda fmt: "20261207-063109")

    class Quiet:
        def info(self, text):
            pass

    runs = [processing_provider.algorithm("train_spectral_cnn").create() for _ in range(3)]
    (tmp_path / f".train_spectral_cnn_20261207-063109-2.onnx{files.WRITING_MARK}abcdef-1-00").write_text("")
    names = [run.library_model_path(Quiet()) for run in runs]
    assert [n[len(str(tmp_path)) + 1:] for n in names] == [
        "train_spectral_cnn_20261207-063109.onnx", "train_spectral_cnn_20261207-063109-3.onnx",
        "train_spectral_cnn_20261207-063109-4.onnx"]


def test_library_names_of_earlier_seconds_are_forgotten(processing_provider, oremap_setting, tmp_path, monkeypatch):
    """The names handed out were kept for the life of the QGIS session; names carry their second, so only those of
    the current second can be handed out again and only they are kept."""
    from oremap.algorithms import base
    from oremap.processing_provider import settings

    oremap_setting(settings.MODEL_FOLDER_SETTING, str(tmp_path))
    run = processing_provider.algorithm("train_spectral_cnn").create()

    class Quiet:
        def info(self, text):
            pass

    given = set()
    monkeypatch.setattr(base, "_LIBRARY_NAMES_GIVEN", given)
    for second in ("20261207-063109", "20261207-063109", "20261207-063110"):
        monkeypatch.setattr(base.time, "strftime", lambda fmt, s=second: s)
        run.library_model_path(Quiet())
    assert sorted(os.path.basename(p) for p in given) == ["train_spectral_cnn_20261207-063110.onnx"]
