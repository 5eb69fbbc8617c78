"""Mine footprints in Sentinel-2 images: a small U-Net trained from scratch on tiles.

Training (:func:`train_mine_segmentation`):

1. The raster (a Sentinel-2 stack or folder, read through :func:`core.sentinel2.sentinel2.open_sentinel2`)
   is cut into a grid of ``tile x tile`` pixel tiles (the last row and column of tiles reach past
   the raster; those pixels are nodata). Mine polygons are rasterised onto each tile's pixels
   (``rasterio.features.rasterize``, a pixel is "mine" when its centre lies inside a polygon,
   ``all_touched=False``).
2. Spatial hold-out: the tile grid is grouped into square blocks of ``block_tiles x block_tiles``
   tiles; about ``val_fraction`` of the blocks holding mines and of those without are held out.
   A tile lies in exactly one block, so held-out tiles never share a pixel with training tiles.
   Every tile holding mine pixels is used; tiles without mines are drawn at random,
   ``negatives_per_positive`` of them per mine tile (per split).
3. Model input: reflectance of the model's bands plus spectral indices
   (:func:`core.sentinel2.sentinel2.compute_indices`), z-scored with means and standard deviations of the
   training tiles' valid pixels (stored in the model and inside the graph), clipped to +/- 8 sd,
   nodata (and undefined indices) set to 0, i.e. the mean.
4. A U-Net (``depth`` poolings, ``width`` channels at the top, doubled at each level) with one
   output logit per pixel, trained with Adam (cosine learning-rate decay) on BCE + soft Dice over
   valid pixels, with random flips and 90 degree rotations. The same seed gives the same model,
   byte for byte.
5. IoU, F1, precision and recall on the held-out tiles' valid pixels (threshold 0.5 unless told)
   are written into the model and an HTML report (learning curves, tile layout, an example tile
   with the reference and predicted outlines).

The ONNX graph maps raw feature tiles ``(n, C, h, w)`` (float32, NaN = nodata; any ``h``, ``w``
that are multiples of ``2 ** depth``) to mine probabilities ``(n, 1, h, w)``. Mapping whole scenes
with blended sliding windows is :func:`core.sentinel2.mine_detection.detect_mines`.

``torch`` is imported only for training.
"""

import hashlib
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..engine import affine_ops, torch_training
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from ..engine.model_format import ModelInfo, write_model
from ..engine.raster import memory_budget_mb
from .segmentation_report import training_report
from .segmentation_network import (INPUT_NAME, OUTPUT_NAME, Z_CLIP, _torch_classes, build_unet, check_architecture,
                                   export_onnx, predict_torch, tile_model)
from .augmentation import AUGMENTATIONS, load_init_weights, mine_pixel_weight, photometric
from .band_sets import resolve_bands, resolve_indices
from .ground_units import pixel_size_m
from .chip_sets import ChipTiles
from .segmentation_data import FeatureReader, TilePlan, load_polygons, plan_tiles, shared_mines_sentence
from .sentinel2 import INDEX_VERSION, InputWarnings
from ..engine.model_format import build_date

#: Task name of the models made here.
TASK = "mine_segmentation"

#: Output classes (the graph gives the probability of the second).
CLASSES = [{"name": "background", "color": "#3b4cc0"}, {"name": "mine", "color": "#d7301f"}]

