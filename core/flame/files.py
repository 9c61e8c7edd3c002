"""Reading FLAME model files into plain numpy arrays, safely and without chumpy.

Formats (all hold the same keys: ``v_template``, ``f``, ``shapedirs``, ``posedirs``,
``J_regressor``, ``kintree_table``, ``weights``):

* FLAME 2020 ``generic_model.pkl``: a Python 2 pickle in which some arrays are chumpy
  ``Ch`` objects and ``J_regressor`` is a scipy sparse matrix;
* FLAME 2023 ``flame2023.pkl`` / ``flame2023_no_jaw.pkl``: the same keys, plain arrays;
* ``.npz`` repacks with the same key names (``J_regressor`` dense);
* the OMG-Avatar release's ``FLAME_with_eye.pt``: a weights-only torch file holding
  ``{"flame_model": {the keys above, as tensors}, "lmk_embeddings": {...}}`` (the release's
  landmark embeddings, whose iBUG-68 points :func:`load_release_landmark_embedding` reads for
  fitting; its other files, ``FLAME_masks.pkl`` and ``head_template_mesh.obj``,
  are read by :mod:`core.flame.bundle`).

``shapedirs`` holds the 300 shape components followed by the expression components (100
in the official releases). Optional extras: eyelid blendshapes ``l_eyelid.npy`` and
``r_eyelid.npy`` ([V, 3] each) beside the model file, as FLAME-2023-based trackers ship them,
and the FLAME site's ``mediapipe_landmark_embedding.npz``.

A pickle can run code when loaded, so pickles are read by an unpickler that resolves only
the classes a FLAME file needs (numpy arrays and dtypes, scipy sparse matrices, chumpy
``Ch``) and maps the last two to inert stand-ins; torch files are read ``weights_only``
(tensors and plain containers, nothing else). Every problem with a file is a
:class:`~core.errors.ModelFileError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import builtins
import dataclasses
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse
import torch

from core.config import FlameConfig
from core.errors import ModelFileError, first_line
from core.flame.ibug68 import FITTED_POINTS, MEDIAPIPE_OF_IBUG68
from core.numpy_pickle import NUMPY_GLOBALS, NumpyUnpickler, RefusedGlobal
from core.paths import FLAME_DIR, resolve_model_file
from core.torch_files import read_weights_only

FLAME_SHAPE_COMPONENTS = 300  # shapedirs[..., :300] is shape, the rest is expression
FLAME_SITE = "https://flame.is.tue.mpg.de"
MEDIAPIPE_POINTS = 478  # MediaPipe face mesh with refined irises
MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
EYELID_FILES = ("l_eyelid.npy", "r_eyelid.npy")
#: The OMG-Avatar release's FLAME file (FLAME 2020 with eyes, repackaged), in the models folder.
RELEASE_FLAME_FILE = f"{FLAME_DIR}/FLAME_with_eye.pt"
RELEASE_BUNDLE_KEYS = ("flame_model", "lmk_embeddings")
RELEASE_SUFFIXES = (".pt", ".pth")  # a FLAME file with these is read as the release's bundle
#: The release's iBUG-68 landmark embedding in ``lmk_embeddings``: faces [1, 70], weights [1, 70, 3].
RELEASE_LANDMARK_KEYS = ("full_lmk_faces_idx_with_eye", "full_lmk_bary_coords_with_eye")
RELEASE_LANDMARKS = 70  # the 68 iBUG points, then the right and left pupils


@dataclass(frozen=True)
class FlameModelData:
    """A FLAME model as plain arrays (metres, float64; indices int64).

    Attributes:
        v_template: [V, 3] mean-shape rest vertices.
        faces: [F, 3] triangle vertex indices.
        shapedirs: [V, 3, 300] shape blendshapes.
        exprdirs: [V, 3, E] expression blendshapes (E = 100 in the official files).
        posedirs: [V, 3, 9 * (J - 1)] pose-corrective blendshapes.
        J_regressor: [J, V] joint regressor (dense).
        parents: [J] parent joint of each joint, ``parents[0] = -1``.
        lbs_weights: [V, J] skinning weights.
        eyelids: [2, V, 3] left and right eyelid blendshapes, or None.
        source: file name, for messages.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    lbs_weights: np.ndarray
    eyelids: np.ndarray | None
    source: str


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Landmarks as barycentric points on mesh faces, each matched to a MediaPipe point.

    Attributes:
        face_indices: [L] face of each landmark.
        barycentric: [L, 3] weights of that face's three vertices.
        mediapipe_indices: [L] index of the matching point of the 478-point MediaPipe mesh.
    """

    face_indices: np.ndarray
    barycentric: np.ndarray
    mediapipe_indices: np.ndarray


def find_flame_file(given: str | Path | None, config: FlameConfig) -> Path | None:
    """The FLAME file to use: the one ``given`` (which must exist), else the config's
    ``model_file`` if it is there, else the release's ``flame/FLAME_with_eye.pt`` if it is
    there, else None."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ModelFileError(f"FLAME model not found: {path}")
        return path
    for candidate in (config.model_file, RELEASE_FLAME_FILE):
        path = resolve_model_file(candidate)
        if path.is_file():
            return path
    return None


