"""Training and evaluation datasets on disk: :mod:`core.dataset.layout` is the contract
between ``preprocess`` (which writes it) and the trainer and ``eval`` (which read it)."""
