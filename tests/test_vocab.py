import json

import pytest
import torch

from anygpt.modalities.spec import RELEASE_MODALITIES, ModalitySpec
from anygpt.text_tokenizer import HFTextTokenizer, train_bpe_tokenizer
from anygpt.vocab import (
    INSTRUCTION_TOKENS,
    SPECIAL_TOKENS,
    UnifiedVocab,
    VocabLayoutError,
    read_added_tokens,
    vocab_from_checkpoint,
)


def llama_sized_text_tokenizer(directory):
    """A 32000-id word-level tokenizer.json standing in for LLaMA's SentencePiece model (same id range)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, 32000)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(directory / "tokenizer.json"))
    return directory / "tokenizer.json"


def release_style_hf_tokenizer(directory):
    """Build an HF tokenizer the way the release did: ordinary ``add_tokens`` in the documented order."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(llama_sized_text_tokenizer(directory)), unk_token="<unk>")
    hf.add_tokens(list(SPECIAL_TOKENS))
    for spec in RELEASE_MODALITIES:
        hf.add_tokens([spec.token_format.format(i) for i in range(spec.codebook_size)])
        hf.add_tokens(list(spec.markers))
    return hf


def test_release_layout_matches_hf_add_tokens_id_for_id(tmp_path):
    hf = release_style_hf_tokenizer(tmp_path)
    vocab = UnifiedVocab(HFTextTokenizer(tmp_path / "tokenizer.json"), RELEASE_MODALITIES)
    assert len(vocab) == len(hf) == 49418
    for token in vocab.added_tokens:
        assert hf.convert_tokens_to_ids(token) == vocab.token_id(token), token
    assert vocab.modalities["image"].first_id == 32004
    assert vocab.modalities["speech"].start_id == hf.convert_tokens_to_ids("<sosp>")
    assert vocab.modalities["music"].end_id == 49417
    assert vocab.token_id("<🗣️1023>") == hf.convert_tokens_to_ids("<🗣️1023>")


def test_instruction_tokens_come_last_in_the_release_order(tmp_path):
    llama_sized_text_tokenizer(tmp_path)
    vocab = UnifiedVocab(HFTextTokenizer(tmp_path / "tokenizer.json"), RELEASE_MODALITIES, instruction_tokens=True)
    assert len(vocab) == 49420
    # the release's stage-2 script adds <-Res-> before <-Ins->
    assert [vocab.token_id(t) for t in ("<-Res->", "<-Ins->")] == [49418, 49419]
    assert INSTRUCTION_TOKENS == ("<-Res->", "<-Ins->")


def test_checkpoint_layout_is_read_and_checked(tmp_path):
    hf = release_style_hf_tokenizer(tmp_path)
    hf.save_pretrained(tmp_path / "ckpt")
    assert len(read_added_tokens(tmp_path / "ckpt")) >= 49418 - 32000
    vocab = vocab_from_checkpoint(tmp_path / "ckpt", RELEASE_MODALITIES)
    assert len(vocab) == 49418
    # the ids come from the files, whatever order the modalities are listed in
    listed = vocab_from_checkpoint(tmp_path / "ckpt", [RELEASE_MODALITIES[1], RELEASE_MODALITIES[0],
                                                      RELEASE_MODALITIES[2]])
    assert listed.modalities["image"].first_id == 32004 and listed.token_id("<eomu>") == 49417
    with pytest.raises(VocabLayoutError, match="lacks"):
        vocab_from_checkpoint(tmp_path / "ckpt", RELEASE_MODALITIES[:2])
    with pytest.raises(VocabLayoutError, match="lacks 2 tokens"):  # a bigger codebook than the checkpoint's
        vocab_from_checkpoint(tmp_path / "ckpt", [*RELEASE_MODALITIES[:2], ModalitySpec(
            "music", 8194, ("<somu>", "<eomu>"), "<🎶{}>")])


