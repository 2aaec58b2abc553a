"""params.yaml ``train`` as a typed config (:class:`TrainConfig`), and which keys a resumed run may change."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pipeline.core.config import ConfigError, build, param
from pipeline.gan.diffaugment import parse_policy
from pipeline.gan.models import ModelConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """params.yaml ``train``. ``overrides.<variant>`` replaces keys for one variant."""

    # architecture (see pipeline.gan.models.ModelConfig)
    model: Literal["resnet", "baseline"] = "resnet"
    z_dim: int = param(64, ge=1)
    features: int = param(8, ge=1)
    max_features: int = param(64, ge=1)
    critic_norm: Literal["none", "layer"] = "none"
    min_grid: int = param(4, ge=1)
    layout_basis: int = param(32, ge=0)   # resnet: learned layout basis, started at the train set's principal components
    critic_mbstd: bool = True        # resnet: minibatch standard deviation channel in the critic
    upsample: Literal["nearest", "bilinear"] = "nearest"   # resnet generator: how each block doubles its grid
    layout_lr: float = param(0.02, ge=0)   # the generator's per-pixel offset and basis learn at this x lr
    # optimisation
    steps: int = param(800, ge=1)    # generator steps
    batch: int = param(8, ge=1)      # global batch (split across ranks)
    n_critic: int = param(2, ge=1)
    lr: float = param(5e-4, gt=0)    # Adam learning rate of the generator (and of the critic unless lr_d)
    lr_d: float | None = param(None, gt=0)   # critic's learning rate; null: same as lr
    betas: list[float] = param(factory=lambda: [0.0, 0.9], ge=0, lt=1, length=2)
    gp_lambda: float = param(10.0, ge=0)
    # data efficiency
    diffaugment: str = ""            # e.g. "translation,cutout,brightness,contrast"; empty: off
    hflip: bool = True
    ema_decay: float = param(0.99, ge=0, lt=1)
    mean_init: bool = True           # resnet: the generator's output offset starts at the train set's mean image
    # logging and checkpoints (do not change results)
    log_every: int = param(25, ge=1)
    sample_every: int = param(100, ge=1)
    sample_count: int = param(16, ge=1)
    checkpoint_every: int = param(50, ge=1)
    keep_checkpoints: int = param(2, ge=1)
    # speed (do not change the maths, except amp's rounding)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "off"] = "auto"      # auto: bf16 on CUDA of compute capability >= 8.0, else off
    channels_last: Literal["auto", "on", "off"] = "auto"   # auto: on CUDA only
    compile: bool = False
    data_on_device_gb: float = param(8.0, ge=0)   # keep the train set on the GPU when it is at most this big
    tf32: bool = True                # CUDA: fp32 matmuls/convolutions (penalty, amp off) in TF32
    gpus: int | Literal["auto"] = param("auto", ge=0)   # processes, one per GPU (pipeline.gan.launch); 1 on the CPU
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"   # auto: NCCL on CUDA, gloo on the CPU; gloo: several ranks on one GPU (checks)
    critic_concat: bool = False      # real and fake through the critic in one forward (the same maths, other rounding)
    cpu_threads: int = param(1, ge=0)   # CPU: torch threads in all (0: every core); sets the float rounding
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_policy(self.diffaugment)
        known = {f.name for f in dataclasses.fields(self)} - {"overrides"}
        for variant, changes in self.overrides.items():
            bad = sorted(set(changes or {}) - known)
            if bad:
                raise ConfigError(f"train.overrides.{variant}.{bad[0]}: unknown key; known: {sorted(known)}")

    @classmethod
    def baseline_recipe(cls, **changes: Any) -> "TrainConfig":
        """The earlier attempt's recipe, for side-by-side runs: DCGAN architecture (features 64,
        z 100), Adam lr 1e-4 betas (0, 0.9), lambda 10, n_critic 5, batch 64, fp32, no DiffAugment,
        no EMA (decay 0: the exported generator is the live one), no flips, no mean-image start."""
        recipe = dict(model="baseline", z_dim=100, features=64, lr=1e-4, lr_d=None, betas=[0.0, 0.9],
                      gp_lambda=10.0, n_critic=5, batch=64, diffaugment="", hflip=False, ema_decay=0.0,
                      mean_init=False,
                      amp="off", channels_last="off", compile=False)
        return cls(**{**recipe, **changes})

    def model_config(self) -> ModelConfig:
        return ModelConfig(model=self.model, z_dim=self.z_dim, features=self.features,
                           max_features=self.max_features, critic_norm=self.critic_norm,
                           min_grid=self.min_grid, layout_basis=self.layout_basis,
                           critic_mbstd=self.critic_mbstd, upsample=self.upsample)

    def for_variant(self, name: str, variants: Any = None) -> "TrainConfig":
        """This config with ``overrides[name]`` applied. Unknown keys are an error, and so is an
        override naming none of ``variants`` (the variants params.yaml defines), e.g. a typo."""
        if variants is not None:
            strays = sorted(set(self.overrides) - set(variants))
            if strays:
                raise ConfigError(f"train.overrides.{strays[0]}: no variant of that name; "
                                  f"params.yaml defines {sorted(variants)}")
        data = dataclasses.asdict(self)
        data.update(self.overrides.get(name, {}))
        data["overrides"] = {}
        return build(TrainConfig, data, f"train.overrides.{name}")


# keys that may change between a checkpoint and its resumption without invalidating it (the launch:
# device, processes and speed settings; logging; the length of the run)
RESUMABLE_KEYS = {"steps", "log_every", "sample_every", "sample_count", "checkpoint_every",
                  "keep_checkpoints", "device", "channels_last", "compile", "data_on_device_gb",
                  "tf32", "gpus", "cpu_threads", "dist_backend", "critic_concat", "overrides"}
