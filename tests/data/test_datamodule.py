import pytest
import torch

from anygpt.data.datamodule import AnyGPTDataModule, Source
from anygpt.data.tiny import TINY_MODALITIES, write_tiny_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


def datamodule(corpus, weights=(0.5, 0.3, 0.2), **kwargs):
    names = ("image", "speech", "music")
    sources = [Source(str(corpus / "shards" / m), w) for m, w in zip(names, weights, strict=True)]
    options = {"max_length": 96, "batch_size": 4, "batches_per_epoch": 5, **kwargs}
    return AnyGPTDataModule(str(corpus / "tokenizer"), TINY_MODALITIES, sources, **options)


def test_packing_keeps_samples_whole_and_masks_padding(corpus):
    dm = datamodule(corpus)
    bos, eos = dm.vocab.text.bos_id, dm.vocab.text.eos_id
    for batch in dm.train_dataloader():
        assert batch["input_ids"].shape == (4, 96)
        for ids, mask in zip(batch["input_ids"].tolist(), batch["loss_mask"].tolist(), strict=True):
            used = sum(1 for _ in ids) - list(reversed(mask)).index(True) if any(mask) else 0
            content = ids[:used]
            assert not any(mask[used:])  # padding carries no loss
            # whole samples back to back: <s> ... </s> <s> ... </s>
            starts = [i for i, t in enumerate(content) if t == bos]
            ends = [i for i, t in enumerate(content) if t == eos]
            assert starts[0] == 0 and len(starts) == len(ends)
            assert all(e + 1 == s for e, s in zip(ends, starts[1:], strict=False))
            assert content[-1] == eos
            assert starts and not mask[0] and all(mask[1:used])  # pretraining: all but each BOS are trained


def test_mixture_rates_follow_weights(corpus):
    dm = datamodule(corpus, weights=(0.5, 0.3, 0.2), batches_per_epoch=150, max_length=200)
    starts = {name: dm.vocab.modalities[name].start_id for name in ("image", "speech", "music")}
    counts = dict.fromkeys(starts, 0)
    for batch in dm.train_dataloader():
        for name, marker in starts.items():
            counts[name] += int((batch["input_ids"] == marker).sum())
    total = sum(counts.values())
    assert total > 1000
    for name, weight in zip(starts, (0.5, 0.3, 0.2), strict=True):
        assert abs(counts[name] / total - weight) < 0.05, counts


def test_ranks_draw_different_streams_of_equal_length(corpus):
    batches = []
    for rank in range(2):
        dm = datamodule(corpus)
        loader = dm.train_dataloader()
        dm.train_stream.rank, dm.train_stream.world_size = rank, 2
        batches.append([b["input_ids"] for b in loader])
    assert len(batches[0]) == len(batches[1]) == 5
    assert not torch.equal(batches[0][0], batches[1][0])


@pytest.mark.parametrize(("workers", "buffer"), [(0, 5), (2, 5), (0, 1000)])
def test_resumed_loader_draws_the_same_batches(corpus, workers, buffer):
    reference = datamodule(corpus, num_workers=workers, shuffle_buffer=buffer).train_dataloader()
    expected = [b["input_ids"] for _ in range(2) for b in reference]  # two epochs

    loader = datamodule(corpus, num_workers=workers, shuffle_buffer=buffer).train_dataloader()
    it = iter(loader)
    seen = [next(it)["input_ids"] for _ in range(3)]
    state = loader.state_dict()
    del it

    resumed = datamodule(corpus, num_workers=workers, shuffle_buffer=buffer).train_dataloader()
    resumed.load_state_dict(state)
    rest = [b["input_ids"] for b in resumed] + [b["input_ids"] for b in resumed]
    got = seen + rest
    assert len(got) == len(expected) == 10
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert not torch.equal(expected[0], expected[5])  # the second epoch is a new draw


def test_every_rank_and_worker_reads_its_own_share_of_each_source(corpus):
    dm = datamodule(corpus, shuffle_buffer=16)
    stream = dm._stream(dm.sources, 5, 0, shuffle=True)
    stream.rank, stream.world_size = 1, 2
    streams = stream._make_streams()
    assert [(s.reader, s.readers, s.shuffle_buffer) for s in streams] == [(1, 2, 16)] * 3
    dm.sources[1].shuffle_buffer = 0  # a source's own buffer size wins
    assert [s.shuffle_buffer for s in dm._stream(dm.sources, 5, 0, shuffle=True)._make_streams()] == [16, 0, 16]
    assert {s.shuffle_buffer for s in dm._stream(dm.sources, 5, 0, shuffle=False)._make_streams()} == {0}


