"""Built-in detectors ops."""
