"""vtrack.data: the Sequence type, readers of the official dataset layouts and the synthetic benchmark."""
from vtrack.data._io import AnnotationError
from vtrack.data.datasets import DATASETS, get_reader, load_dataset
from vtrack.data.sequence import Sequence

__all__ = ["AnnotationError", "DATASETS", "Sequence", "get_reader", "load_dataset", "ensure_synthetic", "generate_synthetic"]


def __getattr__(name: str):
    """Import the synthetic generator lazily (it pulls in OpenCV and scikit-image)."""
    if name in ("ensure_synthetic", "generate_synthetic", "SyntheticConfig"):
        from vtrack.data import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module 'vtrack.data' has no attribute {name!r}")
