"""Data: the BLURB registry, readers for every file format, and `data check`."""
