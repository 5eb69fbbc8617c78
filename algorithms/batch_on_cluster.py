"""oremap:batch_on_cluster - one of OreMap's mapping algorithms over many scenes on a Dask cluster."""

import glob
import os

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
    QgsProcessing,
)

from ..core.engine import compute
from ..core.hyperspectral import sensor_products
from ..core.scaleout import batch
from ..core.sentinel2.sentinel2 import INDEX_NAMES
from .base import OreMapAlgorithm, split_names
from .s2_indices import INDEX_STYLE
from .sam_classify import METHODS as SAM_METHODS, SCORE_STYLE
from . import styles

CHOICES = list(batch.ALGORITHMS)
#: the job options of parameters the Toolbox always sends, at their defaults
TOOLBOX_DEFAULTS = {"mode": "fcls", "level": 0.9, "method": "sam", "indices": list(INDEX_NAMES)}
MODES = [("fcls", "Fully constrained (>= 0, sum 1)"), ("nn_closed", "Non-negative, then closed (scale-invariant)")]



def layer_files(layers):
    """The files of raster layers: a GDAL subdataset name (QGIS names an EMIT layer NETCDF:"x.nc":reflectance) gives
    its file, as the single-run algorithms read it, and ``|`` options are dropped."""
    return [sensor_products.product_file(layer.source()) for layer in layers]

