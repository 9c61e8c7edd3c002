"""The release's tracked driver folders (``smoothed.pkl`` / ``optim.pkl``): read through the
numpy-only unpickler, validated, frames in index order."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from core.driving.release_driver import FIELDS, load_release_driver, read_driver_file
from core.errors import ModelFileError


def _record(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    record = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in FIELDS.items()}
    record["extra_field"] = np.zeros(2, dtype=np.float32)  # tolerated
    return record


def _frames(count: int = 12) -> dict[str, dict[str, np.ndarray]]:
    # text order of the keys (as optim.pkl stores them): clip_0, clip_1, clip_10, clip_11, clip_2, ...
    return {f"clip_{index}": _record(index) for index in sorted(range(count), key=str)}


def _write(folder, name, data, protocol=4):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "wb") as file:
        pickle.dump(data, file, protocol=protocol)
    return folder / name


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("protocol", [4, 2])
def test_frames_come_in_index_order_with_their_values(tmp_path, protocol):
    data = _frames()
    _write(tmp_path / "driver", "optim.pkl", data, protocol)
    driver = load_release_driver(tmp_path / "driver")
    assert driver.file.name == "optim.pkl"
    assert [frame.index for frame in driver.frames] == list(range(12))
    for frame in driver.frames:
        expected = data[frame.key]
        assert frame.key == f"clip_{frame.index}"
        for name in FIELDS:
            value = getattr(frame, name)
            assert value.dtype == np.float32
            np.testing.assert_array_equal(value, expected[name])


def test_smoothed_is_preferred_over_optim(tmp_path):
    _write(tmp_path, "optim.pkl", _frames(3))
    _write(tmp_path, "smoothed.pkl", _frames(5))
    driver = load_release_driver(tmp_path)
    assert driver.file.name == "smoothed.pkl" and len(driver) == 5


class _MarkerMaker:
    """Unpickling this would create a file (what a hostile pickle does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class Foreign:
    """A class a driver file never holds."""


def test_a_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "marker"
    data = _frames(2)
    data["clip_0"]["expcode"] = _MarkerMaker(marker)
    path = _write(tmp_path / "driver", "smoothed.pkl", data)
    with pytest.raises(ModelFileError) as error:
        read_driver_file(path)
    message = _one_line(error)
    assert "smoothed.pkl" in message and "open" in message and "refused" in message
    assert not os.path.exists(marker)
    pickle.loads(path.read_bytes())["clip_0"]["expcode"].close()  # a plain load would have made it
    assert marker.exists()


def test_an_object_of_another_class_is_refused_by_name(tmp_path):
    data = _frames(2)
    data["clip_1"]["bbox"] = Foreign()
    path = _write(tmp_path, "optim.pkl", data)
    with pytest.raises(ModelFileError) as error:
        read_driver_file(path)
    assert "Foreign" in _one_line(error) and "test_release_driver" in str(error.value)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda record: record.update(expcode=np.zeros(50, np.float32)), "'expcode' has shape (50,), expected (100,)"),
        (lambda record: record.update(transform_matrix=np.zeros((4, 4), np.float32)), "'transform_matrix'"),
        (lambda record: record["posecode"].__setitem__(2, np.nan), "'posecode' has non-finite values"),
        (lambda record: record.pop("eyecode"), "has no 'eyecode'"),
        (lambda record: record.update(bbox=[0.0, 0.0, 1.0, 1.0]), "'bbox' holds list"),
    ],
    ids=["shape", "matrix", "nan", "missing", "not-an-array"],
)
def test_bad_frames_are_one_line_naming_frame_and_field(tmp_path, change, expected):
    data = _frames(3)
    change(data["clip_2"])
    path = _write(tmp_path, "optim.pkl", data)
    with pytest.raises(ModelFileError) as error:
        read_driver_file(path)
    message = _one_line(error)
    assert message.startswith("optim.pkl: frame 'clip_2'") and expected in message


@pytest.mark.parametrize(
    "content, expected",
    [(b"not a pickle at all\n", "not a readable pickle"), (pickle.dumps([1, 2]), "holds a list")],
    ids=["text", "list"],
)
def test_foreign_files_and_empty_folders_are_one_line(tmp_path, content, expected):
    (tmp_path / "smoothed.pkl").write_bytes(content)
    with pytest.raises(ModelFileError) as error:
        load_release_driver(tmp_path)
    assert expected in _one_line(error)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFileError, match="neither smoothed.pkl nor optim.pkl"):
        load_release_driver(empty)


def test_a_truncated_file_is_one_line(tmp_path):
    path = _write(tmp_path, "optim.pkl", _frames(4))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError) as error:
        read_driver_file(path)
    assert "truncated or corrupt" in _one_line(error)
