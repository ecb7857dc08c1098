"""Explanations: per-prediction attributions of any forecaster (SHAP), summed by input
channel and by lag band, and drawn as a PNG. :mod:`.attribution` computes them,
:mod:`.plot` draws them, :mod:`.op` is the ``explain`` op."""
