"""Both tokenizers train through Lightning on a LibriSpeech-style tree (a few steps), and export for use."""

import lightning as L
import torch

from anygpt.modalities.registry import load_modality
from anygpt.modalities.speech import SoundStorm, SpeechTokenizerCodec, TinySpeechCodec
from anygpt.modalities.speech.data import SoundStormDataModule, SpeechDataModule
from anygpt.modalities.speech.training import SoundStormTrainer, SpeechTokenizerTrainer

PHONES = ["_", "a", "s", "n", "t"]
SMALL = {"n_filters": 4, "dimension": 16, "lstm_layers": 1, "codebook_size": 32, "semantic_dimension": len(PHONES)}


def trainer(tmp_path, steps):
    return L.Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=1, val_check_interval=steps,
                     check_val_every_n_epoch=None, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)


def test_tokenizer_then_soundstorm_train_and_export(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    speech = SpeechTokenizerTrainer(TinySpeechCodec(config=SMALL), semantic_teacher="phones", phones=PHONES, lr=1e-3,
                                    mel_scales=(256, 1024))
    data = SpeechDataModule(str(tiny_corpus), hop_length=640, segment_seconds=0.64, phones=PHONES, batch_size=2)
    before = {k: v.clone() for k, v in speech.state_dict().items()}
    fit = trainer(tmp_path / "tok", 3)
    fit.fit(speech, data)
    assert torch.isfinite(fit.callback_metrics["train/loss"])
    assert "val/phone_accuracy" in fit.callback_metrics
    changed = [k for k, v in speech.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("codec.model.encoder") for k in changed) and any("_codebook.embed" in k for k in changed)
    exported = tmp_path / "tok" / "pretrained"
    assert (exported / "model.safetensors").exists()

    storm_data = SoundStormDataModule(str(tiny_corpus), tokenizer=str(exported), segment_frames=20, batch_size=2)
    storm = SoundStormTrainer(SoundStorm(codebook_size=32, num_quantizers=7, num_semantic_tokens=32, dim=16, depth=1,
                                         heads=2, dim_head=8, ff_mult=2, conv_kernel_size=3), warmup_steps=1)
    fit = trainer(tmp_path / "storm", 3)
    fit.fit(storm, storm_data)
    assert torch.isfinite(fit.callback_metrics["train/loss"]) and "val/accuracy" in fit.callback_metrics
    assert storm_data.pad_id == 32 and storm_data.train_set[0].shape[1] == 8

    # the exported pair decodes level-1 tokens to audio
    speech = load_modality(exported, SpeechTokenizerCodec, soundstorm=str(tmp_path / "storm" / "pretrained"))
    assert type(speech.codec) is TinySpeechCodec
    wav = speech.read(next(tiny_corpus.rglob("*.flac")))
    tokens = speech.codec.encode([wav])[0]
    assert speech.codec.decode([tokens])[0].shape == (1, tokens.numel() * 640)
