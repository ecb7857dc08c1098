"""Public conformance checks for third-party ops and stores (see :mod:`amml.testing.checks`)."""

from amml.testing.checks import (
    check_artifact_store,
    check_detector,
    check_fitted_detector,
    check_op,
)
from amml.testing.executors import check_executor
from amml.testing.models import check_model

__all__ = ["check_artifact_store", "check_detector", "check_op"]
__all__ += ["check_executor"]
__all__ += ["check_model"]
__all__ += ["check_fitted_detector"]
