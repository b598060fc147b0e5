"""Data boundaries (issue #23, item 2): a placeholder of no registered modality is a bad item (never literal text), a
modality without a tokenizer is a bad item, codes that break the codec's contract are refused at prepare naming the
codec class, and fit stops when prepare kept no sample of a configured modality."""

import json

import numpy as np
import pytest
import torch

from anygpt.cli import main
from anygpt.data.checks import code_problem, unknown_media_words
from anygpt.data.datamodule import AnyGPTDataModule
from anygpt.data.prepare import AnyInstruct, prepare
from anygpt.data.shards import expand_shards, read_shard
from anygpt.modalities.spec import SpanStructure
from anygpt.text_tokenizer import train_bpe_tokenizer
from tests.third_party.depth_modality import DepthCodec

RUN = dict(num_workers=0, accelerator="cpu", progress=False)


class OffByLevelsDepthCodec(DepthCodec):
    """A broken plugin codec: its codes are shifted past its own codebook."""

    def encode(self, items):
        return [c + self.levels for c in super().encode(items)]


class ShortDepthCodec(DepthCodec):
    """A broken plugin codec: 15 codes per item where its structure promises 16."""

    def encode(self, items):
        return [c[:15] for c in super().encode(items)]


def dialogues(root, *messages):
    (root / "scans").mkdir(exist_ok=True)
    np.save(root / "scans" / "0.npy", np.full((16, 16), 3.0, dtype=np.float32))
    rows = [{"id": f"d{i}", "conversation": [[{"role": "user", "message": m}, {"role": "assistant", "message": "ok"}]]}
            for i, m in enumerate(messages)]
    (root / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return AnyInstruct(str(root / "chat.jsonl"))


def report_of(out):
    return json.loads((out / "chat" / "prepare_report.json").read_text())["skipped"]


def test_unknown_media_words_are_bad_items_with_file_line_and_a_suggestion(tmp_path):
    DepthCodec().save_pretrained(tmp_path / "depth")
    source = dialogues(tmp_path, "What is in [depth: scans/0.npy]?", "What is in [dpeth: scans/0.npy]?",
                       "Trace [gaze: scans/0.npy] please", "[Note: prose in brackets] is text")
    summary = prepare({"chat": source}, {"depth": str(tmp_path / "depth")}, out=str(tmp_path / "out"), **RUN)["chat"]
    assert summary["samples"] == 2 and summary["skipped"] == 2
    report = {r["item"]: r["reason"] for r in report_of(tmp_path / "out")}
    assert set(report) == {f"{tmp_path / 'chat.jsonl'}:2", f"{tmp_path / 'chat.jsonl'}:3"}
    assert "[dpeth: scans/0.npy]" in report[f"{tmp_path / 'chat.jsonl'}:2"]
    assert "did you mean [depth: ...]" in report[f"{tmp_path / 'chat.jsonl'}:2"]
    assert "[gaze: scans/0.npy] names no registered modality" in report[f"{tmp_path / 'chat.jsonl'}:3"]
    texts = [s.meta["conversation"][0]["message"] for u in expand_shards(str(tmp_path / "out" / "chat"))
             for s in read_shard(u)]
    assert texts == ["What is in <media:m0>?", "[Note: prose in brackets] is text"]  # never literal placeholders


def test_unknown_media_words_leave_prose_alone():
    assert unknown_media_words("[Note: see above] and [image: cat.png]") == []
    assert len(unknown_media_words("[imgae: a cat]")) == 1  # close to a registered word: a typo, not prose
    assert len(unknown_media_words("[lidar: scan.pcd]")) == 1  # a file under an unknown word


def test_a_modality_without_tokenizer_is_a_bad_item_naming_the_option(tmp_path):
    source = dialogues(tmp_path, "What is in [depth: scans/0.npy]?")
    summary = prepare({"chat": source}, {}, out=str(tmp_path / "out"), **RUN)["chat"]
    assert summary["samples"] == 0 and summary["skipped"] == 1
    row, = report_of(tmp_path / "out")
    assert row["modality"] == "depth" and str(tmp_path / "scans" / "0.npy") in row["reason"]
    assert "no tokenizer configured for modality 'depth'" in row["reason"] and "--tokenizers.depth" in row["reason"]


@pytest.mark.parametrize(("codec", "says"), [
    (OffByLevelsDepthCodec, "returned codes in [20, 20], outside its codebook [0, 16)"),
    (ShortDepthCodec, "returned 15 codes for an item, but its structure says exactly 16")])
def test_prepare_refuses_codes_outside_the_codec_contract_and_fit_stops(tmp_path, codec, says, capsys):
    codec().save_pretrained(tmp_path / "depth")
    source = dialogues(tmp_path, "What is in [depth: scans/0.npy]?", "Only text here.")
    summary = prepare({"chat": source}, {"depth": str(tmp_path / "depth")}, out=str(tmp_path / "out"), **RUN)["chat"]
    assert summary["samples"] == 1 and summary["skipped"] == 1
    row, = report_of(tmp_path / "out")
    assert row["modality"] == "depth" and f"tests.data.test_checks.{codec.__name__}.encode {says}" in row["reason"]

    # fit: the configured depth modality has no usable sample left, so training would fit the text alone
    train_bpe_tokenizer(["What is in it?", "Only text here.", "ok"] * 10, 300, tmp_path / "text")
    with pytest.raises(ValueError, match="no usable 'depth' sample in the training shards") as err:
        AnyGPTDataModule(str(tmp_path / "text"), [DepthCodec()], [{"shards": str(tmp_path / "out" / "chat")}])
    assert codec.__name__ in str(err.value) and "prepare_report.json" in str(err.value)
    # through anygpt fit: one line naming the cause, no traceback
    (tmp_path / "fit.yaml").write_text(f"""
trainer: {{accelerator: cpu, max_steps: 1, logger: false, enable_checkpointing: false}}
model: {{class_path: anygpt.model.lm.AnyGPTLM, init_args: {{model: tiny}}}}
data:
  class_path: anygpt.data.datamodule.AnyGPTDataModule
  init_args:
    text_tokenizer: {tmp_path / 'text'}
    modalities: [{{class_path: tests.third_party.depth_modality.DepthCodec}}]
    sources: [{{shards: {tmp_path / 'out' / 'chat'}}}]
""")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(tmp_path / "fit.yaml")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "anygpt fit: error: no usable 'depth' sample" in err and codec.__name__ in err and "Traceback" not in err
    # a modality merely configured, of which prepare skipped nothing (a text-only stage), still trains
    image = {"name": "image", "codebook_size": 8, "markers": ["<soim>", "<eoim>"], "token_format": "<im{}>"}
    AnyGPTDataModule(str(tmp_path / "text"), [image], [{"shards": str(tmp_path / "out" / "chat")}])


def test_code_problem_follows_the_structure():
    codec = DepthCodec()
    assert code_problem(codec, codec.encode([torch.zeros(16, 16)])[0]) is None
    assert "not integers" in code_problem(codec, torch.zeros(16))
    assert "returned no codes" in code_problem(codec, torch.zeros(0, dtype=torch.long))

    class Cycled(DepthCodec):
        structure = SpanStructure(cycle=((0, 8), (8, 16)))

    assert "code 3 at position 1" in code_problem(Cycled(), torch.tensor([1, 3]))
    assert "not whole cycles of 2" in code_problem(Cycled(), torch.tensor([1, 9, 2]))
    assert code_problem(Cycled(), torch.tensor([1, 9, 2, 15])) is None
