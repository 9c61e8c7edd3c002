"""Our network against tensors the released OMG-Avatar code computed (``tests/official_parity.py``
reads the fixture folder: ``$OMG_PARITY_FIXTURE``, default ``../shared/official_parity``)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from core.flame.bundle import NECK_MASKS, load_flame_masks, load_template_faces
from core.flame.files import FlameModelData, load_flame_model
from core.flame.release_state import ReleaseFlameModel
from core.model.gaussian_generators import ATTRIBUTES
from core.model.release_geometry import FlamePose
from core.model.release_checkpoint import release_sizes
from core.model.release_network import Reconstruction, ReleaseConfig, ReleaseNetwork, Source
from official_parity import ParityFixture, assert_close_to_scale, fill_by_recipe, recipe_rule


@pytest.fixture(scope="module")
def fixture() -> ParityFixture:
    return ParityFixture.load()


@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_the_recipe_gives_the_manifests_rule_for_every_key(fixture, which):
    rows = [row for row in fixture.manifest(which) if row["recipe"] is not None]
    assert len(rows) > 600
    wrong = [row["name"] for row in rows if recipe_rule(row["name"], tuple(row["shape"])) != row["recipe"]]
    assert not wrong, wrong[:5]


# --------------------------------------------------------------------------- the whole network
# The released network end to end (``core.model.release_network``), built at the fixture's
# configuration from its synthetic FLAME and filled by the recipe (its attribute names are the
# release's, so its keys are the recipe's keys as they are). Encoded once per module; the
# reconstruction runs at every level the fixture holds.

MASK_AGREEMENT = 0.99  # the criterion for boolean masks
PAPER_FLAME_VERTICES, PAPER_FLAME_FACES = 5023, 9976


def release_flame(fixture: ParityFixture) -> ReleaseFlameModel:
    return ReleaseFlameModel(load_flame_model(fixture.flame_folder / "FLAME_with_eye.pt"))


def release_network(fixture: ParityFixture) -> ReleaseNetwork:
    """Our :class:`ReleaseNetwork` at the fixture's configuration, from its ``synthetic_flame/``."""
    flame = release_flame(fixture)
    faces = load_template_faces(fixture.flame_folder / "head_template_mesh.obj", flame.num_vertices)
    masks = load_flame_masks(fixture.flame_folder / "FLAME_masks.pkl", n_vertices=flame.num_vertices)
    neck = np.concatenate([masks[name] for name in NECK_MASKS])
    return ReleaseNetwork(release_sizes(fixture.meta_cfg, "the fixture"), flame, faces, neck)


def _manifest_entries(fixture: ParityFixture, which: str) -> list[tuple[str, list[int], str]]:
    return [
        (row["name"], list(row["shape"]), row["dtype"])
        for row in fixture.manifest(which)
        if not row["name"].startswith("percep_loss.")
    ]


def _state_entries(module: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()]


def _flame_pose(fixture: ParityFixture, prefix: str) -> FlamePose:
    t = fixture.tensors
    return FlamePose(t["in.f_shape"], t[f"in.{prefix}_exp"], t[f"in.{prefix}_pose"], t[f"in.{prefix}_eye"])


def _depth_name(fixture: ParityFixture, level: int) -> str:
    """The stored depth map of ``level``; a level above 0 that the fixture leaves out is compared
    with the highest stored one above 0 (the release's levels above 0 share the level-1 faces,
    so their depth maps are equal)."""
    if level == 0 or fixture.has(f"L{level}.f_z_buffer"):
        return f"L{level}.f_z_buffer"
    stored = [other for other in _levels(fixture) if other > 0 and fixture.has(f"L{other}.f_z_buffer")]
    return f"L{max(stored)}.f_z_buffer" if stored else f"L{level}.f_z_buffer"


def _levels(fixture: ParityFixture) -> list[int]:
    return sorted(int(level) for level in fixture.metadata["levels"])


@pytest.fixture(scope="module")
def network(fixture):
    model = release_network(fixture).eval()
    fill_by_recipe(model)
    return model


@pytest.fixture(scope="module")
def timings() -> dict[str, float]:
    return {}


@pytest.fixture(scope="module")
def encoding(fixture, network, timings):
    t = fixture.tensors
    source = Source(t["in.f_image"], t["in.f_transform"], _flame_pose(fixture, "f"))
    start = time.perf_counter()
    with torch.no_grad():
        encoded = network.encode(source)
    timings["encode"] = time.perf_counter() - start
    return encoded


