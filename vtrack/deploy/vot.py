"""The VOT toolkit's TraX protocol: ``vtrack vot TRACKER`` is a tracker process the toolkit runs.

:func:`serve` answers a TraX client (the toolkit, ``traxclient``, or a test) over the standard
streams - or the socket named by ``TRAX_SOCKET`` - with any vtrack :class:`~vtrack.tracking.Tracker`:
``initialize`` on the client's first frame and region, ``track`` on every following frame. Images
come as file paths; regions as rectangles or polygons (a polygon's axis-aligned bounds initialise
the tracker); the answer is a rectangle with the tracker's score as the ``confidence`` property.

:func:`trackers_ini` writes the workspace's ``trackers.ini`` (protocol ``trax``, the command that
starts ``vtrack vot`` with this Python and this checkout).
"""
from __future__ import annotations

import configparser
import io
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vtrack.extras import require
from vtrack.tracking.base import Tracker

__all__ = ["serve", "region_to_box", "trackers_ini", "write_trackers_ini", "ini_identifier", "write_workspace",
           "read_toolkit_analysis"]


def region_to_box(region: Any) -> tuple[float, float, float, float]:
    """(x, y, w, h) of a TraX rectangle, or the axis-aligned bounds of a TraX polygon."""
    trax = require("trax", "vot", "vtrack vot")
    kind = region.type
    if kind == trax.Region.RECTANGLE:
        x, y, w, h = region.bounds()
        return float(x), float(y), float(w), float(h)
    if kind == trax.Region.POLYGON:
        pts = np.array([region[i] for i in range(region.size())], dtype=np.float64)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)
    raise ValueError(f"region: expected a rectangle or polygon from the TraX client, got {kind!r}")


def _read_rgb(image: Any) -> np.ndarray:
    """The colour channel of a TraX request as an HxWx3 uint8 RGB array."""
    import cv2

    path = image["color"].path() if isinstance(image, dict) else image.path()
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"image: cannot read {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def serve(tracker: Tracker, *, name: str = "vtrack", description: str = "") -> int:
    """Run a TraX server session with ``tracker`` until the client quits; returns the frames tracked."""
    if not isinstance(tracker, Tracker):
        raise TypeError(f"tracker: expected a vtrack Tracker, got {type(tracker).__name__}")
    trax = require("trax", "vot", "vtrack vot")
    from trax.server import Server

    frames = 0
    # multiobject: vot-toolkit 0.9.0's TraX runtime passes objects on only to trackers that say so;
    # a vtrack tracker follows one object, so a request with several is refused
    with Server([trax.Region.RECTANGLE, trax.Region.POLYGON], [trax.Image.PATH], tracker_name=name,
                tracker_description=description, tracker_family="vtrack", multiobject=True) as server:
        while True:
            request = server.wait()
            if request.type in (trax.TraxStatus.QUIT, trax.TraxStatus.ERROR):
                break
            image = _read_rgb(request.image)
            if request.type == trax.TraxStatus.INITIALIZE:
                if len(request.objects) != 1:
                    raise ValueError(f"objects: a vtrack tracker follows one object, the client sent {len(request.objects)}")
                region, _ = request.objects[0]
                box = region_to_box(region)
                tracker.initialize(image, box)
                score = 1.0
            else:
                result = tracker.track(image)
                box, score = tuple(float(v) for v in result.box), float(result.score)
            frames += 1
            server.status([(trax.Rectangle.create(*box), {"confidence": f"{score:.6f}"})])
    return frames


def ini_identifier(name: str) -> str:
    """A vot-toolkit tracker identifier for ``name`` (letters, digits, ``_`` and ``-``)."""
    ident = re.sub(r"[^A-Za-z0-9_-]", "_", Path(name).stem if name.endswith((".yaml", ".yml")) else name)
    if not ident:
        raise ValueError(f"tracker: cannot make a vot-toolkit identifier from {name!r}")
    return "vtrack_" + ident


