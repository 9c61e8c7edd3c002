"""Auto-LOD holds a target frame rate with hysteresis."""

from app.auto_lod import AutoLod

COUNTS = [20_000, 35_000, 92_000]


def run(controller, lod, cost_ms_by_lod, seconds, start=0.0, dt=0.03):
    """Feed frames for ``seconds``; returns the final LOD and every LOD change."""
    now, changes = start, []
    while now < start + seconds:
        new = controller.update(lod, cost_ms_by_lod[lod], now)
        if new != lod:
            changes.append((now, lod, new))
            lod = new
        now += dt
    return lod, changes


def test_drops_a_level_when_too_slow_for_the_target():
    controller = AutoLod(COUNTS, target_fps=30)
    lod, changes = run(controller, 2, {0: 12.0, 1: 25.0, 2: 60.0}, seconds=3)
    assert lod == 1
    assert changes[0][0] >= controller.patience_s  # not at the first slow frame


def test_climbs_to_the_finest_level_that_fits_and_stays_there():
    controller = AutoLod(COUNTS, target_fps=30)
    lod, changes = run(controller, 0, {0: 8.0, 1: 14.0, 2: 45.0}, seconds=20)
    assert lod == 1
    assert len(changes) <= 3  # 0 -> 1, perhaps one try of 2, back to 1: no flicker


def test_a_fast_machine_gets_the_finest_level():
    lod, _ = run(AutoLod(COUNTS, target_fps=30), 0, {0: 3.0, 1: 5.0, 2: 12.0}, seconds=5)
    assert lod == 2


def test_a_higher_target_means_a_coarser_level():
    costs = {0: 8.0, 1: 14.0, 2: 30.0}
    relaxed, _ = run(AutoLod(COUNTS, target_fps=20), 0, costs, seconds=10)
    strict, _ = run(AutoLod(COUNTS, target_fps=100), 2, costs, seconds=10)
    assert relaxed == 2 and strict == 0
