"""SparseTT speed: sparse-attention kernel, training step and tracker FPS per kernel backend.

``python -m vtrack.bench.sparsett --config configs/sparsett/sparsett_tiny.yaml`` times, for
``reference`` and every fused backend that can run top-K attention on the device:

* the decoder's sparse self-attention alone (forward + backward) at the config's shape, next to
  the SparseTT release's composite (dense logits, ``topk``, scatter into a -inf matrix, softmax);
* one training step (forward, eq. 4 loss, backward, AdamW) on a fixed random batch;
* the tracker at batch 1 (crop, model, post-processing) via :func:`vtrack.bench.trackers.bench_tracker`.

Weights and data are random: speed does not depend on them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

import torch

from vtrack.models.sparsett.config import SparseTTModelConfig
from vtrack.models.sparsett.model import SparseTT, score_map_geometry

__all__ = ["available_topk_backends", "bench_attention", "bench_train_step", "release_topk_attention", "main"]


def release_topk_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, topk: int) -> torch.Tensor:
    """The SparseTT release's sparse attention: dense logits, top-K, scatter into -inf, softmax, matmul."""
    s = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    val, idx = s.topk(topk, dim=-1)
    sparse = torch.full_like(s, float("-inf")).scatter(-1, idx, val)
    return torch.matmul(torch.softmax(sparse, dim=-1), v)


def available_topk_backends(device: torch.device | str = "cpu") -> list[str]:
    """``reference`` plus the fused backends that can run top-K attention on ``device``."""
    import vtrack.kernels as kernels

    q = torch.zeros(1, 2, 16, 16, device=torch.device(device))
    names = kernels.available_backends(kernels.build_inputs(q, q, q, topk=4))
    return ["reference", *[b for b in names if b != "reference"]]


def _time(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_attention(batch: int, heads: int, tokens: int, head_dim: int, topk: int, backend: str, *,
                    device: torch.device | str = "cpu", repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of a forward + backward of top-K self-attention; ``backend="release"`` is the composite."""
    import vtrack.kernels as kernels

    dev = torch.device(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(batch, heads, tokens, head_dim, generator=g).to(dev).requires_grad_() for _ in range(3))

    def step() -> None:
        if backend == "release":
            out = release_topk_attention(q, k, v, topk)
        else:
            out = kernels.topk_attention(q, k, v, topk, backend=backend)
        out.sum().backward()

    return _time(step, repeats, warmup, dev)


def bench_train_step(cfg: dict[str, Any], backend: str, *, batch_size: int = 8, device: torch.device | str = "cpu",
                     repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds of one training step (forward, loss, backward, AdamW) with kernel ``backend``."""
    from vtrack.models import get_family

    dev = torch.device(device)
    fam = get_family("sparsett")
    torch.manual_seed(0)
    model: SparseTT = fam.build_model(cfg["model"]).to(dev).train()
    model.set_backend(backend)
    crit = fam.build_criterion(cfg).to(dev)
    zs, xs = model.cfg.template_size, model.cfg.search_size
    batch = {"template": torch.randn(batch_size, 3, zs, zs, device=dev),
             "search": torch.randn(batch_size, 3, xs, xs, device=dev),
             "search_box": torch.tensor([[0.35 * xs, 0.4 * xs, 0.3 * xs, 0.25 * xs]] * batch_size, device=dev)}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss, _ = crit(model(batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _time(step, repeats, warmup, dev)


def main(argv: list[str] | None = None) -> int:
    """Command line entry (prints a JSON list of rows and a markdown table)."""
    from vtrack.bench.trackers import bench_tracker
    from vtrack.config import from_dict, load_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/sparsett/sparsett_tiny.yaml")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backends", nargs="*", default=None, help="default: reference + available fused backends")
    p.add_argument("--batch-size", type=int, default=8, help="training-step batch")
    p.add_argument("--frames", type=int, default=30, help="timed tracker frames")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", nargs="*", default=[], choices=["attention", "train", "tracker"])
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    mc = from_dict(SparseTTModelConfig, cfg["model"], "model")
    dev = torch.device(args.device)
    backends = args.backends or available_topk_backends(dev)
    side, _, _ = score_map_geometry(mc)
    tokens = side * side
    topk = mc.topk if mc.topk is not None else tokens
    rows: list[dict[str, Any]] = []
    if "attention" not in args.skip:
        for name in ["release", *backends]:
            sec = bench_attention(args.batch_size, mc.num_heads, tokens, mc.dim // mc.num_heads, topk, name,
                                  device=dev, repeats=max(args.repeats, 5))
            rows.append({"what": "SMSA fwd+bwd", "backend": name, "ms": 1000 * sec,
                         "shape": f"B={args.batch_size},H={mc.num_heads},N=M={tokens},D={mc.dim // mc.num_heads},K={topk}"})
    for name in backends:
        if "train" not in args.skip:
            sec = bench_train_step(cfg, name, batch_size=args.batch_size, device=dev, repeats=args.repeats)
            rows.append({"what": "train step", "backend": name, "ms": 1000 * sec, "shape": f"batch {args.batch_size}"})
        if "tracker" not in args.skip:
            r = bench_tracker(cfg, backend=name, device=dev, frames=args.frames, warmup=3)
            rows.append({"what": "tracker", "backend": name, "ms": r.ms_per_frame, "shape": f"{r.fps:.1f} FPS"})
    print(json.dumps(rows, indent=1))
    print("| measure | backend | ms | note |\n| --- | --- | ---: | --- |")
    for r in rows:
        ms = r["ms"]
        print(f"| {r['what']} | {r['backend']} | {ms:.1f} | {r['shape']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
