"""Multi-turn any-to-any dialogues in the AnyInstruct format, built from the corpus's own media.

A message is plain text in which media items appear as placeholders ``[image: PATH]``, ``[speech: PATH]`` or
``[music: PATH]`` (see `anygpt.data.sources.base.parse_media`), with PATH relative to the folder holding the
dialogue file. Each row also carries a ``media`` map (PATH -> modality and the item's text: transcript or caption) so
that templates which need the words of a speech turn (AnyGPT's ``<-Ins-> transcript <-Res-> answer`` replies) can
build them without running ASR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anygpt.data.demo.images import NUMBER_WORDS, REGIONS, shape_noun
from anygpt.data.demo.music import KEY_NAMES, mood, tempo_word
from anygpt.data.demo.sentences import pick, question_answer


@dataclass
class MediaPools:
    """The media of one split that dialogues may reference (paths already relative to the dialogue file)."""

    images: list[dict]  # {"ref", "captions", "scene"}
    speech: list[dict]  # {"ref", "text"}
    music: list[dict]  # {"ref", "caption", "params"}


def sentence_case(text: str) -> str:
    """ "where did you go" -> "Where did you go?"; statements get a full stop."""
    question = text.split(" ", 1)[0] in ("what", "where", "why", "how", "did", "which", "can", "could", "do", "is")
    return text[:1].upper() + text[1:] + ("?" if question else ".")


def ref(modality: str, path: str) -> str:
    return f"[{modality}: {path}]"


def _noun_phrase(caption: str) -> str | None:
    """ "A picture of two red stars ..." -> "two red stars ..."; None for captions that are clauses."""
    text = caption[0].lower() + caption[1:]
    for prefix in ("a picture of ", "an image showing "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    if text.startswith(("there ", "on a ", "an image where ")):
        return None
    return text


def _some_questions(rng: np.random.Generator, questions: list[tuple[str, str]], tag: str) -> list[tuple[str, str]]:
    """One or two of ``questions`` in random order; the media placeholder ``tag`` stays on the first only."""
    order = rng.permutation(len(questions))[: int(rng.integers(1, 3))]
    chosen = [questions[int(i)] for i in order]
    return [(q if k == 0 else q.replace(f" {tag}", ""), a) for k, (q, a) in enumerate(chosen)]


def _image_turns(rng: np.random.Generator, item: dict, media: dict) -> list[tuple[str, str]]:
    media[item["ref"]] = {"modality": "image", "text": item["captions"][0]}
    img = ref("image", item["ref"])
    caption = str(pick(rng, item["captions"]))
    scene = item["scene"]
    kind = int(rng.integers(0, 3))
    if kind == 0:  # image -> text
        ask = pick(rng, ("Describe this image.", "What is in this picture?", "Write a caption for this image.",
                         "Can you tell me what you see here?"))
        return [(f"{ask} {img}" if rng.random() < 0.5 else f"{img} {ask}", caption)]
    if kind == 1:  # text -> image
        phrases = [p for p in (_noun_phrase(c) for c in item["captions"]) if p]
        if phrases:
            ask = pick(rng, ("Draw {}.", "Please make a picture of {}.", "Can you paint {}?"))
            text = pick(rng, phrases)
        else:  # every caption is a clause ("there are ...", "on a ... background, ...")
            ask, text = pick(rng, ("Generate an image: {}.", "Draw this: {}.")), caption[0].lower() + caption[1:]
        text = text.rstrip(".")
        return [(ask.format(text), f"{pick(rng, ('Here it is.', 'Sure, here is the picture.', 'Done.'))} {img}")]
    # visual questions grounded in the scene parameters
    group = pick(rng, scene["groups"])
    count, colour, region = group["count"], group["colour"], group["region"]
    things, be = shape_noun(group["shape"], count), "is" if count == 1 else "are"
    they = "It is" if count == 1 else "They are"
    questions = [
        (f"How many {shape_noun(group['shape'], 2)} are there? {img}", f"There {be} {NUMBER_WORDS[count]} {things}."),
        (f"What colour is the background? {img}", f"The background is {scene['background']['colour']}."),
        (f"What colour {be} the {things}? {img}", f"{they} {colour}."),
    ]
    if len(scene["groups"]) == 1 and region in REGIONS:
        questions.append((f"Where {be} the {colour} {things}? {img}",
                          f"{they} in the {region}{'' if region == 'center' else ' of the image'}."))
    return _some_questions(rng, questions, img)


def _speech_turns(rng: np.random.Generator, item: dict, media: dict) -> list[tuple[str, str]]:
    media[item["ref"]] = {"modality": "speech", "text": item["text"]}
    sp = ref("speech", item["ref"])
    if rng.random() < 0.5:  # speech -> text
        ask = pick(rng, ("What is said here?", "Transcribe this recording.", "Write down what you hear.",
                         "What does the speaker say?"))
        return [(f"{ask} {sp}" if rng.random() < 0.5 else f"{sp} {ask}", sentence_case(item["text"]))]
    ask = pick(rng, ("Say this: {}", "Read this sentence aloud: {}", "Please speak the words: {}",
                     'Can you say "{}" out loud?'))
    return [(ask.format(item["text"]), sp)]


def _music_turns(rng: np.random.Generator, item: dict, media: dict) -> list[tuple[str, str]]:
    media[item["ref"]] = {"modality": "music", "text": item["caption"]}
    mu = ref("music", item["ref"])
    p = item["params"]
    kind = int(rng.integers(0, 3))
    if kind == 0:  # music -> text
        ask = pick(rng, ("Describe this music.", "What does this piece sound like?", "Write a caption for this clip."))
        return [(f"{ask} {mu}", item["caption"])]
    if kind == 1:  # text -> music
        ask = pick(rng, ("Compose music like this: {}", "Create a clip: {}", "Please write a piece that fits: {}"))
        return [(ask.format(item["caption"]), f"{pick(rng, ('Here is the music.', 'Sure, listen to this.'))} {mu}")]
    key = f"{KEY_NAMES.get(p['key'], p['key'])} {p['mode']}"
    drums = "No, there are no drums." if p["drums"] == "none" else f"Yes, there is a {p['drums']}."
    return _some_questions(rng, [
        (f"Which instrument plays the melody? {mu}", f"The melody is played by a {p['melody_instrument']}."),
        (f"Is this in a major or a minor key? {mu}", f"It is in {key}."),
        (f"How fast is this piece? {mu}", f"It is {tempo_word(p['tempo_bpm'])}, about {p['tempo_bpm']} BPM."),
        (f"Are there drums in this clip? {mu}", drums),
        (f"What is the mood of this music? {mu}", f"It sounds {mood(p)}."),
    ], mu)


def _music_to_music(rng: np.random.Generator, item: dict, pool: list[dict], media: dict) -> list[tuple[str, str]]:
    """ "Compose something like this" answered with another clip of the same melody instrument and mode."""
    p = item["params"]
    similar = [m for m in pool if m is not item and m["params"]["melody_instrument"] == p["melody_instrument"]
               and m["params"]["mode"] == p["mode"]]
    if not similar:
        return []
    other = similar[int(rng.integers(len(similar)))]
    media[item["ref"]] = {"modality": "music", "text": item["caption"]}
    media[other["ref"]] = {"modality": "music", "text": other["caption"]}
    ask = pick(rng, ("Compose another piece in the style of this one.", "Make music like this.",
                     "Can you write something similar to this?"))
    answer = f"Here is another {p['mode']} piece with a {p['melody_instrument']} melody."
    return [(f"{ask} {ref('music', item['ref'])}", f"{answer} {ref('music', other['ref'])}")]


def plan_spoken(rng: np.random.Generator) -> list[tuple[str, str]]:
    """(question, answer) pairs of one spoken dialogue: 1 or 2 turns."""
    return [question_answer(rng) for _ in range(1 if rng.random() < 0.6 else 2)]


def spoken_dialogue(dialogue_id: str, pairs: list[tuple[str, str]], refs: list[tuple[str, str]]) -> dict:
    """A speech-in speech-out dialogue; ``refs`` holds the (question, answer) audio paths of each turn."""
    media, conversation = {}, []
    for (q, a), (q_ref, a_ref) in zip(pairs, refs, strict=True):
        media[q_ref] = {"modality": "speech", "text": q}
        media[a_ref] = {"modality": "speech", "text": a}
        conversation.append(
            [{"role": "user", "message": ref("speech", q_ref)}, {"role": "assistant", "message": ref("speech", a_ref)}]
        )
    return {"id": dialogue_id, "conversation": conversation, "media": media, "task": "spoken_dialogue"}


def media_dialogue(dialogue_id: str, rng: np.random.Generator, pools: MediaPools) -> dict:
    """One to three exchanges, each about an image, a speech clip or a music clip (mixed modalities)."""
    media: dict[str, dict] = {}
    conversation, tasks = [], []
    for _ in range(int(rng.choice((1, 1, 2, 3)))):
        choices = [k for k, pool in (("image", pools.images), ("speech", pools.speech), ("music", pools.music)) if pool]
        kind = str(pick(rng, choices))
        pool = getattr(pools, "images" if kind == "image" else kind)
        item = pool[int(rng.integers(len(pool)))]
        turns = _music_to_music(rng, item, pool, media) if kind == "music" and rng.random() < 0.2 else []
        if not turns:
            turns = {"image": _image_turns, "speech": _speech_turns, "music": _music_turns}[kind](rng, item, media)
        conversation += [[{"role": "user", "message": u}, {"role": "assistant", "message": a}] for u, a in turns]
        tasks.append(kind)
    return {"id": dialogue_id, "conversation": conversation, "media": media, "task": "+".join(tasks)}
