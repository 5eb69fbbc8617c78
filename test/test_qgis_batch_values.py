"""Values as QGIS's own Batch Processing panel and history pass them (audit of batch and history re-runs)."""


def test_libraries_typed_as_one_text_are_split(processing_provider, tmp_path):
    """QGIS's batch panel keeps a multiple-file cell as typed, 'a.sli;b.sli', and parameterAsFileList does not split
    it: the run was refused ('Spectral library ...a.sli;...b.sli does not exist'). A text that is no file itself is
    split at ';'; a file whose name holds ';' stays whole."""
    from qgis.core import QgsProcessingContext

    a, b = tmp_path / "a.sli", tmp_path / "b;c.sli"
    a.write_bytes(b"")
    b.write_bytes(b"")
    alg = processing_provider.algorithm("train_spectral_cnn").create()
    context = QgsProcessingContext()
    assert alg.file_list({"LIBRARIES": f"{a};{tmp_path / 'x.sli'}"}, "LIBRARIES", context) == [
        str(a), str(tmp_path / "x.sli")]
    assert alg.file_list({"LIBRARIES": [str(b), str(a)]}, "LIBRARIES", context) == [str(b), str(a)]
    assert alg.file_list({"OUTLIER_LIBRARIES": f" {a} ; "}, "OUTLIER_LIBRARIES", context) == [str(a)]
    assert alg.file_list({}, "LIBRARIES", context) == []
