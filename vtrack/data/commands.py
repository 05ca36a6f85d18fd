"""``vtrack synth``: write the synthetic benchmark to disk (GOT-10k layout plus nlp.txt)."""
from __future__ import annotations

import argparse
import dataclasses
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand."""
    from vtrack.data.synthetic import SyntheticConfig

    d = SyntheticConfig()
    p = sub.add_parser("synth", help="generate the synthetic tracking benchmark (GOT-10k layout + nlp.txt)",
                       description="Deterministic by seed: the same parameters always write the same files.")
    p.add_argument("--out", required=True, help="output folder (empty, or a partial benchmark with the same parameters)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--train", type=int, default=d.train, help="training sequences")
    p.add_argument("--val", type=int, default=d.val, help="validation sequences")
    p.add_argument("--test", type=int, default=d.test, help="test sequences")
    p.add_argument("--frames", type=int, default=None, help="frames per sequence (default: drawn in [min, max])")
    p.add_argument("--min-frames", type=int, default=d.min_frames)
    p.add_argument("--max-frames", type=int, default=d.max_frames)
    p.add_argument("--size", default=f"{d.width}x{d.height}", help="frame size WxH")
    p.add_argument("--quality", type=int, default=d.quality, help="JPEG quality")
    p.add_argument("--target-style", default=d.target_style, choices=("shape", "natural", "mixed"),
                   help="target look: geometric shapes (the benchmark), natural-photo regions, or half each")
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size: expected WxH such as 256x256, got {text!r}") from None
    return w, h


def run(args: argparse.Namespace) -> int:
    """Generate (or finish) the benchmark and print its statistics."""
    from vtrack.data.synthetic import SyntheticConfig, generate_synthetic

    width, height = _size(args.size)
    cfg = SyntheticConfig(seed=args.seed, train=args.train, val=args.val, test=args.test, frames=args.frames,
                          min_frames=args.min_frames, max_frames=args.max_frames, width=width, height=height,
                          quality=args.quality, target_style=args.target_style)
    manifest = generate_synthetic(args.out, cfg, workers=args.workers)
    print(json.dumps({"out": str(args.out), "params": dataclasses.asdict(cfg), "stats": manifest["stats"]}, indent=1))
    return 0