def test_validation_stream_repeats_and_splits_shards(corpus):
    dm = datamodule(corpus, val_batches=2)
    dm.val_sources = [Source(str(corpus / "shards" / "val"))]
    loader = dm.val_dataloader()
    first = [b["input_ids"] for b in loader]
    second = [b["input_ids"] for b in loader]
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_configuration_errors_name_the_problem(corpus, tmp_path):
    with pytest.raises(KeyError, match="Unknown modality 'smell'"):
        AnyGPTDataModule(str(corpus / "tokenizer"), ["smell"], [Source(str(corpus / "shards" / "image"))])
    with pytest.raises(FileNotFoundError, match="missing_tok"):
        AnyGPTDataModule(str(tmp_path / "missing_tok"), TINY_MODALITIES, [Source(str(corpus / "shards" / "image"))])
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        AnyGPTDataModule(str(corpus / "tokenizer"), TINY_MODALITIES, [Source(str(tmp_path / "nothing_here/*.tar"))])
    bigger = [dict(m) for m in TINY_MODALITIES]
    bigger[0]["codebook_size"] = 128
    with pytest.raises(ValueError, match="manifest.json: shards were made with 64 image codes"):
        AnyGPTDataModule(str(corpus / "tokenizer"), bigger, [Source(str(corpus / "shards" / "image"))])


def test_out_of_range_codes_are_skipped_and_counted(corpus):
    smaller = [dict(m) for m in TINY_MODALITIES]
    smaller[0]["codebook_size"] = 60  # shards hold image codes up to 63; the manifest check is bypassed below
    dm = AnyGPTDataModule(str(corpus / "tokenizer"), TINY_MODALITIES,
                          [Source(str(corpus / "shards" / "image"), 0.5), Source(str(corpus / "shards" / "speech"))],
                          max_length=96, batch_size=2, batches_per_epoch=2)
    from anygpt.modalities.registry import configured_modality
    from anygpt.vocab import UnifiedVocab

    dm.renderer.vocab = UnifiedVocab(dm.vocab.text, [configured_modality(m)[0] for m in smaller])
    with pytest.warns(UserWarning, match="image0.npy codes span"):
        list(dm.train_dataloader())
    assert dm.stats.out_of_range > 0 and dm.stats.samples > 0
    smaller[0]["codebook_size"] = 4  # nothing fits: the run stops with a message instead of spinning
    dm.renderer.vocab = UnifiedVocab(dm.vocab.text, [configured_modality(m)[0] for m in smaller])
    dm._train_loader = None
    dm.hparams.batches_per_epoch = 50
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="unusable samples in a row"):
        loader = dm.train_dataloader()
        loader.dataset.max_bad_in_a_row = 50
        list(loader)


def test_over_long_samples_are_cut_counted_and_warned_about_sparingly(corpus):
    dm = datamodule(corpus, max_length=12, batches_per_epoch=20)  # every tiny-corpus sample is longer than 12
    with pytest.warns(UserWarning) as caught:
        batches = list(dm.train_dataloader())
    assert all(b["input_ids"].shape == (4, 12) for b in batches)
    count = dm.stats.truncated_samples
    assert count >= 80  # one sample per row: nothing fits with another
    messages = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert len(messages) == 3 + sum(1 for p in (10, 100, 1000) if count >= p)
    assert "so far" in messages[-1] and "raise max_length" in messages[-1]


def test_a_position_saved_before_shuffled_streams_restarts_the_epoch(corpus):
    dm = datamodule(corpus)
    stream = dm._stream(dm.sources, 5, 0, shuffle=True)
    old = {"epoch": 0, "batches": 2, "rng": [3, [0] * 625, None], "shards": [None] * 3, "consumed": [0] * 3,
           "pending": None, "order": [0] * 3, "stats": {}}
    with pytest.warns(UserWarning, match="restarts epoch 0 from its beginning"):
        stream.load_state_dict(old)
    fresh = dm._stream(dm.sources, 5, 0, shuffle=True)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(stream, fresh, strict=True))
