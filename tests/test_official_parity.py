"""Our network against tensors the released OMG-Avatar code computed (``tests/official_parity.py``
reads the fixture folder: ``$OMG_PARITY_FIXTURE``, default ``../shared/official_parity``)."""

from __future__ import annotations

import pytest

from official_parity import ParityFixture, recipe_rule


@pytest.fixture(scope="module")
def fixture() -> ParityFixture:
    return ParityFixture.load()


@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_the_recipe_gives_the_manifests_rule_for_every_key(fixture, which):
    rows = [row for row in fixture.manifest(which) if row["recipe"] is not None]
    assert len(rows) > 600
    wrong = [row["name"] for row in rows if recipe_rule(row["name"], tuple(row["shape"])) != row["recipe"]]
    assert not wrong, wrong[:5]
