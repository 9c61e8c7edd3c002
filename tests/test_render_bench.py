"""``omg-avatar bench render``: runs every requested backend and writes readable JSON."""

from __future__ import annotations

import json
import math
import time

import pytest

from core.cli import main
from core.render.benchmark import BenchRow, speedups


def test_bench_render_prints_a_table_and_writes_json(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    started = time.perf_counter()
    code = main(["bench", "render", "--size", "48", "--lods", "0", "--channels", "3", "4",
                 "--backends", "cpu", "reference", "--repeats", "2", "--warmup", "1",
                 "--reference-repeats", "1", "--json", str(out_file)])
    run_s = time.perf_counter() - started
    assert code == 0
    printed = capsys.readouterr().out
    assert "machine:" in printed and "cores" in printed and "speed-up over reference" in printed
    rows = json.loads(out_file.read_text())["rows"]
    expected = [("cpu", 3), ("reference", 3), ("cpu", 4), ("reference", 4)]
    assert [(r["backend"], r["channels"]) for r in rows] == expected
    for row in rows:
        assert {"backend", "lod", "channels", "gaussians", "fps"} <= row.keys()
        assert row["lod"] == 0 and row["gaussians"] == 5023 + 9000
        # the rate is the median render time's inverse; the half of the timed renders that took
        # the median or longer all ran within the command
        assert row["fps"] == pytest.approx(1000.0 / row["ms"]) and math.ceil(row["repeats"] / 2) / run_s <= row["fps"]
        assert abs(sum(row["stage_shares"].values()) - 1) < 1e-6


def test_speedups_pair_rows_of_the_same_lod_and_channels():
    rows = [BenchRow("cpu", 1, 3, 10, 60.0, 16.7, 5), BenchRow("reference", 1, 3, 10, 2.0, 500.0, 2),
            BenchRow("cpu", 2, 3, 10, 30.0, 33.3, 5)]
    assert speedups(rows) == {(1, 3): 30.0}
