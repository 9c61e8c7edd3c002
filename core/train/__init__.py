"""Training the network on a dataset laid out as :mod:`core.dataset.layout` says, validated with
:mod:`core.evaluation.metrics`.

* :mod:`core.train.network`: the released network sized by the config, its frozen FLAME and DINOv2.
* :mod:`core.train.pairs`: (source, driving) pairs of one clip and their batches, in the release's convention.
* :mod:`core.train.losses`: the paper's loss (L2, SSIM, perceptual on coarse and refined, offsets).
* :mod:`core.train.schedules`: progressive levels of detail and the learning-rate schedule.
* :mod:`core.train.trainer`: the training loop, validation and exports.
* :mod:`core.train.state`: resumable checkpoints; :mod:`core.train.run_log`: logs and image grids.
* :mod:`core.train.distributed`: torchrun processes.
"""
