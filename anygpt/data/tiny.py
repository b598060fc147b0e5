"""The tiny corpus: a 300-id BPE and shards of caption-dependent random codes for small image/speech/music vocabularies.

It exercises the whole pretraining path in seconds (``anygpt data tiny --out data/tiny``, then
``anygpt fit --config experiments/tiny/pretrain.yaml``); the data, model and distributed tests use it too.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from anygpt.data.shards import ShardWriter
from anygpt.text_tokenizer import train_bpe_tokenizer

WORDS = ("a red circle on a blue square", "the cat sits near the door", "two dogs play in the park",
         "a man speaks slowly", "soft piano with a calm mood", "loud drums and electric guitar",
         "she reads the book aloud", "a green tree under the sun", "rain falls on the quiet street")

# Small modalities in vocabulary order: image, speech, music (the tiny codec with 2 codebooks of 32, frame-major like
# Encodec's 4 of 2048).
TINY_MODALITIES = [
    {"name": "image", "codebook_size": 64},  # registered names sized by hand: no codec makes these random codes
    {"name": "speech", "codebook_size": 32},
    {"class_path": "anygpt.modalities.music.tiny.TinyMusicCodec", "init_args": {"n_q": 2, "bins": 32}},
]
CODEBOOK_SIZES = {"image": 64, "speech": 32, "music": 64}


def make_tokenizer(directory: str | Path) -> Path:
    """A byte-level BPE of 300 ids trained on the captions above."""
    directory = Path(directory)
    train_bpe_tokenizer(list(WORDS) * 20, 300, directory)
    return directory


def codes_for(modality: str, rng: np.random.Generator, caption_index: int) -> np.ndarray:
    """Codes that depend on the caption (so a model can learn the pairing), with some noise."""
    base = np.random.default_rng(caption_index)
    if modality == "image":
        return base.integers(0, 64, 8).astype(np.int16)
    if modality == "speech":
        return np.concatenate([base.integers(0, 32, 6), rng.integers(0, 32, int(rng.integers(2, 6)))]).astype(np.int16)
    return base.integers(0, 32, (2, 4)).astype(np.int16)  # music [Q=2, T=4], 32 codes per codebook


def write_shards(directory: str | Path, modality: str, samples: int = 40, maxcount: int = 10, seed: int = 0,
                 conversations: bool = False) -> Path:
    """Pairs (media, caption) of one modality, or two-turn conversations, into ``directory``."""
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    with ShardWriter(directory, maxcount=maxcount,
                     vocab_info={"codebook_sizes": CODEBOOK_SIZES}) as w:
        for i in range(samples):
            index = pick.randrange(len(WORDS))
            codes = {f"{modality}0": codes_for(modality, rng, index)}
            if conversations:
                meta = {"task": "chat", "media": {f"{modality}0": modality}, "source": "tiny-chat",
                        "conversation": [{"role": "user", "message": f"What is this? <media:{modality}0>"},
                                         {"role": "assistant", "message": WORDS[index]}]}
            else:
                meta = {"task": "pair", "text": WORDS[index], "media": {f"{modality}0": modality}, "source": "tiny"}
            w.write(f"{seed:03d}{i:06d}", meta, codes)
    return directory


def write_tiny_corpus(root: str | Path) -> Path:
    """The tokenizer and the shards ``experiments/tiny/pretrain.yaml`` reads (under ``root``)."""
    root = Path(root)
    make_tokenizer(root / "tokenizer")
    for seed, modality in enumerate(("image", "speech", "music")):
        write_shards(root / "shards" / modality, modality, samples=60, seed=seed)
    write_shards(root / "shards" / "val", "image", samples=20, seed=99)
    return root


def tiny(out: Path = Path("data/tiny")) -> None:
    """Write the tiny corpus (``tokenizer/`` and ``shards/``) under OUT, for ``experiments/tiny/pretrain.yaml``.

    Args:
        out: output folder (the config reads ``data/tiny``, relative to the working directory).
    """
    root = write_tiny_corpus(out)
    print(f"[tiny] BPE tokenizer in {root / 'tokenizer'}, shards in {root / 'shards'}")