@pytest.fixture(scope="module")
def reconstructions(fixture, network, encoding, timings) -> dict[int, Reconstruction]:
    avatars = {}
    for level in _levels(fixture):
        start = time.perf_counter()
        with torch.no_grad():
            avatars[level] = network.reconstruct(encoding, level, _flame_pose(fixture, "t"))
        timings[f"level {level}"] = time.perf_counter() - start
    return avatars


def _assert_stages(fixture: ParityFixture, stages: dict[str, torch.Tensor]) -> list[str]:
    """Every stage of ``stages`` the fixture holds (whole or reduced) matches within 1e-4 of its
    scale; returns the names compared."""
    compared = []
    for name, computed in stages.items():
        if fixture.has(name):
            stored, reduced = fixture.expected(name, computed)
            assert_close_to_scale(reduced, stored, name)
            compared.append(name)
    return compared


def test_the_network_has_the_releases_state_dict_at_the_fixtures_sizes(fixture, network):
    assert _state_entries(network) == _manifest_entries(fixture, "synthetic")


def test_the_network_has_the_releases_state_dict_at_the_papers_sizes(fixture):
    flame = ReleaseFlameModel(_blank_flame(PAPER_FLAME_VERTICES, PAPER_FLAME_FACES))
    faces = flame.faces.numpy()
    with torch.device("meta"):
        model = ReleaseNetwork(ReleaseConfig(), flame, faces, np.zeros(0, dtype=np.int64))
    assert _state_entries(model) == _manifest_entries(fixture, "real")


