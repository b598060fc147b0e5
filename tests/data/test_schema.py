"""`ShardSample`: shards written the way an older ``anygpt prepare`` wrote them (``task``, ``conversation``, a
per-sample ``x2text_prob``, keys nothing reads) still read, as the same typed samples, and render to the same tokens as
the shards written now."""

import random
import warnings

import numpy as np
import pytest

from anygpt.data.schema import ShardSample
from anygpt.data.shards import ShardWriter, expand_shards, read_shard
from anygpt.data.tiny import TINY_MODALITIES, make_tokenizer
from anygpt.modalities.registry import configured_modality
from anygpt.prompts import TemplateRenderer
from anygpt.text_tokenizer import load_text_tokenizer
from anygpt.vocab import UnifiedVocab

CODES = {"image0": np.array([1, 2, 3], dtype=np.int16), "speech0": np.array([[4, 5], [6, 7]], dtype=np.int16),
         "m0": np.array([8, 9], dtype=np.int16)}
TURNS = [{"role": "user", "message": "What is <media:m0>?"}, {"role": "assistant", "message": "a dog"}]
# (what an older prepare stored, the same sample now)
OLD_AND_NEW = [
    ({"task": "caption", "text": ["a dog", "a brown dog"], "source": "coco", "id": 7, "x2text_prob": 1.0,
      "media": {"image0": "image"}},
     ShardSample("pair", text=["a dog", "a brown dog"], media={"image0": "image"}, source="coco", id=7)),
    ({"task": "asr", "text": "hello there", "source": "mls", "id": "u1", "speaker": "4800",
      "all_levels": ["speech0"], "media": {"speech0": "speech"}},
     ShardSample("pair", text="hello there", media={"speech0": "speech"}, all_levels=["speech0"], source="mls",
                 id="u1")),
    ({"task": "conversation", "conversation": [TURNS], "source": "anyinstruct", "id": "d1", "media": {"m0": "image"},
      "system": "Be brief."},
     ShardSample("conversation", turns=[TURNS], system="Be brief.", media={"m0": "image"}, source="anyinstruct",
                 id="d1")),
    ({"task": "interleaved", "text": "A page. <media:image0> The end.", "source": "mmc4", "id": "doc-1",
      "url": "http://example.com", "media": {"image0": "image"}},
     ShardSample("interleaved", text="A page. <media:image0> The end.", media={"image0": "image"}, source="mmc4",
                 id="doc-1")),
]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    text = load_text_tokenizer(make_tokenizer(tmp_path_factory.mktemp("tok")))
    return UnifiedVocab(text, [configured_modality(m)[0] for m in TINY_MODALITIES])


def write(directory, metas):
    with ShardWriter(directory) as writer:
        for k, meta in enumerate(metas):
            writer.write(f"{k:06d}", meta, {name: CODES[name] for name in meta["media"]})
    return [s for url in expand_shards(str(directory)) for s in read_shard(url)]


def test_old_shards_read_as_the_typed_samples_and_render_the_same_tokens(tmp_path, vocab):
    old = write(tmp_path / "old", [o for o, _ in OLD_AND_NEW])
    new = write(tmp_path / "new", [n.to_json() for _, n in OLD_AND_NEW])
    for before, now, (meta, expected) in zip(old, new, OLD_AND_NEW, strict=True):
        for sample in (before, now):
            assert (sample.kind, sample.text, sample.turns, sample.system, sample.media, sample.all_levels,
                    sample.source, sample.id) == (expected.kind, expected.text, expected.turns, expected.system,
                                                  expected.media, expected.all_levels, expected.source, expected.id)
        assert before.stale_direction == ("x2text_prob" in meta) and not now.stale_direction
        renderer = TemplateRenderer(vocab, add_bos_eos=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for train_on in ("all", "assistant"):
                a = renderer.render(before, random.Random(3), 0.5, train_on)
                b = renderer.render(now, random.Random(3), 0.5, train_on)
                assert (a.ids, a.mask) == (b.ids, b.mask)
        assert any("no longer read" in str(w.message) for w in caught) == before.stale_direction


def test_the_new_layout_holds_only_what_is_read():
    pair, speech, chat, document = (n.to_json() for _, n in OLD_AND_NEW)
    assert pair == {"kind": "pair", "text": ["a dog", "a brown dog"], "media": {"image0": "image"}, "source": "coco",
                    "id": 7}
    assert speech["all_levels"] == ["speech0"] and "speaker" not in speech and "task" not in speech
    assert set(chat) == {"kind", "turns", "system", "media", "source", "id"}
    assert "url" not in document and document["kind"] == "interleaved"
    with pytest.raises(ValueError, match="kind 'caption' is none of"):
        ShardSample.from_json({"kind": "caption", "text": "x"})
