"""Benchmarks: each script measures our way and its baseline in the same run and prints the ratio last."""
