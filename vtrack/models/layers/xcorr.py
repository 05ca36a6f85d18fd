"""Cross-correlation layers of Siamese trackers (SiamFC / SiamRPN++)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Why a network that calls :func:`xcorr_depthwise` exports with a fixed batch only (the reason a
#: deploy branch gives in ``Branch.no_dynamic_batch``).
XCORR_STATIC_BATCH = ("its depth-wise cross-correlation (vtrack.models.layers.xcorr.xcorr_depthwise) folds the batch "
                      "into the groups of one grouped convolution, and ONNX Conv needs `group` as a constant")


def xcorr_depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depth-wise cross-correlation of each search map with its own template kernel.

    Args:
        x: search features ``[B,C,H,W]``.
        kernel: template features ``[B,C,h,w]`` with ``h <= H`` and ``w <= W``.

    Returns:
        ``[B,C,H-h+1,W-w+1]``: channel ``c`` of sample ``b`` is ``x[b,c]`` correlated with
        ``kernel[b,c]`` (no padding), computed as one grouped convolution.
    """
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"x, kernel: expected 4-D tensors, got {tuple(x.shape)} and {tuple(kernel.shape)}")
    if x.shape[:2] != kernel.shape[:2]:
        raise ValueError(f"kernel: expected batch and channels {tuple(x.shape[:2])}, got {tuple(kernel.shape[:2])}")
    if kernel.shape[2] > x.shape[2] or kernel.shape[3] > x.shape[3]:
        raise ValueError(f"kernel: spatial size {tuple(kernel.shape[2:])} exceeds the search size {tuple(x.shape[2:])}")
    b, c, h, w = x.shape
    out = F.conv2d(x.reshape(1, b * c, h, w), kernel.reshape(b * c, 1, *kernel.shape[2:]), groups=b * c)
    return out.reshape(b, c, out.shape[2], out.shape[3])


class DepthwiseXCorrHead(nn.Module):
    """SiamRPN++'s ``DepthwiseXCorr``: 3x3 conv on both inputs, depth-wise xcorr, 1x1 head.

    ``forward(kernel, search)`` returns ``[B,out_channels,H',W']`` with
    ``H' = (H-2) - (h-2) + 1`` for ``kernel`` ``[B,C,h,w]`` and ``search`` ``[B,C,H,W]``.
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("hidden", hidden), ("out_channels", out_channels)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.conv_kernel = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
        )
        self.conv_search = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
        )
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
        )

    def embed_kernel(self, kernel: torch.Tensor) -> torch.Tensor:
        """The template branch alone (cache it once per sequence at inference)."""
        return self.conv_kernel(kernel)

    def correlate(self, kernel_embedded: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Search branch, xcorr with an embedded kernel from :meth:`embed_kernel`, and head."""
        return self.head(xcorr_depthwise(self.conv_search(search), kernel_embedded))

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Correlate ``kernel`` [B,C,h,w] with ``search`` [B,C,H,W] and apply the head."""
        return self.correlate(self.embed_kernel(kernel), search)
