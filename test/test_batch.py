"""Batch runs on a Dask cluster (core/scaleout/batch.py, batch.py, oremap:batch_on_cluster).

The known answer of every cluster run is the file the single-process core function writes for the same
scene, called here directly (not through core/scaleout/batch.py): the cluster's outputs must be the same bytes,
although each scene is cut into row ranges run by two worker processes and stitched afterwards.
"""

import hashlib
import glob
import os
import re
import shutil
import signal

import numpy as np
import pytest
import rasterio

from conftest import AVIRIS_NG, AVIRIS_NG_2, DATA, USGS_LIBRARY, core_warnings, dask_client
from s2_scene import S2_FOLDER
from oremap.core.scaleout import batch
from oremap.core.hyperspectral import mapping
from oremap.core.engine import raster
from oremap.core.engine.errors import OreMapError
from oremap.core.hyperspectral.spectral_library import read_library

distributed = pytest.importorskip("distributed")

CNN = os.path.join(os.path.dirname(DATA), "..", "models", "usgs_minerals_cnn.onnx")
JASPER = os.path.join(DATA, "jasper_ridge_40x40.tif")   # uint16 0-10000, no nodata, no CRS: the scale is guessed
ENDMEMBERS = ["Kaolinite CM9", "Alunite GDS84", "Muscovite GDS107", "Calcite WS272"]
# a real Sentinel-2 L2A patch as delivered by BigEarthNet: a folder of one GeoTIFF per band (B01 ... B12, B8A)
S2_PRODUCT = os.path.join(S2_FOLDER, "S2A_MSIL2A_20170613T101031_87_48")


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def copy_envi(src, folder, name):
    """An ENVI scene (.img + .hdr) under another name."""
    dst = os.path.join(folder, name + ".img")
    shutil.copyfile(src, dst)
    shutil.copyfile(os.path.splitext(src)[0] + ".hdr", os.path.join(folder, name + ".hdr"))
    return dst


@pytest.fixture(scope="module")
def client():
    yield from dask_client(2)


# A small memory budget, here and in the single-process runs, so that the fixtures' few rows make several
# blocks of the engine, and so several row ranges.
MEMORY_MB = 0.05


def run(client, tmp_path, algorithm, model, inputs, rows, name="out", feedback=None, **options):
    out = tmp_path / name
    out.mkdir()
    job = batch.BatchJob(algorithm, model, list(inputs), str(out), options, rows_per_part=rows, memory_mb=MEMORY_MB)
    plans = batch.plan(job)
    report = batch.run_batch(job, client, feedback)
    assert report.parts == sum(max(len(p.parts), 1) for p in plans) and report.block_mismatches == 0
    return job, report, out, plans


def assert_same_files(job, references, styled=False):
    """Each output is byte-identical to the single-process file; nothing else is in the folder (but, ``styled``,
    the .qml style beside each output)."""
    expected = set()
    for scene, ref in references.items():
        outputs = batch.output_paths(job.algorithm, scene, job.out_dir)
        for suffix, path in outputs.items():
            assert sha(path) == sha(ref[suffix]), (scene, suffix)
            expected.add(os.path.basename(path))
            if styled:
                expected.add(os.path.splitext(os.path.basename(path))[0] + ".qml")
    assert set(os.listdir(job.out_dir)) == expected


# --------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------
def test_inputs_from_pattern_folder_and_list_file(tmp_path):
    a, b = copy_envi(AVIRIS_NG, tmp_path, "a"), copy_envi(AVIRIS_NG_2, tmp_path, "b")
    (tmp_path / "scenes.txt").write_text("# two lines\nb.img\n\n" + a + "\n")
    assert batch.expand_inputs([str(tmp_path / "*.img")]) == [a, b]
    assert batch.expand_inputs([str(tmp_path)]) == [a, b]           # the folder's rasters, not the headers
    assert batch.expand_inputs([], [str(tmp_path / "scenes.txt")]) == [b, a]
    assert batch.expand_inputs([a, str(tmp_path / "a.img")]) == [a]  # duplicates once
    with pytest.raises(OreMapError) as err:
        batch.expand_inputs([str(tmp_path / "*.tif")])
    assert err.value.parameter == "inputs"
    (tmp_path / "bad.txt").write_text("missing.img\n")
    with pytest.raises(OreMapError, match="Line 1"):
        batch.expand_inputs([], [str(tmp_path / "bad.txt")])
    # a path that exists is a path, whatever it holds: 'Survey [2023]' was a pattern that matched 'Survey 2' (another
    # scene, run as if asked for) or nothing ('matches no file')
    (tmp_path / "Survey [2023]").mkdir()
    (tmp_path / "Survey 2").mkdir()
    asked = copy_envi(AVIRIS_NG, str(tmp_path / "Survey [2023]"), "scene")
    copy_envi(AVIRIS_NG_2, str(tmp_path / "Survey 2"), "scene")
    assert batch.expand_inputs([asked]) == [asked]
    assert batch.expand_inputs([str(tmp_path / "Survey [2023]")]) == [asked]
    (tmp_path / "only [x]").mkdir()
    alone = copy_envi(AVIRIS_NG, str(tmp_path / "only [x]"), "scene")
    assert batch.expand_inputs([alone]) == [alone]


def test_a_sentinel2_product_folder_is_one_scene(tmp_path):
    """Its band files are not scenes of one band each (they failed, 12 of them, 'lacking the bands')."""
    assert len([f for f in os.listdir(S2_PRODUCT) if f.endswith(".tif")]) == 12
    assert batch.expand_inputs([S2_PRODUCT]) == [S2_PRODUCT]
    assert batch.expand_inputs([S2_PRODUCT + os.sep]) == [S2_PRODUCT]
    products = sorted(os.path.join(S2_FOLDER, f) for f in os.listdir(S2_FOLDER)
                      if os.path.isdir(os.path.join(S2_FOLDER, f)))
    assert len(products) == 6 and batch.expand_inputs([S2_FOLDER]) == products   # a folder of products: each one
    assert batch.output_paths("detect_mines", S2_PRODUCT, str(tmp_path)) == {
        "probability": str(tmp_path / "S2A_MSIL2A_20170613T101031_87_48.probability.tif"),
        "mask": str(tmp_path / "S2A_MSIL2A_20170613T101031_87_48.mask.tif")}
    # a .SAFE: the bands of its one granule under GRANULE/.../IMG_DATA/R10m, R20m, R60m
    safe = tmp_path / "S2B_MSIL2A_20230101T101031_N0509_R022_T32TQM_20230101T120000.SAFE"
    for res, bands in (("10", "B02 B03 B04 B08"), ("20", "B05 B06 B07 B8A B11 B12"), ("60", "B01 B09")):
        folder = safe / "GRANULE" / "L2A_T32TQM_A039000_20230101T101031" / "IMG_DATA" / f"R{res}m"
        folder.mkdir(parents=True)
        for band in bands.split():
            (folder / f"T32TQM_20230101T101031_{band}_{res}m.jp2").write_bytes(b"")
    (safe / "MTD_MSIL2A.xml").write_text("<metadata/>")
    assert batch.expand_inputs([str(safe)]) == [str(safe)]
    assert batch.scene_stem(str(safe)) == "S2B_MSIL2A_20230101T101031_N0509_R022_T32TQM_20230101T120000"
    copy_envi(AVIRIS_NG, tmp_path, "line")
    assert batch.expand_inputs([str(tmp_path)]) == [str(safe), str(tmp_path / "line.img")]   # products and rasters


def test_plan_cuts_tall_scenes_into_row_ranges_and_refuses_to_overwrite(tmp_path):
    job = batch.BatchJob("unmix_fcls", USGS_LIBRARY, [JASPER, AVIRIS_NG], str(tmp_path), rows_per_part=16)
    assert [p.parts for p in batch.plan(job)] == [[], []]        # 512 MB: each scene is one block, one task
    job.memory_mb = MEMORY_MB
    jasper, aviris = batch.plan(job)
    assert jasper.parts == [(0, 16), (16, 32), (32, 40)] and aviris.parts == []   # 10 rows: one task
    assert jasper.outputs == {"abundances": str(tmp_path / "jasper_ridge_40x40.abundances.tif")}
    (tmp_path / "jasper_ridge_40x40.abundances.tif").write_bytes(b"mine")
    with pytest.raises(OreMapError, match="already exists") as err:
        batch.plan(job)
    assert err.value.parameter == "out_dir"
    job.resume = True
    assert [p.skip for p in batch.plan(job)] == [True, False]
    with pytest.raises(OreMapError) as err:
        batch.plan(batch.BatchJob("classify_cnn", str(tmp_path / "none.onnx"), [JASPER], str(tmp_path)))
    assert err.value.parameter == "model"
    (tmp_path / "x").mkdir()
    with pytest.raises(OreMapError, match="same outputs"):
        batch.plan(batch.BatchJob("classify_cnn", CNN, [AVIRIS_NG, copy_envi(AVIRIS_NG, tmp_path, os.path.splitext(
            os.path.basename(AVIRIS_NG))[0])], str(tmp_path / "x"), overwrite=True))


@pytest.mark.parametrize("width, height, per_pixel, memory_mb, rows, expected", [
    (1242, 3000, 2000, 512, 700, [(0, 768), (768, 1536), (1536, 2304), (2304, 3000)]),  # tile rows, 2 chunks
    # blocks get 3/4 of 512 MB: 2,013,265 pixels, 1621 rows of 1242, strips of 1536 (whole 256-row tiles)
    (1242, 9000, 200, 512, 100, [(r, min(r + 1536, 9000)) for r in range(0, 9000, 1536)]),
    (1242, 1280, 3000, 100, 300, [(0, 512), (512, 1024), (1024, 1280)]),     # 136 + 120 rows in each tile row
    (1242, 600, 20000, 1, 100, [(r, r + 100) for r in range(0, 600, 100)]),        # one-row windows of 52 columns
])
def test_row_ranges_are_whole_blocks_the_engine_cuts_alike(width, height, per_pixel, memory_mb, rows, expected):
    from oremap.core.engine.raster import block_windows

    parts = batch.row_ranges(width, height, batch.Sizing.flat(per_pixel), memory_mb, rows)
    assert parts == expected
    whole = sorted((w.col_off, w.row_off, w.width, w.height) for w in block_windows(width, height, per_pixel, memory_mb))
    pieces = sorted((w.col_off, w.row_off + r0, w.width, w.height) for r0, r1 in parts
                    for w in block_windows(width, r1 - r0, per_pixel, memory_mb))
    assert pieces == whole


def test_a_row_range_vrt_reads_the_scenes_own_values(tmp_path):
    vrt = batch.row_vrt(JASPER, 16, 32, str(tmp_path / "rows.vrt"), 1e-4, 0.0)
    with rasterio.open(JASPER) as whole, rasterio.open(vrt) as part:
        assert part.shape == (16, 40) and part.count == whole.count and part.dtypes == whole.dtypes
        assert np.array_equal(part.read(), whole.read(window=((16, 32), (0, 40))))
        assert part.tags(5) == whole.tags(5) and part.scales[0] == 1e-4
        assert part.transform.f == whole.transform.f + 16 * whole.transform.e


