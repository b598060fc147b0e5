"""The unified vocabulary: text ids first, AnyGPT's special tokens, then one contiguous id range per modality.

The layout follows the released checkpoints (REFERENCE.md): ``[Human] [MMGPT] <eoh> <eos>`` after the text ids, then for
each modality its codes followed by its start and end markers, and optionally the instruction-stage tokens
``<-Res-> <-Ins->`` at the very end (the order the release's stage-2 script adds them: 49418 and 49419). With LLaMA's
32000 text ids and the paper's modalities that gives 49418 ids.

A checkpoint's own tokenizer files are the authority on its ids: `vocab_from_checkpoint` reads every added token's id
from them (`read_tokenizer_files`) and only checks that the layout is usable (each modality's codes contiguous, nothing
missing or unknown). Text is encoded exactly as the release's slow SentencePiece ``LlamaTokenizer`` (transformers 4.34)
encodes it: one pass over the whole string, added tokens splitting it, the pieces between them through the text
tokenizer (`anygpt.text_tokenizer`, with the strip flags the checkpoint records).
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from anygpt.modalities.spec import ModalitySpec, ModalitySpecError
from anygpt.text_tokenizer import TextTokenizer, load_text_tokenizer

CHUNK_CACHE = 1 << 16  # text chunks whose ids `UnifiedVocab` remembers
SPECIAL_TOKENS: tuple[str, ...] = ("[Human]", "[MMGPT]", "<eoh>", "<eos>")
# In the release's order (its stage-2 script adds <-Res-> first): a checkpoint's own files decide the ids anyway.
INSTRUCTION_TOKENS: tuple[str, ...] = ("<-Res->", "<-Ins->")


# --------------------------------------------------------------------------------------------------------------------
# The unified layout
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModalityRange:
    """Where one modality lives in the unified vocabulary."""

    spec: ModalitySpec
    first_id: int
    start_id: int
    end_id: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def codes(self) -> range:
        return range(self.first_id, self.first_id + self.spec.codebook_size)

    @property
    def ids(self) -> list[int]:
        """Every id of the modality: its codes and both markers."""
        return [*self.codes, self.start_id, self.end_id]


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
        instruction_tokens: add ``<-Res->``/``<-Ins->`` (instruction-tuned checkpoints have them).
        token_ids: the id of every added token as a checkpoint's files record it (`vocab_from_checkpoint`); None lays
            the tokens out in the default order (special tokens, each modality's codes then markers, instruction
            tokens). Each modality's codes must be contiguous; markers and special tokens may sit anywhere.
        strip: token -> (lstrip, rstrip) flags of added tokens that eat the whitespace beside them (HF ``AddedToken``);
            none do in the release.
        source: the file ``token_ids`` came from, named in errors.
    """

    def __init__(self, text: TextTokenizer, modalities: Sequence, instruction_tokens: bool = False,
                 token_ids: Mapping[str, int] | None = None, strip: Mapping[str, tuple[bool, bool]] | None = None,
                 source: str | None = None) -> None:
        self.text = text
        specs = [m.spec if hasattr(m, "spec") else m for m in modalities]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"Modality names must be unique, got {names}")
        unsized = [s.name for s in specs if s.codebook_size is None]
        if unsized:
            raise ValueError(f"modalities {unsized} have no codebook size: size them with their codec "
                             "(anygpt.modalities.registry.spec_of)")
        owners: dict[str, str] = {}  # token -> what claims it, in the default id order
        claims: list[tuple[Sequence[str], str]] = [(SPECIAL_TOKENS, "anygpt's special tokens")]
        for spec in specs:
            who = f"modality {spec.name!r}"
            claims += [([spec.code_token(i) for i in range(spec.codebook_size)], f"{who} (code token)"),
                       (spec.markers, f"{who} (marker)")]
        if instruction_tokens:
            claims.append((INSTRUCTION_TOKENS, "anygpt's instruction tokens"))
        for tokens, owner in claims:
            for token in tokens:
                if token in owners:
                    raise ModalitySpecError(f"token {token!r} is claimed twice in the configured modalities: by "
                                            f"{owners[token]} and by {owner}; give them distinct markers/token_format")
                owners[token] = owner
        default = {tok: text.vocab_size + i for i, tok in enumerate(owners)}
        self._token_to_id = ids = default if token_ids is None else _checked_layout(
            default, token_ids, specs, text, source or "the given token ids")
        self._id_to_token = {i: t for t, i in ids.items()}
        self._size = text.vocab_size + len(ids)
        self.instruction_tokens = instruction_tokens
        self.modalities: dict[str, ModalityRange] = {
            s.name: ModalityRange(s, ids[s.code_token(0)], ids[s.markers[0]], ids[s.markers[1]]) for s in specs}
        self._marker_to_modality = {rng.start_id: rng for rng in self.modalities.values()}
        self._range_of = {idx: rng for rng in self.modalities.values() for idx in rng.ids}
        # Strings that split text as added tokens do: named tokens, code tokens (by pattern) and the text model's
        # control tokens; leftmost, longest first, as HF's trie matches them.
        self._splitting = {**self._hook("control_tokens")(), **ids}
        self._split_ids = set(self._splitting.values())
        codes = {spec.code_token(i) for spec in specs for i in range(spec.codebook_size)}
        named = [t for t in self._splitting if t not in codes]
        alternatives = [re.escape(t) for t in sorted(named, key=len, reverse=True)]
        alternatives += [re.escape(s.token_format).replace(re.escape("{}"), r"\d+") for s in specs]
        self._special_pattern = re.compile("(" + "|".join(alternatives) + ")")
        self.strip = {t: (bool(lr[0]), bool(lr[1])) for t, lr in (strip or {}).items() if any(lr)}
        self._chunks: dict[tuple[str, bool], tuple[list[int], list[int]]] = {}  # text chunks' ids

    def _hook(self, name: str):
        """The text tokenizer's method ``name``; a duck-typed one (encode/decode only) gets `TextTokenizer`'s."""
        if isinstance(self.text, TextTokenizer):
            return getattr(self.text, name)
        return getattr(TextTokenizer, name).__get__(self.text)

    # -- sizes and lookups -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return len(self)

    @property
    def added_tokens(self) -> list[str]:
        """Every token after the text ids, in id order (what the release added with ``tokenizer.add_tokens``)."""
        return [self._id_to_token[i] for i in range(self.text.vocab_size, self._size)]

    def token_id(self, token: str) -> int:
        try:
            return self._token_to_id[token]
        except KeyError:
            raise KeyError(f"{token!r} is not a special token of this vocabulary") from None

    def id_to_token(self, idx: int) -> str | None:
        """The added token string for ``idx``, or None for a text id."""
        return self._id_to_token.get(idx)

    def modality_of(self, idx: int) -> str:
        """'text', 'special' or a modality name (markers count as their modality)."""
        if idx < self.text.vocab_size:
            return "text"
        rng = self._range_of.get(idx)
        return rng.name if rng is not None else "special"

    def modality_id_table(self) -> torch.Tensor:
        """A LongTensor mapping every id to a group index: 0 text/special, 1 + i for the i-th modality."""
        table = torch.zeros(len(self), dtype=torch.long)
        for i, rng in enumerate(self.modalities.values()):
            table[torch.tensor(rng.ids)] = i + 1
        return table

    # -- encoding ----------------------------------------------------------------------------------------------------
    def encode_codes(self, modality: str, codes: torch.Tensor) -> list[int]:
        """Flattened local codes ``[0, codebook_size)`` of one span -> unified ids (with its markers)."""
        if modality not in self.modalities:
            raise KeyError(f"Unknown modality {modality!r}; this vocabulary has {list(self.modalities)}")
        rng = self.modalities[modality]
        # numpy, not torch: a training sample's few hundred codes cost a tenth of the time (the data loader's path)
        flat = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= rng.spec.codebook_size):
            raise ValueError(f"{modality} codes must lie in [0, {rng.spec.codebook_size}), got "
                             f"[{int(flat.min())}, {int(flat.max())}]; the tokenizer and the vocabulary disagree")
        return [rng.start_id, *(flat + rng.first_id).tolist(), rng.end_id]

    def encode(self, text: str) -> list[int]:
        """Text that may contain special tokens, markers and code tokens (``<👀12>``) -> ids (no BOS).

        Exactly what the release's slow ``LlamaTokenizer`` (transformers 4.34, ``use_fast=False``) gives for the
        whole string, less its BOS: the string is split at added tokens (leftmost, longest match), their strip flags
        applied to the text beside them, and each text piece encoded by the text tokenizer.
        """
        return [i for ids in self.encode_segments([text]) for i in ids]

    def encode_segments(self, segments: Sequence[str]) -> list[list[int]]:
        """Encode the concatenation of ``segments`` as one string (as `encode` does) and give each segment the ids
        whose text starts in it: how a template marks which tokens carry loss without tokenizing in pieces."""
        text = self._hook("prepare")("".join(segments))
        shift = len(text) - sum(map(len, segments))  # characters `prepare` put in front
        bounds, total = [], shift
        for seg in segments:
            total += len(seg)
            bounds.append(total)
        chunks: list[list] = []  # [string, start offset, added id or None]
        position = 0
        splitting = self._splitting
        for piece in self._special_pattern.split(text):
            if piece:
                idx = splitting.get(piece)
                if idx is None and chunks and chunks[-1][2] is None:  # a code-shaped string that is no token: text
                    chunks[-1][0] += piece
                else:
                    chunks.append([piece, position, idx])
                position += len(piece)
        for i, (piece, _, idx) in enumerate(chunks):
            if idx is None or piece not in self.strip:
                continue
            lstrip, rstrip = self.strip[piece]
            if rstrip and i + 1 < len(chunks) and chunks[i + 1][2] is None:
                right = chunks[i + 1]
                kept = right[0].lstrip()
                right[1] += len(right[0]) - len(kept)
                right[0] = kept
            if lstrip and i > 0 and chunks[i - 1][2] is None:
                chunks[i - 1][0] = chunks[i - 1][0].rstrip()
        ids: list[int] = []
        starts: list[int] = []
        encode_chunk, want_offsets, cache = self._hook("encode_chunk"), len(segments) > 1, self._chunks
        for piece, start, idx in chunks:
            if not piece:
                continue
            if idx is not None:
                ids.append(idx)
                starts.append(start)
                continue
            if (piece, want_offsets) not in cache:  # templates repeat their chunks: each is encoded once
                if len(cache) >= CHUNK_CACHE:
                    cache.clear()
                cache[piece, want_offsets] = encode_chunk(piece, want_offsets)
            chunk_ids, offsets = cache[piece, want_offsets]
            ids.extend(chunk_ids)
            starts.extend(start + o for o in offsets)
        kept = self._hook("finish")(ids, self._split_ids)
        if len(segments) == 1:
            return [kept]
        starts = starts[len(ids) - len(kept):]
        cuts = [bisect.bisect_left(starts, b) for b in bounds[:-1]]  # starts never decrease
        return [kept[a:b] for a, b in zip([0, *cuts], [*cuts, len(kept)], strict=True)]

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
                if idx not in self._range_of:  # text and special tokens; stray codes are dropped
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
        for is_text, group in itertools.groupby(ids, key=lambda idx: idx < self.text.vocab_size):
            run = list(group)
            parts += [self.text.decode(run)] if is_text else [self._id_to_token.get(i, f"<unk:{i}>") for i in run]
        return "".join(parts)


