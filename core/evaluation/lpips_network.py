"""LPIPS (Zhang et al. 2018, v0.1) as a module whose weights come from a plain weights file.

The reference implementation (the ``lpips`` package) builds its trunk through torchvision's
deprecated ``pretrained=`` path, which downloads ImageNet weights, and reads its own weights
with pickle; we only need its architecture, with every tensor from a file that cannot carry
code. So this module mirrors that architecture and its state-dict names exactly
(``scaling_layer.shift``, ``net.slice1.0.weight``, ``lin0.model.1.weight``, ...): the state
dict of ``lpips.LPIPS(net="alex" or "vgg")`` saved with safetensors loads here unchanged, and
the distances agree (``tests/test_lpips_network.py`` checks both against the package).

Distance of images a, b ([N, 3, H, W] in [-1, 1]): scale both by the ImageNet statistics, take
the trunk's five ReLU outputs, unit-normalise each over channels, weight the squared differences
per channel by the learned 1x1 ``lin`` layers, average over pixels and sum over the five layers.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models import alexnet
from torchvision.models.vgg import cfgs as vgg_layouts
from torchvision.models.vgg import make_layers

#: Trunk -> (feature-layer index ranges of the five slices, their output channels).
TRUNKS = {
    "alex": (((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), (64, 192, 384, 256, 256)),
    "vgg": (((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)), (64, 128, 256, 512, 512)),
}
#: The smallest image side each trunk's pooling leaves a non-empty last slice for.
MIN_SIDE = {"alex": 32, "vgg": 16}
_NORMALISE_EPS = 1e-10


class LpipsNetwork(nn.Module):
    """LPIPS with an AlexNet or VGG-16 trunk; ``forward(a, b)`` -> [N] distances."""

    def __init__(self, trunk: str) -> None:
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"LPIPS trunk {trunk!r}: expected one of {sorted(TRUNKS)}")
        self.trunk = trunk
        self.scaling_layer = _ScalingLayer()
        self.net = _Slices(_trunk_features(trunk), TRUNKS[trunk][0])
        for index, channels in enumerate(TRUNKS[trunk][1]):
            self.add_module(f"lin{index}", _LinLayer(channels))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a, b: [N, 3, H, W] in [-1, 1], H and W at least :data:`MIN_SIDE`. Returns [N]."""
        if min(a.shape[-2:]) < MIN_SIDE[self.trunk]:
            raise ValueError(f"LPIPS ({self.trunk}) needs images of at least {MIN_SIDE[self.trunk]} pixels a side, "
                             f"got {tuple(a.shape[-2:])}")  # fmt: skip
        total = a.new_zeros(a.shape[0])
        for index, (features_a, features_b) in enumerate(zip(self.net(self.scaling_layer(a)),
                                                             self.net(self.scaling_layer(b)))):  # fmt: skip
            difference = (_unit(features_a) - _unit(features_b)) ** 2
            total = total + getattr(self, f"lin{index}")(difference).mean(dim=(1, 2, 3))
        return total


def canonical_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with the reference's second names of its learned layers folded into the first:
    ``lpips.LPIPS`` holds ``lin0`` .. ``lin4`` also as ``lins.0`` .. ``lins.4``, and a saved file
    has either name or both (safetensors' ``save_model`` keeps one of each shared pair)."""
    canonical = {}
    for key, value in state.items():
        match = re.fullmatch(r"lins\.(\d+)\.(.*)", key)
        canonical.setdefault(f"lin{match[1]}.{match[2]}" if match else key, value)
    return canonical


def trunk_of(state: dict[str, Tensor]) -> str | None:
    """Which trunk a state dict's ``lin0`` .. ``lin4`` widths belong to, or None."""
    widths = tuple(
        state[f"lin{index}.model.1.weight"].shape[1] if f"lin{index}.model.1.weight" in state else None
        for index in range(5)
    )
    return next((name for name, (_, channels) in TRUNKS.items() if widths == channels), None)


class _ScalingLayer(nn.Module):
    """[-1, 1] images -> ImageNet-normalised ones (the statistics are buffers, as in the reference)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.shift) / self.scale


class _Slices(nn.Module):
    """The trunk's feature layers cut into five slices named ``slice1`` .. ``slice5``; each
    keeps its layers' torchvision indices as names, so the weights' keys match the reference."""

    def __init__(self, features: nn.Sequential, ranges: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        for number, (start, stop) in enumerate(ranges, start=1):
            layers = OrderedDict((str(index), features[index]) for index in range(start, stop))
            self.add_module(f"slice{number}", nn.Sequential(layers))

    def forward(self, images: Tensor) -> list[Tensor]:
        outputs, x = [], images
        for layer in self.children():
            x = layer(x)
            outputs.append(x)
        return outputs


class _LinLayer(nn.Module):
    """A learned non-negative weight per channel: ``model`` = (dropout, 1x1 conv without bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _trunk_features(trunk: str) -> nn.Sequential:
    if trunk == "alex":
        return alexnet(weights=None).features
    return make_layers(vgg_layouts["D"])


def _unit(features: Tensor) -> Tensor:
    """[N, C, H, W] features divided by their length over channels."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + _NORMALISE_EPS)
