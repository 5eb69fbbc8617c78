"""Summarise the demo outputs as plain text (class shares, mean abundances, fit)."""

import json
import os
import sys

import numpy as np
import rasterio


def class_shares(path):
    """Lines with the share of each class of an OreMap class raster, largest first."""
    with rasterio.open(path) as ds:
        classes = ds.read(1)
        legend = {c["value"]: c["name"] for c in json.loads(ds.tags()["OREMAP_CLASSES"])}
        valid = classes != ds.nodata
    values, counts = np.unique(classes[valid], return_counts=True)
    return [f"  {legend[int(v)]:<34s} {100.0 * c / valid.sum():5.1f} %"
            for v, c in sorted(zip(values, counts), key=lambda t: -t[1])]


def main(out):
    lines = []
    with rasterio.open(os.path.join(out, "sam_angle.tif")) as ds:
        angle = ds.read(1, masked=True)
    lines.append(f"SAM: {angle.count()} pixels, median best angle {np.ma.median(angle):.3f} rad")
    lines += class_shares(os.path.join(out, "sam_classes.tif"))
    for name, title in (("abundances_fcls.tif", "FCLS, strict (sum = 1)"),
                        ("abundances_closed.tif", "Non-negative then closed (scale-invariant)")):
        with rasterio.open(os.path.join(out, name)) as ds:
            data = ds.read(masked=True)
            names = ds.descriptions
        n = sum(1 for label in names if not label.startswith("RMSE"))  # abundance bands, then residual bands
        lines.append(f"{title}: mean abundance per endmember")
        for band, label in zip(data[:n], names[:n]):
            lines.append(f"  {label:<34s} {float(band.mean()):6.3f}")
        total = data[:n].sum(axis=0)
        residuals = "; ".join(f"mean {label} {float(band.mean()):.4f}" for band, label in zip(data[n:], names[n:]))
        lines.append(f"  sum of abundances: min {float(total.min()):.6f}, max {float(total.max()):.6f}; {residuals}")
    with rasterio.open(os.path.join(out, "cnn_confidence.tif")) as ds:
        confidence = ds.read(1, masked=True)
    lines.append(f"Spectral CNN (bundled USGS minerals model, minimum confidence 0.5): median confidence "
                 f"{np.ma.median(confidence):.2f}")
    lines += class_shares(os.path.join(out, "cnn_classes.tif"))
    low = float(np.ma.mean(confidence < 0.5))
    if low > 0.5:
        lines.append(f"  The model abstains on {100 * low:.0f} % of this tile's pixels (confidence below 0.5): their "
                     "spectra are mixtures unlike any of its classes, and it was trained to say so rather than give "
                     "the nearest class (outlier exposure; models/usgs_minerals_cnn.md, Known limits).")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
