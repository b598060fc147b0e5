"""The unified vocabulary: text ids first, AnyGPT's special tokens, then one contiguous id range per modality.

The layout follows the released checkpoints (REFERENCE.md): ``[Human] [MMGPT] <eoh> <eos>`` after the text ids, then for
each modality its codes followed by its start and end markers, and optionally the instruction-stage tokens
``<-Ins-> <-Res->`` at the very end. With LLaMA's 32000 text ids and the paper's modalities that gives 49418 ids.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

SPECIAL_TOKENS: tuple[str, ...] = ("[Human]", "[MMGPT]", "<eoh>", "<eos>")
INSTRUCTION_TOKENS: tuple[str, ...] = ("<-Ins->", "<-Res->")


# --------------------------------------------------------------------------------------------------------------------
# Text tokenizers
# --------------------------------------------------------------------------------------------------------------------
class TextTokenizer(ABC):
    """The text side of the vocabulary: ids ``[0, vocab_size)``. Encoding never adds BOS/EOS; callers decide."""

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


class SentencePieceTextTokenizer(TextTokenizer):
    """LLaMA's SentencePiece model (``tokenizer.model`` in a checkpoint directory)."""

    def __init__(self, model_file: str | Path) -> None:
        import sentencepiece

        self.model_file = Path(model_file)
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self.vocab_size = self.processor.get_piece_size()
        self.bos_id = _none_if_negative(self.processor.bos_id())
        self.eos_id = _none_if_negative(self.processor.eos_id())

    def encode(self, text: str) -> list[int]:
        return list(self.processor.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode(list(ids))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tokenizer.model").write_bytes(self.model_file.read_bytes())


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

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / "tokenizer.json"))


def _none_if_negative(value: int) -> int | None:
    return None if value < 0 else value


def load_text_tokenizer(path: str | Path) -> TextTokenizer:
    """Load the text tokenizer of a checkpoint directory (``tokenizer.model`` preferred, else ``tokenizer.json``)."""
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
            return SentencePieceTextTokenizer(candidate)
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


# --------------------------------------------------------------------------------------------------------------------
# The unified layout
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModalitySpec:
    """What the vocabulary needs to know about a modality (a `Modality` provides it as ``.spec``)."""

    name: str
    codebook_size: int
    markers: tuple[str, str]
    token_format: str

    def code_token(self, code: int) -> str:
        return self.token_format.format(code)


# The released AnyGPT checkpoints, in vocabulary order.
RELEASE_MODALITIES: tuple[ModalitySpec, ...] = (
    ModalitySpec("image", 8192, ("<soim>", "<eoim>"), "<👀{}>"),
    ModalitySpec("speech", 1024, ("<sosp>", "<eosp>"), "<🗣️{}>"),
    ModalitySpec("music", 8192, ("<somu>", "<eomu>"), "<🎶{}>"),
)


@dataclass(frozen=True)
class ModalityRange:
    """Where one modality lives in the unified vocabulary."""

    spec: ModalitySpec
    first_id: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def codes(self) -> range:
        return range(self.first_id, self.first_id + self.spec.codebook_size)

    @property
    def start_id(self) -> int:
        return self.first_id + self.spec.codebook_size

    @property
    def end_id(self) -> int:
        return self.start_id + 1


@dataclass
class Segment:
    """A piece of a decoded sequence: text, or the local codes of one modality span."""

    modality: str  # "text" or a modality name
    text: str = ""
    codes: torch.Tensor | None = None
    closed: bool = True  # False when a modality span was not terminated by its end marker


class VocabLayoutError(ValueError):
    """A checkpoint's vocabulary does not match the configured modalities."""


