import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from benchmarks.metrics import ResemblyzerEncoder, SpeakerEncoder, SpeakerSimilarity, WavLMSpeakerEncoder


def voice(f0: float, seconds: float = 1.5, sr: int = 16000, seed: int = 0) -> torch.Tensor:
    """A buzzy harmonic tone with a little noise: enough structure for a speaker encoder to embed."""
    t = torch.arange(int(seconds * sr)) / sr
    g = torch.Generator().manual_seed(seed)
    wav = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 12)) * (
        0.6 + 0.4 * torch.sin(2 * math.pi * 3 * t)
    )
    return (0.1 * wav + 0.01 * torch.randn(len(t), generator=g)).float()


@pytest.fixture(scope="module")
def resemblyzer():
    return ResemblyzerEncoder()


@pytest.mark.slow
def test_resemblyzer_default_equals_hand_computation(resemblyzer):
    from resemblyzer import preprocess_wav

    gen = [voice(120, seed=1), voice(210, seed=2)]
    ref = [voice(125, seed=3), voice(130, seed=4)]
    metric = SpeakerSimilarity(resemblyzer)
    metric.update(gen, ref, sample_rate=16000)
    enc = resemblyzer.encoder
    cos = [
        float(np.dot(enc.embed_utterance(preprocess_wav(g.numpy())), enc.embed_utterance(preprocess_wav(r.numpy()))))
        for g, r in zip(gen, ref, strict=True)
    ]
    assert metric.compute().item() == pytest.approx(np.mean(cos), abs=1e-5)
    assert isinstance(resemblyzer, SpeakerEncoder)


def test_inputs_at_other_rates_are_resampled(resemblyzer):
    gen, ref = voice(150, seed=5), voice(160, seed=6)
    at_16k = SpeakerSimilarity(resemblyzer)
    at_16k.update([gen], [ref], sample_rate=16000)
    at_24k = SpeakerSimilarity(resemblyzer)
    # the same signals at 24 kHz (stereo for one of them) come back to the 16 kHz result
    gen24 = AF.resample(gen, 16000, 24000)
    at_24k.update([gen24], [AF.resample(ref, 16000, 24000).expand(2, -1)], sample_rate=24000)
    assert at_24k.compute().item() == pytest.approx(at_16k.compute().item(), abs=0.02)


def test_wavlm_xvector_from_a_local_directory(tmp_path):
    from transformers import WavLMConfig, WavLMForXVector

    cfg = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(16, 16, 32),
        tdnn_kernel=(3, 3, 1),
        tdnn_dilation=(1, 2, 1),
        xvector_output_dim=8,
        num_buckets=32,
        max_bucket_distance=64,
    )
    torch.manual_seed(0)
    model = WavLMForXVector(cfg).eval()
    model.save_pretrained(tmp_path)
    encoder = WavLMSpeakerEncoder(tmp_path)
    gen, ref = [voice(120, 1.0), voice(220, 0.7)], [voice(125, 0.8), voice(140, 1.2)]

    def xvector(w):  # zero-mean unit-variance input, as Wav2Vec2FeatureExtractor(do_normalize=True)
        x = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
        with torch.no_grad():
            return model(x[None]).embeddings[0]

    expected = np.mean(
        [F.cosine_similarity(xvector(g), xvector(r), dim=0).item() for g, r in zip(gen, ref, strict=True)]
    )
    metric = SpeakerSimilarity(str(tmp_path))
    metric.update(gen[:1], ref[:1], sample_rate=16000)
    to_8k = [AF.resample(gen[1], 16000, 8000), AF.resample(ref[1], 16000, 8000)]
    metric.update(to_8k[:1], to_8k[1:], sample_rate=8000)  # an 8 kHz pair is resampled to 16 kHz
    assert metric.compute().item() == pytest.approx(expected, abs=0.05)
    metric.reset()
    metric.update(gen, ref, sample_rate=16000)
    assert metric.compute().item() == pytest.approx(expected, abs=1e-5)
    assert encoder.embed(gen[0], 16000).shape == (8,)


def test_bad_input(resemblyzer):
    metric = SpeakerSimilarity(resemblyzer)
    with pytest.raises(ValueError, match="2 generated but 1 reference"):
        metric.update([voice(100), voice(110)], [voice(100)], sample_rate=16000)
    with pytest.raises(ValueError, match="empty"):
        metric.update([torch.zeros(0)], [voice(100)], sample_rate=16000)
    with pytest.raises(ValueError, match="shape"):
        metric.update([torch.zeros(1, 2, 3)], [voice(100)], sample_rate=16000)
    with pytest.raises(FileNotFoundError, match="not found"):
        SpeakerSimilarity("/nonexistent/wavlm")
    with pytest.raises(TypeError, match="embed"):
        SpeakerSimilarity(object())
