"""``python -m oremap.batch``: run one of OreMap's mapping algorithms over many scenes on a Dask cluster.

No QGIS needed. From a checkout use ``scripts/oremap-batch`` (it imports the checkout as ``oremap``)::

    scripts/oremap-batch classify_cnn --model models/usgs_minerals_cnn.onnx --out maps/ 'lines/*.img'
    scripts/oremap-batch unmix_fcls --model minerals.sli --spectra "Kaolinite CM9;Alunite GDS84" \\
        --out abundances/ --list scenes.txt --scheduler tcp://head-node:8786 --resume

Without ``--scheduler`` a local cluster with one worker process per core starts and stops with the job.
The job's report (scenes done, skipped, failed; pixels; seconds) is printed as JSON on stdout; progress
and messages go to stderr. Exit status 0 when every scene is done or skipped, 1 when any failed, 2 for
bad arguments, 130 when interrupted (Ctrl+C). (``oremap:batch_on_cluster`` in QGIS succeeds when at least
one scene was written, and names the failed ones in its log and its SCENES_FAILED output.) See
:mod:`oremap.core.scaleout.batch` for how the work is split and kept atomic.
"""

import argparse
import sys

from .core.scaleout import batch as core_batch
from .core.engine.errors import Cancelled, OreMapError
from .core.engine.feedback import PrintFeedback


def _floats(text):
    return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]


def _names(text):
    sep = ";" if ";" in text else ","
    return [v.strip() for v in text.split(sep) if v.strip()]


def parser():
    p = argparse.ArgumentParser(
        prog="oremap-batch", description="Run an OreMap mapping algorithm over many scenes on a Dask cluster.",
        epilog="Algorithms: " + "; ".join(f"{a.name}: {a.label}, model = {a.model or 'none'}, writes "
                                          + ", ".join(f"<scene>.{o}.tif" for o in a.outputs)
                                          for a in core_batch.ALGORITHMS.values()))
    p.add_argument("algorithm", choices=sorted(core_batch.ALGORITHMS))
    p.add_argument("inputs", nargs="*", help="scene files, folders (their rasters) or quoted glob patterns")
    p.add_argument("--list", action="append", default=[], metavar="FILE",
                   help="a text file naming one scene a line (repeatable)")
    p.add_argument("--model", help="the model file (see the algorithms below; s2_indices needs none)")
    p.add_argument("--out", required=True, metavar="FOLDER", help="output folder (must exist)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://head:8786; default: a "
                   "local cluster")
    p.add_argument("--workers", type=int, default=0, help="local cluster: worker processes (default: one per core)")
    p.add_argument("--resume", action="store_true", help="skip scenes whose outputs all exist")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--rows-per-part", type=int, default=core_batch.DEFAULT_ROWS_PER_PART,
                   help="cut scenes taller than this into row ranges run in parallel (default %(default)s)")
    p.add_argument("--memory-mb", type=float, help="memory budget of one task (default $OREMAP_MEMORY_MB or 512)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per task (default 1)")
    p.add_argument("--ship-model", action="store_true",
                   help="send the model's bytes once to every worker (workers without the shared file system)")
    p.add_argument("--spectra", type=_names, help="unmix_fcls, sam_classify: spectra names in the library "
                   "(; separated; default: all)")
    p.add_argument("--method", choices=list(core_batch.SAM_METHODS), help="sam_classify: sam (angle, the default) "
                   "or sid (divergence)")
    p.add_argument("--max-score", type=float, help="sam_classify: largest angle (radians) or divergence accepted "
                   "(default or 0: no limit)")
    p.add_argument("--indices", type=_names, help="s2_indices: indices to compute (; or , separated; default: all "
                   "the bands allow)")
    p.add_argument("--band-map", help="s2_indices, detect_mines: the raster band of each S2 band, e.g. "
                   "'B2=1, B3=2, B4=3, B8=4'")
    p.add_argument("--no-cloud-mask", dest="cloud_mask", action="store_false", default=None,
                   help="s2_indices, detect_mines: do not mask clouds with a product folder's scene classification")
    p.add_argument("--mode", choices=list(core_batch.UNMIXING_MODES),
                   help="unmix_fcls: fcls (fully constrained, the default) or nn_closed (non-negative, then closed)")
    p.add_argument("--level", type=float, help="predict_abundance: interval level, 0.5-0.99 (default 0.9)")
    p.add_argument("--threshold", type=float, help="detect_mines: probability threshold (default or 0: the model's "
                   "own)")
    p.add_argument("--min-confidence", type=float, help="classify_cnn: below it a pixel is unclassified (0-1)")
    p.add_argument("--no-ood-check", dest="ood", action="store_false", default=None,
                   help="classify_cnn: keep every pixel's best class, even where the model's out-of-distribution "
                        "check finds it unlike the training spectra")
    p.add_argument("--bad-bands", metavar="TEXT",
                   help="classify_cnn, unmix_fcls, predict_abundance, sam_classify: bands to keep or drop "
                        "besides those found in each scene, e.g. 'keep 381-401 nm; drop 2450-2510 nm; drop bands "
                        "1-5', or 'off' "
                        "(the ENVI bbl only); default: automatic")
    p.add_argument("--wavelengths", type=_floats, help="band centres in nm when the rasters carry none")
    p.add_argument("--scale", type=float, help="reflectance divisor (10000 for 0-10000 integers)")
    p.add_argument("--nodata", type=float, help="an extra nodata value")
    return p


