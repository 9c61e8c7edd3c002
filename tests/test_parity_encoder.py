"""The release's encoder part (DINOv2 + DPT head, query decoder, view-direction code, offset
generator) against the tensors the released code computed, and against its state-dict keys
(``tests/official_parity.py`` reads the fixture: ``$OMG_PARITY_FIXTURE``, default
``../shared/official_parity``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.model.direction_code import DIRECTION_CODE_DIM, direction_code
from core.model.encoder import DinoEncoder, EncodedImage
from core.model.offset_generator import OffsetGenerator
from core.model.query_decoder import QueryDecoder
from official_parity import REDUCTIONS, ParityFixture, assert_close_to_scale, fill_by_recipe, recipe_tensor

#: The release's names of the modules built here, as prefixes of its state-dict keys.
ENCODER, DECODER, OFFSETS, QUERIES = "base_dino_model.", "transformer.", "gs_generator_offset.", "head_base"


@pytest.fixture(scope="module")
def fixture() -> ParityFixture:
    return ParityFixture.load()


def release_modules(fixture: ParityFixture) -> dict[str, nn.Module]:
    """Our modules at the fixture's configuration, by the release's key prefix, in eval mode,
    filled by the fixture's recipe."""
    model = fixture.meta_cfg["MODEL"]
    encoder = DinoEncoder(image_size=fixture.tensors["in.f_image"].shape[-1], feature_dim=model["DIM"])
    modules = {
        ENCODER: encoder,
        DECODER: QueryDecoder(model["DIM"], encoder.token_dim, model["N_TRANSFORMER_LAYERS"]),
        OFFSETS: OffsetGenerator(model["DIM"]),
    }
    for prefix, module in modules.items():
        fill_by_recipe(module.eval(), prefix)
    return modules


@pytest.fixture(scope="module")
def modules(fixture) -> dict[str, nn.Module]:
    return release_modules(fixture)


@pytest.fixture(scope="module")
def encoded(fixture, modules) -> EncodedImage:
    with torch.no_grad():
        return modules[ENCODER](fixture.tensors["in.f_image"])


def test_the_plane_has_the_releases_size(fixture, modules):
    assert modules[ENCODER].plane_size == fixture.meta_cfg["DATASET"]["POINT_PLANE_SIZE"]


@pytest.mark.parametrize(
    "stage, output",
    [
        ("dino.f_feature1", lambda encoded: encoded.plane),
        ("dino.global", lambda encoded: encoded.first_token),
        ("dino.multiscale", lambda encoded: encoded.tokens),
        ("dino.inter0", lambda encoded: encoded.layers[0]),
        ("dino.inter1", lambda encoded: encoded.layers[1]),
        ("dino.inter2", lambda encoded: encoded.layers[2]),
    ],
)
def test_the_encoder_computes_the_releases_dino_stages(fixture, encoded, stage, output):
    forms = stored_forms(fixture, stage, output(encoded))
    assert forms, f"{stage} is not in the fixture"
    for name, stored, computed in forms:
        assert_close_to_scale(computed, stored, name)


def stored_forms(fixture: ParityFixture, stage: str, computed: torch.Tensor) -> list[tuple]:
    """(name, stored, computed reduced alike) for every form of ``stage`` the fixture holds:
    whole and each reduction (``ParityFixture.expected`` gives only the first)."""
    forms = [(stage, fixture.tensors[stage], computed)] if stage in fixture.tensors else []
    for suffix, reduce in REDUCTIONS.items():
        if f"{stage}.{suffix}" in fixture.tensors:
            forms.append((f"{stage}.{suffix}", fixture.tensors[f"{stage}.{suffix}"], reduce(computed)))
    return forms


def test_the_direction_code_is_the_releases(fixture):
    code = direction_code(fixture.tensors["in.plane_dirs"])
    assert code.shape[-1] == DIRECTION_CODE_DIM
    assert_close_to_scale(code, fixture.tensors["enc.plane_direnc"], "enc.plane_direnc")


