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
#: Name of the second output of graphs with a feature reference (:func:`with_feature_reference`).
DISTANCE_NAME = "feature_distance"

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

        def embed(self, x):
            """The penultimate layer (after the hidden dense layer's ReLU): the network's features."""
            h = self.features(x.unsqueeze(1))
            for layer in self.head[:3]:
                h = layer(h)
            return h

        def classify(self, h):
            """Logits of features from :meth:`embed` (dropout, last dense layer)."""
            return self.head[4](self.head[3](h))

    class ExportModule(nn.Module):
        """Standardise per band, run the network, softmax: preprocessed spectra -> probabilities.

        With ``reference`` (unit feature vectors of training spectra, :func:`with_feature_reference`) it also returns
        each spectrum's feature distance: the cosine distance of its features to the ``k``-th nearest reference
        vector (:data:`DISTANCE_NAME`)."""

        def __init__(self, net, mean, std, reference=None, k=1):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
            self.register_buffer("std", torch.as_tensor(np.asarray(std, np.float32)))
            self.k = int(k)
            if reference is not None:
                self.register_buffer("reference", torch.as_tensor(np.asarray(reference, np.float32)))
            else:
                self.reference = None

        def forward(self, x):
            z = (x - self.mean) / self.std
            if self.reference is None:
                return torch.softmax(self.net(z), dim=1)
            h = self.net.embed(z)
            probs = torch.softmax(self.net.classify(h), dim=1)
            unit = h / torch.clamp(torch.linalg.vector_norm(h, dim=1, keepdim=True), min=1e-12)
            nearest = torch.topk(unit @ self.reference.T, self.k, dim=1).values[:, self.k - 1]
            return probs, 1.0 - nearest

    class EnsembleModule(nn.Module):
        """Several export modules as one: the mean of their class probabilities (and of their feature
        distances, when they have references)."""

        def __init__(self, members):
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x):
            outs = [member(x) for member in self.members]
            if isinstance(outs[0], tuple):
                return (torch.stack([o[0] for o in outs], dim=0).mean(dim=0),
                        torch.stack([o[1] for o in outs], dim=0).mean(dim=0))
            return torch.stack(outs, dim=0).mean(dim=0)

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
    run = _Batched(lambda x: module(x)[0], module) if has_feature_reference(module) else module
    return compute.torch_predict(run, X, batch_size, empty_shape=(0, 0))


class _Batched:
    """A function of one batch (a torch tensor) seen as a module by :func:`core.engine.compute.torch_predict`
    (which puts it in eval mode and runs it without gradients): ``fn`` computed with ``module`` in eval mode."""

    def __init__(self, fn, module):
        self.fn, self.module = fn, module

    def eval(self):
        self.module.eval()
        return self

    def __call__(self, x):
        return self.fn(x)


def _members(module):
    """The export modules of ``module`` (itself, or an ensemble's members)."""
    return list(module.members) if hasattr(module, "members") else [module]


def feature_vectors(module, P, batch_size=4096):
    """Unit feature vectors (float32, ``(n, hidden)``) of preprocessed spectra ``P`` under one export module
    (no ensemble): its standardisation, then the network up to the penultimate layer, scaled to unit length
    (a zero vector stays zero)."""
    import torch

    def unit_features(x):
        return torch.nn.functional.normalize(module.net.embed((x - module.mean) / module.std), dim=1, eps=1e-12)

    return compute.torch_predict(_Batched(unit_features, module), P, batch_size,
                                 empty_shape=(0, module.net.head[1].out_features))


def feature_references(module):
    """The reference's unit feature vectors (float32 arrays) of each network of a module made by
    :func:`with_feature_reference`."""
    return [m.reference.numpy() for m in _members(module)]


def with_feature_reference(module, P_reference, k):
    """``module`` (an export module or an ensemble of them) whose graph also returns each spectrum's feature
    distance (:data:`DISTANCE_NAME`): the cosine distance of its unit features to the ``k``-th nearest of the
    reference spectra ``P_reference`` (preprocessed) in each network's feature space; an ensemble returns the
    mean of its members' distances. The networks are shared, not copied."""
    tc = _torch_classes()
    k = int(min(max(int(k), 1), np.asarray(P_reference).shape[0]))
    members = [tc["export"](m.net, m.mean.numpy(), m.std.numpy(), reference=feature_vectors(m, P_reference), k=k)
               for m in _members(module)]
    for m in members:
        m.eval()
    return ensemble_module(members)


def feature_distances(module, P, batch_size=4096):
    """Feature distances (float64) of preprocessed spectra ``P`` from a module made by
    :func:`with_feature_reference` (eager torch, as the exported graph computes them)."""
    return compute.torch_predict(_Batched(lambda x: module(x)[1], module), P, batch_size).astype(np.float64)


def has_feature_reference(module):
    """True when ``module``'s graph returns feature distances (:func:`with_feature_reference`)."""
    return getattr(_members(module)[0], "reference", None) is not None


def export_onnx(module, n_bands):
    """ONNX bytes (opset :data:`OPSET`, dynamic batch axis) of an export module: one output,
    :data:`OUTPUT_NAME`, or with a feature reference also :data:`DISTANCE_NAME`.

    Uses the TorchScript-based exporter (``dynamo=False``): the default
    exporter of recent torch needs the ``onnxscript`` package.
    """
    names = [OUTPUT_NAME, DISTANCE_NAME] if has_feature_reference(module) else OUTPUT_NAME
    return compute.onnx_bytes(module, (1, n_bands), INPUT_NAME, names, opset=OPSET)
