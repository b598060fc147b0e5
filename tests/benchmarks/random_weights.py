"""Weights files in the real formats of the by-path feature extractors, with random weights (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def random_inception_weights(path: Path) -> Path:
    """torch-fidelity's FeatureExtractorInceptionV3 with random weights (its download and load switched off while it
    is built), saved as a state_dict: the format of the real pt_inception-2015-12-05 file."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    patch = pytest.MonkeyPatch()
    patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
    patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None)
    try:
        torch.manual_seed(0)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        patch.undo()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def random_encodec_weights(path: Path) -> Path:
    """The encodec package's 24 kHz model with random weights, saved as its published state_dict is."""
    from encodec import EncodecModel

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(EncodecModel.encodec_model_24khz(pretrained=False).state_dict(), path)
    return path
