"""benchmarks/vlt_paraphrase.py (issue 13): every generator word gets a synonym the generator
never uses, the copy reads as a benchmark with the new captions, and the source is left alone."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from vtrack.data import load_dataset
from vtrack.data.synthetic import COLOURS, PATTERNS, SHAPES, ensure_synthetic

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_vlt_paraphrase", ROOT / "benchmarks" / "vlt_paraphrase.py")
P = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = P
_spec.loader.exec_module(P)

VOCABULARY = {"a", "small", "medium", "large", "textured", "object", *COLOURS, *PATTERNS, *SHAPES}


def test_synonyms_cover_the_generator_vocabulary_and_never_reuse_it():
    assert VOCABULARY - {"a"} <= set(P.SYNONYMS)
    used = {w for s in P.SYNONYMS.values() for w in s.split()}
    assert not used & VOCABULARY
    assert P.paraphrase("a small plain red disc") == "a little solid crimson circle"
    with pytest.raises(TypeError, match="caption"):
        P.paraphrase(None)


def test_paraphrased_copy_links_frames_rewrites_captions_and_keeps_the_source(tmp_path):
    src = ensure_synthetic(tmp_path / "src", workers=1, progress=False, train=0, val=2, test=0, frames=8,
                           width=96, height=96)
    before = {s.name: s.language for s in load_dataset("synthetic", str(src), "val")}
    dst = tmp_path / "para"
    assert P.paraphrase_benchmark(src, dst) == 2
    after = {s.name: s for s in load_dataset("synthetic", str(dst), "val")}
    assert set(after) == set(before)
    for name, seq in after.items():
        assert seq.language == P.paraphrase(before[name]) != before[name]
        assert Path(seq.frames[0]).is_symlink()
    assert {s.name: s.language for s in load_dataset("synthetic", str(src), "val")} == before
    with pytest.raises(FileExistsError, match="dst"):
        P.paraphrase_benchmark(src, dst)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        P.paraphrase_benchmark(tmp_path / "nothing", tmp_path / "x")