@pytest.mark.parametrize("order", [("<-Res->", "<-Ins->"), ("<-Ins->", "<-Res->")])
def test_instruction_token_ids_are_read_from_the_files(tmp_path, order):
    hf = release_style_hf_tokenizer(tmp_path)
    hf.add_tokens(list(order))
    hf.save_pretrained(tmp_path / "chat")
    vocab = vocab_from_checkpoint(tmp_path / "chat", RELEASE_MODALITIES)
    assert vocab.instruction_tokens and len(vocab) == 49420
    assert [vocab.token_id(t) for t in order] == [49418, 49419]
    assert vocab.encode("<-Ins->")[-1] == hf.convert_tokens_to_ids("<-Ins->")


def test_layout_errors_name_the_file_the_token_and_both_ids(tmp_path):
    hf = release_style_hf_tokenizer(tmp_path)
    hf.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "tokenizer_config.json").read_text())
    decoder = config["added_tokens_decoder"] = {  # as transformers 4.34 writes it
        str(i): {"content": t, "lstrip": False, "rstrip": False} for t, i in hf.get_added_vocab().items()}
    a, b = (next(k for k, v in decoder.items() if v["content"] == t) for t in ("<🗣️5>", "<🗣️6>"))
    decoder[a]["content"], decoder[b]["content"] = "<🗣️6>", "<🗣️5>"  # two codes swapped
    (tmp_path / "ckpt" / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False))
    with pytest.raises(VocabLayoutError) as err:
        vocab_from_checkpoint(tmp_path / "ckpt", RELEASE_MODALITIES)
    message = str(err.value)
    # tokenizer.json still has the original order: the files disagree, and the message says where
    assert "tokenizer.json" in message and "tokenizer_config.json" in message and "'<🗣️5>'" in message
    assert str(int(a)) in message and str(int(b)) in message
    fast = json.loads((tmp_path / "ckpt" / "tokenizer.json").read_text())
    fast["added_tokens"] = []
    (tmp_path / "ckpt" / "tokenizer.json").write_text(json.dumps(fast, ensure_ascii=False))
    with pytest.raises(VocabLayoutError, match=r"tokenizer_config.json: '<🗣️5>' has id \d+ but the speech codes must "
                                               r"be contiguous") as err:
        vocab_from_checkpoint(tmp_path / "ckpt", RELEASE_MODALITIES)


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
    d = tmp_path_factory.mktemp("bpe")
    texts = ["a red circle on a blue background", "two green squares", "hello world, how are you?"] * 50
    text = train_bpe_tokenizer(texts, vocab_size=300, directory=d)
    mods = [ModalitySpec("image", 16, ("<soim>", "<eoim>"), "<👀{}>"),
            ModalitySpec("music", 8, ("<somu>", "<eomu>"), "<🎶{}>")]
    return UnifiedVocab(text, mods)


def test_encode_parses_special_tokens_markers_and_codes(small_vocab):
    v = small_vocab
    ids = v.encode("[Human]: draw a red circle<eoh> [MMGPT]: <soim><👀3><👀15><eoim><eos>")
    assert ids[0] == v.token_id("[Human]")
    img = v.modalities["image"]
    start = ids.index(img.start_id)
    assert ids[start + 1: start + 4] == [img.first_id + 3, img.first_id + 15, img.end_id]
    assert v.decode_text(ids).startswith("[Human]: draw a red circle<eoh> [MMGPT]: <soim><👀3>")


def test_segments_split_spans_and_flag_unclosed(small_vocab):
    v = small_vocab
    ids = v.encode("two green squares") + v.encode_codes("image", torch.tensor([1, 2, 3]))
    ids += v.encode_codes("music", torch.tensor([4, 5]))[:-1]  # no end marker
    segs = v.segments(ids)
    assert [s.modality for s in segs] == ["text", "image", "music"]
    assert segs[1].codes.tolist() == [1, 2, 3] and segs[1].closed
    assert segs[2].codes.tolist() == [4, 5] and not segs[2].closed
    assert segs[0].text == "two green squares"


def test_out_of_range_codes_are_rejected(small_vocab):
    with pytest.raises(ValueError, match="must lie in"):
        small_vocab.encode_codes("image", torch.tensor([16]))


def test_bpe_round_trip_and_reload(tmp_path):
    tok = train_bpe_tokenizer(["the quick brown fox"] * 20, vocab_size=280, directory=tmp_path)
    assert tok.decode(tok.encode("the quick fox")) == "the quick fox"
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"] == "BPE"
