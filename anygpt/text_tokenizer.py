"""The text side of the vocabulary: LLaMA's SentencePiece model or a `tokenizers` file, ids ``[0, vocab_size)``.

Text is encoded exactly as the release's slow SentencePiece ``LlamaTokenizer`` (transformers 4.34) encodes it: the
unified vocabulary (`anygpt.vocab.UnifiedVocab`) splits a string at its added tokens and hands the text between them
here, with SentencePiece's ``legacy`` prefix handling.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path


class TextTokenizer(ABC):
    """The text side of the vocabulary: ids ``[0, vocab_size)``. Encoding never adds BOS/EOS; callers decide.

    `UnifiedVocab.encode` splits a string at added tokens and hands the text between them to `encode_chunk`, after
    `prepare` saw the whole string once: the same division of labour as HF's slow tokenizers.
    """

    vocab_size: int
    bos_id: int | None
    eos_id: int | None

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def save(self, directory: str | Path) -> None:
        """Write the files `load_text_tokenizer` reads back."""

    def prepare(self, text: str) -> str:
        """The whole string, before it is split at added tokens."""
        return text

    def encode_chunk(self, chunk: str, offsets: bool = True) -> tuple[list[int], list[int]]:
        """Text between two added tokens -> (ids, character offset where each id's text starts; zeros when
        ``offsets`` is False)."""
        ids = self.encode(chunk)
        return ids, [0] * len(ids)

    def finish(self, ids: list[int], special: set[int]) -> list[int]:
        """Last touch on the ids of a whole string (``special``: ids of the splitting tokens)."""
        return ids

    def control_tokens(self) -> dict[str, int]:
        """Strings of the text vocabulary that split text like added tokens (``<s>`` in a SentencePiece model)."""
        return {}


class SentencePieceTextTokenizer(TextTokenizer):
    """LLaMA's SentencePiece model (``tokenizer.model`` in a checkpoint directory), used as the slow HF
    ``LlamaTokenizer`` of transformers 4.34 uses it.

    Args:
        legacy: that tokenizer's ``legacy`` flag (``tokenizer_config.json``; True when absent, as 4.34 assumes). True:
            every text chunk gets SentencePiece's dummy prefix. False: only the start of the whole string does
            (a ``▁`` prepended to it), chunks after an added token are encoded without one.
    """

    def __init__(self, model_file: str | Path, legacy: bool = True) -> None:
        import sentencepiece

        self.model_file = Path(model_file)
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self.vocab_size = self.processor.get_piece_size()
        self.bos_id, self.eos_id, self.unk_id = (None if i < 0 else i for i in (
            self.processor.bos_id(), self.processor.eos_id(), self.processor.unk_id()))
        self.legacy = legacy
        self._plain = None if legacy else _without_dummy_prefix(self.model_file)

    def encode(self, text: str) -> list[int]:
        return list(self.processor.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode(list(ids))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tokenizer.model").write_bytes(self.model_file.read_bytes())

    def prepare(self, text: str) -> str:
        return text if self.legacy or not text else _UNDERLINE + text.replace(_UNDERLINE, " ")

    def encode_chunk(self, chunk: str, offsets: bool = True) -> tuple[list[int], list[int]]:
        if self.legacy:
            return _pieces(self.processor, chunk, offsets)
        if not chunk.startswith((_UNDERLINE, " ")):
            return _pieces(self._plain, chunk, offsets)
        # 4.34's non-legacy trick: encode "<unk>" + chunk without a dummy prefix and drop the pieces of "<unk>"
        unk = self.processor.id_to_piece(self.unk_id) if self.unk_id is not None else "<unk>"
        skip = len(self._plain.encode(unk))
        ids, starts = _pieces(self._plain, unk + chunk, offsets)
        if len(ids) < skip:
            return ids, starts
        return ids[skip:], [max(0, s - len(unk)) for s in starts[skip:]]

    def finish(self, ids: list[int], special: set[int]) -> list[int]:
        # non-legacy: a lone "▁" before a control token (<s>, </s>, <unk>) at the very start is dropped
        if not self.legacy and len(ids) > 1 and ids[1] in self.control_tokens().values() and ids[1] in special:
            if self.processor.id_to_piece(ids[0]) == _UNDERLINE:
                return ids[1:]
        return ids

    def control_tokens(self) -> dict[str, int]:
        return {self.processor.id_to_piece(i): i for i in (self.unk_id, self.bos_id, self.eos_id) if i is not None}


_UNDERLINE = "\u2581"


def _pieces(processor, text: str, offsets: bool = True) -> tuple[list[int], list[int]]:
    """SentencePiece ids of ``text`` and the character offset where each piece's text starts."""
    if not text:
        return [], []
    if not offsets:
        ids = list(processor.encode(text))
        return ids, [0] * len(ids)
    proto = processor.encode(text, return_type="proto")
    char_of_byte = []
    for i, ch in enumerate(text):
        char_of_byte += [i] * len(ch.encode("utf-8"))
    char_of_byte.append(len(text))
    return [p.id for p in proto.pieces], [char_of_byte[min(p.begin, len(char_of_byte) - 1)] for p in proto.pieces]