def test_a_row_range_vrt_keeps_the_scenes_mask_and_alpha_band(tmp_path):
    """A part read its rows through a VRT without GDAL's mask of the scene (internal or .msk) or the alpha band's
    colour interpretation: the masked pixels of a split scene were classified and unmixed (1600 valid pixels where
    the single run had 1400)."""
    from rasterio.enums import ColorInterp

    from oremap.core.engine.raster import RasterSource

    with rasterio.open(JASPER) as src:
        profile, data = src.profile, src.read()
    mask = np.full((40, 40), 255, np.uint8)
    mask[20:30, 5:25] = 0
    masked, alpha = str(tmp_path / "masked.tif"), str(tmp_path / "alpha.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(masked, "w", **dict(profile, driver="GTiff")) as ds:
        ds.write(data)
        ds.write_mask(mask)
    with rasterio.open(alpha, "w", **dict(profile, driver="GTiff", count=profile["count"] + 1)) as ds:
        ds.write(data, indexes=list(range(1, profile["count"] + 1)))
        ds.write(np.where(mask == 0, 0, 10000).astype(profile["dtype"]), profile["count"] + 1)
        ds.colorinterp = [ColorInterp.gray] + [ColorInterp.undefined] * (profile["count"] - 1) + [ColorInterp.alpha]
    window = rasterio.windows.Window(0, 0, 40, 16)
    for scene in (masked, alpha):
        vrt = batch.row_vrt(scene, 16, 32, str(tmp_path / (os.path.basename(scene) + ".rows.vrt")), 1e-4, 0.0)
        with RasterSource(vrt) as part, RasterSource(scene) as whole:
            assert part.n_bands == whole.n_bands == profile["count"]
            valid = part.read(window)[1]
            assert np.array_equal(valid, whole.read(rasterio.windows.Window(0, 16, 40, 16))[1])
            assert int((~valid).sum()) == 200


def test_scenes_of_band_types_a_vrt_cannot_carry_run_whole(tmp_path):
    """int64 scenes (and int8 before GDAL 3.7) failed in every part ('int64', 'Invalid dataType = Int8') though they
    run alone: a scene of a type a VRT cannot carry here is run whole (rasterio 1.3 reads a VRT's Int64 band as
    uint64), any other is cut into row ranges."""
    with rasterio.open(JASPER) as src:
        profile, data, tags = src.profile, src.read(), [src.tags(b) for b in range(1, src.count + 1)]
    for dtype in ("int64", "int16"):
        with rasterio.open(str(tmp_path / f"{dtype}.tif"), "w", **dict(profile, driver="GTiff", dtype=dtype)) as ds:
            ds.write(data.astype(dtype))
            for b, band_tags in enumerate(tags, start=1):   # the wavelengths
                ds.update_tags(b, **band_tags)
    job = batch.BatchJob("unmix_fcls", USGS_LIBRARY, [str(tmp_path / "int64.tif"), str(tmp_path / "int16.tif")],
                         str(tmp_path / "out"), rows_per_part=16, memory_mb=MEMORY_MB)
    os.makedirs(job.out_dir)
    assert [p.parts for p in batch.plan(job)] == [[], [(0, 16), (16, 32), (32, 40)]]
    assert raster.vrt_type("int64") is None and raster.vrt_type("float32") == "Float32"
    gdal = tuple(int(v) for v in rasterio.__gdal_version__.split(".")[:2])
    assert raster.vrt_type("int8") == ("Int8" if gdal >= (3, 7) else None)


def test_a_failed_part_is_reported_by_its_scene_and_the_scenes_row():
    """A part's failure named its deleted VRT and its own row: 'The raster .../part00002.vrt cannot be read near row
    0' for the scene's row 32."""
    part = "/w/.oremap-batch-x/part00002.vrt"
    exc = OreMapError(f"The raster '{part}' cannot be read near row 0: the file is truncated or damaged.", "raster")
    failed = batch._failure(exc, [(part, "/data/scene.tif")], (32, 48))
    assert failed == {"failed": "The raster '/data/scene.tif' cannot be read near row 32: the file is truncated or "
                                "damaged.", "parameter": "raster"}
    assert batch._failure(OSError("disk full"))["failed"] == "disk full"


def test_a_scheduler_address_dask_cannot_parse_is_named(monkeypatch):
    """'http://host:8786' or 'host:8786x' raised distributed's ValueError with a traceback (the CLI exited 1, the
    code of a failed scene, instead of 2)."""
    import distributed

    def refuse(address, timeout=None):
        raise ValueError("unknown address scheme 'http' (known schemes: ['inproc', 'tcp', 'tls'])")

    monkeypatch.setattr(distributed, "Client", refuse)
    with pytest.raises(OreMapError) as err:
        batch.start_cluster("http://127.0.0.1:8786")
    assert err.value.parameter == "scheduler"
    assert err.value.message.startswith("Cannot reach the Dask scheduler at 'http://127.0.0.1:8786': unknown address")


def test_the_submitting_machines_memory_budget_is_sent_to_the_workers(tmp_path, monkeypatch):
    """A job without a budget sent None, which each worker read from its own environment: a remote worker without
    OREMAP_MEMORY_MB cut 512 MB blocks where the plan had cut 24 MB ones, and the files were no longer those of a
    single run (audit of 2026-12-07). The budget is now resolved on this machine and the parts get the number."""
    pytest.importorskip("distributed")
    seen = {}

    def planned(job, plans, *args):
        seen["memory_mb"] = job.memory_mb
        seen["parts"] = [p.parts for p in plans]
        return None

    monkeypatch.setattr(batch, "_run_planned", planned)
    monkeypatch.setenv("OREMAP_MEMORY_MB", "24")
    job = batch.BatchJob("unmix_fcls", USGS_LIBRARY, [JASPER], str(tmp_path), rows_per_part=16)
    batch.run_batch(job, client=None)
    assert seen["memory_mb"] == 24.0 and job.memory_mb is None   # the user's job object is left as it was
    monkeypatch.setenv("OREMAP_MEMORY_MB", "300")
    batch.run_batch(batch.BatchJob("unmix_fcls", USGS_LIBRARY, [JASPER], str(tmp_path), rows_per_part=16,
                                   memory_mb=40), client=None)
    assert seen["memory_mb"] == 40.0

def test_a_model_shipped_as_bytes_is_written_once_to_the_cache(tmp_path):
    ref = batch.model_ref(USGS_LIBRARY)
    files = batch.model_files(USGS_LIBRARY)
    assert sorted(files) == ["usgs_minerals.hdr", "usgs_minerals.sli"]           # the header travels too
    assert batch.materialise(ref, files) == ref.path                            # readable here: used in place
    gone = batch.ModelRef(str(tmp_path / "elsewhere" / "usgs_minerals.sli"), ref.sha256)
    local = batch.materialise(gone, files, cache=str(tmp_path / "cache"))
    assert os.path.basename(local) == "usgs_minerals.sli" and batch._sha256(local) == ref.sha256
    assert read_library(local).names == read_library(USGS_LIBRARY).names
    with pytest.raises(OreMapError, match="cannot be read on this worker"):
        batch.materialise(gone)


# --------------------------------------------------------------------------------------
# Cluster runs = single-process runs, for each algorithm
# --------------------------------------------------------------------------------------
def test_cnn_classification_on_the_cluster_is_bit_identical(client, tmp_path):
    refs, single = {}, {}
    for scene in (AVIRIS_NG, AVIRIS_NG_2):
        stem = batch.scene_stem(scene)
        refs[scene] = {"classes": str(tmp_path / f"{stem}.c.tif"), "confidence": str(tmp_path / f"{stem}.p.tif")}
        single[scene] = mapping.cnn_classify_map(scene, CNN, refs[scene]["classes"], None, refs[scene]["confidence"],
                                                 threads=1, memory_mb=MEMORY_MB)
    log = core_warnings()
    job, report, out, plans = run(client, tmp_path, "classify_cnn", CNN, [AVIRIS_NG, AVIRIS_NG_2], rows=3,
                                  feedback=log)
    assert sorted(report.done) == sorted([AVIRIS_NG, AVIRIS_NG_2]) and not report.failed
    # 10 x 10 pixels each; 60 of the second tile are fill (one value in every band), nodata
    assert [p.parts for p in plans] == [[(0, 3), (3, 6), (6, 9), (9, 10)]] * 2 and report.pixels == 100 + 40
    assert_same_files(job, refs)   # no part, work folder or mark is left in the folder
    notes = [m for m in log.infos if "unlike the training spectra" in m or "the model is unsure" in m]
    expected_notes = []
    for scene in (AVIRIS_NG, AVIRIS_NG_2):        # the scene's numbers, added from its 4 parts, and its legend
        summary = report.summaries[scene]
        assert summary["valid_pixels"] == single[scene]["valid_pixels"]
        assert summary["class_counts"] == {k: int(v) for k, v in single[scene]["class_counts"].items()}
        assert summary["legend"] == single[scene]["legend"]
        for key in ("out_of_distribution", "low_confidence"):
            assert summary[key] == single[scene][key]
        expected_notes += [f"{os.path.basename(scene)}: {n}" for n in mapping.classification_notes(single[scene])]
    # the whole scene's counts, as its single run logs them, once: not each of its 4 parts' own
    assert sorted(notes) == sorted(expected_notes) and len(expected_notes) >= 2
    with rasterio.open(refs[AVIRIS_NG]["classes"]) as ds:
        assert len(np.unique(ds.read(1))) >= 2                  # a map with more than one class


def test_spectrometer_products_as_delivered_are_scenes_like_in_the_single_algorithms(client, tmp_path):
    """EMIT, EnMAP and PRISMA products in one folder (with EMIT's mask granule and EnMAP's metadata and quality
    layer beside them): the folder gives the three images as scenes, each is read through the GeoTIFF the single
    algorithms make of it (every product failed: 'No bands left to read', 'no band wavelengths'), runs as one
    task, and its outputs are the bytes the single-process run writes from that GeoTIFF; nothing else is left."""
    from sensor_fixtures import make_emit, make_enmap, make_prisma

    from oremap.core.hyperspectral import sensor_products

    folder = tmp_path / "products"
    folder.mkdir()
    emit, enmap, prisma = make_emit(str(folder)), make_enmap(str(folder)), make_prisma(str(folder))
    from conftest import core_warnings

    log = core_warnings()
    scenes = batch.expand_inputs([str(folder)], feedback=log)
    assert sorted(os.path.basename(p) for p in scenes) == sorted(
        os.path.basename(p) for p in (emit["path"], enmap["image"], prisma["path"]))
    # the companions left out are named in the log
    left_out = sorted(os.path.basename(p) for p in glob.glob(str(folder / "*"))
                      if sensor_products.is_companion(p) and batch._is_raster_file(p))
    assert left_out and log.infos == [f"{len(left_out)} companion file(s) of sensor products left out (read with "
                                      f"their product's image, not as scenes): {', '.join(left_out)}."]
    # a pattern matching the EnMAP product's XML and image gives it once, and says so; an HDF5 file that is no
    # product (network weights) is no scene
    (folder / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    log = core_warnings()
    enmap_files = sorted(os.path.basename(p) for p in glob.glob(str(folder / "ENMAP*")) if not "QL_" in p)
    xml, image = enmap_files  # the XML sorts first; the image is the scene, as from the folder (outputs named by it)
    assert xml.endswith("METADATA.XML") and image == os.path.basename(enmap["image"])
    assert [os.path.basename(p) for p in batch.expand_inputs([str(folder / "ENMAP*")], feedback=log)] == [image]
    assert log.infos[-1] == f"Given twice, processed once: {xml} (the same scene as {image})."
    assert len(batch.expand_inputs([str(folder)])) == 3
    assert "weights.h5" not in [os.path.basename(p) for p in batch.expand_inputs([str(folder / "*")])]
    os.remove(folder / "weights.h5")
    refs = {}
    for scene in scenes:
        tif = sensor_products.prepare_input(scene, str(tmp_path / "single"), memory_mb=512)
        stem = batch.scene_stem(scene)
        refs[scene] = {"classes": str(tmp_path / f"{stem}.c.tif"), "confidence": str(tmp_path / f"{stem}.p.tif")}
        mapping.cnn_classify_map(tif, CNN, refs[scene]["classes"], None, refs[scene]["confidence"], threads=1,
                                 memory_mb=MEMORY_MB)
    job, report, out, plans = run(client, tmp_path, "classify_cnn", CNN, scenes, rows=3)
    assert sorted(report.done) == sorted(scenes) and not report.failed
    assert [p.parts for p in plans] == [[]] * 3  # not cut into rows: one task reads the product once
    assert_same_files(job, refs)


def test_fcls_unmixing_of_an_integer_scene_cut_into_rows_is_bit_identical(client, tmp_path):
    library = read_library(USGS_LIBRARY).subset(ENDMEMBERS)
    refs = {}
    for scene in (JASPER, AVIRIS_NG):
        refs[scene] = {"abundances": str(tmp_path / f"{batch.scene_stem(scene)}.ref.tif")}
        mapping.unmix_map(scene, library, refs[scene]["abundances"], band_info=mapping.image_band_info(scene),
                          memory_mb=MEMORY_MB)
    job, report, out, plans = run(client, tmp_path, "unmix_fcls", USGS_LIBRARY, [JASPER, AVIRIS_NG], rows=16,
                                  spectra=ENDMEMBERS)
    assert not report.failed and len(plans[0].parts) == 3 and plans[1].parts == []   # 40 rows; 10 rows: whole
    assert_same_files(job, refs)
    with rasterio.open(refs[JASPER]["abundances"]) as ds:
        rmse = ds.read(ds.count)
        # read as reflectance (value / 10000, guessed on the whole scene for every row range): raw integers
        # would leave residuals in the thousands
        assert 0 < np.median(rmse) < 1.0


def test_abundance_prediction_on_the_cluster_is_bit_identical(client, tmp_path):
    from abundance_scene import LISTED, make_scene, roi_pixels

    from oremap.core.abundance import abundance as ab_train
    from oremap.core.abundance import abundance_map as ab

    train = make_scene(str(tmp_path), n_rows=3, n_cols=3, seed=0, name="train")
    scene = make_scene(str(tmp_path), n_rows=3, n_cols=2, seed=1, name="test")
    X, _, ids = roi_pixels(train)
    comp = ab_train.prepare_compositions(train["lab"][:, :4], LISTED)
    ab_train.train_abundance_model(X, comp.values[ids], ids, comp.names, families=["ridge", "pls"], n_folds=3,
                             fcls=False, seed=1).save(str(tmp_path / "abundance.onnx"))
    model = str(tmp_path / "abundance.onnx")
    info = mapping.image_band_info(scene["raster"], required=False)
    bands, matrix = mapping.model_input(scene["raster"], ab.AbundanceModel(model).info, info)
    ref = {s: str(tmp_path / f"ref.{s}.tif") for s in ("abundance", "intervals", "dominant")}
    single = ab.predict_abundance_map(scene["raster"], model, ref["abundance"], ref["intervals"], ref["dominant"],
                                      level=0.8, image_bands=bands, resampler=matrix, memory_mb=MEMORY_MB)
    job, report, out, plans = run(client, tmp_path, "predict_abundance", model, [scene["raster"]], rows=16,
                                  level=0.8)
    assert not report.failed and plans[0].parts == [(0, 16), (16, 26)]
    assert_same_files(job, {scene["raster"]: ref})
    # the whole scene's mean abundances from the two parts' (weighted by their pixels): the single run's table,
    # and so the band the single run's style shows first, and its legend of the dominant mineral
    from oremap.algorithms.batch_on_cluster import output_styles
    from oremap.core.engine.model_format import read_model_info

    summary = report.summaries[scene["raster"]]
    means = {row["mineral"]: row["mean_percent"] for row in single["table"]}
    assert summary["valid_pixels"] == single["valid_pixels"] and summary["means"] == pytest.approx(means, rel=1e-9)
    styles = output_styles("predict_abundance", summary, read_model_info(model))
    assert styles["abundance"] == styles["intervals"] == {
        "kind": "ramp", "band": 1 + list(means).index(max(means, key=means.get)), "ramp": "Viridis", "min": 0.0,
        "max": 100.0}
    assert styles["dominant"]["legend"] == [{"value": i + 1, "name": c["name"], "color": c["color"]}
                                            for i, c in enumerate(ab.AbundanceModel(model).info.classes)]
    with rasterio.open(ref["abundance"]) as ds:
        total = ds.read().sum(axis=0)
        assert np.allclose(total[ds.read(1) != ds.nodata], 100.0, atol=1e-3)
    # a worker that cannot read the model loads the shipped copy; the map still names the user's model file
    away = str(tmp_path / "away" / "abundance.onnx")
    os.makedirs(os.path.dirname(away))
    shutil.copyfile(model, away)
    model_ref, shipped = batch.model_ref(away), client.scatter(batch.model_files(away), broadcast=True, hash=False)
    os.remove(away)
    work = tmp_path / "work"
    work.mkdir()
    result = client.submit(batch._part_task, "predict_abundance", scene["raster"], model_ref, shipped, {"level": 0.8},
                           str(work), 0, None, MEMORY_MB, 1, pure=False).result()
    assert not result.get("failed")
    with rasterio.open(str(work / "part00000.abundance.tif")) as ds:
        assert ds.tags()["oremap_model"] == away


def test_anomaly_scores_on_the_cluster_are_bit_identical_with_an_empty_row_range(client, tmp_path):
    from rasterio.transform import from_origin

    from oremap.core.geochemistry import vae_anomaly as va
    from oremap.core.geochemistry import vae_raster

    rng = np.random.default_rng(0)
    names = ["Cu_ppm", "Zn_ppm", "Pb_ppm", "Ni_ppm"]
    f = rng.standard_normal((720, 1))
    values = 10 ** (1.5 + 0.3 * (0.95 * f + 0.3 * rng.standard_normal((720, 4))))   # log-normal, correlated
    va.train_vae(values, names, epochs=4, batch_size=64, seed=1).save(str(tmp_path / "vae.onnx"))
    model = str(tmp_path / "vae.onnx")
    cube = values[:30 * 24].T.reshape(4, 24, 30).astype("float32")
    cube[:, :6] = -9999.0                                                   # the first row range: all nodata
    cube[:, 10, 3] = -9999.0
    raster = str(tmp_path / "stack.tif")
    with rasterio.open(raster, "w", driver="GTiff", width=30, height=24, count=4, dtype="float32",
                       crs="EPSG:32750", transform=from_origin(400000, 7000000, 100, 100), nodata=-9999.0) as ds:
        ds.write(cube)
        for i, name in enumerate(names):
            ds.set_band_description(i + 1, name)
    ref = {"score": str(tmp_path / "ref.score.tif"), "classes": str(tmp_path / "ref.classes.tif")}
    anomaly = va.load_model(model, threads=1)
    single = vae_raster.score_raster(anomaly, raster, ref["score"], ref["classes"], memory_mb=MEMORY_MB)
    log = core_warnings()
    job, report, out, plans = run(client, tmp_path, "score_anomaly", model, [raster], rows=6, feedback=log)
    assert not report.failed and plans[0].parts[0] == (0, 6) and report.pixels == 30 * 18 - 1
    # what the single algorithm logs of the grid's band metadata, once
    from oremap.core.geochemistry.grid_meaning import check_raster_for_model

    said = []
    check_raster_for_model(raster, vae_raster.raster_bands(raster, anomaly.names)[0], anomaly.preprocessing,
                           said.append)
    assert said and [i for i in log.infos if i in ["stack.tif: " + s for s in said]] == ["stack.tif: " + s for s in said]
    assert_same_files(job, {raster: ref})
    summary = report.summaries[raster]                          # the parts' counts added (the first part: empty)
    assert (summary["valid_pixels"], summary["scored"]) == (30 * 18 - 1, single["scored"])
    assert summary["class_counts"] == [int(c) for c in np.asarray(single["class_counts"]).ravel()]
    from oremap.algorithms.batch_on_cluster import output_styles
    from oremap.core.engine.model_format import read_model_info

    assert output_styles("score_anomaly", summary, read_model_info(model)) == {
        "score": {"kind": "ramp", "ramp": "Magma"},
        "classes": {"kind": "classes", "legend": va.class_legend(anomaly.percentiles)}}
    # a grid recorded as log10 values is refused as in a single run: the model, trained on concentrations, would
    # take their logarithm again
    from oremap.core.geochemistry import grid_meaning as gm

    logged = str(tmp_path / "logged.tif")
    shutil.copyfile(raster, logged)
    with rasterio.open(logged, "r+") as ds:
        for b, tags in enumerate(gm.band_tags(names, "log10"), start=1):
            ds.update_tags(b, **tags)
    out = tmp_path / "refused"
    out.mkdir()
    report = batch.run_batch(batch.BatchJob("score_anomaly", model, [logged], str(out), {}, rows_per_part=6,
                                            memory_mb=MEMORY_MB), client)
    assert not report.done and list(report.failed) == [logged]
    assert "the raster holds log10 values already" in str(report.failed[logged])
    assert not os.listdir(out)


def test_a_split_scene_logs_the_scenes_totals_as_a_single_run_does(client, tmp_path):
    """Fill pixels, pixels without a fit and strict unmixing's brightness-scale hint are the whole scene's, not
    one part's: here the top half is 31.9 and the bottom 3.5 times too bright, so each part alone would say
    "about 1.7" or "about 0.49 times as bright" while the scene as a whole is not far enough off for the hint."""
    cube = np.fromfile(AVIRIS_NG, dtype="<f4").reshape(10, 10, 432).copy()
    cube[:5] *= 31.9
    cube[5:] *= 3.5
    cube[1, :2] = 0.25     # fill: one value in every band, in two parts
    cube[8, 3] = 0.25
    cube[9] = 0.25         # and the last row range (row 10) fill alone: an empty part that counts its fill
    cube[4, 9] *= -1.0      # no non-negative fit (not one value: fill)
    cube[7, 0] *= -1.0
    scene = str(tmp_path / "mixed.img")
    cube.astype("<f4").tofile(scene)
    shutil.copyfile(os.path.splitext(AVIRIS_NG)[0] + ".hdr", str(tmp_path / "mixed.hdr"))
    library = read_library(USGS_LIBRARY).subset(ENDMEMBERS)
    for mode in ("fcls", "nn_closed"):   # the hint is the strict mode's; pixels without a fit, nn_closed's
        single = core_warnings()
        mapping.unmix_map(scene, library, str(tmp_path / f"single.{mode}.tif"), mode=mode, scale=1,
                          band_info=mapping.image_band_info(scene, scale=1), memory_mb=MEMORY_MB, feedback=single)
        counted = [w for w in single.warnings if "bright" in w or "every band" in w]
        assert counted == ["13 pixels hold one value in every band (fill outside the scene's footprint, written "
                           "without a nodata value) and are left out as nodata."]
        fits = [i for i in single.infos if "no non-negative fit" in i]
        assert [f[:8] for f in fits] == ([] if mode == "fcls" else ["2 pixels"])
        log = core_warnings()
        job, report, out, plans = run(client, tmp_path, "unmix_fcls", USGS_LIBRARY, [scene], rows=3, feedback=log,
                                      name=mode, spectra=ENDMEMBERS, scale=1, mode=mode)
        assert len(plans[0].parts) == 4 and not report.failed
        assert [w for w in log.warnings if "bright" in w or "every band" in w] == ["mixed.img: " + w for w in counted]
        assert [i for i in log.infos if "no non-negative fit" in i] == ["mixed.img: " + i for i in fits]
        assert report.summaries[scene]["fill_pixels"] == 13   # the summary's total agrees, empty part included


def test_a_batch_waiting_on_its_tasks_stops_when_cancelled():
    """Cancel is honoured while a long task runs (a whole Sentinel-2 tile is one task), not when it ends."""
    from oremap.core.engine.feedback import Feedback

    class Pending:                # an as_completed whose one task never finishes
        def __init__(self):
            self.polls = 0

        def is_empty(self):
            return False

        def next_batch(self, block=True):
            assert not block
            self.polls += 1
            return []

    class CancelledAfter(Feedback):
        def __init__(self, n):
            self.n = n

        def is_canceled(self):
            self.n -= 1
            return self.n < 0

    pending = Pending()
    assert list(batch._as_finished(pending, CancelledAfter(3))) == [None] and pending.polls == 4

    class Done(Pending):          # tasks finishing: passed on as they come
        def __init__(self):
            self.batches = [["a"], [], ["b", "c"]]

        def is_empty(self):
            return not self.batches

        def next_batch(self, block=True):
            return self.batches.pop(0)

    assert list(batch._as_finished(Done(), CancelledAfter(10))) == ["a", "b", "c"]


@pytest.fixture(scope="module")
def mines(tmp_path_factory):
    """Two Sentinel-2 scenes (real BigEarthNet backgrounds, painted mines; bands named) and a small U-Net
    trained one epoch on the first: ``(scenes, model)``."""
    from s2_scene import make_scene

    from oremap.core.sentinel2 import mine_segmentation as ms

    folder = tmp_path_factory.mktemp("mines")
    scenes = [make_scene(str(folder / n), seed=s, size=(96, 96))["raster"] for n, s in (("a", 0), ("b", 1))]
    scenes = [shutil.copyfile(s, str(folder / f"{n}.tif")) for s, n in zip(scenes, "ab")]
    model = str(folder / "unet.onnx")
    ms.train_mine_segmentation(scenes[0], str(folder / "a" / "scene_mines.gpkg"), model, tile=32, depth=2, width=8,
                               epochs=1, block_tiles=4, seed=0, threads=1)
    return scenes, model


def test_mine_detection_scene_by_scene_is_bit_identical(client, tmp_path, mines):
    from oremap.core.sentinel2 import mine_detection as md

    scenes, model = mines
    refs = {}
    for scene in scenes:
        stem = batch.scene_stem(scene)
        refs[scene] = {"probability": str(tmp_path / f"{stem}.p.tif"), "mask": str(tmp_path / f"{stem}.m.tif")}
        md.detect_mines(scene, model, refs[scene]["probability"], refs[scene]["mask"], threads=1, memory_mb=MEMORY_MB)
    job, report, out, plans = run(client, tmp_path, "detect_mines", model, scenes, rows=16)
    assert sorted(report.done) == sorted(scenes) and report.parts == 2   # overlapping windows: one task a scene
    assert_same_files(job, refs)


def test_a_mine_threshold_of_0_is_the_models_own_as_in_detect_mines(client, tmp_path, mines):
    """THRESHOLD=0 means the model's own threshold in oremap:detect_mines; on the cluster it was taken as 0 and made
    every valid pixel a mine."""
    scenes, model = mines
    job, report, out, _ = run(client, tmp_path, "detect_mines", model, scenes[:1], rows=16, threshold=0)
    default, report0, out0, _ = run(client, tmp_path, "detect_mines", model, scenes[:1], rows=16, name="default")
    for suffix in ("probability", "mask"):
        assert sha(batch.output_paths("detect_mines", scenes[0], str(out))[suffix]) == \
            sha(batch.output_paths("detect_mines", scenes[0], str(out0))[suffix])
    assert report.summaries[scenes[0]]["threshold"] == 0.5


def test_mine_detection_of_a_sentinel2_folder_logs_the_workers_warnings(client, tmp_path, mines):
    """A Sentinel-2 folder is one scene; what the core function says on a worker reaches the driver's log under
    the scene's name (as it reaches the log of a single run), and the models' compute device its session."""
    from oremap.core.engine import compute
    from oremap.core.sentinel2 import mine_detection as md

    scenes, model = mines
    unnamed = str(tmp_path / "unnamed.tif")            # scene b without band names: read in the standard order
    with rasterio.open(scenes[1]) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(unnamed, "w", **profile) as dst:
        dst.write(data)
    refs, said, found = {}, {}, {}
    for scene in (S2_PRODUCT, unnamed):
        stem = batch.scene_stem(scene)
        refs[scene] = {"probability": str(tmp_path / f"{stem}.p.tif"), "mask": str(tmp_path / f"{stem}.m.tif")}
        said[scene] = core_warnings()
        found[scene] = md.detect_mines(scene, model, refs[scene]["probability"], refs[scene]["mask"], threads=1,
                                       memory_mb=MEMORY_MB, feedback=said[scene], min_area_ha=0.1)  # detect_mines'
    # a copy without the fixture's metadata: no band names, and no processing baseline either
    assert said[unnamed].warnings[0] == (
        "The raster's 12 bands carry no names: taken in the standard Sentinel-2 order (B1, B2, B3, B4, B5, B6, B7, "
        "B8, B8A, B9, B11, B12). Give a band map if that is wrong.") and said[S2_PRODUCT].warnings == []
    assert len(said[unnamed].warnings) == 2 and said[unnamed].warnings[1].startswith("The processing baseline is")
    log = core_warnings()
    with compute.session("cpu", 1) as session:
        job, report, out, plans = run(client, tmp_path, "detect_mines", model,
                                      batch.expand_inputs([S2_PRODUCT, unnamed]), rows=16, feedback=log)
    assert sorted(report.done) == sorted([S2_PRODUCT, unnamed]) and not report.failed and report.parts == 2
    assert_same_files(job, refs)
    assert report.warnings == {unnamed: ["unnamed.tif: " + w for w in said[unnamed].warnings]}
    assert log.warnings == report.warnings[unnamed]
    for scene in (S2_PRODUCT, unnamed):
        name = os.path.basename(scene)
        assert [i for i in log.infos if i.startswith(name + ": ")] == [f"{name}: {i}" for i in said[scene].infos]
        summary = report.summaries[scene]
        assert (summary["valid_pixels"], summary["n_mines"], summary["mine_pixels"], summary["threshold"]) == (
            found[scene]["valid_pixels"], found[scene]["n_mines"], found[scene]["mine_pixels"], 0.5)
    assert report.summaries[S2_PRODUCT]["valid_pixels"] == 120 * 120        # the whole 10 m grid of the patch
    # the U-Net ran on the workers: the session says so (it said "no neural network in this run")
    assert session.used == {"onnxruntime": "CPUExecutionProvider (on the Dask workers)"}
    assert report.compute == {"onnxruntime": ["CPUExecutionProvider"]}
    with compute.session("cpu", 1) as numpy_only:
        run(client, tmp_path, "unmix_fcls", USGS_LIBRARY, [AVIRIS_NG], rows=4, name="fcls", spectra=ENDMEMBERS)
    assert numpy_only.summary() == "CPU (numpy; no neural network in this run)"


def test_scene_summaries_add_the_parts(tmp_path):
    """A split scene's numbers: counts added, band means weighted by the parts' valid pixels."""
    parts = [{"index": 1, "empty": False, "stats": {"valid_pixels": 30, "class_counts": [1, 29],
                                                   "means": {"a": 0.2, "b": 0.8}, "legend": [{"value": 0}]}},
             {"index": 0, "empty": False, "stats": {"valid_pixels": 10, "class_counts": [6, 4],
                                                   "means": {"a": 0.6, "b": 0.4}, "legend": [{"value": 0}]}},
             {"index": 2, "empty": True, "rows": [8, 9]}]
    summary = batch.scene_summary(parts)
    assert summary["valid_pixels"] == 40 and summary["class_counts"] == [7, 33]
    assert summary["means"] == pytest.approx({"a": 0.3, "b": 0.7}) and summary["legend"] == [{"value": 0}]
    messages = [{"index": 0, "rows": [0, 4], "messages": [["warning", "w"], ["info", "rows 0-4"]]},
                {"index": 1, "rows": [4, 8], "messages": [["warning", "w"], ["info", "rows 4-8"],
                                                          ["info", "only here"]]},
                {"index": 2, "rows": [8, 9], "messages": [["warning", "w"], ["info", "rows 8-9"]]}]
    # said by every part: once; said by each part with its numbers: once, with how many parts said it likewise
    assert batch.scene_messages("/x/line.img", messages) == [
        ("warning", "line.img: w"),
        ("info", "line.img (rows 1-4; 2 more parts of the scene said this too, with their own numbers): rows 0-4"),
        ("info", "line.img (rows 5-8): only here")]
    assert batch.scene_messages("/x/line.img", messages[2:]) == [("warning", "line.img: w"),
                                                                 ("info", "line.img: rows 8-9")]


# --------------------------------------------------------------------------------------
# Failures, a killed worker, resume, models as bytes
# --------------------------------------------------------------------------------------
def test_a_killed_worker_and_a_broken_scene_leave_no_partial_file(client, tmp_path):
    scenes = [copy_envi(AVIRIS_NG if i % 2 == 0 else AVIRIS_NG_2, tmp_path, f"line{i}") for i in range(4)]
    broken = str(tmp_path / "broken.tif")
    with open(broken, "w") as handle:
        handle.write("not a raster")
    refs = {}
    for scene in scenes:
        refs[scene] = {"classes": scene + ".c.tif", "confidence": scene + ".p.tif"}
        mapping.cnn_classify_map(scene, CNN, refs[scene]["classes"], None, refs[scene]["confidence"], threads=1,
                                 memory_mb=MEMORY_MB)
    out = tmp_path / "out"
    out.mkdir()
    job = batch.BatchJob("classify_cnn", CNN, scenes[:2] + [broken] + scenes[2:], str(out), rows_per_part=2,
                         memory_mb=MEMORY_MB)
    killed = []

    def kill_a_busy_worker(done, total):
        if killed or done < 3:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if not busy:
            return                                                        # between tasks: at the next one
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append((pid, done, total))

    report = batch.run_batch(job, client, progress=kill_a_busy_worker)
    assert killed and killed[0][1] < killed[0][2] / 2                    # killed with most of the job to do
    assert list(report.failed) == [broken] and sorted(report.done) == sorted(scenes)
    assert_same_files(job, refs)                                          # no part, temporary or broken.* file
    client.wait_for_workers(2, timeout=60)                                # the nanny restarts the worker

    # resume: nothing to do, nothing rewritten; without it the outputs are not overwritten silently
    before = {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in os.listdir(out)}
    job.inputs = scenes
    job.resume = True
    again = batch.run_batch(job, client)
    assert sorted(again.skipped) == sorted(scenes) and not again.done
    assert {p: os.stat(os.path.join(out, p)).st_mtime_ns for p in os.listdir(out)} == before
    job.resume = False
    with pytest.raises(OreMapError, match="already exists"):
        batch.run_batch(job, client)


def test_workers_load_a_shipped_model_they_cannot_read(client, tmp_path):
    """The model's bytes go to every worker once (scatter, broadcast); the worker writes them to its cache
    and the task loads that file: the result equals the single-process map."""
    model = str(tmp_path / "away" / "cnn.onnx")
    os.makedirs(os.path.dirname(model))
    shutil.copyfile(CNN, model)
    ref, files = batch.model_ref(model), batch.model_files(model)
    shipped = client.scatter(files, broadcast=True, hash=False)
    os.remove(model)                                                         # no worker can read the path now
    work = tmp_path / "work"
    work.mkdir()
    future = client.submit(batch._part_task, "classify_cnn", AVIRIS_NG, ref, shipped, {}, str(work), 0, (2, 7),
                           MEMORY_MB, 1, pure=False)
    result = future.result()
    assert result["stats"]["valid_pixels"] == 50
    expected = str(tmp_path / "ref.tif")
    mapping.cnn_classify_map(AVIRIS_NG, CNN, expected, threads=1, memory_mb=MEMORY_MB)
    with rasterio.open(expected) as ds, rasterio.open(str(work / "part00000.classes.tif")) as part:
        assert np.array_equal(part.read(1), ds.read(1)[2:7])


def test_cli_on_a_running_scheduler_reports_json(client, tmp_path, capsys):
    from oremap.batch import main

    out = tmp_path / "maps"
    out.mkdir()
    code = main(["unmix_fcls", AVIRIS_NG, "--model", USGS_LIBRARY, "--spectra", "; ".join(ENDMEMBERS[:3]),
                 "--out", str(out), "--scheduler", client.scheduler.address, "--rows-per-part", "4",
                 "--mode", "nn_closed"])
    assert code == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["done"] == [AVIRIS_NG] and report["workers"] == 2 and report["pixels"] == 100
    expected = str(tmp_path / "ref.tif")
    mapping.unmix_map(AVIRIS_NG, read_library(USGS_LIBRARY).subset(ENDMEMBERS[:3]), expected, mode="nn_closed",
                      band_info=mapping.image_band_info(AVIRIS_NG))
    assert sha(str(out / (batch.scene_stem(AVIRIS_NG) + ".abundances.tif"))) == sha(expected)
    assert main(["unmix_fcls", AVIRIS_NG, "--model", USGS_LIBRARY, "--out", str(tmp_path / "none")]) == 2


def test_processing_algorithm_on_a_local_cluster(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    refs = {}
    for scene in (AVIRIS_NG, AVIRIS_NG_2):
        refs[scene] = {"abundances": str(tmp_path / f"{batch.scene_stem(scene)}.ref.tif")}
        mapping.unmix_map(scene, read_library(USGS_LIBRARY).subset(ENDMEMBERS), refs[scene]["abundances"],
                          band_info=mapping.image_band_info(scene))
    out = str(tmp_path / "maps")
    params = {"ALGORITHM": list(batch.ALGORITHMS).index("unmix_fcls"),
              "MODEL_FILE": USGS_LIBRARY, "INPUTS": [AVIRIS_NG], "PATTERN": AVIRIS_NG_2,
              "SPECTRA": "; ".join(ENDMEMBERS), "WORKERS": 2, "OUTPUT_FOLDER": out}
    result = run_alg("batch_on_cluster", params)
    assert (result["SCENES_DONE"], result["SCENES_SKIPPED"], result["SCENES_FAILED"]) == (2, 0, 0)
    job = batch.BatchJob("unmix_fcls", USGS_LIBRARY, [AVIRIS_NG, AVIRIS_NG_2], out)
    # styled as oremap:unmix_fcls styles its output: the same .qml (the band of the largest mean abundance first)
    for scene in (AVIRIS_NG, AVIRIS_NG_2):
        single = run_alg("unmix_fcls", {"INPUT": scene, "LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(ENDMEMBERS),
                                        "OUTPUT": str(tmp_path / f"{batch.scene_stem(scene)}.single.tif")})
        styled = os.path.splitext(batch.output_paths("unmix_fcls", scene, out)["abundances"])[0] + ".qml"
        with open(styled) as mine, open(os.path.splitext(single["OUTPUT"])[0] + ".qml") as theirs:
            assert mine.read() == theirs.read()
    assert_same_files(job, refs, styled=True)
    with pytest.raises(QgsProcessingException, match=r"Output folder \(OUTPUT_FOLDER\).*already exists"):
        run_alg("batch_on_cluster", params)
    with pytest.raises(QgsProcessingException, match=r"\(INPUTS\): No scene"):
        run_alg("batch_on_cluster", dict(params, INPUTS=[], PATTERN=""))
    # a list written with commas (the help says ';') still gives both scenes
    listed = run_alg("batch_on_cluster", dict(params, INPUTS=[], PATTERN=f"{AVIRIS_NG},{AVIRIS_NG_2}",
                                              OUTPUT_FOLDER=str(tmp_path / "listed")))
    assert listed["SCENES_DONE"] == 2


def log_feedback():
    """A QgsProcessingFeedback keeping the log: ``.infos`` and ``.warnings``."""
    from conftest import warning_recorder

    return warning_recorder()


def test_processing_algorithm_maps_mines_of_a_sentinel2_folder_styled(processing_provider, client, tmp_path, mines):
    """Through QGIS, on a running scheduler: a Sentinel-2 folder given as a scene is one scene, its maps get the
    single run's .qml styles, the log names the compute device the workers used; a broken scene is counted as
    failed; a run in which every scene fails is an error naming the first failure."""
    import processing
    from qgis.core import QgsProcessingException

    _, model = mines
    broken = tmp_path / "broken.tif"
    broken.write_text("not a raster")
    single = processing.run("oremap:detect_mines", {
        "INPUT_FOLDER": S2_PRODUCT, "MODEL_FILE": model, "OUTPUT": str(tmp_path / "single.tif"),
        "OUTPUT_MASK": str(tmp_path / "single_mask.tif")})
    out = tmp_path / "maps"
    params = {"ALGORITHM": list(batch.ALGORITHMS).index("detect_mines"), "MODEL_FILE": model,
              "INPUTS": [S2_PRODUCT], "PATTERN": str(broken), "SCHEDULER": client.scheduler.address,
              "OUTPUT_FOLDER": str(out)}
    log = log_feedback()
    result = processing.run("oremap:batch_on_cluster", params, feedback=log)
    assert (result["SCENES_DONE"], result["SCENES_SKIPPED"], result["SCENES_FAILED"]) == (1, 0, 1)
    stem = "S2A_MSIL2A_20170613T101031_87_48"
    assert sorted(f for f in os.listdir(out) if not f.endswith(".aux.xml")) == [
        f"{stem}.mask.qml", f"{stem}.mask.tif", f"{stem}.probability.qml", f"{stem}.probability.tif"]
    for suffix, path in (("probability", single["OUTPUT"]), ("mask", single["OUTPUT_MASK"])):
        with open(out / f"{stem}.{suffix}.qml") as mine, open(os.path.splitext(path)[0] + ".qml") as theirs:
            assert mine.read() == theirs.read(), suffix
    from xml.etree import ElementTree
    labels = [e.get("label") for e in ElementTree.parse(out / f"{stem}.mask.qml").iter() if e.get("label")]
    assert "mine (P >= 0.5)" in labels
    assert "Compute device used: onnxruntime: CPUExecutionProvider (on the Dask workers)." in log.infos
    failed = [w for w in log.warnings if w.startswith("Failed: ")]
    assert len(failed) == 1 and re.fullmatch(  # GDAL's own words: "being in a" since GDAL 3.1x
        re.escape(f"Failed: {broken}: Cannot read the raster '{broken}': '{broken}' not recognized as ")
        + r"(being in )?a supported file format\. Choose a raster GDAL can open \(GeoTIFF, ENVI, \.\.\.\)\.", failed[0])
    # every scene failing: an error naming the scenes, how many failed and the first failure
    other = tmp_path / "other.tif"
    other.write_text("not a raster either")
    with pytest.raises(QgsProcessingException,
                       match=r"^Scenes \(INPUTS\): All 2 scenes failed \(none written\)\. The first, broken\.tif: "
                             r"Cannot read the raster .*The log names every failed scene and why\.$"):
        processing.run("oremap:batch_on_cluster", dict(params, INPUTS=[], PATTERN=f"{broken};{other}",
                                                      OUTPUT_FOLDER=str(tmp_path / "none")))
    assert not os.path.exists(tmp_path / "none")   # the folder this run made, empty, does not stay behind


def test_help_shows_the_output_file_names(processing_provider):
    """qgis_process help printed 'as . .tif': <scene> and <output> were taken for HTML tags."""
    alg = processing_provider.algorithm("batch_on_cluster")
    text = " ".join(alg.help_text().split())
    assert "into the output folder as <scene>.<output>.tif, the same files" in text
    assert "holding <scene>.<output>.tif (and its .qml style) for every scene written; scenes whose outputs" in text
    assert ". .tif" not in text
    assert "as &lt;scene&gt;.&lt;output&gt;.tif" in alg.help_html()


def test_a_relative_output_folder_is_made_absolute(tmp_path, monkeypatch):
    """Workers of a remote scheduler run in other folders: the README's `--out abundances/` failed every scene with
    'The scene's work folder has gone'."""
    from oremap.core.scaleout.batch import BatchJob

    monkeypatch.chdir(tmp_path)
    job = BatchJob("classify_cnn", "m.onnx", [], "maps/")
    assert job.out_dir == str(tmp_path / "maps")


# --------------------------------------------------------------------------------------
# Settings of the single algorithms, checked before a cluster starts
# --------------------------------------------------------------------------------------
DROPPED = "drop 2000-2100 nm; drop bands 1-3"


def test_the_bad_band_setting_gives_the_single_runs_maps(client, tmp_path):
    """BAD_BANDS was accepted and ignored: 4 of 100 class pixels differed from a single run with the same
    setting. Now each scene's bands are chosen as the single algorithm chooses them, and the log says so."""
    ref = {"classes": str(tmp_path / "c.tif"), "confidence": str(tmp_path / "p.tif")}
    default = str(tmp_path / "default.p.tif")
    from conftest import core_warnings

    single_log = core_warnings()
    info = mapping.image_band_info(AVIRIS_NG, bad_bands=DROPPED, feedback=single_log)
    mapping.cnn_classify_map(AVIRIS_NG, CNN, ref["classes"], None, ref["confidence"], threads=1, band_info=info,
                             memory_mb=MEMORY_MB)
    mapping.cnn_classify_map(AVIRIS_NG, CNN, str(tmp_path / "default.c.tif"), None, default, threads=1,
                             band_info=mapping.image_band_info(AVIRIS_NG), memory_mb=MEMORY_MB)
    with rasterio.open(default) as a, rasterio.open(ref["confidence"]) as b:
        assert not np.array_equal(a.read(), b.read())      # the setting changes the map
    log = core_warnings()
    job, report, out, plans = run(client, tmp_path, "classify_cnn", CNN, [AVIRIS_NG], rows=3, feedback=log,
                                  bad_bands=DROPPED)
    assert report.done == [AVIRIS_NG] and len(plans[0].parts) == 4
    assert_same_files(job, {AVIRIS_NG: ref})
    dropped = [m for m in single_log.infos if "band" in m.lower() and "drop" in m.lower()]
    name = os.path.basename(AVIRIS_NG)
    assert dropped and all(f"{name}: {m}" in log.infos for m in dropped)   # once each, under the scene's name
    # unmixing reads the same bands as oremap:unmix_fcls with the setting
    library = read_library(USGS_LIBRARY).subset(ENDMEMBERS)
    expected = str(tmp_path / "u.tif")
    mapping.unmix_map(AVIRIS_NG, library, expected, band_info=mapping.image_band_info(AVIRIS_NG, bad_bands=DROPPED),
                      memory_mb=MEMORY_MB)
    job, report, out, plans = run(client, tmp_path, "unmix_fcls", USGS_LIBRARY, [AVIRIS_NG], rows=3, name="u",
                                  bad_bands=DROPPED, spectra=ENDMEMBERS)
    assert sha(batch.output_paths("unmix_fcls", AVIRIS_NG, str(out))["abundances"]) == sha(expected)


@pytest.mark.parametrize("options, parameter, message", [
    ({"min_confidence": 5}, "min_confidence", r"min confidence 5 is outside \[0, 1\]"),
    ({"level": 90}, "level", r"level 90 is outside \[0.5, 0.99\]"),
    ({"threshold": -0.1}, "threshold", r"threshold -0.1 is outside \[0, 1\)"),
    ({"threshold": 1}, "threshold", r"threshold 1 is outside \[0, 1\)"),   # detect_mines needs below 1
    ({"scale": 0}, "scale", r"scale 0 is outside \(0, inf\)"),
    ({"mode": "sunsal"}, "mode", "Unknown unmixing mode 'sunsal'"),
    ({"bad_bands": "drop water"}, "bad_bands", "Cannot read the bad-band entry 'drop water'"),
    ({"wavelengths": [500.0]}, "wavelengths", "two or more positive numbers"),
    ({"min_confidnce": 0.5}, "min_confidnce", "Unknown option"),
])
def test_options_out_of_range_are_refused_before_a_cluster_starts(tmp_path, options, parameter, message):
    job = batch.BatchJob("classify_cnn", CNN, [AVIRIS_NG], str(tmp_path), options)
    with pytest.raises(OreMapError, match=message) as err:
        batch.plan(job)
    assert err.value.parameter == parameter
    assert not os.listdir(tmp_path)


def test_the_model_is_checked_and_unused_options_named_before_a_cluster_starts(tmp_path):
    from conftest import core_warnings

    with pytest.raises(OreMapError, match="is a mineral classification model .* not a mineral abundance") as err:
        batch.plan(batch.BatchJob("predict_abundance", CNN, [AVIRIS_NG], str(tmp_path)))
    assert err.value.parameter == "model"
    # what to use it with: the batch algorithm of its task (not the QGIS name)
    assert err.value.fix == "Use it with the batch algorithm classify_cnn, and choose a mineral abundance model here."
    with pytest.raises(OreMapError, match="Jarosite XYZ") as err:
        batch.plan(batch.BatchJob("unmix_fcls", USGS_LIBRARY, [AVIRIS_NG], str(tmp_path),
                                  {"spectra": ["Kaolinite CM9", "Jarosite XYZ"]}))
    # one text of names, as the Toolbox and the command line give it, is names, not characters
    job = batch.BatchJob("unmix_fcls", USGS_LIBRARY, [AVIRIS_NG], str(tmp_path), {"spectra": "; ".join(ENDMEMBERS)})
    assert job.options["spectra"] == ENDMEMBERS
    log = core_warnings()
    batch.plan(batch.BatchJob("unmix_fcls", USGS_LIBRARY, [AVIRIS_NG], str(tmp_path),
                              {"spectra": ENDMEMBERS, "min_confidence": 0.5, "nodata": -1}), log)
    assert log.infos == ["The option 'min_confidence' does not apply to unmix_fcls: it is ignored."]


def test_cli_names_an_ignored_option_by_its_flag(tmp_path, capsys, monkeypatch):
    from oremap.batch import main

    def stop(*args, **kwargs):
        raise OreMapError("stopped after planning", "scheduler")

    monkeypatch.setattr(batch, "start_cluster", stop)
    main(["unmix_fcls", AVIRIS_NG, "--model", USGS_LIBRARY, "--spectra", "; ".join(ENDMEMBERS), "--out",
          str(tmp_path), "--no-ood-check", "--min-confidence", "0.5"])
    err = capsys.readouterr().err
    assert "--min-confidence does not apply to unmix_fcls: it is ignored." in err
    assert "--no-ood-check does not apply to unmix_fcls: it is ignored." in err


def test_a_second_job_on_an_output_folder_being_written_is_refused(tmp_path):
    """Two jobs on one folder shared the scenes' work folders (each removes the other's parts) and could replace
    each other's outputs: the second stops before a cluster starts, naming the folder and who writes there."""
    import subprocess

    from oremap.core.engine.files import host_tag

    job = batch.BatchJob("classify_cnn", CNN, [AVIRIS_NG], str(tmp_path))
    live = subprocess.Popen(["sleep", "60"])
    try:
        mark = tmp_path / f".oremap-batch.oremap-writing-{host_tag()}-{live.pid}-0a1b2c3d"
        mark.touch()
        with pytest.raises(OreMapError) as err:
            batch.plan(job)
    finally:
        live.kill()
        live.wait()
    assert err.value.parameter == "out_dir"
    assert str(err.value) == (f"The output folder '{tmp_path}' is being written by another OreMap run (process "
                              f"{live.pid} of this machine). Wait for it to finish, or choose another output. If no "
                              f"OreMap run is going, delete its mark '{mark}'.")
    assert os.listdir(tmp_path) == [mark.name]
    batch.plan(job)   # that process gone: its mark is stale and removed
    assert os.listdir(tmp_path) == []


def test_outputs_in_the_input_folder_are_not_scenes_of_a_rerun(tmp_path):
    """An output folder that is also the input folder: a rerun with --resume took the outputs for new scenes."""
    from conftest import core_warnings

    scene = copy_envi(AVIRIS_NG, tmp_path, "line1")
    for suffix in ("classes", "confidence"):
        (tmp_path / f"line1.{suffix}.tif").write_bytes(b"written before")
    inputs = batch.expand_inputs([str(tmp_path)])
    assert len(inputs) == 3
    log = core_warnings()
    job = batch.BatchJob("classify_cnn", CNN, inputs, str(tmp_path), resume=True)
    plans = batch.plan(job, log)
    assert [(p.scene, p.skip) for p in plans] == [(scene, True)]
    assert log.infos == ["2 input(s) left out: batch outputs of other scenes line1.classes.tif (of line1.img); "
                         "line1.confidence.tif (of line1.img)."]


def test_resume_refuses_another_algorithms_output(tmp_path):
    """classify_cnn and score_anomaly both write <scene>.classes.tif: resuming one where the other ran replaced the
    other's classes without a word."""
    (tmp_path / f"{batch.scene_stem(AVIRIS_NG)}.classes.tif").write_bytes(b"anomaly classes")
    job = batch.BatchJob("classify_cnn", CNN, [AVIRIS_NG], str(tmp_path), resume=True)
    with pytest.raises(OreMapError, match="but not every output of classify_cnn for this scene") as err:
        batch.plan(job)
    assert err.value.parameter == "out_dir" and "one folder per algorithm" in err.value.fix
    job.overwrite = True
    assert [p.skip for p in batch.plan(job)] == [False]


def test_overwriting_removes_the_old_style_and_statistics(tmp_path):
    """--overwrite left the earlier run's .qml (its legend and stretch) beside the new map."""
    outputs = batch.output_paths("unmix_fcls", AVIRIS_NG, str(tmp_path))
    stem = os.path.splitext(outputs["abundances"])[0]
    for side in (".qml", ".tif.aux.xml"):
        with open(stem + side, "w") as handle:
            handle.write("old")
    batch.run_scene("unmix_fcls", AVIRIS_NG, USGS_LIBRARY, outputs, {"spectra": ENDMEMBERS})
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(outputs["abundances"])]


def test_a_scene_whose_output_cannot_be_replaced_keeps_its_earlier_outputs(tmp_path, monkeypatch):
    """On Windows a map open in QGIS cannot be replaced: with --overwrite, classes.tif was replaced, then removed
    when confidence.tif failed, and both maps of the earlier run were gone (the error blamed the input raster). The
    earlier outputs are now kept until every new one is in place, and put back."""
    outputs = batch.output_paths("classify_cnn", AVIRIS_NG, str(tmp_path))
    for suffix, path in outputs.items():
        with open(path, "w") as handle:
            handle.write(f"earlier {suffix}")
    real_replace = os.replace

    def locked(src, dst, *args, **kwargs):  # the open confidence.tif can be neither moved nor replaced
        if os.path.abspath(outputs["confidence"]) in (os.path.abspath(str(src)), os.path.abspath(str(dst))):
            raise PermissionError(13, "Access is denied", str(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", locked)
    with pytest.raises(OreMapError) as err:
        batch.run_scene("classify_cnn", AVIRIS_NG, CNN, outputs)
    monkeypatch.setattr(os, "replace", real_replace)
    assert err.value.parameter == "out_dir" and "earlier outputs are as they were" in err.value.message
    assert "Close the file" in err.value.fix
    for suffix, path in outputs.items():
        assert open(path).read() == f"earlier {suffix}", suffix
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in outputs.values())


def test_a_cancel_while_a_scene_moves_its_outputs_keeps_the_earlier_ones(tmp_path, monkeypatch):
    """A cancel removes the scene's work folder while its last task may still run: the earlier outputs, kept there
    by the first version of the keeping, went with it (review M5). They are kept beside the outputs now."""
    outputs = batch.output_paths("classify_cnn", AVIRIS_NG, str(tmp_path))
    for suffix, path in outputs.items():
        with open(path, "w") as handle:
            handle.write(f"earlier {suffix}")
    real_replace = os.replace

    def cancelled(src, dst, *args, **kwargs):  # the work folder goes just before the first new output moves in
        if ".oremap-batch-" in str(src):
            shutil.rmtree(os.path.dirname(str(src)), ignore_errors=True)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", cancelled)
    with pytest.raises(OSError):
        batch.run_scene("classify_cnn", AVIRIS_NG, CNN, outputs)
    monkeypatch.setattr(os, "replace", real_replace)
    for suffix, path in outputs.items():
        assert open(path).read() == f"earlier {suffix}", suffix
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in outputs.values())


def test_a_shipped_library_carries_its_header_whatever_its_name(tmp_path):
    """--ship-model sent library.sli without library.sli.hdr, so the workers could not read it."""
    data = tmp_path / "lib.sli"
    shutil.copyfile(USGS_LIBRARY, data)
    shutil.copyfile(os.path.splitext(USGS_LIBRARY)[0] + ".hdr", str(data) + ".hdr")
    files = batch.model_files(str(data))
    assert sorted(files) == ["lib.sli", "lib.sli.hdr"]
    assert sorted(batch.model_files(str(data) + ".hdr")) == ["lib.sli", "lib.sli.hdr"]
    ref = batch.model_ref(str(data))
    gone = batch.ModelRef(str(tmp_path / "elsewhere" / "lib.sli"), ref.sha256)
    cached = batch.materialise(gone, files, cache=str(tmp_path / "cache"))
    assert read_library(cached).names == read_library(str(data)).names


def fake_python(folder, name, script):
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + script + "\n")
    os.chmod(path, 0o755)
    return path


def test_the_worker_python_is_checked_before_a_local_cluster_starts(tmp_path, monkeypatch):
    """Inside QGIS (sys.executable is QGIS) a python3 first on the PATH without OreMap's packages made Dask restart
    the workers forever. Now the workers' Python must be this version and import the packages, or the job stops
    naming each interpreter tried and the fix."""
    import sys

    from oremap.core.engine import package_installer

    this_python = sys.executable
    broken = fake_python(str(tmp_path), "python3", "exit 1")
    other = fake_python(str(tmp_path), "python3.99", "echo 3.99; echo")
    lacking = fake_python(str(tmp_path), "python-lacking",
                          f"echo {sys.version_info[0]}.{sys.version_info[1]}; echo rasterio distributed")
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    monkeypatch.delenv("OREMAP_WORKER_PYTHON", raising=False)
    monkeypatch.setattr(package_installer, "python_candidates", lambda: [broken, other, lacking])
    with pytest.raises(OreMapError) as err:
        batch.start_cluster(None, 1, packages=("onnxruntime",))
    assert err.value.parameter == "scheduler"
    assert err.value.message == (
        f"No Python was found to run the local cluster's worker processes ({broken} does not run (exit status 1); "
        f"{other} is Python 3.99, this is Python {sys.version_info[0]}.{sys.version_info[1]}; {lacking} lacks "
        "rasterio, distributed).")
    assert "OREMAP_WORKER_PYTHON" in err.value.fix and "numpy, scipy, rasterio, distributed, onnxruntime" in \
        err.value.fix
    monkeypatch.setattr(package_installer, "python_candidates", lambda: [broken, this_python])
    assert batch.worker_python(("onnxruntime",)) == this_python   # the test's own Python has every package
    monkeypatch.setenv("OREMAP_WORKER_PYTHON", lacking)      # the user's choice is the only one tried
    with pytest.raises(OreMapError, match="lacks rasterio"):
        batch.worker_python()


def test_local_workers_on_windows_run_the_windowless_python(tmp_path, monkeypatch):
    """Inside QGIS on Windows each worker of a console python.exe opened a console window over QGIS (closing it
    killed the worker). The interpreter checked is python.exe; the workers run the pythonw.exe beside it."""
    import functools
    import sys

    from oremap.core.engine import package_installer

    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    console = fake_python(str(tmp_path), "python.exe", f"echo {version}; echo")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis-bin.exe"))
    monkeypatch.delenv("OREMAP_WORKER_PYTHON", raising=False)
    monkeypatch.setattr(package_installer, "python_candidates", lambda: [console])
    monkeypatch.setattr(batch, "windowless_python", functools.partial(batch.windowless_python, windows=True))
    assert batch.worker_python() == console                       # no pythonw.exe beside it: python.exe
    windowless = fake_python(str(tmp_path), "pythonw.exe", "exit 1")
    assert batch.worker_python() == windowless
    monkeypatch.setenv("OREMAP_WORKER_PYTHON", console)           # the user's own choice is kept as given
    assert batch.worker_python() == console
    assert batch.windowless_python(console, windows=False) == console   # other systems: the Python checked
    assert batch.windowless_python(windowless, windows=True) == windowless


def test_cli_refuses_bad_options_before_a_cluster_starts(tmp_path, capsys, monkeypatch):
    from oremap.batch import main

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(batch, "start_cluster", no_cluster)
    out = tmp_path / "maps"
    out.mkdir()
    # each message starts with the option the user typed
    assert main(["classify_cnn", AVIRIS_NG, "--model", CNN, "--out", str(out), "--min-confidence", "5"]) == 2
    assert "oremap-batch: --min-confidence: The min confidence 5 is outside [0, 1]" in capsys.readouterr().err
    assert main(["classify_cnn", AVIRIS_NG, "--model", CNN, "--out", str(out), "--bad-bands", "drop water"]) == 2
    assert "--bad-bands: Cannot read the bad-band entry 'drop water'" in capsys.readouterr().err
    assert main(["predict_abundance", AVIRIS_NG, "--model", CNN, "--out", str(out)]) == 2
    assert "--model: 'usgs_minerals_cnn.onnx' is a mineral classification model" in capsys.readouterr().err
    # the wavelengths typed are checked against every scene's band count before a cluster starts
    assert main(["classify_cnn", AVIRIS_NG, AVIRIS_NG_2, "--model", CNN, "--out", str(out),
                 "--wavelengths", "500, 600, 700"]) == 2
    with rasterio.open(AVIRIS_NG) as ds:
        n_bands = ds.count
    assert (f"oremap-batch: --wavelengths: 3 wavelengths were given, but 2 scene(s) have another band count: "
            f"{os.path.basename(AVIRIS_NG)} ({n_bands} bands), {os.path.basename(AVIRIS_NG_2)} ({n_bands} bands). "
            "Give exactly one wavelength per band (nm), or run scenes of different sensors as separate jobs."
            ) in capsys.readouterr().err
    for option, value, words in (("--memory-mb", "-5", "memory budget must be positive, not -5 MB"),
                                 ("--threads", "0", "threads per task must be at least 1, not 0")):
        assert main(["classify_cnn", AVIRIS_NG, "--model", CNN, "--out", str(out), option, value]) == 2
        assert f"{option}: The {words}" in capsys.readouterr().err
    assert os.listdir(out) == []
    monkeypatch.undo()
    # a negative worker count started a cluster without workers and waited for ever
    assert main(["classify_cnn", AVIRIS_NG, "--model", CNN, "--out", str(out), "--workers", "-1"]) == 2
    assert "--workers: A local cluster needs at least one worker, not -1." in capsys.readouterr().err


def test_patterns_take_rasters_and_leave_out_earlier_outputs_and_styles(tmp_path):
    """A pattern over a folder took the .qml styles a QGIS run wrote for scenes, and the next job on that folder
    (with another output folder) took the first job's outputs for scenes: both failed on the cluster."""
    from conftest import core_warnings

    scene = copy_envi(AVIRIS_NG, tmp_path, "line1")
    plain = str(tmp_path / "line2_img")              # an ENVI image without extension, as AVIRIS-NG delivers them
    shutil.copyfile(AVIRIS_NG, plain)
    shutil.copyfile(os.path.splitext(AVIRIS_NG)[0] + ".hdr", plain + ".hdr")
    for name in ("line1.classes.tif", "line1.confidence.tif"):
        shutil.copyfile(JASPER, str(tmp_path / name))   # rasters, written by an earlier classify_cnn job
    for name in ("line1.classes.qml", "notes.txt", "report.json"):
        (tmp_path / name).write_text("x")
    log = core_warnings()
    inputs = batch.expand_inputs([str(tmp_path / "*")], feedback=log)
    assert inputs == [str(tmp_path / "line1.classes.tif"), str(tmp_path / "line1.confidence.tif"), scene, plain]
    assert log.infos == ["3 file(s) matched that are not rasters left out: line1.classes.qml, notes.txt, "
                         "report.json."]
    assert batch.expand_inputs([str(tmp_path)]) == inputs       # a folder gives the same rasters
    out = tmp_path / "sam"
    out.mkdir()
    log = core_warnings()
    plans = batch.plan(batch.BatchJob("sam_classify", USGS_LIBRARY, inputs, str(out)), log)
    assert [p.scene for p in plans] == [scene, plain]
    assert log.infos == ["2 input(s) left out: batch outputs of other scenes line1.classes.tif (of line1.img); "
                         "line1.confidence.tif (of line1.img)."]
    with pytest.raises(OreMapError, match=r"matches no raster file \(1 other file\(s\)\)") as err:
        batch.expand_inputs([str(tmp_path / "*.qml")])
    assert err.value.parameter == "inputs"


def test_a_split_scene_logs_the_whole_scenes_reflectance_scale(client, tmp_path):
    """Each row range reads its rows through a VRT carrying the whole scene's scale, and logged it as 'raster
    scale/offset metadata'; the scene's own reason (a guess from its integer values) was lost."""
    from conftest import core_warnings

    log = core_warnings()
    job, report, out, plans = run(client, tmp_path, "unmix_fcls", USGS_LIBRARY, [JASPER], rows=16, feedback=log,
                                  spectra=ENDMEMBERS)
    assert len(plans[0].parts) == 3
    single = core_warnings()
    mapping.unmix_map(JASPER, read_library(USGS_LIBRARY).subset(ENDMEMBERS), str(tmp_path / "one.tif"),
                      band_info=mapping.image_band_info(JASPER), memory_mb=MEMORY_MB, feedback=single)
    said = [m for m in single.infos if m.startswith(("Integer raster", "Reflectance ="))]
    assert len(said) == 1 and said[0].startswith("Integer raster without scale metadata")
    name = os.path.basename(JASPER)
    assert [m for m in log.infos if "Reflectance =" in m or "Integer raster" in m] == [f"{name}: {said[0]}"]


def test_processing_algorithm_names_a_bad_setting_before_a_cluster_starts(run_alg, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(batch, "start_cluster", no_cluster)
    params = {"ALGORITHM": list(batch.ALGORITHMS).index("classify_cnn"), "MODEL_FILE": CNN, "INPUTS": [AVIRIS_NG],
              "OUTPUT_FOLDER": str(tmp_path / "maps")}
    with pytest.raises(QgsProcessingException, match=r"\(BAD_BANDS\): Cannot read the bad-band entry 'drop water'"):
        run_alg("batch_on_cluster", dict(params, BAD_BANDS="drop water"))
    with pytest.raises(QgsProcessingException, match=r"Model \(or spectral library\) \(MODEL_FILE\): "
                                                     r"'usgs_minerals_cnn.onnx' is a mineral classification model"):
        run_alg("batch_on_cluster", dict(params, ALGORITHM=list(batch.ALGORITHMS).index("score_anomaly")))


def test_sam_classification_on_the_cluster_is_bit_identical(client, tmp_path):
    """SAM was no batch algorithm. Cut into row ranges, with a whole library (spectra over part of the range left
    out, decided on the whole scene) and with named spectra under a maximum angle: the single run's bytes."""
    refs = {}
    library = read_library(USGS_LIBRARY)
    for scene in (JASPER,):
        refs[scene] = {"classes": str(tmp_path / "c.tif"), "score": str(tmp_path / "s.tif")}
        single = mapping.sam_map(scene, library, refs[scene]["classes"], refs[scene]["score"],
                                 band_info=mapping.image_band_info(scene), memory_mb=MEMORY_MB, whole_library=True)
    job, report, out, plans = run(client, tmp_path, "sam_classify", USGS_LIBRARY, [JASPER], rows=16)
    assert not report.failed and len(plans[0].parts) == 3
    assert_same_files(job, refs)
    assert report.summaries[JASPER]["class_counts"] == single["class_counts"]
    with rasterio.open(refs[JASPER]["classes"]) as ds:
        assert len(np.unique(ds.read(1))) >= 2
    sid = {"classes": str(tmp_path / "c2.tif"), "score": str(tmp_path / "s2.tif")}
    mapping.sam_map(JASPER, library.subset(ENDMEMBERS), sid["classes"], sid["score"], method="sid", threshold=0.05,
                    band_info=mapping.image_band_info(JASPER), memory_mb=MEMORY_MB)
    job, report, out, plans = run(client, tmp_path, "sam_classify", USGS_LIBRARY, [JASPER], rows=16, name="sid",
                                  spectra="; ".join(ENDMEMBERS), method="sid", max_score=0.05)
    assert_same_files(job, {JASPER: sid})
    with rasterio.open(sid["classes"]) as ds:
        assert (ds.read(1) == 0).any()     # the limit leaves some pixels unclassified


def test_per_band_scales_on_the_cluster_are_the_single_runs(client, tmp_path):
    """A scene whose bands carry their own gains (half of them stored at twice the DN step): each row range's
    VRT carries every band's own scale, so the unmixing equals the single run's bytes and logs its scale line."""
    from conftest import core_warnings

    scene = str(tmp_path / "perband.tif")
    with rasterio.open(JASPER) as src:
        profile = src.profile
        data = src.read().astype(np.float64)
        tags = [src.tags(b) for b in range(1, src.count + 1)]
    gains = np.where(np.arange(data.shape[0]) % 2 == 0, 1e-4, 2e-4)
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.round(data * 1e-4 / gains[:, None, None]).astype(profile["dtype"]))
        for b, band_tags in enumerate(tags, start=1):
            dst.update_tags(b, **band_tags)
        dst.scales = tuple(gains)
        dst.offsets = tuple(0.0 for _ in gains)
    ref = {"abundances": str(tmp_path / "a.tif")}
    single = core_warnings()
    mapping.unmix_map(scene, read_library(USGS_LIBRARY).subset(ENDMEMBERS), ref["abundances"],
                      band_info=mapping.image_band_info(scene), memory_mb=MEMORY_MB, feedback=single)
    said = [m for m in single.infos if m.startswith("Reflectance =")]
    assert len(said) == 1 and "of each band" in said[0]
    log = core_warnings()
    job, report, out, plans = run(client, tmp_path, "unmix_fcls", USGS_LIBRARY, [scene], rows=16, feedback=log,
                                  spectra=ENDMEMBERS)
    assert not report.failed and len(plans[0].parts) == 3
    assert_same_files(job, {scene: ref})
    assert [m for m in log.infos if "Reflectance =" in m] == [f"perband.tif: {said[0]}"]


def test_sentinel2_indices_of_product_folders_on_the_cluster(client, tmp_path):
    """The indices-to-file logic lived in the algorithm only; it is core.sentinel2.sentinel2.indices_map, which
    the cluster runs scene by scene (no model) and oremap:s2_indices runs once."""
    from oremap.core.sentinel2.sentinel2 import indices_map

    ref = str(tmp_path / "ref.tif")
    single = indices_map(S2_PRODUCT, ref, ["NDVI", "IRON_OXIDE"], memory_mb=MEMORY_MB)
    assert single["indices"] == ["NDVI", "IRON_OXIDE"] and single["skipped"] == {}
    job, report, out, plans = run(client, tmp_path, "s2_indices", None, [S2_PRODUCT], rows=4,
                                  indices="ndvi; iron oxide")   # one text, as a script may give it
    assert report.done == [S2_PRODUCT] and plans[0].parts == []
    assert_same_files(job, {S2_PRODUCT: {"indices": ref}})
    with rasterio.open(ref) as ds:
        assert list(ds.descriptions) == ["NDVI", "IRON_OXIDE"]
        ndvi = ds.read(1)
        b4, b8 = (rasterio.open(glob.glob(os.path.join(S2_PRODUCT, f"*_{b}.tif"))[0]).read(1).astype(float)
                  for b in ("B04", "B08"))
    # acquired in 2017, before processing baseline 04.00: reflectance = DN / 10000, no offset
    assert ndvi.shape == b4.shape == (120, 120)
    assert np.allclose(ndvi, (b8 - b4) / (b8 + b4), atol=1e-6)


def test_processing_algorithm_runs_sam_and_indices_styled_as_their_single_runs(run_alg, client, tmp_path):
    """SAM (with a library) and Sentinel-2 indices (no model: MODEL_FILE left empty) from QGIS on a running
    scheduler: the outputs and their .qml are those of oremap:sam_classify and oremap:s2_indices."""
    import processing

    base = {"SCHEDULER": client.scheduler.address}
    log = log_feedback()
    choice = list(batch.ALGORITHMS).index("s2_indices")
    result = processing.run("oremap:batch_on_cluster", dict(base, ALGORITHM=choice,
                                                            INPUTS=[S2_PRODUCT], INDICES=[0, 1], BAD_BANDS="off",
                                                            MODE=1, OUTPUT_FOLDER=str(tmp_path / "idx")),
                            feedback=log)
    assert (result["SCENES_DONE"], result["SCENES_FAILED"]) == (1, 0)
    # settings of other algorithms changed from their defaults are named; those left at them are not
    assert "MODE, BAD_BANDS do not apply to s2_indices: ignored." in log.warnings
    single = run_alg("s2_indices", {"INPUT_FOLDER": S2_PRODUCT, "INDICES": [0, 1],
                                    "OUTPUT": str(tmp_path / "single_idx.tif")})
    written = batch.output_paths("s2_indices", S2_PRODUCT, str(tmp_path / "idx"))["indices"]
    with rasterio.open(written) as a, rasterio.open(single["OUTPUT"]) as b:
        assert np.array_equal(a.read(), b.read()) and a.descriptions == b.descriptions
    with open(os.path.splitext(written)[0] + ".qml") as mine, open(str(tmp_path / "single_idx.qml")) as theirs:
        assert mine.read() == theirs.read()
    result = run_alg("batch_on_cluster", dict(base, ALGORITHM=list(batch.ALGORITHMS).index("sam_classify"),
                                              MODEL_FILE=USGS_LIBRARY, INPUTS=[JASPER], SPECTRA="; ".join(ENDMEMBERS),
                                              OUTPUT_FOLDER=str(tmp_path / "sam")))
    assert result["SCENES_DONE"] == 1
    single = run_alg("sam_classify", {"INPUT": JASPER, "LIBRARY": USGS_LIBRARY, "SPECTRA": "; ".join(ENDMEMBERS),
                                      "OUTPUT_CLASSES": str(tmp_path / "c.tif"),
                                      "OUTPUT_SCORE": str(tmp_path / "s.tif")})
    outputs = batch.output_paths("sam_classify", JASPER, str(tmp_path / "sam"))
    for suffix, ref in (("classes", single["OUTPUT_CLASSES"]), ("score", single["OUTPUT_SCORE"])):
        assert sha(outputs[suffix]) == sha(ref)
        styled = os.path.splitext(outputs[suffix])[0] + ".qml"
        with open(styled) as mine, open(os.path.splitext(ref)[0] + ".qml") as theirs:
            assert mine.read() == theirs.read()


def test_a_scene_keeps_all_its_outputs_or_none(tmp_path, monkeypatch):
    """Cancelling removes a scene's work folder; between the moves of its outputs into place that left the first
    output without the second. A move that fails now takes back the outputs already moved."""
    outputs = batch.output_paths("classify_cnn", AVIRIS_NG, str(tmp_path))
    real = os.replace

    def replace(src, dst):
        if dst.endswith(".confidence.tif"):
            raise FileNotFoundError(src)     # the work folder went while the classes were being moved
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(FileNotFoundError):
        batch.run_scene("classify_cnn", AVIRIS_NG, CNN, outputs)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(os, "replace", real)
    batch.run_scene("classify_cnn", AVIRIS_NG, CNN, outputs)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in outputs.values())


