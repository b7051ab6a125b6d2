"""Benchmark of the facts functions against minimal reference functions (`python bench/run.py`)."""
