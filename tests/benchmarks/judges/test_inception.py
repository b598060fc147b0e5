import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance

from benchmarks.judges.inception import WEIGHTS_NAME, InceptionFeatures, image_uint8
from benchmarks.metrics.frechet import frechet_block
from tests.benchmarks.random_weights import random_inception_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_inception_weights(tmp_path_factory.mktemp("inception") / WEIGHTS_NAME)


def images(tmp_path, n, seed, size):
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        p = tmp_path / f"im{seed}-{k}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_loaded_by_path_gives_torchmetrics_fid_features_and_distance(weights, tmp_path):
    torch.set_num_threads(1)
    real = images(tmp_path, 3, 0, (40, 56)) + images(tmp_path, 1, 1, (64, 64))  # mixed sizes, as COCO's
    fake = images(tmp_path, 3, 2, (64, 64))
    ours = InceptionFeatures(weights)
    fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(weights))
    fid.set_dtype(torch.float64)
    for p in real:
        fid.update(image_uint8(p)[None], real=True)
    for p in fake:
        fid.update(image_uint8(p)[None], real=False)
    feats = ours.embed_files(real)
    assert feats.shape == (4, 2048) and feats.std() > 0
    saved = torch.load(weights, weights_only=True)
    assert all(torch.equal(v.cpu(), saved[k]) for k, v in ours.model.state_dict().items())  # the file's weights
    expected = torch.cat([fid.inception(image_uint8(p)[None]).double() for p in real])
    assert torch.allclose(feats, expected, rtol=1e-5, atol=1e-6)
    block = frechet_block("FID", ours.description, 2048, dict(enumerate(real)), dict(enumerate(fake)), {}, 4, 0,
                          seed=0, embed=ours.embed_files, batch_size=2)
    assert block["model"]["value"] == pytest.approx(float(fid.compute()), rel=1e-3)


def test_refuses_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="torch-fidelity"):
        InceptionFeatures(tmp_path / WEIGHTS_NAME)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="Mixed_7c"):
        InceptionFeatures(other)
