"""Cameras, mesh utilities and the subdivision operators behind LOD."""
