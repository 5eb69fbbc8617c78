"""The mine classifier's models: gradient boosting on patch features and a small patch CNN (trained
with the shared loop), both exported to ONNX, and the factory that makes a fresh one per fold.
"""

import warnings

import numpy as np

from ..engine import compute, torch_training
from ..engine.errors import OreMapError
from ..engine.feedback import ensure
from .patch_features import channel_indices, channels as patch_channel_names, patch_channels
from .sentinel2 import S2_BANDS


CLASSIFIERS = [("hgb", "Gradient boosting on patch statistics (fast)"),
               ("cnn", "Small CNN trained from scratch (bands and indices as channels)")]

INPUT_FEATURES = "features"

INPUT_PATCHES = "patches"

OUTPUT_NAME = "probabilities"

OPSET = 17


def _threads(n_samples):
    """OpenMP threads for one fit (see :func:`core.engine.compute.openmp_limit`)."""
    return compute.openmp_limit(n_samples)


class HGBPatchModel:
    """HistGradientBoostingClassifier on :func:`patch_features`."""

    kind = "hgb"
    needs_patches = False

    def __init__(self, seed=0, max_iter=200, learning_rate=0.08, max_leaf_nodes=15, l2_regularization=0.1):
        self.seed = int(seed)
        self.params = dict(max_iter=int(max_iter), learning_rate=float(learning_rate),
                           max_leaf_nodes=int(max_leaf_nodes), l2_regularization=float(l2_regularization))
        self.model = None

    def fit(self, X, y):
        from sklearn.ensemble import HistGradientBoostingClassifier

        X = np.asarray(X, dtype=np.float32)
        min_leaf = int(np.clip(X.shape[0] // 10, 3, 20))
        self.model = HistGradientBoostingClassifier(
            min_samples_leaf=min_leaf, early_stopping=False, random_state=self.seed, **self.params)
        with _threads(X.shape[0]):
            self.model.fit(X.astype(np.float64), np.asarray(y).astype(int))
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        with _threads(X.shape[0]):
            return self.model.predict_proba(X)[:, 1]

    def onnx_model(self, n_features):
        from ..engine.onnx_ensemble import hgb_binary_classifier_to_onnx

        return hgb_binary_classifier_to_onnx(self.model, n_features, input_name=INPUT_FEATURES,
                                             output_name=OUTPUT_NAME)

    def options(self):
        return dict(self.params, min_samples_leaf="n // 10 clipped to 3-20", seed=self.seed)


@compute.torch_classes("train the CNN (or choose the gradient boosting classifier)")
def _torch_classes(torch, nn):
    from .sentinel2 import INDICES

    class PatchIndices(nn.Module):
        """Reflectance (n, B, h, w) of ``bands`` -> the indices they allow (n, K, h, w); 0/0 -> NaN."""

        def __init__(self, bands=None):
            super().__init__()
            self.bands = list(S2_BANDS if bands is None else bands)
            self.which = channel_indices(self.bands)

        def forward(self, x):
            # negative reflectance is 0, as in compute_indices' version 2 that the metadata record (and the
            # standardisation is fitted on): dark water and shadow got NDVI -1.22, BSI 1.19 in the graph
            b = {name: torch.clamp(x[:, i:i + 1], min=0.0) for i, name in enumerate(self.bands)}
            out = [x[:, :0]]
            for name in self.which:
                kind, bands, _ = INDICES[name]
                if kind == "nd":
                    num, den = b[bands[0]] - b[bands[1]], b[bands[0]] + b[bands[1]]
                elif kind == "ratio":
                    num, den = b[bands[0]], b[bands[1]]
                else:
                    s1, s2 = b["B11"] + b["B4"], b["B8"] + b["B2"]
                    num, den = s1 - s2, s1 + s2
                value = num / torch.where(den == 0, torch.ones_like(den), den)
                out.append(torch.where(den == 0, torch.full_like(den, float("nan")), value))
            return torch.cat(out, dim=1)

    class PatchNet(nn.Module):
        def __init__(self, in_channels, width=16, dropout=0.2):
            super().__init__()
            w = int(width)
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU())
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, 1))

        def forward(self, z):
            h = self.features(z)
            pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            return self.head(pooled)[:, 0]

    class ExportModule(nn.Module):
        """Reflectance patches -> bands + indices -> clip, z-score, NaN to 0 -> net -> (1 - p, p)."""

        def __init__(self, net, mean, sd, lo, hi, bands=None):
            super().__init__()
            self.indices = PatchIndices(bands)
            self.net = net
            for name, value in (("mean", mean), ("sd", sd), ("lo", lo), ("hi", hi)):
                self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32).reshape(1, -1, 1, 1)))

        def standardise(self, x):
            z = torch.cat([x, self.indices(x)], dim=1)
            z = torch.minimum(torch.maximum(z, self.lo), self.hi)
            z = (z - self.mean) / self.sd
            return torch.where(torch.isnan(z), torch.zeros_like(z), z)

        def logits(self, x):
            return self.net(self.standardise(x))

        def forward(self, x):
            p = torch.sigmoid(self.logits(x))[:, None]
            return torch.cat([1.0 - p, p], dim=1)

    return dict(net=PatchNet, export=ExportModule, indices=PatchIndices)


