"""Pose sequences from an action label (issue 22): labelled motion data, PSGAN, an action classifier and the
paper's evaluation.

Yang et al., "Pose Guided Human Video Generation" (ECCV 2018), Sec. 3.1: a Pose Sequence GAN generates a
pose sequence from noise and an action label with a recurrent generator, judged by a discriminator over the
sequence conditioned on the label; its sequences are scored by an action classifier trained on real labelled
sequences. Here everything lives in the project's normalized joint space (:mod:`train.actions.sequences`):

- :mod:`train.actions.sequences`: the data format, the normalization and the label set.
- :mod:`train.actions.choreography`: labelled synthetic sequences of the mannequin.
- :mod:`train.actions.clips`: labelled real clips (a label file) through the project's pose estimator;
  ``train/actions/labels/shared_clips.csv`` labels the shared real videos (``../shared/data``).
- :mod:`train.actions.config`, :mod:`train.actions.models`, :mod:`train.actions.checkpoint`,
  :mod:`train.actions.fit`: PSGAN and the classifier, their config, checkpoint and training.
- :mod:`train.actions.evaluate`: the classifier's accuracy, diversity and smoothness table, and a sheet.
- :mod:`train.actions.cli`: ``python -m train.actions data|fit|sample|evaluate``.
"""
