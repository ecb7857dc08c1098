"""Monitoring and benchmarking of anomaly detectors (NAB)."""
