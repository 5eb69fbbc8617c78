"""The VAE network: encoder, decoder and the deterministic scorer (fixed latent draws stored in the graph), its
batched torch scoring and its ONNX export.

Split out of :mod:`core.geochemistry.vae_anomaly` (network seam); torch is imported only when a network is built.
"""

import numpy as np

from ..engine import compute
from .vae_anomaly import INPUT_NAME, OPSET, OUTPUT_ERRORS, OUTPUT_SCORE


@compute.torch_classes("train the autoencoder")
def _torch(torch, nn):
    activations = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}

    class VAE(nn.Module):
        """Encoder to the mean and log-variance of the latent code; mirrored decoder."""

        def __init__(self, n_in, hidden, latent, activation):
            super().__init__()
            act = activations[activation]
            layers, width = [], n_in
            for h in hidden:
                layers += [nn.Linear(width, h), act()]
                width = h
            self.encoder = nn.Sequential(*layers) if layers else nn.Identity()
            self.mu = nn.Linear(width, latent)
            self.logvar = nn.Linear(width, latent)
            layers, width = [], latent
            for h in reversed(hidden):
                layers += [nn.Linear(width, h), act()]
                width = h
            layers.append(nn.Linear(width, n_in))
            self.decoder = nn.Sequential(*layers)

        def encode(self, x):
            h = self.encoder(x)
            return self.mu(h), torch.clamp(self.logvar(h), -12.0, 12.0)

    class Scorer(nn.Module):
        """Scaled elements (NaN = missing) -> per-element squared error over fixed draws, and the score."""

        def __init__(self, vae, eps, direction="both"):
            super().__init__()
            self.vae = vae
            self.high_only = direction == "high"
            self.register_buffer("eps", torch.as_tensor(np.asarray(eps, np.float32)))

        def forward(self, x):
            observed = ~torch.isnan(x)
            x0 = torch.where(observed, x, torch.zeros_like(x))
            mu, logvar = self.vae.encode(x0)
            z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * self.eps.unsqueeze(0)
            residual = x0.unsqueeze(1) - self.vae.decoder(z)
            if self.high_only:  # enrichment only: values below their reconstruction do not count
                residual = torch.relu(residual)
            err = (residual ** 2).mean(dim=1)
            err = torch.where(observed, err, torch.zeros_like(err))
            count = torch.clamp(observed.to(x.dtype).sum(dim=1, keepdim=True), min=1.0)
            return err, err.sum(dim=1, keepdim=True) / count

    return dict(vae=VAE, scorer=Scorer)


def fixed_draws(draws, latent, seed):
    """The fixed standard-normal draws ``(max(draws, 1), latent)`` (zeros for ``draws = 0``: the latent mean)."""
    if int(draws) <= 0:
        return np.zeros((1, int(latent)), np.float32)
    return np.random.default_rng([int(seed), 7]).standard_normal((int(draws), int(latent))).astype(np.float32)


def score_torch(scorer, Z, batch_size=8192):
    """``(element_errors (n, m), score (n,))`` float32 from a torch scorer (for checks against ONNX)."""
    torch = _torch()["torch"]
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    scorer.eval()
    errs, scores = [], []
    with torch.no_grad():
        for i in range(0, Z.shape[0], batch_size):
            e, s = scorer(torch.from_numpy(Z[i:i + batch_size]))
            errs.append(e.numpy())
            scores.append(s.numpy()[:, 0])
    if not errs:
        return np.zeros((0, Z.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.concatenate(errs), np.concatenate(scores)


def export_onnx(scorer, n_elements):
    """ONNX bytes of a scorer (opset :data:`OPSET`, dynamic batch axis; TorchScript exporter, ``dynamo=False``)."""
    return compute.onnx_bytes(scorer, (1, n_elements), INPUT_NAME, [OUTPUT_ERRORS, OUTPUT_SCORE], opset=OPSET)
