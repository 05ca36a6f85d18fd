"""Online regression (ONR): DiMP-style discriminative filter learned by steepest descent.

Shapes follow pytracking: sample-major ``[S,B,...]`` for the S frames of B sequences;
filters are ``[B,C,k,k]``; scores ``[S,B,H,W]``. Filters are applied with "same" padding
(``k // 2``), so score cell ``(i, j)`` lies on feature cell ``(i, j)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class InstanceL2Norm(nn.Module):
    """Scale each sample's feature map to a fixed L2 norm (DiMP's ``InstanceL2Norm``).

    ``x * scale * sqrt(C*H*W / sum(x^2))``: every element then has RMS ``scale``.
    """

    def __init__(self, scale: float, eps: float = 1e-5) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale: expected a positive float, got {scale}")
        self.scale = float(scale)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` [N,C,H,W] per sample."""
        n = x.shape[1] * x.shape[2] * x.shape[3]
        ss = x.pow(2).sum(dim=(1, 2, 3), keepdim=True)
        return x * (self.scale * torch.sqrt(n / (ss + self.eps)))


def apply_filter(feat: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Correlate features ``[S,B,C,H,W]`` with per-sequence filters ``[B,C,k,k]`` -> ``[S,B,H,W]``."""
    if feat.ndim != 5 or weights.ndim != 4:
        raise ValueError(f"feat, weights: expected [S,B,C,H,W] and [B,C,k,k], got {tuple(feat.shape)} and {tuple(weights.shape)}")
    s, b, c, h, w = feat.shape
    if weights.shape[:2] != (b, c):
        raise ValueError(f"weights: expected [{b},{c},k,k], got {tuple(weights.shape)}")
    kh, kw = weights.shape[-2:]
    out = F.conv2d(feat.reshape(s, b * c, h, w), weights, padding=(kh // 2, kw // 2), groups=b)
    return out[..., :h, :w]


def apply_feat_transpose(feat: torch.Tensor, activation: torch.Tensor, filter_size: tuple[int, int]) -> torch.Tensor:
    """Adjoint of :func:`apply_filter` w.r.t. the filter: ``[B,C,k,k]``.

    ``out[b,c,u,v] = sum_{s,i,j} activation[s,b,i,j] * feat_pad[s,b,c,i+u,j+v]``, i.e. the
    gradient of ``sum(activation * apply_filter(feat, w))`` with respect to ``w``.
    Written as one grouped convolution so it stays differentiable (meta-training).
    """
    s, b, c, h, w = feat.shape
    kh, kw = filter_size
    ph, pw = kh // 2, kw // 2
    fp = F.pad(feat, (pw, pw, ph, ph))
    inp = fp.permute(2, 1, 0, 3, 4).reshape(c, b * s, fp.shape[-2], fp.shape[-1])
    ker = activation.permute(1, 0, 2, 3)  # [B,S,H,W]
    out = F.conv2d(inp, ker, groups=b)  # [C,B,kh',kw']
    return out[..., :kh, :kw].permute(1, 0, 2, 3).contiguous()


def distance_bins(center: torch.Tensor, size: tuple[int, int], num_bins: int, bin_displacement: float) -> torch.Tensor:
    """Triangular basis functions of the distance to ``center`` (DiMP's ``DistanceMap``).

    Args:
        center: ``[N,2]`` (x, y) in feature cells.
        size: (H, W) of the map.
    Returns:
        ``[N,num_bins,H,W]``: bin ``k < num_bins-1`` is ``max(0, 1 - |d/delta - k|)``, the last bin
        ``clamp(1 + d/delta - (num_bins-1), 0, 1)`` (1 far away).
    """
    dev, dt = center.device, center.dtype
    k = torch.arange(num_bins, device=dev, dtype=dt).reshape(1, -1, 1, 1)
    ys = torch.arange(size[0], device=dev, dtype=dt).reshape(1, 1, -1, 1)
    xs = torch.arange(size[1], device=dev, dtype=dt).reshape(1, 1, 1, -1)
    dy = ys - center[:, 1].reshape(-1, 1, 1, 1)
    dx = xs - center[:, 0].reshape(-1, 1, 1, 1)
    dist = torch.sqrt(dx * dx + dy * dy)
    diff = dist / bin_displacement - k
    return torch.cat([F.relu(1.0 - diff[:, :-1].abs()), (1.0 + diff[:, -1:]).clamp(0, 1)], dim=1)


def gaussian_map(center: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Gaussian ``[N,H,W]`` peaked (value 1) at ``center`` [N,2] (x, y) in feature cells."""
    dev, dt = center.device, center.dtype
    ys = torch.arange(size[0], device=dev, dtype=dt).reshape(1, -1, 1)
    xs = torch.arange(size[1], device=dev, dtype=dt).reshape(1, 1, -1)
    d2 = (xs - center[:, 0, None, None]) ** 2 + (ys - center[:, 1, None, None]) ** 2
    return torch.exp(-0.5 * d2 / (sigma * sigma))


class SteepestDescentGN(nn.Module):
    """DiMP's optimiser: steepest descent with the Gauss-Newton step length (DuML eq. 7-8).

    Per sequence, minimises ``L(f) = 1/2 sum_s ||r_s(f)||^2 + lambda/2 ||f||^2`` with residual
    ``r = sqrt(w_s) * v_c * (m_c * p + (1 - m_c) * max(0, p) - y_c)`` and ``p = f * x_s``, where
    the label ``y_c``, target mask ``m_c`` and spatial weight ``v_c`` are learned linear
    combinations of triangular basis functions of the distance to the target centre ``c``.
    One iteration: ``g = grad L(f)``, ``alpha = g^T g / (g^T (J^T J + lambda I) g)``,
    ``f <- f - step * alpha * g`` with learnable ``step`` and ``lambda``.

    Args:
        num_iter: default number of iterations.
        init_step_length: initial step-length factor (learned as its log).
        init_filter_reg: initial regularisation weight (``lambda = reg^2``, learned).
        min_filter_reg: lower bound of ``reg``.
        num_dist_bins, bin_displacement: the triangular basis (cells).
        init_gauss_sigma: width (cells) of the Gaussian the label function starts from.
        mask_init_factor: initial steepness of the target mask.
        alpha_eps: added to ``lambda`` in the step-length denominator (stability).
    """

    def __init__(
        self,
        num_iter: int = 5,
        init_step_length: float = 1.0,
        init_filter_reg: float = 1e-2,
        min_filter_reg: float = 1e-3,
        num_dist_bins: int = 10,
        bin_displacement: float = 0.5,
        init_gauss_sigma: float = 1.0,
        mask_init_factor: float = 4.0,
        alpha_eps: float = 0.0,
    ) -> None:
        super().__init__()
        if num_iter < 0:
            raise ValueError(f"num_iter: expected >= 0, got {num_iter}")
        if num_dist_bins < 2 or bin_displacement <= 0:
            raise ValueError(f"num_dist_bins, bin_displacement: expected >= 2 and > 0, got {num_dist_bins}, {bin_displacement}")
        if init_gauss_sigma <= 0 or init_step_length <= 0 or init_filter_reg <= 0:
            raise ValueError("init_gauss_sigma, init_step_length, init_filter_reg: expected positive values, got "
                             f"{init_gauss_sigma}, {init_step_length}, {init_filter_reg}")
        self.num_iter = int(num_iter)
        self.num_dist_bins = int(num_dist_bins)
        self.bin_displacement = float(bin_displacement)
        self.min_filter_reg = float(min_filter_reg)
        self.alpha_eps = float(alpha_eps)
        self.log_step_length = nn.Parameter(math.log(init_step_length) * torch.ones(1))
        self.filter_reg = nn.Parameter(init_filter_reg * torch.ones(1))
        d = torch.arange(num_dist_bins, dtype=torch.float32).reshape(1, -1, 1, 1) * bin_displacement
        gauss = torch.exp(-0.5 * (d / init_gauss_sigma) ** 2)
        self.label_map_predictor = nn.Conv2d(num_dist_bins, 1, 1, bias=False)
        self.target_mask_predictor = nn.Conv2d(num_dist_bins, 1, 1, bias=False)
        self.spatial_weight_predictor = nn.Conv2d(num_dist_bins, 1, 1, bias=False)
        with torch.no_grad():
            self.label_map_predictor.weight.copy_(gauss - gauss.min())
            self.target_mask_predictor.weight.copy_(mask_init_factor * torch.tanh(2.0 - d))
            self.spatial_weight_predictor.weight.fill_(1.0)

    def residual_terms(self, centers: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Label ``y``, target mask ``m`` and spatial weight ``v``, each ``[S,B,H,W]``, for centres ``[S,B,2]``."""
        s, b = centers.shape[:2]
        bins = distance_bins(centers.reshape(-1, 2), size, self.num_dist_bins, self.bin_displacement)
        y = self.label_map_predictor(bins).reshape(s, b, *size)
        m = torch.sigmoid(self.target_mask_predictor(bins)).reshape(s, b, *size)
        v = self.spatial_weight_predictor(bins).reshape(s, b, *size)
        return y, m, v

    def step(
        self,
        weights: torch.Tensor,
        feat: torch.Tensor,
        label: torch.Tensor,
        mask: torch.Tensor,
        sample_weight: torch.Tensor,
        step_length: torch.Tensor | float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Gauss-Newton steepest-descent step; returns ``(new_weights, loss_before)``.

        ``sample_weight`` ``[S,B,H,W]`` multiplies the residual (``sqrt(w_s) * v_c``).
        ``step_length`` defaults to the learned factor ``exp(log_step_length)``.
        """
        reg = self.filter_reg.clamp(min=self.min_filter_reg) ** 2
        if step_length is None:
            step_length = torch.exp(self.log_step_length)
        fsz = tuple(weights.shape[-2:])
        scores = apply_filter(feat, weights)
        scores_act = mask * scores + (1.0 - mask) * F.relu(scores)
        score_mask = mask + (1.0 - mask) * (scores > 0).to(scores.dtype)  # d(scores_act)/d(scores)
        residuals = sample_weight * (scores_act - label)
        b = weights.shape[0]
        loss = 0.5 * (residuals.pow(2).sum() + reg * weights.pow(2).sum()) / b
        grad = apply_feat_transpose(feat, score_mask * sample_weight * residuals, fsz) + reg * weights
        jg = sample_weight * score_mask * apply_filter(feat, grad)  # J g
        num = grad.pow(2).sum(dim=(1, 2, 3))
        den = jg.pow(2).sum(dim=(0, 2, 3)) + (reg + self.alpha_eps) * num
        alpha = num / den.clamp(min=1e-8)
        new = weights - (step_length * alpha).reshape(-1, 1, 1, 1) * grad
        return new, loss

    def forward(
        self,
        weights: torch.Tensor,
        feat: torch.Tensor,
        centers: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        num_iter: int | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Run ``num_iter`` steps from ``weights`` ``[B,C,k,k]`` on ``feat`` ``[S,B,C,H,W]``.

        Args:
            centers: ``[S,B,2]`` target centres (x, y) in feature cells.
            sample_weight: ``[S]`` or ``[S,B]`` non-negative sample weights (default ``1/S``).
        Returns:
            ``(final_weights, iterates, losses)``; ``iterates`` holds the initial and every
            updated filter (``num_iter + 1`` tensors); ``losses`` the loss before each step.
        """
        if feat.ndim != 5:
            raise ValueError(f"feat: expected [S,B,C,H,W], got {tuple(feat.shape)}")
        s, b = feat.shape[:2]
        if centers.shape != (s, b, 2):
            raise ValueError(f"centers: expected [{s},{b},2], got {tuple(centers.shape)}")
        n = self.num_iter if num_iter is None else int(num_iter)
        if sample_weight is None:
            sw = feat.new_full((s, b), 1.0 / s)
        else:
            sw = sample_weight.to(feat.dtype)
            if sw.ndim == 1:
                sw = sw[:, None].expand(s, b)
            if sw.shape != (s, b):
                raise ValueError(f"sample_weight: expected [{s}] or [{s},{b}], got {tuple(sample_weight.shape)}")
            if (sw < 0).any():
                raise ValueError("sample_weight: expected non-negative weights")
        size = (feat.shape[-2], feat.shape[-1])
        label, mask, v = self.residual_terms(centers, size)
        sample_w = torch.sqrt(sw)[..., None, None] * v
        iterates, losses = [weights], []
        for _ in range(n):
            weights, loss = self.step(weights, feat, label, mask, sample_w)
            iterates.append(weights)
            losses.append(loss)
        return weights, iterates, losses
