"""DNSMOS P.835 (Microsoft's non-intrusive speech quality predictor): MOS of the speech signal (SIG), the background
(BAK) and overall (OVRL), on the 1-5 scale, from the published ONNX model ``sig_bak_ovr.onnx`` given by path.

As Microsoft's DNS-Challenge ``dnsmos_local.py`` scores a file: mono 16 kHz; a clip shorter than 9.01 s is doubled
(appended to itself) until it is long enough; the model sees every 9.01 s window starting at whole seconds (one
second apart) and returns raw (SIG, BAK, OVRL); each raw value goes through the non-personalized calibration
polynomial; the clip's score is the mean over its windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anygpt.media import resample

SAMPLE_RATE = 16000
WINDOW_SECONDS = 9.01
WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)  # 144160 samples
# raw model output -> MOS (numpy.poly1d coefficients, highest order first), DNS-Challenge's non-personalized fit
POLYFIT = {"sig": (-0.08397278, 1.22083953, 0.0052439), "bak": (-0.13166888, 1.60915514, -0.39604546),
           "ovrl": (-0.06766283, 1.11546468, 0.04602535)}
WORST_MOS = 1.0  # the bottom of the MOS scale: the score of speech that failed to decode


class Dnsmos:
    """``score(wav, sample_rate)`` -> {"sig", "bak", "ovrl"} for one clip."""

    def __init__(self, model: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        model = Path(model)
        if not model.is_file():
            raise FileNotFoundError(f"DNSMOS model {model} not found: pass DNS-Challenge's "
                                    "DNSMOS/DNSMOS/sig_bak_ovr.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise ValueError(f"{model} is not an ONNX model onnxruntime can load: {err}") from err
        inputs = self.session.get_inputs()
        last = inputs[0].shape[-1] if len(inputs) == 1 and inputs[0].shape else None
        if len(inputs) != 1 or (isinstance(last, int) and last != WINDOW):
            raise ValueError(f"{model} is not DNSMOS P.835 (sig_bak_ovr.onnx): it takes "
                             f"{[(i.name, i.shape) for i in inputs]}, not one input of {WINDOW} samples")
        self.input_name = inputs[0].name
        self.description = f"DNSMOS P.835 OVRL ({model.name}, non-personalized calibration)"

    def windows(self, wav: np.ndarray) -> np.ndarray:
        """The [N, 144160] windows the model sees for a 16 kHz mono clip."""
        if len(wav) == 0:
            raise ValueError("DNSMOS: empty audio")
        while len(wav) < WINDOW:
            wav = np.append(wav, wav)
        hops = int(np.floor(len(wav) / SAMPLE_RATE) - WINDOW_SECONDS) + 1
        starts = [k * SAMPLE_RATE for k in range(hops) if k * SAMPLE_RATE + WINDOW <= len(wav)]
        return np.stack([wav[s:s + WINDOW] for s in starts]).astype(np.float32)

    def score(self, wav: torch.Tensor, sample_rate: int) -> dict[str, float]:
        mono = wav.reshape(-1, wav.shape[-1]).float().mean(0)
        mono = resample(mono[None], sample_rate, SAMPLE_RATE)[0] if sample_rate != SAMPLE_RATE else mono
        raws = np.stack([np.asarray(self.session.run(None, {self.input_name: w[None]})[0]).reshape(-1)[:3]
                         for w in self.windows(mono.numpy().astype(np.float64))])
        return {name: float(np.mean(np.poly1d(POLYFIT[name])(raws[:, k])))
                for k, name in enumerate(("sig", "bak", "ovrl"))}
