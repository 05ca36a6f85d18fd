"""Benchmark suite (vtrack bench all / trackers / train): quick end-to-end run, case spec, helpers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vtrack.bench import suite, trackers
from vtrack.config import load_yaml
from vtrack.models import list_families

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("suite")
    return suite.run_suite("cpu", out, quick=True)


def test_quick_suite_writes_every_file(quick_run: dict) -> None:
    out: Path = quick_run["out"]
    for name in ("suite.json", "README.md", "kernels.json", "kernels.md", "kernels_speedup.png",
                 "kernels_time_vs_n.png", "trackers.json", "trackers.md", "trackers_fps.png", "train.json",
                 "train.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    readme = (out / "README.md").read_text()
    for heading in ("## Kernels at the tracker shapes", "## Trackers", "## Training step", "Load average"):
        assert heading in readme


def test_quick_suite_json_fields(quick_run: dict) -> None:
    data = json.loads((quick_run["out"] / "suite.json").read_text())
    env = data["environment"]
    for key in ("device", "device_name", "torch", "python", "git_commit", "time_utc", "cpu_count",
                "load_average_start", "load_average_end", "durations_s", "kernel_dtype", "tracker_threads"):
        assert key in env, key
    assert env["device"] == "cpu" and len(env["git_commit"]) >= 7
    assert set(env["durations_s"]) == {"kernels", "trackers", "train"}
    assert data["arguments"]["quick"] is True
    # kernels: every op, the reference and SDPA timed, ratios filled in for the fused backend
    rows = data["kernels"]
    timed = {(r["op"], r["backend"], r["mode"]) for r in rows if r["ms"] is not None}
    for op in ("topk", "fda", "ce"):
        for mode in ("fwd", "fwd+bwd"):
            assert (op, "reference", mode) in timed and (op, "sdpa", mode) in timed
    ref = [r for r in rows if r["backend"] == "reference" and r["ms"] is not None]
    assert all(r["vs_reference"] == pytest.approx(1.0) and r["peak_mib"] > 0 for r in ref)
    assert data["sweep"] and {r["N"] for r in data["sweep"]} == {64, 128}


def test_every_family_in_tracker_and_train_tables(quick_run: dict) -> None:
    families = set(list_families())
    rows = quick_run["trackers"]
    assert {r.family for r in rows} == families
    assert all(r.fps is not None and r.fps > 0 and r.ms_per_frame > 0 for r in rows), [r.note for r in rows]
    assert all(r.fps_median is not None and r.fps_median > 0 and r.fps_cpu is not None and r.fps_cpu > 0 for r in rows)
    assert all(r.gmacs_b1 is not None and r.gmacs_b1 > 0 for r in rows)
    assert all(r.throughput_pairs_per_s is not None and r.throughput_pairs_per_s > 0 for r in rows)
    # fused vs reference and CE on/off rows for OSTrack
    ost = {(r.variant, r.backend) for r in rows if r.family == "ostrack"}
    fused = trackers.kernel_backends("cpu")
    assert {(v, b) for v in ("CE on", "CE off") for b in fused} <= ost
    ce_on = next(r for r in rows if r.family == "ostrack" and r.variant == "CE on")
    ce_off = next(r for r in rows if r.family == "ostrack" and r.variant == "CE off")
    assert ce_on.gmacs_b1 < ce_off.gmacs_b1  # candidate elimination removes work
    table = (quick_run["out"] / "trackers.md").read_text()
    for fam in families:
        assert f"| {fam} |" in table
    train = quick_run["train"]
    assert {r.family for r in train} == families
    assert all(r.ms_per_step > 0 and r.peak_mem_mb is not None and r.peak_mem_mb > 0 for r in train)


def _family_of(config: str) -> str:
    return load_yaml(Path(config) if Path(config).is_file() else ROOT / config)["model"]["name"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_case_spec_covers_every_family(device: str) -> None:
    cases = trackers.load_cases(device=device)
    assert {_family_of(c.config) for c in cases} == set(list_families())
    for c in cases:
        assert Path(c.config).is_file(), c.config


def test_complete_cases_adds_missing_families(tmp_path: Path) -> None:
    spec = tmp_path / "cases.yaml"
    spec.write_text("cpu:\n  - config: configs/ostrack/ostrack_tiny.yaml\n")
    cases = trackers.complete_cases(trackers.load_cases(spec, "cpu"), ROOT / "configs")
    fams = [_family_of(c.config) for c in cases]
    assert sorted(fams) == sorted(set(fams)) and set(fams) == set(list_families())


@pytest.mark.parametrize("text, match", [
    ("cpu:\n  - {config: a.yaml, colour: red}\n", "unknown keys"),
    ("cpu:\n  - {overrides: [a=1]}\n", "config"),
    ("cpu:\n  - {config: a.yaml, overrides: a=1}\n", "overrides"),
    ("cpu:\n  - {config: a.yaml, variants: [a=1]}\n", "variants"),
    ("cpu: {config: a.yaml}\n", "must be a list"),
])
def test_load_cases_rejects_bad_specs(tmp_path: Path, text: str, match: str) -> None:
    spec = tmp_path / "cases.yaml"
    spec.write_text(text)
    with pytest.raises(ValueError, match=match):
        trackers.load_cases(spec, "cpu")


def test_model_gmacs_and_tile() -> None:
    class Pair(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(8, 4, bias=False)

        def forward(self, batch: dict) -> torch.Tensor:
            return self.lin(batch["template"]) + self.lin(batch["search"])

    batch = {"template": torch.randn(2, 8), "search": torch.randn(2, 8), "language": ["a", "b"], "n": 3}
    assert trackers.model_gmacs(Pair(), batch) == pytest.approx(2 * 2 * 8 * 4 / 1e9)
    tiled = trackers._tile(batch, 5)
    assert tiled["template"].shape == (5, 8) and torch.equal(tiled["template"][2], batch["template"][0])
    assert tiled["language"] == ["a", "b", "a", "b", "a"] and tiled["n"] == 3
    ms, graph = trackers.model_forward_ms(Pair(), batch, torch.device("cpu"), warmup=0, repeat=2, cuda_graph=True)
    assert ms > 0 and graph is False  # CUDA graphs only on CUDA


def test_bad_arguments_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parts"):
        suite.run_suite("cpu", tmp_path, parts=("kernels", "nope"))
    with pytest.raises(ValueError, match="amp"):
        trackers.bench_case(trackers.TrackerCase("configs/ostrack/ostrack_tiny.yaml"), amp="fp8")
    with pytest.raises(FileNotFoundError):
        trackers.load_cases(tmp_path / "missing.yaml")


def test_cli_registers_all_and_suite() -> None:
    import argparse

    from vtrack.bench import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for name in ("all", "suite"):
        args = parser.parse_args(["bench", name, "--quick", "--parts", "trackers"])
        assert args.func is suite.run_from_args and args.quick and args.parts == ["trackers"]


@pytest.mark.gpu
def test_quick_suite_on_cuda(tmp_path: Path) -> None:
    res = suite.run_suite("cuda", tmp_path, quick=True, parts=("kernels", "trackers"))
    env = json.loads((tmp_path / "suite.json").read_text())["environment"]
    assert env["device"] == "cuda" and env.get("cuda")
    rows = res["trackers"]
    assert {r.family for r in rows} == set(list_families())
    assert all(r.fps and r.fps > 0 for r in rows)
    assert any(r.cuda_graph for r in rows if r.family == "ostrack")  # batch-1 forward replayed from a graph
    k = res["kernels"]
    assert any(r.backend in ("cuda", "triton") and r.ms is not None for r in k)


def test_target_check() -> None:
    assert suite.target_check("cpu", "topk", "fwd", 4.0, 1.2, 0.1) == "yes"
    miss = suite.target_check("cpu", "topk", "fwd", 2.0, 1.7, 0.5)
    assert miss.startswith("no (") and "speed-up 2 < 3" in miss and "1.7x SDPA > 1.5" in miss and "memory" in miss
    assert suite.target_check("cpu", "ce", "fwd+bwd", None, 1.2, 0.2) == "yes"  # "*" matches every mode
    assert suite.target_check("cuda", "topk", "fwd", 1.0, 9.0, None) == "-"  # no target for that row
    assert "not measured" in suite.target_check("cpu", "fda", "fwd", 1.0, 1.0, None)


def test_tracker_fps_counts_every_frame() -> None:
    """FPS is frames / total time (a slow online-update frame counts), the median and CPU-time FPS beside it."""
    row = trackers.TrackerSuiteRow("c", "f", "-", "cpp", "cpu", "off", 4)
    trackers._set_fps(row, [0.01, 0.01, 0.01, 0.05], [0.01, 0.01, 0.01, 0.01])
    assert row.fps == pytest.approx(4 / 0.08) and row.ms_per_frame == pytest.approx(20.0)
    assert row.fps_median == pytest.approx(100.0) and row.fps_cpu == pytest.approx(100.0)
