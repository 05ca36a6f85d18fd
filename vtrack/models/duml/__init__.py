"""DuML: dual-modal localization (offline classification + online regression) with score voting."""
