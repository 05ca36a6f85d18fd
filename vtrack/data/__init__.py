"""vtrack.data."""
