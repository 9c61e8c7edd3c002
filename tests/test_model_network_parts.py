"""The network's parts on hand-made inputs: FLAME posing with offsets, HPFS's pixel
convention, OAFF's occlusion mask, the Gaussian activations, shoulder cells and rays,
coarse to fine, the refiner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import load_config
from core.geometry.camera import Camera
from core.geometry.subdivision import build_lod
from core.model.coarse_to_fine import CoarseToFine
from core.model.global_branch import GlobalBranch
from core.model.heads import MAX_SCALE, GaussianHeads, activate, raw_size
from core.model.hpfs import sample_plane
from core.model.oaff import fuse, visibility
from core.model.posing import FlameCoefficients, HeadPoser
from core.model.refiner import NeuralRefiner
from core.model.shoulders import shoulder_cells, unproject
from test_model_network import synthetic_flame_layer

TINY = load_config("tiny")
SIZE = 64


def frontal_camera(size: int = SIZE) -> Camera:
    return Camera.look_at((0.0, 0.0, 9.5), (0.0, 0.0, 0.0), size, size, 12.0)


# --------------------------------------------------------------------------- posing
def test_poser_without_offsets_is_the_flame_layer_scaled(tmp_path):
    flame = synthetic_flame_layer(tmp_path, TINY)
    poser = HeadPoser(flame, scale=5.0)
    generator = torch.Generator().manual_seed(0)
    coefficients = FlameCoefficients(
        expression=torch.randn(2, 100, generator=generator),
        rotation=0.2 * torch.randn(2, 3, generator=generator),
        neck=0.2 * torch.randn(2, 3, generator=generator),
        jaw=torch.tensor([[0.3, 0.0, 0.0], [0.1, 0.05, 0.0]]),
        eyes=0.1 * torch.randn(2, 6, generator=generator),
        translation=0.01 * torch.randn(2, 3, generator=generator),
    )
    shape = torch.randn(2, 300, generator=generator)
    fields = {name: value for name, value in vars(coefficients).items() if value is not None}
    expected = flame(shape=shape, **fields).vertices * 5.0
    torch.testing.assert_close(poser(shape, None, coefficients), expected, rtol=1e-5, atol=1e-5)

    offsets = 0.01 * torch.randn(2, poser.num_vertices, 3, generator=generator)
    rest = FlameCoefficients(expression=coefficients.expression)
    torch.testing.assert_close(poser(shape, offsets, rest), poser(shape, None, rest) + offsets)
    # posed, the offsets turn with the head
    turned = FlameCoefficients(rotation=torch.tensor([[0.0, np.pi / 2, 0.0]]).repeat(2, 1))
    moved = poser(shape, offsets, turned) - poser(shape, None, turned)
    assert not torch.allclose(moved, offsets, atol=1e-4)
    torch.testing.assert_close(moved.norm(dim=-1), offsets.norm(dim=-1), rtol=1e-4, atol=1e-5)


def test_flame_coefficients_batch_size():
    assert FlameCoefficients().batch_size is None
    assert FlameCoefficients(jaw=torch.zeros(3, 3)).batch_size == 3
    with pytest.raises(ValueError, match="disagree"):
        _ = FlameCoefficients(jaw=torch.zeros(3, 3), expression=torch.zeros(2, 10)).batch_size


# --------------------------------------------------------------------------- HPFS
def test_hpfs_samples_the_plane_at_the_projected_pixel_with_cameras_pixel_convention():
    """A plane holding each cell centre's image coordinates gives back a vertex's projection,
    at a plane resolution other than the image's."""
    camera, plane_size = frontal_camera(), 16
    centres = (torch.arange(plane_size, dtype=torch.float64) + 0.5) * SIZE / plane_size
    plane = torch.stack(torch.meshgrid(centres, centres, indexing="xy"))[None]  # [1, 2 (u, v), P, P]
    # points projecting between the first and the last cell centres, where bilinear is exact
    generator = torch.Generator().manual_seed(0)
    pixels = centres[0] + (centres[-1] - centres[0]) * torch.rand(50, 2, generator=generator, dtype=torch.float64)
    depth = 9.5 + torch.rand(50, generator=generator, dtype=torch.float64)
    vertices = unproject(camera, pixels, depth)
    sampled = sample_plane(plane, vertices[None], [camera])[0]
    torch.testing.assert_close(sampled, pixels)
    torch.testing.assert_close(camera.project(vertices)[0], pixels)


