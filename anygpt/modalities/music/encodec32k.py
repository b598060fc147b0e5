"""MusicGen's Encodec 32 kHz (4 codebooks x 2048, 50 Hz) with loaders for both published checkpoint layouts.

- audiocraft ``compression_state_dict.bin``: a pickle with ``best_state`` (Encodec/audiocraft key names, which are
  ours) and ``xp.cfg`` (the training config, an OmegaConf object: reading it unpickles code, so it needs
  ``trust_code=True``).
- transformers ``facebook/encodec_32khz``: ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``) with
  transformers' key names (``encoder.layers.0.conv.weight_g``, or ``...parametrizations.weight.original0`` when saved
  by recent transformers), converted here.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch

from anygpt.modalities.music.codec import SEANetCodec


class EncodecMusicTokenizer(SEANetCodec):
    """The paper's music tokenizer. Defaults are the 32 kHz model's; weights come from `from_pretrained`."""

    def __init__(self, sample_rate: int = 32000, n_filters: int = 64, ratios: tuple[int, ...] = (8, 5, 4, 4),
                 dimension: int = 128, n_q: int = 4, bins: int = 2048, pad_mode: str = "reflect",
                 **kwargs: Any) -> None:
        super().__init__(sample_rate=sample_rate, n_filters=n_filters, ratios=ratios, dimension=dimension, n_q=n_q,
                         bins=bins, pad_mode=pad_mode, **kwargs)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, trust_code: bool = False,
                        **overrides: Any) -> EncodecMusicTokenizer:
        """Load a checkpoint in any of the three layouts, detected from ``path``.

        ``path`` may be an audiocraft ``compression_state_dict.bin`` (or its directory), a transformers checkpoint
        directory (``config.json`` + weights), or a directory written by `save_pretrained`. ``trust_code=True`` allows
        full unpickling, needed to read the training config stored in audiocraft files; without it only
        ``best_state`` is read and the SEANet settings are audiocraft's defaults for this model (pad_mode "constant").
        """
        if path is None:
            raise TypeError("EncodecMusicTokenizer ships no default weights; give the facebook/encodec_32khz folder")
        path = Path(path)
        if path.is_dir() and (path / "compression_state_dict.bin").exists():
            path = path / "compression_state_dict.bin"
        if path.is_file():
            return cls._from_audiocraft(path, trust_code, **overrides)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} does not exist: pass compression_state_dict.bin, a transformers "
                                    "facebook/encodec_32khz directory, or a save_pretrained directory.")
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").exists() else {}
        if config.get("model_type") == "encodec":
            return cls._from_transformers(path, config, **overrides)
        return super().from_pretrained(path, trust_code=trust_code, **overrides)

    # -- audiocraft ------------------------------------------------------------------------------------------------
    @classmethod
    def _from_audiocraft(cls, file: Path, trust_code: bool, **overrides: Any) -> EncodecMusicTokenizer:
        try:
            package = torch.load(file, map_location="cpu", weights_only=not trust_code)
        except Exception as err:
            raise ValueError(f"Cannot read {file} with weights_only=True ({type(err).__name__}: {err}). audiocraft "
                             "files also pickle their training config; if you trust the file, pass trust_code=True "
                             "(--loading.trust_code true).") from err
        state = package.get("best_state", package) if isinstance(package, dict) else None
        if not isinstance(state, dict) or not state:
            raise ValueError(f"{file} holds no 'best_state' state dict; is it an audiocraft compression checkpoint?")
        if "model" in state and isinstance(state["model"], dict):  # newer audiocraft nests the weights once more
            state = state["model"]
        settings: dict[str, Any] = {"pad_mode": "constant"}  # audiocraft's SEANet default
        settings.update(_audiocraft_settings(package.get("xp.cfg")) if isinstance(package, dict) else {})
        settings.update(_infer_codebooks(state, "quantizer.vq.layers.{}._codebook.embed"))
        model = cls(**{**settings, **overrides})
        model._load_checked(state, source=str(file))
        return model.eval()

    # -- transformers ----------------------------------------------------------------------------------------------
    @classmethod
    def _from_transformers(cls, directory: Path, config: dict, **overrides: Any) -> EncodecMusicTokenizer:
        if config.get("normalize"):
            raise NotImplementedError(f"{directory}: normalize=True (per-chunk loudness scaling, the 48 kHz models) is "
                                      "not supported; MusicGen's 32 kHz model has normalize=False.")
        if config.get("chunk_length_s"):
            raise NotImplementedError(f"{directory}: chunked encoding (chunk_length_s) is not supported.")
        sr, ratios = int(config.get("sampling_rate", 32000)), list(config.get("upsampling_ratios", [8, 5, 4, 4]))
        bins = int(config.get("codebook_size", 1024))
        bw_per_q = math.log2(bins) * (sr / math.prod(ratios)) / 1000
        n_q = int(max(1, math.floor(max(config.get("target_bandwidths", [2.2])) / bw_per_q + 1e-9)))
        settings = dict(sample_rate=sr, n_filters=config.get("num_filters", 32), ratios=tuple(ratios),
                        dimension=config.get("hidden_size", 128), n_q=n_q, bins=bins,
                        n_residual_layers=config.get("num_residual_layers", 1), lstm=config.get("num_lstm_layers", 2),
                        compress=config.get("compress", 2), pad_mode=config.get("pad_mode", "reflect"),
                        true_skip=not config.get("use_conv_shortcut", True),
                        causal=config.get("use_causal_conv", True), norm=config.get("norm_type", "weight_norm"))
        for key, expected in (("kernel_size", 7), ("last_kernel_size", 7), ("residual_kernel_size", 3),
                              ("dilation_growth_rate", 2), ("audio_channels", 1)):
            if config.get(key, expected) != expected:
                raise NotImplementedError(f"{directory}: {key}={config[key]} is not supported (expected {expected}).")
        model = cls(**{**settings, **overrides})
        state = _read_weights(directory)
        model._load_checked(convert_transformers_state_dict(state, model.state_dict().keys()), source=str(directory))
        return model.eval()

    def _load_checked(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Strict load with messages that name the checkpoint and the offending keys."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"{source} does not match {type(self).__name__}({self.init_args}): {len(missing)} missing "
                           f"keys (first: {missing[:4]}), {len(unexpected)} unexpected (first: {unexpected[:4]}).")
        bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if v.shape != own[k].shape]
        if bad:
            raise ValueError(f"{source}: shape mismatch for {len(bad)} tensors, e.g. {bad[:3]} (checkpoint vs model).")
        self.load_state_dict(state)


_TF_LAYER = re.compile(r"^(encoder|decoder)\.layers\.(.+)$")
_TF_CODEBOOK = re.compile(r"^quantizer\.layers\.(\d+)\.codebook\.(\w+)$")


def convert_transformers_state_dict(state: dict[str, torch.Tensor], target_keys) -> dict[str, torch.Tensor]:
    """transformers `EncodecModel` key names -> Encodec/audiocraft key names (ours).

    transformers wraps each conv once (``layers.3.conv.weight``) where Encodec wraps it twice (``model.3.conv.conv``
    or ``model.3.convtr.convtr`` for transposed convs); weight-norm tensors are ``weight_g``/``weight_v`` in both
    (recent transformers save them as ``parametrizations.weight.original0``/``original1``).
    """
    targets = set(target_keys)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        if m := _TF_CODEBOOK.match(key):
            out[f"quantizer.vq.layers.{m[1]}._codebook.{m[2]}"] = value
            continue
        m = _TF_LAYER.match(key)
        if not m:
            out[key] = value  # left for the caller's unexpected-key report
            continue
        rest = m[2]
        candidates = [f"{m[1]}.model.{rest}"]
        if ".conv." in f".{rest}":
            head, _, tail = rest.rpartition("conv.")
            candidates = [f"{m[1]}.model.{head}conv.conv.{tail}", f"{m[1]}.model.{head}convtr.convtr.{tail}"]
        found = next((c for c in candidates if c in targets), candidates[0])
        out[found] = value
    return out


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / "model.safetensors").exists():
        from safetensors.torch import load_file

        return load_file(str(directory / "model.safetensors"))
    if (directory / "pytorch_model.bin").exists():
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{directory} has config.json but neither model.safetensors nor pytorch_model.bin.")


def _infer_codebooks(state: dict[str, torch.Tensor], pattern: str) -> dict[str, int]:
    n_q = 0
    while pattern.format(n_q) in state:
        n_q += 1
    if n_q == 0:
        return {}
    bins, dimension = state[pattern.format(0)].shape
    return {"n_q": n_q, "bins": int(bins), "dimension": int(dimension)}


def _audiocraft_settings(cfg: Any) -> dict[str, Any]:
    """SEANet settings from an audiocraft ``xp.cfg`` (OmegaConf or dict), when the file carries one."""
    if cfg is None:
        return {}
    try:
        seanet, rate = cfg["seanet"], cfg.get("sample_rate")
    except (KeyError, TypeError, AttributeError):
        return {}
    names = ("n_filters", "ratios", "dimension", "lstm", "compress", "pad_mode", "true_skip", "causal", "norm",
             "n_residual_layers")  # audiocraft's SEANet settings carry our names
    out = {name: seanet[name] for name in names if name in seanet}
    if "ratios" in out:
        out["ratios"] = tuple(int(r) for r in out["ratios"])
    if rate:
        out["sample_rate"] = int(rate)
    return out
