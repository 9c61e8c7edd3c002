"""The official-code parity fixture (``../shared/official_parity``, or the folder named by
``$OMG_PARITY_FIXTURE``): tensors the released OMG-Avatar code computed stage by stage, and the
recipe that fills a model's weights the same way (a test helper).

A fixture folder holds ``fixture.safetensors`` (the stages), ``fixture_info.json`` (its
configuration, mesh counts and tensor lists), the state-dict manifests and ``synthetic_flame/``.
Stages are stored whole in some fixtures and reduced in others (``.s8`` every 8th row and column,
``.chmean`` the channel mean, ``.first64`` the first 64 tokens, ``.rows4`` / ``.rows16`` every 4th /
16th vertex or grid row); :meth:`ParityFixture.expected` compares either way.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import safetensors
import torch

from core.paths import PROJECT_ROOT

DEFAULT_FOLDER = PROJECT_ROOT.parent / "shared" / "official_parity"
#: Key prefixes the recipe does not fill: the training-only perceptual loss, and FLAME's
#: buffers (they come from the FLAME file).
UNFILLED_PREFIXES = ("percep_loss.", "flame_model.")


def parity_folder() -> Path:
    """The fixture folder; tests that need it skip with the reason when it is absent."""
    folder = Path(os.environ.get("OMG_PARITY_FIXTURE", DEFAULT_FOLDER)).expanduser()
    if not (folder / "fixture.safetensors").is_file():
        pytest.skip(f"official parity fixture not found at {folder} (set OMG_PARITY_FIXTURE)")
    return folder


@dataclass
class ParityFixture:
    folder: Path
    tensors: dict[str, torch.Tensor]
    info: dict
    metadata: dict

    @classmethod
    def load(cls, folder: Path | None = None) -> ParityFixture:
        folder = folder or parity_folder()
        with safetensors.safe_open(folder / "fixture.safetensors", framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
            metadata = json.loads((file.metadata() or {}).get("json", "{}"))
        info = json.loads((folder / "fixture_info.json").read_text())
        return cls(folder, tensors, info, metadata)

    @property
    def flame_folder(self) -> Path:
        return self.folder / "synthetic_flame"

    @property
    def meta_cfg(self) -> dict:
        return self.info["meta_cfg"]

    def manifest(self, which: str = "synthetic") -> list[dict]:
        """Rows of ``state_dict_manifest_<which>.json`` (name, shape, dtype, recipe rule, ...)."""
        data = json.loads((self.folder / f"state_dict_manifest_{which}.json").read_text())
        return data["keys"] if isinstance(data, dict) and "keys" in data else data

    def expected(self, name: str, computed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stored, computed reduced the same way) for stage ``name``: the whole tensor when the
        fixture has it, else the reduction it stores. Raises KeyError when it has neither."""
        if name in self.tensors:
            return self.tensors[name], computed
        for suffix, reduce in REDUCTIONS.items():
            if f"{name}.{suffix}" in self.tensors:
                return self.tensors[f"{name}.{suffix}"], reduce(computed)
        raise KeyError(f"stage {name} is not in the fixture at {self.folder}")

    def has(self, name: str) -> bool:
        return name in self.tensors or any(f"{name}.{suffix}" in self.tensors for suffix in REDUCTIONS)


REDUCTIONS = {
    "s8": lambda t: t[..., ::8, ::8],
    "chmean": lambda t: t.mean(dim=1),
    "first64": lambda t: t[:, :64],
    "rows4": lambda t: _rows(t, 4),
    "rows16": lambda t: _rows(t, 16),
}


def _rows(tensor: torch.Tensor, step: int) -> torch.Tensor:
    """Every ``step``-th vertex of [B, V, C], or every ``step``-th grid row of a flattened square
    grid [B, S*S, C] (all columns kept), as the fixture's ``.rows4`` / ``.rows16`` stages store."""
    side = math.isqrt(tensor.shape[1])
    if side * side == tensor.shape[1] and side in (296,):  # the shoulder plane grid
        return tensor.reshape(tensor.shape[0], side, side, -1)[:, ::step].reshape(tensor.shape[0], -1, tensor.shape[-1])
    return tensor[:, ::step]


