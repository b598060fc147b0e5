import numpy as np
import pytest
import scipy.linalg
import torch

from anygpt.media import read_audio_with_rate, resample, write_audio
from benchmarks.judges.encodec_features import WEIGHTS_NAME, EncodecFeatures
from benchmarks.metrics.frechet import frechet_block
from tests.benchmarks.random_weights import random_encodec_weights


def test_loaded_by_path_embeds_encoder_frames_and_pools_them_for_fad(tmp_path):
    from encodec import EncodecModel

    torch.set_num_threads(1)
    weights = random_encodec_weights(tmp_path / WEIGHTS_NAME)
    reference = EncodecModel.encodec_model_24khz(pretrained=False)
    reference.load_state_dict(torch.load(weights, weights_only=True))
    g = torch.Generator().manual_seed(0)
    paths = []
    for k, seconds in enumerate((0.5, 0.3, 0.4, 0.6)):
        paths.append(write_audio(torch.randn(1, int(16000 * seconds), generator=g) * 0.1, tmp_path / f"{k}.wav", 16000))
    ours = EncodecFeatures(weights)
    frames = ours.embed_files(paths)
    assert [f.shape[1] for f in frames] == [128] * 4 and frames[0].shape[0] == 38  # 75 per second, 0.5 s
    wav = resample(read_audio_with_rate(paths[0])[0], 16000, 24000)
    with torch.inference_mode():
        expected = reference.encoder(wav[None])[0].T
    assert torch.allclose(frames[0], expected, atol=1e-5)
    # FAD pools frames: items 0, 1 are "real", 2, 3 "generated"
    block = frechet_block("FAD", ours.description, 128, {0: paths[0], 1: paths[1]}, {2: paths[2], 3: paths[3]}, {},
                          2, 0, seed=0, embed=ours.embed_files, batch_size=1)
    real, fake = torch.cat(frames[:2]).double().numpy(), torch.cat(frames[2:]).double().numpy()
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    textbook = ((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert block["model"]["n_real"] == len(real) and block["model"]["n_generated"] == len(fake)
    assert block["model"]["value"] == pytest.approx(textbook, rel=1e-6)


def test_refuses_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=WEIGHTS_NAME):
        EncodecFeatures(tmp_path / WEIGHTS_NAME)
    other = tmp_path / "other.th"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="not EnCodec"):
        EncodecFeatures(other)
