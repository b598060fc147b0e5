"""`DemoDataModule` argument checks that must fire before the demo data is built."""

import pytest

from anygpt.data.demo.datamodule import DemoDataModule


@pytest.mark.parametrize("kwargs", [{"weights": {"video": 1.0}}, {"x2text_prob": {"images": 0.3}}])
def test_unknown_sources_are_named_before_anything_is_built(tmp_path, kwargs):
    with pytest.raises(ValueError, match="unknown demo source.*the demo sources are image, speech, music, dialogue"):
        DemoDataModule(root=str(tmp_path / "demo"), **kwargs)
    assert not (tmp_path / "demo").exists()
