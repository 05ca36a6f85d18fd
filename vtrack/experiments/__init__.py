"""Experiments that train and evaluate trackers through the shared machinery.

This is the application layer above the models: it may import :mod:`vtrack.train`,
:mod:`vtrack.eval`, :mod:`vtrack.data` and the models, never the other way round (see
docs/design.md, "What may import what").

* :mod:`vtrack.experiments.ablate` — ``vtrack ablate``: a grid of config overrides, each point
  trained with :func:`vtrack.train.train` and evaluated with :func:`vtrack.eval.runner.run_tracker`
  (experiment specs under ``configs/experiments/``);
* :mod:`vtrack.experiments.vlt_search` — ``vtrack search`` (registered by the VLT family through
  ``TrackerFamily.commands()``): evolutionary architecture search on a trained VLT supernet.
"""