class UnifiedVocab:
    """Text ids, special tokens and modality ranges as one id space.

    Args:
        text: the text tokenizer (ids ``[0, text.vocab_size)``).
        modalities: modality specs (or `Modality` objects) in vocabulary order.
        instruction_tokens: append ``<-Ins->``/``<-Res->`` (instruction-tuned checkpoints have them).
    """

    def __init__(self, text: TextTokenizer, modalities: Sequence, instruction_tokens: bool = False) -> None:
        self.text = text
        specs = [m.spec if hasattr(m, "spec") else m for m in modalities]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"Modality names must be unique, got {names}")
        self._tokens: list[str] = list(SPECIAL_TOKENS)
        self.modalities: dict[str, ModalityRange] = {}
        next_id = text.vocab_size + len(SPECIAL_TOKENS)
        for spec in specs:
            self.modalities[spec.name] = ModalityRange(spec, next_id)
            self._tokens.extend(spec.code_token(i) for i in range(spec.codebook_size))
            self._tokens.extend(spec.markers)
            next_id += spec.codebook_size + 2
        if instruction_tokens:
            self._tokens.extend(INSTRUCTION_TOKENS)
        self.instruction_tokens = instruction_tokens
        self._token_to_id = {tok: text.vocab_size + i for i, tok in enumerate(self._tokens)}
        if len(self._token_to_id) != len(self._tokens):
            raise ValueError("Two modalities produce the same token string; give them distinct token_format/markers.")
        self._marker_to_modality = {}
        for rng in self.modalities.values():
            self._marker_to_modality[rng.start_id] = rng
        # Special strings that `encode` recognises inside text, longest first so no prefix shadows another.
        named = [t for t in self._tokens if not self._is_code_token(t)]
        alternatives = [re.escape(t) for t in sorted(named, key=len, reverse=True)]
        alternatives += [re.escape(s.token_format).replace(re.escape("{}"), r"\d+") for s in specs]
        self._special_pattern = re.compile("(" + "|".join(alternatives) + ")")

    def _is_code_token(self, token: str) -> bool:
        return token not in SPECIAL_TOKENS and token not in INSTRUCTION_TOKENS and not any(
            token in r.spec.markers for r in self.modalities.values())

    # -- sizes and lookups -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.text.vocab_size + len(self._tokens)

    @property
    def size(self) -> int:
        return len(self)

    @property
    def added_tokens(self) -> list[str]:
        """Every token after the text ids, in id order (what the release added with ``tokenizer.add_tokens``)."""
        return list(self._tokens)

    def token_id(self, token: str) -> int:
        try:
            return self._token_to_id[token]
        except KeyError:
            raise KeyError(f"{token!r} is not a special token of this vocabulary") from None

    def id_to_token(self, idx: int) -> str | None:
        """The added token string for ``idx``, or None for a text id."""
        offset = idx - self.text.vocab_size
        return self._tokens[offset] if 0 <= offset < len(self._tokens) else None

    def modality_of(self, idx: int) -> str:
        """'text', 'special' or a modality name (markers count as their modality)."""
        if idx < self.text.vocab_size:
            return "text"
        for rng in self.modalities.values():
            if rng.first_id <= idx <= rng.end_id:
                return rng.name
        return "special"

    def modality_id_table(self) -> torch.Tensor:
        """A LongTensor mapping every id to a group index: 0 text/special, 1 + i for the i-th modality."""
        table = torch.zeros(len(self), dtype=torch.long)
        for i, rng in enumerate(self.modalities.values()):
            table[rng.first_id: rng.end_id + 1] = i + 1
        return table

    # -- encoding ----------------------------------------------------------------------------------------------------
    def encode_codes(self, modality: str, codes: torch.Tensor, with_markers: bool = True) -> list[int]:
        """Flattened local codes ``[0, codebook_size)`` of one span -> unified ids (with its markers)."""
        rng = self._range(modality)
        flat = torch.as_tensor(codes).reshape(-1).long()
        if flat.numel() and (flat.min() < 0 or flat.max() >= rng.spec.codebook_size):
            raise ValueError(f"{modality} codes must lie in [0, {rng.spec.codebook_size}), got "
                             f"[{int(flat.min())}, {int(flat.max())}]; the tokenizer and the vocabulary disagree")
        ids = (flat + rng.first_id).tolist()
        return [rng.start_id, *ids, rng.end_id] if with_markers else ids

    def encode(self, text: str) -> list[int]:
        """Text that may contain special tokens, markers and code tokens (``<👀12>``) -> ids.

        Text between special tokens is encoded chunk by chunk, as the release's slow LLaMA tokenizer does.
        """
        ids: list[int] = []
        for piece in self._special_pattern.split(text):
            if not piece:
                continue
            if piece in self._token_to_id:
                ids.append(self._token_to_id[piece])
            else:
                ids.extend(self.text.encode(piece))
        return ids

    # -- decoding ----------------------------------------------------------------------------------------------------
    def segments(self, ids: Sequence[int] | torch.Tensor) -> list[Segment]:
        """Split ids into text and modality spans; special tokens are kept as text, stray codes are dropped."""
        ids = torch.as_tensor(ids).tolist()
        out: list[Segment] = []
        text_ids: list[int] = []

        def flush_text() -> None:
            if text_ids:
                out.append(Segment("text", text=self.decode_text(text_ids)))
                text_ids.clear()

        i = 0
        while i < len(ids):
            idx = ids[i]
            rng = self._marker_to_modality.get(idx)
            if rng is None:
                if idx < self.text.vocab_size or self.modality_of(idx) == "special":
                    text_ids.append(idx)
                i += 1
                continue
            flush_text()
            j = i + 1
            while j < len(ids) and ids[j] in rng.codes:
                j += 1
            closed = j < len(ids) and ids[j] == rng.end_id
            codes = torch.tensor(ids[i + 1: j], dtype=torch.long) - rng.first_id
            out.append(Segment(rng.name, codes=codes, closed=closed))
            i = j + 1 if closed else j
        flush_text()
        return out

    def decode_text(self, ids: Sequence[int]) -> str:
        """Ids -> string; added tokens are rendered by name, text runs by the text tokenizer."""
        parts: list[str] = []
        run: list[int] = []
        for idx in ids:
            if idx < self.text.vocab_size:
                run.append(idx)
                continue
            if run:
                parts.append(self.text.decode(run))
                run = []
            token = self.id_to_token(idx)
            parts.append(token if token is not None else f"<unk:{idx}>")
        if run:
            parts.append(self.text.decode(run))
        return "".join(parts)

    # -- layout checks -----------------------------------------------------------------------------------------------
    def check_added_tokens(self, added: dict[str, int], source: str = "checkpoint") -> None:
        """Raise `VocabLayoutError` unless ``added`` (token -> id) places every token exactly where this vocab does."""
        mismatches = [(tok, added.get(tok), self._token_to_id[tok]) for tok in self._tokens
                      if added.get(tok) != self._token_to_id[tok]]
        extra = sorted(set(added) - set(self._token_to_id), key=added.get)
        if extra:
            raise VocabLayoutError(
                f"{source} has {len(extra)} added tokens this vocabulary lacks (first: {extra[:5]}). Add the modality "
                "they belong to, or set instruction_tokens=True if they are <-Ins->/<-Res->.")
        if mismatches:
            shown = ", ".join(f"{t!r}: {got} (expected {want})" for t, got, want in mismatches[:5])
            raise VocabLayoutError(
                f"The vocabulary of {source} does not match the configured modalities "
                f"{list(self.modalities)} (text size {self.text.vocab_size}): {len(mismatches)} tokens differ, e.g. "
                f"{shown}. Configure the modalities in the checkpoint's order with its codebook sizes.")

    def _range(self, modality: str) -> ModalityRange:
        try:
            return self.modalities[modality]
        except KeyError:
            raise KeyError(f"Unknown modality {modality!r}; this vocabulary has {list(self.modalities)}") from None


