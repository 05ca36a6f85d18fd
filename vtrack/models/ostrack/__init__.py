"""OSTrack (one-stream ViT tracker with early candidate elimination) and ESAT (OSTrack plus
force-directed attention and self-supervised position learning).

Both are the same family class: ``"esat"`` is :class:`ESATFamily`, :class:`OSTrackFamily` with
ESAT's defaults (FDA in every layer and the position head); any OSTrack config can also switch
them on explicitly.
"""
from vtrack.models.ostrack.criterion import OSTrackCriterion
from vtrack.models.ostrack.family import ESAT_DEFAULTS, ESATFamily, OSTrackFamily
from vtrack.models.ostrack.model import OSTrack
from vtrack.models.ostrack.tracker import OSTrackTracker

__all__ = ["OSTrack", "OSTrackCriterion", "ESATFamily", "OSTrackFamily", "OSTrackTracker", "ESAT_DEFAULTS"]
