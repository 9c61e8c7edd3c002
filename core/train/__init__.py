"""Training and evaluation. For now the evaluation metrics (:mod:`core.train.metrics`);
datasets, losses and the trainer join them here."""
