"""One identity type: configs name codecs, sizes come without weights, the frame-major layout has one implementation."""

import pytest
import torch

from anygpt.data import templates
from anygpt.modalities.codec import frame_major_flatten, frame_major_unflatten
from anygpt.modalities.music.tiny import TinyMusicCodec
from anygpt.modalities.registry import configured_modality, meta_codec, modality_spec, spec_of
from anygpt.modalities.spec import RELEASE_MODALITIES, ModalitySpec, SpanStructure


def test_a_bare_name_sizes_the_paper_codec_without_building_weights():
    for release in RELEASE_MODALITIES:
        spec, flatten = configured_modality(release.name)
        assert spec == release and spec.structure == release.structure and spec.media == release.media
        codec = flatten.__self__
        assert all(p.device.type == "meta" for p in codec.parameters())  # nothing allocated, nothing random
    # the release-size SEED codec on the meta device: ~1e9 parameters that were never materialised
    seed = meta_codec(configured_modality("image")[1].__self__.__class__)
    assert sum(p.numel() for p in seed.parameters()) > 5e8 and next(seed.parameters()).is_meta


def test_configs_name_codecs_or_size_a_registered_name():
    spec, flatten = configured_modality({"class_path": "anygpt.modalities.music.tiny.TinyMusicCodec",
                                         "init_args": {"n_q": 2, "bins": 32}})
    assert (spec.codebook_size, spec.markers, spec.token_format, spec.media) == (64, ("<somu>", "<eomu>"), "<🎶{}>",
                                                                                  "audio")
    assert spec.structure == SpanStructure(cycle=((0, 32), (32, 64)))
    codes = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert flatten(codes).tolist() == [1, 36, 2, 37, 3, 38]
    image, none = configured_modality({"name": "image", "codebook_size": 64})
    assert none is None and image.markers == ("<soim>", "<eoim>") and image.media == "image"
    with pytest.raises(ValueError, match="'layout' is gone; name the codec"):
        configured_modality({"name": "music", "codebook_size": 64, "markers": ["<a>", "<b>"], "token_format": "<m{}>",
                             "layout": "frame_major:2"})
    with pytest.raises(ValueError, match="lacks \\['markers', 'token_format'\\]"):
        configured_modality({"name": "smell", "codebook_size": 4})


def test_spec_round_trips_and_reads_older_checkpoints():
    music = spec_of(TinyMusicCodec, n_q=2, bins=8)
    again = ModalitySpec.from_dict(music.to_dict())
    assert again == music and again.media == "audio"
    old = {"name": "music", "codebook_size": 16, "markers": ["<somu>", "<eomu>"], "token_format": "<🎶{}>"}
    assert configured_modality(old)[0] == music and configured_modality(old)[0].media == "audio"
    assert modality_spec("music").codebook_size is None  # the registry holds identities; codecs size them


def test_the_frame_major_layout_has_one_implementation():
    codec = TinyMusicCodec(n_q=2, bins=4, n_filters=2, dimension=4, lstm=0)
    codes = torch.tensor([[0, 3, 1], [2, 0, 3]])
    ids = codec.flatten(codes)
    assert ids.tolist() == frame_major_flatten(codes, 2, 4).tolist()
    assert ids.tolist() == templates.frame_major_flatten(8, 2)(codes).tolist()
    assert torch.equal(codec.unflatten(ids), codes) and torch.equal(templates.frame_major_unflatten(8, 2)(ids), codes)
    assert codec.unflatten(torch.cat([ids, ids[:1]])).shape == (2, 3)  # generated tails: incomplete frame dropped
    with pytest.raises(ValueError, match="not whole frames"):
        frame_major_unflatten(ids[:-1], 2, 4, strict=True)
    with pytest.raises(ValueError, match="not in codebook 1's range"):
        frame_major_unflatten(torch.tensor([0, 1]), 2, 4, strict=True)


def test_structure_names_the_violation():
    frames = SpanStructure(cycle=((0, 4), (4, 8)))
    assert frames.violation(torch.tensor([1, 5, 2, 6]), 8) is None
    assert "position 1 is outside [4, 8)" in frames.violation(torch.tensor([1, 2]), 8)
    assert "not whole cycles" in frames.violation(torch.tensor([1, 5, 2]), 8)
    assert "fixes 3" in SpanStructure(fixed_length=3).violation(torch.tensor([1]), 8)
