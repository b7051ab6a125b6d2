"""Tests of the benchmark's own code, beside it; pytest collects them with tests/ (testpaths)."""
