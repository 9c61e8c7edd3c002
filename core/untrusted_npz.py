"""Reading the members of an ``.npz`` archive a user gives without trusting it.

``np.load`` allocates whatever shape a member's header declares and inflates a member to
whatever size its compressed stream expands to; for a file from anywhere we first read only
the headers (:func:`declared_members`: names, shapes, dtypes, a few hundred bytes each), let
the caller check them against what it expects, and then read each member's exact declared
byte count (:func:`read_member`), never more: a member whose stream holds more is refused
after one extra chunk, so nothing inflates beyond the declared (and checked) sizes.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

#: Plain little-endian numbers only: no objects, strings, structured or complex values.
ALLOWED_DTYPES = frozenset(np.dtype(name) for name in ("<f4", "<f8", "<i4", "<i8", "|u1"))
_MAX_NPY_HEADER = 4096  # bytes of a member's .npy header (numpy writes about 128)
#: The most a deflated member may expand (zlib's own limit is about 1032 to 1).
MAX_INFLATION = 1100
#: What reading a damaged or truncated zip archive raises (besides :class:`ArchiveError`).
UNREADABLE_ARCHIVE_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


class ArchiveError(ValueError):
    """A member is not a plain .npy array, or its data is not what its header declares."""


@dataclass(frozen=True)
class DeclaredMember:
    """A member as its ``.npy`` header declares it (no data read)."""

    name: str  # without ".npy"
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    info: zipfile.ZipInfo

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def declared_members(archive: zipfile.ZipFile) -> dict[str, DeclaredMember]:
    """Every member's declared shape and dtype, by name; raises :class:`ArchiveError` for a
    member that is not a ``.npy`` array of :data:`ALLOWED_DTYPES`, or a name given twice."""
    members: dict[str, DeclaredMember] = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise ArchiveError(f"member {info.filename!r} is not a .npy array")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise ArchiveError(f"member {name!r} appears twice")
        with archive.open(info) as stream:
            shape, fortran_order, dtype = _npy_header(stream, name)
        members[name] = DeclaredMember(name, shape, dtype, fortran_order, info)
        _check_room(archive, members[name])
    return members


def _check_room(archive: zipfile.ZipFile, member: DeclaredMember) -> None:
    """Refuse a member whose declared data cannot be in the archive: more bytes than its
    uncompressed size, an uncompressed size beyond what its compressed bytes inflate to, or
    compressed bytes beyond the archive's members (the central directory starts after them).
    So no read allocates more than :data:`MAX_INFLATION` times the file's size."""
    info = member.info
    if (member.nbytes > info.file_size or info.file_size > MAX_INFLATION * info.compress_size
            or info.header_offset + info.compress_size > archive.start_dir):  # fmt: skip
        raise ArchiveError(f"member {member.name!r} declares the shape {list(member.shape)} ({member.nbytes} bytes), "
                           f"more than its {info.compress_size} bytes in the archive hold")  # fmt: skip


def read_member(archive: zipfile.ZipFile, member: DeclaredMember) -> np.ndarray:
    """The member's array: exactly its declared bytes, after checking the stream holds no more
    (and its checksum, which the zip stream verifies at its end)."""
    with archive.open(member.info) as stream:
        _npy_header(stream, member.name)
        data = bytearray(member.nbytes)
        if stream.readinto(memoryview(data)) != member.nbytes:
            raise ArchiveError(f"member {member.name!r} holds fewer bytes than its shape {list(member.shape)} needs")
        if stream.read(1):
            raise ArchiveError(f"member {member.name!r} holds more bytes than its shape {list(member.shape)} declares")
    order = "F" if member.fortran_order else "C"
    return np.frombuffer(data, dtype=member.dtype).reshape(member.shape, order=order)


def _npy_header(stream, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream, max_header_size=_MAX_NPY_HEADER)
    except (ValueError, TypeError, SyntaxError, EOFError, tokenize.TokenError) as exc:
        # numpy re-reads a header that does not parse with its tokenizer, which has its own error
        raise ArchiveError(f"member {name!r} is not a .npy array ({exc})") from None
    if dtype not in ALLOWED_DTYPES:
        raise ArchiveError(f"member {name!r} holds {dtype} values; only plain float, int and byte arrays are allowed")
    if not all(isinstance(side, int) and side >= 0 for side in shape):
        raise ArchiveError(f"member {name!r} declares the shape {list(shape)}")
    return tuple(shape), bool(fortran_order), dtype
