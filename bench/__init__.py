"""Benchmarks of meshlens; see README.md. Run from the repository root."""
