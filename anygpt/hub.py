"""Models named by Hugging Face Hub id (``org/name`` or ``org/name@revision``), wherever anygpt takes a model.

`local` turns a name into a local path: an existing path is itself; a hub id is the repository's snapshot from
huggingface_hub (its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and the token it finds, all as its own client reads
them). Offline and not cached, the error names the repository and how to fetch it. `RELEASE` lists what the released
AnyGPT needs; ``anygpt download release --to DIR`` (`download`) fetches all of it for a machine without network.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from anygpt.assets import SCHEME as ASSETS_SCHEME
from anygpt.assets import asset_path

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w.\-/]+))?$")
FETCH_HINT = ("fetch it where there is network with `anygpt download {name}` (or `hf download {repo}`) and copy the "
              "Hugging Face cache (HF_HOME) here, or pass a local folder instead")


class HubError(FileNotFoundError):
    """A model named by hub id that cannot be had: not cached while offline, unknown, gated, or a bad revision."""


def is_hub_id(name: str | Path | None) -> bool:
    """Whether ``name`` is a hub id rather than a local path (an existing path always wins)."""
    if name is None or isinstance(name, Path) or Path(str(name)).exists():
        return False
    text = str(name)
    return bool(HUB_ID.match(text)) and not text.startswith((".", "/")) and not text.endswith((".ckpt", ".pt"))


def split(name: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``)."""
    match = HUB_ID.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a hub id (org/name or org/name@revision)")
    return match["repo"], match["revision"]


def offline() -> bool:
    return bool(constants.HF_HUB_OFFLINE)


def local(name: str | Path, what: str = "model", allow_patterns: list[str] | None = None,
          ignore_patterns: list[str] | None = None) -> Path:
    """A local path for ``name``: itself when it is no hub id, else the snapshot of the repository it names.

    Args:
        what: what the name is for (``checkpoint``, ``speech tokenizer``, ...), in errors.
        allow_patterns, ignore_patterns: the files of the repository that are needed (huggingface_hub's globs).
    """
    if str(name).startswith(ASSETS_SCHEME):  # shipped with anygpt (``anygpt-assets:models/demo``)
        return asset_path(name)
    if not is_hub_id(name):
        return Path(name)
    repo, revision = split(str(name))
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=allow_patterns,
                                      ignore_patterns=ignore_patterns, endpoint=os.environ.get("HF_ENDPOINT"),
                                      local_files_only=offline()))
    except GatedRepoError:
        raise HubError(f"{what} {name}: the repository is gated; accept its terms on the Hub and log in (`hf auth "
                       "login` or HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise HubError(f"{what} {name}: no such repository on the Hub (or it is private: log in with `hf auth "
                       "login` or HF_TOKEN); a local folder of that name does not exist either") from None
    except RevisionNotFoundError:
        raise HubError(f"{what} {name}: the repository {repo} has no revision {revision!r}") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        why = "HF_HUB_OFFLINE is set" if offline() else "the Hub could not be reached"
        raise HubError(f"{what} {name}: the repository {repo} is not in the Hugging Face cache and {why}; "
                       + FETCH_HINT.format(name=name, repo=repo)) from None


def cache_dir() -> Path:
    """Where files fetched by URL are kept (beside huggingface_hub's own cache)."""
    return Path(constants.HF_HOME) / "anygpt-files"


def fetch_url(url: str, what: str = "file") -> Path:
    """A file published outside the Hub (BLIP-2's EVA ViT), downloaded once into `cache_dir`; offline, from there."""
    target = cache_dir() / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    if offline():
        raise HubError(f"{what} {url}: not in {cache_dir()} and HF_HUB_OFFLINE is set; fetch it with `anygpt "
                       f"download release` where there is network (or download it to {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:  # noqa: S310 - https
        shutil.copyfileobj(response, out, 2**20)
    partial.replace(target)
    return target


@dataclass(frozen=True)
class Component:
    """A piece of the release: a hub repository (with the files needed) or a file by URL."""

    name: str
    what: str
    allow: list[str] | None = field(default=None, hash=False)
    ignore: list[str] | None = field(default=None, hash=False)


EVA_VIT_URL = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/eva_vit_g.pth"
RELEASE_CHAT = "fnlp/AnyGPT-chat"
SEED = Component("AILab-CVC/seed-tokenizer-2", "image tokenizer", allow=["seed_quantizer.pt", "*.json", "*.md"])
SPEECH = Component("fnlp/AnyGPT-speech-modules", "speech tokenizer")
MUSIC = Component("facebook/encodec_32khz", "music tokenizer")
UNCLIP = Component("stabilityai/stable-diffusion-2-1-unclip", "image decoder",
                   allow=["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors"], ignore=["*fp16*"])
RELEASE = (Component(RELEASE_CHAT, "checkpoint"), SEED, SPEECH, MUSIC, UNCLIP, Component(EVA_VIT_URL, "EVA ViT"))


def fetch(component: Component) -> Path:
    if component.name.startswith("https://"):
        return fetch_url(component.name, component.what)
    return local(component.name, component.what, component.allow, component.ignore)


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def download(what: str, to: str | None = None) -> dict[str, str]:
    """Fetch a model, or everything the released AnyGPT needs (``release``), printing each one's size.

    Args:
        what: ``release`` (fnlp/AnyGPT-chat, its tokenizers, the image decoder and BLIP-2's EVA ViT), or one hub id.
        to: also copy them into this folder (one subfolder each), for a cluster without network; without it they stay
            in the Hugging Face cache (HF_HOME), where hub ids find them offline.
    """
    parts = RELEASE if what == "release" else (Component(what, "model"),)
    fetched: dict[str, str] = {}
    total = 0
    for part in parts:
        path = fetch(part)
        if to is not None:
            dest = Path(to) / (path.name if path.is_file() else part.name.replace("/", "--"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file():
                shutil.copyfile(path, dest)
            else:
                shutil.copytree(path, dest, dirs_exist_ok=True)
            path = dest
        size = _size(path)
        total += size
        print(f"{part.name}: {size / 2**30:.2f} GB in {path}", flush=True)
        fetched[part.name] = str(path)
    print(f"total: {total / 2**30:.2f} GB", flush=True)
    return fetched