def test_hpfs_gives_zeros_outside_the_image_and_behind_the_camera_and_gradients_inside():
    camera = frontal_camera()
    plane = torch.ones(1, 4, 8, 8)
    vertices = torch.tensor([[[0.0, 0.0, 0.0], [50.0, 0.0, 0.0], [0.0, 0.0, 20.0]]], requires_grad=True)
    sampled = sample_plane(plane, vertices, [camera])
    torch.testing.assert_close(sampled[0, :, 0], torch.tensor([1.0, 0.0, 0.0]))
    ramp = torch.linspace(0, 1, 8).expand(1, 4, 8, 8)
    sample_plane(ramp, vertices, [camera]).sum().backward()
    assert vertices.grad[0, 0, 0] != 0  # moving the vertex along x moves it along the ramp


# --------------------------------------------------------------------------- OAFF
def test_oaff_masks_a_vertex_hidden_behind_another_surface():
    """A front quad at z = 0.5 hides the corner of a back quad at z = -0.5 behind it; the back
    quad's other corners and the front quad's are seen."""
    front = [[-0.3, -0.3, 0.5], [0.3, -0.3, 0.5], [0.3, 0.3, 0.5], [-0.3, 0.3, 0.5]]
    back = [[0.0, 0.0, -0.5], [0.6, 0.0, -0.5], [0.6, 0.6, -0.5], [0.0, 0.6, -0.5]]
    vertices = torch.tensor([front + back])
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    faces = np.concatenate([quad, quad + 4])
    mask, depth = visibility(vertices, faces, [frontal_camera()])
    assert mask.tolist() == [[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]]
    assert depth.shape == (1, SIZE, SIZE)
    assert torch.isfinite(depth).any() and torch.isinf(depth).any()
    # the same corner seen from behind is in front
    behind = Camera.look_at((0.0, 0.0, -9.5), (0.0, 0.0, 0.0), SIZE, SIZE, 12.0)
    mask_behind, _ = visibility(vertices, faces, [behind])
    assert mask_behind[0, 4] == 1.0 and mask_behind[0, 2] == 0.0


def test_fuse_adds_local_features_only_where_visible():
    global_features, local_features = torch.ones(1, 3, 2), torch.full((1, 3, 2), 5.0)
    fused = fuse(global_features, local_features, torch.tensor([[1.0, 0.0, 1.0]]))
    assert fused[0, :, 0].tolist() == [6.0, 1.0, 6.0]


# --------------------------------------------------------------------------- heads
def test_activations_bound_every_attribute():
    channels = 8
    raw = 20.0 * torch.randn(2, 100, raw_size(channels), generator=torch.Generator().manual_seed(0))
    size = torch.rand(100) + 0.1
    attributes = activate(raw, size)
    assert attributes.features.shape == (2, 100, channels)
    rgb = attributes.features[..., :3]
    assert (rgb >= 0).all() and (rgb <= 1).all()
    assert (attributes.features[..., 3:].abs() > 1).any()  # the other channels are free
    assert ((attributes.opacities >= 0) & (attributes.opacities <= 1)).all()
    assert (attributes.scales >= 0).all() and (attributes.scales <= MAX_SCALE * size[:, None] + 1e-6).all()
    torch.testing.assert_close(attributes.quats.norm(dim=-1), torch.ones(2, 100))
    neutral = activate(torch.zeros(1, 1, raw_size(channels)), torch.tensor([2.0]))
    assert neutral.quats.tolist() == [[[1.0, 0.0, 0.0, 0.0]]]
    assert neutral.scales.tolist() == [[[MAX_SCALE, MAX_SCALE, MAX_SCALE]]]
    assert neutral.opacities.item() == 0.5


