"""The members of an abundance ensemble: scikit-learn regressors, multi-output gradient boosting and
the 1D CNN regressor (the engine's spectral network with a regression head, trained with the
shared loop), each exported to ONNX.
"""

import numpy as np

from ..engine import compute, torch_training
from ..engine.errors import OreMapError
from ..engine.feedback import ensure


DEFAULT_CNN = {"channels": (16, 32, 32), "kernels": (7, 5, 3), "hidden": 64, "dropout": 0.1,
               "epochs": 30, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4}


def _sklearn_member(family, n_samples, n_bands, n_outputs, seed, n_jobs, options):
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if family == "pls":
        n_components = int(options.get("n_components", 12))
        return make_pipeline(StandardScaler(), PLSRegression(
            n_components=int(max(1, min(n_components, n_bands, n_samples - 1))), scale=False))
    if family == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=options.get("alphas", np.logspace(-3, 4, 15))))
    if family == "extra_trees":
        return ExtraTreesRegressor(**{"n_estimators": 30, "min_samples_leaf": 8, "max_features": 0.3, **options},
                                   n_jobs=n_jobs, random_state=seed)
    raise OreMapError(f"Unknown model family '{family}'.", "families")


class _HGBMulti:
    """One HistGradientBoostingRegressor per output (scikit-learn's is single-output)."""

    def __init__(self, seed, options=None):
        self.seed = seed
        # sized for prediction speed too: every tree is walked for every pixel of a scene
        self.options = {"max_iter": 30, "learning_rate": 0.25, "max_leaf_nodes": 15, "min_samples_leaf": 20,
                        "l2_regularization": 1.0, **(options or {})}
        self.models = []

    def fit(self, X, T):
        from sklearn.ensemble import HistGradientBoostingRegressor

        from ..engine.compute import openmp_limit

        with openmp_limit(X.shape[0]):
            self.models = [HistGradientBoostingRegressor(**self.options, early_stopping=False,
                                                         random_state=self.seed).fit(X, T[:, j])
                           for j in range(T.shape[1])]
        return self

    def predict(self, X):
        return np.column_stack([m.predict(X) for m in self.models])


class _CNNRegressor:
    """The spectral 1D CNN of :mod:`core.engine.spectral_network` with a regression head (MSE on standardised
    targets)."""

    def __init__(self, seed, options=None, feedback=None):
        self.seed = seed
        self.options = {**DEFAULT_CNN, **(options or {})}
        self.feedback = ensure(feedback)
        self.module = None

    def fit(self, X, T):
        from ..engine.spectral_network import SpectralCNN, _torch_classes

        torch = _torch_classes()["torch"]
        o = self.options
        X = np.asarray(X, np.float32)
        T = np.asarray(T, np.float64)
        xm, xs = X.mean(axis=0), X.std(axis=0)
        xs = np.where(xs > 1e-6, xs, 1.0)
        tm, ts = T.mean(axis=0), T.std(axis=0)
        ts = np.where(ts > 1e-9, ts, 1.0)
        Z = torch.from_numpy(((X - xm) / xs).astype(np.float32))
        U = torch.from_numpy(((T - tm) / ts).astype(np.float32))
        rng = np.random.default_rng([self.seed, 7])
        with torch_training.seeded(torch, self.seed, deterministic=True, feedback=self.feedback):
            net = SpectralCNN(X.shape[1], T.shape[1], channels=o["channels"], kernels=o["kernels"],
                              hidden=o["hidden"], dropout=o["dropout"])
            opt = torch.optim.AdamW(net.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
            epochs = int(o["epochs"])
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=o["lr"], total_steps=epochs * max(1, -(-len(Z) // o["batch_size"])))
            loss_fn = torch.nn.MSELoss()
            last = {}

            def step(batch):
                if batch.numel() < 2:  # skipped, but the one-cycle schedule counts it
                    sched.step()
                    return None
                opt.zero_grad()
                loss = loss_fn(net(Z[batch]), U[batch])
                loss.backward()
                opt.step()
                sched.step()
                last["loss"] = loss
                return loss

            def end_epoch(epoch, train_loss):
                if "loss" in last and not np.isfinite(last["loss"].item()):
                    raise OreMapError("The CNN regressor diverged (the loss is not a number).", "training",
                                      "Leave the CNN out or check the spectra for extreme values.")

            torch_training.train_epochs(len(Z), o["batch_size"], epochs, rng, step, self.feedback,
                                        start_epoch=lambda epoch: net.train(), end_epoch=end_epoch, min_batch=1,
                                        as_tensor=torch)
        net.eval()
        self.module = _export_module(torch, net, xm, xs, tm, ts)
        return self

    def predict(self, X):
        return compute.torch_predict(self.module, X, 8192).astype(np.float64)

    def to_onnx(self, n_bands):
        from ..engine.spectral_network import export_onnx

        return export_onnx(self.module, n_bands)


def _export_module(torch, net, xm, xs, tm, ts):
    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            for name, value in (("xm", xm), ("xs", xs), ("tm", tm), ("ts", ts)):
                self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)))

        def forward(self, x):
            return self.net((x - self.xm) / self.xs) * self.ts + self.tm

    module = Regressor()
    module.eval()
    return module


