#!/usr/bin/env python3
"""make models: rebuild the bundled models in models/ from the shared real data, reproducibly.

usgs_minerals_cnn.onnx: a 1D CNN mineral classifier trained on the USGS Spectral Library version 7
(splib07a, convolved to AVIRIS-1995) for 16 alteration and gangue minerals, quartz-feldspar background and
vegetation, resampled to
a generic 10 nm grid (430-2440 nm without the water-vapour windows) that AVIRIS, AVIRIS-NG, EnMAP,
PRISMA and EMIT cubes cover; augmented to imitate field spectra. Writes the model, its training report
(models/usgs_minerals_cnn_report.html) and model card (models/usgs_minerals_cnn.md).
"""

import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from core.hyperspectral import cnn_training, training  # noqa: E402
from core.engine.feedback import PrintFeedback  # noqa: E402
from core.engine.model_format import read_model_info  # noqa: E402
from core.hyperspectral.spectral_library import read_library  # noqa: E402
from core.engine.wavelengths import BandInfo  # noqa: E402

SHARED = os.environ.get("OREMAP_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
LIBRARY = os.path.join(SHARED, "hyperspectral", "s07_AV95_envi.sli")
NAME = "usgs_minerals_cnn"

# class -> spectrum-name starts (first words) it takes
CLASSES = {
    "Kaolinite": ["Kaolinite"],
    "Dickite": ["Dickite"],
    "Halloysite": ["Halloysite"],
    "Alunite": ["Alunite"],
    "Jarosite": ["Jarosite"],
    "Gypsum": ["Gypsum"],
    "Muscovite-Illite": ["Muscovite", "Illite"],
    "Montmorillonite": ["Montmorillonite"],
    "Pyrophyllite": ["Pyrophyllite"],
    "Buddingtonite": ["Buddingtonite"],
    "Chlorite": ["Chlorite"],
    "Epidote": ["Epidote"],
    "Calcite": ["Calcite"],
    "Dolomite": ["Dolomite"],
    "Goethite": ["Goethite", "Goethite0.02+Quartz"],
    "Hematite": ["Hematite", "Hematite.02+Quartz.98"],
    "Quartz-Feldspar": ["Quartz", "Sand", "Albite", "Microcline", "Microcline+others", "Orthoclase", "Oligoclase",
                        "Labradorite", "Sanidine+albite"],
    "Vegetation": ["Lawn_Grass", "Grass", "Grass-FescueNeedlg", "Grass-FescueWheatg", "Grass-Smoothbrome",
                   "Oak", "Sagebrush", "Grass_Golden_Dry"],
}
GRID = np.arange(430.0, 2441.0, 10.0)
# The date recorded in the model and its report (SOURCE_DATE_EPOCH, the reproducible-builds convention): with
# the locked package versions, `make models` then rebuilds the ONNX file bit for bit. Move it when the model
# really changes. 2026-12-04 00:00 UTC: the OreMap 0.2.0 build.
BUILD_EPOCH = "1796342400"

SETTINGS = dict(preprocessing="continuum_removal", augment_copies=120, snr=100.0, epochs=80, batch_size=256,
                learning_rate=1e-3, patience=12, val_fraction=0.25, seed=2026,
                # 16/32/32 convolution channels: as accurate here as 16/32/64 and 2.6x faster in onnxruntime
                network={"channels": (16, 32, 32)})


def class_table(path):
    """Write the name -> class table of the library spectra used."""
    lib = read_library(LIBRARY)
    rows = []
    for name in lib.names:
        first = training.class_from_name(name)
        for cls, starts in CLASSES.items():
            if first in starts:
                rows.append((name, cls))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("name,class\n")
        fh.writelines(f'"{n}",{c}\n' for n, c in rows)
    return len(rows)


def built_with():
    """The package versions that made the model: onnx and torch change exported graphs between releases."""
    from importlib.metadata import version
    import platform
    names = ["torch", "onnx", "onnxruntime", "numpy", "scikit-learn", "scipy"]
    return ", ".join(f"{n} {version(n)}" for n in names) + f", Python {platform.python_version()}"


def model_card(info, summary, path):
    m = info.training.get("metrics", {})
    ood = info.training.get("ood") or {}
    thresholds = "\n".join(f"| {c['name']} | {a:.3f} |" for c, a in zip(info.classes, ood.get("max_angle", [])))
    classes = "\n".join(f"| {c['name']} | `{c['color']}` | {n} |" for c, n in
                        zip(info.classes, summary["counts"].values()))
    text = f"""# Model card: {NAME}

**Task**: per-pixel mineral classification of VNIR-SWIR reflectance (1D CNN over the spectrum, after
DeepGeoMap). **File**: `{NAME}.onnx` (OreMap model format, schema {info.schema_version}); training report:
`{NAME}_report.html`. Rebuild with `make models` (deterministic: seed {SETTINGS['seed']}).
**Built with** OreMap {info.oremap_version}, {built_with()} (the versions of `requirements.lock` and Debian 12);
`make models` with these versions rebuilds the ONNX file bit for bit (its date is fixed by `SOURCE_DATE_EPOCH`).

## Classes
| class | colour | library spectra |
|---|---|---|
{classes}

## Training data
USGS Spectral Library version 7 (splib07a) convolved to AVIRIS-1995 (Kokaly et al. 2017, USGS Data Series
1035; public domain): {summary['n_spectra']} laboratory and field spectra of the classes above (Muscovite and
Illite merged as white mica; quartz, sand and feldspars as a background class for featureless bright
surfaces; the library's goethite- and hematite-quartz mixtures with their iron oxide; vegetation from grass,
oak and sagebrush spectra), resampled to
{len(info.wavelengths)} bands on a 10 nm grid from {info.wavelengths[0]:.0f} to {info.wavelengths[-1]:.0f} nm
without the water-vapour windows (1330-1460, 1760-1970 nm). Each spectrum was augmented into
{SETTINGS['augment_copies']} field-like copies: brightness 0.6-1.3, illumination slope, Gaussian noise around
SNR {SETTINGS['snr']:g}:1, linear mixing with up to 30 % of another class, shade up to 50 %.
Network: three convolution blocks (16, 32 and 32 channels, kernels 7/5/3, batch normalisation, max pooling),
a 64-unit dense layer with dropout and a softmax over the classes. Preprocessing: continuum removal (each spectrum divided by its upper convex hull), so the network looks at
absorption features rather than overall brightness and slope, which atmospheric correction, shade and
mixing change most.

## Validation
Grouped by physical sample: about 25 % of each class's samples held out with all their measurements (a
sample measured by several spectrometers is one group), and augmented the same way.
Overall accuracy {m.get('val_accuracy', float('nan')):.3f}, kappa
{m.get('val_kappa', float('nan')):.3f}, macro F1 {m.get('val_macro_f1', float('nan')):.3f} on
{m.get('n_validation', 0)} held-out augmented spectra; Spectral Angle Mapper (class mean spectra) on the same
data: {m.get('sam_val_accuracy', float('nan')):.3f}. Early stopping chose epoch {m.get('best_epoch')}; the saved
network was then trained again on all {m.get('refit_samples', 0)} augmented spectra (held-out samples included)
for that many epochs, so these figures describe the procedure, measured before the refit.

## Out-of-distribution check (abstain rather than be confidently wrong)
Each class keeps exemplars (the mean continuum-removed spectrum of each of its physical samples, at most
40) and a threshold: {ood.get('margin')} x the {100 * ood.get('quantile', 0):g}th percentile of the spectral
angles between its augmented training spectra and their nearest exemplar of the class. A pixel whose angle to
the nearest exemplar of the class the network gives it exceeds that class's threshold is left unclassified
(0) by `oremap:classify_spectral_cnn`, however confident the network is. Thresholds (rad):

| class | largest angle |
|---|---|
{thresholds}

On the held-out augmented spectra of the validation, the check rejects
{100 * m.get('val_out_of_distribution', float('nan')):.1f} % of them; the accuracy on the spectra it accepts is
{m.get('val_accuracy_in_distribution', float('nan')):.3f}.

## Brightness scale
Continuum removal divides each spectrum by its own hull, so any positive scale factor (reflectance x 10000,
0-1 scaled reflectance, shade, radiance-like magnitudes) gives the network the same input and the same class;
an additive offset does not. Integer rasters without scale metadata are read as reflectance x 10000.

## Intended use
Imaging spectrometer reflectance (AVIRIS, AVIRIS-NG, EnMAP, PRISMA, EMIT, laboratory and mine-face scanners)
covering {info.wavelengths[0]:.0f}-{info.wavelengths[-1]:.0f} nm with wavelength metadata; OreMap resamples the
image to the model's bands. Use `oremap:classify_spectral_cnn` with a minimum confidence (e.g. 0.5) so that
pixels unlike any class stay unclassified.

## Known limits
- Trained on laboratory spectra of nearly pure minerals: real pixels are mixtures with other minerals,
  vegetation and shade; augmentation imitates this only in part. Validate against field data before
  relying on a map.
- Classes outside the list (e.g. opal, carbonates other than calcite and dolomite, water, snow, man-made
  surfaces) are forced into the nearest class unless the out-of-distribution check or the confidence
  threshold removes them; the check catches spectra unlike every sample of their class, not those close to
  one (a mineral of a similar family can pass). Measured on 223 USGS spectra of 20 minerals and surfaces
  outside its classes (`test/test_bundled_transfer.py`): the check leaves 32 % unclassified (olivine and
  snow nearly all, siderite most; vermiculite, serpentine, chalcopyrite seldom) and 65 % stay in a class
  with confidence >= 0.5, against 94 % without it.
- No sulphide class: chalcopyrite and pyrite are dark and nearly featureless between 400 and 2500 nm, and an
  early version of this model with a chalcopyrite class put most pixels of a sedimentary AVIRIS-NG scene into
  it with high confidence. Map sulphides through their alteration halo (e.g. jarosite, alunite, white mica).
- On the first bundled AVIRIS-NG sample tile (no ground truth) it finds mostly quartz-feldspar background and
  goethite, and leaves 27 of the 100 pixels unclassified through the out-of-distribution check (the version
  without the check put 15 of them into jarosite and 4 into buddingtonite, which nobody has confirmed); treat
  rare-class pixels with caution until field data confirm them.
- Kaolinite, dickite and halloysite, and muscovite and illite, differ in subtle features; their confusion is
  expected at low signal-to-noise.
- Iron oxides are recognised from broad VNIR features, which atmospheric correction errors distort.
- Only as good as the atmospheric correction and the wavelength calibration of the image.
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main():
    os.environ.setdefault("SOURCE_DATE_EPOCH", BUILD_EPOCH)
    if not os.path.exists(LIBRARY):
        sys.exit(f"The USGS library is missing: {LIBRARY} (set OREMAP_SHARED_DATA to the shared data folder).")
    models = os.path.join(ROOT, "models")
    os.makedirs(models, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        table = os.path.join(tmp, "classes.csv")
        class_table(table)
        target = BandInfo(centers=GRID, fwhm=np.full(GRID.size, 10.0), bad=None)
        data = training.library_training_set([LIBRARY], target, class_table=table, classes=list(CLASSES),
                                             exclude_water=True, feedback=PrintFeedback())
    print(f"{data.X.shape[0]} spectra, {data.band_info.n_bands} bands: {json.dumps(data.counts())}")
    model_path = os.path.join(models, f"{NAME}.onnx")
    summary = cnn_training.train_and_report(
        data, model_path, os.path.join(models, f"{NAME}_report.html"),
        description="USGS minerals (splib07), 1D CNN, 430-2440 nm", feedback=PrintFeedback(), **SETTINGS)
    info = read_model_info(model_path)
    model_card(info, {"counts": data.counts(), "n_spectra": data.X.shape[0]}, os.path.join(models, f"{NAME}.md"))
    print(f"CNN validation accuracy {summary['cnn']['overall_accuracy']:.4f}, SAM {summary['sam']['overall_accuracy']:.4f}")


if __name__ == "__main__":
    main()
