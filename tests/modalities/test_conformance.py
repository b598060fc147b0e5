"""anygpt.testing.check_codec: the project's own codecs pass it, and each broken contract is named (issue 23.4)."""

import pytest
import torch

from anygpt.modalities.image.tiny import TinyImageTokenizer
from anygpt.modalities.music.encodec32k import EncodecMusicTokenizer
from anygpt.modalities.music.tiny import TinyMusicCodec
from anygpt.modalities.spec import SpanStructure
from anygpt.modalities.speech.soundstorm import SoundStorm
from anygpt.modalities.speech.tiny import TinySpeechCodec
from anygpt.testing import CodecConformanceError, check_codec
from tests.third_party.depth_modality import DepthCodec


def seeded(build):
    torch.manual_seed(0)
    return build()


def test_tiny_image_codec_conforms(tmp_path):
    codec = seeded(lambda: TinyImageTokenizer(codebook_size=32, kmeans_iters=1))
    report = check_codec(codec, [torch.rand(3, 64, 64), torch.rand(3, 64, 64)], tmp_path)
    assert report["spec"].name == "image" and report["code_shapes"] == [(32,), (32,)]


def test_tiny_music_and_release_format_encodec_conform(tmp_path):
    waves = [torch.randn(1, 16000) * 0.1, torch.randn(1, 16000) * 0.1]
    report = check_codec(seeded(lambda: TinyMusicCodec(kmeans_iters=1)), waves, tmp_path)
    assert report["spec"].structure == SpanStructure(cycle=((0, 256), (256, 512)))
    encodec = seeded(lambda: EncodecMusicTokenizer(n_filters=4, dimension=8, lstm=0))  # the release format, narrow
    check_codec(encodec, [torch.randn(1, 3200) * 0.1, torch.randn(1, 3200) * 0.1], tmp_path)


def test_tiny_speech_codec_with_soundstorm_conforms(tmp_path):
    codec = seeded(lambda: TinySpeechCodec(config={"codebook_size": 32, "n_q": 3}))
    codec.attach_soundstorm(seeded(lambda: SoundStorm(codebook_size=32, num_quantizers=2, num_semantic_tokens=32,
                                                      dim=16, depth=1, heads=2, dim_head=8)).eval())
    report = check_codec(codec, [torch.randn(1, 3200) * 0.1, torch.randn(1, 4800) * 0.1], tmp_path,
                         sampling_decode=True)
    assert report["code_shapes"] == [(5,), (8,)]  # 640 samples a frame


def test_a_plugin_codec_conforms(tmp_path):
    check_codec(DepthCodec(), [torch.rand(16, 16) * 9, torch.rand(16, 16) * 5], tmp_path)


class Broken(DepthCodec):
    """DepthCodec with one contract broken at a time."""

    def __init__(self, levels: int = 16, max_depth: float = 10.0, fault: str = "") -> None:
        super().__init__(levels, max_depth)
        self.fault = fault

    def encode(self, items):
        codes = super().encode(items)
        if self.fault == "range":
            return [c + self.levels for c in codes]
        if self.fault == "structure":
            return [c[:15] for c in codes]
        if self.fault == "float":
            return [c.float() for c in codes]
        if self.fault == "batch" and len(items) > 1:
            return [codes[0]] + [c.flip(0) for c in codes[1:]]
        return codes

    def decode(self, codes, **context):
        out = super().decode(codes, **context)
        if self.fault == "tensor":
            return torch.stack(out)
        if self.fault == "kind":
            return [o.to(torch.bool) for o in out]
        return out


@pytest.mark.parametrize(("fault", "message"), [
    ("range", r"Broken fails the codes check: item 0: flattened ids span \[\d+, \d+\], outside \[0, 16\)"),
    ("structure", r"Broken fails the codes check: item 0: .*break its structure.*15 codes, the structure fixes 16"),
    ("float", r"Broken fails the codes check: item 0: encode returned torch.float32, not an integer tensor"),
    ("tensor", r"Broken fails the decode check: decode returned Tensor for 2 codes; return a list"),
    ("kind", r"Broken fails the decode check: item 0 is a torch.bool tensor.*\(media kind 'array'\)"),
    ("batch", r"Broken fails the batching check: encoding the items together gives other codes"),
])
def test_each_broken_contract_is_named(fault, message, tmp_path):
    with pytest.raises(CodecConformanceError, match=message):
        check_codec(Broken(fault=fault), [torch.rand(16, 16) * 9, torch.rand(16, 16) * 5], tmp_path)


def test_state_outside_the_state_dict_fails_save_load(tmp_path):
    class Forgetful(DepthCodec):
        """Keeps a random code order as a plain attribute: save_pretrained does not write it."""

        def __init__(self, levels: int = 16, max_depth: float = 10.0) -> None:
            super().__init__(levels, max_depth)
            self.order = torch.randperm(levels)

        def encode(self, items):
            return [self.order[c] for c in super().encode(items)]

        def decode(self, codes, **context):
            return super().decode([torch.argsort(self.order)[c] for c in codes], **context)

    torch.manual_seed(0)
    with pytest.raises(CodecConformanceError, match="Forgetful fails the save/load check: the loaded codec encodes"):
        check_codec(Forgetful(), [torch.rand(16, 16) * 9, torch.rand(16, 16) * 5], tmp_path)