@dataclass
class TokenizerFiles:
    """What an HF tokenizer folder says about its added tokens: ``ids`` (token -> id), the file they were read from,
    and the (lstrip, rstrip) flags of each (all False unless a file records otherwise)."""

    ids: dict[str, int]
    source: Path
    strip: dict[str, tuple[bool, bool]] = field(default_factory=dict)


def read_tokenizer_files(directory: str | Path) -> TokenizerFiles:
    """Added tokens of an HF tokenizer folder, read as transformers 4.34's slow ``LlamaTokenizer`` reads them.

    ``tokenizer_config.json``'s ``added_tokens_decoder`` first (with its strip flags); without it
    ``added_tokens.json``, with ``tokenizer.json``'s ``added_tokens`` over it. Every file present must agree on every
    id: a disagreement raises `VocabLayoutError` naming both files, the token and both ids.
    """
    directory = Path(directory)
    found: list[tuple[Path, dict[str, int], dict[str, tuple[bool, bool]]]] = []

    def add(path: Path, entries: list[tuple[int, dict]]) -> None:  # (id, {"content", "lstrip", "rstrip"})
        found.append((path, {t["content"]: int(i) for i, t in entries},
                      {t["content"]: (bool(t.get("lstrip")), bool(t.get("rstrip"))) for _, t in entries}))

    config, legacy, fast = (directory / name for name in ("tokenizer_config.json", "added_tokens.json",
                                                          "tokenizer.json"))
    if config.exists() and (decoder := json.loads(config.read_text("utf-8")).get("added_tokens_decoder")):
        add(config, list(decoder.items()))
    if legacy.exists():
        found.append((legacy, {k: int(v) for k, v in json.loads(legacy.read_text("utf-8")).items()}, {}))
    if fast.exists():
        add(fast, [(t["id"], t) for t in json.loads(fast.read_text("utf-8")).get("added_tokens", [])])
    if not found:
        raise FileNotFoundError(f"{directory} has no added_tokens.json, tokenizer.json or tokenizer_config.json; "
                                "is it an HF tokenizer directory?")
    (source, ids, strip), others = found[0], found[1:]
    for path, more_ids, _ in others:
        for token, idx in more_ids.items():
            if token in ids and ids[token] != idx:
                raise VocabLayoutError(f"{path} gives {token!r} the id {idx} but {source} gives it {ids[token]}: the "
                                       "tokenizer files of this folder disagree; re-save the tokenizer")
    if source != config:  # the legacy route: added_tokens.json, then tokenizer.json's flags and ids over it
        for _, more_ids, more_strip in others:
            ids = {**ids, **more_ids}
            strip = {**strip, **more_strip}
    return TokenizerFiles(ids, source, strip)