def test_gaussian_heads_map_features_to_attributes_of_every_gaussian():
    heads = GaussianHeads(feature_dim=16, splat_channels=8)
    attributes = heads(torch.randn(2, 30, 16), torch.full((30,), 0.1))
    assert attributes.features.shape == (2, 30, 8) and attributes.quats.shape == (2, 30, 4)
    gaussians = attributes.at(1, torch.zeros(30, 3))
    assert len(gaussians) == 30 and gaussians.num_channels == 8
    with pytest.raises(ValueError, match="at least 3"):
        GaussianHeads(feature_dim=16, splat_channels=2)


# --------------------------------------------------------------------------- global branch, coarse to fine
def test_global_branch_gives_one_feature_per_vertex_that_depends_on_the_photo():
    branch = GlobalBranch(num_vertices=10, identity_dim=12, feature_dim=16, layers=2, heads=4)
    first, second = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(0))
    features = branch(torch.stack([first, second]))
    assert features.shape == (2, 10, 16)
    assert not torch.allclose(features[0], features[1])
    assert not torch.allclose(features[0, 0], features[0, 1])  # the queries differ per vertex


def test_coarse_to_fine_subdivides_phi_of_the_previous_level():
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])  # a tetrahedron
    hierarchy = build_lod(faces, 4, levels=2)
    module = CoarseToFine(levels=2, feature_dim=6)
    base = torch.randn(3, 4, 6)
    levels = module(base, hierarchy.steps, up_to=2)
    assert [level.shape[1] for level in levels] == list(hierarchy.num_vertices) == [4, 10, 34]
    torch.testing.assert_close(levels[2], hierarchy.steps[1](module.phi[1](levels[1])))
    assert len(module(base, hierarchy.steps, up_to=0)) == 1
    with pytest.raises(ValueError, match="level 3"):
        module(base, hierarchy.steps, up_to=3)


# --------------------------------------------------------------------------- shoulders
def test_unproject_inverts_project():
    camera = Camera.orbit((0.1, 0.0, 0.0), 30.0, -10.0, 9.5, SIZE, SIZE, 12.0)
    points = torch.randn(20, 3, dtype=torch.float64)
    uv, depth = camera.project(points)
    torch.testing.assert_close(unproject(camera, uv, depth), points)


def test_shoulder_cells_are_the_mask_below_the_head_minus_the_head():
    cells = 16  # 4 px each
    mask = torch.ones(1, SIZE, SIZE)
    mask[:, :, :8] = 0.0  # two empty columns of cells at the left
    head = torch.full((SIZE, SIZE), torch.inf)
    head[16:48, 24:40] = 9.0  # cell rows 4..11, columns 6..9
    keep = shoulder_cells(mask, head, head_row=32.0, cells=cells)
    expected = torch.zeros(cells, cells, dtype=torch.bool)
    expected[8:, 2:] = True  # below the head centre's row, inside the mask
    expected[8:12, 6:10] = False  # minus the head
    assert torch.equal(keep, expected)
    partial = mask.clone()
    partial[:, :, 8:11] = 0.0  # a quarter of cell column 2 left
    partial[:, :, 12:13] = 0.0  # three quarters of cell column 3 left
    keep = shoulder_cells(partial, head, 32.0, cells)
    assert not keep[:, 2].any() and torch.equal(keep[:, 3], expected[:, 3])


# --------------------------------------------------------------------------- refiner
def test_refiner_maps_features_to_rgb_of_the_same_size():
    refiner = NeuralRefiner(in_channels=8)
    rgb = refiner(torch.randn(2, 8, 32, 48))
    assert rgb.shape == (2, 3, 32, 48)
    assert ((rgb >= 0) & (rgb <= 1)).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        refiner(torch.randn(1, 8, 40, 40))
