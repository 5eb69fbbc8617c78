#!/usr/bin/env python3
"""Accuracy of the spectral CNN's training settings on labelled AVIRIS pixels, grouped by source sample.

A re-runnable experiment (not a timed test) for issue 14, point 4: the reporters measure
``oremap:train_spectral_cnn`` with default settings on 1,051 labelled AVIRIS pixels of 12 minerals
(5-fold stratified). Their pixels stay outside the project, so this builds the closest benchmark the
shared real data allow:

* **minerals**: USGS splib07a spectra convolved to AVIRIS-1995 (``s07_AV95_envi.sli``) of 12 alteration
  minerals; every physical sample (:func:`core.hyperspectral.training.sample_id`: the BECK, ASD and NIC
  measurements of one sample) is one group;
* **pixels**: each labelled pixel is ``s * (a * mineral + (1 - a) * background) + noise`` with a mineral
  spectrum of its class, a real background pixel (Jasper Ridge AVIRIS scene, 10,000 pixels, and both
  AVIRIS-NG tiles resampled to AVIRIS-1995 channels), mineral fraction ``a ~ U(0.5, 1)``, illumination
  ``s ~ U(0.75, 1.15)`` and Gaussian noise of SNR ``U(50, 200)`` (linear, on the pixel's mean), on the 198
  channels Jasper Ridge keeps (water-vapour and edge channels left out, as a scene's bad bands are);
  1,051 pixels, the classes about equal, each class's pixels spread over its samples;
* **protocols**: ``grouped`` (the default): 5 folds by physical sample, each class's samples dealt round the
  folds (:func:`folds_of`), so no sample is on both sides and every class is in every fold's training (stricter
  than the reporters'); ``stratified``: the reporters'
  5-fold :class:`sklearn.model_selection.StratifiedKFold`, pixels of one sample on both sides; each fold trains :func:`core.hyperspectral.cnn_training.train_and_report` as
  ``oremap:train_spectral_cnn`` does for labelled points (each point its own group inside), saves the
  model and classifies the test pixels through the saved ONNX model as ``oremap:classify_spectral_cnn``
  does (the argmax; "with OOD" counts pixels the out-of-distribution check leaves unclassified as wrong;
"rejected" is the share of test pixels, all of trained classes, that the check leaves unclassified).

Usage: ``OMP_NUM_THREADS=1 python bench/experiment_cnn_accuracy.py [--protocol grouped|stratified|both]
[--draw N] [config ...]`` (no config: all configs below). Prints overall accuracy mean +- sd over the folds and the
training time per fold.
"""

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

