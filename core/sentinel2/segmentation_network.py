"""The mine segmentation network: a U-Net over Sentinel-2 tiles (bands and indices), its export module
(standardisation, clipping, network, sigmoid) and ONNX export.

``torch`` is imported lazily (:func:`core.engine.compute.torch_classes`).
"""

import numpy as np

from ..engine import compute
from ..engine.errors import OreMapError


#: Names of the ONNX graph's input and output.
INPUT_NAME = "tiles"

OUTPUT_NAME = "probabilities"

#: ONNX opset of the exported graphs.
OPSET = 17

#: z-scores are clipped to +/- this many standard deviations (ratio indices can explode over water).
Z_CLIP = 8.0

#: Tile sizes allowed (pixels).
MIN_TILE, MAX_TILE = 16, 512


@compute.torch_classes("train the mine segmentation U-Net")
def _torch_classes(torch, nn):
    """Torch and the module classes, built on first use (torch imported lazily)."""

    def double_conv(c_in, c_out):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        """Encoder of ``depth`` double convolutions + 2x2 max-pooling (widths w, 2w, 4w ...), a bottleneck,
        a decoder of 2x2 transposed convolutions + skip concatenation + double convolution, a 1x1 head."""

        def __init__(self, in_channels, depth, width):
            super().__init__()
            widths = [width * 2 ** i for i in range(depth + 1)]
            self.down = nn.ModuleList(
                [double_conv(in_channels if i == 0 else widths[i - 1], widths[i]) for i in range(depth)])
            self.pool = nn.MaxPool2d(2)
            self.bottom = double_conv(widths[depth - 1], widths[depth])
            self.up = nn.ModuleList(
                [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))])
            self.dec = nn.ModuleList([double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
            self.head = nn.Conv2d(widths[0], 1, 1)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    class TileModel(nn.Module):
        """Raw feature tiles (NaN = nodata) -> z-score, clip, NaN -> 0 -> U-Net -> mine probability."""

        def __init__(self, net, mean, sd, clip=Z_CLIP):
            super().__init__()
            self.net = net
            self.clip = float(clip)
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).reshape(1, -1, 1, 1))
            self.register_buffer("sd", torch.as_tensor(np.asarray(sd, np.float32)).reshape(1, -1, 1, 1))

        def logit(self, x):
            z = (x - self.mean) / self.sd
            z = torch.where(torch.isnan(z), torch.zeros_like(z), z)
            return self.net(torch.clamp(z, -self.clip, self.clip))

        def forward(self, x):
            return torch.sigmoid(self.logit(x))

    return dict(UNet=UNet, TileModel=TileModel)


def check_architecture(tile, depth, width):
    """Raise :class:`OreMapError` unless the tile size suits a U-Net of ``depth`` poolings."""
    tile, depth, width = int(tile), int(depth), int(width)
    if not 1 <= depth <= 6:
        raise OreMapError(f"The U-Net depth must be 1-6 poolings, not {depth}.", "depth", "Use 3 or 4.")
    if width < 2:
        raise OreMapError("The U-Net width must be at least 2 channels.", "width", "Use 16.")
    if not MIN_TILE <= tile <= MAX_TILE or tile % (2 ** depth):
        raise OreMapError(f"The tile size must be {MIN_TILE}-{MAX_TILE} pixels and a multiple of {2 ** depth} "
                          f"(2 to the power of the depth), not {tile}.", "tile", "Use 128 or 256.")
    return tile, depth, width


def build_unet(in_channels, depth=4, width=16):
    """A U-Net (``torch.nn.Module``) mapping ``(n, in_channels, h, w)`` to ``(n, 1, h, w)`` logits."""
    if int(in_channels) < 1:
        raise OreMapError("The U-Net needs at least one input channel.", "bands")
    check_architecture(2 ** int(depth) * max(1, MIN_TILE // 2 ** int(depth)), depth, width)
    return _torch_classes()["UNet"](int(in_channels), int(depth), int(width))


def tile_model(net, mean, sd):
    """The export module: raw tiles -> z-score -> clip -> NaN to 0 -> ``net`` -> sigmoid."""
    return _torch_classes()["TileModel"](net, mean, sd)


def export_onnx(module, n_channels, tile):
    """ONNX bytes (opset :data:`OPSET`; batch, height and width dynamic) of a :func:`tile_model` module.

    Uses the TorchScript-based exporter (``dynamo=False``): the default exporter of recent torch
    needs the ``onnxscript`` package.
    """
    return compute.onnx_bytes(module, (1, n_channels, tile, tile), INPUT_NAME, OUTPUT_NAME,
                              axes={0: "n", 2: "height", 3: "width"}, opset=OPSET)


def fill_nodata(tiles):
    """Nodata (NaN) values of feature tiles ``(n, C, h, w)`` replaced, in place, by the nearest pixel's.

    The nearest pixel is the nearest one (Euclidean, within the same tile) whose channels are all finite; a
    tile without such a pixel is left as it is (the network then sees zeros, and nothing of it is kept).
    Fed as zeros, a nodata strip (a swath edge, masked clouds) reads to the U-Net as a sharp edge and raises
    the mine probability of the valid pixels next to it; continued from its neighbours, it does not. Used
    alike for training and detection tiles, so the network learns what it is given. Returns ``tiles``.
    """
    from scipy.ndimage import distance_transform_edt

    for x in tiles:
        gap = ~np.isfinite(x)
        bad = gap.any(axis=0)
        if not bad.any() or bad.all():
            continue
        iy, ix = distance_transform_edt(bad, return_distances=False, return_indices=True)
        np.copyto(x, x[:, iy, ix], where=gap)
    return tiles


def predict_torch(module, tiles, batch_size=16):
    """Mine probability ``(n, h, w)`` of raw feature tiles ``(n, C, h, w)`` through a torch module (eval mode)."""
    X = np.asarray(tiles)
    return compute.torch_predict(module, X, batch_size, empty_shape=(0, 1) + X.shape[2:])[:, 0]
