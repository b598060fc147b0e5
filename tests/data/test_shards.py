import io
import json

import numpy as np
import pytest

from anygpt.data.shards import ReaderStats, ShardWriter, expand_shards, load_npy, read_manifest, read_shard


def write(directory, n=7, maxcount=3, **kwargs):
    with ShardWriter(directory, maxcount=maxcount, vocab_info={"codebook_sizes": {"image": 16}}, **kwargs) as w:
        for i in range(n):
            w.write(f"{i:06d}", {"task": "pair", "text": f"caption {i}", "media": {"image0": "image"}},
                    {"image0": np.full(4, i, dtype=np.int16)})
    return sorted(directory.glob("*.tar"))


def test_write_read_round_trip_and_manifest(tmp_path):
    shards = write(tmp_path)
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert not list(tmp_path.glob("*.tmp"))  # atomic: nothing half-written left behind
    manifest = read_manifest(tmp_path)
    assert [s["samples"] for s in manifest["shards"]] == [3, 3, 1]
    assert manifest["num_samples"] == 7 and manifest["modalities"] == {"image": 7}
    assert manifest["vocab"] == {"codebook_sizes": {"image": 16}}
    samples = [s for shard in shards for s in read_shard(shard)]
    assert [s.key for s in samples] == [f"{i:06d}" for i in range(7)]
    assert samples[5].meta["text"] == "caption 5" and samples[5].media == {"image0": "image"}
    assert samples[5].codes["image0"].dtype == np.int16 and samples[5].codes["image0"].tolist() == [5] * 4
    assert [s.key for s in read_shard(shards[0], skip=2)] == ["000002"]


def test_maxsize_starts_new_shards(tmp_path):
    shards = write(tmp_path, n=4, maxcount=100, maxsize=300)  # ~200 payload bytes per sample
    assert len(shards) == 4


def test_media_names_must_match_arrays(tmp_path):
    with ShardWriter(tmp_path) as w, pytest.raises(ValueError, match="same items"):
        w.write("k", {"media": {"image0": "image"}}, {"image1": np.zeros(2, dtype=np.int16)})
    with ShardWriter(tmp_path / "b") as w, pytest.raises(TypeError, match="integers"):
        w.write("k", {"media": {"image0": "image"}}, {"image0": np.zeros(2, dtype=np.float32)})


def test_truncated_shard_is_counted_not_fatal(tmp_path):
    shard = write(tmp_path, n=6, maxcount=6)[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    stats = ReaderStats()
    with pytest.warns(UserWarning, match=str(shard)):
        samples = list(read_shard(shard, stats))
    assert 0 < len(samples) < 6
    assert stats.truncated_shards == 1 and stats.samples == len(samples)


def test_corrupt_and_out_of_range_samples_are_skipped_and_counted(tmp_path):
    with ShardWriter(tmp_path, maxcount=100) as w:
        w.write("good", {"text": "a", "media": {"image0": "image"}}, {"image0": np.arange(4, dtype=np.int16)})
        w.write("big", {"text": "b", "media": {"image0": "image"}}, {"image0": np.array([3, 16], dtype=np.int16)})
        w.write("alien", {"text": "c", "media": {"x0": "smell"}}, {"x0": np.array([1], dtype=np.int16)})
        w.write("good2", {"text": "d", "media": {"image0": "image"}}, {"image0": np.arange(4, dtype=np.int16)})
    # Corrupt one sample's json by hand: a tar member holding invalid JSON.
    import io
    import tarfile

    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "a") as tar:
        payload = b"{not json"
        info = tarfile.TarInfo("broken.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    stats = ReaderStats()
    with pytest.warns(UserWarning) as record:
        keys = [s.key for s in read_shard(shard, stats, codebook_sizes={"image": 16})]
    assert keys == ["good", "good2"]
    assert (stats.samples, stats.out_of_range, stats.corrupt) == (2, 2, 1)
    text = " ".join(str(r.message) for r in record)
    assert "sample big" in text and str(shard) in text and "[3, 16]" in text and "smell" in text
    assert "sample broken" in text


def test_missing_shards_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere/\\*.tar"):
        expand_shards(str(tmp_path / "nowhere/*.tar"))
    write(tmp_path)
    assert len(expand_shards(str(tmp_path))) == 3 == len(expand_shards(str(tmp_path / "*.tar")))
    assert json.loads((tmp_path / "manifest.json").read_text())["format_version"] == 1



@pytest.mark.parametrize("array", [np.arange(12, dtype=np.int16).reshape(3, 4),
                                   np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
                                   np.zeros((0,), np.int16), np.array(5, dtype=np.int64)])
def test_load_npy_reads_what_np_load_reads(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    ours, theirs = load_npy(data), np.load(io.BytesIO(data), allow_pickle=False)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape and (ours == theirs).all()
    assert ours.flags.f_contiguous == theirs.flags.f_contiguous and ours.flags.writeable
    if array.size:
        with pytest.raises(ValueError, match="smaller"):
            load_npy(data[:-1])
    with pytest.raises(ValueError, match="not a .npy"):
        load_npy(data[1:])
