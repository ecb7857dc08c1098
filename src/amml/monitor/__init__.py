"""Production monitoring: drift detectors (input, prediction, attribution, error)."""
