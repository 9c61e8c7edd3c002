"""Signals end a run with an exception raised in the main thread, but not inside the native
calls marked ``deferred`` (numba's kernels call back into Python): those finish first."""

import os
import signal
import time

import pytest
import torch

from core.errors import Terminated
from core.geometry.camera import Camera
from core.interrupts import deferred, signals_end_the_run
from core.render import cpu
from core.render.gaussians import Gaussians

HANDLER_CHANCE_S = 0.2  # the handler runs at the main thread's next bytecode; this is ample


@pytest.fixture(autouse=True)
def ctrl_c_interrupts():
    """Ctrl-C raises KeyboardInterrupt here however pytest was started (a background job of a
    shell without job control starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _signal_self(number: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), number)
    time.sleep(HANDLER_CHANCE_S)


def test_a_signal_outside_a_deferred_block_raises_at_once():
    reached = []
    with signals_end_the_run(), pytest.raises(Terminated) as raised:
        _signal_self()
        reached.append("after the signal")
    assert reached == [] and raised.value.exit_code == 128 + signal.SIGTERM


@pytest.mark.parametrize("number, expected", [(signal.SIGHUP, Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_inside_nested_deferred_blocks_raises_as_the_outermost_ends(number, expected):
    reached = []
    with signals_end_the_run(), pytest.raises(expected):
        with deferred():
            with deferred():
                _signal_self(number)
                reached.append("inner")
            reached.append("outer")
        reached.append("after the blocks")
    assert reached == ["inner", "outer"]


def test_an_ignored_ctrl_c_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reached = []
    with signals_end_the_run():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        _signal_self(signal.SIGINT)
        reached.append("after the signal")
    assert reached == ["after the signal"]


def test_the_handlers_are_restored_after_the_run():
    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    with signals_end_the_run():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {number: signal.getsignal(number) for number in before} == before


def test_a_signal_while_a_cpu_kernel_calls_back_into_python_ends_the_run_after_the_render(monkeypatch):
    """numba's kernels box their results through a Python helper; a signal handled there must
    not raise mid-kernel (that surfaces as a SystemError with the result half built)."""
    real_project = cpu._project
    calls = []

    def project_then_signal(*args):
        result = real_project(*args)
        _signal_self()  # as if the handler ran in numba's boxing helper
        calls.append("projected")
        return result

    monkeypatch.setattr(cpu, "_project", project_then_signal)
    camera = Camera.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), width=16, height=16, focal_normalized=2.0)
    gaussians = Gaussians(
        means=torch.zeros(1, 3), quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]), scales=torch.full((1, 3), 0.05),
        opacities=torch.ones(1), features=torch.ones(1, 3),
    )  # fmt: skip
    with signals_end_the_run(), pytest.raises(Terminated):
        cpu.render_cpu(gaussians, camera)
    assert calls == ["projected"]
    monkeypatch.undo()
    assert cpu.render_cpu(gaussians, camera).alpha[8, 8] > 0.5  # the kernels still work
