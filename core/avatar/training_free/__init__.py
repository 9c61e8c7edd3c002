"""The ``training-free`` reconstruction method (see :mod:`.method`)."""
