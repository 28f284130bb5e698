"""Benchmarks: python -m bench [NAME] [--quick] [--json]. Each prints medians of several runs
and the ratio to a floor measured in the same run (never a test assertion: machines are noisy)."""
