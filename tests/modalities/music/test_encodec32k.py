"""Encodec 32 kHz: parity with transformers' EncodecModel (random weights), both release layouts, token layout."""

import json
import math

import pytest
import torch

from anygpt.modalities.music import EncodecMusicTokenizer
from anygpt.modalities.registry import codec_class, modality_for

transformers = pytest.importorskip("transformers")


def _reference(seed: int = 0):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    config = EncodecConfig(
        sampling_rate=32000,
        num_filters=64,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048,
        hidden_size=128,
        num_lstm_layers=2,
        target_bandwidths=[2.2],
        use_causal_conv=False,
        norm_type="weight_norm",
        pad_mode="reflect",
        use_conv_shortcut=False,
        normalize=False,
    )
    model = EncodecModel(config).eval()
    with torch.no_grad():  # transformers initialises codebooks to zeros: draw entries from real latent frames
        frames = model.encoder(_music(0.5, 3).unsqueeze(1)).transpose(1, 2).reshape(-1, 128)
        for q, layer in enumerate(model.quantizer.layers):
            pick = torch.randint(len(frames), (2048,))
            layer.codebook.embed.copy_(frames[pick] * 0.5**q + 0.01 * torch.randn(2048, 128))
    return model


def _music(seconds: float = 0.5, batch: int = 2) -> torch.Tensor:
    t = torch.arange(int(32000 * seconds)) / 32000
    waves = [
        0.3 * torch.sin(2 * math.pi * f * t) * torch.exp(-2 * t) + 0.05 * torch.randn_like(t)
        for f in (220.0, 330.0, 440.0)[:batch]
    ]
    return torch.stack(waves)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    ref = _reference()
    directory = tmp_path_factory.mktemp("encodec_32khz")
    ref.save_pretrained(directory)
    return ref, directory


@pytest.mark.slow
def test_transformers_parity(reference_dir):
    ref, directory = reference_dir
    ours = EncodecMusicTokenizer.from_pretrained(directory)
    assert ours.n_q == 4 and ours.bins == 2048 and ours.init_args["pad_mode"] == "reflect" and ours.frame_rate == 50
    wav = _music()
    with torch.no_grad():
        ref_codes = ref.encode(wav.unsqueeze(1), bandwidth=2.2).audio_codes[0]  # [B, n_q, F]
        ref_audio = ref.decode(ref_codes.unsqueeze(0), [None]).audio_values  # [B, 1, T]
    codes = ours.encode(list(wav))
    assert torch.equal(torch.stack(codes), ref_codes)
    assert len(set(ref_codes[:, 0].reshape(-1).tolist())) > 3, "degenerate codes would make the test vacuous"
    audio = ours.decode(codes)
    diff = (torch.stack(audio) - ref_audio[:, 0, : audio[0].numel()]).abs().max().item()
    assert diff < 1e-4, diff


@pytest.mark.slow
def test_legacy_weight_norm_keys_and_audiocraft_layout(reference_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    ref, directory = reference_dir
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    state = load_file(str(directory / "model.safetensors"))
    renamed = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in state.items()
    }
    save_file(renamed, str(legacy / "model.safetensors"))
    (legacy / "config.json").write_text((directory / "config.json").read_text())
    a = EncodecMusicTokenizer.from_pretrained(legacy)

    # audiocraft: best_state holds Encodec's own key names; xp.cfg carries the SEANet settings
    cfg = {
        "sample_rate": 32000,
        "seanet": {
            "n_filters": 64,
            "ratios": [8, 5, 4, 4],
            "pad_mode": "reflect",
            "dimension": 128,
            "lstm": 2,
            "true_skip": True,
            "causal": False,
        },
    }
    torch.save({"best_state": a.state_dict(), "xp.cfg": cfg}, tmp_path / "compression_state_dict.bin")
    b = EncodecMusicTokenizer.from_pretrained(tmp_path / "compression_state_dict.bin", trust_code=True)
    assert b.init_args["pad_mode"] == "reflect" and b.n_q == 4
    wav = list(_music(0.2, 1))
    assert torch.equal(a.encode(wav)[0], b.encode(wav)[0])

    # without trust, only best_state is read and audiocraft's default padding applies
    torch.save({"best_state": a.state_dict()}, tmp_path / "plain.bin")
    c = EncodecMusicTokenizer.from_pretrained(tmp_path / "plain.bin")
    assert c.init_args["pad_mode"] == "constant"

    broken = dict(a.state_dict())
    broken.pop("decoder.model.0.conv.conv.weight_v")
    torch.save({"best_state": broken}, tmp_path / "broken.bin")
    with pytest.raises(KeyError, match="broken.bin.*decoder.model.0.conv.conv.weight_v"):
        EncodecMusicTokenizer.from_pretrained(tmp_path / "broken.bin")


def test_unsupported_transformers_config_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "encodec", "normalize": True}))
    with pytest.raises(NotImplementedError, match="normalize"):
        EncodecMusicTokenizer.from_pretrained(tmp_path)


def test_token_layout_matches_the_release():
    model = EncodecMusicTokenizer(n_filters=4, dimension=8, lstm=0)  # narrow: layout only
    assert codec_class("music") is EncodecMusicTokenizer
    assert model.codebook_size == 8192 and modality_for(model).spec.markers == ("<somu>", "<eomu>")
    codes = torch.tensor([[1, 2, 3], [10, 20, 30], [100, 200, 300], [1000, 2000, 2047]])
    flat = model.flatten(codes)
    assert flat[:8].tolist() == [1, 2048 + 10, 4096 + 100, 6144 + 1000, 2, 2048 + 20, 4096 + 200, 6144 + 2000]
    assert torch.equal(model.unflatten(flat), codes)
    assert torch.equal(model.unflatten(flat[:-2]), codes[:, :2])  # truncated final frame dropped
    s = model.structure
    assert [s.allowed_codes(i, 8192) for i in range(5)] == [
        (0, 2048),
        (2048, 4096),
        (4096, 6144),
        (6144, 8192),
        (0, 2048),
    ]
    assert s.can_end(8) and not s.can_end(7)
    assert s.valid_prefix(flat, 8192) == 12
