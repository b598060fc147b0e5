import json

import pytest
import torch

from anygpt.modalities.codec import Codec, Modality
from anygpt.modalities.registry import (
    available_modalities,
    codec_class,
    load_modality,
    media_pattern,
    media_words,
    modality_for,
    modality_spec,
    register_modality,
)
from anygpt.modalities.spec import SpanStructure


class ToyCodec(Codec):
    """Scalar quantiser of 1-D signals (stored as .npy arrays): enough to exercise the API."""

    modality = "toy"

    def __init__(self, levels: int = 8) -> None:
        super().__init__()
        self.levels = levels
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    @property
    def codebook_size(self) -> int:
        return self.levels

    @torch.inference_mode()
    def encode(self, items):
        return [((x / self.scale).clamp(0, 1) * (self.codebook_size - 1)).round().long() for x in items]

    @torch.inference_mode()
    def decode(self, codes, **context):
        return [c.float() / (self.codebook_size - 1) * self.scale for c in codes]


register_modality("toy", ("<sotoy>", "<eotoy>"), "<toy{}>", media="array", codec=ToyCodec, aliases=("signal",))


def test_registry_spec_and_media_kind():
    assert "toy" in available_modalities() and {"image", "speech", "music"} <= set(available_modalities())
    assert codec_class("toy") is ToyCodec
    toy = modality_for(ToyCodec(levels=4))
    assert toy.spec.codebook_size == 4 and toy.spec.markers == ("<sotoy>", "<eotoy>") and toy.media.name == "array"
    assert modality_spec("signal").name == "toy" and media_words()["audio"] == "music"
    assert [m.groups() for m in media_pattern().finditer("[toy: a.npy] and [signal: b.npy]")] == \
        [("toy", "a.npy"), ("signal", "b.npy")]
    with pytest.raises(KeyError, match="Unknown modality 'nope'.*register_modality"):
        modality_spec("nope")
    with pytest.raises(ValueError, match="key it by its modality name"):
        modality_for(ToyCodec(), "image")
    with pytest.raises(KeyError, match="unknown media kind"):
        register_modality("bad", ("<a>", "<b>"), "<x{}>", media="video")


def test_codecs_record_their_constructor_arguments():
    class Wider(ToyCodec):
        def __init__(self, levels: int = 32, **kwargs) -> None:
            super().__init__(levels=levels)

    assert ToyCodec(levels=5).init_args == {"levels": 5}
    assert Wider().init_args == {"levels": 32}  # the outermost constructor's arguments, defaults applied
    assert Wider(extra=1).init_args == {"levels": 32, "extra": 1}


def test_save_and_from_pretrained_round_trip(tmp_path):
    import numpy as np

    m = ToyCodec(levels=16)
    with torch.no_grad():
        m.scale.fill_(2.0)
    m.save_pretrained(tmp_path / "toy")
    assert json.loads((tmp_path / "toy" / "config.json").read_text()) == {
        "class_path": f"{__name__}.ToyCodec", "init_args": {"levels": 16}, "format": 2}
    again = load_modality(tmp_path / "toy")
    assert isinstance(again, Modality) and isinstance(again.codec, ToyCodec)
    assert again.codebook_size == 16 and again.codec.scale.item() == 2.0
    np.save(tmp_path / "x.npy", np.array([0.5, 1.0, 2.0], dtype=np.float32))
    x = again.read(tmp_path / "x.npy")
    decoded = again.codec.decode(again.codec.encode([x]))[0]
    assert torch.allclose(decoded, x, atol=2 / 15)
    assert again.write(decoded, tmp_path / "out.npy").exists()
    with pytest.raises(FileNotFoundError, match="config.json"):
        Codec.from_pretrained(tmp_path / "missing")


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


def test_codecs_keep_their_arguments_inside_lightning_cli_instantiation():
    """LightningCLI hands the hyperparameters of the class it builds to every save_hyperparameters call made meanwhile
    (a data module loading its tokenizers); codecs record their own arguments without Lightning, so they are unaffected.
    """
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context

    for name, size in (("image", 512), ("speech", 256), ("music", 512)):
        with _given_hyperparameters_context({"root": "data/demo"}, "lightning.pytorch.cli.LightningCLI"):
            tokenizer = load_modality(f"anygpt-assets:tokenizers/{name}")
            toy = ToyCodec(levels=5)
        assert tokenizer.codebook_size == size and toy.init_args == {"levels": 5}
        assert "root" not in tokenizer.codec.init_args
