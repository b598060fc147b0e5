"""Conformance checks for plugin authors: does a codec keep the contract anygpt relies on?

Call it from your own tests with a few items as your media kind's reader returns them::

    from anygpt.testing import check_codec

    def test_motion_codec_conforms(tmp_path):
        check_codec(MotionCodec(), [torch.rand(20, 2), torch.rand(31, 2)], tmp_path)

Each check raises `CodecConformanceError` naming the codec class, the check and what it got:

- **registration**: ``codec.modality`` is a registered modality, ``codebook_size`` a positive int, and the codec class
  sizes the same on the meta device (how configs size it without weights);
- **codes**: `encode` returns one integer tensor per item; `flatten` gives 1-D ids in ``[0, codebook_size)`` that obey
  ``structure``, and `unflatten` gives the codes back;
- **decode**: one item per code, of the modality's media kind (its ``check``), written and read back by the kind;
  re-encoding a decoded item gives codes of the same shape;
- **batching**: encoding (decoding) a batch equals encoding (decoding) the items one by one;
- **save/load**: `save_pretrained` + ``from_pretrained`` (config.json + safetensors) gives the same codes;
- **device**: built on the meta device and loaded onto the CPU (``to_empty`` + the state dict), and copied, it gives
  the same codes.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from anygpt.media import media_kind
from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import meta_codec, modality_spec


class CodecConformanceError(AssertionError):
    """A codec that breaks anygpt's codec contract; the message names the class and the check."""


def _fail(codec: Codec, check: str, message: str) -> CodecConformanceError:
    return CodecConformanceError(f"{type(codec).__name__} fails the {check} check: {message}")


def _codes_equal(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x.cpu(), y.cpu())
                                    for x, y in zip(a, b, strict=True))


def check_codec(codec: Codec, examples: Sequence[Any], tmp_path: str | Path | None = None,
                decode_atol: float = 1e-4, decode_context: dict[str, Any] | None = None,
                sampling_decode: bool = False) -> dict[str, Any]:
    """Run every conformance check on ``codec`` with ``examples`` (items as its media kind's reader returns them).

    Args:
        tmp_path: where the save/load and media round trips write (a temporary folder when None).
        decode_atol: tolerance of batch-versus-one-by-one decoding (floating point batching noise).
        decode_context: extra arguments of `decode` (e.g. a speech codec's ``voice``).
        sampling_decode: `decode` draws random numbers (SoundStorm's MaskGIT): decoding alone is then compared with
            decoding in the batch by shape only.

    Returns what was checked (the spec, code shapes), for a test to look at further.
    """
    if len(examples) < 2:
        raise ValueError("check_codec needs at least two examples (batching is checked)")
    codec = codec.eval()
    spec = _check_registration(codec)
    codes = codec.encode(list(examples))
    _check_codes(codec, codes, len(examples))
    decoded = _check_decode(codec, codes, spec.media, decode_context or {}, tmp_path)
    _check_batching(codec, examples, codes, decoded, None if sampling_decode else decode_atol, decode_context or {})
    _check_save_load(codec, examples, codes, tmp_path)
    _check_devices(codec, examples, codes)
    return {"spec": spec, "code_shapes": [tuple(c.shape) for c in codes]}


def _check_registration(codec: Codec):
    name = getattr(codec, "modality", None)
    try:
        spec = modality_spec(name) if isinstance(name, str) else None
    except KeyError as err:
        raise _fail(codec, "registration", str(err)) from None
    if spec is None:
        raise _fail(codec, "registration", f"class attribute `modality` is {name!r}; set it to a registered name")
    size = codec.codebook_size
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise _fail(codec, "registration", f"codebook_size is {size!r}, not a positive int")
    try:
        on_meta = meta_codec(type(codec), **codec.init_args)
    except Exception as err:  # a constructor that needs real tensors cannot be sized without weights
        raise _fail(codec, "registration", f"cannot be built on the meta device from its init_args ({err}); "
                                           "configs size codecs that way") from err
    if (on_meta.codebook_size, on_meta.structure) != (size, codec.structure):
        raise _fail(codec, "registration", f"on the meta device it has codebook_size {on_meta.codebook_size} and "
                                           f"{on_meta.structure}, built it has {size} and {codec.structure}")
    return spec.sized(size, codec.structure)


