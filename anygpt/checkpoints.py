"""The AnyGPT checkpoint directory: an HF ``LlamaForCausalLM`` folder whose tokenizer carries the unified vocabulary.

Layout (the released fnlp/AnyGPT-base and -chat folders are the same, minus ``anygpt.json``)::

    config.json, model.safetensors (or shards)    HF LLaMA weights (`anygpt.model.llama.hf_adapter`)
    tokenizer.model | tokenizer.json              the text tokenizer
    added_tokens.json / tokenizer.json            [Human] [MMGPT] <eoh> <eos>, every modality's codes and markers
    anygpt.json                                   modality order and sizes, tokenizer checkpoints, system prompt

`load_bundle` reads such a folder (or a Lightning ``.ckpt`` of `AnyGPTLM`) and checks that the vocabulary layout of the
files matches the configured modalities id for id; `save_bundle` writes one. The ``anygpt convert`` subcommands wrap
both.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict

from anygpt import hub
from anygpt.assets import SCHEME as ASSETS_SCHEME
from anygpt.modalities.codec import Codec, Modality
from anygpt.modalities.pretrained import CONFIG_FILE
from anygpt.modalities.registry import TokenizerRef, codec_class, configured_modality, spec_of
from anygpt.modalities.spec import RELEASE_MODALITIES
from anygpt.model.llama import hf_adapter as hf
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.model.lm import BUILT_KEY
from anygpt.model.lora import LoraOptions, apply_lora, inject_like, is_lora, load_adapter, merge_lora, save_adapter
from anygpt.model.precision import device_name
from anygpt.model.spec import build_model
from anygpt.prompts import TEMPLATES, release_prompts
from anygpt.text_tokenizer import HFTextTokenizer, SentencePieceTextTokenizer, load_text_tokenizer
from anygpt.vocab import UnifiedVocab, vocab_from_checkpoint

BUNDLE_FILE = "anygpt.json"
# The released tokenizers a release-layout checkpoint without anygpt.json gets, by hub id (anygpt.hub.RELEASE).
RELEASE_TOKENIZERS = {
    "image": TokenizerRef(hub.SEED.name, "anygpt.modalities.image.seed.SEEDImageTokenizer",
                          {"eva_vit": hub.EVA_VIT_URL}),
    "speech": TokenizerRef(hub.SPEECH.name, "anygpt.modalities.speech.codec.SpeechTokenizerCodec"),
    "music": TokenizerRef(hub.MUSIC.name, "anygpt.modalities.music.encodec32k.EncodecMusicTokenizer"),
}
TOKENIZER_DIR = "tokenizers"  # inside an export: the small tokenizers copied there (`portable_ref`)
COPY_TOKENIZERS_UP_TO = 64 * 2**20  # bytes; larger tokenizers (SEED, SoundStorm) are recorded by absolute path
# The release's chat system prompt (OpenMOSS/AnyGPT), kept verbatim so released models behave as trained.
RELEASE_SYSTEM_PROMPT: str = release_prompts()["system_prompt"]


@dataclass
class Bundle:
    """Everything inference needs: the decoder, the vocabulary and the modality tokenizers."""

    model: LLaMA
    vocab: UnifiedVocab
    tokenizers: dict[str, Modality]
    system_prompt: str | None = None
    refs: dict[str, TokenizerRef] = field(default_factory=dict)
    # Append the output modality's start marker to prompts: what models trained with anygpt's own templates expect;
    # the released models are asked by the task prompt instead.
    force_marker: bool = True
    # The second stage of image decoding: a local SD 2.1 unCLIP pipeline folder turning SEED embeddings into pixels.
    image_decoder: str | None = None
    # Chat defaults the checkpoint was trained for: the prompt template ("chat"/"base"; None: chat when the vocabulary
    # has the instruction tokens) and the task prompt wrapping chat messages (None: the release's, "auto").
    template: str | None = None
    task: str | None = None
    # How the weights were trained (``train_seed``, ``steps``, ``precision``, ``device``, ``threads``, ``world_size``),
    # recorded by `ExportBundle` so every benchmark result can say which draw of the training it measured.
    training: dict[str, Any] | None = None


def _check_tokenizers(vocab: UnifiedVocab, tokenizers: Mapping[str, Modality], source: str) -> None:
    for name, rng in vocab.modalities.items():
        tok = tokenizers.get(name)
        if tok is None:
            continue
        if tok.codebook_size != rng.spec.codebook_size:
            raise ValueError(f"the {name} tokenizer ({type(tok.codec).__name__}) has {tok.codebook_size} codes but "
                             f"{source} reserves {rng.spec.codebook_size} ids for {name}: the model was trained with "
                             "another tokenizer; pass the matching tokenizer checkpoint")


def load_bundle(path: str | Path, tokenizers: Mapping[str, str | TokenizerRef | Modality] | None = None,
                device: str | torch.device = "cpu", dtype: torch.dtype | None = None, trust_code: bool = False,
                image_decoder: str | None = None, adapter: str | Path | None = None) -> Bundle:
    """Load an AnyGPT checkpoint folder (ours or the release's) or a Lightning ``.ckpt`` of `AnyGPTLM`.

    Args:
        tokenizers: modality -> tokenizer (a `Modality`, or a `TokenizerRef` / what `TokenizerRef.of` reads: a path or
            ``class_path=path``); overrides ``anygpt.json``.
            Modalities without one use the folder's ``anygpt.json`` entry, else the registered default.
        trust_code: allow the checkpoint's files to name tokenizer classes that are neither registered nor part of
            anygpt (their modules get imported). Off by default: opening a checkpoint never runs code it names.
        image_decoder: the unCLIP pipeline folder that turns SEED embeddings into pixels; overrides anygpt.json's.
        adapter: a LoRA adapter folder (PEFT format, written by a LoRA fine-tune) applied to the loaded model and
            merged into it; the same outputs as the run's merged export.
    """
    path = hub.local(path, "checkpoint")  # a hub id (org/name[@revision]) -> its snapshot
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist: give an AnyGPT/HF checkpoint folder, a "
                                "Lightning .ckpt written by `anygpt fit` or a hub id (org/name[@revision])")
    if path.is_file():
        model, vocab, info = _from_lightning(path)
    elif (path / "config.json").exists():
        model, vocab, info = _from_folder(path, tokenizers)
    elif (path / ".metadata").exists():
        raise ValueError(f"{path} is a distributed (FSDP) checkpoint; consolidate it first with "
                         f"`python -m torch.distributed.checkpoint.format_utils dcp_to_torch {path} model.ckpt`")
    else:
        raise FileNotFoundError(f"{path} holds neither config.json (HF/AnyGPT folder) nor a checkpoint file")
    if adapter is not None:
        load_adapter(model, adapter)
    model = model.to(device=device, dtype=dtype or model.lm_head.weight.dtype).eval()
    refs = {name: TokenizerRef.of(ref) for name, ref in info.get("tokenizers", {}).items()}
    if path.is_dir():  # tokenizers copied into the export are recorded relative to it
        refs = {name: ref.anchored(path) for name, ref in refs.items()}
    recorded_in = str(path / BUNDLE_FILE) if path.is_dir() else str(path)
    loaded: dict[str, Modality] = {}
    release = info.pop("release_layout", False)
    for name in vocab.modalities:
        given = (tokenizers or {}).get(name)
        if isinstance(given, Modality):
            loaded[name] = given
        elif given is None and name not in refs and release and name in RELEASE_TOKENIZERS:
            # the release's own tokenizer by hub id, fetched and loaded when the modality is first used
            refs[name] = RELEASE_TOKENIZERS[name]
            codec = LazyCodec(refs[name], name, vocab.modalities[name].spec.codebook_size, trust_code)
            loaded[name] = Modality(vocab.modalities[name].spec, codec)  # type: ignore[arg-type]
        else:
            ref = TokenizerRef.of(given) if given is not None else refs.get(name, TokenizerRef())
            refs[name] = ref
            loaded[name] = ref.load(name, trust_code=trust_code, source=None if given is not None else recorded_in)
        loaded[name].codec.to(device).eval()
    _check_tokenizers(vocab, {k: v for k, v in loaded.items() if not isinstance(v.codec, LazyCodec)}, str(path))
    bundle = Bundle(model, vocab, loaded, info.get("system_prompt"), refs, bool(info.get("force_marker", True)),
                    image_decoder if image_decoder is not None else info.get("image_decoder"), info.get("template"),
                    info.get("task"), info.get("training"))
    attach_image_decoder(bundle)
    return bundle


def attach_image_decoder(bundle: Bundle) -> None:
    """Give the image codec the unCLIP pipeline ``bundle.image_decoder`` names: the second stage of its `decode`
    (SEED codes -> image embedding -> pixels)."""
    image = bundle.tokenizers.get("image")
    codec = getattr(image, "codec", None)
    if bundle.image_decoder is None or codec is None:
        return
    if isinstance(codec, LazyCodec) and not codec.loaded:  # attached when the image tokenizer is first used
        codec.after_load(lambda loaded: _attach_unclip(loaded, bundle.image_decoder))
        return
    _attach_unclip(codec.load() if isinstance(codec, LazyCodec) else codec, bundle.image_decoder)


def _attach_unclip(codec: Codec, image_decoder: str) -> None:
    if not hasattr(codec, "attach_unclip"):
        return
    path = hub.local(image_decoder, "image decoder", hub.UNCLIP.allow, hub.UNCLIP.ignore)
    if not path.is_dir():
        raise FileNotFoundError(f"image decoder {path} does not exist: pass a local copy of "
                                f"{hub.UNCLIP.name} (a diffusers pipeline folder) or its hub id")
    device = next(itertools.chain(codec.parameters(), codec.buffers()), torch.empty(0)).device
    codec.attach_unclip(path, device=device)


class LazyCodec:
    """Stands in for a release tokenizer named by hub id until its modality is first used (text in, text out fetches
    and loads none of them): any attribute but `to`/`eval` loads it, then behaves as the codec itself."""

    def __init__(self, ref: TokenizerRef, modality: str, codebook_size: int, trust_code: bool = False) -> None:
        self._ref, self._modality, self._expected, self._trust = ref, modality, codebook_size, trust_code
        self._codec: Codec | None = None
        self._device: torch.device | str = "cpu"
        self._hooks: list = []

    @property
    def loaded(self) -> bool:
        return self._codec is not None

    def load(self) -> Codec:
        if self._codec is None:
            codec = self._ref.load(self._modality, trust_code=self._trust).codec
            if codec.codebook_size != self._expected:
                raise ValueError(f"the {self._modality} tokenizer {self._ref.path} has {codec.codebook_size} codes "
                                 f"but the checkpoint reserves {self._expected}: pass the matching tokenizer")
            codec = codec.to(self._device).eval()
            for hook in self._hooks:  # e.g. the image decoder; a failure leaves the tokenizer unloaded
                hook(codec)
            self._codec = codec
        return self._codec

    def after_load(self, hook) -> None:
        self._hooks.append(hook)

    def to(self, device: torch.device | str) -> LazyCodec:
        self._device = device
        if self._codec is not None:
            self._codec.to(device)
        return self

    def eval(self) -> LazyCodec:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def _from_folder(path: Path, tokenizers: Mapping[str, Any] | None) -> tuple[LLaMA, UnifiedVocab, dict[str, Any]]:
    info = json.loads((path / BUNDLE_FILE).read_text()) if (path / BUNDLE_FILE).exists() else {}
    if info.get("modalities"):
        specs = [configured_modality(m)[0] for m in info["modalities"]]
    else:  # a released AnyGPT folder: the paper's modalities in release order, checked against its files below
        specs = list(RELEASE_MODALITIES)
        info.setdefault("system_prompt", RELEASE_SYSTEM_PROMPT)
        info.setdefault("force_marker", False)
        if not info.get("tokenizers"):  # its tokenizers and image decoder: the release's, by hub id
            info["release_layout"] = True
            info.setdefault("image_decoder", hub.UNCLIP.name)
    vocab = vocab_from_checkpoint(path, specs)
    model = hf.load_hf(path)
    if model.config.vocab_size < len(vocab):
        raise ValueError(f"{path}: the model has {model.config.vocab_size} embedding rows but its tokenizer has "
                         f"{len(vocab)} ids")
    return model, vocab, info


def _from_lightning(path: Path) -> tuple[LLaMA, UnifiedVocab, dict[str, Any]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = ckpt.get("hyper_parameters") or {}
    data = ckpt.get("datamodule_hyper_parameters") or {}
    if "text_tokenizer" not in data or "modalities" not in data:
        raise ValueError(f"{path} was not trained with AnyGPTDataModule (no vocabulary recorded); export the model "
                         "with `anygpt convert` from a folder instead")
    specs = [configured_modality(m)[0] for m in data["modalities"]]
    vocab = UnifiedVocab(load_text_tokenizer(data["text_tokenizer"]), specs,
                         instruction_tokens=bool(data.get("instruction_tokens")))
    built = ckpt.get(BUILT_KEY) or hp  # checkpoints written before BUILT_KEY kept it in the hyper-parameters
    if built.get("resolved_config"):
        config = Config(**built["resolved_config"])
    else:
        config = Config.from_name(hp.get("model", "tiny"), **(hp.get("model_config") or {}))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    vocab_size = next(v.shape[0] for k, v in state.items() if k.startswith("embed_tokens.") and "delta" not in k)
    config = replace(config, vocab_size=vocab_size)
    with torch.device("meta"):
        model = LLaMA(config)
    if hp.get("lora"):  # a LoRA run: its adapters are merged into the model it returns
        if hp["lora"].get("quantize"):
            raise ValueError(f"{path} is a QLoRA checkpoint (4-bit base); load the run's export instead, or the base "
                             "checkpoint with --loading.adapter and the adapter folder the run wrote")
        apply_lora(model, LoraOptions(**hp["lora"]), range(vocab.text.vocab_size, len(vocab)))
    model.load_state_dict(state, assign=True, strict=True)
    if hp.get("lora"):
        merge_lora(model)
    model.reset_rope_cache()  # non-persistent tables, rebuilt on first use
    if vocab_size != len(vocab):
        raise ValueError(f"{path}: {vocab_size} embedding rows but the recorded vocabulary has {len(vocab)} ids")
    info = {"system_prompt": data.get("system_prompt"), "tokenizers": data.get("tokenizers") or {},
            "training": {"train_seed": None, "steps": ckpt.get("global_step")}}  # written before the record was kept
    for key, state in (ckpt.get("callbacks") or {}).items():  # what ExportBundle would record (see its state_dict)
        if str(key).startswith("ExportBundle") and isinstance(state, dict):
            info.update({k: state[k] for k in ("system_prompt", "template", "task", "training")
                         if state.get(k) is not None})
    return model, vocab, info


def save_bundle(bundle: Bundle, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write ``bundle`` as an AnyGPT folder that HF ``AutoModelForCausalLM``/``AutoTokenizer`` can open too."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hf.save_hf(bundle.model, directory, dtype=dtype)
    write_tokenizer_files(bundle.vocab, directory)
    info = {"format": "anygpt", "version": 1,
            "modalities": [r.spec.to_dict() for r in bundle.vocab.modalities.values()],
            "instruction_tokens": bundle.vocab.instruction_tokens, "system_prompt": bundle.system_prompt,
            "force_marker": bundle.force_marker, "image_decoder": bundle.image_decoder,
            "template": bundle.template, "task": bundle.task, "training": bundle.training,
            "tokenizers": {name: asdict(portable_ref(ref, directory, name)) for name, ref in bundle.refs.items()}}
    (directory / BUNDLE_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return directory


def portable_ref(ref: TokenizerRef, directory: Path, name: str) -> TokenizerRef:
    """How an export records a tokenizer so it loads from any working directory (and any machine for the first two):
    a shipped one as ``anygpt-assets:...``; a small self-contained one (a `save_pretrained` folder, up to
    `COPY_TOKENIZERS_UP_TO` bytes) copied into the export as ``tokenizers/<name>``, recorded relative to it; anything
    else by its absolute path (a release file such as ``seed_quantizer.pt`` finds its ``eva_vit_g.pth`` beside it or
    one folder up: copied alone, it would lose it)."""
    ref = ref.portable()
    if not ref.path or ref.path.startswith(ASSETS_SCHEME):
        return ref
    source, inside = Path(ref.path), directory / TOKENIZER_DIR / name
    if not source.exists():
        raise FileNotFoundError(f"the {name} tokenizer {source} does not exist (working directory {Path.cwd()}): "
                                "give its path as it is from here, or an absolute one")
    if source.resolve() != inside.resolve():
        self_contained = source.is_dir() and (source / CONFIG_FILE).is_file()
        size = sum(f.stat().st_size for f in source.rglob("*") if f.is_file()) if self_contained else 0
        if not self_contained or size > COPY_TOKENIZERS_UP_TO:
            return replace(ref, path=str(source.resolve()))
        if inside.exists():
            shutil.rmtree(inside)
        shutil.copytree(source, inside)
    return replace(ref, path=f"{TOKENIZER_DIR}/{name}")


def write_tokenizer_files(vocab: UnifiedVocab, directory: Path) -> None:
    """The text tokenizer plus the unified vocabulary's added tokens, in the release's layout.

    A SentencePiece vocabulary is written the way transformers 4.34 (the release's version) saves a slow
    ``LlamaTokenizer``: ``tokenizer.model``, ``added_tokens.json``, ``special_tokens_map.json`` and a
    ``tokenizer_config.json`` whose ``added_tokens_decoder`` and ``legacy`` flag say how the text is split.
    """
    text = vocab.text
    text.save(directory)
    added = {tok: vocab.token_id(tok) for tok in vocab.added_tokens}
    (directory / "added_tokens.json").write_text(json.dumps(dict(sorted(added.items())), indent=2,
                                                            ensure_ascii=False) + "\n")
    if isinstance(text, HFTextTokenizer):
        from tokenizers import AddedToken, Tokenizer

        tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in vocab.added_tokens])
        tok.save(str(directory / "tokenizer.json"))
        config = {"model_max_length": 4096, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                  "tokenizer_class": "PreTrainedTokenizerFast"}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        return
    if not isinstance(text, SentencePieceTextTokenizer):
        raise TypeError(f"cannot write tokenizer files for {type(text).__name__}")

    def entry(content: str, special: bool) -> dict[str, Any]:
        lstrip, rstrip = vocab.strip.get(content, (False, False))
        return {"content": content, "lstrip": lstrip, "normalized": not special, "rstrip": rstrip,
                "single_word": False, "special": special}

    controls = {idx: piece for piece, idx in text.control_tokens().items()}
    decoder = {str(idx): entry(piece, True) for idx, piece in sorted(controls.items())}
    decoder.update({str(idx): entry(tok, False) for tok, idx in added.items()})
    names = {"bos_token": text.bos_id, "eos_token": text.eos_id, "unk_token": text.unk_id}
    names = {key: controls[idx] for key, idx in names.items() if idx is not None}
    config = {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder, **names,
              "clean_up_tokenization_spaces": False, "legacy": text.legacy, "model_max_length": 4096,
              "pad_token": None, "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
              "tokenizer_class": "LlamaTokenizer", "use_default_system_prompt": True}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    special_map = {key: {k: v for k, v in entry(piece, True).items() if k != "special"}
                   for key, piece in names.items()}
    (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))


# ----------------------------------------------------------------------------------------------------------------------
# `anygpt convert`
# ----------------------------------------------------------------------------------------------------------------------
def hf_to_anygpt(source: str, out: str, tokenizers: dict[str, str] | None = None,
                 modalities: Sequence[str] | None = None, image_decoder: str | None = None) -> str:
    """Check a released (HF-format) AnyGPT folder and write it as an AnyGPT folder with ``anygpt.json``.

    Args:
        source: the HF folder (fnlp/AnyGPT-base or -chat downloaded locally).
        out: output folder.
        tokenizers: modality -> tokenizer checkpoint (a path, or "class_path=path"), recorded in ``anygpt.json``.
        modalities: registered modality names in vocabulary order (default: the release's image, speech, music).
        image_decoder: the local SD 2.1 unCLIP pipeline folder for image output, recorded in anygpt.json.
    """
    specs = [spec_of(codec_class(m), m) for m in modalities] if modalities else list(RELEASE_MODALITIES)
    vocab = vocab_from_checkpoint(source, specs)
    model = hf.load_hf(source)
    refs = {name: TokenizerRef.of(value) for name, value in (tokenizers or {}).items()}
    if image_decoder is not None and not Path(image_decoder, "model_index.json").exists():
        raise FileNotFoundError(f"image decoder {image_decoder} is not a diffusers pipeline folder (no "
                                "model_index.json): pass a local copy of stabilityai/stable-diffusion-2-1-unclip")
    bundle = Bundle(model, vocab, {}, RELEASE_SYSTEM_PROMPT, refs, force_marker=False,
                    image_decoder=str(Path(image_decoder).resolve()) if image_decoder else None)
    save_bundle(bundle, out)
    print(f"[convert] {source} -> {out}: {len(vocab)} ids ({', '.join(vocab.modalities)}), layout checked")
    return out


def ckpt_to_anygpt(ckpt: str, out: str, tokenizers: dict[str, str] | None = None, trust_code: bool = False,
                   template: str | None = None, task: str | None = None) -> str:
    """Export a Lightning ``.ckpt`` of `AnyGPTLM` (written by ``anygpt fit``) as an AnyGPT/HF folder.

    Args:
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        template, task: the chat defaults to record (default: those of the run's `ExportBundle`, kept in the .ckpt).
    """
    given = {name: TokenizerRef.of(value) for name, value in (tokenizers or {}).items()}
    bundle = load_bundle(ckpt, given, trust_code=trust_code)
    bundle.template = template or bundle.template
    bundle.task = task or bundle.task
    save_bundle(bundle, out)
    print(f"[convert] {ckpt} -> {out}")
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Export at the end of training
# ----------------------------------------------------------------------------------------------------------------------
def training_record(trainer: L.Trainer) -> dict[str, Any]:
    """What a training run's result depends on beyond its config: the seed Lightning's ``seed_everything`` drew with,
    the steps taken, the precision chosen (``NativeBf16Mixed`` decides per machine) and the hardware and thread count
    (float reductions differ across CPU types and thread counts, so runs are bit-identical only when these match)."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    return {"train_seed": int(seed) if seed is not None else None, "steps": trainer.global_step,
            "precision": str(trainer.precision), "device": device_name(trainer.strategy.root_device),
            "threads": torch.get_num_threads(), "world_size": trainer.world_size}


class ExportBundle(L.Callback):
    """Write the trained model as an AnyGPT folder (``save_bundle``) when ``fit`` ends, ready for ``anygpt chat`` and
    ``anygpt benchmark``. Works under FSDP2: the full state dict is gathered to rank 0 first.

    Args:
        dirpath: output folder.
        tokenizers: modality -> tokenizer checkpoint recorded in ``anygpt.json`` (default: the data module's
            ``tokenizer_refs`` when it has them).
        system_prompt: recorded for chat.
        template: the prompt template chat uses by default (``chat`` for a model trained on anygpt's chat data
            without instruction tokens; None: chat when the vocabulary has them, else base).
        task: the default task prompt wrapping chat messages (``none``: as written, as anygpt's chat data is rendered;
            None: the release's task prompts).
        adapter_dirpath: where a LoRA run also writes its adapter on its own (PEFT format); default: ``adapter`` next
            to ``dirpath``. The export itself is the merged model.
    """

    def __init__(self, dirpath: str, tokenizers: dict[str, str] | None = None, system_prompt: str | None = None,
                 template: str | None = None, task: str | None = None, adapter_dirpath: str | None = None) -> None:
        if template is not None and template not in TEMPLATES:
            raise ValueError(f"ExportBundle template must be one of {TEMPLATES} or null, got {template!r}")
        self.dirpath, self.tokenizers, self.system_prompt = dirpath, tokenizers, system_prompt
        self.template, self.task = template, task
        self.adapter_dirpath = adapter_dirpath or str(Path(dirpath).parent / "adapter")

    def state_dict(self) -> dict[str, Any]:
        """Kept in every Lightning checkpoint, so that ``anygpt convert ckpt-to-anygpt`` (and loading a ``.ckpt``
        directly) records the same chat defaults as the export at the end of fit."""
        return {"system_prompt": self.system_prompt, "template": self.template, "task": self.task}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # after state_dict (Lightning's order): a benchmark of this .ckpt can say which seed and step it measured
        checkpoint["callbacks"][self.state_key]["training"] = training_record(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        model = pl_module.model
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if trainer.global_rank != 0:
            return
        datamodule = trainer.datamodule
        refs = self.tokenizers or getattr(datamodule, "tokenizer_refs", None) or {}
        lora = getattr(pl_module, "lora", None)
        if lora is not None and lora.quantize:
            # a 4-bit base cannot be merged exactly: the adapter goes onto the original (unquantized) base weights
            hp = pl_module.hparams
            plain = build_model(model.config, hp.pretrained, hp.vocab_init)
            inject_like(plain, model)
            set_peft_model_state_dict(plain, get_peft_model_state_dict(model, state_dict=full))
        else:
            with torch.device("meta"):
                plain = LLaMA(model.config)
            if is_lora(model):
                inject_like(plain, model)
            plain.load_state_dict({k: v.float() for k, v in full.items()}, assign=True)
        plain.reset_rope_cache()
        if is_lora(plain):
            save_adapter(plain, self.adapter_dirpath)
            merge_lora(plain)
            print(f"[export] LoRA adapter (PEFT format) written to {self.adapter_dirpath}")
        bundle = Bundle(plain, datamodule.vocab, {}, self.system_prompt,
                        {name: TokenizerRef.of(ref) for name, ref in refs.items()}, template=self.template,
                        task=self.task, training=training_record(trainer))
        save_bundle(bundle, self.dirpath)
        print(f"[export] AnyGPT folder written to {self.dirpath}")