def job_from_args(args, feedback=None):
    options = {"spectra": args.spectra, "mode": args.mode, "level": args.level, "threshold": args.threshold,
               "min_confidence": args.min_confidence, "wavelengths": args.wavelengths, "scale": args.scale,
               "nodata": args.nodata, "bad_bands": args.bad_bands, "ood": args.ood, "method": args.method,
               "max_score": args.max_score, "indices": args.indices, "band_map": args.band_map,
               "cloud_mask": args.cloud_mask}
    inputs = core_batch.expand_inputs(args.inputs, args.list, feedback=feedback)   # its notes of files left out
    return core_batch.BatchJob(args.algorithm, args.model, inputs, args.out,
                               {k: v for k, v in options.items() if v is not None}, resume=args.resume,
                               overwrite=args.overwrite, rows_per_part=args.rows_per_part,
                               memory_mb=args.memory_mb, threads=args.threads, ship_model=args.ship_model)


#: core parameter keys of errors -> the option the user typed
FLAGS = {"model": "--model", "library": "--model", "out_dir": "--out", "inputs": "the inputs", "list": "--list",
         "ood": "--no-ood-check", "cloud_mask": "--no-cloud-mask", "raster": "the scene"}


def flag(parameter):
    """The command-line option of a core error's parameter (``min_confidence`` -> ``--min-confidence``)."""
    if not parameter:
        return None
    return FLAGS.get(parameter, "--" + str(parameter).replace("_", "-"))


def say(exc):
    where = flag(getattr(exc, "parameter", None))
    print(f"oremap-batch: {where + ': ' if where else ''}{exc}", file=sys.stderr)


def main(argv=None):
    args = parser().parse_intermixed_args(argv)
    feedback = PrintFeedback()
    try:
        job = job_from_args(args, feedback)
        core_batch.plan(job, feedback, flag)   # bad arguments (model, options, scenes) fail before a cluster starts
        client, cluster = core_batch.start_cluster(args.scheduler, args.workers or None,
                                                   packages=core_batch.ALGORITHMS[job.algorithm].requires)
    except OreMapError as exc:
        say(exc)
        return 2
    try:
        def progress(done, total):
            print(f"progress {done}/{total} tasks", file=sys.stderr, flush=True)

        report = core_batch.run_batch(job, client, feedback, progress)
    except (OreMapError, Cancelled) as exc:
        say(exc)
        return 2
    except KeyboardInterrupt:   # Ctrl+C: the scenes not finished were removed; no traceback for a user's stop
        print("oremap-batch: interrupted. Finished scenes keep their outputs; run again with --resume to "
              "continue.", file=sys.stderr)
        return 130
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(report.to_json())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