def test_a_worker_without_a_package_says_which_and_how_to_install_it(client, tmp_path, monkeypatch):
    """A worker lacking onnxruntime failed each scene with the QGIS installer's hint (Plugins > OreMap > ...), which
    means nothing on a cluster node. Each scene now names the worker, its Python, and the pinned pip command."""
    from oremap.core.engine import dependencies

    def no_onnxruntime(dask_worker=None):
        from oremap.core.engine import dependencies as deps

        real = deps.missing
        deps.missing = lambda packages: [p for p in packages if p == "onnxruntime"] + real(
            [p for p in packages if p != "onnxruntime"])

    client.run(no_onnxruntime)
    try:
        out = tmp_path / "maps"
        out.mkdir()
        job = batch.BatchJob("classify_cnn", CNN, [AVIRIS_NG], str(out))
        report = batch.run_batch(job, client)
        message = report.failed[AVIRIS_NG]
        assert "lacks the Python package onnxruntime." in message and "(/" in message
        assert message.endswith(f"Install into the workers' Python (or their container image): "
                                f"{dependencies.install_command(['onnxruntime'])[0]}.")
        assert os.listdir(out) == []
        with pytest.raises(OreMapError) as err:
            batch.check_outcome(report)
        assert err.value.parameter == "scheduler"
    finally:
        client.restart()
        batch.prepare_client(client)


