"""EnCodec 24 kHz encoder embeddings for FAD, the way fadtk's ``encodec-emb`` model takes them: the continuous encoder
output (128-d, 75 frames per second, before quantization) of mono 24 kHz audio, every frame a vector of the set.

The weights are the `encodec` package's published state_dict (``encodec_24khz-d7cc33bc.th``), given by path and loaded
with ``weights_only=True``; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from anygpt.media import read_audio

WEIGHTS_NAME = "encodec_24khz-d7cc33bc.th"


class EncodecFeatures:
    """``embed_files(paths)`` -> one [frames, 128] tensor per file (float32, on the CPU)."""

    num_features = 128
    sample_rate = 24000

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu") -> None:
        from encodec import EncodecModel

        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"EnCodec weights {weights} not found: pass the encodec package's 24 kHz "
                                    f"state_dict ({WEIGHTS_NAME})")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{weights} is not a plain PyTorch state_dict ({err}); expected {WEIGHTS_NAME}") from err
        model = EncodecModel.encodec_model_24khz(pretrained=False)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"{weights} is not EnCodec 24 kHz's state_dict ({WEIGHTS_NAME}): {err}") from err
        self.encoder = model.encoder.eval().to(device)
        self.device = torch.device(device)
        self.description = f"EnCodec 24 kHz encoder frames (128-d, 75 per second) from {weights}"

    @torch.inference_mode()
    def embed_waveforms(self, wavs: Sequence[Tensor]) -> list[Tensor]:
        """Mono 24 kHz waveforms ([T] or [1, T]) -> [frames, 128] each."""
        return [self.encoder(w.reshape(1, 1, -1).to(self.device))[0].T.float().cpu() for w in wavs]

    def embed_files(self, paths: Sequence[str | Path]) -> list[Tensor]:
        return self.embed_waveforms([read_audio(p, sample_rate=self.sample_rate) for p in paths])
