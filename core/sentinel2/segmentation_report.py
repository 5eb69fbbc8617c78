"""The mine segmentation's training report: an example tile with the mapped and the true footprints,
the layout of the held-out blocks and the scores.
"""

import base64
import os
import struct
import zlib

import numpy as np


def png_bytes(rgb):
    """A PNG file (bytes) of an ``(h, w, 3)`` uint8 image; zlib only, no imaging library."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def outline_path(mask, scale=1.0):
    """SVG path data of the outlines of a boolean mask's regions (pixel edges, ``scale`` px per pixel)."""
    from rasterio.features import shapes

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    parts = []
    for geom, value in shapes(mask, mask=mask.astype(bool), connectivity=4):
        for ring in geom["coordinates"]:
            pts = " L".join(f"{x * scale:.1f} {y * scale:.1f}" for x, y in ring[:-1])
            parts.append(f"M{pts} Z")
    return " ".join(parts)


def tile_figure(example, size=384):
    """An SVG of the example tile (true colour) with the reference (cyan) and predicted (red) outlines."""
    rgb = example["rgb"]
    t = rgb.shape[0]
    scale = size / t
    data = base64.b64encode(png_bytes(rgb)).decode("ascii")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-tile" width="{size}" height="{size + 22}" '
            f'viewBox="0 0 {size} {size + 22}" role="img" aria-label="Example tile">'
            f'<image x="0" y="0" width="{size}" height="{size}" preserveAspectRatio="none" '
            f'style="image-rendering:pixelated" href="data:image/png;base64,{data}"/>'
            f'<path class="reference" d="{outline_path(example["reference"], scale)}" fill="none" '
            f'stroke="#00e5ff" stroke-width="1.5"/>'
            f'<path class="predicted" d="{outline_path(example["predicted"], scale)}" fill="none" '
            f'stroke="#ff1744" stroke-width="1.5" stroke-dasharray="4 2"/>'
            f'<text x="4" y="{size + 15}" font-size="11" font-family="sans-serif">cyan: reference mines, '
            f'red dashed: predicted (threshold)</text></svg>')