def read_added_tokens(directory: str | Path) -> dict[str, int]:
    """Added tokens (token -> id) of an HF tokenizer directory: ``added_tokens.json``, ``tokenizer.json`` or
    ``tokenizer_config.json``'s ``added_tokens_decoder``, whichever exists first."""
    directory = Path(directory)
    if (directory / "added_tokens.json").exists():
        return {k: int(v) for k, v in json.loads((directory / "added_tokens.json").read_text("utf-8")).items()}
    if (directory / "tokenizer.json").exists():
        data = json.loads((directory / "tokenizer.json").read_text("utf-8"))
        return {t["content"]: int(t["id"]) for t in data.get("added_tokens", [])}
    if (directory / "tokenizer_config.json").exists():
        data = json.loads((directory / "tokenizer_config.json").read_text("utf-8"))
        return {t["content"]: int(i) for i, t in data.get("added_tokens_decoder", {}).items()}
    raise FileNotFoundError(f"{directory} has no added_tokens.json, tokenizer.json or tokenizer_config.json; "
                            "is it an HF tokenizer directory?")


def vocab_from_checkpoint(directory: str | Path, modalities: Sequence, instruction_tokens: bool | None = None
                          ) -> UnifiedVocab:
    """Build the vocab of an HF-format AnyGPT checkpoint and check its added tokens against ``modalities``."""
    text = load_text_tokenizer(directory)
    added = {t: i for t, i in read_added_tokens(directory).items() if i >= text.vocab_size}
    if instruction_tokens is None:
        instruction_tokens = all(t in added for t in INSTRUCTION_TOKENS)
    vocab = UnifiedVocab(text, modalities, instruction_tokens=instruction_tokens)
    vocab.check_added_tokens(added, source=str(directory))
    return vocab