SHARED = os.environ.get("OREMAP_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
HS = os.path.join(SHARED, "hyperspectral")
N_PIXELS = 1051
CLASSES = {
    "Alunite": ["Alunite"], "Chlorite": ["Chlorite"], "Epidote": ["Epidote"], "Goethite": ["Goethite"],
    "Gypsum": ["Gypsum"], "Halloysite": ["Halloysite"], "Hematite": ["Hematite"], "Jarosite": ["Jarosite"],
    "Kaolinite": ["Kaolinite"], "Montmorillonite": ["Montmorillonite"], "Muscovite-Illite": ["Muscovite", "Illite"],
    "Pyrophyllite": ["Pyrophyllite"],
}
CLASS_NAMES = list(CLASSES)

#: Training settings compared: keyword arguments of train_and_report on top of the defaults before this
#: experiment (brightness normalisation, no augmentation of labelled pixels, refit, one network; see run_config).
#: The defaults it chose are "continuum_removal+augment5" ("current"). Two keys are the experiment's own:
#: ``ood_pixel_margin`` (the angle views' margin for pixel training sets, ``ood.pixel_margin``) and ``sample_groups``
#: (each pixel's physical sample given as its group, as polygons are, instead of each pixel its own group).
CONFIGS = {
    # train_spectral_cnn's defaults for labelled pixels
    "current": {"preprocessing": "continuum_removal", "augment_copies": 5, "feature_check": True},
    # the defaults before the feature view (angle views only, pixel margin 1.25)
    "current_angles_only": {"preprocessing": "continuum_removal", "augment_copies": 5, "feature_check": False},
    # outlier exposure with the bundled model's outlier materials (OUTLIERS of scripts/build_models.py, none of them
    # one of the 12 classes, nor in UNSEEN or DEV): OUTLIER_LIBRARIES of train_spectral_cnn
    "current_outliers": {"preprocessing": "continuum_removal", "augment_copies": 5, "outliers": True},
    "current_margin1.5": {"preprocessing": "continuum_removal", "augment_copies": 5, "ood_pixel_margin": 1.5},
    "current_margin1": {"preprocessing": "continuum_removal", "augment_copies": 5, "ood_pixel_margin": 1.0},
    # each physical sample given as the pixels' group (as polygons are): held-out groups are whole samples, no margin
    "current_sample_groups": {"preprocessing": "continuum_removal", "augment_copies": 5, "sample_groups": True},
    "current_sample_groups_feature": {"preprocessing": "continuum_removal", "augment_copies": 5, "sample_groups": True,
                                      "feature_check": True},
    "current_sample_groups_per_view": {"preprocessing": "continuum_removal", "augment_copies": 5,
                                       "sample_groups": True, "ood_joint": False},
    # on the honest grouped protocol (0.2.6): more copies per pixel, or a seed ensemble, on top of the defaults
    "current_augment10": {"preprocessing": "continuum_removal", "augment_copies": 10, "feature_check": True},
    "current_ensemble3": {"preprocessing": "continuum_removal", "augment_copies": 5, "feature_check": True,
                          "ensemble": 3},
    "defaults": {},
    "no_refit": {"refit": False},
    "augment5": {"augment_copies": 5},
    "continuum_removal": {"preprocessing": "continuum_removal"},
    "ensemble3": {"ensemble": 3},
    "ensemble5": {"ensemble": 5},
    "label_smoothing0.1": {"label_smoothing": 0.1},
    "continuum_removal+ensemble3": {"preprocessing": "continuum_removal", "ensemble": 3},
    "continuum_removal+augment5": {"preprocessing": "continuum_removal", "augment_copies": 5},
}


def read_ng_tile(path):
    """An AVIRIS-NG 10 x 10 tile: (pixels, bands) reflectance, wavelengths, good-band mask."""
    from core.hyperspectral.spectral_library import parse_envi_header

    header = parse_envi_header(path[:-4] + ".hdr")
    wl = np.array([float(v) for v in header["wavelength"]])
    bbl = np.array([float(v) for v in header["bbl"]]) > 0
    cube = np.fromfile(path, dtype="<f4").reshape(int(header["lines"]), int(header["samples"]), wl.size)
    return cube.reshape(-1, wl.size).astype(np.float64), wl, bbl


def backgrounds(wavelengths):
    """Real background pixels at the library's AVIRIS-1995 channels: Jasper Ridge and the AVIRIS-NG tiles."""
    import scipy.io

    from core.hyperspectral import sensor_presets

    jr = scipy.io.loadmat(os.path.join(HS, "jasperRidge2_R198.mat"))
    keep = jr["SlectBands"].ravel().astype(int) - 1  # 1-based AVIRIS channel numbers, in channel order
    Y = jr["Y"].astype(np.float64).T / 10000.0  # (10000, 198) reflectance
    full = np.full((Y.shape[0], wavelengths.size), np.nan)
    # the library's channels are sorted by wavelength; AVIRIS's channel order differs where its spectrometers
    # overlap, so each kept channel goes to the position of its own centre
    channel_centres = sensor_presets.preset("AVIRIS-Classic").centers[keep]
    full[:, np.abs(np.asarray(wavelengths)[None, :] - channel_centres[:, None]).argmin(axis=1)] = Y
    pools = [full]
    for name in sorted(os.listdir(HS)):
        if name.startswith("ang") and name.endswith(".img"):
            X, wl, good = read_ng_tile(os.path.join(HS, name))
            good &= (X > -1).all(axis=0) & (X < 2).all(axis=0)
            pools.append(np.array([np.interp(wavelengths, wl[good], x[good]) for x in X]))
    return np.vstack(pools), keep


def mineral_spectra(lib, channels):
    """Library spectra of the classes on ``channels``: X, class index, group (physical sample) id."""
    from core.hyperspectral import training

    X, y, groups, ids = [], [], [], {}
    names = list(CLASSES)
    for name, spectrum in zip(lib.names, lib.spectra):
        first = training.class_from_name(name)
        cls = next((i for i, c in enumerate(names) if first in CLASSES[c]), None)
        s = spectrum[channels]
        if cls is None or not np.isfinite(s).all() or s.max() <= 0:
            continue
        X.append(s)
        y.append(cls)
        groups.append(ids.setdefault(training.sample_id(name), len(ids)))
    return np.array(X), np.array(y), np.array(groups)


def untrained_spectra(channels):
    """Library spectra (on ``channels``) of the minerals and surfaces outside every class: the bundled model's
    test and development sets (``UNSEEN`` of scripts/build_models.py, ``DEV`` of bench/bench_ood.py), none of
    them among the 12 classes here. For the let-through rate of a pixel-trained model's check."""
    from core.hyperspectral import training
    from core.hyperspectral.spectral_library import read_library

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import build_models
    from bench_ood import DEV

    lib = read_library(os.path.join(HS, "s07_AV95_envi.sli"))
    names = set(build_models.UNSEEN) | set(DEV)
    X = np.array([s[channels] for n, s in zip(lib.names, lib.spectra) if training.class_from_name(n) in names])
    return X[np.isfinite(X).all(axis=1) & (X.max(axis=1) > 0)]


def labelled_pixels(seed=0):
    """The benchmark: (X, y, groups, class names, wavelengths)."""
    from core.hyperspectral.spectral_library import read_library

    lib = read_library(os.path.join(HS, "s07_AV95_envi.sli"))
    wl_all = np.asarray(lib.wavelengths, dtype=np.float64)
    bg, channels = backgrounds(wl_all)
    bg = bg[:, channels]
    bg = bg[np.isfinite(bg).all(axis=1)]
    S, sy, sg = mineral_spectra(lib, channels)
    rng = np.random.default_rng(seed)
    n_classes = len(CLASSES)
    per_class = np.full(n_classes, N_PIXELS // n_classes)
    per_class[: N_PIXELS - per_class.sum()] += 1
    X, y, g = [], [], []
    for c in range(n_classes):
        samples = np.unique(sg[sy == c])
        for i in range(per_class[c]):
            group = samples[i % samples.size]  # spread over the samples
            rows = np.flatnonzero(sg == group)
            m = S[rng.choice(rows)]
            a = rng.uniform(0.5, 1.0)
            b = bg[rng.integers(bg.shape[0])]
            x = rng.uniform(0.75, 1.15) * (a * m + (1 - a) * b)
            x = x + x.mean() / rng.uniform(50, 200) * rng.standard_normal(x.size)
            X.append(x)
            y.append(c)
            g.append(group)
    return np.array(X), np.array(y), np.array(g), list(CLASSES), wl_all[channels], untrained_spectra(channels)


PROTOCOLS = ("grouped", "stratified")


def folds_of(protocol, X, y, groups, n_folds=5, seed=0):
    """(train, test) index pairs of ``protocol``: ``grouped`` keeps each physical sample on one side,
    ``stratified`` (the reporters') splits pixels by class only."""
    from sklearn.model_selection import StratifiedKFold

    if protocol == "grouped":
        # each class's physical samples dealt round the folds in random order from a random fold, so a class with
        # fewer samples than folds is missing from some test parts, never from a training part (two samples
        # suffice); sklearn's StratifiedGroupKFold balances class shares instead and can put both samples of a
        # two-sample class in one test part
        rng = np.random.default_rng(seed)
        fold_of = {}
        for c in np.unique(y):
            samples = rng.permutation(np.unique(groups[y == c]))
            if samples.size < 2:
                raise SystemExit(f"grouped protocol: {CLASS_NAMES[c]} has one physical sample; it cannot be both "
                                 "trained and tested. Use --protocol stratified.")
            start = rng.integers(n_folds)
            fold_of.update({s: (start + i) % n_folds for i, s in enumerate(samples)})
        fold = np.array([fold_of[s] for s in groups])
        return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]
    if protocol == "stratified":
        return list(StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(X, y))
    raise ValueError(f"unknown protocol {protocol!r}: one of {PROTOCOLS}")


def run_config(data, options, n_folds=5, seed=0, verbose=False, protocol="grouped"):
    """k-fold accuracy of one setting under ``protocol`` (:func:`folds_of`): dict of per-fold lists."""

    from core.engine.feedback import Feedback, PrintFeedback
    from core.engine.model_format import OnnxModel
    from core.engine.wavelengths import BandInfo
    from core.hyperspectral import cnn_training, ood, spectral_cnn
    from core.hyperspectral.training import TrainingSet

    X, y, groups, names, wl, novel = data
    settings = dict(preprocessing="brightness", augment_copies=0, snr=100.0, epochs=150, batch_size=256,
                    learning_rate=1e-3, patience=15, val_fraction=0.25, seed=42, refit=True)
    settings.update(options)
    margins = ood.PIXEL_MARGIN, ood.PIXEL_MARGIN_ANGLES_ONLY
    if "ood_pixel_margin" in settings:  # the angle views' margin for pixel training sets
        ood.PIXEL_MARGIN = ood.PIXEL_MARGIN_ANGLES_ONLY = settings.pop("ood_pixel_margin")
    sample_groups = settings.pop("sample_groups", False)
    outliers = None
    if settings.pop("outliers", False):  # the same for every fold: same bands, same classes
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import build_models

        every = TrainingSet(X=X.astype(np.float32), y=y, groups=groups, class_names=names,
                            band_info=BandInfo(centers=wl, fwhm=None, bad=None))
        outliers = build_models.outlier_set(every, Feedback())
    out = {"acc": [], "acc_ood": [], "rejected": [], "let_through": [], "seconds": [], "epochs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (tr, te) in enumerate(folds_of(protocol, X, y, groups, n_folds, seed)):
            inner = groups[tr] if sample_groups else np.arange(tr.size)
            data_k = TrainingSet(X=X[tr].astype(np.float32), y=y[tr], groups=inner, class_names=names,
                                 band_info=BandInfo(centers=wl, fwhm=None, bad=None))
            path = os.path.join(tmp, f"fold{k}.onnx")
            t = time.perf_counter()
            summary = cnn_training.train_and_report(data_k, path, None, feedback=PrintFeedback() if verbose
                                                    else Feedback(), outliers=outliers, **settings)
            out["seconds"].append(time.perf_counter() - t)
            model = OnnxModel(path, threads=1)
            probs, angles = spectral_cnn.predict_proba(model, X[te], with_angle=True)
            pred = probs.argmax(axis=1)
            far = ood.out_of_distribution(model.info, angles, pred)
            out["acc"].append(float((pred == y[te]).mean()))
            out["acc_ood"].append(float(((pred == y[te]) & ~far).mean()))
            out["rejected"].append(float(far.mean()))
            probs, angles = spectral_cnn.predict_proba(model, novel, with_angle=True)
            kept = ~ood.out_of_distribution(model.info, angles, probs.argmax(axis=1))
            out["let_through"].append(float((kept & (probs.max(axis=1) >= 0.5)).mean()))
            out["epochs"].append(summary["info"].training["metrics"]["best_epoch"])
    ood.PIXEL_MARGIN, ood.PIXEL_MARGIN_ANGLES_ONLY = margins
    return out


def main(args):
    protocols, draw = list(PROTOCOLS)[:1], 0
    while args[:1] in (["--protocol"], ["--draw"]):
        if args[0] == "--protocol":
            protocols = list(PROTOCOLS) if args[1] == "both" else [args[1]]
        else:  # another draw of the benchmark's pixels and folds, for a check of choices made on draw 0
            draw = int(args[1])
        args = args[2:]
    data = labelled_pixels(draw)
    X, y, groups = data[:3]
    print(f"{X.shape[0]} pixels, {len(data[3])} classes, {np.unique(groups).size} physical samples, "
          f"{X.shape[1]} channels; 5-fold {' and '.join(protocols)}")
    for name, protocol in [(n, p) for n in args or list(CONFIGS) for p in protocols]:
        r = run_config(data, CONFIGS[name], protocol=protocol, seed=draw)
        acc, acc_ood, rej = np.array(r["acc"]), np.array(r["acc_ood"]), np.array(r["rejected"])
        print(f"{name:20s} {protocol:10s} accuracy {100 * acc.mean():5.1f} +- {100 * acc.std(ddof=1):4.1f} %  "
              f"with OOD {100 * acc_ood.mean():5.1f} +- {100 * acc_ood.std(ddof=1):4.1f} %  "
              f"rejected {100 * rej.mean():4.1f} %  untrained let through {100 * np.mean(r['let_through']):4.1f} % "
              f"of {data[5].shape[0]}  "
              f"folds {' '.join(f'{100 * a:.1f}' for a in acc)} (with OOD {' '.join(f'{100 * a:.1f}' for a in acc_ood)})  "
              f"{np.mean(r['seconds']):.0f} s/fold, best epochs {r['epochs']}", flush=True)

if __name__ == "__main__":
    main(sys.argv[1:])
