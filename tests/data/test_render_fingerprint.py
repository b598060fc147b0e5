"""The rendered blocks of a fixed small corpus (pairs of every modality, both train_on modes, dialogues with and
without a system line, documents, packed and unpacked) are those of the code before the data path was sped up."""

import hashlib
import random

import numpy as np

from anygpt.data.datamodule import MixtureStream, Source
from anygpt.data.shards import ShardWriter
from anygpt.modalities.registry import configured_modality
from anygpt.modalities.spec import RELEASE_MODALITIES
from anygpt.prompts import TemplateRenderer
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab

# sha256 of every batch's input_ids and loss_mask, computed with the renderer of commit 90038e8
EXPECTED = "490983776902ffa50839741593510e87ba03c4d2050491b434cc308da850d2d3"

WORDS = "a dog runs on the beach while the sun sets behind calm blue water and two birds fly".split()


def write_corpus(root):
    rng, pick = np.random.default_rng(0), random.Random(0)
    shapes = {"image": (32,), "speech": (50,), "music": (4, 25)}
    highs = {"image": 8192, "speech": 1024, "music": 2048}
    for m in shapes:
        with ShardWriter(root / m, maxcount=7) as w:
            for i in range(20):
                text = " ".join(pick.choice(WORDS) for _ in range(8))
                if m == "image" and i % 3 == 0:
                    text = [text, "two birds fly"]
                w.write(f"{i:04d}", {"task": "caption", "text": text, "media": {f"{m}0": m}},
                        {f"{m}0": rng.integers(0, highs[m], shapes[m]).astype(np.int16)})
    with ShardWriter(root / "dialogue", maxcount=7) as w:
        for i in range(12):
            conv = [{"role": "user", "message": f"look <media:image0> {pick.choice(WORDS)}"},
                    {"role": "assistant", "message": " ".join(pick.choice(WORDS) for _ in range(5))},
                    {"role": "user", "message": "and <media:speech0>?"},
                    {"role": "assistant", "message": "it says <media:music0> " + pick.choice(WORDS)}]
            meta = {"conversation": conv if i % 2 else [conv],  # AnyInstruct's nested turns too
                    "media": {"image0": "image", "speech0": "speech", "music0": "music"}}
            if i % 4 == 1:
                meta["system"] = "You are a helper."
            w.write(f"{i:04d}", meta, {"image0": rng.integers(0, 8192, (32,)).astype(np.int16),
                                        "speech0": rng.integers(0, 1024, (40,)).astype(np.int16),
                                        "music0": rng.integers(0, 2048, (4, 10)).astype(np.int16)})
    with ShardWriter(root / "doc", maxcount=7) as w:
        for i in range(8):
            text = f"{pick.choice(WORDS)} <media:image0> then {pick.choice(WORDS)}"
            w.write(f"{i:04d}", {"task": "interleaved", "text": text, "media": {"image0": "image"}},
                    {"image0": rng.integers(0, 8192, (32,)).astype(np.int16)})


def fingerprint(root):
    text = train_bpe_tokenizer([" ".join(WORDS)] * 20, 400, root / "tok")
    resolved = [configured_modality(s.name) for s in RELEASE_MODALITIES]  # the paper's codecs, sized on meta
    vocab = UnifiedVocab(text, [s for s, _ in resolved])
    h = hashlib.sha256()
    for train_on, pack in (("all", True), ("assistant", True), ("assistant", False)):
        renderer = TemplateRenderer(vocab, {s.name: f for s, f in resolved}, system_prompt=None)
        sources = [Source(str(root / "image"), 0.3, x2text_prob=0.5, train_on=train_on),
                   Source(str(root / "speech"), 0.2, x2text_prob=0.3, train_on=train_on),
                   Source(str(root / "music"), 0.2, x2text_prob=0.7, train_on=train_on),
                   Source(str(root / "dialogue"), 0.2, train_on=train_on), Source(str(root / "doc"), 0.1)]
        for batch in MixtureStream(sources, renderer, 300, 2, 12, seed=3, pack=pack, shuffle_buffer=5):
            h.update(batch["input_ids"].numpy().tobytes())
            h.update(batch["loss_mask"].numpy().tobytes())
    return h.hexdigest()


def test_rendered_blocks_are_unchanged(tmp_path):
    write_corpus(tmp_path)
    assert fingerprint(tmp_path) == EXPECTED
