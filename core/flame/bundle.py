"""The other two FLAME files of the OMG-Avatar release's resources, beside ``FLAME_with_eye.pt``
(which :func:`core.flame.files.load_flame_model` reads):

* ``FLAME_masks.pkl``: FLAME's vertex masks, a Python 2 pickle of a dict ``region name ->
  int64 vertex indices`` (``neck``, ``boundary``, ``face``, ``left_eyeball``, ...); read with the
  same restricted unpickler as FLAME pickles (numpy arrays only, ``latin1``);
* ``head_template_mesh.obj``: FLAME's template as an OBJ. The release takes only its faces
  (``f a/ta/na ...`` lines, 1-based, the texture and normal indices ignored) as the topology of
  subdivision, depth maps and the neck removal; its vertex positions are not FLAME's template.

Every problem is a one-line :class:`~core.errors.ModelFileError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import ModelFileError, first_line
from core.flame.files import read_flame_pickle

#: The masks the release drops from the face-only depth maps.
NECK_MASKS = ("neck", "boundary")
MAX_OBJ_BYTES = 64 << 20  # the real template is 0.5 MB


def load_flame_masks(
    path: str | Path, required: tuple[str, ...] = NECK_MASKS, n_vertices: int | None = None
) -> dict[str, np.ndarray]:
    """``FLAME_masks.pkl`` as ``region -> [N] int64`` vertex indices.

    Args:
        required: regions the file must have.
        n_vertices: when given, every index must be below it (the FLAME model's V).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"FLAME masks not found: {path} (FLAME_masks.pkl of the OMG-Avatar release)")
    data = read_flame_pickle(path)
    masks = {}
    for name, value in data.items():
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in "iu":
            kind = f"shape {value.shape} ({value.dtype})" if isinstance(value, np.ndarray) else type(value).__name__
            raise ModelFileError(f"{path.name}: mask '{name}' holds {kind}, expected a 1-D integer index array")
        indices = value.astype(np.int64)
        if indices.size and (indices.min() < 0 or (n_vertices is not None and indices.max() >= n_vertices)):
            bad = int(indices.min()) if indices.min() < 0 else int(indices.max())
            raise ModelFileError(f"{path.name}: mask '{name}' has vertex index {bad}, expected 0..{n_vertices}")
        masks[name] = indices
    missing = [name for name in required if name not in masks]
    if missing:
        found = ", ".join(sorted(masks)) or "none"
        raise ModelFileError(f"{path.name}: mask '{missing[0]}' is missing (the file has {found})")
    return masks


def load_template_faces(path: str | Path, n_vertices: int | None = None) -> np.ndarray:
    """The faces of ``head_template_mesh.obj`` as ``[F, 3]`` int64, 0-based, in file order.

    Faces with more than three corners are split into a fan ``(0, i, i + 1)``; negative
    (relative) indices count back from the last vertex read so far.

    Args:
        n_vertices: when given, the OBJ must have exactly this many ``v`` lines (the FLAME
            model's V: the faces index FLAME's vertices).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"template mesh not found: {path} (head_template_mesh.obj of the OMG-Avatar release)")
    try:
        with path.open("rb") as file:
            content = file.read(MAX_OBJ_BYTES + 1)
        if len(content) > MAX_OBJ_BYTES:
            raise ModelFileError(f"{path.name}: larger than {MAX_OBJ_BYTES >> 20} MB, not a FLAME template mesh")
        text = content.decode("utf-8")
    except ModelFileError:
        raise
    except Exception as exc:  # unreadable or not text
        raise ModelFileError(f"{path.name}: not a readable OBJ text file ({first_line(exc)})") from None

    faces: list[tuple[int, int, int]] = []
    vertex_count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "v":
            vertex_count += 1
        elif tokens[0] == "f":
            corners = [_corner_index(token, vertex_count, path.name, number) for token in tokens[1:]]
            if len(corners) < 3:
                raise ModelFileError(f"{path.name}: line {number} has a face with {len(corners)} corners")
            faces += [(corners[0], corners[i], corners[i + 1]) for i in range(1, len(corners) - 1)]
    if not faces:
        raise ModelFileError(f"{path.name}: has no faces ('f' lines), not a template mesh")
    if n_vertices is not None and vertex_count != n_vertices:
        raise ModelFileError(f"{path.name}: has {vertex_count} vertices, the FLAME model has {n_vertices}")
    return np.asarray(faces, dtype=np.int64)


def _corner_index(token: str, vertex_count: int, name: str, line: int) -> int:
    """The 0-based vertex index of one ``f`` corner (``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``)."""
    try:
        index = int(token.split("/", 1)[0])
    except ValueError:
        raise ModelFileError(
            f"{name}: line {line} has the face corner {token[:20]!r}, expected a vertex index"
        ) from None
    resolved = index - 1 if index > 0 else vertex_count + index
    if index == 0 or not 0 <= resolved < vertex_count:
        raise ModelFileError(f"{name}: line {line} refers to vertex {index}, but only {vertex_count} come before it")
    return resolved