def _small_work(X):
    """True for small trainings (under ~2 million pixels): one torch thread is faster there, and several
    are much slower on a busy machine (OpenMP threads spin waiting for cores)."""
    return X.shape[0] * X.shape[2] * X.shape[3] < 2_000_000


class CNNPatchModel:
    """A small CNN on bands + indices, trained from scratch with flips and rotations."""

    kind = "cnn"
    needs_patches = True

    def __init__(self, seed=0, epochs=30, batch_size=16, lr=2e-3, width=16, weight_decay=1e-4, feedback=None,
                 bands=None):
        self.seed = int(seed)
        self.bands = list(S2_BANDS if bands is None else bands)
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.width, self.weight_decay = int(width), float(weight_decay)
        self.feedback = ensure(feedback)
        self.module = None

    def options(self):
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "width": self.width,
                "weight_decay": self.weight_decay, "seed": self.seed, "augmentation": "8 flips/rotations"}

    @staticmethod
    def to_nchw(patches):
        return np.ascontiguousarray(np.moveaxis(np.asarray(patches, dtype=np.float32), -1, 1))

    def fit(self, patches, y):
        tc = _torch_classes()
        torch = tc["torch"]
        X = self.to_nchw(patches)
        y = np.asarray(y).astype(np.float32)
        n_channels = len(patch_channel_names(self.bands))
        channels = patch_channels(np.moveaxis(X, 1, -1), self.bands).reshape(-1, n_channels).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.nanpercentile(channels, 0.5, axis=0)
            hi = np.nanpercentile(channels, 99.5, axis=0)
            clipped = np.clip(channels, lo, hi)
            mean = np.nanmean(clipped, axis=0)
            sd = np.nanstd(clipped, axis=0)
        lo, hi = np.nan_to_num(lo, nan=-1.0), np.nan_to_num(hi, nan=1.0)
        mean, sd = np.nan_to_num(mean), np.where(np.nan_to_num(sd) > 1e-6, np.nan_to_num(sd), 1.0)
        rng = np.random.default_rng([self.seed, 7])
        n = y.size
        n_pos = max(float(y.sum()), 1.0)
        pos_weight = (n - n_pos) / n_pos if n > n_pos else 1.0
        with torch_training.seeded(torch, self.seed, deterministic=True, threads=1 if _small_work(X) else None,
                                    feedback=self.feedback):
            net = tc["net"](n_channels, self.width)
            module = tc["export"](net, mean, sd, lo, hi, self.bands)
            optimiser = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

            def step(batch):
                xb = Xt[torch.from_numpy(batch)]
                k = int(rng.integers(8))
                xb = torch.rot90(xb, k % 4, dims=(2, 3))
                if k >= 4:
                    xb = torch.flip(xb, dims=(3,))
                optimiser.zero_grad()
                loss = loss_fn(module.logits(xb), yt[torch.from_numpy(batch)])
                loss.backward()
                optimiser.step()
                return loss

            torch_training.train_epochs(n, self.batch_size, self.epochs, rng, step, self.feedback,
                                        start_epoch=lambda epoch: module.train(), progress=None)
            module.eval()
        self.module = module
        return self

    def predict_proba(self, patches, batch_size=64):
        torch = _torch_classes()["torch"]
        X = self.to_nchw(patches)
        threads = torch.get_num_threads()
        if _small_work(X):
            torch.set_num_threads(1)
        try:
            p = compute.torch_predict(self.module, X, batch_size, empty_shape=(0, 2))
        finally:
            torch.set_num_threads(threads)
        return p[:, 1].astype(np.float64)

    def onnx_model(self, patch_shape):
        h, w = patch_shape
        return compute.onnx_bytes(self.module, (1, len(self.bands), h, w), INPUT_PATCHES, OUTPUT_NAME, opset=OPSET)


def make_model_factory(classifier, seed=0, cnn_options=None, feedback=None, bands=None):
    """A function ``fold -> new unfitted model`` for :func:`cross_validate` (``bands``: of the CNN's patches)."""
    if classifier == "hgb":
        return lambda fold=0: HGBPatchModel(seed=seed)
    if classifier == "cnn":
        return lambda fold=0: CNNPatchModel(seed=seed, feedback=feedback, bands=bands, **(cnn_options or {}))
    raise OreMapError(f"Unknown classifier '{classifier}'.", "classifier",
                      f"Choose one of {', '.join(k for k, _ in CLASSIFIERS)}.")