def test_the_query_decoder_computes_the_releases_transformer_output(fixture, modules):
    """The release's learned queries (``head_base``, [V0, DIM]) over its DINOv2 tokens."""
    queries = recipe_tensor(QUERIES, (fixture.info["mesh_counts"]["V0"], fixture.meta_cfg["MODEL"]["DIM"]))
    with torch.no_grad():
        features = modules[DECODER](queries, fixture.tensors["dino.multiscale"])
    assert_close_to_scale(features, fixture.tensors["tf.out"], "tf.out")


def test_the_offset_generator_computes_the_releases_offsets(fixture, modules):
    with torch.no_grad():
        offsets = modules[OFFSETS](fixture.tensors["tf.out"], fixture.tensors["enc.plane_direnc"])
    assert_close_to_scale(offsets, fixture.tensors["v_offset"], "v_offset")


def manifest_rows(fixture: ParityFixture, which: str, prefix: str) -> list[tuple]:
    """(name, shape, dtype, trainable) of the manifest's keys starting with ``prefix``, in order."""
    return [
        (row["name"], tuple(row["shape"]), row["dtype"], row["trainable"])
        for row in fixture.manifest(which)
        if row["name"].startswith(prefix)
    ]


def our_rows(module: nn.Module, prefix: str) -> list[tuple]:
    """Like :func:`manifest_rows`; with ``keep_vars`` the parameters say whether they train."""
    return [
        (prefix + key, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."), tensor.requires_grad)
        for key, tensor in module.state_dict(keep_vars=True).items()
    ]


@pytest.mark.parametrize("prefix", [ENCODER, DECODER, OFFSETS])
def test_the_state_dict_keys_are_the_fixture_models(fixture, modules, prefix):
    """Names, shapes, dtypes, order and trainability: the release's checkpoint loads by name."""
    assert our_rows(modules[prefix], prefix) == manifest_rows(fixture, "synthetic", prefix)


def test_the_state_dict_keys_at_paper_sizes_are_the_released_models(fixture):
    """Paper sizes are the defaults; built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        encoder = DinoEncoder()
        modules = {ENCODER: encoder, DECODER: QueryDecoder(), OFFSETS: OffsetGenerator()}
    for prefix, module in modules.items():
        assert our_rows(module, prefix) == manifest_rows(fixture, "real", prefix), prefix
    [queries] = manifest_rows(fixture, "real", QUERIES)
    assert queries[1] == (5023, modules[DECODER].input_projection.in_features)


def test_a_tiny_configuration_builds_a_small_encoder_part():
    """Small sizes keep the structure: a 56 px photo is 4 x 4 patches, a 32 x 32 plane."""
    encoder = DinoEncoder(image_size=56, feature_dim=32, vit_dim=64, vit_depth=4, vit_heads=2)
    decoder = QueryDecoder(feature_dim=32, token_dim=64, layers=1, heads=8, feedforward=64)
    offsets = OffsetGenerator(feature_dim=32, hidden=16)
    encoded = encoder(torch.rand(2, 3, 56, 56))
    features = decoder(torch.randn(10, 32), encoded.tokens)
    moved = offsets(features, direction_code(torch.randn(2, 3)))
    assert encoded.plane.shape == (2, 32, 32, 32) and encoder.plane_size == 32
    assert [layer.shape for layer in encoded.layers] == [(2, 16, 64)] * 4
    assert features.shape == (2, 10, 32)
    assert moved.shape == (2, 10, 3) and moved.abs().max() <= 0.05
    assert not any(parameter.requires_grad for parameter in encoder.dino_model.parameters())


def test_self_attention_keeps_off_torchs_inference_fast_path(monkeypatch):
    """That path would keep a [heads, V, V] matrix: 800 MB at the release's 5,023 queries."""

    def fast_path(*args, **kwargs):
        raise AssertionError("nn.MultiheadAttention took its inference fast path")

    monkeypatch.setattr(torch, "_native_multi_head_attention", fast_path)
    decoder = QueryDecoder(feature_dim=32, token_dim=64, layers=1, heads=8, feedforward=64).eval()
    with torch.no_grad():
        assert decoder(torch.randn(10, 32), torch.randn(1, 16, 64)).shape == (1, 10, 32)
