"""SoundStorm's data path: ``anygpt prepare`` keeps every RVQ level of a speech source (``all_levels``), and
`CodeShardDataModule` streams those shards split by rank, shuffled, resumable; the LLM still reads level 1 of them."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from anygpt.data.codes import CodeSegmentStream, CodeShardDataModule
from anygpt.data.datamodule import AnyGPTDataModule, Source
from anygpt.data.prepare import GigaSpeech, LibriSpeech, prepare
from anygpt.data.shards import expand_shards, read_shard
from anygpt.data.tiny import make_tokenizer
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import modality_for
from tests.data.test_raw_sources import audio, gigaspeech

LEVELS, SIZE = 3, 32


class ResidualStub(Codec):
    """A deterministic stand-in for a residual speech codec: level k quantises the frame energy k times finer."""

    modality = "speech"
    sample_rate = 16000
    frame_rate = 50.0

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("unused", torch.zeros(1))

    @property
    def codebook_size(self) -> int:
        return SIZE

    @torch.inference_mode()
    def encode_all_levels(self, items):
        out = []
        for wav in items:
            wav = wav.reshape(-1)
            energy = wav[: wav.numel() // 320 * 320].view(-1, 320).abs().mean(1)
            out.append(torch.stack([(energy * 40 * (k + 1) * SIZE).long() % SIZE for k in range(LEVELS)]))
        return out

    @torch.inference_mode()
    def encode(self, items):
        return [codes[0] for codes in self.encode_all_levels(items)]

    def decode(self, codes, **context):
        raise NotImplementedError


def librispeech(root, utterances=12):
    for i in range(utterances):
        speaker, chapter = 100 + i % 3, 7
        folder = root / "train-clean-100" / str(speaker) / str(chapter)
        audio(folder / f"{speaker}-{chapter}-{i:04d}.flac", seconds=0.3 + 0.05 * i)
        with open(folder / f"{speaker}-{chapter}.trans.txt", "a") as f:
            f.write(f"{speaker}-{chapter}-{i:04d} WORDS NUMBER {i}\n")
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("codes")
    librispeech(root / "LibriSpeech")
    ResidualStub().save_pretrained(root / "tok")
    summary = prepare({"all": LibriSpeech(str(root / "LibriSpeech"), all_levels=True),
                       "giga": GigaSpeech(str(gigaspeech(root) / "GigaSpeech.json"), all_levels=True)},
                      {"speech": str(root / "tok")}, out=str(root / "shards"), chunk_size=3, num_workers=0,
                      accelerator="cpu", progress=False)
    assert {k: (v["samples"], v["shards"]) for k, v in summary.items()} == {"all": (12, 4), "giga": (2, 1)}
    return root


def samples(directory):
    return [s for url in expand_shards(str(directory)) for s in read_shard(url)]


def test_prepare_keeps_every_level_and_cuts_gigaspeech_segments(shards):
    stub = modality_for(ResidualStub())
    for sample in samples(shards / "shards" / "all"):
        assert sample.meta["all_levels"] == ["speech0"] and sample.codes["speech0"].shape[0] == LEVELS
    first = next(s for s in samples(shards / "shards" / "all") if s.meta["id"] == "100-7-0000")
    wav = stub.read(next((shards / "LibriSpeech").rglob("100-7-0000.flac")))
    assert np.array_equal(first.codes["speech0"], stub.codec.encode_all_levels([wav])[0].numpy())
    giga = {s.meta["id"]: s for s in samples(shards / "shards" / "giga")}
    cut = giga["POD0000000001_S0000000"].codes["speech0"]  # 0.2 s .. 1.4 s of the 3 s recording
    assert cut.shape == (LEVELS, int(1.2 * 16000) // 320)


def test_the_llm_reads_level_one_of_all_level_shards(shards):
    make_tokenizer(shards / "text")
    spec = {"name": "speech", "codebook_size": SIZE, "markers": ["<sosp>", "<eosp>"], "token_format": "<🗣️{}>"}
    dm = AnyGPTDataModule(str(shards / "text"), [spec], [Source(str(shards / "shards" / "all"))], max_length=256)
    sample = samples(shards / "shards" / "all")[0]
    ids = dm.renderer.render(sample, random.Random(0), x2text_prob=1.0).ids
    rng = dm.vocab.modalities["speech"]
    span = ids[ids.index(rng.start_id) + 1: ids.index(rng.end_id)]
    assert [i - rng.first_id for i in span] == sample.codes["speech0"][0].tolist()


def data(shards, **kwargs):
    options = {"segment_frames": 8, "batch_size": 2, "batches_per_epoch": 6, "shuffle_buffer": 4, **kwargs}
    return CodeShardDataModule(str(shards / "shards" / "all"), val_shards=str(shards / "shards" / "giga"), **options)


def test_batches_are_padded_crops_with_the_manifest_pad_id(shards):
    dm = data(shards)
    assert dm.pad_id == SIZE
    batches = list(dm.train_dataloader())
    assert len(batches) == 6
    for batch in batches:
        assert batch["codes"].shape[0] == 2 and batch["codes"].shape[2] == LEVELS and batch["codes"].shape[1] <= 8
        for row, length in zip(batch["codes"], batch["lengths"], strict=True):
            assert (row[:length] < SIZE).all() and (row[length:] == SIZE).all()
    val = list(dm.val_dataloader())
    assert len(val) == 20 and val[0]["codes"].shape[2] == LEVELS  # val_batches default, cycling the 2 segments


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_loader_draws_the_same_batches(shards, workers):
    expected = [b["codes"] for _ in range(2) for b in data(shards, num_workers=workers).train_dataloader()]
    loader = data(shards, num_workers=workers).train_dataloader()
    it = iter(loader)
    seen = [next(it)["codes"] for _ in range(4)]
    state = loader.state_dict()
    del it
    resumed = data(shards, num_workers=workers).train_dataloader()
    resumed.load_state_dict(state)
    got = seen + [b["codes"] for b in resumed] + [b["codes"] for b in resumed]
    assert len(got) == len(expected) == 12 and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_ranks_read_disjoint_shares(shards):
    seen = []
    for rank in range(2):
        stream = CodeSegmentStream(str(shards / "shards" / "all"), "speech", segment_frames=1000, batch_size=1,
                                   batches_per_epoch=6, pad_id=SIZE, shuffle_buffer=0)
        stream.rank, stream.world_size = rank, 2
        seen.append({json.dumps(b["codes"][0].tolist()) for b in stream})  # 6 of this rank's 6 utterances
    assert len(seen[0]) == len(seen[1]) == 6 and not seen[0] & seen[1]


def test_shards_without_all_levels_are_refused_clearly(shards, tmp_path):
    prepare({"level1": LibriSpeech(str(shards / "LibriSpeech"))}, {"speech": str(shards / "tok")},
            out=str(tmp_path), chunk_size=100, num_workers=0, accelerator="cpu", progress=False)
    stream = CodeSegmentStream(str(tmp_path / "level1"), "speech", 8, 2, 1, pad_id=SIZE)
    stream.max_unusable_in_a_row = 12
    with pytest.warns(UserWarning, match="Prepare the source with all_levels: true"), \
            pytest.raises(RuntimeError, match="12 samples in a row without all-level speech codes"):
        next(iter(stream))


def test_soundstorm_trains_from_the_shards(shards, tmp_path):
    import lightning as L

    from anygpt.modalities.speech.soundstorm import SoundStorm
    from anygpt.modalities.speech.training import SoundStormTrainer

    torch.manual_seed(0)
    storm = SoundStormTrainer(SoundStorm(codebook_size=SIZE, num_quantizers=LEVELS - 1, num_semantic_tokens=SIZE,
                                         dim=16, depth=1, heads=2, dim_head=8, ff_mult=2, conv_kernel_size=3),
                              warmup_steps=1)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, limit_val_batches=1, val_check_interval=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(storm, data(shards))
    assert torch.isfinite(trainer.callback_metrics["train/loss"]) and "val/accuracy" in trainer.callback_metrics
