"""FID and KID on Inception-v3 features, only from a local weights file.

Nothing is ever downloaded: the network is torchvision's ``inception_v3`` built with
``weights=None`` and filled from ``evaluate.inception_weights`` (a state dict, e.g. torchvision's
``inception_v3_google-*.pth``). Without that file the metrics are reported as
:data:`NOT_COMPUTED`, never as a number. ImageNet features are a weak judge of radiographs anyway:
the weight-free metrics of this package are the primary ones.

FID (Heusel et al. 2017): Frechet distance of Gaussians fitted to the 2048-d pool features.
KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel, mean over random
subsets (x 1e3 in reports). Lower is better for both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from pipeline.core.config import param
from pipeline.core.device import torch_device

NOT_COMPUTED = "not computed (no weights file)"
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class FIDConfig:
    batch: int = param(32, ge=1)
    kid_subsets: int = param(100, ge=1)
    kid_subset_size: int = param(1000, ge=2)   # capped at the smaller set's size
    device: Literal["cpu", "cuda", "auto"] = "cpu"


def weights_available(path: str | os.PathLike | None) -> bool:
    return bool(path) and Path(path).is_file()


def load_inception(path: str | os.PathLike, device: str = "cpu") -> torch.nn.Module:
    """torchvision Inception v3 (no download) with the weights of a local file; fc removed."""
    from torchvision.models import inception_v3

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{path} is not a torchvision inception_v3 state dict: {str(e)[:300]}") from e
    net.fc = torch.nn.Identity()
    return net.to(torch_device(device)).eval()


def features(net: torch.nn.Module, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """2048-d pool features of grey images (n, H, W) in [0, 1] (grey copied to RGB, 299x299)."""
    images = np.asarray(images, dtype=np.float32)
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for k in range(0, len(images), batch):
            x = torch.from_numpy(images[k:k + batch]).unsqueeze(1)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
            x = ((x - _MEAN) / _STD).to(device)
            out.append(net(x).float().cpu())
    return torch.cat(out).numpy().astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2) of the two feature sets (n, d)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    x = (a - mu1) / np.sqrt(len(a) - 1)
    y = (b - mu2) / np.sqrt(len(b) - 1)
    tr1, tr2 = float((x * x).sum()), float((y * y).sum())
    if min(len(a), len(b)) < a.shape[1]:
        # S1 = x'x, S2 = y'y: the non-zero eigenvalues of S1 S2 are the squared singular values of
        # x y', so tr((S1 S2)^1/2) is the nuclear norm of the small (n1, n2) matrix x y' (exact).
        tr_covmean = float(np.linalg.svd(x @ y.T, compute_uv=False).sum())
    else:
        covmean = linalg.sqrtm((x.T @ x) @ (y.T @ y))
        tr_covmean = float(np.trace(covmean.real))
    return float(((mu1 - mu2) ** 2).sum() + tr1 + tr2 - 2.0 * tr_covmean)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int, subset_size: int, seed: int) -> float:
    """Unbiased MMD^2 (polynomial kernel (x.y/d + 1)^3), mean over subsets."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least two images per set")
    d = a.shape[1]
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals))


def fid_kid(net: torch.nn.Module | None, reference: np.ndarray, candidate: np.ndarray, cfg: FIDConfig,
            seed: int, reference_features: np.ndarray | None = None) -> dict:
    """{"fid": ..., "kid_x1e3": ...} or NOT_COMPUTED for both when ``net`` is None."""
    if net is None:
        return {"fid": NOT_COMPUTED, "kid_x1e3": NOT_COMPUTED}
    fr = features(net, reference, cfg.batch) if reference_features is None else reference_features
    fc = features(net, candidate, cfg.batch)
    return {"fid": frechet_distance(fr, fc),
            "kid_x1e3": 1e3 * kernel_inception_distance(fr, fc, cfg.kid_subsets, cfg.kid_subset_size, seed)}
