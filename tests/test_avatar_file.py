"""The ``.omg`` avatar file: a lossless, fast round trip and clear errors for bad files."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import torch

from core.avatar import AvatarFileError, load_avatar, reconstruct, save_avatar
from core.avatar.avatar_file import MAX_MEMBERS, VERSION
from core.config import load_config
from core.errors import OmgError, OutputPathError
from core.tracking.photo import prepare_portrait
from timing import typical_seconds

CONFIG = load_config("paper")
MAX_LOAD_MS = 100.0


@pytest.fixture(scope="module")
def avatar(samples_dir):
    portrait = prepare_portrait(samples_dir / "photos" / "einstein.jpg", CONFIG.tracking)
    return reconstruct(portrait, config=CONFIG)


@pytest.fixture(scope="module")
def saved(avatar, tmp_path_factory):
    return save_avatar(avatar, tmp_path_factory.mktemp("omg") / "einstein.omg")


def _rewrite(source, target, change):
    """Copy the npz ``source`` to ``target`` with ``change(arrays)`` applied to its members."""
    with np.load(source, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    target.write_bytes(buffer.getvalue())
    return target


def _set_header(arrays, **fields):
    header = json.loads(arrays["header"].tobytes())
    header.update(fields)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


@pytest.mark.samples
def test_round_trip_keeps_every_lod_and_the_provenance(avatar, saved):
    loaded = load_avatar(saved)
    assert loaded.num_lods == avatar.num_lods == 3
    assert (loaded.method, loaded.provenance) == (avatar.method, avatar.provenance)
    for lod in range(avatar.num_lods):
        original, restored = avatar.gaussians(lod), loaded.gaussians(lod)
        for name in ("means", "quats", "scales", "opacities", "features"):
            torch.testing.assert_close(getattr(restored, name), getattr(original, name))
    np.testing.assert_allclose(loaded.camera(30.0).R, avatar.camera(30.0).R)
    np.testing.assert_allclose(loaded.rig.binding.toarray(), avatar.rig.binding.toarray())


@pytest.mark.samples
def test_shoulder_rigidity_round_trips_and_version_3_files_load_with_shoulders_on_the_body(avatar, saved, tmp_path):
    assert avatar.shoulder_rigidity.max() > 0.5  # hair beside the face follows the head
    np.testing.assert_array_equal(load_avatar(saved).shoulder_rigidity, avatar.shoulder_rigidity)

    def as_version_3(arrays):
        del arrays["shoulders.rigidity"]
        _set_header(arrays, version=3)

    old = load_avatar(_rewrite(saved, tmp_path / "v3.omg", as_version_3))
    assert old.shoulder_rigidity.shape == (len(avatar.shoulders),) and not old.shoulder_rigidity.any()


@pytest.mark.samples
def test_file_uses_no_pickle_and_has_a_versioned_header(saved):
    with zipfile.ZipFile(saved) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    with np.load(saved, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
        assert all(archive[name].dtype != object for name in archive.files)
    assert header["format"] == "omg-avatar" and header["version"] == VERSION
    assert header["method"] == "training-free" and header["provenance"]["photo"] == "einstein.jpg"


@pytest.mark.samples
def test_loads_in_under_100_ms(saved):
    seconds = typical_seconds(f"from core.avatar import load_avatar\npath = {str(saved)!r}", "load_avatar(path)",
                              rounds=2, repeats=3)  # fmt: skip
    print(f"\n.omg load: {1e3 * seconds:.1f} ms ({saved.stat().st_size / 1e6:.1f} MB)")
    assert 1e3 * seconds < MAX_LOAD_MS


@pytest.mark.samples
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: path.write_bytes(b"plain text, not an avatar"), "not an omg-avatar file"),
        (lambda path: path.write_bytes(path.read_bytes()[:5000]), "not an omg-avatar file"),
        (lambda path: path.write_bytes(b""), "not an omg-avatar file"),
    ],
    ids=["text", "truncated", "empty"],
)
def test_corrupt_files_are_clear_errors(saved, tmp_path, damage, message):
    broken = tmp_path / "broken.omg"
    broken.write_bytes(saved.read_bytes())
    damage(broken)
    with pytest.raises(AvatarFileError, match=message) as error:
        load_avatar(broken)
    assert isinstance(error.value, OmgError) and "\n" not in str(error.value)


@pytest.mark.samples
def test_future_version_is_refused_with_a_reason(saved, tmp_path):
    future = _rewrite(saved, tmp_path / "future.omg", lambda arrays: _set_header(arrays, version=VERSION + 1))
    with pytest.raises(AvatarFileError, match="newer omg-avatar"):
        load_avatar(future)


@pytest.mark.samples
def test_other_npz_files_and_damaged_members_are_refused(saved, tmp_path):
    other = tmp_path / "other.omg"
    with open(other, "wb") as file:
        np.savez(file, weights=np.zeros(3))
    with pytest.raises(AvatarFileError, match="no header"):
        load_avatar(other)
    wrong = _rewrite(saved, tmp_path / "wrong.omg", lambda arrays: _set_header(arrays, format="something-else"))
    with pytest.raises(AvatarFileError, match="format"):
        load_avatar(wrong)
    missing = _rewrite(saved, tmp_path / "missing.omg", lambda arrays: arrays.pop("lod1.scales"))
    with pytest.raises(AvatarFileError, match="lod1.scales"):
        load_avatar(missing)
    short = _rewrite(saved, tmp_path / "short.omg", lambda arrays: arrays.update({"lod0.features": np.zeros((7, 3))}))
    with pytest.raises(AvatarFileError, match="damaged"):
        load_avatar(short)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AvatarFileError, match="not found"):
        load_avatar(tmp_path / "absent.omg")


@pytest.mark.samples
def test_save_is_atomic(avatar, saved, tmp_path, monkeypatch):
    """A failed write leaves the previous file intact and no temporary file behind."""
    target = tmp_path / "keep.omg"
    target.write_bytes(saved.read_bytes())

    def interrupted(*args, **kwargs):
        raise OSError("interrupted before the rename")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OutputPathError, match="interrupted before the rename"):
        save_avatar(avatar, target)
    assert target.read_bytes() == saved.read_bytes()
    assert [path.name for path in tmp_path.iterdir()] == ["keep.omg"]


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_members(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _npy_header(shape, descr="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _load_refused(path, message):
    """load_avatar refuses ``path`` with one line matching ``message``, allocating < 64 MB."""
    tracemalloc.start()
    try:
        with pytest.raises(AvatarFileError, match=message) as error:
            load_avatar(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(error.value) and peak < 64e6, (str(error.value), peak)
    return str(error.value)


@pytest.mark.samples
@pytest.mark.parametrize(
    "fields, message",
    [
        ({"first_level": 50}, r"header: first_level 50, expected an integer in \[0, 4\]"),
        ({"first_level": -3}, r"header: first_level -3, expected an integer in \[0, 4\]"),
        ({"first_level": "1"}, r"header: first_level '1'"),
        ({"num_lods": 9}, r"header: num_lods 9, expected an integer in \[1, 4\]"),
        ({"camera_size": [200000, 200000]}, r"header: camera_size \[200000, 200000\]"),
        ({"camera_size": [512]}, r"header: camera_size \[512\]"),
        ({"refiner": {"in_channels": 3, "image_size": -1}}, r"header: refiner.image_size -1"),
        ({"refiner": {"in_channels": 3, "image_size": 100000}}, r"header: refiner.image_size 100000"),
        ({"refiner": {"in_channels": 3, "image_size": 96}}, r"header: refiner.image_size 96, expected a power of two"),
        ({"refiner": {"in_channels": -2, "image_size": 64}}, r"header: refiner.in_channels -2"),
        ({"flame": {"scale": float("nan")}}, r"header: flame"),
        ({"scheme": "catmull-clark"}, r"header: scheme 'catmull-clark'"),
        ({"method": None}, r"header: method None"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else None,
)
def test_header_fields_out_of_bounds_are_refused_before_anything_is_read(saved, tmp_path, fields, message):
    edited = _rewrite(saved, tmp_path / "edited.omg", lambda arrays: _set_header(arrays, **fields))
    _load_refused(edited, message)


@pytest.mark.samples
def test_members_that_are_not_npy_arrays_are_refused(saved, tmp_path):
    members = _members(saved)
    raw = {name: data[128:] for name, data in members.items()}  # the .npy magic and header cut off
    assert "is not a .npy array" in _load_refused(_write_members(tmp_path / "raw.omg", raw), "damaged")
    extra = members | {"notes.txt": b"hello"}
    _load_refused(_write_members(tmp_path / "extra.omg", extra), "member 'notes.txt' is not a .npy array")
    # A flipped bit that leaves a bracket open in the header: numpy's tokenizer raises its own error.
    header = _npy_header((4942, 3))
    unclosed = members | {"lod0.scales.npy": header.replace(b"(4942, 3)", b"(4942, 3 ") + b"\0" * 64}
    _load_refused(_write_members(tmp_path / "unclosed.omg", unclosed), "member 'lod0.scales' is not a .npy array")


@pytest.mark.samples
def test_declared_shapes_are_checked_against_the_header_before_allocating(saved, tmp_path):
    members = _members(saved)
    huge = members | {"lod0.scales.npy": _npy_header((10**11, 3)) + b"\0" * 64}
    _load_refused(_write_members(tmp_path / "huge.omg", huge),
                  r"'lod0.scales' declares the shape \[100000000000, 3\] \(1200000000000 bytes\), more than its 192 bytes")  # fmt: skip
    rig = members | {"rig.vertices.npy": _npy_header((10**9, 3))}
    _load_refused(_write_members(tmp_path / "rig.omg", rig), r"'rig.vertices' declares the shape \[1000000000, 3\]")
    one_more = _rewrite(saved, tmp_path / "one_more.omg",
                        lambda arrays: arrays.update({"lod0.scales": np.pad(arrays["lod0.scales"], ((0, 1), (0, 0)))}))  # fmt: skip
    _load_refused(one_more, r"lod0.scales has shape \[\d+, 3\]")
    complex_values = _rewrite(saved, tmp_path / "complex.omg",
                              lambda arrays: arrays.update({"lod1.opacities": arrays["lod1.opacities"] + 0j}))  # fmt: skip
    _load_refused(complex_values, "lod1.opacities.* holds complex64 values")
    integers = _rewrite(saved, tmp_path / "int.omg",
                        lambda arrays: arrays.update({"lod1.scales": arrays["lod1.scales"].astype(np.int32)}))  # fmt: skip
    _load_refused(integers, "lod1.scales holds int32 values, expected floats")


@pytest.mark.samples
def test_a_member_that_inflates_beyond_its_declared_size_is_refused_after_one_chunk(saved, tmp_path):
    members = _members(saved)
    declared = members["lod0.opacities.npy"]
    bomb = members | {"lod0.opacities.npy": declared + b"\0" * (256 << 20)}  # 256 MiB more than declared
    path = _write_members(tmp_path / "bomb.omg", bomb, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 8e6  # the avatar (3 MB) and 256 MiB of zeros deflated
    _load_refused(path, "member 'lod0.opacities' holds more bytes than its shape")
    short = members | {"lod0.opacities.npy": declared[:-400]}
    _load_refused(_write_members(tmp_path / "short.omg", short), "member 'lod0.opacities' declares the shape")


@pytest.mark.samples
@pytest.mark.parametrize(
    "member, change, message",
    [
        ("lod0.opacities", lambda v: np.where(np.arange(len(v)) == 7, np.nan, v), "lod0.opacities holds NaN"),
        ("lod1.opacities", lambda v: v + 2.0, r"lod1.opacities holds values in \[2, 3\], expected \[0, 1\]"),
        ("lod2.scales", lambda v: v * 1e30, "lod2.scales holds values in"),
        ("shoulders.scales", lambda v: -v, "shoulders.scales holds values in"),
        ("shoulders.quats", lambda v: v * 0, "shoulders.quats holds zero-length rotations"),
        ("shoulders.rigidity", lambda v: v - 1.0, "shoulders.rigidity holds values in"),
        ("rig.faces", lambda v: v + 5000, r"rig.faces index vertices outside \[0, 1276\)"),
        ("rig.vertices", lambda v: v * 1e9, "rig.vertices holds values in"),
        ("camera.R", lambda v: v * 2, "camera.R is not a rotation"),
        ("camera.K", lambda v: -v, "camera.K is not a pinhole camera matrix"),
        ("rig.binding.indices", lambda v: v + 10_000, "damaged"),
    ],
    ids=lambda value: value if isinstance(value, str) and "." in value and " " not in value else None,
)
def test_values_out_of_range_are_refused(saved, tmp_path, member, change, message):
    edited = _rewrite(saved, tmp_path / "edited.omg", lambda arrays: arrays.update({member: change(arrays[member])}))
    _load_refused(edited, message)


@pytest.mark.samples
def test_too_many_or_repeated_members_are_refused(saved, tmp_path):
    members = _members(saved)
    many = members | {f"padding{index}.npy": members["rig.pivot.npy"] for index in range(MAX_MEMBERS)}
    _load_refused(_write_members(tmp_path / "many.omg", many), f"{len(many)} members, more than")
    with zipfile.ZipFile(tmp_path / "twice.omg", "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        for name, data in [*members.items(), ("rig.pivot.npy", members["rig.pivot.npy"])]:
            archive.writestr(name, data)
    _load_refused(tmp_path / "twice.omg", "member 'rig.pivot' appears twice")


@pytest.mark.samples
def test_more_gaussians_than_the_budget_are_refused_before_reading_them(saved, tmp_path):
    members = _members(saved)
    wide = {"lod0.features.npy": 4942, "shoulders.features.npy": 250_000}  # rows of 256 channels
    kept = {name: data for name, data in members.items() if name not in wide}
    path = _write_members(tmp_path / "wide.omg", kept, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:  # 261 MB of zeros, deflated to 0.3 MB
        for name, rows in wide.items():
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(_npy_header((rows, 256)))
                for start in range(0, rows, 10_000):
                    member.write(bytes(min(rows - start, 10_000) * 256 * 4))
    _load_refused(path, "Gaussians of 256 channels, more than an avatar file")
