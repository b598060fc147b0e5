"""The speech codec: registry, reading files and bad input, level-1 tokens, voice cloning path, save/load, data."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from anygpt.media import MediaError, read_audio
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import codec_class, modality_for
from anygpt.modalities.speech import SoundStorm, SpeechTokenizerCodec, TinySpeechCodec
from anygpt.modalities.speech.data import SpeechSegments, frame_phones

SMALL = {"n_filters": 4, "dimension": 16, "lstm_layers": 1, "codebook_size": 32}


@pytest.fixture(scope="module")
def speech():
    torch.manual_seed(0)
    return TinySpeechCodec(config=SMALL).eval()


def test_registered_as_speech_with_release_identity(speech):
    assert codec_class("speech") is SpeechTokenizerCodec
    modality = modality_for(speech)  # same markers/vocabulary slot as the paper's, smaller codebook
    assert modality.spec.markers == ("<sosp>", "<eosp>") and modality.spec.code_token(7) == "<🗣️7>"
    assert modality.media.name == "audio" and TinySpeechCodec.modality == "speech"


def test_paper_configuration_is_50hz_1024_codes():
    with torch.device("meta"):
        paper = SpeechTokenizerCodec()
    assert paper.codebook_size == 1024 and paper.frame_rate == 50.0 and paper.config.n_q == 8


def test_tiny_configuration_is_25hz(speech):
    assert speech.frame_rate == 25.0 and speech.codebook_size == 32


@pytest.mark.parametrize("rate", [8000, 22050, 24000, 44100, 48000])
def test_read_resamples_any_rate(tmp_path, rate):
    t = np.arange(rate) / rate
    sf.write(tmp_path / "a.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    wav = read_audio(tmp_path / "a.wav", 16000, min_samples=640)
    assert wav.shape == (1, 16000)
    spectrum = torch.fft.rfft(wav[0]).abs()
    assert abs(int(spectrum.argmax()) - 440) <= 1  # the tone survives at the right frequency


def test_read_averages_stereo_and_reads_bytes(tmp_path, speech):
    stereo = np.stack([np.full(16000, 0.2), np.full(16000, 0.4)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.flac", stereo, 16000)
    wav = modality_for(speech).read((tmp_path / "s.flac").read_bytes())
    assert wav.shape == (1, 16000) and torch.allclose(wav, torch.full_like(wav, 0.3), atol=1e-3)


def test_bad_files_raise_errors_naming_the_file(tmp_path, speech):
    (tmp_path / "corrupt.flac").write_bytes(b"not audio at all" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "silence0.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)  # < one 640-sample frame
    for name in ("corrupt.flac", "empty.wav", "silence0.wav", "short.wav", "missing.wav"):
        with pytest.raises(MediaError, match=name):
            modality_for(speech).read(tmp_path / name)


def test_encode_is_level_one_and_flatten_round_trips(speech):
    wav = torch.randn(1, 16000) * 0.1
    full = speech.encode_all_levels([wav])[0]
    assert full.shape == (8, 25)
    codes = speech.encode([wav])[0]
    assert torch.equal(codes, full[0]) and codes.max() < speech.codebook_size
    assert torch.equal(speech.unflatten(speech.flatten(codes)), codes)
    with pytest.raises(ValueError, match="fewer than one frame"):
        speech.encode([torch.zeros(1, 10)])


def test_batched_encoding_equals_one_by_one(speech):
    items = [torch.randn(1, 16000) * 0.1, torch.randn(1, 12800) * 0.1, torch.randn(1, 16000) * 0.1]
    batched = speech.encode_all_levels(items)
    for item, codes in zip(items, batched, strict=True):
        assert torch.equal(codes, speech.encode_all_levels([item])[0])


def test_decode_level_one_needs_soundstorm_and_uses_it(speech, tmp_path):
    codes = torch.randint(0, 32, (20,))
    with pytest.raises(RuntimeError, match="SoundStorm"):
        speech.decode([codes])
    storm = SoundStorm(codebook_size=32, num_quantizers=7, num_semantic_tokens=32, dim=16, depth=1, heads=2,
                       dim_head=8, ff_mult=2, conv_kernel_size=3)
    storm.save_pretrained(tmp_path / "storm")
    speech.attach_soundstorm(SoundStorm.from_pretrained(tmp_path / "storm"))
    wav = speech.decode([codes])[0]
    assert wav.shape == (1, 20 * 640)
    full = speech.encode_all_levels([torch.randn(1, 16000) * 0.1])[0]
    assert speech.decode([full])[0].shape == (1, 16000)  # full codes bypass SoundStorm
    # voice cloning with a prompt longer than the speech: trimmed to prompt_seconds, output length follows the codes
    prompt = torch.randn(1, 16000 * 4) * 0.1
    assert speech.prompt_codes(prompt).shape == (math.ceil(speech.prompt_seconds * 25), 8)
    cloned = speech.decode([codes[:5]], voice=prompt, steps=2)[0]  # voice cloning is decode's second stage
    assert cloned.shape == (1, 5 * 640)
    g = torch.Generator().manual_seed(3)
    a = speech.decode([codes[:5]], voice=prompt, generator=g)[0]
    b = speech.decode([codes[:5]], voice=prompt, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="codes must lie"):
        speech.decode([torch.tensor([0, 99])])
    assert speech.decode([torch.zeros(0, dtype=torch.long)])[0].numel() == 0
    speech._soundstorm.clear()


def test_mismatched_soundstorm_is_rejected(speech):
    storm = SoundStorm(codebook_size=1024, num_quantizers=7, dim=16, depth=1, heads=2, dim_head=8)
    with pytest.raises(ValueError, match="levels"):
        speech.attach_soundstorm(storm)


def test_save_and_from_pretrained_rebuild_the_tiny_class(tmp_path, speech):
    speech.save_pretrained(tmp_path / "tok")
    loaded = Codec.from_pretrained(tmp_path / "tok")
    again = SpeechTokenizerCodec.from_pretrained(tmp_path / "tok")
    assert type(loaded) is TinySpeechCodec and type(again) is TinySpeechCodec
    wav = torch.randn(1, 8000) * 0.1
    assert torch.equal(loaded.encode([wav])[0], speech.encode([wav])[0])


def test_frame_phone_labels():
    alignment = [("a", 0.0), ("b", 0.1), ("c", 0.25)]
    labels = frame_phones(alignment, 8, 0.04, ["_", "a", "b", "c"])
    # frame centres 0.02, 0.06, 0.10, 0.14, 0.18, 0.22, 0.26, 0.30
    assert labels.tolist() == [1, 1, 2, 2, 2, 2, 3, 3]
    assert frame_phones([("zz", 0.0)], 2, 0.04, ["_", "a"]).tolist() == [0, 0]  # unknown -> class 0


def test_dataset_skips_and_counts_bad_files(tiny_corpus, tmp_path):
    import shutil

    root = tmp_path / "ls"
    shutil.copytree(tiny_corpus, root)
    (root / "train-clean-100" / "103" / "1240" / "103-1240-0099.flac").write_bytes(b"garbage")
    data = SpeechSegments(root, "train-clean-100", 16000, 640, 1.0, phones=["_", "a", "s", "n", "t"])
    items = [data[i] for i in range(len(data))]
    assert len(data.skipped) == 1 and "0099" in data.skipped[0]
    assert all(item["audio"].shape == (1, 16000) for item in items)
    assert all((item["phones"] >= -100).all() and item["phones"].max() < 5 for item in items)
    assert any((item["phones"] > 0).any() for item in items)


def test_a_split_with_no_readable_file_is_named_and_each_bad_file_counted_once(tmp_path):
    split = tmp_path / "ls" / "train-clean-100" / "1" / "2"
    split.mkdir(parents=True)
    for name in ("1-2-0000.flac", "1-2-0001.flac", "1-2-0002.flac"):
        (split / name).write_bytes(b"garbage")
    data = SpeechSegments(tmp_path / "ls", "train-clean-100", 16000, 640, 1.0)
    with pytest.raises(MediaError, match="no readable audio file among 3 files"):
        data[1]
    assert sorted(path[-9:] for path in data.skipped) == ["0000.flac", "0001.flac", "0002.flac"]