def make_member(family, n_samples, n_bands, n_outputs, seed=0, options=None, n_jobs=None, feedback=None):
    """An unfitted member with ``fit(X, T)`` / ``predict(X)``; ``options`` override its defaults
    (e.g. ``{"epochs": 20}`` for the CNN, ``{"max_iter": 50}`` for gradient boosting)."""
    options = dict(options or {})
    if family == "hgb":
        return _HGBMulti(seed, options)
    if family == "cnn":
        return _CNNRegressor(seed, options, feedback)
    return _sklearn_member(family, n_samples, n_bands, n_outputs, seed, n_jobs, options)


def pls_to_onnx(pipeline, n_bands, input_name="X", output_name="variable"):
    """The PLS member (``StandardScaler`` then ``PLSRegression``) as ``((X - mean) / scale) @ W + b``.

    PLS regression is affine, so ``b`` is the fitted PLS's prediction at the origin of the standardised
    space and ``W``'s rows its predictions at the unit vectors minus ``b``: only the public ``predict`` and the
    scaler's ``mean_``/``scale_`` are read. skl2onnx reads ``PLSRegression.coef_``, whose shape scikit-learn
    1.1-1.2 announce will change, and that FutureWarning reached the user's log at every training.
    """
    from ..engine.onnx_ensemble import IR_VERSION, OPSET, onnx_modules

    onnx, helper, numpy_helper = onnx_modules()
    scaler, pls = pipeline[0], pipeline[-1]
    b = int(n_bands)
    origin = np.asarray(pls.predict(np.zeros((1, b))), np.float64).reshape(1, -1)
    W = np.asarray(pls.predict(np.eye(b)), np.float64).reshape(b, -1) - origin
    mean = np.zeros(b) if scaler.mean_ is None else scaler.mean_
    scale = np.ones(b) if scaler.scale_ is None else scaler.scale_
    initializers = [numpy_helper.from_array(np.asarray(v, np.float32).reshape(shape), name) for v, shape, name in (
        (mean, (1, b), "mean"), (scale, (1, b), "scale"), (W, W.shape, "weights"), (origin, origin.shape, "bias"))]
    nodes = [helper.make_node("Sub", [input_name, "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["standardised"]),
             helper.make_node("MatMul", ["standardised", "weights"], ["product"]),
             helper.make_node("Add", ["product", "bias"], [output_name])]
    graph = helper.make_graph(
        nodes, "pls", [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, [None, b])],
        [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, [None, W.shape[1]])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


def member_onnx(family, member, n_bands):
    from ..engine import onnx_ensemble

    if family == "hgb":
        return onnx_ensemble.hgb_to_onnx(member.models, n_bands)
    if family == "cnn":
        return member.to_onnx(n_bands)
    if family == "pls":
        return pls_to_onnx(member, n_bands)
    return onnx_ensemble.sklearn_to_onnx(member, n_bands)