def assert_close_to_scale(computed: torch.Tensor, stored: torch.Tensor, name: str, tolerance: float = 1e-4) -> None:
    """``computed`` equals ``stored`` within ``tolerance`` times the stored tensor's scale (its
    largest magnitude, at least 1e-6), the issue's criterion for floating stages."""
    assert computed.shape == stored.shape, f"{name}: shape {list(computed.shape)}, fixture {list(stored.shape)}"
    scale = max(float(stored.abs().max()), 1e-6)
    error = float((computed.double() - stored.double()).abs().max())
    assert error <= tolerance * scale, f"{name}: max error {error:.3g} against scale {scale:.3g}"


def recipe_rule(key: str, shape: tuple[int, ...]) -> str:
    """Which of the recipe's rules (bias, norm, unit, fan_in) fills ``key`` of ``shape``."""
    last = key.rsplit(".", 1)[-1]
    parent = key.rsplit(".", 2)[-2] if "." in key else ""
    if last.endswith("bias"):
        return "bias"
    if len(shape) == 1 and (last == "gamma" or (last == "weight" and ("norm" in parent or parent.startswith("ln")))):
        return "norm"
    if ".noises.noise" in key:
        return "unit"
    return "fan_in"


def recipe_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The fixture's deterministic value of state-dict entry ``key`` (see the fixture's README)."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    z = torch.randn(shape, generator=generator, dtype=torch.float32)
    rule = recipe_rule(key, shape)
    if rule == "bias":
        value = 0.01 * z
    elif rule == "norm":
        value = 1 + 0.01 * z
    elif rule == "unit":
        value = z
    else:
        value = z / math.sqrt(math.prod(shape[1:]) if len(shape) > 1 else 1)
    return value.to(dtype)


def fill_by_recipe(module: torch.nn.Module, prefix: str = "") -> list[str]:
    """Set every floating tensor of ``module``'s state dict (keys seen as ``prefix + key``, the
    release's names) to its recipe value, in place; returns the keys filled."""
    filled = []
    with torch.no_grad():
        for key, tensor in module.state_dict(keep_vars=True).items():
            name = prefix + key
            if not tensor.is_floating_point() or name.startswith(UNFILLED_PREFIXES):
                continue
            tensor.copy_(recipe_tensor(name, tuple(tensor.shape), tensor.dtype))
            filled.append(name)
    return filled


#: A training-only key a release checkpoint may carry (ignored when loading).
PERCEPTUAL_KEY = "percep_loss.vggface.network.0.weight"


def write_release_checkpoint(
    folder: Path, path: Path, which: str = "synthetic", without: tuple[str, ...] = ()
) -> Path:
    """A checkpoint in the release's layout (``{"model": state dict, "meta_cfg": ...}``) for the
    fixture in ``folder``: every key of its ``which`` manifest (``"real"``: the paper's sizes)
    except those starting with ``without``, recipe values where the manifest has a rule, zeros
    elsewhere (FLAME's buffers), plus one perceptual-loss key. With the full ViT-B, about 0.56 GB."""
    rows = [row for row in ParityFixture.load(folder).manifest(which) if not row["name"].startswith(without)]
    meta_cfg = json.loads((folder / "fixture_info.json").read_text())["meta_cfg"]
    state = {}
    for row in rows:
        name, shape, dtype = row["name"], tuple(row["shape"]), getattr(torch, row["dtype"])
        state[name] = recipe_tensor(name, shape, dtype) if row["recipe"] else torch.zeros(shape, dtype=dtype)
    state[PERCEPTUAL_KEY] = torch.zeros(4, 3, 3, 3)
    torch.save({"model": state, "meta_cfg": meta_cfg}, path)
    return path
