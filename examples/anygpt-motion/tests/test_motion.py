"""The plugin's own tests: the codec keeps anygpt's codec contract (`anygpt.testing.check_codec`) and its codes mean
what the docstring says."""

import math

import torch
from anygpt_motion import MotionCodec

from anygpt.testing import check_codec


def circle(n: int = 40) -> torch.Tensor:
    t = torch.linspace(0, 2 * math.pi, n)
    return torch.stack([t.cos(), t.sin()], dim=1)


def test_motion_codec_conforms(tmp_path):
    line = torch.stack([torch.linspace(0, 2, 30), torch.zeros(30)], dim=1)
    check_codec(MotionCodec(), [circle(), line, circle(7) * 0.5], tmp_path)


def test_a_straight_line_to_the_right_is_one_repeated_code():
    codec = MotionCodec(steps=8, directions=8, speeds=2, max_step=0.25)
    codes, = codec.encode([torch.stack([torch.linspace(0, 1, 9), torch.zeros(9)], dim=1)])
    assert codes.tolist() == [0 * 2 + 1] * 8  # direction 0 (east), the long-step level
    path, = codec.decode([codes])
    assert path.shape == (9, 2) and torch.allclose(path[:, 1], torch.zeros(9))