#: Spectral indices added to the bands by default: the normalised differences (bounded, -1 to 1). The
#: band ratios (iron oxide, ferrous iron, clay) can be asked for; unbounded over dark water and
#: shadow, they made held-out IoU worse on the synthetic scenes of the tests.
DEFAULT_INDICES = ["NDVI", "NDWI", "MNDWI", "BSI", "NBR", "NBR2", "NDMI"]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@dataclass
class SegmentationResult:
    """What :func:`train_mine_segmentation` returns.

    Attributes
    ----------
    onnx_bytes : bytes
        The graph without OreMap metadata (the same for the same data, options and seed).
    info : ModelInfo
    plan : TilePlan
    history : dict
        Per epoch: ``train_loss``, ``val_loss``, ``val_iou``, ``val_f1``. Both losses are BCE + Dice with mine
        pixels unweighted, the mean over batches weighted by their valid pixels: ``train_loss`` over the epoch's
        (augmented) training batches as they were trained, ``val_loss`` over the held-out tiles after the epoch.
        With ``class_weight``, ``train_weighted_loss`` holds the loss optimised (mine pixels weighted), the mean
        over the epoch's batches weighted by their tiles.
    metrics : dict
        ``val_iou``, ``val_f1``, ``val_precision``, ``val_recall``, ``val_pixels``,
        ``val_mine_pixels``, and the same for the training tiles (``train_...``).
    example : dict
        A held-out tile for the report: ``rgb`` (tile, tile, 3) uint8, ``reference`` and
        ``predicted`` masks.
    torch_model : torch.nn.Module
        The export module (eval mode).
    """

    onnx_bytes: bytes
    info: ModelInfo
    plan: TilePlan
    history: dict
    metrics: dict
    example: dict = field(default=None, repr=False)
    torch_model: object = field(default=None, repr=False, compare=False)

    def save(self, path):
        """Write the OreMap model file (atomically); returns the path."""
        return write_model(self.onnx_bytes, self.info, path)

    def save_weights(self, path):
        """Write the U-Net's weights as a torch state dict (.pt), to start another training from them."""
        import io

        import torch

        from ..engine.files import write_atomic

        buffer = io.BytesIO()
        torch.save(self.torch_model.net.state_dict(), buffer)
        write_atomic(path, buffer.getvalue(), parameter="weights")
        return path


def _augment(x, y, v, rng):
    """Random 90 degree rotations and mirror images of ``(n, C, t, t)`` tiles with their labels and masks."""
    n = x.shape[0]
    turns = rng.integers(0, 4, size=n)
    mirror = rng.integers(0, 2, size=n)
    xo, yo, vo = np.empty_like(x), np.empty_like(y), np.empty_like(v)
    for i in range(n):
        a, b, c = x[i], y[i], v[i]
        if mirror[i]:
            a, b, c = a[:, :, ::-1], b[:, ::-1], c[:, ::-1]
        k = int(turns[i])
        xo[i] = np.rot90(a, k, axes=(1, 2))
        yo[i] = np.rot90(b, k)
        vo[i] = np.rot90(c, k)
    return xo, yo, vo


def _loss(torch, logits, target, valid, dice_weight, pos_weight=None):
    """BCE over valid pixels (mine pixels weighted ``pos_weight``) + ``dice_weight`` x (1 - soft Dice) over the
    batch's valid pixels."""
    weights = valid.to(logits.dtype)
    n = weights.sum().clamp_min(1.0)
    pw = None if pos_weight is None else torch.tensor(float(pos_weight), dtype=logits.dtype)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pw)
    bce = (bce * weights).sum() / n
    p = torch.sigmoid(logits) * weights
    t = target * weights
    dice = 1.0 - (2.0 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)
    return bce + dice_weight * dice


def pixel_scores(tp, fp, fn, tn=0):
    """IoU, F1, precision and recall from pixel counts (NaN when undefined)."""
    tp, fp, fn = int(tp), int(fp), int(fn)
    nan = float("nan")
    return {"iou": tp / (tp + fp + fn) if tp + fp + fn else nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else nan,
            "precision": tp / (tp + fp) if tp + fp else nan,
            "recall": tp / (tp + fn) if tp + fn else nan,
            "tp": tp, "fp": fp, "fn": fn, "tn": int(tn)}


def _counts(proba, y, v, threshold):
    pred = proba >= threshold
    truth = y.astype(bool)
    return (int((pred & truth & v).sum()), int((pred & ~truth & v).sum()), int((~pred & truth & v).sum()),
            int((~pred & ~truth & v).sum()))


