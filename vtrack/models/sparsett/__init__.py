"""SparseTT (Fu et al., IJCAI 2022): Swin-T siamese tracker with a sparse-transformer target focus
network and a double-head predictor. Registered as the tracker family ``"sparsett"``.

>>> from vtrack.models import get_family
>>> fam = get_family("sparsett")
>>> model = fam.build_model({"name": "sparsett", "topk": 32})          # doctest: +SKIP
>>> tracker = fam.build_tracker(model, {"tracker": {}}, "cpu")          # doctest: +SKIP
"""
from vtrack.models.sparsett.config import SparseTTLossConfig, SparseTTModelConfig, SparseTTTrackerConfig
from vtrack.models.sparsett.criterion import SparseTTCriterion, dense_labels
from vtrack.models.sparsett.family import SparseTTFamily
from vtrack.models.sparsett.heads import DoubleHead, fuse_scores
from vtrack.models.sparsett.model import SparseTT, score_map_geometry, score_map_points
from vtrack.models.sparsett.tracker import SparseTTTracker, siamfcpp_penalty

__all__ = [
    "DoubleHead", "SparseTT", "SparseTTCriterion", "SparseTTFamily", "SparseTTLossConfig", "SparseTTModelConfig",
    "SparseTTTracker", "SparseTTTrackerConfig", "dense_labels", "fuse_scores", "score_map_geometry", "score_map_points",
    "siamfcpp_penalty",
]
