import pytest
import torch

from anygpt.modalities.base import Modality, SpanStructure, available_modalities, modality_class, register_modality


@register_modality
class ToyModality(Modality):
    """Scalar quantiser of 1-D signals: enough to exercise the API."""

    name = "toy"
    markers = ("<sotoy>", "<eotoy>")
    token_format = "<toy{}>"

    def __init__(self, levels: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    @property
    def codebook_size(self) -> int:
        return self.hparams.levels

    def load(self, source):
        return torch.tensor([float(x) for x in str(source).split(",")])

    def save(self, data, path):
        path.write_text(",".join(str(float(x)) for x in data))

    @torch.inference_mode()
    def encode(self, items):
        return [((x / self.scale).clamp(0, 1) * (self.codebook_size - 1)).round().long() for x in items]

    @torch.inference_mode()
    def decode(self, codes):
        return [c.float() / (self.codebook_size - 1) * self.scale for c in codes]


def test_registry_and_spec():
    assert "toy" in available_modalities()
    assert modality_class("toy") is ToyModality
    assert ToyModality(levels=4).spec.codebook_size == 4
    with pytest.raises(KeyError, match="Unknown modality 'nope'.*class_path"):
        modality_class("nope")


def test_save_and_from_pretrained_round_trip(tmp_path):
    m = ToyModality(levels=16)
    with torch.no_grad():
        m.scale.fill_(2.0)
    m.save_pretrained(tmp_path / "toy")
    again = Modality.from_pretrained(tmp_path / "toy")
    assert isinstance(again, ToyModality) and again.codebook_size == 16 and again.scale.item() == 2.0
    x = again.load("0.5,1.0,2.0")
    assert torch.allclose(again.decode(again.encode([x]))[0], x, atol=2 / 15)
    with pytest.raises(FileNotFoundError, match="config.json"):
        Modality.from_pretrained(tmp_path / "missing")


def test_fixed_length_structure():
    s = SpanStructure(fixed_length=3)
    assert [s.can_end(n) for n in range(5)] == [False, False, False, True, False]
    assert s.must_end(3) and not s.must_end(2)
    assert s.valid_prefix(torch.tensor([1, 2, 3, 4]), 8) == 3
    assert s.valid_prefix(torch.tensor([1, 2]), 8) == 0


def test_cyclic_structure_like_music_frames():
    s = SpanStructure(cycle=((0, 4), (4, 8)))
    assert s.allowed_codes(0, 8) == (0, 4) and s.allowed_codes(3, 8) == (4, 8)
    assert not s.can_end(1) and s.can_end(2) and not s.can_end(0)
    # codes 1, 5 form a frame; 6 is in the wrong range for position 2, so the valid prefix is one frame
    assert s.valid_prefix(torch.tensor([1, 5, 6, 2]), 8) == 2


def test_open_structure_with_limit():
    s = SpanStructure(max_length=4)
    assert s.can_end(1) and not s.must_end(3) and s.must_end(4)


def test_tokenizers_keep_their_hyperparameters_inside_lightning_cli_instantiation():
    """LightningCLI hands the hyperparameters of the class it builds to every save_hyperparameters call made meanwhile
    (a data module loading its tokenizers); modalities and their helper modules must keep their own."""
    from pathlib import Path

    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context

    from anygpt.modalities.base import load_modality

    assets = Path(__file__).resolve().parents[2] / "anygpt" / "assets" / "tokenizers"
    for name, size in (("image", 512), ("speech", 256), ("music", 512)):
        with _given_hyperparameters_context({"root": "data/demo"}, "lightning.pytorch.cli.LightningCLI"):
            tokenizer = load_modality(assets / name)
            toy = ToyModality(levels=5)
        assert tokenizer.codebook_size == size and toy.codebook_size == 5
