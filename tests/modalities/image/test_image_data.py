"""`find_images` reads a tokenizer's Karpathy json through the prepare reader (`read_coco_karpathy`, captions
optional): the same split rules and root containment as ``anygpt prepare``."""

import json
import logging

from PIL import Image

from anygpt.modalities.image.data import find_images


def test_a_karpathy_json_without_captions_is_read_with_prepare_rules(tmp_path, caplog):
    (tmp_path / "imgs").mkdir()
    for name in ("a", "b", "c", "d"):
        Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / f"{name}.png")
    Image.new("RGB", (4, 4)).save(tmp_path.parent / "outside.png")
    entries = [{"filepath": "imgs", "filename": "a.png", "split": "train"},
               {"filepath": "imgs", "filename": "b.png", "split": "restval"},  # restval trains, as in prepare
               {"filepath": "imgs", "filename": "c.png"},  # no split: train
               {"filepath": "imgs", "filename": "d.png", "split": "val", "sentences": [{"raw": "a dot"}]},
               {"filepath": "..", "filename": "outside.png", "split": "train"},  # leaves the root: never read
               {"filepath": "imgs", "filename": "missing.png", "split": "train"}]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    with caplog.at_level(logging.WARNING):
        train = find_images(tmp_path, split="train")
    assert [p.name for p in train] == ["a.png", "b.png", "c.png"]
    assert "leaves the dataset root" in caplog.text and "missing.png" in caplog.text
    assert [p.name for p in find_images(tmp_path, split="val")] == ["d.png"]


def test_a_folder_without_json_splits_by_name_hash(tmp_path):
    for k in range(40):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{k:03d}.png")
    train, val = find_images(tmp_path, split="train"), find_images(tmp_path, split="val")
    assert len(train) + len(val) == 40 and val and not set(train) & set(val)
