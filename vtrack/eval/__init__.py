"""Evaluation with the official toolkits' conventions: metrics, runner, summaries and reports.

- :mod:`vtrack.eval.metrics`: OPE (success/precision/normalized precision), GOT-10k (AO/SR),
  TrackingNet and VOT reset-based (accuracy, robustness, EAO).
- :mod:`vtrack.eval.runner`: run any tracker over sequences into the official result layouts.
- :mod:`vtrack.eval.evaluate`: score a result folder and write its ``summary.json``.
- :mod:`vtrack.eval.reports`: plots, markdown tables, attribute breakdown, box videos.
"""
from vtrack.eval.metrics import (
    got10k_metrics,
    iou,
    ope_sequence,
    ope_summary,
    trackingnet_sequence,
    trackingnet_summary,
    vot_accuracy_robustness,
    vot_eao,
    vot_overlap,
)

__all__ = [
    "got10k_metrics",
    "iou",
    "ope_sequence",
    "ope_summary",
    "trackingnet_sequence",
    "trackingnet_summary",
    "vot_accuracy_robustness",
    "vot_eao",
    "vot_overlap",
    "run_tracker",
    "evaluate_results",
    "write_report",
]


def __getattr__(name: str):
    """Lazy access to the runner/report entry points (they import torch and matplotlib)."""
    if name == "run_tracker":
        from vtrack.eval.runner import run_tracker

        return run_tracker
    if name == "evaluate_results":
        from vtrack.eval.evaluate import evaluate_results

        return evaluate_results
    if name == "write_report":
        from vtrack.eval.reports import write_report

        return write_report
    raise AttributeError(f"module 'vtrack.eval' has no attribute {name!r}")
