"""Build the bundled demo corpus: images, speech, music and dialogues in the layouts of the real datasets.

```
OUT/manifest.json                       seed, scale, version, counts per modality and split, content hash
OUT/coco/dataset_coco.json              Karpathy-style json (+ "scene" parameters per image)
OUT/coco/images/{train,val,test}/*.png  64x64 procedural scenes
OUT/librispeech/{train-clean-100,dev-clean,test-clean}/SPK/CHAP/SPK-CHAP-NNNN.flac  (16 kHz)
                .../SPK-CHAP.trans.txt  (UPPERCASE)   .../SPK-CHAP.alignment.json  (espeak phonemes + times)
OUT/librispeech/SPEAKERS.TXT
OUT/vctk/wav48/pNNN/pNNN_MMM.wav (48 kHz)  OUT/vctk/txt/pNNN/pNNN_MMM.txt  OUT/vctk/speaker-info.txt
OUT/vctk/alignment/pNNN.json
OUT/musiccaps/musiccaps.csv             MusicCaps columns + split + synthesis parameters
OUT/musiccaps/audio/YTID.flac           5 s, 32 kHz mono
OUT/anyinstruct/{train,val,test}.jsonl  AnyInstruct rows; media as [image: PATH] relative to OUT/anyinstruct/
OUT/anyinstruct/speech/SPLIT/*.flac     spoken-dialogue turns (16 kHz)
```
Every item is generated from its own seed (seed, modality, index), so the output is byte-identical whatever the
number of worker processes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from anygpt.data.demo import dialogues, images, music, sentences, speech

VERSION = 2  # 2: dev-clean, test-clean and two VCTK speakers in voices unseen in training
MANIFEST = "manifest.json"
SUBDIRS = ("coco", "librispeech", "vctk", "musiccaps", "anyinstruct")

# counts at scale 1.0: (train, val, test)
N_IMAGES = (2500, 250, 250)
N_UTTERANCES = (2640, 180, 180)
N_MUSIC = (800, 100, 100)
N_DIALOGUES = (2600, 200, 200)
SPOKEN_FRACTION = 0.1  # share of dialogues that are speech in, speech out
VCTK_UTTERANCES_PER_SPEAKER = 12
CHAPTER_SIZE = 25  # utterances per LibriSpeech-style chapter
SPLITS = ("train", "val", "test")
LIBRISPEECH_SPLITS = {"train": "train-clean-100", "val": "dev-clean", "test": "test-clean"}


def _scaled(counts: tuple[int, ...], scale: float) -> tuple[int, ...]:
    return tuple(max(1, round(n * scale)) for n in counts)


def build_demo_corpus(
    out: Path, seed: int = 0, scale: float = 1.0, workers: int | None = None, force: bool = False, progress: bool = True
) -> dict:
    """Build the demo corpus under ``out`` (or return the manifest of an identical existing build).

    ``scale`` multiplies every item count (e.g. 0.02 for tests); ``workers`` processes render media in parallel
    (default: all CPUs, at most 8). A build is complete once ``manifest.json`` is written; anything else found in the
    corpus folders is an interrupted build and is replaced.
    """
    out = Path(out)
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    existing = load_manifest(out)
    if (
        not force
        and existing
        and existing.get("version") == VERSION
        and existing.get("seed") == seed
        and existing.get("scale") == scale
        and _count_files(out) == existing.get("n_files")
    ):
        return existing
    start = time.perf_counter()
    workers = workers or min(os.cpu_count() or 1, 8)
    (out / MANIFEST).unlink(missing_ok=True)
    for sub in SUBDIRS:
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)

    plan = _plan(out, seed, scale)
    results = _run(plan["tasks"], workers, progress)
    counts = _write_metadata(out, seed, plan, results)

    manifest = {
        "name": "anygpt-demo-corpus",
        "version": VERSION,
        "seed": seed,
        "scale": scale,
        "counts": counts,
        "sample_rates": {
            "librispeech": 16000,
            "vctk": 48000,
            "musiccaps": music.SAMPLE_RATE,
            "anyinstruct_speech": 16000,
        },
        "image_size": images.SIZE,
        "layout": {
            "coco": "coco/dataset_coco.json",
            "librispeech": "librispeech",
            "vctk": "vctk",
            "musiccaps": "musiccaps/musiccaps.csv",
            "musiccaps_audio": "musiccaps/audio",
            "anyinstruct": {s: f"anyinstruct/{s}.jsonl" for s in SPLITS},
        },
        "librispeech_splits": LIBRISPEECH_SPLITS,
        "n_files": _count_files(out),
        "content_hash": content_hash(out),
        "build_seconds": round(time.perf_counter() - start, 1),
        "workers": workers,
    }
    (out / "README.md").write_text(_readme(manifest))
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out / MANIFEST)  # atomic: a manifest means a complete build
    return manifest


def _readme(manifest: dict) -> str:
    counts = json.dumps(manifest["counts"], indent=1)
    return (
        f"# anygpt demo corpus (version {manifest['version']}, seed {manifest['seed']}, scale {manifest['scale']})\n\n"
        "Generated by `anygpt.data.demo.build_demo_corpus`; every file is synthetic (procedural images, espeak-ng "
        "speech, synthesized music). Layout:\n\n```" + __doc__.split("```")[1] + "```\n\n"
        "Dialogue messages reference media as `[image: PATH]`, `[speech: PATH]`, `[music: PATH]`, PATH relative to "
        "the `anyinstruct/` folder (`anygpt.data.sources.anyinstruct.read_anyinstruct` resolves them); "
        "each row's `media` maps PATH to the item's transcript or caption.\n\nCounts:\n\n```json\n" + counts + "\n```\n"
    )


def load_manifest(out: Path) -> dict | None:
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a corrupt manifest means an unknown build: rebuild


def _files(out: Path) -> list[Path]:
    return sorted(p for sub in SUBDIRS if (out / sub).exists() for p in (out / sub).rglob("*") if p.is_file())


def _count_files(out: Path) -> int:
    return len(_files(out))


def content_hash(out: Path) -> str:
    """sha256 over every file's relative path and bytes (the manifest itself excluded)."""
    h = hashlib.sha256()
    for path in _files(Path(out)):
        h.update(path.relative_to(out).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _split_ranges(counts: tuple[int, ...]) -> list[tuple[str, int]]:
    """[(split, index)] in order: train items first, then val, then test."""
    return [(split, i) for split, n in zip(SPLITS, counts, strict=True) for i in range(n)]


def _unique_sentences(rng: np.random.Generator, n: int) -> list[str]:
    seen, out = set(), []
    for _ in range(n * 50):
        s = sentences.sentence(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
            if len(out) == n:
                return out
    raise RuntimeError(f"the sentence grammar produced only {len(out)} distinct sentences out of {n} requested")


def _plan(out: Path, seed: int, scale: float) -> dict:
    """Decide every item (paths, texts, voices, splits) in the main process; workers only render."""
    tasks: list[tuple[str, object]] = []
    # images
    image_items = []
    for gid, (split, _) in enumerate(_split_ranges(_scaled(N_IMAGES, scale))):
        rel = f"images/{split}/demo_{split}_{gid:06d}.png"
        image_items.append({"id": gid, "split": split, "rel": rel})
        tasks.append(("image", (seed, gid, str(out / "coco" / rel))))
    # speech: distinct sentences per split (dev/test texts never occur in train), distinct voices per split
    text_rng = np.random.default_rng([seed, 20])
    n_utt = _scaled(N_UTTERANCES, scale)
    n_vctk = max(1, round(VCTK_UTTERANCES_PER_SPEAKER * scale))
    texts = _unique_sentences(text_rng, sum(n_utt) + n_vctk * len(speech.VCTK_VOICES))
    utterances = []
    chapter_counter = 0
    offset = 0
    for split, n in zip(SPLITS, n_utt, strict=True):
        voices = speech.LIBRISPEECH_VOICES[split]  # disjoint speakers per split
        per_voice: dict[str, list[int]] = {}
        for k in range(n):
            per_voice.setdefault(voices[k % len(voices)].speaker, []).append(k)
        for voice in voices:
            ks = per_voice.get(voice.speaker, [])
            for c0 in range(0, len(ks), CHAPTER_SIZE):
                chapter_counter += 1
                chapter = str(1000 + 37 * chapter_counter)
                for u, k in enumerate(ks[c0 : c0 + CHAPTER_SIZE]):
                    index = offset + k
                    utt_id = f"{voice.speaker}-{chapter}-{u:04d}"
                    rel = f"{LIBRISPEECH_SPLITS[split]}/{voice.speaker}/{chapter}/{utt_id}.flac"
                    utterances.append(
                        {
                            "index": index,
                            "split": split,
                            "id": utt_id,
                            "speaker": voice.speaker,
                            "chapter": chapter,
                            "rel": rel,
                            "text": texts[index],
                        }
                    )
                    tasks.append(
                        (
                            "speech",
                            speech.SpeechItem(seed, index, texts[index], voice, str(out / "librispeech" / rel), 16000),
                        )
                    )
        offset += n
    vctk = []
    for v, voice in enumerate(speech.VCTK_VOICES):
        for u in range(n_vctk):
            index = 100_000 + v * 1000 + u
            text = texts[offset + v * n_vctk + u]
            utt_id = f"{voice.speaker}_{u + 1:03d}"
            vctk.append({"index": index, "id": utt_id, "speaker": voice.speaker, "text": text})
            tasks.append(
                (
                    "speech",
                    speech.SpeechItem(
                        seed, index, text, voice, str(out / "vctk" / "wav48" / voice.speaker / f"{utt_id}.wav"), 48000
                    ),
                )
            )
    # music
    music_items = []
    for gid, (split, _) in enumerate(_split_ranges(_scaled(N_MUSIC, scale))):
        ytid = f"demo{gid:07d}"
        music_items.append({"id": gid, "split": split, "ytid": ytid})
        tasks.append(("music", (seed, gid, str(out / "musiccaps" / "audio" / f"{ytid}.flac"))))
    # spoken dialogues are planned now (their audio is rendered with everything else)
    dialogue_plan = []
    for gid, (split, _) in enumerate(_split_ranges(_scaled(N_DIALOGUES, scale))):
        rng = np.random.default_rng([seed, 4, gid])
        entry = {"id": gid, "split": split, "spoken": None}
        if rng.random() < SPOKEN_FRACTION:
            pairs = dialogues.plan_spoken(rng)
            refs = []
            for t, (q, a) in enumerate(pairs):
                q_ref, a_ref = (
                    f"speech/{split}/d{gid:06d}_{t}_user.flac",
                    f"speech/{split}/d{gid:06d}_{t}_assistant.flac",
                )
                voices = speech.LIBRISPEECH_VOICES[split]  # a test dialogue's user speaks in a test voice
                user_voice = voices[int(rng.integers(len(voices)))]
                tasks.append(
                    (
                        "speech",
                        speech.SpeechItem(
                            seed, 200_000 + 10 * gid + 2 * t, q, user_voice, str(out / "anyinstruct" / q_ref), 16000
                        ),
                    )
                )
                tasks.append(
                    (
                        "speech",
                        speech.SpeechItem(
                            seed,
                            200_000 + 10 * gid + 2 * t + 1,
                            a,
                            speech.ASSISTANT_VOICE,
                            str(out / "anyinstruct" / a_ref),
                            16000,
                        ),
                    )
                )
                refs.append((q_ref, a_ref))
            entry["spoken"] = (pairs, refs)
        dialogue_plan.append(entry)
    return {
        "tasks": tasks,
        "images": image_items,
        "utterances": utterances,
        "vctk": vctk,
        "music": music_items,
        "dialogues": dialogue_plan,
    }


def _render(task: tuple[str, object]) -> tuple[str, str, dict]:
    kind, payload = task
    if kind == "image":
        return kind, payload[2], images.make_image(payload)
    if kind == "music":
        return kind, payload[2], music.make_music(payload)
    return kind, payload.path, speech.synthesize(payload)


def _run(tasks: list, workers: int, progress: bool) -> dict[str, dict]:
    """Render every task; results keyed by output path. Slow tasks (music) first for load balance."""
    order = sorted(range(len(tasks)), key=lambda i: {"music": 0, "speech": 1, "image": 2}[tasks[i][0]])
    ordered = [tasks[i] for i in order]
    bar = tqdm(total=len(tasks), desc="demo corpus", unit="item", disable=not progress, smoothing=0.05)
    results: dict[str, dict] = {}
    if workers <= 1:
        try:
            for task in ordered:
                _, path, res = _render(task)
                results[path] = res
                bar.update()
        finally:
            speech.close_client()
        bar.close()
        return results
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))  # inherited by the workers: one thread each
    try:
        with get_context("spawn").Pool(workers) as pool:
            for _, path, res in pool.imap_unordered(_render, ordered, chunksize=8):
                results[path] = res
                bar.update()
            pool.close()  # let workers exit normally: they stop their speech servers
            pool.join()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    bar.close()
    return results


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _write_metadata(out: Path, seed: int, plan: dict, results: dict[str, dict]) -> dict:
    counts: dict[str, dict[str, int]] = {}
    # COCO Karpathy json
    entries, sentid = [], 0
    for item in plan["images"]:
        res = results[str(out / "coco" / item["rel"])]
        sents = []
        for text in res["captions"]:
            sents.append({"tokens": images.tokenize_caption(text), "raw": text, "imgid": item["id"], "sentid": sentid})
            sentid += 1
        folder, name = item["rel"].rsplit("/", 1)
        entries.append(
            {
                "filepath": folder,
                "filename": name,
                "imgid": item["id"],
                "split": item["split"],
                "sentences": sents,
                "sentids": [s["sentid"] for s in sents],
                "cocoid": item["id"],
                "scene": res["scene"],
            }
        )
    _write_json(out / "coco" / "dataset_coco.json", {"images": entries, "dataset": "coco"})
    counts["images"] = _count_by_split(plan["images"])
    counts["captions"] = {k: 5 * v for k, v in counts["images"].items()}

    # LibriSpeech tree: transcripts and alignment sidecars per chapter
    chapters: dict[tuple[str, str, str], list[dict]] = {}
    for utt in plan["utterances"]:
        chapters.setdefault((LIBRISPEECH_SPLITS[utt["split"]], utt["speaker"], utt["chapter"]), []).append(utt)
    for (lsplit, spk, chap), utts in chapters.items():
        folder = out / "librispeech" / lsplit / spk / chap
        lines = [f"{u['id']} {u['text'].upper()}" for u in utts]
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
        align = {u["id"]: _alignment(results[str(out / "librispeech" / u["rel"])]) for u in utts}
        _write_json(folder / f"{spk}-{chap}.alignment.json", align)
    minutes: dict[str, float] = {}
    for utt in plan["utterances"]:
        minutes[utt["speaker"]] = (
            minutes.get(utt["speaker"], 0.0) + results[str(out / "librispeech" / utt["rel"])]["duration"] / 60
        )
    header = ";ID    |SEX| SUBSET           |MINUTES| NAME\n"
    rows = [
        f"{v.speaker:<6}| {v.sex} | {subset:<16} | {minutes.get(v.speaker, 0):5.2f} | espeak {v.name}"
        for split, voices in speech.LIBRISPEECH_VOICES.items()
        for subset in [LIBRISPEECH_SPLITS[split]]
        for v in voices
    ]
    (out / "librispeech" / "SPEAKERS.TXT").write_text(header + "\n".join(rows) + "\n")
    counts["librispeech"] = {LIBRISPEECH_SPLITS[s]: n for s, n in _count_by_split(plan["utterances"]).items()}
    counts["librispeech_hours"] = round(sum(minutes.values()) / 60, 3)

    # VCTK tree
    by_speaker: dict[str, list[dict]] = {}
    for utt in plan["vctk"]:
        by_speaker.setdefault(utt["speaker"], []).append(utt)
        txt = out / "vctk" / "txt" / utt["speaker"] / f"{utt['id']}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text(utt["text"].capitalize() + ".\n")
    for spk, utts in by_speaker.items():
        align = {u["id"]: _alignment(results[str(out / "vctk" / "wav48" / spk / f"{u['id']}.wav")]) for u in utts}
        _write_json(out / "vctk" / "alignment" / f"{spk}.json", align)
    info = ["ID  AGE  GENDER  ACCENTS  REGION  COMMENTS"]
    info += [
        f"{v.speaker[1:]}  {23 + i}  {v.sex}  {v.accent}  Demo  espeak {v.name}"
        for i, v in enumerate(speech.VCTK_VOICES)
    ]
    (out / "vctk" / "speaker-info.txt").write_text("\n".join(info) + "\n")
    counts["vctk"] = {"speakers": len(by_speaker), "utterances": len(plan["vctk"])}

    # MusicCaps csv
    param_cols = [
        "key",
        "mode",
        "tempo_bpm",
        "melody_instrument",
        "accompaniment_instrument",
        "accompaniment_style",
        "bass",
        "drums",
        "dynamics",
        "rhythm",
        "progression",
    ]
    with open(out / "musiccaps" / "musiccaps.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "ytid",
                "start_s",
                "end_s",
                "audioset_positive_labels",
                "aspect_list",
                "caption",
                "author_id",
                "is_balanced_subset",
                "is_audioset_eval",
                "split",
                *param_cols,
            ]
        )
        for item in plan["music"]:
            res = results[str(out / "musiccaps" / "audio" / f"{item['ytid']}.flac")]
            p = res["params"]
            writer.writerow(
                [
                    item["ytid"],
                    0,
                    int(music.DURATION),
                    "/m/04rlf",
                    repr(res["aspects"]),
                    res["caption"],
                    0,
                    False,
                    item["split"] == "test",
                    item["split"],
                    *[json.dumps(p[c]) if isinstance(p[c], list) else p[c] for c in param_cols],
                ]
            )
    counts["music"] = _count_by_split(plan["music"])
    counts["test_texts_seen_in_training"] = _test_texts_seen_in_training(out, plan, results)

    # AnyInstruct dialogues, media referenced relative to OUT/anyinstruct/
    pools = {}
    for split in SPLITS:
        pools[split] = dialogues.MediaPools(
            images=[
                {
                    "ref": f"../coco/{i['rel']}",
                    "captions": results[str(out / "coco" / i["rel"])]["captions"],
                    "scene": results[str(out / "coco" / i["rel"])]["scene"],
                }
                for i in plan["images"]
                if i["split"] == split
            ],
            speech=[
                {"ref": f"../librispeech/{u['rel']}", "text": u["text"]}
                for u in plan["utterances"]
                if u["split"] == split
            ],
            music=[
                {
                    "ref": f"../musiccaps/audio/{m['ytid']}.flac",
                    "caption": results[str(out / "musiccaps" / "audio" / f"{m['ytid']}.flac")]["caption"],
                    "params": results[str(out / "musiccaps" / "audio" / f"{m['ytid']}.flac")]["params"],
                }
                for m in plan["music"]
                if m["split"] == split
            ],
        )
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for entry in plan["dialogues"]:
        did = f"demo-{entry['split']}-{entry['id']:06d}"
        if entry["spoken"] is not None:
            rows[entry["split"]].append(dialogues.spoken_dialogue(did, *entry["spoken"]))
        else:
            rng = np.random.default_rng([seed, 5, entry["id"]])
            rows[entry["split"]].append(dialogues.media_dialogue(did, rng, pools[entry["split"]]))
    for split, split_rows in rows.items():
        _write_lines(out / "anyinstruct" / f"{split}.jsonl", (json.dumps(r, ensure_ascii=False) for r in split_rows))
    counts["dialogues"] = {s: len(r) for s, r in rows.items()}
    counts["spoken_dialogues"] = {s: sum(r["task"] == "spoken_dialogue" for r in rs) for s, rs in rows.items()}
    return counts