def _without_dummy_prefix(model_file: Path):
    """The SentencePiece model with ``add_dummy_prefix`` off (what 4.34's non-legacy LlamaTokenizer loads)."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(Path(model_file).read_bytes())
    model.normalizer_spec.add_dummy_prefix = False
    processor = sentencepiece.SentencePieceProcessor()
    processor.LoadFromSerializedProto(model.SerializeToString())
    return processor


class HFTextTokenizer(TextTokenizer):
    """A `tokenizers` tokenizer (``tokenizer.json``): the small BPE of the demo, or any fast tokenizer file.

    Added tokens stored in the file beyond the base vocabulary are ignored for ``vocab_size``: the unified vocabulary
    adds its own, so a release tokenizer.json (which carries AnyGPT's added tokens) still reports the text range only.
    """

    def __init__(self, tokenizer_file: str | Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer_file = Path(tokenizer_file)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=False)
        self.bos_id = self.tokenizer.token_to_id("<s>")
        self.eos_id = self.tokenizer.token_to_id("</s>")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_chunk(self, chunk: str, offsets: bool = True) -> tuple[list[int], list[int]]:
        encoding = self.tokenizer.encode(chunk, add_special_tokens=False)
        return list(encoding.ids), [start for start, _ in encoding.offsets]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / "tokenizer.json"))


def load_text_tokenizer(path: str | Path) -> TextTokenizer:
    """Load the text tokenizer of a checkpoint directory (``tokenizer.model`` preferred, else ``tokenizer.json``).

    A SentencePiece model takes its ``legacy`` flag from the folder's ``tokenizer_config.json`` (True when absent, as
    transformers 4.34's ``LlamaTokenizer`` assumes).
    """
    path = Path(path)
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = [path / "tokenizer.model", path / "tokenizer.json"]
    else:
        raise FileNotFoundError(f"Text tokenizer path {path} does not exist. Pass a checkpoint directory holding "
                                "tokenizer.model (SentencePiece) or tokenizer.json, or train one with "
                                "train_bpe_tokenizer.")
    for candidate in candidates:
        if candidate.suffix == ".model" and candidate.exists():
            config = candidate.parent / "tokenizer_config.json"
            legacy = json.loads(config.read_text("utf-8")).get("legacy") if config.exists() else None
            return SentencePieceTextTokenizer(candidate, legacy=True if legacy is None else bool(legacy))
        if candidate.suffix == ".json" and candidate.exists():
            return HFTextTokenizer(candidate)
    raise FileNotFoundError(f"No tokenizer.model or tokenizer.json in {path}.")


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, directory: str | Path) -> HFTextTokenizer:
    """Train a small byte-level BPE (never produces ``<unk>``) and save it as ``tokenizer.json``.

    Ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>`` as in LLaMA, so configs written for LLaMA keep their meaning. The 256
    byte symbols are always in the vocabulary, so ``vocab_size`` must exceed 259.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size <= 259:
        raise ValueError(f"vocab_size must exceed 259 (3 specials + 256 bytes), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    return HFTextTokenizer(directory / "tokenizer.json")
