"""`DemoDataModule` argument checks that must fire before the demo data is built."""

import pytest

from anygpt.data.demo.datamodule import DemoDataModule


@pytest.mark.parametrize("kwargs", [{"weights": {"video": 1.0}}, {"x2text_prob": {"images": 0.3}}])
def test_unknown_sources_are_named_before_anything_is_built(tmp_path, kwargs):
    with pytest.raises(ValueError, match="unknown demo source.*the demo sources are image, speech, music, dialogue"):
        DemoDataModule(root=str(tmp_path / "demo"), **kwargs)
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_the_vocabulary_is_made_at_construction_and_the_shards_in_prepare_data(tmp_path):
    """The model's size is linked to the vocabulary, so the corpus and its BPE exist once the module does; the
    minutes of tokenization wait for Lightning's prepare_data (one process per node), and setup checks the shards."""
    root = tmp_path / "demo"
    data = DemoDataModule(root=str(root), scale=0.005, batch_size=2, max_length=128, prepare_workers=0)
    assert (root / "text_tokenizer/tokenizer.json").exists() and len(data.vocab) > 0
    assert not (root / "shards").exists() and not data.shards_ready()
    data.prepare_data()
    assert data.shards_ready() and (root / "shards/speech-train/manifest.json").exists()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["input_ids"].shape == (2, 128)
    again = DemoDataModule(root=str(root), scale=0.005, batch_size=2, max_length=128, prepare_workers=0)
    assert again.shards_ready()  # made once: a second run finds them
