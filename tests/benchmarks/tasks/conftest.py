"""A tiny random any-to-any bundle, tiny random judges and a tiny demo corpus, built once per session.

Random weights: the tests check the plumbing (files, fields, sharding, error messages), not the scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anygpt.checkpoints import Bundle, save_bundle
from anygpt.data.demo import build_demo_corpus
from anygpt.modalities.image import TinyImageTokenizer
from anygpt.modalities.music import TinyMusicCodec
from anygpt.modalities.registry import TokenizerRef, modality_for
from anygpt.modalities.speech import SoundStorm, TinySpeechCodec
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab

# Short generations keep the tests fast; an image span is 32 codes + 2 markers.
FAST = {
    "coco-caption": {"max_new_tokens": 12, "num_beams": 2},
    "librispeech-asr": {"max_new_tokens": 12, "num_beams": 2},
    "musiccaps-caption": {"max_new_tokens": 12, "num_beams": 2},
    "coco-t2i": {"max_new_tokens": 40},
    "vctk-tts": {"max_new_tokens": 40},
    "musiccaps-gen": {"max_new_tokens": 40},
}


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    build_demo_corpus(root, scale=0.01, workers=1, progress=False)
    return root


def make_tokenizers(folder: Path, modalities: tuple[str, ...] = ("image", "speech", "music")) -> dict:
    torch.manual_seed(0)
    made = {}
    if "image" in modalities:
        made["image"] = TinyImageTokenizer(codebook_size=64, code_dim=8, channels=(8, 8, 8, 8), kmeans_iters=1)
    if "speech" in modalities:
        storm = SoundStorm(codebook_size=256, num_quantizers=7, num_semantic_tokens=256, dim=32, depth=1,
                           heads=2, dim_head=16, ff_mult=2, conv_kernel_size=3)
        storm.save_pretrained(folder / "soundstorm")
        made["speech"] = TinySpeechCodec(soundstorm=str(folder / "soundstorm"))
    if "music" in modalities:
        made["music"] = TinyMusicCodec(bins=64, n_q=2, n_filters=4, dimension=16, kmeans_iters=1)
    from encodec.quantization.core_vq import EuclideanCodebook

    for name, tok in made.items():
        for module in tok.modules():  # random codebooks (untrained ones wait for k-means: every code decodes alike)
            if isinstance(module, EuclideanCodebook):
                module.embed.normal_()
                module.embed_avg.copy_(module.embed)
                module.inited.fill_(1)
        tok.save_pretrained(folder / name)
    return {name: modality_for(codec) for name, codec in made.items()}


def make_bundle(folder: Path, corpus: Path, modalities: tuple[str, ...] = ("image", "speech", "music"),
                block_size: int = 512) -> Path:
    """A random tiny LLaMA + BPE text tokenizer + random tiny modality tokenizers, saved with `save_bundle`."""
    texts = [s["raw"] for im in json.loads((corpus / "coco/dataset_coco.json").read_text())["images"]
             for s in im["sentences"]]
    text = train_bpe_tokenizer(texts * 4, 300, folder / "text")
    tokenizers = make_tokenizers(folder / "tokenizers", modalities)
    vocab = UnifiedVocab(text, [tokenizers[m] for m in modalities])
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=block_size))
    refs = {m: TokenizerRef(path=str(folder / "tokenizers" / m)) for m in modalities}
    return save_bundle(Bundle(model, vocab, tokenizers, None, refs), folder / "bundle")


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, demo_corpus) -> Path:
    # context 512: a 5 s music clip is 250 ids
    return make_bundle(tmp_path_factory.mktemp("bundle"), demo_corpus)


@pytest.fixture(scope="session")
def judges(tmp_path_factory, demo_corpus) -> dict[str, str]:
    from benchmarks.judges.asr import CtcAsr
    from benchmarks.judges.clap import TinyClap, build_vocab
    from benchmarks.judges.clip import TINY_CLIP_CONFIG, build_clip, save_tiny_clip

    root = tmp_path_factory.mktemp("judges")
    torch.manual_seed(0)
    cfg = json.loads(json.dumps(TINY_CLIP_CONFIG))
    cfg["text_cfg"].update(layers=1)
    cfg["vision_cfg"].update(layers=1)
    save_tiny_clip(build_clip(cfg), cfg, root / "clip")
    captions = (demo_corpus / "musiccaps/musiccaps.csv").read_text().splitlines()
    TinyClap(build_vocab(captions), channels=(8, 8, 8, 8), text_width=32, text_layers=1, embed_dim=32).save(
        root / "clap")
    CtcAsr(hidden=32, layers=1).save(root / "asr")
    return {k: str(root / k) for k in ("clip", "clap", "asr")}
