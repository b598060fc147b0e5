"""Generation boundary (issue #23, item 3): what a codec's ``decode`` returns is checked against its media kind, and a
wrong return names the codec class and what it returned (no silent ``(2,)`` array, no bare IndexError)."""

import pytest
import torch

from anygpt.checkpoints import Bundle
from anygpt.generation.checks import DecodeContractError, check_decoded
from anygpt.generation.pipeline import AnyGPT
from anygpt.media import media_kind
from anygpt.modalities.registry import modality_for
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab
from tests.third_party.depth_modality import DepthCodec

CODEC = "tests.third_party.depth_modality.DepthCodec.decode"


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    depth = modality_for(DepthCodec())
    vocab = UnifiedVocab(train_bpe_tokenizer(["a depth map"] * 20, 300, tmp_path_factory.mktemp("text")), [depth])
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=64))
    return AnyGPT(Bundle(model, vocab, {"depth": depth}, None, {}))


def span(model):
    return model.vocab.encode("<sodp>" + "<depth3>" * 16 + "<eodp>")


def test_a_well_behaved_decode_is_written(depth_model):
    segment, = depth_model.decode(span(depth_model))
    assert segment.data.shape == (16, 16) and segment.note is None


@pytest.mark.parametrize(("returned", "says"), [
    (lambda codes: torch.zeros(len(codes), 16, 16), "returned a tensor [1, 16, 16] float32: it must return a list"),
    (lambda codes: [], "returned a list of 0 item(s): it must return one item per code tensor: 1 given, 0 returned"),
    (lambda codes: [torch.zeros(0)], "item 0 is an empty tensor of shape (0,), not array"),
    (lambda codes: [torch.full((4,), float("nan"))], "NaN or infinite"),
    (lambda codes: ["not a tensor"], "item 0 is a str, not a tensor"),
])
def test_a_wrong_decode_names_the_codec_and_what_it_returned(depth_model, monkeypatch, returned, says):
    monkeypatch.setattr(depth_model.tokenizers["depth"].codec, "decode", lambda codes, **context: returned(codes))
    with pytest.raises(DecodeContractError) as err:
        depth_model.decode(span(depth_model))
    assert str(err.value).startswith(f"{CODEC} returned") and says in str(err.value)


def test_items_must_fit_their_media_kind():
    codec = DepthCodec()
    image, audio = media_kind("image"), media_kind("audio")
    assert check_decoded(codec, image, [torch.rand(3, 8, 8)], 1)[0].shape == (3, 8, 8)
    with pytest.raises(DecodeContractError, match=r"shape \(8, 8\), not an RGB image \[3, H, W\]"):
        check_decoded(codec, image, [torch.rand(8, 8)], 1)
    assert len(check_decoded(codec, audio, (torch.rand(1, 80), torch.rand(80)), 2)) == 2
    with pytest.raises(DecodeContractError, match=r"shape \(2, 80\), not a mono waveform"):
        check_decoded(codec, audio, [torch.rand(2, 80)], 1)
