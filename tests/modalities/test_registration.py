"""Registration is checked: clashes are refused when a modality is registered, naming both sides (issue 23.1)."""

import importlib.util
from pathlib import Path

import pytest

from anygpt.cli import main
from anygpt.data.datamodule import AnyGPTDataModule, Source
from anygpt.data.tiny import TINY_MODALITIES, write_tiny_corpus
from anygpt.modalities import registry
from anygpt.modalities.registry import available_modalities, meta_codec, modality_spec, register_modality
from anygpt.modalities.spec import ModalitySpecError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("args", "message"), [
    (("image", ("<soX>", "<eoX>"), "<X{}>"), r"modality 'image' .*clashes with the registered modality 'image' "
                                               r"\(registered by anygpt.modalities.registry\): the name is taken"),
    (("sound", ("<soX>", "<eoX>"), "<X{}>", "audio", None, ("audio",)), r"'sound' .*clashes with the registered "
                                                                         r"modality 'music'.*word 'audio'"),
    (("audio", ("<soX>", "<eoX>"), "<X{}>"), r"'audio' .*clashes with .*'music'.*word 'audio'"),
    (("sight", ("<soim>", "<eoX>"), "<X{}>"), r"'sight' .*clashes with .*'image'.*marker '<soim>' is already"),
    (("sight", ("<👀7>", "<eoX>"), "<X{}>"), r"'sight' .*clashes with .*'image'.*marker '<👀7>' is one of its code"),
    (("sight", ("<soX>", "<eoX>"), "<👀{}>"), r"'sight' .*clashes with .*'image'.*token format '<👀{}>'"),
    (("sight", ("<soX>", "<eoX>"), "<👀1{}>"), r"'sight' .*clashes with .*'image'.*writes the same tokens"),
    (("sight", ("<soX>", "<eoX>"), "<X>"), r"token_format '<X>' must hold exactly one '{}'"),
    (("sight", ("<soX>", "<soX>"), "<X{}>"), r"must be two different tokens"),
    (("sight", ("<soX>", "<eoX>"), "<X{}>", "video"), r"unknown media kind 'video'"),
    (("sight", ("[Human]", "<eoX>"), "<X{}>"), r"marker '\[Human\]' is one of anygpt's special tokens"),
    (("sight", ("<X3>", "<eoX>"), "<X{}>"), r"marker '<X3>' is also one of its own code tokens"),
])
def test_a_clash_is_refused_at_registration_naming_both(args, message):
    before = {name: modality_spec(name) for name in ("image", "speech", "music")}
    with pytest.raises((ModalitySpecError, KeyError), match=message):
        register_modality(*args)
    assert "sight" not in available_modalities() and "sound" not in available_modalities()
    assert {name: modality_spec(name) for name in before} == before  # the built-ins are untouched
    assert modality_spec("image").markers == ("<soim>", "<eoim>") and modality_spec("audio").name == "music"


def test_registering_the_same_plugin_twice_is_harmless():
    first = register_modality("jetstream", ("<sojs>", "<eojs>"), "<js{}>", "array", aliases=("jet",))
    assert register_modality("jetstream", ("<sojs>", "<eojs>"), "<js{}>", "array", aliases=("jet",)) is first
    with pytest.raises(ModalitySpecError, match="'jetstream'.*the name is taken"):
        register_modality("jetstream", ("<sojs>", "<eojs>"), "<jet{}>", "array")
    # the same plugin module imported again under another name (a second sys.path entry): nothing changes
    path = ROOT / "tests" / "third_party" / "depth_modality.py"
    for alias in ("depth_modality_copy_a", "depth_modality_copy_b"):
        spec = importlib.util.spec_from_file_location(alias, path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert modality_spec("depth").markers == ("<sodp>", "<eodp>")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The tiny corpus as ``data/tiny`` of a fresh folder (where experiments/tiny/pretrain.yaml looks from there)."""
    return write_tiny_corpus(tmp_path_factory.mktemp("clash") / "data" / "tiny")


CLASHING = {"name": "radar", "codebook_size": 4, "markers": ["<soim>", "<eord>"], "token_format": "<rd{}>"}


def test_clashing_configured_modalities_name_both(corpus):
    with pytest.raises(ModalitySpecError, match=r"'<soim>' is claimed twice.*modality 'image' \(marker\) and by "
                                                r"modality 'radar' \(marker\)"):
        AnyGPTDataModule(str(corpus / "tokenizer"), [*TINY_MODALITIES, CLASHING],
                         [Source(str(corpus / "shards" / "image"))])


def test_fit_with_clashing_markers_is_one_clear_line(corpus, capsys, monkeypatch):
    monkeypatch.chdir(corpus.parent.parent)
    sized = []
    monkeypatch.setattr(registry, "meta_codec", lambda cls, **kw: sized.append(cls.__name__) or meta_codec(cls, **kw))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "experiments" / "tiny" / "pretrain.yaml"), "--trainer.max_steps", "1",
              "--data.init_args.modalities+", '{name: radar, codebook_size: 4, markers: [<soim>, <eord>], '
              'token_format: "<rd{}>"}'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "anygpt fit: error: token '<soim>' is claimed twice" in err
    assert "modality 'image' (marker) and by modality 'radar' (marker)" in err
    assert "Traceback" not in err and "Union subtypes" not in err
    assert sized == ["TinyMusicCodec"]  # the config's codec was sized on the meta device, not built with weights


def test_fit_with_an_unknown_modality_suggests_the_close_one(corpus, capsys, monkeypatch):
    monkeypatch.chdir(corpus.parent.parent)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "experiments" / "tiny" / "pretrain.yaml"), "--trainer.max_steps", "1",
              "--data.init_args.modalities+", "musci"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "anygpt fit: error: Unknown modality 'musci'. Did you mean 'music'?" in err
    assert "Traceback" not in err


def test_installed_modality_plugins_are_read_once_per_sys_path(tmp_path, monkeypatch):
    """Media placeholders are parsed in every message of every dataset row: the installed entry points are scanned
    once (AnyInstruct's 2,600 demo dialogues took 123 s when each message scanned them, 0.2 s now), and a plugin
    installed on a new ``sys.path`` entry is still found."""
    from anygpt.data.sources.base import parse_media

    calls = []
    real = registry.entry_points
    monkeypatch.setattr(registry, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    registry._installed_plugins.cache_clear()
    for i in range(200):
        [ref] = parse_media(f"look at [image: {i}.png]", tmp_path)
        assert ref.modality == "image"
    assert len(calls) == 1
    site = tmp_path / "site"
    info = site / "thermal_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thermal-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nthermal = thermal_plugin:SPEC\n")
    (site / "thermal_plugin.py").write_text(
        "from anygpt.modalities.spec import ModalitySpec\n"
        "SPEC = ModalitySpec('thermal', None, ('<soth>', '<eoth>'), '<th{}>', 'image')\n")
    monkeypatch.syspath_prepend(str(site))
    assert "thermal" in available_modalities() and len(calls) == 2
    assert modality_spec("thermal").markers == ("<soth>", "<eoth>")
    registry._REGISTRY.pop("thermal", None)
