"""The engine `anygpt serve` loads here (the tiny export of tests/conftest.py) and sample uploads."""

import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from anygpt.generation.pipeline import AnyGPT


@pytest.fixture(scope="session")
def engine(tiny_export) -> AnyGPT:
    return AnyGPT.load(tiny_export)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's calling card), 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


@pytest.fixture(scope="session")
def uploads(tmp_path_factory) -> dict[str, Path]:
    """Files a visitor might send: good ones, and each kind of bad one."""
    root = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(0)
    files = {"image": root / "photo.png", "speech": root / "question.wav", "long": root / "lecture.wav",
             "corrupt": root / "broken.png", "corrupt_audio": root / "broken.wav", "text": root / "notes.txt",
             "bomb": root / "bomb.png"}
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(files["image"])
    t = np.arange(16000) / 16000
    sf.write(files["speech"], (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    sf.write(files["long"], np.zeros(3 * 16000, dtype=np.float32), 16000)
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    files["corrupt_audio"].write_bytes(b"RIFF" + rng.bytes(300))
    files["text"].write_text("not media")
    _png_header_only(files["bomb"], 100_000, 100_000)
    return files


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