def _evaluate(module, torch, X, Y, V, index, threshold, dice_weight, batch_size):
    """Loss (mean over batches weighted by valid pixels), pixel counts at ``threshold``, probabilities."""
    if index.size == 0:
        return float("nan"), (0, 0, 0, 0), np.zeros((0,) + Y.shape[1:], np.float32)
    module.eval()
    total, weight = 0.0, 0.0
    counts = np.zeros(4, dtype=np.int64)
    probas = []
    with torch.no_grad():
        for s in range(0, index.size, batch_size):
            idx = index[s:s + batch_size]
            logits = module.logit(torch.from_numpy(X[idx]))
            target = torch.from_numpy(Y[idx].astype(np.float32)[:, None])
            valid = torch.from_numpy(V[idx][:, None])
            w = float(V[idx].sum())
            total += float(_loss(torch, logits, target, valid, dice_weight)) * w
            weight += w
            proba = torch.sigmoid(logits)[:, 0].numpy()
            counts += np.array(_counts(proba, Y[idx], V[idx], threshold))
            probas.append(proba)
    return total / max(weight, 1.0), tuple(int(c) for c in counts), np.concatenate(probas)


def _fit_stats(X, V, index):
    """Per-channel mean and sd over the valid, finite pixels of tiles ``index``."""
    c = X.shape[1]
    total = np.zeros(c)
    total2 = np.zeros(c)
    count = np.zeros(c)
    for k in index:
        vals = X[k][:, V[k]].astype(np.float64)  # (C, n)
        ok = np.isfinite(vals)
        vals = np.where(ok, vals, 0.0)
        total += vals.sum(axis=1)
        total2 += (vals ** 2).sum(axis=1)
        count += ok.sum(axis=1)
    mean = total / np.maximum(count, 1)
    var = np.maximum(total2 / np.maximum(count, 1) - mean ** 2, 0.0)
    sd = np.sqrt(var)
    sd = np.where(sd > 1e-6 * np.maximum(np.abs(mean), 1.0), sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32)


def _data_hash(X, Y, plan):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.nan_to_num(X, nan=-1e30)).tobytes())
    h.update(np.ascontiguousarray(Y).tobytes())
    h.update(plan.rows.tobytes() + plan.cols.tobytes() + "".join(plan.split).encode())
    return h.hexdigest()


