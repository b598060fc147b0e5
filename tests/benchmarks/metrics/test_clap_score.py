import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from benchmarks.metrics import AudioTextEmbedder, CLAPScore, LaionClapEmbedder
from benchmarks.metrics.clap_score import crop


class TinyEmbedder:
    """A deterministic random audio/text embedder (random projections), recording what it was given."""

    sample_rate = 1000
    window_seconds = 2.0

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.audio_proj = torch.randn(2000, 8, generator=g)
        self.text_proj = torch.randn(256, 8, generator=g)
        self.seen: list[torch.Tensor] = []

    def embed_audio(self, wavs, sample_rate):
        assert sample_rate == self.sample_rate
        self.seen.extend(wavs)
        x = torch.stack([F.pad(w, (0, 2000 - len(w))) for w in wavs])
        return F.normalize(x @ self.audio_proj, dim=-1)

    def embed_text(self, texts):
        bags = torch.zeros(len(texts), 256)
        for i, t in enumerate(texts):
            for b in t.encode()[:77]:
                bags[i, b] += 1
        return F.normalize(bags @ self.text_proj, dim=-1)


def test_mean_cosine_with_resampling_mono_and_deterministic_crop():
    emb = TinyEmbedder()
    assert isinstance(emb, AudioTextEmbedder)
    g = torch.Generator().manual_seed(1)
    clips = [torch.randn(2, 3000, generator=g), torch.randn(1500, generator=g), torch.randn(6000, generator=g)]
    texts = ["calm piano", "fast drums and bass", "a violin solo"]
    metric = CLAPScore(emb, crop="center")
    metric.update(clips, texts, sample_rate=2000)  # 2 kHz -> the embedder's 1 kHz, stereo -> mono
    prepared = list(emb.seen)
    assert [len(w) for w in prepared] == [1500, 750, 2000]  # the 3 s clip is cut to the 2 s window
    assert torch.equal(prepared[2], crop(AF.resample(clips[2], 2000, 1000), 2000, "center"))
    assert torch.equal(prepared[0], AF.resample(clips[0].mean(0), 2000, 1000))
    a = emb.embed_audio(prepared, 1000)
    t = emb.embed_text(texts)
    assert metric.compute().item() == pytest.approx((a * t).sum(-1).mean().item(), abs=1e-6)
    # deterministic: same result again; "start" crops differently
    again = CLAPScore(TinyEmbedder(), crop="center")
    again.update(clips, texts, sample_rate=2000)
    assert again.compute().item() == metric.compute().item()
    start = CLAPScore(TinyEmbedder(), crop="start")
    start.update(clips, texts, sample_rate=2000)
    assert start.compute().item() != metric.compute().item()


def test_crop_modes():
    x = torch.arange(10.0)
    assert crop(x, 4, "start").tolist() == [0, 1, 2, 3]
    assert crop(x, 4, "center").tolist() == [3, 4, 5, 6]
    assert crop(x, 20, "center").tolist() == x.tolist()


def test_bad_input():
    metric = CLAPScore(TinyEmbedder())
    with pytest.raises(ValueError, match="2 audio clips but 1 texts"):
        metric.update([torch.zeros(10), torch.zeros(10)], ["a"], sample_rate=1000)
    with pytest.raises(ValueError, match="empty"):
        metric.update([torch.zeros(0)], ["a"], sample_rate=1000)
    with pytest.raises(ValueError, match="crop"):
        CLAPScore(TinyEmbedder(), crop="random")
    with pytest.raises(TypeError, match="embed_audio"):
        CLAPScore(object())
    with pytest.raises(FileNotFoundError, match="roberta-base"):
        LaionClapEmbedder(None, "/nonexistent/roberta")


def write_tiny_roberta(path):
    """RoBERTa files for laion_clap's text branch: 768 wide (CLAP's projection expects it) but one layer, byte vocab."""
    from transformers import RobertaConfig

    path.mkdir()
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]  # GPT-2 byte alphabet
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *chars, "<mask>"])}
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(path)


@pytest.mark.slow
def test_laion_clap_adapter_loads_a_local_checkpoint_offline(tmp_path):
    pytest.importorskip("laion_clap")
    roberta = tmp_path / "roberta"
    write_tiny_roberta(roberta)
    torch.manual_seed(0)
    source = LaionClapEmbedder(None, roberta)  # random weights, built without any download
    ckpt = tmp_path / "clap.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in source.clap.model.state_dict().items()}}, ckpt)
    torch.manual_seed(1)
    loaded = LaionClapEmbedder(ckpt, roberta)

    g = torch.Generator().manual_seed(2)
    clips = [0.1 * torch.randn(48000 * 2, generator=g), 0.1 * torch.randn(48000 * 12, generator=g)]
    texts = ["a calm piano melody", "loud electronic drums"]
    # laion_clap's own embedding API on the source model; the 12 s clip center-cropped to 10 s by hand
    audio = [
        source.clap.get_audio_embedding_from_data(x=c.numpy()[None], use_tensor=False)[0]
        for c in (clips[0], clips[1][48000:-48000])
    ]
    text = source.clap.get_text_embedding(texts, use_tensor=True).detach().numpy()
    expected = np.mean([np.dot(a, t) for a, t in zip(audio, text, strict=True)])

    metric = CLAPScore(loaded, crop="center")
    metric.update(clips, texts, sample_rate=48000)
    assert metric.compute().item() == pytest.approx(expected, abs=1e-5)
    assert torch.allclose(loaded.embed_text(texts), torch.from_numpy(text), atol=1e-6)
    with pytest.raises(ValueError, match="48000"):
        loaded.embed_audio(clips, 16000)