def load_flame_model(path: str | Path) -> FlameModelData:
    """Read a FLAME ``.pkl`` (2020 or 2023), ``.npz`` or the release's ``.pt`` bundle, plus
    eyelid blendshapes beside it."""
    path = Path(path)
    if not path.is_file():
        folder = resolve_model_file(FLAME_DIR)
        raise ModelFileError(
            f"FLAME model not found at {path}: download FLAME 2020 from {FLAME_SITE} (free licence "
            f"required) and put generic_model.pkl at {folder / 'generic_model.pkl'}, or FLAME 2023 "
            f"as {folder / 'flame2023.pkl'}, or the OMG-Avatar release's FLAME_with_eye.pt at "
            f"{folder / 'FLAME_with_eye.pt'}"
        )
    if path.suffix in (".pkl", ".pickle"):
        arrays = read_flame_pickle(path)
    elif path.suffix == ".npz":
        arrays = _read_npz(path)
    elif path.suffix in RELEASE_SUFFIXES:
        arrays = read_release_bundle(path)["flame_model"]
    else:
        raise ModelFileError(f"{path.name}: unsupported FLAME file type, expected .pkl, .npz or .pt")
    model = _model_from_arrays(arrays, path.name)
    eyelids = _read_eyelids(path.parent, model.v_template.shape[0])
    return dataclasses.replace(model, eyelids=eyelids)


def load_landmark_embedding(path: str | Path, n_faces: int | None = None) -> LandmarkEmbedding:
    """Read ``mediapipe_landmark_embedding.npz``; ``n_faces`` checks its face indices."""
    path = Path(path)
    if not path.is_file():
        expected = resolve_model_file(FLAME_DIR) / "mediapipe_landmark_embedding.npz"
        raise ModelFileError(
            f"MediaPipe landmark embedding not found at {path}: download "
            f"mediapipe_landmark_embedding.npz from {FLAME_SITE} and put it at {expected}"
        )
    arrays = _read_npz(path)
    source = path.name
    face_indices = _indices(arrays, "lmk_face_idx", source)
    count = face_indices.shape[0]
    barycentric = _numeric(arrays, "lmk_b_coords", source).astype(np.float64)
    _expect_shape(barycentric, (count, 3), source, "lmk_b_coords")
    mediapipe_indices = _indices(arrays, "landmark_indices", source)
    _expect_shape(mediapipe_indices, (count,), source, "landmark_indices")
    _expect_range(mediapipe_indices, MEDIAPIPE_POINTS, source, "landmark_indices", "MediaPipe point")
    if n_faces is not None:
        _expect_range(face_indices, n_faces, source, "lmk_face_idx", "face")
    return LandmarkEmbedding(face_indices, barycentric, mediapipe_indices)


