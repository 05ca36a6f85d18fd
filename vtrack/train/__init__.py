"""vtrack.train."""