def _fit_unet(X, Y, V, plan, mean, sd, n_channels, rgb_cols, hp, feedback):
    """The U-Net of :func:`train_mine_segmentation` trained on the plan's training tiles with the shared loop
    (``hp``: its network and training settings); the history, ONNX bytes, module, pixel counts and example tile."""
    tile, depth, width, epochs, lr = hp["tile"], hp["depth"], hp["width"], hp["epochs"], hp["lr"]
    weight_decay, dice_weight, threshold = hp["weight_decay"], hp["dice_weight"], hp["threshold"]
    seed, threads, batch_size = hp["seed"], hp["threads"], hp["batch_size"]
    torch = _torch_classes()["torch"]
    train_idx, val_idx = plan.train_index, plan.val_index
    rng = np.random.default_rng([int(seed), 13])
    history = {"train_loss": [], "val_loss": [], "val_iou": [], "val_f1": []}
    bs = int(batch_size)
    augment, pos_weight = hp.get("augment") or "geometric", hp.get("pos_weight")
    photo_rng = np.random.default_rng([int(seed), 19])  # its own stream: the geometric draws stay as they were
    with torch_training.seeded(torch, seed, deterministic=True, threads=threads, feedback=feedback):
        net = build_unet(n_channels, depth, width)
        if hp.get("init_weights"):
            n_loaded = load_init_weights(torch, net, hp["init_weights"])
            feedback.info(f"Initial weights: {n_loaded} tensors from {os.path.basename(str(hp['init_weights']))}.")
        module = tile_model(net, mean, sd)
        optimiser = torch.optim.Adam(net.parameters(), lr=float(lr), weight_decay=float(weight_decay))

        tally = {}

        def start_epoch(epoch):
            tally.update(loss=0.0, pixels=0.0)
            if epoch > 0 and plan.stream is not None:  # background tiles beyond the budget: a fresh draw
                plan.stream.refill(X, V, Y)
            for group in optimiser.param_groups:
                group["lr"] = float(lr) * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * epoch / int(epochs))))
            module.train()

        def step(batch):
            idx = np.sort(train_idx[batch])
            x, y, v = _augment(X[idx], Y[idx], V[idx], rng)
            if augment == "photometric":
                x = photometric(x, hp["bands"], hp["indices"], photo_rng)
            optimiser.zero_grad()
            logits = module.logit(torch.from_numpy(x))
            target, valid = torch.from_numpy(y.astype(np.float32)[:, None]), torch.from_numpy(v[:, None])
            loss = _loss(torch, logits, target, valid, float(dice_weight), pos_weight)
            loss.backward()
            optimiser.step()
            # the curve: the held-out loss's definition (mine pixels unweighted; batches weighted by valid pixels),
            # on the logits the step trained on; with pos_weight None that is the loss optimised
            pixels = float(v.sum())
            if pos_weight is None:
                plain = loss.item()
            else:
                with torch.no_grad():
                    plain = _loss(torch, logits.detach(), target, valid, float(dice_weight)).item()
            tally["loss"] += plain * pixels
            tally["pixels"] += pixels
            return loss

        def end_epoch(epoch, train_loss):
            # train_loss: the loss optimised (mine pixels weighted pos_weight with CLASS_WEIGHT); divergence is
            # judged on it, the curve records the unweighted loss, comparable with the held-out one
            if not np.isfinite(train_loss):
                raise OreMapError("Training diverged: the loss is not a number.", "learning_rate",
                                  "Lower the learning rate (e.g. 0.001).")
            val_loss, counts, _ = _evaluate(module, torch, X, Y, V, val_idx, threshold, dice_weight, bs)
            scores = pixel_scores(*counts)
            history["train_loss"].append(tally["loss"] / max(tally["pixels"], 1.0))
            if pos_weight is not None:
                history.setdefault("train_weighted_loss", []).append(train_loss)
            history["val_loss"].append(val_loss)
            history["val_iou"].append(scores["iou"])
            history["val_f1"].append(scores["f1"])

        def log(epoch, train_loss):
            if (epoch + 1) % 5 == 0 or epoch == 0 or epoch + 1 == int(epochs):
                line = f"Epoch {epoch + 1}: training loss {history['train_loss'][-1]:.4f}"
                if pos_weight is not None:
                    line += f" (with mine pixels weighted, as optimised: {train_loss:.4f})"
                if val_idx.size:
                    line += (f", held-out loss {history['val_loss'][-1]:.4f}, IoU {history['val_iou'][-1]:.3f}, "
                             f"F1 {history['val_f1'][-1]:.3f}")
                feedback.info(line)

        torch_training.train_epochs(train_idx.size, bs, epochs, rng, step, feedback, start_epoch=start_epoch,
                                    end_epoch=end_epoch, progress=(30.0, 60.0), log=log)
        module.eval()
        onnx_bytes = export_onnx(module, n_channels, tile)
        feedback.progress(92)
        _, val_counts, val_proba = _evaluate(module, torch, X, Y, V, val_idx, threshold, dice_weight, bs)
        _, train_counts, _ = _evaluate(module, torch, X, Y, V, train_idx, threshold, dice_weight, bs)
        example = _example_tile(X, Y, V, plan, val_idx, val_proba, train_idx, module, threshold, rgb_cols)
    return {"history": history, "onnx_bytes": onnx_bytes, "module": module, "example": example,
            "val_counts": val_counts, "train_counts": train_counts}


