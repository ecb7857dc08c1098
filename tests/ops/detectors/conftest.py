"""The detector tests train small PyTorch nets and run stumpy's numba kernels: one thread
each. On a machine whose cores are shared with other work, torch's spinning worker threads
made a 300-row stream of single-row scores take 8 s instead of 0.1 s; the numbers the checks
compare do not change with it (batch and streaming run under the same setting)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    import numba
    import torch  # declared dependencies (numba through stumpy)

    before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        numba.set_num_threads(numba_before)
