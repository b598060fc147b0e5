"""Plugin sources through real entry points: an installed distribution (a dist-info folder on sys.path) registers a
`RawSource` under ``anygpt.sources``; ``anygpt prepare`` lists it, and a config names it (and a built-in source) by its
registered name. Clashes and broken plugins are refused with a message naming the entry point, never a traceback."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from anygpt.cli import main
from anygpt.data.shards import expand_shards, read_shard
from anygpt.data.sources.registry import ENTRY_POINT_GROUP, SourceRegistryError, available, load_source

PLUGIN = '''
import numpy as np

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import RawItem
from anygpt.data.sources.raw import RawSource


class CountingCodes(RawSource):
    """Pairs of a number's name and codes already made (so prepare needs no tokenizer)."""

    name = "counting"

    def __init__(self, count: int = 3) -> None:
        self.count = count

    def codebook_sizes(self):
        return {"image": 8192}

    def chunks(self, chunk_size, report):
        items = [RawItem(f"counting-{i}", ShardSample("pair", text=f"number {i}", source=self.name),
                         {"image0": ("image", np.full(4, i, dtype=np.int16))}) for i in range(self.count)]
        return self.split_list(items, chunk_size)


class NotASource:
    pass
'''


def install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution in ``site``: its modules and a dist-info with METADATA and entry points."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_help_lists_built_in_and_plugin_sources(site, capsys):
    install(site, "counting-plugin", {"CountingCodes": "counting_plugin:CountingCodes"}, {"counting_plugin": PLUGIN})
    with pytest.raises(SystemExit) as done:
        main(["prepare", "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "built-in CocoKarpathy," in out and "ReleasePairs" in out
    assert "CountingCodes (counting_plugin:CountingCodes of counting-plugin)" in out
    assert available()["CountingCodes"].plugin == "the package counting-plugin"


def test_a_config_names_plugin_and_built_in_sources_by_name(site, tmp_path):
    install(site, "counting-plugin", {"CountingCodes": "counting_plugin:CountingCodes"}, {"counting_plugin": PLUGIN})
    pairs = tmp_path / "pairs.jsonl"
    image = "<soim>" + "".join(f"<👀{c}>" for c in range(32)) + "<eoim>"  # SEED's 32 codes, the codec's structure
    pairs.write_text(json.dumps({"text": "a cat", "image": image}, ensure_ascii=False) + "\n")
    config = tmp_path / "prepare.yaml"
    config.write_text(textwrap.dedent(f"""\
        sources:
          counting: {{class_path: CountingCodes, init_args: {{count: 3}}}}
          pairs: {{class_path: ReleasePairs, init_args: {{paths: {pairs}}}}}
        tokenizers: {{}}
        out: {tmp_path / 'shards'}
        num_workers: 0
        accelerator: cpu
        progress: false
        """))
    main(["prepare", "--config", str(config)])
    counted = [s for url in expand_shards(str(tmp_path / "shards" / "counting")) for s in read_shard(url)]
    assert sorted(s.text for s in counted) == ["number 0", "number 1", "number 2"]
    assert all(np.array_equal(s.codes["image0"], np.full(4, int(s.text[-1]))) for s in counted)
    [pair] = [s for url in expand_shards(str(tmp_path / "shards" / "pairs")) for s in read_shard(url)]
    assert pair.text == "a cat" and pair.codes["image0"].tolist() == list(range(32))


def test_a_plugin_source_is_refused_a_built_in_name_naming_both(site, capsys):
    install(site, "shadow-plugin", {"CocoKarpathy": "counting_plugin:CountingCodes"}, {"counting_plugin": PLUGIN})
    with pytest.raises(SystemExit) as done:
        main(["prepare", "--help"])
    message = str(done.value.code)
    assert "entry point CocoKarpathy = 'counting_plugin:CountingCodes' of the package shadow-plugin" in message
    assert "the built-in source 'CocoKarpathy' (anygpt.data.sources.coco:CocoKarpathy)" in message


def test_broken_plugins_are_named_not_a_traceback(site, capsys):
    install(site, "broken-plugin", {"Broken": "broken_plugin:Broken"},
            {"broken_plugin": "import a_module_that_is_not_installed\n"})
    with pytest.raises(SystemExit) as done:
        main(["prepare", "--help"])
    message = str(done.value.code)
    assert message.startswith("anygpt prepare: error: the anygpt.sources entry point Broken = 'broken_plugin:Broken' "
                              "of the package broken-plugin could not be loaded: ModuleNotFoundError")
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("name", "target", "why"), [
    ("NotASource", "counting_plugin:NotASource", "not a subclass of anygpt.data.sources.raw.RawSource"),
    ("Counting", "counting_plugin:CountingCodes", "the entry point's name must be the class's name"),
])
def test_a_plugin_that_is_no_usable_source_is_refused(site, name, target, why):
    install(site, "odd-plugin", {name: target}, {"counting_plugin": PLUGIN})
    with pytest.raises(SourceRegistryError, match=why):
        load_source(name)


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(SourceRegistryError, match="unknown source 'Coco'; known sources: CocoKarpathy, JourneyDB"):
        load_source("Coco")