def _layout_svg(plan, size=360, example=None):
    """The tile grid: training tiles blue, held-out tiles orange (darker with mines), held-out blocks framed;
    ``example`` (row, column of the grid, from 0), the example tile, ringed in black."""
    n_r, n_c = plan.grid
    cell = size / max(n_r, n_c)
    w, h = n_c * cell, n_r * cell
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="oremap-layout" width="{w + 2:.0f}" height="{h + 24:.0f}" '
           f'viewBox="-1 -1 {w + 2:.1f} {h + 24:.1f}" role="img" aria-label="Tile layout">',
           f'<rect x="0" y="0" width="{w:.1f}" height="{h:.1f}" fill="#f4f4f4" stroke="#999"/>']
    for i, j, s, m in zip(plan.rows, plan.cols, plan.split, plan.mine_pixels):
        colour = {("train", True): "#08519c", ("train", False): "#9ecae1", ("val", True): "#d94801",
                  ("val", False): "#fdae6b"}[(str(s), bool(m > 0))]
        out.append(f'<rect x="{j * cell:.1f}" y="{i * cell:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                   f'fill="{colour}" stroke="#fff" stroke-width="0.5"/>')
    bt = plan.block_tiles * cell
    for bi, bj in sorted(plan.val_blocks):
        out.append(f'<rect x="{bj * bt:.1f}" y="{bi * bt:.1f}" width="{bt:.1f}" height="{bt:.1f}" fill="none" '
                   f'stroke="#7f2704" stroke-width="2"/>')
    if example is not None:
        out.append(f'<rect x="{example[1] * cell:.1f}" y="{example[0] * cell:.1f}" width="{cell:.1f}" '
                   f'height="{cell:.1f}" fill="none" stroke="#000" stroke-width="2.5"/>')
    out.append(f'<text x="0" y="{h + 16:.1f}" font-size="11" font-family="sans-serif">blue: training, orange: '
               'held out (dark: with mines); framed: held-out blocks; grey: unused'
               + ('; ringed in black: the example tile' if example is not None else '') + '</text></svg>')
    return "".join(out)


def training_report(result, raster_size=None, raster_path="", chips=None):
    """The HTML training report: data, settings, IoU/F1 on held-out tiles, curves, layout, example tile.

    ``chips``: ``[(name, (height, width))]`` of a run on chips, whose blocks are whole chips and whose layout has
    one row of tiles per chip."""
    from ..engine import report
    from .segmentation_data import shared_mines_sentence

    info, plan, m = result.info, result.plan, result.metrics
    p = info.training["parameters"]
    pi = plan.info
    seg = info.extra["segmentation"]
    size = f", {raster_size[0]} x {raster_size[1]} pixels" if raster_size else ""
    if chips:
        sides = sorted({side for _, hw in chips for side in hw})
        names = ", ".join(name for name, _ in chips[:10]) + (f" and {len(chips) - 10} more" if len(chips) > 10 else "")
        span = f"{sides[0]}" if sides[0] == sides[-1] else f"{sides[0]}-{sides[-1]}"
        source = ("Chips", f"{len(chips)} chips of {span} pixels a side: {names}")
        hold_out = ("Hold-out", f"{pi['n_val_blocks']} of {pi['n_blocks']} chips held out whole "
                                f"({pi['n_val_mine_blocks']} of {pi['n_mine_blocks']} chips with mines), so held-out "
                                "and training tiles never come from one chip")
    else:
        source = ("Raster", f"{os.path.basename(os.path.normpath(str(raster_path)))}{size}")
        hold_out = ("Spatial hold-out", f"{pi['n_val_blocks']} of {pi['n_blocks']} blocks of {p['block_tiles']} x "
                                        f"{p['block_tiles']} tiles held out ({pi['n_val_mine_blocks']} of "
                                        f"{pi['n_mine_blocks']} blocks with mines); a tile lies in one block, so "
                                        "held-out and training tiles share no pixel"
                                        + (". " + shared_mines_sentence(pi) if pi.get("val_mine_pixels_shared")
                                           else ""))
    settings = [
        source,
        ("Input channels", f"{len(info.band_names)}: bands {', '.join(info.preprocessing['bands'])}"
                           + (f"; indices {', '.join(info.preprocessing['indices'])}"
                              if info.preprocessing["indices"] else "")),
        ("Tiles", f"{p['tile']} x {p['tile']} pixels; {pi['n_train_tiles']} training ({pi['n_train_mine_tiles']} with "
                  f"mines), {pi['n_val_tiles']} held out ({pi['n_val_mine_tiles']} with mines); "
                  f"{p['negatives_per_positive']:g} background tile(s) per mine tile"
                  + (f"; {pi['n_dropped_few_valid']} tile(s) holding mines left out, with under "
                     f"{100 * float(p.get('min_valid', 0.5)):.0f} % valid pixels"
                     + (f" ({pi['n_dropped_edge']} over a chip's or the raster's edge)" if pi.get("n_dropped_edge")
                        else "") if pi.get("n_dropped_few_valid") else "")),
        hold_out,
        ("Network", f"U-Net, depth {p['depth']}, width {p['width']} (x2 per level)"),
        ("Training", f"{p['epochs']} epochs, batch {p['batch_size']}, Adam, learning rate {p['lr']:g} (cosine "
                     f"decay), weight decay {p['weight_decay']:g}; loss "
                     + p.get("loss", "BCE + soft Dice").replace("soft Dice", f"{p['dice_weight']:g} x soft Dice", 1)
                     + f"; augmentation: {p.get('augmentation', 'flips and 90 degree rotations')}"
                     + (f"; initial weights from {p['init_weights']}" if p.get("init_weights") else "")),
        ("Threshold", f"{seg['threshold']:g}"),
        ("Seed", str(p["seed"])),
    ]
    sections = [("Data and settings", report.html_table(["Setting", "Value"], settings))]
    rows = [["Held-out tiles", m["val_iou"], m["val_f1"], m["val_precision"], m["val_recall"], m["val_mine_pixels"],
             m["val_pixels"]],
            ["Training tiles", m["train_iou"], m["train_f1"], m["train_precision"], m["train_recall"],
             m["train_mine_pixels"], m["train_pixels"]]]
    sections.append(("Accuracy (pixels)", report.html_table(
        ["Tiles", "IoU", "F1", "precision", "recall", "mine pixels", "valid pixels"], rows) + report.paragraph(
        "Pixel counts over the valid pixels of whole tiles, the model's output thresholded at "
        f"{seg['threshold']:g}. Held-out tiles hold every mine tile of the held-out blocks and a random share of "
        "their background tiles, so precision on a whole scene (mostly background) can be lower.", "note")))
    epochs = list(range(1, len(result.history["train_loss"]) + 1))
    weighted = result.history.get("train_weighted_loss")
    curves = report.svg_line_chart(
        [("training loss", epochs, result.history["train_loss"], "#1f77b4"),
         ("held-out loss", epochs, result.history["val_loss"], "#ff7f0e")], "Loss", "epoch",
        "BCE + Dice, mine pixels unweighted" if weighted else "BCE + Dice")
    note = (f"Both lines are BCE + {p['dice_weight']:g} x (1 - soft Dice) over valid pixels, every pixel weighing "
            "alike, averaged over batches by their valid pixels: the training line over each epoch's augmented "
            "training tiles while the network trained on them, the held-out line over the held-out tiles after the "
            "epoch.")
    if weighted:
        how = p.get("loss", "").partition(", ")[2] or "mine pixels weighted"
        note += (f" Training minimised the BCE with mine pixels weighted by their rarity ({how}); that loss, not "
                 "comparable with the held-out one, is drawn on its own below.")
    curves += report.paragraph(note, "note")
    if weighted:
        curves += report.svg_line_chart([("training loss optimised", epochs, weighted, "#9467bd")],
                                        "Loss optimised (mine pixels weighted)", "epoch", "weighted BCE + Dice")
    curves += report.svg_line_chart(
        [("held-out IoU", epochs, result.history["val_iou"], "#2ca02c"),
         ("held-out F1", epochs, result.history["val_f1"], "#d62728")], "Held-out accuracy", "epoch", "score")
    sections.append(("Learning curves", curves))
    ex = result.example
    sections.append(("Tile layout", _layout_svg(plan, example=None if ex is None or chips else ex["tile"])))
    if ex is not None:
        where = (f"chip {chips[ex['tile'][0]][0]}, its tile {ex['tile'][1] + 1}" if chips
                 else f"grid row {ex['tile'][0] + 1}, column {ex['tile'][1] + 1}, counted from 1; ringed in the "
                      "layout above")
        sections.append((f"Example {ex['split']} tile ({where})", tile_figure(ex)))
    return report.html_report("Sentinel-2 mine segmentation: training report", sections,
                              subtitle=info.description + " - " + info.training["date"])
