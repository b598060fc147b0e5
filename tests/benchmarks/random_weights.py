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


def tiny_wavlm_xvector(path: Path) -> Path:
    """A random transformers WavLMForXVector written by save_pretrained (a WavLM speaker-verification folder)."""
    from transformers import WavLMConfig, WavLMForXVector

    cfg = WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                      conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2, tdnn_dim=(16, 16, 32), tdnn_kernel=(3, 3, 1),
                      tdnn_dilation=(1, 2, 1), xvector_output_dim=8, num_buckets=32, max_bucket_distance=64)
    torch.manual_seed(0)
    WavLMForXVector(cfg).eval().save_pretrained(path)
    return path
