"""FLAME: reading the official model files (safely, without chumpy), linear blend skinning, the
layer, and one frame's fitted parameters."""

from core.flame.files import (
    FlameModelData,
    LandmarkEmbedding,
    find_flame_file,
    load_flame_model,
    load_landmark_embedding,
)
from core.flame.layer import FlameLayer, FlameOutput, load_flame_layer
from core.flame.params import FlameParams

__all__ = [
    "FlameLayer",
    "FlameModelData",
    "FlameOutput",
    "FlameParams",
    "LandmarkEmbedding",
    "find_flame_file",
    "load_flame_layer",
    "load_flame_model",
    "load_landmark_embedding",
]