def _check_codes(codec: Codec, codes: Any, count: int) -> None:
    if not isinstance(codes, list) or len(codes) != count:
        raise _fail(codec, "codes", f"encode returned {type(codes).__name__} of length "
                                    f"{len(codes) if hasattr(codes, '__len__') else '?'} for {count} items; return "
                                    "a list with one tensor per item")
    for i, native in enumerate(codes):
        if not isinstance(native, torch.Tensor) or native.is_floating_point() or native.dtype == torch.bool:
            raise _fail(codec, "codes", f"item {i}: encode returned {getattr(native, 'dtype', type(native))}, not "
                                        "an integer tensor")
        flat = codec.flatten(native)
        if flat.dim() != 1 or flat.numel() == 0:
            raise _fail(codec, "codes", f"item {i}: flatten gave shape {tuple(flat.shape)}, not a non-empty 1-D "
                                        "sequence")
        if flat.min() < 0 or flat.max() >= codec.codebook_size:
            raise _fail(codec, "codes", f"item {i}: flattened ids span [{int(flat.min())}, {int(flat.max())}], "
                                        f"outside [0, {codec.codebook_size})")
        why = codec.structure.violation(flat.cpu(), codec.codebook_size)
        if why is not None:
            raise _fail(codec, "codes", f"item {i}: flattened ids break its structure {codec.structure}: {why}")
        back = codec.unflatten(flat)
        if back.shape != native.shape or not torch.equal(back.cpu().long(), native.cpu().long()):
            raise _fail(codec, "codes", f"item {i}: unflatten(flatten(codes)) has shape {tuple(back.shape)} or "
                                        f"values other than the codes {tuple(native.shape)}")


def _check_decode(codec: Codec, codes: list[torch.Tensor], media: str, context: dict[str, Any],
                  tmp_path: str | Path | None) -> list[torch.Tensor]:
    kind = media_kind(media)
    decoded = codec.decode(codes, **context)
    if not isinstance(decoded, list) or len(decoded) != len(codes):
        raise _fail(codec, "decode", f"decode returned {type(decoded).__name__} for {len(codes)} codes; return a "
                                     "list with one item per code")
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        for i, item in enumerate(decoded):
            why = kind.check(item)
            if why is not None:
                raise _fail(codec, "decode", f"item {i} is {why} (media kind {kind.name!r})")
            path = kind.writer(item, Path(folder) / f"item{i}{kind.suffix}", sample_rate=codec.sample_rate)
            again = kind.reader(path, sample_rate=codec.sample_rate, image_size=codec.image_size,
                                image_preprocess=codec.image_preprocess)
            if kind.check(again) is not None:
                raise _fail(codec, "decode", f"item {i} written as {kind.name} reads back as {kind.check(again)}")
    again = codec.encode(decoded)
    for i, (first, second) in enumerate(zip(codes, again, strict=True)):
        if first.shape != second.shape:
            raise _fail(codec, "decode", f"item {i}: codes {tuple(first.shape)} decode to an item that encodes to "
                                         f"{tuple(second.shape)}")
    return decoded


def _check_batching(codec: Codec, examples: Sequence[Any], codes: list[torch.Tensor], decoded: list[torch.Tensor],
                    atol: float | None, context: dict[str, Any]) -> None:
    alone = [codec.encode([item])[0] for item in examples]
    if not _codes_equal(codes, alone):
        raise _fail(codec, "batching", "encoding the items together gives other codes than one by one")
    for i, code in enumerate(codes):
        single = codec.decode([code], **context)[0]
        if single.shape != decoded[i].shape or (atol is not None and not torch.allclose(
                single.float().cpu(), decoded[i].float().cpu(), atol=atol)):
            raise _fail(codec, "batching", f"item {i}: decoding it alone differs from decoding it in the batch "
                                           f"(beyond atol {atol})")


def _check_save_load(codec: Codec, examples: Sequence[Any], codes: list[torch.Tensor],
                     tmp_path: str | Path | None) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        try:
            codec.save_pretrained(folder)
            loaded = type(codec).from_pretrained(folder)
        except Exception as err:
            raise _fail(codec, "save/load", f"save_pretrained + from_pretrained failed: {err}") from err
    if type(loaded) is not type(codec) or loaded.init_args != codec.init_args:
        raise _fail(codec, "save/load", f"loaded a {type(loaded).__name__} with {loaded.init_args}, saved "
                                        f"{codec.init_args}")
    if not _codes_equal(loaded.to(codec.device).encode(list(examples)), codes):
        raise _fail(codec, "save/load", "the loaded codec encodes the examples to other codes")


def _check_devices(codec: Codec, examples: Sequence[Any], codes: list[torch.Tensor]) -> None:
    moved = meta_codec(type(codec), **codec.init_args).to_empty(device=codec.device)
    try:
        moved.load_state_dict(codec.state_dict())
    except RuntimeError as err:
        raise _fail(codec, "device", f"built on the meta device, its state dict does not load: {err}") from err
    originals = dict(codec.named_buffers())
    with torch.no_grad():  # non-persistent buffers (constants such as normalisation) are not in the state dict
        for name, buffer in moved.named_buffers():
            if name not in codec.state_dict():
                buffer.copy_(originals[name])
    for label, other in (("built on meta and loaded", moved.eval()), ("a copy", copy.deepcopy(codec).to("cpu"))):
        if not _codes_equal(other.encode(list(examples)), codes):
            raise _fail(codec, "device", f"{label}, it encodes the examples to other codes")
