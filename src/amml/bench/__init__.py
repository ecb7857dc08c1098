"""Benchmark harnesses and scorers (NAB)."""
