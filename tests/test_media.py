"""anygpt.media: one reader/writer per media kind, one error type that names the file."""

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from anygpt.media import (
    MEDIA_KINDS,
    MediaError,
    audio_info,
    image_to_tensor,
    media_kind,
    read_array,
    read_audio,
    read_audio_with_rate,
    read_image,
    to_mono,
    write_array,
    write_audio,
    write_image,
)


def test_audio_is_mixed_to_mono_and_resampled(tmp_path):
    t = np.linspace(0, 1, 22050, endpoint=False, dtype=np.float32)
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1) * 0.5
    sf.write(tmp_path / "a.flac", stereo, 22050)
    wav, rate = read_audio_with_rate(tmp_path / "a.flac")
    assert rate == 22050 and wav.shape == (1, 22050)
    assert torch.allclose(wav[0], torch.from_numpy(stereo.mean(1)), atol=1e-4)
    wav16 = read_audio(tmp_path / "a.flac", 16000)
    assert wav16.shape == (1, 16000)
    # the same bytes in memory give the same samples
    assert torch.equal(read_audio((tmp_path / "a.flac").read_bytes(), 16000), wav16)
    seconds, rate, channels = audio_info(tmp_path / "a.flac")
    assert (round(seconds, 3), rate, channels) == (1.0, 22050, 2)


def test_audio_round_trip(tmp_path):
    wav = torch.sin(torch.linspace(0, 100, 8000))[None] * 0.5
    write_audio(wav, tmp_path / "b.wav", 8000)
    back = read_audio(tmp_path / "b.wav", 8000)
    assert back.shape == (1, 8000) and (back - wav).abs().max() < 1e-3


@pytest.mark.parametrize("case", ["corrupt", "empty", "nan", "short", "long"])
def test_bad_audio_names_the_file(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF....WAVEfmt garbage")
    elif case == "empty":
        sf.write(path, np.zeros((0, 1), dtype=np.float32), 16000)
    elif case == "nan":
        sf.write(path, np.full(100, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    else:
        sf.write(path, np.zeros(16000 * (3 if case == "long" else 0) + 100, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match=str(path)):
        read_audio(path, 16000, min_samples=320, max_seconds=2.0)


def test_images(tmp_path):
    rgba = Image.new("RGBA", (8, 6), (255, 0, 0, 0))  # fully transparent red -> white
    rgba.save(tmp_path / "t.png")
    image = read_image(tmp_path / "t.png")
    assert image.mode == "RGB" and image.size == (8, 6) and image.getpixel((0, 0)) == (255, 255, 255)
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    deep.save(tmp_path / "d.png")
    assert read_image(tmp_path / "d.png").getpixel((0, 0)) == (255, 255, 255)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 6, 8) and float(tensor.min()) == 1.0
    write_image(tensor * 0.5, tmp_path / "w.png")
    assert read_image(tmp_path / "w.png").getpixel((1, 1)) == (128, 128, 128)
    with pytest.raises(MediaError, match="pixels"):
        read_image(tmp_path / "t.png", max_pixels=10)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(MediaError, match="bad.png"):
        read_image(tmp_path / "bad.png")


def test_arrays_never_unpickle(tmp_path):
    write_array(torch.arange(6).reshape(2, 3), tmp_path / "a.npy")
    assert read_array(tmp_path / "a.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MediaError, match="obj.npy"):
        read_array(tmp_path / "obj.npy")


def test_kinds_and_mono():
    assert media_kind("image").accepts("x.JPG") and not media_kind("audio").accepts("x.png")
    assert {"image", "audio", "array"} <= set(MEDIA_KINDS)  # plugins may add theirs
    assert to_mono(torch.ones(2, 5)).shape == (1, 5) and to_mono(np.ones(5)).shape == (1, 5)
    with pytest.raises(KeyError, match="known"):
        media_kind("video")
