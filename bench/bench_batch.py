#!/usr/bin/env python3
"""Scaling of batch runs on Dask: the same scenes on 1 and 2 local workers, and what a year of EMIT needs.

Four synthetic AVIRIS-like scenes (224 bands, 0-10000 integers, mixtures of real USGS spectra as in
bench_cnn.py) of 500 x 512 pixels are classified with the bundled spectral CNN by ``core.scaleout.batch`` on a
``LocalCluster`` of 1, then 2 worker processes (one thread each; each scene cut into row ranges of
256 rows, so 8 row-range tasks and 4 stitching tasks), after a single-process run of the same scenes
(``batch.run_scene``, no Dask) for the overhead. Printed: wall time, pixels per second, the speed-up of 2
workers over 1 (ideal 2.0 on 2 free cores), and the measured cost per pixel of one core.

On paper, from that cost: one year of EMIT L2A reflectance scenes. Assumptions (stated, not measured):
a scene is 1242 x 1280 pixels with 285 bands; the cost per pixel grows with the bands read
(x 285/224; the network itself runs on the model's own 10 nm grid, the same for both); 40,000 scenes a
year (about 110 a day from the ISS); a node has 32 cores. Result: core-hours for the year, hours on 100
nodes, and the throughput the cluster must sustain to keep up (one day's scenes per day) or to redo the
year in one day.
"""

import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES, WIDTH, HEIGHT = 4, 500, 512
EMIT = dict(width=1242, height=1280, bands=285, scenes_per_year=40_000, nodes=100, cores_per_node=32)


def make_scenes(folder):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    sys.path.insert(0, ROOT)
    from bench_cnn import make_cube

    paths = []
    for i in range(SCENES):
        path = os.path.join(folder, f"scene{i}.tif")
        make_cube(path, WIDTH, HEIGHT)
        paths.append(path)
    return paths


def run_cluster(job, n_workers):
    from distributed import Client, LocalCluster

    from oremap.core.scaleout import batch

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    batch.prepare_client(client)
    client.run(lambda: None)   # workers up before the clock starts
    try:
        t = time.perf_counter()
        report = batch.run_batch(job, client)
        return time.perf_counter() - t, report
    finally:
        client.close()
        cluster.close()


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("GDAL_CACHEMAX", "64")
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from headless import import_plugin

    import_plugin()
    from oremap.core.scaleout import batch
    from oremap.core.engine.bundled import bundled_models

    model = bundled_models("spectral_classification")[0][1]
    folder = tempfile.mkdtemp(prefix="oremap-bench-batch-")
    try:
        scenes = make_scenes(folder)
        pixels = SCENES * WIDTH * HEIGHT
        single = os.path.join(folder, "single")
        os.makedirs(single)
        t = time.perf_counter()
        for scene in scenes:
            batch.run_scene("classify_cnn", scene, model, batch.output_paths("classify_cnn", scene, single), threads=1)
        t_single = time.perf_counter() - t
        print(f"{SCENES} scenes of {WIDTH} x {HEIGHT} px x 224 bands, spectral CNN, {pixels} px")
        print(f"single process (no Dask):  {t_single:6.1f} s  {pixels / t_single:8.0f} px/s")
        times = {}
        for n in (1, 2):
            out = os.path.join(folder, f"workers{n}")
            os.makedirs(out)
            job = batch.BatchJob("classify_cnn", model, scenes, out, rows_per_part=256)
            times[n], report = run_cluster(job, n)
            assert len(report.done) == SCENES and not report.failed
            print(f"Dask, {n} worker{'s' if n > 1 else ' '}:         {times[n]:6.1f} s  {pixels / times[n]:8.0f} px/s"
                  f"  ({report.parts} row-range tasks, {report.task_seconds:.1f} s in tasks)")
            if n == 1:
                cost = report.task_seconds / report.pixels   # core-seconds per pixel, inside the tasks
                overhead = 1 - report.task_seconds / times[1]
        print(f"speed-up 2 workers / 1 worker: {times[1] / times[2]:.2f} (ideal 2.00 on 2 free cores); "
              f"time of 1 worker outside its tasks (scheduling, start-up): {100 * overhead:.1f} %")
        print(f"cost per pixel on one core: {cost * 1e6:.1f} us ({1 / cost:.0f} px/s per core)")

        e = EMIT
        emit_cost = cost * e["bands"] / 224
        px_scene = e["width"] * e["height"]
        px_year = px_scene * e["scenes_per_year"]
        core_hours = px_year * emit_cost / 3600
        cores = e["nodes"] * e["cores_per_node"]
        print(f"EMIT on paper: {e['scenes_per_year']} scenes/year x {px_scene / 1e6:.2f} Mpx = {px_year / 1e9:.1f} Gpx; "
              f"{emit_cost * 1e6:.1f} us/px at {e['bands']} bands -> {core_hours:.0f} core-hours, "
              f"{core_hours / cores:.1f} h on {e['nodes']} nodes x {e['cores_per_node']} cores")
        print(f"  keeping up with acquisition needs {px_year / (365 * 86400):.0f} px/s "
              f"({px_year / (365 * 86400) * emit_cost:.2f} cores); the year in one day: {px_year / 86400 / 1e6:.1f} Mpx/s, "
              f"{px_year / 86400 / cores:.0f} px/s per core of the 100 nodes "
              f"(measured: {224 / e['bands'] / cost:.0f})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
