"""NativeBf16Mixed: bf16 autocast where the hardware has bf16, fp32 elsewhere, decided when the trainer is built."""

import platform

import lightning.pytorch as pl
import pytest
import torch

from anygpt.model import precision
from anygpt.model.precision import NativeBf16Mixed, has_native_bf16


def test_x86_detection_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for avx512_bf16, amx, expected in [(True, False, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert has_native_bf16("cpu") is expected


def test_arm_detection_reads_the_bf16_feature(monkeypatch, tmp_path):
    with_bf16 = tmp_path / "with"
    with_bf16.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\n")
    without = tmp_path / "without"
    without.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve svebf16x\n")  # no plain bf16 entry
    assert precision._arm_cpu_has_bf16(with_bf16)
    assert not precision._arm_cpu_has_bf16(without)
    assert not precision._arm_cpu_has_bf16(tmp_path / "missing")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert not has_native_bf16("cpu")  # no reliable probe there: fp32, the safe side


def test_other_devices_are_fp32_and_cuda_without_a_gpu_is_not_bf16():
    assert not has_native_bf16("meta")
    if not torch.cuda.is_available():
        assert not has_native_bf16("cuda")


class _RecordsDtype(pl.LightningModule):
    """One linear layer; remembers the dtype its forward computed in."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)
        self.seen: list[torch.dtype] = []

    def training_step(self, batch, batch_idx):
        out = self.layer(batch[0])
        self.seen.append(out.dtype)
        return out.float().pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 8)), batch_size=4)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize(("native", "expected_precision", "expected_dtype"),
                         [(True, "bf16-mixed", torch.bfloat16), (False, "32-true", torch.float32)])
def test_the_trainer_computes_in_the_chosen_precision(native, expected_precision, expected_dtype, tmp_path):
    model = _RecordsDtype()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=2, plugins=[NativeBf16Mixed("cpu", native=native)],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    assert trainer.precision == expected_precision
    trainer.fit(model)
    assert model.seen == [expected_dtype, expected_dtype]
    assert model.layer.weight.dtype == torch.float32  # master weights stay fp32 either way


def test_detection_runs_when_not_forced(monkeypatch):
    monkeypatch.setattr(precision, "has_native_bf16", lambda device: False)
    assert NativeBf16Mixed("cpu").precision == "32-true"
    monkeypatch.setattr(precision, "has_native_bf16", lambda device: True)
    assert NativeBf16Mixed("cpu").precision == "bf16-mixed"