class BatchOnCluster(OreMapAlgorithm):
    NAME = "batch_on_cluster"
    CANCEL_MESSAGE = ("Cancelled: the scenes already finished keep their outputs, the others have none; run again "
                      "with 'Resume' to continue.")
    DISPLAY_NAME = "Run a mapping algorithm over many scenes on a cluster (Dask)"
    GROUP = "batch"
    REQUIRES = ("distributed",)
    TAGS = "batch,cluster,dask,distributed,slurm,kubernetes,many scenes,flight lines,archive,parallel"
    HELP = (
        "Runs one mapping algorithm (spectral CNN classification, fully constrained unmixing, abundance "
        "prediction, mine detection, VAE anomaly scores, SAM classification or Sentinel-2 indices) with one model "
        "(or none, for the indices) over many scenes, on a Dask cluster: "
        "the scheduler at the given address, or a local cluster of one worker process per core. Each scene "
        "writes its own outputs into the output folder as &lt;scene&gt;.&lt;output&gt;.tif, the same files the "
        "algorithm writes on one machine (bit for bit), styled as it styles them (a .qml beside each). A "
        "Sentinel-2 product folder (one file per band) is one scene. The model, the options and each scene's "
        "bands are checked and chosen as the single algorithm does, before the cluster starts.\n\n"
        "Scenes taller than the rows per part are cut into row ranges that the workers read and write "
        "themselves (whole blocks of the memory budget); one more task stitches them. No raster passes "
        "through the scheduler. A scene's outputs appear only when complete: a failed scene or a lost worker "
        "leaves none of its files. A cancelled run keeps the scenes already finished and leaves no file of the "
        "others; 'Resume' skips scenes whose outputs exist, so a rerun continues where it stopped. Each scene's "
        "warnings are logged under its name; failed scenes are named with the reason, and a run in which every "
        "scene fails stops with an error. Workers load the model from its file (shared file system), or from "
        "its bytes sent once to every worker.\n\n"
        "The workers of an existing cluster need OreMap and its Python packages: the plugin folder at the "
        "same path, or the folder given by OREMAP_PLUGIN_DIR on the workers. The same job runs headless with "
        "'python -m oremap.batch' (scripts/oremap-batch in a checkout). For one scene, use the algorithm "
        "itself (the Toolbox's own batch mode works as before).")
    PARAM_HELP = {
        "ALGORITHM": "What to compute for every scene. Outputs: classify_cnn: classes, confidence; unmix_fcls: "
                     "abundances (+ RMSE band(s)); predict_abundance: abundance, intervals, dominant; detect_mines: "
                     "probability, mask (one task per scene: its windows overlap); score_anomaly: score, classes; "
                     "sam_classify: classes, score; s2_indices: indices (one task per scene). Use one output "
                     "folder per algorithm (several write &lt;scene&gt;.classes.tif).",
        "MODEL_FILE": "The model: an OreMap .onnx model for the CNN, abundance, mine and anomaly algorithms; a "
                      "spectral library (.sli with .hdr, .csv or spectrum files) of the endmembers for unmixing and of "
                      "the reference spectra for SAM; none for Sentinel-2 indices.",
        "INPUTS": "Scenes (raster layers or files; a Sentinel-2 product folder, one file per band, is one "
                  "scene). Optional when a pattern is given.",
        "PATTERN": "More scenes: a glob pattern (e.g. /data/emit/*.nc), a folder (its raster files and the "
                   "Sentinel-2 product folders in it; a Sentinel-2 product folder itself is one scene) or a text "
                   "file listing one scene a line. ';' separates several.",
        "SCHEDULER": "Address of a running Dask scheduler (tcp://host:8786, e.g. started on SLURM or Kubernetes). "
                     "Empty: a local cluster on this machine for the run.",
        "WORKERS": "Local cluster: worker processes (0 = one per core).",
        "RESUME": "Skip scenes whose outputs all exist (a rerun after an interrupted job).",
        "OVERWRITE": "Replace existing outputs.",
        "ROWS_PER_PART": "Scenes taller than this many rows are cut into row ranges run in parallel (rounded to "
                         "whole blocks of the memory budget).",
        "SHIP_MODEL": "Send the model's bytes once to every worker (workers without the shared file system).",
        "SPECTRA": "Unmixing and SAM: names of the spectra in the library (';' separated; empty = all).",
        "SAM_METHOD": "SAM classification: spectral angle or spectral information divergence.",
        "MAX_SCORE": "SAM classification: largest angle (radians, SAM) or divergence (SID) still accepted; pixels "
                     "whose best match is worse are unclassified. 0 = no limit.",
        "INDICES": "Sentinel-2 indices to compute (every one whose bands a scene has; the others are skipped and "
                   "logged).",
        "BAND_MAP": "Sentinel-2 indices and mine detection: the raster band of each S2 band (e.g. 'B2=1, B3=2, "
                    "B4=3, B8=4'), for stacks whose bands carry no names.",
        "CLOUD_MASK": "Sentinel-2 indices and mine detection: treat pixels the L2A scene classification (of a "
                      "product folder, or a band named SCL) classes as cloud, shadow, cirrus, saturated or no "
                      "data as nodata.",
        "MODE": "Unmixing: constraint.",
        "LEVEL": "Abundance prediction: level of the intervals (%).",
        "THRESHOLD": "Mine detection: probability from which a pixel is mine (empty or 0: the model's own, as in "
                     "oremap:detect_mines).",
        "MIN_CONFIDENCE": "CNN classification: pixels whose highest probability is lower stay unclassified.",
        "OOD_CHECK": "CNN classification: leave pixels unlike the model's training spectra of their class "
                     "unclassified (the model's out-of-distribution check, as oremap:classify_spectral_cnn).",
        "BAD_BANDS": "CNN classification, unmixing, abundance prediction and SAM: bands left out besides each scene's "
                     "ENVI bbl, as in the single algorithms (found in every scene on its own: water vapour, "
                     "constant, negative and noisy bands). Empty: automatic; e.g. 'keep 381-401 nm; drop "
                     "2450-2510 nm; drop bands 1-5', or 'off' for the bbl only. Checked before the cluster starts.",
    }
    OUTPUT_HELP = {
        "OUTPUT_FOLDER": "The output folder, holding &lt;scene&gt;.&lt;output&gt;.tif (and its .qml style) for "
                         "every scene written; scenes whose outputs exist are refused unless Resume or Overwrite "
                         "is set.",
        "SCENES_DONE": "Number of scenes whose outputs were written in this run.",
        "SCENES_SKIPPED": "Scenes skipped because their outputs existed (Resume).",
        "SCENES_FAILED": "Scenes that failed (each named in the log, none of its files left).",
    }
    REFERENCES = [
        "Rocklin, M. (2015). Dask: parallel computation with blocked algorithms and task scheduling. "
        "Proceedings of the 14th Python in Science Conference, 130-136.",
        "Dask.distributed documentation: https://distributed.dask.org",
    ]
    CORE_PARAMETERS = {**OreMapAlgorithm.CORE_PARAMETERS, "inputs": "PATTERN", "list": "PATTERN",
                       "out_dir": "OUTPUT_FOLDER", "scheduler": "SCHEDULER", "algorithm": "ALGORITHM",
                       "rows_per_part": "ROWS_PER_PART", "raster": "INPUTS", "library": "MODEL_FILE",
                       "threshold": "THRESHOLD", "level": "LEVEL", "min_confidence": "MIN_CONFIDENCE",
                       "ood": "OOD_CHECK", "spectra": "SPECTRA", "mode": "MODE",
                       "method": "SAM_METHOD", "max_score": "MAX_SCORE", "indices": "INDICES", "band_map": "BAND_MAP",
                       "cloud_mask": "CLOUD_MASK"}

    def group(self):
        return self.tr("Batch")

    def groupId(self):  # noqa: N802
        return "batch"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_enum("ALGORITHM", "Algorithm", [batch.ALGORITHMS[c].label for c in CHOICES])
        self._add(QgsProcessingParameterFile("MODEL_FILE", self.tr("Model (or spectral library)"), optional=True))
        self._add(QgsProcessingParameterMultipleLayers("INPUTS", self.tr("Scenes"), QgsProcessing.TypeRaster,
                                                       optional=True))
        self._add(QgsProcessingParameterString("PATTERN", self.tr("More scenes: pattern, folder or list file"),
                                               optional=True))
        self._add(QgsProcessingParameterString("SCHEDULER", self.tr("Dask scheduler address (empty: local cluster)"),
                                               optional=True))
        self._add(QgsProcessingParameterBoolean("RESUME", self.tr("Resume (skip finished scenes)"), False))
        self._add(QgsProcessingParameterBoolean("OVERWRITE", self.tr("Overwrite existing outputs"), False))
        self._add(QgsProcessingParameterString("SPECTRA", self.tr("Spectra names (unmixing, SAM)"), optional=True))
        self.add_enum("MODE", "Unmixing constraint", [label for _, label in MODES])
        self.add_number("LEVEL", "Interval level (%) (abundance)", 90.0, 50.0, 99.0)
        self.add_number("THRESHOLD", "Mine probability threshold", None, 0.0, 0.99, optional=True)
        self.add_number("MIN_CONFIDENCE", "Minimum confidence (CNN)", 0.0, 0.0, 1.0)
        self._add(QgsProcessingParameterBoolean("OOD_CHECK", self.tr("Leave pixels unlike the training data "
                                                                     "unclassified (CNN)"), defaultValue=True),
                  advanced=True)
        self.add_enum("SAM_METHOD", "SAM method", [label for _, label in SAM_METHODS])
        self.add_number("MAX_SCORE", "SAM: maximum angle (rad) or divergence; 0 = no limit", 0.0, 0.0)
        self._add(QgsProcessingParameterEnum("INDICES", self.tr("Sentinel-2 indices"), options=INDEX_NAMES,
                                             allowMultiple=True, defaultValue=list(range(len(INDEX_NAMES)))))
        self._add(QgsProcessingParameterString("BAND_MAP", self.tr("Sentinel-2 band map"), optional=True),
                  advanced=True)
        self._add(QgsProcessingParameterBoolean("CLOUD_MASK", self.tr("Sentinel-2: mask clouds with the scene "
                                                                      "classification (SCL)"), defaultValue=True),
                  advanced=True)
        self.add_number("WORKERS", "Local workers (0 = one per core)", 0, 0, integer=True, advanced=True)
        self.add_number("ROWS_PER_PART", "Rows per part", batch.DEFAULT_ROWS_PER_PART, 1, integer=True,
                        advanced=True)
        self._add(QgsProcessingParameterBoolean("SHIP_MODEL", self.tr("Send the model to the workers"), False),
                  advanced=True)
        self.add_band_parameters()
        self._add(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", self.tr("Output folder")))
        self.add_value_output("SCENES_DONE", "Scenes written")
        self.add_value_output("SCENES_SKIPPED", "Scenes skipped")
        self.add_value_output("SCENES_FAILED", "Scenes failed")

    @staticmethod
    def _folders(parameters):
        """``(folders, other values)`` of INPUTS: existing folders (a Sentinel-2 product folder is one scene)
        are taken as they are; QGIS cannot load a folder as a layer."""
        value = parameters.get("INPUTS")
        values = list(value) if isinstance(value, (list, tuple)) else ([] if value in (None, "") else [value])
        folders = [v for v in values if isinstance(v, str) and os.path.isdir(v)]
        return folders, [v for v in values if not (isinstance(v, str) and os.path.isdir(v))]

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API)
        """Folders among the scenes are accepted (QGIS would refuse them as layers); the rest is checked as usual."""
        folders, others = self._folders(parameters)
        if folders:
            parameters = {**parameters, "INPUTS": others or None}
        return super().checkParameterValues(parameters, context)

    def process(self, parameters, context, feedback):
        algorithm = CHOICES[self.parameterAsEnum(parameters, "ALGORITHM", context)]
        folders, others = self._folders(parameters)
        layers = self.parameterAsLayerList({**parameters, "INPUTS": others or None}, "INPUTS", context) if others \
            else []
        paths = layer_files(layers) + folders
        text = self.parameterAsString(parameters, "PATTERN", context)
        patterns = split_names(text, commas=False)   # a folder may hold a comma ('scenes, 2017')
        if len(patterns) == 1 and "," in patterns[0] and not (os.path.exists(patterns[0]) or glob.glob(patterns[0])):
            patterns = split_names(text)   # nothing by that name: a list written with commas
        lists = [p for p in patterns if p.lower().endswith(".txt") and os.path.isfile(p)]
        paths += [p for p in patterns if p not in lists]
        if not paths and not lists:
            raise self.fail("INPUTS", "No scene was given.", "Choose raster layers or give a pattern or folder.")
        inputs = batch.expand_inputs(paths, lists, feedback=feedback)
        model_file = self.parameterAsFile(parameters, "MODEL_FILE", context) or None
        if model_file is None or not os.path.isfile(model_file):   # the user's mistake before the folder's
            batch.check_model(algorithm, model_file)                 # (batch.plan checks the model's content)
        out_dir = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise self.fail("OUTPUT_FOLDER", f"'{out_dir}' is a file, not a folder.", "Choose a folder for the outputs.")
        created = not os.path.exists(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        try:
            return self._run(parameters, context, feedback, algorithm, inputs, model_file, out_dir)
        except BaseException:
            if created and os.path.isdir(out_dir) and not os.listdir(out_dir):
                os.rmdir(out_dir)   # a run refused before it wrote anything leaves no empty folder behind
            raise

    def _run(self, parameters, context, feedback, algorithm, inputs, model_file, out_dir):
        wavelengths, nodata, scale = self.band_parameters(parameters, context)
        self.bad_bands(parameters, context)   # an entry it cannot read is named before anything runs
        threshold = parameters.get("THRESHOLD")
        spectra = self.parameterAsString(parameters, "SPECTRA", context)
        known = None
        if spectra and ";" not in spectra and "," in spectra and str(model_file).lower().endswith(
                (".sli", ".esl", ".hdr", ".csv", ".txt", ".sed", ".sig")):
            from ..core.hyperspectral.spectral_library import read_library

            known = read_library(model_file).names   # a name with a comma ('Jarosite GDS99 K,Sy 200C') stays whole
        options = {
            "spectra": split_names(spectra, known=known) or None,
            "mode": MODES[self.parameterAsEnum(parameters, "MODE", context)][0],
            "level": self.parameterAsDouble(parameters, "LEVEL", context) / 100.0,
            "threshold": self.parameterAsDouble(parameters, "THRESHOLD", context) if threshold not in (None, "")
            else None,
            "min_confidence": self.parameterAsDouble(parameters, "MIN_CONFIDENCE", context) or None,
            "wavelengths": None if wavelengths is None else [float(w) for w in wavelengths],
            "scale": scale, "nodata": nodata,
            "bad_bands": self.parameterAsString(parameters, "BAD_BANDS", context).strip() or None,
        }
        if not self.parameterAsBool(parameters, "OOD_CHECK", context):
            options["ood"] = False
        if not self.parameterAsBool(parameters, "CLOUD_MASK", context):
            options["cloud_mask"] = False
        options["method"] = SAM_METHODS[self.parameterAsEnum(parameters, "SAM_METHOD", context)][0]
        options["max_score"] = self.parameterAsDouble(parameters, "MAX_SCORE", context) or None
        chosen = self.parameterAsEnums(parameters, "INDICES", context)
        if not chosen and algorithm == "s2_indices":
            raise self.fail("INDICES", "No index was chosen.", "Choose at least one index.")
        options["indices"] = [INDEX_NAMES[i] for i in sorted(set(chosen))] or None
        options["band_map"] = self.parameterAsString(parameters, "BAND_MAP", context).strip() or None
        # the Toolbox sends every parameter, with its default: only those that apply to the algorithm are passed,
        # and one set to another value than its default that does not apply is named
        options = {k: v for k, v in options.items() if v is not None}
        ignored = [k for k, v in options.items() if algorithm not in batch.OPTIONS[k] and TOOLBOX_DEFAULTS.get(k) != v]
        if ignored:
            feedback.warning(f"{', '.join(self.CORE_PARAMETERS.get(k, k.upper()) for k in ignored)} "
                             f"{'does' if len(ignored) == 1 else 'do'} not apply to {algorithm}: ignored.")
        options = {k: v for k, v in options.items() if algorithm in batch.OPTIONS[k]}
        job = batch.BatchJob(algorithm, model_file, inputs, out_dir, options,
                             resume=self.parameterAsBool(parameters, "RESUME", context),
                             overwrite=self.parameterAsBool(parameters, "OVERWRITE", context),
                             rows_per_part=self.parameterAsInt(parameters, "ROWS_PER_PART", context),
                             memory_mb=self.memory_mb(), threads=1,
                             ship_model=self.parameterAsBool(parameters, "SHIP_MODEL", context))
        # bad input (the model, the options, the scenes) is named before a cluster starts
        plans = batch.plan(job, feedback)
        scheduler = self.parameterAsString(parameters, "SCHEDULER", context).strip()
        workers = self.parameterAsInt(parameters, "WORKERS", context) or None
        client, cluster = batch.start_cluster(scheduler or None, workers,
                                              packages=batch.ALGORITHMS[algorithm].requires)
        report, running = None, False
        try:
            n_workers = len(client.scheduler_info().get("workers", {}))
            feedback.info(f"{len(job.inputs)} scenes, {batch.ALGORITHMS[algorithm].label}, on "
                          f"{scheduler or 'a local cluster'} with {n_workers} workers.")
            device = None
            if not scheduler and n_workers > 1 and compute.current().requested == "cuda":
                device = "cpu"  # each worker process would open its own session, with its own memory, on one GPU
                feedback.warning(f"The compute device is CUDA, but the local cluster's {n_workers} worker processes "
                                 "would share one GPU, each with its own memory: they run on the CPU. Set WORKERS "
                                 "to 1 to run on the GPU.")
            running = True
            report = batch.run_batch(job, client, feedback, device=device)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
            if running and report is None:
                # cancelled (or stopped by an error) after some scenes were written: they keep their outputs, and
                # get their styles now, read back from the outputs (the run's numbers went with it)
                finished = self.style_written(job, [p.scene for p in plans if not p.skip], feedback)
                if finished:
                    feedback.info(f"{len(finished)} scene(s) finished before the run stopped: styled.")
        feedback.info(f"{len(report.done)} scenes written, {len(report.skipped)} skipped, {len(report.failed)} "
                      f"failed; {report.pixels} pixels in {report.seconds:.1f} s ({report.parts} tasks).")
        self.style_scenes(context, job, report)
        restyled = self.style_written(job, report.skipped, feedback)
        if restyled:
            feedback.info(f"{len(restyled)} skipped scene(s) had outputs without a style (.qml): styled now.")
        batch.check_outcome(report)   # every scene failed: an error naming the first failure
        return {"OUTPUT_FOLDER": out_dir, "SCENES_DONE": len(report.done), "SCENES_SKIPPED": len(report.skipped),
                "SCENES_FAILED": len(report.failed)}

    def style_scenes(self, context, job, report):
        """A .qml beside every output of the scenes written, as the algorithm's own run styles it."""
        info = None
        for scene in report.done:
            if info is None and job.algorithm in ("predict_abundance", "score_anomaly"):
                from ..core.engine.model_format import read_model_info

                info = read_model_info(job.model)
            for suffix, style in output_styles(job.algorithm, report.summaries.get(scene) or {}, info).items():
                self.style_output(context, report.outputs[scene][suffix], style)

    def style_written(self, job, scenes, feedback):
        """A .qml beside every output of ``scenes`` (written before: skipped by Resume, or finished by a run that
        was then cancelled) that has none, as :meth:`style_scenes` styles it, from what the outputs themselves keep
        (:func:`summary_from_outputs`) and the model. Scenes not all of whose outputs exist are left alone. Returns
        the scenes styled; one that cannot be styled is named in a warning (the run's outcome stands). No layer
        of the folder is loaded on completion, so the .qml is all the style there is."""
        styled, info = [], None
        for scene in scenes:
            outputs = batch.output_paths(job.algorithm, scene, job.out_dir)
            if not all(os.path.isfile(path) for path in outputs.values()):
                continue
            bare = [suffix for suffix, path in outputs.items() if not os.path.exists(os.path.splitext(path)[0] +
                                                                                      ".qml")]
            if not bare:
                continue
            try:
                if info is None and job.algorithm in ("predict_abundance", "score_anomaly"):
                    from ..core.engine.model_format import read_model_info

                    info = read_model_info(job.model)
                chosen = output_styles(job.algorithm, summary_from_outputs(job.algorithm, outputs), info)
                done = [suffix for suffix in bare if suffix in chosen]
                for suffix in done:
                    # not under the run's output guard (style_output): the scene's outputs stay whatever becomes
                    # of this run (a cancel rolls the run's guarded files back), and so does their style
                    styles.write_style(outputs[suffix], chosen[suffix])
            except Exception as exc:   # noqa: BLE001 - a style never costs the run (nor hides its cancel)
                feedback.warning(f"{os.path.basename(os.path.normpath(scene))}: its outputs could not be styled: "
                                 f"{str(exc) or type(exc).__name__}")
                continue
            if done:
                styled.append(scene)
        return styled


def summary_from_outputs(algorithm, outputs):
    """What :func:`output_styles` needs of a scene (the numbers :func:`core.scaleout.batch.scene_summary` gives),
    read back from the scene's written ``outputs`` (``{suffix: path}``): the class legend a class raster keeps
    (``OREMAP_CLASSES``), the mine threshold the mask keeps (``OREMAP_THRESHOLD``) and the mean of every abundance
    band over the pixels that have abundances (the band shown first). For a scene finished by an earlier run,
    whose numbers are gone."""
    import json

    import rasterio

    def tags(path):
        with rasterio.open(path) as ds:
            return ds.tags()

    summary = {}
    if algorithm in ("classify_cnn", "sam_classify"):
        tag = tags(outputs["classes"]).get("OREMAP_CLASSES")
        if tag:
            summary["legend"] = [{"value": int(c["value"]), "name": str(c["name"]), "color": str(c["color"])}
                                 for c in json.loads(tag)]
    elif algorithm == "detect_mines":
        for suffix in ("mask", "probability"):
            tag = tags(outputs[suffix]).get("OREMAP_THRESHOLD")
            if tag not in (None, ""):
                summary["threshold"] = float(tag)
                break
    elif algorithm in ("unmix_fcls", "predict_abundance"):
        path = outputs["abundances" if algorithm == "unmix_fcls" else "abundance"]
        summary["means"] = abundance_means(path, algorithm == "unmix_fcls")
    return summary


def abundance_means(path, unmixed=False):
    """The mean of every abundance band of ``path`` over the pixels with an abundance in every band (not nodata,
    finite), as the run's statistics count them; ``unmixed``: an unmixing output, whose bands after the endmembers'
    (``OREMAP_ENDMEMBERS``) are residuals."""
    import json

    import numpy as np
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as ds:
        count = ds.count
        if unmixed:
            try:
                count = len(json.loads(ds.tags().get("OREMAP_ENDMEMBERS") or "")) or ds.count
            except (ValueError, TypeError):
                from ..core.hyperspectral.mapping import RESIDUAL_BANDS

                count = ds.count - len(RESIDUAL_BANDS.get(ds.tags().get("OREMAP_UNMIXING_MODE"), ()))
            count = min(max(count, 1), ds.count)
        nodata = ds.nodata
        sums, n = np.zeros(count), 0
        rows = max(1, (1 << 21) // max(ds.width * count, 1))
        for row in range(0, ds.height, rows):
            block = ds.read(list(range(1, count + 1)), window=Window(0, row, ds.width, min(rows, ds.height - row)),
                            out_dtype="float64").reshape(count, -1)
            good = np.isfinite(block).all(axis=0)
            if nodata is not None and not np.isnan(nodata):
                good &= (block != nodata).all(axis=0)
            sums += block[:, good].sum(axis=1)
            n += int(good.sum())
    return [float(s / max(n, 1)) for s in sums]


def output_styles(algorithm, summary, info=None):
    """``{output suffix: style}`` (algorithms/styles.py) of a scene's outputs, the styles the algorithm's single
    run gives the same outputs (classify_spectral_cnn, unmix_fcls, predict_abundance, detect_mines,
    vae_anomaly), from the scene's numbers (:func:`core.scaleout.batch.scene_summary`) and, for abundance and
    anomaly models, the model's :class:`ModelInfo` ``info``."""
    if algorithm == "classify_cnn":
        out = {"confidence": styles.unit_ramp()}
        if summary.get("legend"):
            out["classes"] = styles.classes(summary["legend"])
        return out
    if algorithm == "unmix_fcls":
        return {"abundances": styles.abundance_ramp(summary.get("means"), 1.0)}
    if algorithm == "predict_abundance":
        ramp = styles.abundance_ramp(summary.get("means"), 100.0)
        out = {"abundance": ramp, "intervals": ramp}
        if info is not None and info.classes:
            out["dominant"] = styles.model_classes(info.classes)
        return out
    if algorithm == "detect_mines":
        out = {"probability": styles.unit_ramp("Magma")}
        if summary.get("threshold") is not None:
            out["mask"] = styles.mine_mask(summary["threshold"])
        return out
    if algorithm == "score_anomaly":
        out = {"score": styles.ANOMALY_SCORE}
        percentiles = ((info.extra or {}).get("anomaly") or {}).get("percentiles") if info is not None else None
        if percentiles:
            from ..core.geochemistry.vae_anomaly import class_legend

            out["classes"] = styles.classes(class_legend([float(p) for p in percentiles]))
        return out
    if algorithm == "sam_classify":   # as oremap:sam_classify styles them
        out = {"score": dict(SCORE_STYLE)}
        if summary.get("legend"):
            out["classes"] = styles.classes(summary["legend"])
        return out
    if algorithm == "s2_indices":
        return {"indices": dict(INDEX_STYLE)}
    return {}
