"""SPOS supernet of ShuffleNetV2 blocks (kernel 3/5/7) and a Shuffle-Xception block, with a
ModaMixer after each of the 4 stages (VLT's asymmetric search space).

A *choice* is an int in ``0..3``: 0/1/2 = Shuffle block with kernel 3/5/7, 3 = Shuffle-Xception.
Every :class:`ChoiceBlock` holds all four candidates; one path runs per forward (single-path
one-shot). The backbone has stride 8 (strides 2, 2, 2, 1, 1 for stem and stages 1-4).
"""
from __future__ import annotations

import random
from collections.abc import Sequence as Seq
from dataclasses import dataclass

import torch
from torch import nn

NUM_CHOICES = 4
CHOICE_NAMES = ("shuffle3", "shuffle5", "shuffle7", "xception")


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Interleave channels across ``groups`` (ShuffleNet)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class ShuffleBlock(nn.Module):
    """ShuffleNetV2 unit (kernel ``k``) or, with ``xception=True``, the Shuffle-Xception unit
    (three depth-wise 3x3 + point-wise pairs).

    With stride 1 and ``cin == cout`` half of the channels pass through and the other half runs
    the main branch; otherwise (stride 2 or a width change) a projection branch (depth-wise +
    point-wise) gives ``cout // 2`` channels and the main branch, on the whole input, the rest.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, xception: bool = False) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride: expected 1 or 2, got {stride}")
        if cout % 2 or cin % 2:
            raise ValueError(f"cin/cout: expected even channel counts, got {cin} and {cout}")
        self.split = stride == 1 and cin == cout
        main_in = cin // 2 if self.split else cin
        main_out = cout // 2 if self.split else cout - cout // 2
        mid = cout // 2
        if xception:
            layers = _conv_bn(main_in, main_in, 3, stride, groups=main_in, relu=False)
            layers += _conv_bn(main_in, mid, 1)
            layers += _conv_bn(mid, mid, 3, groups=mid, relu=False)
            layers += _conv_bn(mid, mid, 1)
            layers += _conv_bn(mid, mid, 3, groups=mid, relu=False)
            layers += _conv_bn(mid, main_out, 1)
        else:
            layers = _conv_bn(main_in, mid, 1)
            layers += _conv_bn(mid, mid, k, stride, groups=mid, relu=False)
            layers += _conv_bn(mid, main_out, 1)
        self.main = nn.Sequential(*layers)
        self.proj = (
            None
            if self.split
            else nn.Sequential(*_conv_bn(cin, cin, k, stride, groups=cin, relu=False), *_conv_bn(cin, cout // 2, 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit."""
        if self.proj is None:
            keep, main = x.chunk(2, dim=1)
            out = torch.cat([keep, self.main(main)], 1)
        else:
            out = torch.cat([self.proj(x), self.main(x)], 1)
        return channel_shuffle(out)


