"""The 1D spectral CNN (after DeepGeoMap) shared by the hyperspectral classifier and the abundance
regressor: the network, its export module (standardisation, network, softmax) and ONNX export.

``torch`` is imported lazily (:func:`core.engine.compute.torch_classes`), so this module imports
without it.
"""

import numpy as np

from . import compute
from .errors import OreMapError

#: Network size used when ``network_options`` do not say otherwise (see :func:`SpectralCNN`).
DEFAULT_NETWORK = {"channels": (16, 32, 64), "kernels": (7, 5, 3), "hidden": 64, "dropout": 0.3}

#: Names of the ONNX graph's input and output.
INPUT_NAME = "spectra"
OUTPUT_NAME = "probabilities"

#: ONNX opset of the exported graphs.
OPSET = 17


@compute.torch_classes("train neural networks")
def _torch_classes(torch, nn):
    """Build the torch module classes on first use (torch imported lazily)."""

    class SpectralCNNModule(nn.Module):
        """1D CNN over the spectral axis: conv blocks, flatten, dense, dropout, dense (logits)."""

        def __init__(self, n_bands, n_classes, channels, kernels, hidden, dropout):
            super().__init__()
            layers, c_in, width = [], 1, n_bands
            for c, k in zip(channels, kernels):
                layers += [nn.Conv1d(c_in, c, k, padding=k // 2), nn.BatchNorm1d(c), nn.ReLU(), nn.MaxPool1d(2)]
                c_in, width = c, width // 2
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(c_in * width, hidden), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(hidden, n_classes))

        def forward(self, x):
            return self.head(self.features(x.unsqueeze(1)))

    class ExportModule(nn.Module):
        """Standardise per band, run the network, softmax: preprocessed spectra -> probabilities."""

        def __init__(self, net, mean, std):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
            self.register_buffer("std", torch.as_tensor(np.asarray(std, np.float32)))

        def forward(self, x):
            return torch.softmax(self.net((x - self.mean) / self.std), dim=1)

    class EnsembleModule(nn.Module):
        """Several export modules as one: the mean of their class probabilities."""

        def __init__(self, members):
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x):
            return torch.stack([member(x) for member in self.members], dim=0).mean(dim=0)

    return dict(net=SpectralCNNModule, export=ExportModule, ensemble=EnsembleModule)


def ensemble_module(members):
    """One module averaging the probabilities of export modules (a seed ensemble), exported as one ONNX graph.

    A single member is returned as it is (the graph, and its bytes, of an ensemble of one are those of
    the member).
    """
    members = list(members)
    if not members:
        raise OreMapError("An ensemble needs at least one member.", parameter="training")
    if len(members) == 1:
        return members[0]
    module = _torch_classes()["ensemble"](members)
    module.eval()
    return module


def SpectralCNN(n_bands, n_classes, channels=DEFAULT_NETWORK["channels"],  # noqa: N802
                kernels=DEFAULT_NETWORK["kernels"], hidden=DEFAULT_NETWORK["hidden"],
                dropout=DEFAULT_NETWORK["dropout"]):
    """Create the 1D CNN (a ``torch.nn.Module``) that maps ``(n, n_bands)`` spectra to class logits.

    Each block is Conv1d (odd kernel, "same" padding), BatchNorm1d, ReLU and
    MaxPool1d(2); the head flattens the feature maps (keeping where along the
    spectrum a feature is), then Linear(hidden), ReLU, Dropout and
    Linear(n_classes).

    Parameters
    ----------
    n_bands : int
        Spectrum length; at least ``2 ** len(channels)``.
    n_classes : int
    channels : sequence of int, default (16, 32, 64)
        Output channels of each conv block.
    kernels : sequence of odd int, default (7, 5, 3)
        Kernel size of each block, same length as ``channels``.
    hidden : int, default 64
    dropout : float, default 0.3

    Raises
    ------
    OreMapError
        ``parameter="training"`` for inconsistent sizes or when torch is missing.
    """
    channels, kernels = [int(c) for c in channels], [int(k) for k in kernels]
    if not channels or len(channels) != len(kernels) or any(k < 1 or k % 2 == 0 for k in kernels):
        raise OreMapError("The network needs one odd kernel size per conv block.", parameter="training")
    if int(n_bands) < 2 ** len(channels):
        raise OreMapError(
            f"Spectra of {n_bands} bands are too short for {len(channels)} pooling blocks "
            f"(at least {2 ** len(channels)} bands are needed).", parameter="training")
    return _torch_classes()["net"](int(n_bands), int(n_classes), channels, kernels, int(hidden), float(dropout))


def predict_proba_torch(module, X, batch_size=4096):
    """Probabilities of preprocessed spectra from a torch export module (eager mode).

    Used to check the ONNX export against the network it came from.

    Parameters
    ----------
    module : torch.nn.Module
        ``TrainingResult.torch_model`` (standardisation, network, softmax).
    X : array-like of shape (n, n_bands)
        Preprocessed spectra.

    Returns
    -------
    ndarray of float32 of shape (n, n_classes)
    """
    return compute.torch_predict(module, X, batch_size, empty_shape=(0, 0))


def export_onnx(module, n_bands):
    """ONNX bytes (opset :data:`OPSET`, dynamic batch axis) of an export module.

    Uses the TorchScript-based exporter (``dynamo=False``): the default
    exporter of recent torch needs the ``onnxscript`` package.
    """
    return compute.onnx_bytes(module, (1, n_bands), INPUT_NAME, OUTPUT_NAME, opset=OPSET)
