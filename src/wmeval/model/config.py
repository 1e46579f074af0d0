"""What a world model is: its configuration (codec, dynamics, training window, sampling settings) and the
size presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from wmeval.model.codec import CodecConfig
from wmeval.model.dynamics import DynamicsConfig
from wmeval.model.value import SCHEMES


@dataclass(frozen=True)
class WorldModelConfig:
    codec: CodecConfig = field(default_factory=CodecConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    window: int = 8  # frames per training window
    context: int = 2  # real frames a rollout starts from
    p_clean: float = 0.1  # share of training frames at tau = 1 (clean context; trains the value head)
    value_scheme: str = "linear"
    proprio_weight: float = 1.0
    value_weight: float = 0.5
    success_weight: float = 0.5  # the success head's BCE (with dynamics.success_head)
    sample_steps: int = 4  # Euler steps per generated frame
    context_tau: float = 0.95  # generated frames re-enter the context slightly noised (exposure bias)
    # residual models: in training, the previous frame enters at a random signal level in [1 - prev_noise, 1],
    # so a model that learns from real previous frames tolerates the imperfect ones it generates itself
    prev_noise: float = 0.0
    # train as a rollout samples (Dynamics.forward's `context`): every frame noisy, attending to copies of the
    # earlier frames at a context signal level in [context_tau, 1]; the readout heads train on those copies
    teacher_forcing: bool = False
    # past frames a generated frame attends to in a rollout (None: window - 1, the most a training window shows)
    context_frames: int | None = None
    # training: each frame's action chunk is hidden with this probability (as at an episode's first frame), so
    # the model also learns the prediction without the action, which `guidance` needs
    action_dropout: float = 0.0
    # sampling: velocity = v_without_action + guidance * (v_with_action - v_without_action) at every Euler step;
    # 1 samples the plain conditional, > 1 follows the actions more strongly (needs action_dropout > 0)
    guidance: float = 1.0
    # training: each latent cell's flow loss weighted by how much it moves between frames, w = (1 + a * m / mean m)
    # / (1 + a) with m = |z_t - z_(t-1)| over channels: the arm and the objects it moves, a small share of the
    # pixels, weigh more than the static scene (0: every cell alike)
    motion_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.value_scheme not in SCHEMES:
            raise ValueError(f"unknown value_scheme {self.value_scheme!r}; valid: {', '.join(SCHEMES)}")
        if not 1 <= self.context < self.window:
            raise ValueError(f"context ({self.context}) must be in [1, window={self.window})")
        if self.codec.grid != self.dynamics.grid or self.codec.latent_channels != self.dynamics.latent_channels:
            raise ValueError("codec latent grid/channels must match the dynamics' grid/latent_channels")
        if not 0 < self.context_tau <= 1 or self.sample_steps < 1:
            raise ValueError("context_tau must be in (0, 1] and sample_steps >= 1")
        if self.context_frames is not None and self.context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {self.context_frames}")
        if not 0 <= self.prev_noise < 1:
            raise ValueError(f"prev_noise must be in [0, 1), got {self.prev_noise}")
        if not 0 <= self.action_dropout < 1:
            raise ValueError(f"action_dropout must be in [0, 1), got {self.action_dropout}")
        if self.motion_weight < 0:
            raise ValueError(f"motion_weight must be >= 0, got {self.motion_weight}")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")
        if self.guidance != 1 and self.action_dropout == 0:
            raise ValueError(
                f"guidance {self.guidance} needs a world model that also learned to predict without the action; "
                "this one was trained without: retrain with `wmeval train --action-dropout 0.1`, or use guidance 1"
            )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> WorldModelConfig:
        d = dict(d)
        c = d.pop("codec")
        codec = CodecConfig(**{**c, "widths": tuple(c["widths"])})
        return cls(codec=codec, dynamics=DynamicsConfig(**d.pop("dynamics")), **d)


def preset(name: str, image_size: int, views: int, state_dim: int, action_dim: int, chunk_len: int) -> WorldModelConfig:
    """Size presets. `tiny` trains on a laptop CPU in minutes; `small` and `base` are for one GPU."""
    sizes = {
        # codec widths, latent channels, d_model, depth, heads, window
        "tiny": ((16, 32, 64), 4, 64, 3, 2, 8),
        "small": ((32, 64, 128), 8, 256, 8, 8, 16),
        "base": ((64, 128, 256), 8, 512, 12, 8, 24),
    }
    if name not in sizes:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(sizes)}")
    widths, C, d, depth, heads, window = sizes[name]
    codec = CodecConfig(image_size=image_size, latent_channels=C, widths=widths)
    dyn = DynamicsConfig(
        latent_channels=C, grid=codec.grid, views=views, patch=2, state_dim=state_dim, action_dim=action_dim,
        chunk_len=chunk_len, d_model=d, depth=depth, heads=heads,
    )  # fmt: skip
    return WorldModelConfig(codec=codec, dynamics=dyn, window=window, context=2)


def sized(cfg: WorldModelConfig, latent_channels: int | None = None, codec_width: int | None = None,
          **dynamics_sizes: int | None) -> WorldModelConfig:
    """`cfg` with another codec size (latent channels; widths w, 2w, 4w) and dynamics sizes (d_model, depth,
    heads, patch); None keeps the preset's value."""
    codec = cfg.codec
    if latent_channels is not None:
        codec = replace(codec, latent_channels=latent_channels)
    if codec_width is not None:
        codec = replace(codec, widths=(codec_width, 2 * codec_width, 4 * codec_width))
    sizes = {k: v for k, v in dynamics_sizes.items() if v is not None}
    return replace(cfg, codec=codec, dynamics=replace(cfg.dynamics, latent_channels=codec.latent_channels, **sizes))
