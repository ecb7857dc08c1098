"""AMML's model kinds, one module per kind or family, found without a list: every module here
is imported when the model-kind registry first loads (none may import PyTorch at module level;
the network classes of the PyTorch kinds are defined when first built).

Adding a kind: one module here with a :class:`~amml.ops.models.contract.ForecastModel`
subclass decorated with ``@register_kind``, and its test; the shared checks
(:func:`amml.testing.check_model`) run over it by themselves.
"""
