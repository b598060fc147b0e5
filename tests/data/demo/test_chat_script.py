"""The chat showcase (docs/demo/chat_script.txt) only uses inputs the demo model never saw in training: test-split
media, speech in held-out voices, and a sentence to speak that is a test transcript."""

import re
from pathlib import Path

import numpy as np

from anygpt.data.demo import build, speech

SCRIPT = Path(__file__).resolve().parents[3] / "docs" / "demo" / "chat_script.txt"


def test_chat_script_inputs_are_unseen_in_training():
    lines = SCRIPT.read_text().splitlines()
    media = re.findall(r"\[(image|speech|music): ([^\]]+)\]", "\n".join(lines))
    assert {kind for kind, _ in media} == {"image", "speech", "music"}
    test_speakers = {v.speaker for v in speech.TEST_VOICES}
    n_train_val_music = sum(build.N_MUSIC[:2])
    for kind, path in media:
        if kind == "image":
            assert "/coco/images/test/" in path, path
        elif kind == "music":
            assert int(re.search(r"demo(\d+)\.flac$", path).group(1)) >= n_train_val_music, path
        elif "/librispeech/" in path:
            assert "/test-clean/" in path and path.split("/test-clean/")[1].split("/")[0] in test_speakers, path
        else:
            assert "/anyinstruct/speech/test/" in path and path.endswith("_user.flac"), path
    # the sentence to speak is one of the held-out test-clean sentences (train and val sentences are distinct)
    said = [line.split("Say this:", 1)[1].strip() for line in lines if "Say this:" in line]
    texts = build._unique_sentences(np.random.default_rng([0, 20]), sum(build.N_UTTERANCES))
    train_val, test = set(texts[: sum(build.N_UTTERANCES[:2])]), set(texts[sum(build.N_UTTERANCES[:2]) :])
    assert said and all(s in test and s not in train_val for s in said)
