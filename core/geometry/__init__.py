"""Cameras, mesh utilities (edges, normals), the subdivision operators behind LOD, and the
damped least-squares solver of FLAME fitting."""
