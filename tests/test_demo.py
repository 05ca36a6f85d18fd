"""`vtrack demo --quick`: the whole pipeline (data, training, evaluation, report) end to end."""
from __future__ import annotations

import re


from vtrack.cli import main


def test_demo_quick_writes_a_report(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["demo", "--quick", "--data", str(tmp_path / "data"), "--out", str(out)])
    assert rc == 0
    readme = out / "README.md"
    assert str(readme) in capsys.readouterr().out
    text = readme.read_text()
    # metrics table with the trained tracker next to the static baseline, with numbers
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| ([\d.]+) \|", text, re.M)}
    assert {"ostrack_tiny", "static"} <= set(rows)
    assert all(0.0 <= float(v) <= 100.0 for v in rows.values())
    assert list(out.glob("*success*.png")) and list(out.glob("*precision*.png"))
    videos = list(out.glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 1000
    assert "CE speed-up" in text  # tracker speed table
    assert "## Kernel benchmark" in text
    # the trained checkpoint and the tracker results are kept in the report folder
    assert list((out / "train" / "ostrack").glob("checkpoint_*.pth"))
    assert (out / "results" / "ostrack_tiny" / "summary.json").is_file()