def read_added_tokens(directory: str | Path) -> dict[str, int]:
    """Added tokens (token -> id) of an HF tokenizer directory (see `read_tokenizer_files`)."""
    return read_tokenizer_files(directory).ids


def vocab_from_checkpoint(directory: str | Path, modalities: Sequence, instruction_tokens: bool | None = None
                          ) -> UnifiedVocab:
    """The vocabulary of an HF-format AnyGPT checkpoint: every added token's id as its tokenizer files record it.

    ``modalities`` say which tokens to expect; their ids come from the files. Raises `VocabLayoutError` naming the
    file and the token when one is missing, unknown, or breaks a modality's contiguous code range.
    """
    text = load_text_tokenizer(directory)
    files = read_tokenizer_files(directory)
    added = {t: i for t, i in files.ids.items() if i >= text.vocab_size}
    if instruction_tokens is None:
        instruction_tokens = all(t in added for t in INSTRUCTION_TOKENS)
    return UnifiedVocab(text, modalities, instruction_tokens=instruction_tokens, token_ids=added, strip=files.strip,
                        source=str(files.source))


def _checked_layout(default: Mapping[str, int], token_ids: Mapping[str, int], specs: Sequence[ModalitySpec],
                    text: TextTokenizer, source: str) -> dict[str, int]:
    """``token_ids`` restricted to the expected tokens, after checking it can serve as a vocabulary layout."""
    size = text.vocab_size
    extra = sorted((t for t in token_ids if t not in default and token_ids[t] >= size), key=token_ids.get)
    if extra:
        raise VocabLayoutError(
            f"{source} has {len(extra)} added tokens this vocabulary lacks (first: {extra[:5]} at ids "
            f"{[token_ids[t] for t in extra[:5]]}). Add the modality they belong to, or set instruction_tokens=True "
            "if they are <-Res->/<-Ins->.")
    missing = [t for t in default if t not in token_ids]
    if missing:
        shown = ", ".join(f"{t!r} (expected at {default[t]})" for t in missing[:5])
        raise VocabLayoutError(f"{source} lacks {len(missing)} tokens of the configured modalities "
                               f"{[s.name for s in specs]}: {shown}. Configure the checkpoint's own modalities "
                               "(anygpt.json or --modalities) with its codebook sizes.")
    ids = {t: int(token_ids[t]) for t in default}
    below = [t for t, i in ids.items() if i < size]
    if below:
        raise VocabLayoutError(f"{source} puts {below[0]!r} at id {ids[below[0]]}, inside the text tokenizer's "
                               f"{size} ids: this text tokenizer does not belong to that checkpoint")
    for spec in specs:
        first = ids[spec.code_token(0)]
        for i in range(spec.codebook_size):
            token = spec.code_token(i)
            if ids[token] != first + i:
                raise VocabLayoutError(
                    f"{source}: {token!r} has id {ids[token]} but the {spec.name} codes must be contiguous from "
                    f"{spec.code_token(0)!r} = {first}, so it should be {first + i}; the {spec.name} codes of this "
                    "checkpoint are not one range")
    taken = sorted(ids.values())
    if taken != list(range(size, size + len(taken))):
        gap = next(i for i, j in zip(range(size, size + len(taken)), taken, strict=True) if i != j)
        raise VocabLayoutError(f"{source}: the added tokens do not fill ids {size}..{size + len(taken) - 1} (id "
                               f"{gap} is unused or taken twice)")
    return ids
