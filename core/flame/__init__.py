"""FLAME: reading the official model files (safely, without chumpy) and linear blend skinning."""

from core.flame.files import (
    FlameModelData,
    LandmarkEmbedding,
    find_flame_file,
    load_flame_model,
    load_landmark_embedding,
    resolve_model_file,
)
from core.flame.layer import FlameLayer, FlameOutput

__all__ = [
    "FlameLayer",
    "FlameModelData",
    "FlameOutput",
    "LandmarkEmbedding",
    "find_flame_file",
    "load_flame_model",
    "load_landmark_embedding",
    "resolve_model_file",
]