def load_release_landmark_embedding(path: str | Path, n_faces: int) -> LandmarkEmbedding:
    """The landmarks of the release's ``FLAME_with_eye.pt`` that FLAME is fitted to, matched
    to MediaPipe points: its iBUG-68 embedding (``lmk_embeddings``: ``full_lmk_faces_idx_with_eye``
    [1, 70] faces of ``f``, ``full_lmk_bary_coords_with_eye`` [1, 70, 3]; the 68 iBUG points,
    then the right and left pupils) at :data:`core.flame.ibug68.FITTED_POINTS` (brows, nose,
    eyes, lips: 51 points), each paired with its MediaPipe point by
    :data:`core.flame.ibug68.MEDIAPIPE_OF_IBUG68`. ``n_faces`` is the number of faces of the
    file's ``f`` the indices must stay below. A missing key, a wrong shape, an index out of
    range or a non-finite weight is a one-line ModelFileError naming the file and the key."""
    path = Path(path)
    arrays = read_release_bundle(path)["lmk_embeddings"]
    face_key, weight_key = RELEASE_LANDMARK_KEYS
    for key in RELEASE_LANDMARK_KEYS:
        if key not in arrays:
            raise ModelFileError(f"{path.name}: key 'lmk_embeddings/{key}' is missing, expected the release's "
                                 f"iBUG-68 landmark embedding")  # fmt: skip
    face_indices = _indices(arrays, face_key, path.name, ndim=2)
    _expect_shape(face_indices, (1, RELEASE_LANDMARKS), path.name, face_key)
    _expect_range(face_indices, n_faces, path.name, face_key, "face")
    barycentric = _numeric(arrays, weight_key, path.name).astype(np.float64)
    _expect_shape(barycentric, (1, RELEASE_LANDMARKS, 3), path.name, weight_key)
    fitted = np.asarray(FITTED_POINTS)
    return LandmarkEmbedding(
        face_indices=face_indices[0, fitted],
        barycentric=barycentric[0, fitted],
        mediapipe_indices=np.asarray(MEDIAPIPE_OF_IBUG68, dtype=np.int64)[fitted],
    )


# --------------------------------------------------------------------------- pickles
class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the array a pickled Ch holds under ``'x'``."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("x"), np.ndarray):
            raise pickle.UnpicklingError("a chumpy Ch without its array 'x'")
        self.array = state["x"]


class _SparseMatrix:
    """Stand-in for a pickled scipy sparse matrix; densified from its state."""

    layout = ""  # "csc", "csr" or "coo", set by the subclasses

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"a sparse {self.layout} matrix with state {type(state).__name__}")
        self.state = state

    def to_dense(self) -> np.ndarray:
        state = self.state
        shape = tuple(state.get("_shape", state.get("shape", ())))
        if self.layout == "coo":
            rows, cols = state["coords"] if "coords" in state else (state["row"], state["col"])
            matrix = scipy.sparse.coo_matrix((state["data"], (rows, cols)), shape=shape)
        else:
            compressed = scipy.sparse.csc_matrix if self.layout == "csc" else scipy.sparse.csr_matrix
            matrix = compressed((state["data"], state["indices"], state["indptr"]), shape=shape)
        return matrix.toarray()


class _CscMatrix(_SparseMatrix):
    layout = "csc"


class _CsrMatrix(_SparseMatrix):
    layout = "csr"


class _CooMatrix(_SparseMatrix):
    layout = "coo"


_SPARSE_CLASSES = {
    f"{layout}_{kind}": stand_in
    for layout, stand_in in (("csc", _CscMatrix), ("csr", _CsrMatrix), ("coo", _CooMatrix))
    for kind in ("matrix", "array")
}
_STAND_INS = (_ChumpyArray, *_SPARSE_CLASSES.values())


_RefusedClass = RefusedGlobal  # the pickle refers to a class or function outside the allow-list


def _reconstruct_stand_in(cls: type, base: type, state: Any) -> object:
    """Safe ``copyreg._reconstructor``: builds only the stand-ins (Python 2 pickles use it)."""
    if cls not in _STAND_INS or base is not object or state is not None:
        raise _RefusedClass(f"copyreg._reconstructor of {getattr(cls, '__name__', cls)!r} is not allowed")
    return object.__new__(cls)


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    **NUMPY_GLOBALS,  # numpy arrays, dtypes and scalars, latin-1 bytes
    # Python 2 and 3 names
    **{(module, "_reconstructor"): _reconstruct_stand_in for module in ("copy_reg", "copyreg")},
    **{(module, name): getattr(builtins, name) for module in ("__builtin__", "builtins")
       for name in ("object", "set")},
}


class _FlameUnpickler(NumpyUnpickler):
    """Resolves only what a FLAME pickle holds; anything else is refused before it runs."""

    allowed = _ALLOWED
    what = "a FLAME file"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "chumpy" or module.startswith("chumpy."):
            if name == "Ch":
                return _ChumpyArray
            raise _RefusedClass(f"chumpy class '{module}.{name}' is not supported, only plain Ch arrays")
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        return super().find_class(module, name)  # refused, named


