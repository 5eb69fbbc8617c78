"""Training aids of the mine U-Net for few real labels: photometric augmentation (brightness and haze),
a class-imbalance weight for mine pixels, and initial weights from a user's file.

* Brightness: each tile's bands times one gain drawn from ``gain`` (sun angle, calibration, season).
* Haze: with probability ``haze_p``, an additive path radiance falling with wavelength as
  ``h * (490 / lambda) ** 2`` (Rayleigh-like scattering, strongest in the blue; the Sentinel-2 band
  centres of :data:`core.sentinel2.sentinel2.S2_CENTERS`), ``h`` drawn up to ``haze_max`` reflectance at
  490 nm. Indices are computed again from the changed bands, so they stay consistent with them.
* Imbalance: the BCE weight of mine pixels, background / mine pixels of the training tiles, capped.
* Initial weights: a torch state dict (``.pt``) of a U-Net of the same depth, width and channels,
  e.g. saved from an earlier OreMap run (:meth:`SegmentationResult.save_weights`), loaded before
  training (no download ever).
"""

import os

import numpy as np

from ..engine.errors import OreMapError
from .sentinel2 import S2_CENTERS, compute_indices

#: Augmentations of the U-Net: ``geometric`` (flips and 90 degree turns, the default) or ``photometric``
#: (those plus brightness and haze).
AUGMENTATIONS = ("geometric", "photometric")


def photometric(x, bands, indices, rng, gain=(0.85, 1.15), haze_max=0.03, haze_p=0.5):
    """Brightness and haze on raw feature tiles ``(n, C, t, t)`` (bands, then indices); NaN stays NaN."""
    x = np.array(x, dtype=np.float32, copy=True)
    nb = len(bands)
    n = x.shape[0]
    g = rng.uniform(gain[0], gain[1], size=n).astype(np.float32)
    hazy = rng.random(n) < haze_p
    h = np.where(hazy, rng.uniform(0.0, haze_max, size=n), 0.0).astype(np.float32)
    shape = (490.0 / np.array([S2_CENTERS[b] for b in bands], dtype=np.float32)) ** 2
    x[:, :nb] = x[:, :nb] * g[:, None, None, None] + h[:, None, None, None] * shape[None, :, None, None]
    if indices:
        pixels = np.moveaxis(x[:, :nb], 1, -1).reshape(-1, nb)
        values = compute_indices(pixels, bands, indices)[0]
        x[:, nb:] = np.moveaxis(values.reshape(n, x.shape[2], x.shape[3], len(indices)), -1, 1)
    return x


def mine_pixel_weight(Y, V, index, cap=20.0):
    """BCE weight of mine pixels: background / mine valid pixels of the tiles ``index``, between 1 and ``cap``."""
    mine = float(sum(int((Y[k] > 0)[V[k]].sum()) for k in index))
    total = float(sum(int(V[k].sum()) for k in index))
    if mine <= 0:
        return 1.0
    return float(np.clip((total - mine) / mine, 1.0, cap))


def load_init_weights(torch, net, path):
    """Load a state dict file into ``net`` (every tensor must match by name and shape); returns the count."""
    if not path or not os.path.isfile(str(path)):
        raise OreMapError(f"The weights file '{path}' does not exist.", "init_weights",
                          "Choose a .pt file saved by an earlier training of the same architecture.")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise OreMapError(f"Cannot read the weights file '{path}': {exc}.", "init_weights",
                          "Give a torch state dict (.pt) of a U-Net.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = (f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "") + \
            ("; " if missing and wrong else "") + \
            (f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} instead of "
             f"{tuple(own[wrong[0]].shape)})" if wrong else "")
        raise OreMapError(f"The weights in '{os.path.basename(str(path))}' do not fit this U-Net: {what}.",
                          "init_weights", "Use the same bands, indices, depth and width as the run that saved them.")
    net.load_state_dict({k: state[k] for k in own})
    return len(own)
