"""Open media kinds (issue 23.7): a plugin brings its kind (reader, writer, check, preview) and a modality uses it."""

import base64
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from anygpt.htmlpage import HtmlPage
from anygpt.media import MediaError, MediaKind, describe, kind_of_file, media_kind, read_media, register_media_kind
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import media_kind_of, modality_for, register_modality
from anygpt.modalities.spec import SpanStructure
from anygpt.testing import check_codec


def read_trajectory(source, **_) -> torch.Tensor:
    try:
        array = np.load(io.BytesIO(source) if isinstance(source, bytes) else str(source), allow_pickle=False)
    except Exception as err:
        raise MediaError(f"cannot read trajectory {describe(source)}: {err}") from err
    return torch.from_numpy(array).float()


def write_trajectory(data: torch.Tensor, path, **_) -> Path:
    path = Path(path)
    with path.open("wb") as handle:
        np.save(handle, data.detach().cpu().numpy())
    return path


def check_trajectory(data) -> str | None:
    if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[1] != 2 or not data.is_floating_point():
        return f"{getattr(data, 'shape', type(data).__name__)}, not a [T, 2] float trajectory"
    return None


def plot_trajectory(data: torch.Tensor) -> Image.Image:
    """The path as a black line on white, scaled into a 128 x 128 square."""
    points = data.float()
    lo, hi = points.min(0).values, points.max(0).values
    scaled = ((points - lo) / (hi - lo).clamp_min(1e-9) * 120 + 4).tolist()
    image = Image.new("L", (128, 128), 255)
    ImageDraw.Draw(image).line([(x, 127 - y) for x, y in scaled], fill=0, width=2)
    return image


TRAJECTORY = MediaKind("trajectory", (".traj",), ".traj", None, "application/octet-stream", reader=read_trajectory,
                       writer=write_trajectory, check=check_trajectory, preview=plot_trajectory)
register_media_kind(TRAJECTORY)


class MotionCodec(Codec):
    """[T, 2] points in [0, 1]^2 -> one code per point (an 8 x 8 grid cell)."""

    modality = "motion"

    def __init__(self, grid: int = 8) -> None:
        super().__init__()
        self.grid = grid

    @property
    def codebook_size(self) -> int:
        return self.grid * self.grid

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(max_length=512)

    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        cells = [(x.float().clamp(0, 1 - 1e-6) * self.grid).long() for x in items]
        return [c[:, 0] * self.grid + c[:, 1] for c in cells]

    def decode(self, codes: Sequence[torch.Tensor], **context) -> list[torch.Tensor]:
        return [(torch.stack([c // self.grid, c % self.grid], 1).float() + 0.5) / self.grid for c in codes]


register_modality("motion", ("<somo>", "<eomo>"), "<mo{}>", media="trajectory", codec=MotionCodec)


def test_a_plugin_kind_is_registered_once_and_clashes_are_named():
    assert register_media_kind(TRAJECTORY) is TRAJECTORY  # again: harmless
    assert media_kind("trajectory") is TRAJECTORY and kind_of_file("walk.TRAJ") is TRAJECTORY
    with pytest.raises(ValueError, match="media kind 'image' is already registered"):
        register_media_kind(MediaKind("image", (".img2",), ".img2", None, "x/y", reader=read_trajectory,
                                      writer=write_trajectory, check=check_trajectory))
    with pytest.raises(ValueError, match="claims suffix '.npy', which the registered media kind 'array' reads"):
        register_media_kind(MediaKind("path2d", (".npy",), ".npy", None, "x/y", reader=read_trajectory,
                                      writer=write_trajectory, check=check_trajectory))
    with pytest.raises(TypeError, match="needs callables \\['reader', 'writer', 'check'\\]"):
        MediaKind("bare", (".bare",), ".bare", None, "x/y")
    with pytest.raises(KeyError, match="unknown media kind 'hologram'.*register_media_kind"):
        register_modality("holo", ("<soho>", "<eoho>"), "<ho{}>", media="hologram")


def test_a_modality_reads_writes_and_previews_through_its_kind(tmp_path):
    motion = modality_for(MotionCodec())
    assert motion.media is TRAJECTORY and media_kind_of("motion") is TRAJECTORY
    walk = torch.stack([torch.linspace(0.05, 0.95, 40), torch.linspace(0.1, 0.9, 40) ** 2], 1)
    path = write_trajectory(walk, tmp_path / "walk.traj")
    assert torch.equal(motion.read(path), walk) and torch.equal(read_media("trajectory", path.read_bytes()), walk)
    decoded = motion.codec.decode(motion.codec.encode([walk]))[0]
    written = motion.write(decoded, tmp_path / "out" / f"reply{motion.media.suffix}")
    assert written.suffix == ".traj" and torch.equal(read_trajectory(written), decoded)

    cell = HtmlPage.media(written, media_kind_of("motion"), tmp_path)  # what transcripts and reports show
    assert cell.endswith('<br><a href="out/reply.traj">out/reply.traj</a>')
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', cell)[1])
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert image.shape == (128, 128)  # a plotted square, not a 2-pixel strip of the raw [T, 2] values
    dark = image < 128
    assert 150 < dark.sum() < 0.2 * dark.size  # a line, not a filled square
    assert dark[120:, :10].any() and dark[:10, 118:].any()  # from the lower left corner to the upper right


def test_the_plugin_codec_passes_the_conformance_check(tmp_path):
    report = check_codec(MotionCodec(), [torch.rand(30, 2), torch.rand(12, 2)], tmp_path)
    assert report["spec"].media == "trajectory"
