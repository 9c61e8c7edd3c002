"""Evaluation of avatars on talking-head sequences (``omg-avatar eval``): the sequences
(raw videos, preprocessed dataset clips), per-frame scoring, and self- and cross-identity
reenactment."""
