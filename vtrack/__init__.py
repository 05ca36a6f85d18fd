"""vtrack: fused attention kernels and trackers for visual object tracking."""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
