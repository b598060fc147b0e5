"""SpeechTokenizer parity: our codec vs the `speechtokenizer` package with the same random weights."""

import json

import pytest
import torch

from anygpt.modalities.speech import SpeechTokenizerCodec, SpeechTokenizerModel
from anygpt.modalities.speech.tokenizer import SpeechTokenizerConfig

speechtokenizer = pytest.importorskip("speechtokenizer")

SMALL = dict(n_filters=8, strides=[8, 5, 4, 2], dimension=64, semantic_dimension=48, bidirectional=True,
             dilation_base=2, residual_kernel_size=3, n_residual_layers=1, lstm_layers=2, activation="ELU",
             sample_rate=16000, codebook_size=1024, n_q=8, lambda_distill=0.15, segment_size=48000)


def reference(config):
    """The reference model with random weights; codebooks drawn from its own encoder outputs (residuals per level),
    as k-means would, so that codes vary (zero/normal codebooks map every frame to one code)."""
    torch.manual_seed(0)
    model = speechtokenizer.SpeechTokenizer(config).eval()
    with torch.no_grad():
        residual = model.encoder(torch.randn(2, 1, 8000) * 0.1)
        residual = residual.transpose(0, 1).reshape(1, residual.shape[1], -1)  # [1, D, frames]
        for layer in model.quantizer.vq.layers:
            pick = torch.randint(residual.shape[-1], (layer.codebook_size,))
            layer._codebook.embed.copy_(residual[0, :, pick].T + 1e-3 * torch.randn(layer.codebook_size, 1))
            layer._codebook.inited.fill_(1)
            residual = residual - layer.decode(layer.encode(residual))
    return model


def test_same_keys_codes_and_audio_as_reference():
    ref = reference(SMALL)
    ours = SpeechTokenizerModel(SpeechTokenizerConfig.from_dict(SMALL)).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    wav = torch.randn(2, 1, 12800) * 0.1
    with torch.no_grad():
        codes_ref, codes = ref.encode(wav), ours.encode(wav)
        assert codes.shape == (8, 2, 40)
        assert torch.equal(codes, codes_ref)
        assert len(codes[0].unique()) > 4  # the check is not vacuous
        diff = (ours.decode(codes) - ref.decode(codes_ref)).abs().max().item()
    assert diff < 1e-5


def test_release_directory_loads_into_the_codec(tmp_path):
    ref = reference(SMALL)
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    torch.save(ref.state_dict(), tmp_path / "ckpt.dev")
    speech = SpeechTokenizerCodec.from_pretrained(tmp_path)
    wav = torch.randn(1, 16000) * 0.1
    codes = speech.encode_all_levels([wav])[0]
    with torch.no_grad():
        assert torch.equal(codes, ref.encode(wav[None])[:, 0])
    assert torch.equal(speech.encode([wav])[0], codes[0])
    with torch.no_grad():
        expected = ref.decode(codes[:, None])[0]
    assert (speech.decode([codes])[0] - expected).abs().max() < 1e-5


def test_wrong_checkpoint_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    torch.save({"encoder.bogus": torch.zeros(1)}, tmp_path / "ckpt.dev")
    with pytest.raises(KeyError, match="ckpt.dev"):
        SpeechTokenizerCodec.from_pretrained(tmp_path)


@pytest.mark.slow
def test_paper_configuration_matches_reference():
    paper = dict(SpeechTokenizerConfig().to_dict())
    ref = reference(paper)
    ours = SpeechTokenizerModel(SpeechTokenizerConfig.from_dict(paper)).eval()
    assert len(ref.state_dict()) == 166
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(ref.state_dict())
    wav = torch.randn(1, 1, 8000) * 0.1
    with torch.no_grad():
        assert torch.equal(ours.encode(wav), ref.encode(wav))