def _blank_flame(vertices: int, faces: int) -> FlameModelData:
    """A FLAME-sized model of zeros whose faces are a closed UV sphere of ``faces`` triangles
    (its vertices the first ones; the rest unused)."""
    ring = next(n for n in range(3, faces) if (faces // 2) % n == 0)  # vertices per ring
    rings = faces // 2 // ring
    assert faces % 2 == 0 and rings * ring + 2 <= vertices
    k, j = np.meshgrid(np.arange(rings - 1), np.arange(ring), indexing="ij")
    at = lambda k, j: 1 + k * ring + j % ring  # noqa: E731
    top = np.stack([np.zeros(ring, dtype=np.int64), at(0, np.arange(1, ring + 1)), at(0, np.arange(ring))], 1)
    bottom_pole = np.full(ring, 1 + rings * ring)
    bottom = np.stack([bottom_pole, at(rings - 1, np.arange(ring)), at(rings - 1, np.arange(1, ring + 1))], 1)
    a, b, c, d = at(k, j), at(k, j + 1), at(k + 1, j), at(k + 1, j + 1)
    sides = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    triangles = np.concatenate([top, sides, bottom])
    zeros = np.zeros
    return FlameModelData(
        v_template=zeros((vertices, 3)),
        faces=triangles,
        shapedirs=zeros((vertices, 3, 300)),
        exprdirs=zeros((vertices, 3, 100)),
        posedirs=zeros((vertices, 3, 36)),
        J_regressor=zeros((5, vertices)),
        parents=np.array([-1, 0, 1, 1, 1]),
        lbs_weights=zeros((vertices, 5)),
        eyelids=None,
        source="blank",
    )


def test_the_flame_entries_load_back(fixture, network):
    """The release's ``flame_model.*`` entries (posedirs in its [P, 3V] layout, faces as
    ``faces_tensor``) load strictly into a blanked FLAME, which then poses exactly as before."""
    entries = {
        key.removeprefix("flame_model."): value.clone()
        for key, value in network.state_dict().items()
        if key.startswith("flame_model.")
    }
    flame = release_flame(fixture)
    with torch.no_grad():
        for buffer in flame.buffers():
            buffer.zero_()
    flame.load_state_dict(entries)
    p = _flame_pose(fixture, "t")
    offsets = 0.01 * torch.ones(1, flame.num_vertices, 3)
    assert torch.equal(flame.faces, network.flame_model.faces)
    for model_offsets in (None, offsets):
        posed = flame(p.shape, p.expression, p.pose, p.eyes, model_offsets)
        assert torch.equal(posed, network.flame_model(p.shape, p.expression, p.pose, p.eyes, model_offsets))


def test_the_encoding_matches_the_release(fixture, network, encoding):
    e = encoding
    stages = {
        "dino.f_feature1": e.encoded.plane,
        "dino.multiscale": e.encoded.tokens,
        "dino.global": e.encoded.first_token,
        **{f"dino.inter{i}": layer for i, layer in enumerate(e.encoded.layers[:-1])},
        "enc.plane_direnc": e.code,
        "in.plane_points": e.plane_points,
        "in.plane_dirs": e.plane_direction,
        "tf.out": e.vertex_features,
        "v_offset": e.offsets,
        "flame.f_points": network.geometry.mesh(e.source.pose),
        "flame.t_points": network.head_points(e, _flame_pose(fixture, "t"), 0),
        **{f"shoulder.{name}": getattr(e.shoulder_cells.attributes, name) for name in ATTRIBUTES},
        "shoulder.positions": e.shoulder_cells.positions,
    }
    compared = _assert_stages(fixture, stages)
    assert {"tf.out", "v_offset", "shoulder.colors"} <= set(compared), compared


@pytest.mark.parametrize("level", [0, 1, 2])
def test_every_stage_of_the_reconstruction_matches_the_release(fixture, network, reconstructions, level):
    if level not in reconstructions:
        pytest.skip(f"the fixture has no level {level}")
    r = reconstructions[level]
    head = r.gaussians.xyz[:, -r.head_count :]
    stages = {
        f"L{level}.f_sub_points": r.view.points,
        f"L{level}.t_sub_points": head,
        f"L{level}.n_coords": r.view.n_coords,
        f"L{level}.ndc": r.view.ndc,
        _depth_name(fixture, level): r.view.depth_map,
        f"L{level}.cloth_mask_4dino": r.plane_mask,
        f"L{level}.feature_volume_sub": r.subdivided_features,
        f"L{level}.f_feature_sampling": r.sampled,
        **{f"L{level}.gs_head.{name}": getattr(r.head, name) for name in ATTRIBUTES},
        **{f"L{level}.gs.{name}": value for name, value in r.gaussians.as_dict().items()},
        **{
            f"L{level}.f_feature_combined.split{k}": r.combined[:, start:end]
            for k, (start, end) in enumerate(network.splits(level))
        },
    }
    compared = _assert_stages(fixture, stages)
    assert f"L{level}.gs_head.colors" in compared and f"L{level}.t_sub_points" in compared, compared
    for name, mask in (
        (f"L{level}.occluded_vertices_mask", r.view.occluded),
        (f"L{level}.shoulder_valid", r.shoulder_valid),
    ):
        stored, computed = fixture.expected(name, mask.float())
        agreement = float((stored.bool() == computed.bool()).float().mean())
        assert agreement >= MASK_AGREEMENT, f"{name}: {agreement:.2%} agree"


@pytest.mark.parametrize("level", [0, 1, 2])
def test_the_final_gaussians_are_the_releases(fixture, reconstructions, level):
    """Counts as the fixture's metadata; the head part (last) is the stored head Gaussians at
    the stored target vertices; the shoulder part (first) is the stored shoulder cells the
    stored ``shoulder_valid`` keeps, opacities times the stored plane mask, positions on the
    stored plane."""
    if level not in reconstructions:
        pytest.skip(f"the fixture has no level {level}")
    r, counts = reconstructions[level], fixture.metadata["levels"][str(level)]
    n_shoulder, n_head = counts["n_shoulder"], counts["n_head"]
    final = r.gaussians
    assert (final.count, r.head_count) == (n_shoulder + n_head, n_head)
    for name, value in final.as_dict().items():
        stored_name = f"L{level}.t_sub_points" if name == "xyz" else f"L{level}.gs_head.{name}"
        stored, computed = fixture.expected(stored_name, value[:, n_shoulder:])
        assert_close_to_scale(computed, stored, stored_name)
    # The shoulder part, put back on the plane grid (zeros off the kept cells) and reduced the
    # way the fixture stores the shoulder cells, against the stored cells on the cells both keep.
    t = fixture.tensors
    grid_like = r.encoding.shoulder_cells.positions  # [1, S*S, 1]

    def reduce(values: torch.Tensor) -> torch.Tensor:
        return fixture.expected("shoulder.positions", values)[1]

    cells = {name: fixture.expected(f"shoulder.{name}", grid_like)[0] for name in (*ATTRIBUTES, "positions")}
    expected = {
        "xyz": reduce(t["in.plane_points"]) + cells["positions"] * t["in.plane_dirs"][:, None],
        "colors": cells["colors"],
        "opacities": cells["opacities"] * reduce(t[f"L{level}.cloth_mask_4dino"].reshape(1, -1, 1)),
        "scales": cells["scales"],
        "rotations": cells["rotations"],
    }
    both = reduce((t[f"L{level}.shoulder_valid"].bool() & r.shoulder_valid)[..., None].float())
    for name, value in final.as_dict().items():
        grid = value.new_zeros(1, grid_like.shape[1], value.shape[-1])
        grid[r.shoulder_valid] = value[0, :n_shoulder]
        assert_close_to_scale(reduce(grid) * both, expected[name] * both, f"L{level} final shoulder {name}")


def test_animation_moves_only_the_head(fixture, network, reconstructions):
    """Per frame only the head's positions change: the target the avatar was reconstructed with
    gives its own Gaussians back; another target (the source's own coefficients) moves the head
    onto that mesh and leaves the shoulders and every other attribute as they were."""
    level = max(reconstructions)
    avatar = reconstructions[level]
    n_head = avatar.head_count
    with torch.no_grad():
        same = network.animate(avatar, _flame_pose(fixture, "t"))
        other_pose = _flame_pose(fixture, "f")
        moved = network.animate(avatar, other_pose)
        other_head = network.head_points(avatar.encoding, other_pose, level)
    for name, value in avatar.gaussians.as_dict().items():
        assert torch.equal(same.as_dict()[name], value), name
        if name != "xyz":
            assert torch.equal(moved.as_dict()[name], value), name
    assert torch.equal(moved.xyz[:, :-n_head], avatar.gaussians.xyz[:, :-n_head])
    assert torch.equal(moved.xyz[:, -n_head:], other_head)
    assert float((moved.xyz[:, -n_head:] - avatar.gaussians.xyz[:, -n_head:]).abs().max()) > 1e-3


def test_the_networks_refiner_is_the_releases(fixture, network):
    """``refine`` with its default fixed noise gives the release's ``upsampler(x, randomize_noise=False)``."""
    seed = fixture.metadata["seeds"]["refiner_input"]
    size = network.config.refiner_size
    x = torch.rand((1, 32, size, size), generator=torch.Generator().manual_seed(seed))
    check = fixture.tensors["refiner.input_check"]
    assert torch.allclose(torch.cat([x.sum()[None], (x * x).sum()[None], x.flatten()[:8]]), check, rtol=1e-5)
    with torch.no_grad():
        refined = network.refine(x)
    assert_close_to_scale(refined, fixture.tensors["refiner.out_fixed_noise"], "refiner.out_fixed_noise")


def test_report_timings(reconstructions, timings):
    """Seconds of the encoding (once per photo) and of the reconstruction at each level."""
    print("\n" + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items()), end="")
    assert set(timings) == {"encode", *(f"level {level}" for level in reconstructions)}


def test_a_tiny_network_runs_both_paths(fixture):
    """A tiny configuration (56 px image, 32 x 32 plane, small ViT and refiner) on the fixture's
    FLAME: every level reconstructs, animation moves only the head, the refiner keeps the size."""
    flame = release_flame(fixture)
    faces = load_template_faces(fixture.flame_folder / "head_template_mesh.obj", flame.num_vertices)
    config = ReleaseConfig(
        dim=32, transformer_layers=1, image_size=56, vit_dim=48, vit_depth=4, vit_heads=2, refiner_size=16
    )
    model = ReleaseNetwork(config, flame, faces, np.zeros(0, dtype=np.int64)).eval()
    t = fixture.tensors
    image = torch.nn.functional.interpolate(t["in.f_image"], size=(56, 56), mode="bilinear", antialias=True)
    with torch.no_grad():
        encoding = model.encode(Source(image, t["in.f_transform"], _flame_pose(fixture, "f")))
        for level in range(config.subdivision + 1):
            avatar = model.reconstruct(encoding, level)
            assert avatar.head_count == model.geometry.subdivision.num_vertices[level]
            assert avatar.shoulder_valid.shape == (1, config.plane_size**2)
            moved = model.animate(avatar, _flame_pose(fixture, "t"))
            assert torch.equal(moved.xyz[:, : -avatar.head_count], avatar.gaussians.xyz[:, : -avatar.head_count])
        assert model.refine(torch.rand(1, 32, 16, 16)).shape == (1, 3, 16, 16)