def read_flame_pickle(path: Path) -> dict[str, Any]:
    """The dict a FLAME-style pickle holds (a model, or the release's ``FLAME_masks.pkl``),
    chumpy arrays and sparse matrices turned into numpy arrays; read with the restricted
    unpickler (``latin1`` for Python 2 files). Any problem is a one-line ModelFileError."""
    try:
        with path.open("rb") as file:
            data = _FlameUnpickler(file, encoding="latin1").load()
        if not isinstance(data, dict):
            raise ModelFileError(f"{path.name}: holds a {type(data).__name__}, expected a dict of arrays")
        return {str(key): _plain(value) for key, value in data.items()}
    except ModelFileError:
        raise
    except _RefusedClass as exc:
        raise ModelFileError(f"{path.name}: {exc}") from None
    except Exception as exc:  # untrusted bytes can fail in any way; all of them mean "corrupt"
        raise ModelFileError(
            f"{path.name}: not a readable FLAME pickle (truncated or corrupt: {first_line(exc)})"
        ) from None


def _plain(value: Any) -> Any:
    if isinstance(value, _ChumpyArray):
        return value.array
    if isinstance(value, _SparseMatrix):
        return value.to_dense()
    return value


# --------------------------------------------------------------------------- torch files
def read_release_bundle(path: Path) -> dict[str, dict[str, Any]]:
    """The release's ``FLAME_with_eye.pt`` (read weights-only): its ``flame_model`` and
    ``lmk_embeddings`` dicts, tensors as numpy arrays (see :func:`_tensor_to_array`)."""
    bundle = read_weights_only(path)
    if not isinstance(bundle, dict):
        raise ModelFileError(f"{path.name}: holds a {type(bundle).__name__}, expected the dict of the "
                             f"release's FLAME file ({', '.join(RELEASE_BUNDLE_KEYS)})")  # fmt: skip
    for key in RELEASE_BUNDLE_KEYS:
        if not isinstance(bundle.get(key), dict):
            found = "is missing" if key not in bundle else f"holds a {type(bundle[key]).__name__}"
            keys = ", ".join(repr(k) for k in bundle) or "none"
            raise ModelFileError(f"{path.name}: key '{key}' {found}, expected a dict (the file has {keys})")
    return {
        part: {str(key): _tensor_to_array(value) for key, value in bundle[part].items()}
        for part in RELEASE_BUNDLE_KEYS
    }


def _tensor_to_array(value: Any) -> Any:
    """A tensor as a numpy array (floats as float64) with the tensor's memory layout (strides:
    :mod:`core.flame.release` multiplies them laid out as the file has them); anything else
    unchanged, for the checks."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    if value.is_floating_point():
        value = value.to(torch.float64)
    elif value.dtype == torch.bool:
        value = value.to(torch.uint8)
    return value.numpy()


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:  # zip, header and pickled-object errors alike mean "corrupt"
        raise ModelFileError(f"{path.name}: not a readable .npz archive ({exc})") from None


# --------------------------------------------------------------------------- validation
def _model_from_arrays(arrays: dict[str, Any], source: str) -> FlameModelData:
    """Check every key's type, shape and values; return the model (eyelids not yet read)."""
    v_template = _numeric(arrays, "v_template", source).astype(np.float64)
    _expect(v_template.ndim == 2 and v_template.shape[1] == 3, source, "v_template", v_template, "(V, 3)")
    n_vertices = v_template.shape[0]

    faces = _indices(arrays, "f", source, ndim=2)
    _expect(faces.shape[1] == 3, source, "f", faces, "(F, 3)")
    _expect_range(faces, n_vertices, source, "f", "vertex")

    shapedirs = _numeric(arrays, "shapedirs", source)
    has_expression = shapedirs.ndim == 3 and shapedirs.shape[2] > FLAME_SHAPE_COMPONENTS
    _expect(
        has_expression and shapedirs.shape[:2] == (n_vertices, 3), source, "shapedirs", shapedirs,
        f"({n_vertices}, 3, {FLAME_SHAPE_COMPONENTS} shape + n_expression >= 1)",
    )  # fmt: skip

    kintree = _indices(arrays, "kintree_table", source, ndim=2, allow_negative=True)
    _expect(kintree.shape[0] == 2 and kintree.shape[1] >= 2, source, "kintree_table", kintree, "(2, J)")
    parents = kintree[0].copy()
    parents[0] = -1  # the root's parent is stored as -1 or as 2**32 - 1
    if any(not 0 <= parents[j] < j for j in range(1, len(parents))):
        raise ModelFileError(
            f"{source}: key 'kintree_table' lists a joint before its parent, expected a tree in order"
        )
    n_joints = parents.shape[0]

    posedirs = _numeric(arrays, "posedirs", source)
    n_pose = 9 * (n_joints - 1)
    _expect_shape(posedirs, (n_vertices, 3, n_pose), source, "posedirs")
    J_regressor = _numeric(arrays, "J_regressor", source)
    _expect_shape(J_regressor, (n_joints, n_vertices), source, "J_regressor")
    weights = _numeric(arrays, "weights", source)
    _expect_shape(weights, (n_vertices, n_joints), source, "weights")

    return FlameModelData(
        v_template=v_template,
        faces=faces,
        shapedirs=shapedirs[..., :FLAME_SHAPE_COMPONENTS].astype(np.float64),
        exprdirs=shapedirs[..., FLAME_SHAPE_COMPONENTS:].astype(np.float64),
        posedirs=posedirs.astype(np.float64),
        J_regressor=J_regressor.astype(np.float64),
        parents=parents,
        lbs_weights=weights.astype(np.float64),
        eyelids=None,
        source=source,
    )


