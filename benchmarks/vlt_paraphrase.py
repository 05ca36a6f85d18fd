"""VLT's language branch on wording the generator never uses (issue 13, docs/vlt.md "The zoo entry").

The synthetic generator describes every target with a small vocabulary ("a small red striped
disc"). Real benchmarks (TNL2K, LaSOT) use free wording. This script copies a split of a synthetic
benchmark (frames as symbolic links, nothing re-encoded) and rewrites each ``nlp.txt`` with
synonyms that no generator caption contains ("a little crimson banded circle"). Evaluating a VLT
tracker on the copy beside the original then shows how much of its language gain survives
unseen wording:

    python benchmarks/vlt_paraphrase.py data/tune /tmp/tune_paraphrased
    vtrack eval --tracker vlt_scar_cpu --dataset synthetic --root /tmp/tune_paraphrased --split val \\
        --protocol got10k --out results/vlt_paraphrased

The output folder must not exist (nothing is overwritten). The synonym table is fixed here, before
any evaluation, and was not tuned on any result.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

#: every word of the generator's captions (shapes, colours, patterns, sizes, "textured object")
#: -> a synonym that no generator caption contains
SYNONYMS: dict[str, str] = {
    "small": "little", "medium": "mid-sized", "large": "big",
    "red": "crimson", "blue": "navy", "purple": "violet", "white": "ivory", "orange": "amber",
    "black": "dark", "brown": "chestnut", "pink": "rose", "green": "emerald", "cyan": "turquoise",
    "yellow": "golden",
    "striped": "banded", "dotted": "spotted", "checkered": "chequered", "plain": "solid",
    "textured": "patterned",
    "disc": "circle", "square": "box", "rectangle": "oblong", "triangle": "wedge", "hexagon": "polygon",
    "diamond": "rhombus", "star": "starburst", "cross": "plus sign", "object": "thing",
}


def paraphrase(caption: str) -> str:
    """``caption`` with each word of :data:`SYNONYMS` replaced (other words, e.g. "a", kept)."""
    if not isinstance(caption, str):
        raise TypeError(f"caption: expected a string, got {type(caption).__name__}")
    return " ".join(SYNONYMS.get(w, w) for w in caption.split())


def _link(src: str, dst: str) -> None:
    Path(dst).symlink_to(Path(src).resolve())


def paraphrase_benchmark(src: Path, dst: Path) -> int:
    """Copy the benchmark folder ``src`` to ``dst`` (files as symbolic links) with every
    ``nlp.txt`` paraphrased; returns the number of captions rewritten.

    Raises:
        FileNotFoundError: ``src`` has no ``manifest.json`` (not a `vtrack synth` folder).
        FileExistsError: ``dst`` exists.
    """
    src, dst = Path(src), Path(dst)
    if not (src / "manifest.json").is_file():
        raise FileNotFoundError(f"src: expected a synthetic benchmark folder with manifest.json, got {str(src)!r}")
    if dst.exists():
        raise FileExistsError(f"dst: expected a new folder, got the existing {str(dst)!r}")
    shutil.copytree(src, dst, copy_function=_link)
    count = 0
    for path in sorted(dst.rglob("nlp.txt")):
        text = path.read_text(encoding="utf-8").strip()
        path.unlink()  # a link into src: replaced by a file, src is never written
        path.write_text(paraphrase(text) + "\n", encoding="utf-8")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    """Command line: ``vlt_paraphrase.py SRC DST``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="a `vtrack synth` benchmark folder")
    p.add_argument("dst", type=Path, help="the new folder (must not exist)")
    args = p.parse_args(argv)
    n = paraphrase_benchmark(args.src, args.dst)
    print(f"{n} captions paraphrased into {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
