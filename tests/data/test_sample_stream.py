"""`SampleStream`: shard order per pass split among readers without duplicates or losses, a shuffle buffer, and a
position that restores the exact continuation."""

import itertools

import numpy as np
import pytest

from anygpt.data.shards import ShardWriter, expand_shards
from anygpt.data.stream import SampleStream


def write(directory, n, maxcount):
    with ShardWriter(directory, maxcount=maxcount) as w:
        for i in range(n):
            w.write(f"{i:06d}", {"task": "pair", "text": f"caption {i}", "media": {"image0": "image"}},
                    {"image0": np.full(2, i % 16, dtype=np.int16)})
    return expand_shards(str(directory))


def one_pass(urls, readers, **kwargs):
    return [[s.key for s in SampleStream(urls, "s", reader=r, readers=readers, cycle=False, **kwargs)]
            for r in range(readers)]


@pytest.mark.parametrize(("samples", "maxcount", "readers"), [(60, 5, 4), (60, 5, 5), (23, 10, 4), (9, 9, 2)])
def test_a_pass_hands_each_sample_to_exactly_one_reader(tmp_path, samples, maxcount, readers):
    urls = write(tmp_path, samples, maxcount)  # 12 shards for 4 or 5 readers; 3 shards or 1 for more readers
    for buffer in (0, 7):
        parts = one_pass(urls, readers, shuffle_buffer=buffer)
        keys = [k for part in parts for k in part]
        assert sorted(keys) == [f"{i:06d}" for i in range(samples)]  # no duplicates, no losses
        assert all(parts)  # everyone gets a share
        assert max(map(len, parts)) - min(map(len, parts)) <= max(maxcount, readers)


def test_order_is_seeded_shuffled_and_new_every_pass(tmp_path):
    urls = write(tmp_path, 60, 5)
    in_order = [f"{i:06d}" for i in range(60)]
    first = one_pass(urls, 1, shuffle_buffer=20)[0]
    assert first == one_pass(urls, 1, shuffle_buffer=20)[0]  # deterministic
    assert first != in_order and sorted(first) == in_order
    # a buffer mixes shards: few neighbours come from the same 5-sample shard
    same_shard = sum(int(a) // 5 == int(b) // 5 for a, b in itertools.pairwise(first))
    assert same_shard < 15
    other_seed = [s.key for s in SampleStream(urls, "t", cycle=False, shuffle_buffer=20)]
    assert other_seed != first
    endless = SampleStream(urls, "s", shuffle_buffer=20)
    counts = {}
    for _ in range(120):  # two passes' worth; the buffer mixes the end of one pass with the start of the next
        key = next(endless).key
        counts[key] = counts.get(key, 0) + 1
    assert sorted(counts) == in_order and max(counts.values()) <= 3  # a sample may wait in the buffer
    assert endless.pass_shards(0) != endless.pass_shards(1)
    # validation order: sorted shards, no buffer
    assert one_pass(urls, 1, shuffle_buffer=0, shuffle_shards=False)[0] == in_order


@pytest.mark.parametrize("readers", [1, 3])
def test_restored_position_continues_exactly(tmp_path, readers):
    urls = write(tmp_path, 47, 4)
    for reader in range(readers):
        reference = SampleStream(urls, "s", reader=reader, readers=readers, shuffle_buffer=9)
        expected = [next(reference).key for _ in range(80)]  # across passes
        for stop in (0, 1, 13, 31, 50):
            stream = SampleStream(urls, "s", reader=reader, readers=readers, shuffle_buffer=9)
            seen = [next(stream).key for _ in range(stop)]
            state = stream.state_dict()
            assert len(state["refs"]) <= 2 * 9  # positions, not samples
            resumed = SampleStream(urls, "s", reader=reader, readers=readers, shuffle_buffer=9)
            resumed.load_state_dict(state)
            assert seen + [next(resumed).key for _ in range(80 - stop)] == expected


def test_fewer_samples_than_readers_falls_back_to_reading_everything(tmp_path):
    urls = write(tmp_path, 1, 1)
    stream = SampleStream(urls, "s", reader=1, readers=2)
    with pytest.warns(UserWarning, match="fewer samples than the 2 readers"):
        assert next(stream).key == "000000"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "shard-000000.tar").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="no readable sample in a whole pass"):
        next(SampleStream([str(empty / "shard-000000.tar")], "s"))


def test_with_fewer_shards_than_readers_each_reader_opens_one_shard(tmp_path, monkeypatch):
    import anygpt.data.stream as stream

    urls = write(tmp_path, 30, 10)  # 3 shards shared by 7 readers: 3 + 2 + 2
    opened = []
    original = stream.iter_raw
    monkeypatch.setattr(stream, "iter_raw", lambda url, stats=None: opened.append(url) or original(url, stats))
    counts = []
    for reader in range(7):
        opened.clear()
        counts.append(len(list(SampleStream(urls, "s", reader=reader, readers=7, cycle=False))))
        assert len(opened) == 1  # no reader scans the whole source to find its share
    assert sum(counts) == 30 and min(counts) >= 3
