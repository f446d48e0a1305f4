"""Data: fetching a source (sources), preparing it (features, encoding, prepare) and the split it becomes (datasets)."""
