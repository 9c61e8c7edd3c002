"""Evaluation of avatars on talking-head sequences (``omg-avatar eval``): the sequences
(raw videos, preprocessed dataset clips), the metrics (:mod:`core.evaluation.metrics`, also used
by the trainer's validation), per-frame scoring, and self- and cross-identity reenactment."""