def _test_texts_seen_in_training(out: Path, plan: dict, results: dict[str, dict]) -> dict[str, int]:
    """How many test texts (captions, transcripts, VCTK sentences, music captions) also occur in train or val: the
    builder reports it so that a grammar change that starts leaking test texts shows up (tests require 0)."""

    def caption_of(item: dict) -> list[str]:
        return results[str(out / "coco" / item["rel"])]["captions"]

    def music_caption(item: dict) -> list[str]:
        return [results[str(out / "musiccaps" / "audio" / f"{item['ytid']}.flac")]["caption"]]

    def seen(items: list[dict], texts_of) -> int:
        known = {t.lower() for item in items if item["split"] != "test" for t in texts_of(item)}
        return sum(t.lower() in known for item in items if item["split"] == "test" for t in texts_of(item))

    transcripts = {u["text"] for u in plan["utterances"] if u["split"] != "test"}
    return {
        "captions": seen(plan["images"], caption_of),
        "transcripts": sum(u["text"] in transcripts for u in plan["utterances"] if u["split"] == "test"),
        "vctk_sentences": sum(u["text"] in transcripts for u in plan["vctk"]),
        "music_captions": seen(plan["music"], music_caption),
    }


def _alignment(res: dict) -> dict:
    return {k: res[k] for k in ("duration", "ipa", "phonemes", "words", "rate_wpm")} | {"voice": res["voice"]["name"]}


def _count_by_split(items: Iterable[dict]) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for item in items:
        counts[item["split"]] += 1
    return counts


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def demo(
    out: Path = Path("data/demo"), seed: int = 0, scale: float = 1.0, workers: int | None = None, force: bool = False
) -> None:
    """Build the demo corpus (images, speech, music, dialogues) under OUT; skips work if an identical build exists.

    Args:
        out: output folder.
        seed: random seed; the same seed and scale give byte-identical files.
        scale: multiplies every item count (1.0 = 3000 images, 3000 utterances, 1000 music clips, 3000 dialogues).
        workers: parallel processes (default: CPU count, at most 8).
        force: rebuild even if OUT/manifest.json says an identical corpus is there.
    """
    manifest = build_demo_corpus(out, seed=seed, scale=scale, workers=workers, force=force)
    print(json.dumps({k: manifest[k] for k in ("counts", "n_files", "content_hash", "build_seconds")}, indent=2))