def test_paths_past_windows_limit_are_refused_before_the_job(tmp_path, monkeypatch):
    """A long scene name in a long folder (OneDrive, a user name with accents) took the work folder's assembled
    file and its temporary name past Windows' 260 characters: GDAL wrote it, Python could not move or remove it, and
    the scene failed late, leaving gigabytes behind. The work folder now holds short names, and a path that would
    still pass the limit is refused when the job is planned, naming the output folder."""
    from oremap.core.engine import files

    monkeypatch.setattr(files, "WINDOWS", True)
    scene = copy_envi(AVIRIS_NG, tmp_path, "EnMAP_L2A_" + "x" * 60)
    short = tmp_path / "maps"
    short.mkdir()
    job = batch.BatchJob("classify_cnn", CNN, [scene], str(short))
    work = batch.plan(job)[0].work
    assert os.path.basename(work).startswith(".oremap-batch-EnMAP_L2A_xxxxxxxxxxxxxx-")
    assert len(os.path.basename(work)) == len(".oremap-batch-") + 24 + 1 + 8
    deep = tmp_path / ("Documents Zoë Müller OneDrive " * 5)
    deep.mkdir()
    with pytest.raises(OreMapError) as err:
        batch.plan(batch.BatchJob("classify_cnn", CNN, [scene], str(deep)))
    assert err.value.parameter == "out_dir" and "would pass Windows' limit of 259" in err.value.message
    monkeypatch.setattr(files, "WINDOWS", False)
    assert batch.plan(batch.BatchJob("classify_cnn", CNN, [scene], str(deep)))


