"""The demo corpus's metadata in the real datasets' layouts: COCO Karpathy json, LibriSpeech transcripts and
SPEAKERS.TXT, VCTK texts and speaker info, the MusicCaps csv and AnyInstruct jsonl rows (`build` renders the media)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from anygpt.data.demo import dialogues, images, music, speech

SPLITS = ("train", "val", "test")
LIBRISPEECH_SPLITS = {"train": "train-clean-100", "val": "dev-clean", "test": "test-clean"}


def write_layouts(out: Path, seed: int, plan: dict, results: dict[str, dict]) -> dict:
    """Write the metadata of every layout (COCO json, LibriSpeech transcripts and SPEAKERS.TXT, VCTK texts, the
    MusicCaps csv, AnyInstruct jsonl) for the planned items and their rendered ``results``; returns the counts."""
    counts: dict[str, dict[str, int]] = {}
    # COCO Karpathy json
    entries, sentid = [], 0
    for item in plan["images"]:
        res = _image(out, results, item)
        sents = []
        for text in res["captions"]:
            sents.append({"tokens": images.tokenize_caption(text), "raw": text, "imgid": item["id"], "sentid": sentid})
            sentid += 1
        folder, name = item["rel"].rsplit("/", 1)
        entries.append({"filepath": folder, "filename": name, "imgid": item["id"], "split": item["split"],
                        "sentences": sents, "sentids": [s["sentid"] for s in sents], "cocoid": item["id"],
                        "scene": res["scene"]})
    write_json(out / "coco" / "dataset_coco.json", {"images": entries, "dataset": "coco"})
    counts["images"] = count_by_split(plan["images"])
    counts["captions"] = {k: 5 * v for k, v in counts["images"].items()}

    # LibriSpeech tree: transcripts and alignment sidecars per chapter
    chapters: dict[tuple[str, str, str], list[dict]] = {}
    minutes: dict[str, float] = {}
    for utt in plan["utterances"]:
        chapters.setdefault((LIBRISPEECH_SPLITS[utt["split"]], utt["speaker"], utt["chapter"]), []).append(utt)
        duration = results[str(out / "librispeech" / utt["rel"])]["duration"]
        minutes[utt["speaker"]] = minutes.get(utt["speaker"], 0.0) + duration / 60
    for (lsplit, spk, chap), utts in chapters.items():
        folder = out / "librispeech" / lsplit / spk / chap
        lines = [f"{u['id']} {u['text'].upper()}" for u in utts]
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
        align = {u["id"]: _alignment(results[str(out / "librispeech" / u["rel"])]) for u in utts}
        write_json(folder / f"{spk}-{chap}.alignment.json", align)
    header = ";ID    |SEX| SUBSET           |MINUTES| NAME\n"
    rows = [f"{v.speaker:<6}| {v.sex} | {LIBRISPEECH_SPLITS[split]:<16} | {minutes.get(v.speaker, 0):5.2f} | "
            f"espeak {v.name}" for split, voices in speech.LIBRISPEECH_VOICES.items() for v in voices]
    (out / "librispeech" / "SPEAKERS.TXT").write_text(header + "\n".join(rows) + "\n")
    counts["librispeech"] = {LIBRISPEECH_SPLITS[s]: n for s, n in count_by_split(plan["utterances"]).items()}
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
        write_json(out / "vctk" / "alignment" / f"{spk}.json", align)
    info = ["ID  AGE  GENDER  ACCENTS  REGION  COMMENTS"]
    info += [f"{v.speaker[1:]}  {23 + i}  {v.sex}  {v.accent}  Demo  espeak {v.name}"
             for i, v in enumerate(speech.VCTK_VOICES)]
    (out / "vctk" / "speaker-info.txt").write_text("\n".join(info) + "\n")
    counts["vctk"] = {"speakers": len(by_speaker), "utterances": len(plan["vctk"])}

    # MusicCaps csv
    param_cols = ["key", "mode", "tempo_bpm", "melody_instrument", "accompaniment_instrument", "accompaniment_style",
                  "bass", "drums", "dynamics", "rhythm", "progression"]
    with open(out / "musiccaps" / "musiccaps.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
                         "is_balanced_subset", "is_audioset_eval", "split", *param_cols])
        for item in plan["music"]:
            res = _clip(out, results, item)
            p = res["params"]
            writer.writerow([item["ytid"], 0, int(music.DURATION), "/m/04rlf", repr(res["aspects"]), res["caption"], 0,
                             False, item["split"] == "test", item["split"],
                             *[json.dumps(p[c]) if isinstance(p[c], list) else p[c] for c in param_cols]])
    counts["music"] = count_by_split(plan["music"])
    counts["test_texts_seen_in_training"] = _test_texts_seen_in_training(out, plan, results)

    # AnyInstruct dialogues, media referenced relative to OUT/anyinstruct/
    pools = {}
    for split in SPLITS:
        pools[split] = dialogues.MediaPools(
            images=[{"ref": f"../coco/{i['rel']}", "captions": _image(out, results, i)["captions"],
                     "scene": _image(out, results, i)["scene"]} for i in plan["images"] if i["split"] == split],
            speech=[{"ref": f"../librispeech/{u['rel']}", "text": u["text"]}
                    for u in plan["utterances"] if u["split"] == split],
            music=[{"ref": f"../musiccaps/audio/{m['ytid']}.flac", "caption": _clip(out, results, m)["caption"],
                    "params": _clip(out, results, m)["params"]} for m in plan["music"] if m["split"] == split],
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
        path = out / "anyinstruct" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows), encoding="utf-8")
    counts["dialogues"] = {s: len(r) for s, r in rows.items()}
    counts["spoken_dialogues"] = {s: sum(r["task"] == "spoken_dialogue" for r in rs) for s, rs in rows.items()}
    return counts


def _image(out: Path, results: dict[str, dict], item: dict) -> dict:
    return results[str(out / "coco" / item["rel"])]


def _clip(out: Path, results: dict[str, dict], item: dict) -> dict:
    return results[str(out / "musiccaps" / "audio" / f"{item['ytid']}.flac")]


def _test_texts_seen_in_training(out: Path, plan: dict, results: dict[str, dict]) -> dict[str, int]:
    """How many test texts (captions, transcripts, VCTK sentences, music captions) also occur in train or val: the
    builder reports it so that a grammar change that starts leaking test texts shows up (tests require 0)."""

    def seen(items: list[dict], texts_of) -> int:
        known = {t.lower() for item in items if item["split"] != "test" for t in texts_of(item)}
        return sum(t.lower() in known for item in items if item["split"] == "test" for t in texts_of(item))

    transcripts = {u["text"] for u in plan["utterances"] if u["split"] != "test"}
    return {
        "captions": seen(plan["images"], lambda item: _image(out, results, item)["captions"]),
        "transcripts": sum(u["text"] in transcripts for u in plan["utterances"] if u["split"] == "test"),
        "vctk_sentences": sum(u["text"] in transcripts for u in plan["vctk"]),
        "music_captions": seen(plan["music"], lambda item: [_clip(out, results, item)["caption"]]),
    }


def _alignment(res: dict) -> dict:
    return {k: res[k] for k in ("duration", "ipa", "phonemes", "words", "rate_wpm")} | {"voice": res["voice"]["name"]}


def count_by_split(items: Iterable[dict]) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for item in items:
        counts[item["split"]] += 1
    return counts


def write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
