"""The ``vtrack`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func(args) -> int`` default runs the command. Modules are listed here, imported lazily;
tracker families add theirs through ``TrackerFamily.commands()`` (e.g. VLT's ``search``), so this
module never names a model package.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> module providing register(subparsers)
COMMANDS: dict[str, str] = {
    "synth": "vtrack.data.commands",
    "eval": "vtrack.eval.commands",
    "report": "vtrack.eval.commands",
    "pack": "vtrack.eval.pack",
    "curve": "vtrack.eval.curve",
    "track": "vtrack.tracking.commands",
    "bench": "vtrack.bench",
    "train": "vtrack.train.commands",
    "demo": "vtrack.demo",
    "zoo": "vtrack.zoo.commands",
    "export": "vtrack.deploy.commands",
    "ablate": "vtrack.experiments.ablate",
    "vot": "vtrack.deploy.commands",
    "vot-setup": "vtrack.deploy.commands",
}


def _family_commands() -> dict[str, str]:
    """Command name -> module of the commands the registered tracker families add."""
    from vtrack.models.registry import get_family, list_families

    out: dict[str, str] = {}
    for fam in list_families():
        for name, module in get_family(fam).commands().items():
            if name in COMMANDS or out.get(name, module) != module:
                raise ValueError(f"tracker family {fam!r}: command {name!r} is already taken")
            out[name] = module
    return out


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (errors become one clear line and exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """``--runtime`` and ``--onnx-dir`` for the commands that build a tracker (eval, track, vot)."""
    parser.add_argument("--runtime", choices=("pytorch", "onnxruntime"), default="pytorch",
                        help="run the tracker's network on PyTorch (default) or onnxruntime (CPU; the ONNX files "
                             "are exported on first use and cached, or come from --onnx-dir)")
    parser.add_argument("--onnx-dir", help="with --runtime onnxruntime: a folder written by `vtrack export`")


def add_tracker_arguments(parser: argparse.ArgumentParser, *, tracker_help: str, form: str = "option",
                          default: str | None = None, device: bool = True, runtime: bool = True) -> None:
    """The tracker selection of the commands that build a tracker (eval, track, vot, vot-setup, export).

    ``form`` says how the tracker is named: ``"option"`` (``--tracker``, required unless ``default``),
    ``"positional"`` (one ``TRACKER``) or ``"positionals"`` (``TRACKER [TRACKER ...]`` as ``trackers``,
    where ``--config``/``--checkpoint`` go with a single one). Then ``--config`` and ``--checkpoint``
    (a trained tracker), ``--device`` (unless ``device=False``) and ``add_runtime_arguments`` (unless
    ``runtime=False``); the commands pass them to ``vtrack.tracking.loader.build_tracker``.
    """
    if form == "option":
        parser.add_argument("--tracker", required=default is None, default=default, help=tracker_help)
    elif form == "positional":
        parser.add_argument("tracker", metavar="TRACKER", help=tracker_help)
    elif form == "positionals":
        parser.add_argument("trackers", nargs="+", metavar="TRACKER", help=tracker_help)
    else:
        raise ValueError(f"form: expected 'option', 'positional' or 'positionals', got {form!r}")
    single = " (only with a single TRACKER)" if form == "positionals" else ""
    parser.add_argument("--config", help=f"tracker YAML config (sections model/tracker) for a trained tracker{single}")
    parser.add_argument("--checkpoint", help=f"checkpoint of a trained tracker{single}")
    if device:
        parser.add_argument("--device", default="cpu", help="torch device of a trained tracker (default: cpu)")
    if runtime:
        add_runtime_arguments(parser)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one clear line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = _Parser(prog="vtrack", description="Fused-attention visual object tracking toolkit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    seen: set[str] = set()
    for name, module in {**COMMANDS, **_family_commands()}.items():
        if module in seen:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module:
                continue  # command not built yet
            raise
        seen.add(module)
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vtrack`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # key=value overrides may follow options (`train CONFIG --out-dir X a.b=1`): argparse
        # binds a '*' positional only once, so collect the leftovers for commands that take them
        if isinstance(getattr(args, "overrides", None), list) and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = args.overrides + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from vtrack.extras import MissingExtraError

    try:
        return int(args.func(args) or 0)
    # OSError: a missing file, a frame that fails to decode; MissingExtraError: names the pip command
    except (ValueError, TypeError, OSError, MissingExtraError) as err:
        print(f"vtrack {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
