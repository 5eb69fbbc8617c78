"""The prospectivity network: a ResNet over windows of element grids (basic or bottleneck blocks, a
small stem for small windows), its export module (standardisation, network, sigmoid) and ONNX export.

``torch`` is imported lazily (:func:`core.engine.compute.torch_classes`).
"""

import numpy as np

from ..engine import compute
from ..engine.errors import OreMapError


#: Task name of the models made here.
TASK = "prospectivity"

#: Output classes of the graph, in order.
CLASSES = [{"name": "background", "color": "#3b4cc0"}, {"name": "deposit", "color": "#b40426"}]

#: Names of the ONNX graph's input and output.
INPUT_NAME = "windows"
OUTPUT_NAME = "probabilities"

#: ONNX opset of the exported graphs.
OPSET = 17

#: ResNet depths: block type and blocks per stage.
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}

#: Smallest and largest window (cells).
MIN_WINDOW, MAX_WINDOW = 8, 256

#: Windows up to this size get a 3x3 stride-1 stem without max-pooling; larger ones the classic 7x7/2 + pool.
SMALL_STEM_MAX = 64


@compute.torch_classes("train neural networks")
def _torch_classes(torch, nn):
    """Torch and the module classes, built on first use (torch imported lazily)."""

    def shortcut(c_in, c_out, stride):
        if stride == 1 and c_in == c_out:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    class BasicBlock(nn.Module):
        """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

        expansion = 1

        def __init__(self, c_in, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: trains well on little data
            self.shortcut = shortcut(c_in, planes, stride)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class Bottleneck(nn.Module):
        """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with a shortcut."""

        expansion = 4

        def __init__(self, c_in, planes, stride):
            super().__init__()
            out = planes * 4
            self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            nn.init.zeros_(self.bn3.weight)
            self.shortcut = shortcut(c_in, out, stride)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            return torch.relu(self.bn3(self.conv3(y)) + self.shortcut(x))

    class ResNet(nn.Module):
        """Stem, four stages (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2), global average pooling, one logit."""

        def __init__(self, in_channels, depth, width, window):
            super().__init__()
            kind, counts = DEPTHS[depth]
            block = BasicBlock if kind == "basic" else Bottleneck
            if window <= SMALL_STEM_MAX:
                self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                          nn.BatchNorm2d(width), nn.ReLU())
            else:
                self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
                                          nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            layers, c_in = [], width
            for stage, n_blocks in enumerate(counts):
                planes = width * 2 ** stage
                for i in range(n_blocks):
                    layers.append(block(c_in, planes, 2 if (i == 0 and stage > 0) else 1))
                    c_in = planes * block.expansion
            self.stages = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(c_in, 1)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))

    class WindowModel(nn.Module):
        """Raw windows (NaN = nodata) -> z-score, NaN -> 0 (+ mask channel) -> ResNet -> (1 - p, p)."""

        def __init__(self, net, mean, sd, mask_channel):
            super().__init__()
            self.net = net
            self.mask_channel = bool(mask_channel)
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).reshape(1, -1, 1, 1))
            self.register_buffer("sd", torch.as_tensor(np.asarray(sd, np.float32)).reshape(1, -1, 1, 1))

        def logit(self, x):
            z = (x - self.mean) / self.sd
            valid = ~torch.isnan(z)
            z = torch.where(valid, z, torch.zeros_like(z))
            if self.mask_channel:
                z = torch.cat([z, valid.to(z.dtype).amin(dim=1, keepdim=True)], dim=1)
            return self.net(z)[:, 0]

        def forward(self, x):
            t = self.logit(x).unsqueeze(1)
            return torch.sigmoid(torch.cat([-t, t], dim=1))

    return dict(ResNet=ResNet, WindowModel=WindowModel)


def _check_window(window, parameter="window"):
    window = int(window)
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise OreMapError(f"The window must be {MIN_WINDOW}-{MAX_WINDOW} cells, not {window}.", parameter)
    return window


def build_resnet(in_channels, depth=18, width=16, window=64):
    """A ResNet (``torch.nn.Module``) mapping ``(n, in_channels, window, window)`` to ``(n, 1)`` logits.

    Parameters
    ----------
    in_channels : int
        Elements (plus 1 with a validity-mask channel).
    depth : {18, 34, 50}
        18 and 34 use basic blocks (2-2-2-2, 3-4-6-3), 50 bottleneck blocks (3-4-6-3, x4 expansion).
    width : int, default 16
        Channels of the stem and first stage; stages have width x (1, 2, 4, 8) (x4 for bottlenecks).
        The classic ImageNet ResNet has 64; 16 trains on a CPU in minutes.
    window : int, default 64
        Window size in cells, 8-256. Windows up to 64 get a 3x3 stride-1 stem with no max-pooling (a
        small geochemical window has no pixels to spare); larger ones the 7x7 stride-2 stem and a
        3x3 stride-2 max-pool. The last stage sees window / 8 (or / 32) cells, pooled globally.
    """
    if int(depth) not in DEPTHS:
        raise OreMapError(f"The ResNet depth must be 18, 34 or 50, not {depth}.", parameter="depth")
    if int(width) < 2 or int(in_channels) < 1:
        raise OreMapError("The network width must be at least 2 channels.", parameter="width")
    window = _check_window(window)
    return _torch_classes()["ResNet"](int(in_channels), int(depth), int(width), window)


def window_model(net, mean, sd, mask_channel=False):
    """The export module: raw windows -> z-score -> NaN to 0 (+ mask channel) -> ``net`` -> (1 - p, p)."""
    return _torch_classes()["WindowModel"](net, mean, sd, mask_channel)


def export_onnx(module, n_elements, window):
    """ONNX bytes (opset :data:`OPSET`, dynamic batch axis) of a :func:`window_model` module.

    Uses the TorchScript-based exporter (``dynamo=False``): the default exporter of recent torch
    needs the ``onnxscript`` package.
    """
    return compute.onnx_bytes(module, (1, n_elements, window, window), INPUT_NAME, OUTPUT_NAME, opset=OPSET)


def predict_torch(module, windows, batch_size=256):
    """Deposit probability of raw windows ``(n, C, w, w)`` through a torch :func:`window_model` (eval mode)."""
    return compute.torch_predict(module, windows, batch_size, empty_shape=(0, 2))[:, 1]