def _metrics(val_counts, train_counts, pi):
    """Pixel scores of the held-out and training tiles and the tile counts of the plan (``pi``)."""
    metrics = {}
    for prefix, counts in (("val", val_counts), ("train", train_counts)):
        scores = pixel_scores(*counts)
        for key in ("iou", "f1", "precision", "recall"):
            metrics[f"{prefix}_{key}"] = scores[key]
        metrics[f"{prefix}_pixels"] = int(sum(counts))
        metrics[f"{prefix}_mine_pixels"] = int(counts[0] + counts[2])
        metrics[f"{prefix}_confusion"] = [[counts[3], counts[1]], [counts[2], counts[0]]]
    metrics.update({"n_train_tiles": pi["n_train_tiles"], "n_val_tiles": pi["n_val_tiles"],
                    "n_train_mine_tiles": pi["n_train_mine_tiles"], "n_val_mine_tiles": pi["n_val_mine_tiles"]})
    return metrics


def train_mine_segmentation(raster_path, polygons, model_path=None, report_path=None, bands=None,
                            indices=DEFAULT_INDICES, band_map=None, tile=128, depth=4, width=16, epochs=30,
                            batch_size=8, lr=2e-3, weight_decay=1e-4, dice_weight=1.0, negatives_per_positive=1.0,
                            block_tiles=4, val_fraction=0.25, threshold=0.5, min_valid=0.5, seed=0, memory_mb=None,
                            threads=None, description="", feedback=None, mask_clouds=True, chips=None,
                            augment="geometric", class_weight=False, init_weights=None):
    # Over 100 lines by its docstring (every parameter documented); the code is 81 lines.
    """Train a U-Net on mine polygons over a Sentinel-2 raster and export it (see the module docstring).

    Parameters
    ----------
    raster_path : str
        Sentinel-2 raster or folder of per-band files.
    polygons : str, GeoDataFrame or sequence of shapely geometries
        Mine footprints: a vector file or GeoDataFrame (any CRS, reprojected), or geometries in the
        raster's CRS.
    model_path, report_path : str, optional
        ONNX model and HTML report to write.
    bands : list of str, optional
        Model bands, from RGB (``["B2", "B3", "B4"]``) to the 12 L2A bands; every L2A band the input has
        by default. ``indices``: spectral indices appended, those the bands allow (the others are
        left out and logged), so the model needs exactly its bands.
    tile : int, default 128
        Tile side (multiple of ``2 ** depth``). ``depth`` (poolings) and ``width`` (first-level
        channels): the U-Net's size.
    epochs, batch_size, lr, weight_decay : training settings (Adam, cosine decay to 1 %).
    dice_weight : float, default 1.0
        Weight of the soft-Dice term next to the BCE.
    negatives_per_positive : float, default 1.0
        Tiles without mines per tile with mines, per split; negative = all.
    block_tiles : int, default 4
        Side of a spatial hold-out block, in tiles (a raster's; chips are held out by chip, or by blocks of ground
        of this side where they overlap in chains). ``val_fraction``: share of blocks held out.
    threshold : float, default 0.5
        Probability above which a pixel is called mine (metrics and the model's default).
    min_valid : float, default 0.5
        Tiles with a smaller share of valid pixels are not used.
    seed : int
        Same data, options and seed give the same model, byte for byte (on one machine and torch).
    threads : int, optional
        Threads torch may use (restored afterwards).
    mask_clouds : bool, default True
        A folder's scene classification masks clouds (:class:`FeatureReader`).
    chips : list of core.sentinel2.chip_sets.Chip, optional
        Train from many chips or scenes instead of ``raster_path`` and ``polygons`` (see
        :mod:`core.sentinel2.chip_sets`): each chip is cut into tiles, and chips, not blocks, are held out.
    augment : {"geometric", "photometric"}
        Flips and 90 degree turns, or those plus brightness and haze (:mod:`core.sentinel2.augmentation`).
    class_weight : bool, default False
        Weigh mine pixels in the BCE by background / mine pixels (at most 20).
    init_weights : str, optional
        A torch state dict (.pt) of the same U-Net to start from (:meth:`SegmentationResult.save_weights`).

    Returns
    -------
    SegmentationResult
    """
    feedback = ensure(feedback)
    tile, depth, width = check_architecture(tile, depth, width)
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2), ("block_tiles", block_tiles, 1)):
        if int(value) < low:
            raise OreMapError(f"{name.replace('_', ' ').capitalize()} must be at least {low}.", name)
    if not lr > 0:
        raise OreMapError("The learning rate must be positive.", "learning_rate")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise OreMapError("The held-out share must be in [0, 1).", "val_fraction")
    if not 0.0 < float(threshold) < 1.0:
        raise OreMapError("The threshold must lie between 0 and 1.", "threshold")
    if augment not in AUGMENTATIONS:
        raise OreMapError(f"Unknown augmentation '{augment}'.", "augment", f"Choose {' or '.join(AUGMENTATIONS)}.")
    if init_weights and not os.path.isfile(str(init_weights)):
        raise OreMapError(f"The weights file '{init_weights}' does not exist.", "init_weights",
                          "Choose a .pt file saved by an earlier training of the same architecture.")
    budget = memory_budget_mb(memory_mb)
    _torch_classes()  # torch missing: say so before reading the raster
    first = chips[0].raster if chips else raster_path
    said = InputWarnings(feedback, "chips")   # what opening the rasters says, each warning once
    bands = resolve_bands(first, bands, band_map, mask_clouds, said.of(first))
    indices, _ = resolve_indices(indices, bands, feedback)
    with _training_tiles(raster_path, polygons, chips, bands, indices, band_map, tile, block_tiles, feedback,
                         mask_clouds, said) as source:
        plan, X, Y, V = source.select(float(val_fraction), float(negatives_per_positive), float(min_valid), seed,
                                      budget, feedback)
        channel_names = list(source.channel_names)
        bands_used, indices_used = list(source.bands), list(source.indices)
        transform, crs = source.transform, source.crs
        raster_size = (source.width, source.height)
        # chips: their median pixel size (the first chip's was recorded, whatever the others')
        chip_pixel, chip_ground = getattr(source, "pixel_size", None), getattr(source, "pixel_size_m", None)
        chip_sizes = [(c.name, hw) for c, hw in zip(chips, source.sizes)] if chips else None
        rgb_cols = [source.bands.index(b) for b in ("B4", "B3", "B2") if b in source.bands]
        pi = plan.info
        if chips and getattr(source, "spatial", None) is not None:
            kind = (f"blocks of {source.chain_block_tiles} x {source.chain_block_tiles} tiles of ground (chips "
                    "overlapping in chains)")
        elif chips:
            kind = "chips" if pi["n_blocks"] == len(chips) else "groups of chips (chips sharing ground joined)"
        else:
            kind = f"blocks of {block_tiles} x {block_tiles} tiles"
        where = f"{pi['n_val_blocks']} of {pi['n_blocks']} {kind}"
        feedback.info(f"{pi['n_train_tiles']} training tiles ({pi['n_train_mine_tiles']} with mines), "
                      f"{pi['n_val_tiles']} held-out tiles ({pi['n_val_mine_tiles']} with mines) in {where}.")
        if pi.get("n_buffered"):
            feedback.info(f"{pi['n_buffered']} tiles ({pi['n_buffered_mine_tiles']} with mines) overlap a held-out "
                          "tile and are left out of training (a buffer).")
        train_idx, val_idx = plan.train_index, plan.val_index
        mean, sd = _fit_stats(X, V, train_idx)  # on valid pixels only: nodata was filled as the tiles were read
        pos_weight = mine_pixel_weight(Y, V, train_idx) if class_weight else None
        if pos_weight is not None:
            feedback.info(f"Mine pixels weigh {pos_weight:.2f} in the BCE (background / mine pixels, at most 20).")
        hp = {"tile": tile, "depth": depth, "width": width, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "dice_weight": dice_weight, "threshold": threshold, "seed": seed,
              "threads": threads, "augment": augment, "pos_weight": pos_weight, "init_weights": init_weights,
              "bands": bands_used, "indices": indices_used}
        fit = _fit_unet(X, Y, V, plan, mean, sd, len(channel_names), rgb_cols, hp, feedback)  # streams backgrounds
    history, onnx_bytes, module, example = fit["history"], fit["onnx_bytes"], fit["module"], fit["example"]
    val_counts, train_counts, bs = fit["val_counts"], fit["train_counts"], int(batch_size)
    metrics = _metrics(val_counts, train_counts, pi)
    if val_idx.size:
        feedback.info(f"Held-out tiles: IoU {metrics['val_iou']:.3f}, F1 {metrics['val_f1']:.3f}, precision "
                      f"{metrics['val_precision']:.3f}, recall {metrics['val_recall']:.3f} at threshold "
                      f"{threshold:g}.")
        if pi.get("val_mine_pixels_shared"):
            feedback.warning(shared_mines_sentence(pi))
    parameters = {"tile": tile, "depth": depth, "width": width, "epochs": int(epochs), "batch_size": bs,
                  "lr": float(lr), "weight_decay": float(weight_decay), "dice_weight": float(dice_weight),
                  "negatives_per_positive": float(negatives_per_positive), "block_tiles": int(block_tiles),
                  "val_fraction": float(val_fraction), "min_valid": float(min_valid), "seed": int(seed),
                  "augmentation": "flips and 90 degree rotations" + (", brightness and haze" if augment == "photometric"
                                                                      else ""),
                  "optimiser": "Adam, cosine decay to 1 %",
                  "loss": "BCE + soft Dice over valid pixels" + (f", mine pixels weighted {hp['pos_weight']:.2f}"
                                                                  if hp["pos_weight"] else ""),
                  "init_weights": os.path.basename(str(init_weights)) if init_weights else None,
                  "val_blocks": sorted(list(b) for b in plan.val_blocks)}
    px_w, px_h = chip_pixel or affine_ops.pixel_size(transform)
    ground = chip_ground or pixel_size_m(transform, crs, *raster_size)
    info = ModelInfo(
        task=TASK,
        classes=[dict(c) for c in CLASSES],
        input={"name": INPUT_NAME, "n_bands": len(channel_names), "window": int(tile)},
        output={"name": OUTPUT_NAME, "kind": "probability_map"},
        band_names=channel_names,
        preprocessing={"method": "sentinel2_features", "bands": bands_used, "indices": indices_used,
                       "index_version": INDEX_VERSION,
                       "reflectance": "DN * scale + offset (core.sentinel2.sentinel2)",
                       "mean": [float(v) for v in mean],
                       "sd": [float(v) for v in sd], "clip": Z_CLIP,
                       "nodata_fill": "nearest valid pixel of the tile (segmentation_network.fill_nodata), before "
                                      "the graph; NaN reaching the graph -> 0", "in_graph": True},
        training={
            "date": build_date(),
            "data_hash": _data_hash(X, Y, plan), "n_samples": int(len(plan.rows)), "metrics": metrics,
            "parameters": parameters,
            "source": (f"{len(chips)} chips" if chips else os.path.basename(os.path.normpath(str(raster_path)))),
        },
        description=str(description) or "OreMap Sentinel-2 mine segmentation U-Net",
        extra={"segmentation": {"tile": int(tile), "threshold": float(threshold), "overlap": int(tile // 4),
                                "depth": depth, "width": width, "architecture": "unet"},
               "spatial": {"pixel_size": [float(px_w), float(px_h)],
                           "pixel_size_m": [float(v) for v in ground],
                           "epsg": crs.to_epsg() if crs is not None else None}},
    )
    info = ModelInfo.from_json(info.to_json())
    result = SegmentationResult(onnx_bytes=onnx_bytes, info=info, plan=plan, history=history, metrics=metrics,
                                example=example, torch_model=module)
    if model_path:
        result.save(model_path)
    if report_path:
        from ..engine import report

        report.write_report(report_path, training_report(result, raster_size, raster_path, chip_sizes))
    feedback.progress(100)
    return result


class _SceneTiles:
    """One raster with mine polygons as a tile source (the reader stays open while training streams backgrounds)."""

    def __init__(self, raster_path, polygons, bands, indices, band_map, tile, block_tiles, feedback, mask_clouds,
                 said=None):
        said = said if said is not None else InputWarnings(feedback)
        try:
            self.reader = FeatureReader(raster_path, bands, indices, band_map, said.of(raster_path), mask_clouds)
        finally:
            said.flush()
        try:
            self.geoms = load_polygons(polygons, self.reader.crs)
        except BaseException:
            self.reader.close()
            raise
        if self.reader.width < tile or self.reader.height < tile:
            feedback.warning(f"The raster ({self.reader.width} x {self.reader.height}) is smaller than one tile "
                             f"({tile}): tiles are padded with nodata.")
        self.tile, self.block_tiles = int(tile), int(block_tiles)
        for name in ("channel_names", "bands", "indices", "transform", "crs", "width", "height"):
            setattr(self, name, getattr(self.reader, name))

    def select(self, val_fraction, negatives_per_positive, min_valid, seed, budget_mb, feedback):
        return plan_tiles(self.reader, self.geoms, self.tile, self.block_tiles, val_fraction, negatives_per_positive,
                          min_valid, seed, budget_mb, feedback)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reader.close()


def _training_tiles(raster_path, polygons, chips, bands, indices, band_map, tile, block_tiles, feedback, mask_clouds,
                    said=None):
    """The tile source of a training run: many chips (:class:`ChipTiles`) or one raster with polygons; ``said``
    gathers what opening them says (:class:`core.sentinel2.sentinel2.InputWarnings`)."""
    if chips:
        return ChipTiles(chips, bands, indices, band_map, tile, feedback, mask_clouds, said, chain_block_tiles=block_tiles)
    return _SceneTiles(raster_path, polygons, bands, indices, band_map, tile, block_tiles, feedback, mask_clouds,
                       said)


def _example_tile(X, Y, V, plan, val_idx, val_proba, train_idx, module, threshold, rgb_cols):
    """The held-out tile with the most mine pixels (a training tile when nothing is held out)."""
    if val_idx.size and plan.mine_pixels[val_idx].max() > 0:
        k = int(np.argmax(plan.mine_pixels[val_idx]))
        index, proba, split = int(val_idx[k]), val_proba[k], "held-out"
    else:
        index = int(train_idx[np.argmax(plan.mine_pixels[train_idx])])
        proba, split = predict_torch(module, X[index:index + 1])[0], "training"
    x = X[index]
    cols = rgb_cols if len(rgb_cols) == 3 else [0, 0, 0]
    rgb = np.stack([x[c] for c in cols], axis=-1)
    ok = V[index] & np.all(np.isfinite(rgb), axis=-1)
    out = np.zeros(rgb.shape, dtype=np.uint8)
    if ok.any():
        lo, hi = np.percentile(rgb[ok], 2), np.percentile(rgb[ok], 98)
        scaled = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)
        out = np.where(ok[..., None], np.round(255 * scaled ** (1 / 1.4)), 0).astype(np.uint8)
    return {"rgb": out, "reference": Y[index].astype(bool), "predicted": (proba >= threshold) & V[index],
            "split": split, "tile": (int(plan.rows[index]), int(plan.cols[index]))}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