def _read_eyelids(folder: Path, n_vertices: int) -> np.ndarray | None:
    """[2, V, 3] left and right eyelid blendshapes from ``folder``, or None when absent."""
    paths = [folder / name for name in EYELID_FILES]
    present = [p.is_file() for p in paths]
    if not any(present):
        return None
    if not all(present):
        missing, found = (paths[0], paths[1]) if not present[0] else (paths[1], paths[0])
        raise ModelFileError(f"{missing.name}: missing beside {found} (eyelid blendshapes come as a pair)")
    eyelids = []
    for path in paths:
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # any unreadable .npy is a corrupt file
            raise ModelFileError(f"{path.name}: not a readable .npy array ({exc})") from None
        if array.shape != (n_vertices, 3) or array.dtype.kind != "f" or not np.isfinite(array).all():
            raise ModelFileError(
                f"{path.name}: has shape {array.shape} ({array.dtype}), "
                f"expected finite floats of shape ({n_vertices}, 3)"
            )
        eyelids.append(array.astype(np.float64))
    return np.stack(eyelids)


def _numeric(arrays: dict[str, Any], key: str, source: str) -> np.ndarray:
    """``arrays[key]`` as a finite numeric array, or a ModelFileError saying what is wrong."""
    if key not in arrays:
        raise ModelFileError(f"{source}: key '{key}' is missing (a FLAME file has {', '.join(MODEL_KEYS)})")
    value = arrays[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        kind = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ModelFileError(f"{source}: key '{key}' holds {kind}, expected a numeric array")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ModelFileError(f"{source}: key '{key}' has non-finite values")
    return value


def _indices(
    arrays: dict[str, Any], key: str, source: str, ndim: int = 1, allow_negative: bool = False
) -> np.ndarray:
    """``arrays[key]`` as an int64 index array of ``ndim`` dimensions (integral floats accepted)."""
    value = _numeric(arrays, key, source)
    _expect(value.ndim == ndim, source, key, value, f"a {ndim}-D index array")
    as_int = value.astype(np.int64)
    if not (as_int == value).all() or (not allow_negative and as_int.size and as_int.min() < 0):
        raise ModelFileError(f"{source}: key '{key}' holds non-integer or negative values, expected indices")
    return as_int


def _expect(condition: bool, source: str, key: str, value: np.ndarray, expected: str) -> None:
    if not condition:
        raise ModelFileError(f"{source}: key '{key}' has shape {tuple(value.shape)}, expected {expected}")


def _expect_shape(value: np.ndarray, shape: tuple[int, ...], source: str, key: str) -> None:
    _expect(value.shape == shape, source, key, value, str(shape))


def _expect_range(indices: np.ndarray, count: int, source: str, key: str, what: str) -> None:
    if indices.size and indices.max() >= count:
        largest = int(indices.max())
        raise ModelFileError(f"{source}: key '{key}' has {what} index {largest}, expected < {count}")
