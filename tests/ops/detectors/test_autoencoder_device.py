"""Where the deep autoencoders train (``device``): the CPU by default, a GPU when asked for
and present, a clear error when asked for and absent. The trained weights always come back to
the CPU, so scoring and saving do not depend on where training ran. (The CUDA path itself is
checked on a GPU machine by ``scripts/gpu_autoencoder_check.py``; CI has no GPU.)"""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.fitted import detector_from_bytes, detector_to_bytes

torch = pytest.importorskip("torch")
SMALL = {"conv_autoencoder": {"window": 16, "epochs": 3, "batch_size": 64},
         "lstm_autoencoder": {"window": 8, "hidden": 8, "epochs": 3, "batch_size": 64}}


def _rows(n: int = 500) -> np.ndarray:
    t = np.arange(n)
    noise = np.random.default_rng(2).normal(0, 0.05, (n, 2))
    return np.column_stack([np.sin(t / 6), np.cos(t / 6)]) + noise


@pytest.mark.parametrize("name", sorted(SMALL))
def test_auto_on_a_machine_without_a_gpu_trains_what_cpu_trains(name):
    rows = _rows()
    cpu = make_detector(name, **SMALL[name]).fit(rows[:400])
    auto = make_detector(name, device="auto", **SMALL[name]).fit(rows[:400])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    from amml.ops.models.torch_training import resolve_device

    assert resolve_device(auto.device).type == expected
    if expected == "cpu":
        np.testing.assert_array_equal(auto.score(rows[400:]), cpu.score(rows[400:]))
    assert all(v.device.type == "cpu" for v in auto._net.state_dict().values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_asking_for_a_gpu_that_is_not_there_is_a_clear_error(device):
    detector = make_detector("conv_autoencoder", device=device, **SMALL["conv_autoencoder"])
    with pytest.raises(OpError, match=f"device '{device}' requested but CUDA is not available"):
        detector.fit(_rows()[:400])


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "", 0, "CPU"])
def test_unknown_devices_are_refused_when_made(device):
    with pytest.raises(OpError, match="device must be 'cpu', 'cuda', 'cuda:N' or 'auto'"):
        make_detector("lstm_autoencoder", device=device)


def test_device_is_a_parameter_that_saving_keeps():
    detector = make_detector("conv_autoencoder", device="auto",
                             **SMALL["conv_autoencoder"]).fit(_rows()[:400])
    loaded = detector_from_bytes(detector_to_bytes(detector))
    assert loaded.get_params()["device"] == "auto"
    np.testing.assert_array_equal(loaded.score(_rows()[400:]), detector.score(_rows()[400:]))