class ChoiceBlock(nn.Module):
    """The four candidate units of one searchable layer; ``forward(x, choice)`` runs one."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.choices = nn.ModuleList(
            [ShuffleBlock(cin, cout, k, stride) for k in (3, 5, 7)] + [ShuffleBlock(cin, cout, 3, stride, xception=True)]
        )

    def forward(self, x: torch.Tensor, choice: int) -> torch.Tensor:
        """Run candidate ``choice`` (0..3)."""
        return self.choices[choice](x)


@dataclass(frozen=True)
class SupernetSpec:
    """Geometry of the supernet: stem width, per-stage widths/depths/strides, output width."""

    stem: int = 16
    widths: tuple[int, ...] = (64, 160, 320, 640)
    depths: tuple[int, ...] = (4, 4, 8, 4)
    strides: tuple[int, ...] = (2, 2, 1, 1)
    out_channels: int = 256

    def __post_init__(self) -> None:
        if not (len(self.widths) == len(self.depths) == len(self.strides)):
            raise ValueError(
                f"widths/depths/strides: expected equal lengths, got {len(self.widths)}, {len(self.depths)}, {len(self.strides)}"
            )
        if any(d < 1 for d in self.depths):
            raise ValueError(f"depths: expected positive ints, got {self.depths}")

    @property
    def num_layers(self) -> int:
        """Searchable backbone layers per branch."""
        return sum(self.depths)

    @property
    def num_stages(self) -> int:
        """Number of stages (one ModaMixer each)."""
        return len(self.depths)


@dataclass
class Architecture:
    """One path through the asymmetric search space.

    ``template``/``search``: a choice per backbone layer of each branch; ``mixer_template``/
    ``mixer_search``: per stage, the (mixed, pure) Block_ASS choices of that ModaMixer.
    Saved as one flat list (:meth:`to_list`), loaded with :meth:`from_list`.
    """

    template: list[int]
    search: list[int]
    mixer_template: list[tuple[int, int]]
    mixer_search: list[tuple[int, int]]

    def to_list(self) -> list[int]:
        """Flat list: template layers, search layers, template mixers, search mixers."""
        flat = list(self.template) + list(self.search)
        for pair in list(self.mixer_template) + list(self.mixer_search):
            flat += list(pair)
        return [int(v) for v in flat]

    @classmethod
    def from_list(cls, values: Seq[int], spec: SupernetSpec) -> "Architecture":
        """Inverse of :meth:`to_list` for the given supernet geometry; validates length and range."""
        vals = list(values)
        n, s = spec.num_layers, spec.num_stages
        expected = 2 * n + 4 * s
        if len(vals) != expected:
            raise ValueError(f"arch: expected {expected} choices for this supernet, got {len(vals)}")
        for i, v in enumerate(vals):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < NUM_CHOICES:
                raise ValueError(f"arch[{i}]: expected an int in [0, {NUM_CHOICES - 1}], got {v!r}")
        mt = vals[2 * n : 2 * n + 2 * s]
        ms = vals[2 * n + 2 * s :]
        return cls(
            template=vals[:n],
            search=vals[n : 2 * n],
            mixer_template=[(mt[2 * i], mt[2 * i + 1]) for i in range(s)],
            mixer_search=[(ms[2 * i], ms[2 * i + 1]) for i in range(s)],
        )

    @classmethod
    def random(cls, spec: SupernetSpec, rng: random.Random | None = None) -> "Architecture":
        """Uniformly sampled path (SPOS's Γ)."""
        rng = rng or random.Random()
        return cls.from_list([rng.randrange(NUM_CHOICES) for _ in range(2 * spec.num_layers + 4 * spec.num_stages)], spec)


class SupernetBackbone(nn.Module):
    """One branch (template or search) of the supernet: stem, 4 stages of choice blocks and a
    hook after every stage (the ModaMixer), then a 1x1 convolution to ``out_channels``."""

    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = nn.Sequential(*_conv_bn(3, spec.stem, 3, 2))
        self.stages = nn.ModuleList()
        cin = spec.stem
        for width, depth, stride in zip(spec.widths, spec.depths, spec.strides):
            blocks = [ChoiceBlock(cin, width, stride)] + [ChoiceBlock(width, width, 1) for _ in range(depth - 1)]
            self.stages.append(nn.ModuleList(blocks))
            cin = width
        self.out = nn.Sequential(*_conv_bn(cin, spec.out_channels, 1))

    def stage_channels(self) -> list[int]:
        """Channels after each stage (what each ModaMixer receives)."""
        return list(self.spec.widths)

    def forward(self, x: torch.Tensor, choices: Seq[int], mixers: Seq[nn.Module] | None = None, lang=None, mixer_choices=None) -> torch.Tensor:
        """Run the path ``choices``; after stage s apply ``mixers[s](x, lang, mixer_choices[s])``."""
        if len(choices) != self.spec.num_layers:
            raise ValueError(f"choices: expected {self.spec.num_layers} layer choices, got {len(choices)}")
        x = self.stem(x)
        i = 0
        for s, stage in enumerate(self.stages):
            for block in stage:
                x = block(x, int(choices[i]))
                i += 1
            if mixers is not None:
                x = mixers[s](x, lang, mixer_choices[s])
        return self.out(x)