def test_cli_says_which_matched_files_it_leaves_out(client, tmp_path, capsys):
    """oremap-batch called expand_inputs without its feedback: 'N file(s) matched that are not rasters left out'
    never reached stderr, so a pattern matching 19 files gave 15 scenes and no word about the other four."""
    import shutil

    from oremap.batch import main

    folder = tmp_path / "scenes"
    folder.mkdir()
    for ext in (".img", ".hdr"):
        shutil.copy(AVIRIS_NG[:-4] + ext, folder / ("tile" + ext))
    (folder / "notes.txt").write_text("field notes")
    out = tmp_path / "maps"
    out.mkdir()
    code = main(["sam_classify", str(folder / "*"), "--model", USGS_LIBRARY, "--out", str(out),
                 "--scheduler", client.scheduler.address])
    assert code == 0
    assert "1 file(s) matched that are not rasters left out: notes.txt." in capsys.readouterr().err.splitlines()


def test_an_emit_layer_is_its_file_in_the_batch_algorithm(tmp_path):
    """QGIS names an EMIT layer's source NETCDF:"x.nc":reflectance; the batch algorithm passed that name on and
    the job was refused as 'does not exist', where the single algorithms read the file."""
    from qgis.core import QgsRasterLayer
    from sensor_fixtures import make_emit

    from oremap.algorithms.batch_on_cluster import layer_files

    emit = make_emit(str(tmp_path))
    layer = QgsRasterLayer(f'NETCDF:"{emit["path"]}":reflectance', "emit", "gdal")
    assert layer.isValid() and layer.source().startswith("NETCDF:")
    assert batch.expand_inputs(layer_files([layer])) == [emit["path"]]
