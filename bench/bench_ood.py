#!/usr/bin/env python3
"""How often the bundled spectral CNN is confidently wrong on minerals it was never trained on.

The protocol behind the "let through" rate of the model card (models/usgs_minerals_cnn.md):

- spectra: every spectrum of the USGS splib07 AVIRIS-1995 library (../shared/data/hyperspectral/s07_AV95_envi.sli)
  whose mineral (first word of its name) is in ``UNSEEN`` of scripts/build_models.py: 20 minerals and surfaces
  outside the model's classes and outside every class's spectrum list; resampled to the model's bands, spectra
  that do not cover them left out;
- "let through": the out-of-distribution check keeps the spectrum and the highest probability is >= 0.5
  (a confident wrong class); "without the check": the highest probability alone;
- a second, development set (``DEV`` below: 27 other minerals and surfaces of the library outside the classes),
  which was used to choose between candidate checks, so that the UNSEEN figures stay an honest test.

The held-out figures (trained minerals wrongly rejected) come from the build itself (grouped validation split of
`make models`) and are read from the model's metadata.

Usage: python bench/bench_ood.py [model.onnx]   (default: the bundled model)
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import build_models  # noqa: E402
from core.engine.model_format import read_model_info  # noqa: E402

DEV = ["Phlogopite", "Diopside", "Hypersthene", "Almandine", "Andradite", "Gibbsite", "Sepiolite", "Natrolite",
       "Stilbite", "Ulexite", "Magnetite", "Galena", "Malachite", "Lizardite", "Beryl", "Richterite", "Diaspore",
       "Wollastonite", "Plastic_HDPE", "Brick", "Biotite", "Zoisite", "Axinite", "Glaucophane", "Magnesite+Hydromag",
       "Corundum", "Chrysocolla"]


def show(title, figures):
    print(f"{title}: {figures['n_spectra']} spectra of {len(figures['per_mineral'])} minerals")
    print(f"  confident (>= {figures['min_confidence']}) without the check: {100 * figures['confident_without_check']:.1f} %")
    print(f"  rejected by the check:                 {100 * figures['rejected']:.1f} %")
    print(f"  let through (kept and confident):      {100 * figures['let_through']:.1f} %")
    for mineral, (n, share) in sorted(figures["per_mineral"].items(), key=lambda kv: -kv[1][1]):
        print(f"    {mineral:<20} {n:3d} spectra, {100 * share:5.1f} % let through")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", f"{build_models.NAME}.onnx")
    if not os.path.exists(build_models.LIBRARY):
        sys.exit(f"The USGS library is missing: {build_models.LIBRARY} (set OREMAP_SHARED_DATA).")
    assert not set(build_models.UNSEEN) & set(DEV)
    metrics = read_model_info(path).training.get("metrics", {})
    print(f"Model {path}")
    for key, label in (("val_accuracy", "held-out augmented spectra: accuracy"),
                       ("val_out_of_distribution", "held-out augmented spectra: rejected by the check"),
                       ("val_accuracy_in_distribution", "held-out augmented spectra: accuracy of those kept"),
                       ("val_source_out_of_distribution", "held-out library spectra: rejected by the check")):
        if metrics.get(key) is not None:
            print(f"  {label}: {100 * metrics[key]:.1f} %")
    show("Untrained minerals (test set, the card's rate)", build_models.unseen_figures(path))
    show("Untrained minerals (development set)", build_models.unseen_figures(path, DEV))


if __name__ == "__main__":
    main()
