"""DuML: dual-modal localization (offline classification + online regression) with score voting.

Importing the package registers the ``duml`` family (``vtrack.models.get_family("duml")``).
"""
from vtrack.models.duml.config import DuMLModelConfig, DuMLTrackerConfig, model_config, tracker_config
from vtrack.models.duml.family import DuMLFamily
from vtrack.models.duml.criterion import DuMLCriterion
from vtrack.models.duml.model import DuML
from vtrack.models.duml.tracker import DuMLTracker

__all__ = [
    "DuML",
    "DuMLCriterion",
    "DuMLFamily",
    "DuMLModelConfig",
    "DuMLTracker",
    "DuMLTrackerConfig",
    "model_config",
    "tracker_config",
]
