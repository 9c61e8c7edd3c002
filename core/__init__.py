"""OMG-Avatar core: configuration, geometry, FLAME, tracking, rendering and the network."""

__version__ = "0.1.0"
