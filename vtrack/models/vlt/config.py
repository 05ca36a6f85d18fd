"""The ``model`` and ``tracker`` sections of a VLT config (:class:`VLTConfig`, :class:`VLTTrackerConfig`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from vtrack.models.vlt.supernet import SupernetSpec
from vtrack.tracking.crops import CropConfig
from vtrack.tracking.postprocess import StateUpdateConfig


@dataclass
class LanguageConfig:
    """``kind``: hashing (built-in) | transformers (local ``model_dir``) | minilm (optional package)."""

    kind: str = "hashing"
    dim: int = 128
    model_dir: str | None = None


@dataclass
class SCARConfig:
    """SiamCAR head options."""

    tower_depth: int = 4
    template_crop: int | None = 7


@dataclass
class TTConfig:
    """TransT-style fusion options (attention runs on vtrack.kernels with ``model.backend``)."""

    dim: int = 256
    heads: int = 8
    layers: int = 4
    ffn: int = 2048
    dropout: float = 0.1
    topk: int | None = None


@dataclass
class VLTConfig:
    """The ``model`` section of a VLT config."""

    name: str = "vlt"
    head: str = "scar"
    stem: int = 16
    widths: list[int] = field(default_factory=lambda: [64, 160, 320, 640])
    depths: list[int] = field(default_factory=lambda: [4, 4, 8, 4])
    strides: list[int] = field(default_factory=lambda: [2, 2, 1, 1])
    out_channels: int = 256
    share_backbone: bool = False
    arch: list[int] | str | None = None
    language: LanguageConfig = field(default_factory=LanguageConfig)
    use_language: bool = True
    missing_language: str = "zero"
    mixer_residual: bool = True
    template_size: int = 127
    search_size: int = 255
    scar: SCARConfig = field(default_factory=SCARConfig)
    tt: TTConfig = field(default_factory=TTConfig)
    backend: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.head not in ("scar", "tt"):
            raise ValueError(f"model.head: expected 'scar' or 'tt', got {self.head!r}")
        if self.missing_language not in ("zero", "template"):
            raise ValueError(f"model.missing_language: expected 'zero' or 'template', got {self.missing_language!r}")

    @property
    def spec(self) -> SupernetSpec:
        """Supernet geometry."""
        return SupernetSpec(self.stem, tuple(self.widths), tuple(self.depths), tuple(self.strides), self.out_channels)

    @property
    def stride(self) -> int:
        """Total backbone stride."""
        s = 2
        for v in self.strides:
            s *= v
        return s


@dataclass
class VLTTrackerConfig:
    """The ``tracker`` section: crops, SiamCAR post-processing constants and the state update.

    ``update`` (:class:`~vtrack.tracking.postprocess.StateUpdateConfig`) holds SiamCAR's size
    smoothing ``lr = size_lr * penalty * score`` (``size_lr_by_score: true``, ``size_lr`` 0.33 by
    default); a partial ``update`` mapping starts from StateUpdateConfig's own defaults, so give both.
    ``crop``: crop window placement (:class:`~vtrack.tracking.crops.CropConfig`).
    """

    context: str = "siamfc"
    template_factor: float = 1.0
    search_factor: float = 2.0
    penalty_k: float = 0.04
    window_influence: float = 0.4
    update: StateUpdateConfig = field(default_factory=lambda: StateUpdateConfig(size_lr=0.33, size_lr_by_score=True))
    crop: CropConfig = field(default_factory=CropConfig)
    use_language: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.window_influence <= 1.0:
            raise ValueError(f"tracker.window_influence: expected a value in [0, 1], got {self.window_influence}")
