"""The shipped tiny checkpoints load, have the documented shape, and work together."""

import json

import pytest
import torch

from anygpt.assets import asset_path
from anygpt.modalities.codec import Codec
from anygpt.modalities.speech import SoundStorm, SpeechTokenizerCodec, TinySpeechCodec

ASSETS = asset_path("anygpt-assets:tokenizers")

pytestmark = pytest.mark.skipif(not (ASSETS / "speech" / "model.safetensors").exists(), reason="assets not built")


def test_tiny_tokenizer_asset():
    config = json.loads((ASSETS / "speech" / "config.json").read_text())
    assert config["class_path"].endswith(("TinySpeechModality", "TinySpeechCodec"))  # saved before or after the split
    speech = Codec.from_pretrained(ASSETS / "speech")
    assert isinstance(speech, TinySpeechCodec) and speech.frame_rate == 25 and speech.codebook_size == 256
    assert (ASSETS / "speech" / "model.safetensors").stat().st_size < 8_000_000
    torch.manual_seed(0)
    t = torch.arange(32000) / 16000
    wav = (0.2 * torch.sin(2 * torch.pi * 220 * t) * (t < 1.2)).reshape(1, -1)
    full = speech.encode_all_levels([wav])[0]
    assert full.shape == (8, 50) and full.max() < 256
    assert speech.decode([full])[0].shape == (1, 32000)


@pytest.mark.skipif(not (ASSETS / "soundstorm" / "model.safetensors").exists(), reason="soundstorm not built")
def test_tiny_soundstorm_asset_pairs_with_the_tokenizer():
    speech = SpeechTokenizerCodec.from_pretrained("anygpt-assets:tokenizers/speech",
                                                  soundstorm="anygpt-assets:tokenizers/soundstorm")
    storm = SoundStorm.from_pretrained(ASSETS / "soundstorm")
    assert storm.init_args["codebook_size"] == speech.codebook_size
    tokens = torch.randint(0, 256, (30,))
    assert speech.decode([tokens])[0].shape == (1, 30 * 640)