def trackers_ini(entries: Sequence[tuple[str, Sequence[str]]], *, python: str | None = None,
                 pythonpath: str | None = None, timeout: int = 300) -> str:
    """Text of a ``trackers.ini`` with one ``trax`` tracker per ``(identifier, vtrack vot arguments)``.

    Each command is ``<python> -m vtrack.cli vot <arguments>``; ``pythonpath`` (the checkout
    holding vtrack, when it is not installed) goes into the tracker's environment.
    """
    python = python or sys.executable
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    ini = configparser.ConfigParser(interpolation=None)
    for ident, args in entries:
        if ident in ini:
            raise ValueError(f"trackers: {ident!r} is given twice")
        section = {
            "label": ident,
            "protocol": "trax",
            "command": shlex.join([python, "-m", "vtrack.cli", "vot", *args]),
            "timeout": str(timeout),
        }
        if pythonpath:
            section["env_PYTHONPATH"] = pythonpath
        section["env_OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
        ini[ident] = section
    buf = io.StringIO()
    ini.write(buf)
    return buf.getvalue()


def write_trackers_ini(workspace: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` as ``workspace/trackers.ini`` (refused if one exists, unless ``overwrite``)."""
    from vtrack.io import atomic_write_text

    ws = Path(workspace)
    if not ws.is_dir():
        raise FileNotFoundError(f"--workspace: folder not found: {ws} (create it with `vot initialize` first)")
    path = ws / "trackers.ini"
    if path.exists() and not overwrite:
        raise FileExistsError(f"--workspace: {path} exists already (pass --overwrite to replace it)")
    return atomic_write_text(path, text)


def write_workspace(workspace: str | os.PathLike[str], stack: str, sequences: Sequence[str]) -> Path:
    """Make a VOT toolkit workspace around sequences already written under ``workspace/sequences``
    (e.g. by :func:`vtrack.data.benchmarks.write_vot_sequence`): ``stack.yaml`` (the YAML text
    ``stack``), ``config.yaml`` (that stack, ``trackers.ini`` as registry), ``sequences/list.txt``
    and ``results/``. Then :func:`write_trackers_ini`, ``vot evaluate`` / ``vot analysis``.
    Existing workspace files are refused, never overwritten."""
    import yaml

    from vtrack.io import atomic_write_text

    ws = Path(workspace)
    parsed = yaml.safe_load(stack) if isinstance(stack, str) else None
    if not isinstance(parsed, dict) or "experiments" not in parsed:
        raise ValueError("stack: expected the YAML text of a vot-toolkit stack with an `experiments` mapping")
    names = list(sequences)
    missing = [n for n in names if not (ws / "sequences" / n / "groundtruth.txt").is_file()]
    if not names or missing:
        raise FileNotFoundError(f"sequences: expected sequence folders with groundtruth.txt under {ws / 'sequences'}, "
                                f"missing {missing or 'all (none given)'}")
    for name in ("stack.yaml", "config.yaml", "sequences/list.txt"):
        if (ws / name).exists():
            raise FileExistsError(f"workspace: {ws / name} exists already (refusing to overwrite it)")
    atomic_write_text(ws / "stack.yaml", stack)
    atomic_write_text(ws / "config.yaml", "stack: stack.yaml\nregistry:\n- ./trackers.ini\n")
    atomic_write_text(ws / "sequences" / "list.txt", "\n".join(names) + "\n")
    (ws / "results").mkdir(exist_ok=True)
    return ws


#: vot-toolkit analysis classes -> the names of the values of one tracker's result, in order.
_TOOLKIT_ANALYSES = {
    "vot.analysis.supervised.AverageAccuracyRobustness": ("accuracy", "failures", "ar_point", "weight"),
    "vot.analysis.supervised.EAOScore": ("eao",),
    "vot.analysis.accuracy.AverageAccuracy": ("accuracy",),
}


def read_toolkit_analysis(report: str | os.PathLike[str], experiment: str, tracker: str) -> dict[str, float]:
    """The scores of ``tracker`` in ``experiment`` from a ``vot analysis --format json`` report:
    ``accuracy``, ``failures`` (the toolkit's robustness: length-weighted failures per sequence),
    ``robustness_exp`` (exp(-S*F/L), from the A-R point) and ``eao``, whichever the stack analysed."""
    from vtrack.io import read_json

    data = read_json(report, what="vot-toolkit analysis report")
    trackers = list(data.get("trackers", {}))
    if tracker not in trackers:
        raise KeyError(f"tracker: {tracker!r} is not in the report {report} (it has {trackers})")
    exp = data.get("results", {}).get(experiment)
    if exp is None:
        raise KeyError(f"experiment: {experiment!r} is not in the report {report} (it has {list(data.get('results', {}))})")
    out: dict[str, float] = {}
    for spec, grid in zip(exp["parameters"]["analyses"], exp["results"]):
        names = _TOOLKIT_ANALYSES.get(spec["type"])
        if names is None:
            continue
        for name, value in zip(names, grid[trackers.index(tracker)]):
            if name == "ar_point":
                out["robustness_exp"] = float(value[0])
            elif name != "weight":
                out[name] = float(value)
    return out
