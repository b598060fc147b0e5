"""The path a user of the released AnyGPT takes, through the real CLI, on a release-shaped checkpoint with small random
weights (`tests.release_checkpoint`): ``anygpt convert hf-to-anygpt``, ``anygpt chat`` in every direction (voice
prompt included) and every ``anygpt benchmark`` task, each writing its files.

Random weights: this proves the plumbing (files load in their real layouts, every span decodes into a file), not
quality. Here (not beside the other CLI tests) to share the benchmark tests' demo corpus and judges.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from anygpt.cli import main
from tests.release_checkpoint import SEED, STORM, write_release_checkpoint

pytestmark = pytest.mark.slow

TOKENIZERS = {"image": "anygpt.modalities.image.seed.SEEDImageTokenizer={seed}",
              "speech": "anygpt.modalities.speech.codec.SpeechTokenizerCodec={speech}",
              "music": "anygpt.modalities.music.encodec32k.EncodecMusicTokenizer={music}"}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    files = write_release_checkpoint(root / "downloads")
    tokenizers = {name: ref.format(seed=files.seed_quantizer.parent, speech=files.speech_modules,
                                   music=files.encodec) for name, ref in TOKENIZERS.items()}
    main(["convert", "hf-to-anygpt", str(files.chat), str(root / "chat"), "--tokenizers", json.dumps(tokenizers),
          "--image_decoder", str(files.unclip)])
    return files, root / "chat"


def test_release_files_have_the_release_layout(release):
    from anygpt.modalities.image.seed import seed_config_from_state
    from anygpt.modalities.speech.soundstorm import _from_anygpt_layout, config_from_state
    from anygpt.vocab import read_tokenizer_files

    files, converted = release
    names = {p.name for p in files.chat.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json", "added_tokens.json",
            "special_tokens_map.json"} <= names
    added = read_tokenizer_files(files.chat).ids
    assert added["<-Res->"] + 1 == added["<-Ins->"] == max(added.values())  # stage 2's order
    storm = torch.load(files.speech_modules / "soundstorm" / "speechtokenizer_soundstorm_mls.pt", weights_only=True)
    assert any(".conv.ds_conv." in k for k in storm)  # AnyGPT's soundstorm.py layout
    assert config_from_state(_from_anygpt_layout(storm)) == STORM
    seed = torch.load(files.seed_quantizer, weights_only=True)
    eva = torch.load(files.eva_vit, weights_only=True)
    assert "quantize.embedding.weight" in seed and "Qformer.bert.encoder.layer.0.attention.self.query.weight" in seed
    assert "patch_embed.proj.weight" in eva and f"blocks.{SEED['vit_depth']}.norm1.weight" in eva  # one block more
    merged = {**seed, **{f"visual_encoder.{k}": v for k, v in eva.items()}}
    assert seed_config_from_state(merged) == SEED
    info = json.loads((converted / "anygpt.json").read_text())
    assert info["image_decoder"] == str(files.unclip.resolve()) and info["force_marker"] is False


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / "in.png")
    t = np.arange(16000 * 2) / 16000
    sf.write(str(folder / "speech.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    t = np.arange(32000 * 7) / 32000  # longer than the chat's 5 s music window
    sf.write(str(folder / "music.wav"), (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 32000)
    return folder


def test_chat_in_every_direction(release, inputs, tmp_path):
    _, converted = release
    script = tmp_path / "script.txt"
    script.write_text("\n".join([
        "Hello there, how are you?",  # text -> text
        f"Describe this [image: {inputs / 'in.png'}]",  # image -> text
        f"What does this say? [speech: {inputs / 'speech.wav'}]",  # speech -> text
        f"[music: {inputs / 'music.wav'}]",  # music -> text
        "/image a red circle on a blue background",  # text -> image (unCLIP)
        "/speech Hello world, how are you?",  # text -> speech (SoundStorm, the voice prompt)
        "/music calm piano, slow tempo",  # text -> music
        f"/speech [speech: {inputs / 'speech.wav'}]",  # speech -> speech
    ]) + "\n")
    # random weights never ask for media by themselves: force the start markers (an option of ours)
    main(["chat", "--ckpt", str(converted), "--out", str(tmp_path / "chat"), "--input", str(script),
          "--decoding.max_new_tokens", "36", "--voice", str(inputs / "speech.wav"), "--prompt.force_marker",
          "true"])
    out = tmp_path / "chat"
    html = (out / "transcript.html").read_text()
    assert "template chat" in html and "constrained decoding on" in html
    assert (out / "turn005-0.png").is_file()  # 32 codes -> SEED embedding -> unCLIP -> pixels
    assert Image.open(out / "turn005-0.png").size[0] > 0
    for turn, rate in ((6, 16000), (7, 32000), (8, 16000)):
        wav, sr = sf.read(str(out / f"turn{turn:03d}-0.wav"))
        assert sr == rate and len(wav) > 0
    assert html.count("<img") >= 2 and html.count("<audio") >= 5  # the inputs and the outputs
    assert "&lt;eos&gt;" not in html and "&lt;-Ins-&gt;" not in html


def test_every_benchmark_task(release, demo_corpus, judges, tmp_path):
    from tests.benchmarks.tasks.test_tasks import CASES

    _, converted = release
    generation = {"coco-caption": {"max_new_tokens": 6, "num_beams": 2},
                  "librispeech-asr": {"max_new_tokens": 6, "num_beams": 2},
                  "musiccaps-caption": {"max_new_tokens": 6, "num_beams": 2},
                  "coco-t2i": {"max_new_tokens": 34}, "vctk-tts": {"max_new_tokens": 20},
                  "musiccaps-gen": {"max_new_tokens": 24}}
    for name, (kind, tags, extra) in CASES.items():
        out = tmp_path / name
        args = ["benchmark", name, "--ckpt", str(converted), "--data", str(demo_corpus), "--limit", "2",
                "--batch_size", "2", "--out", str(out), "--generation", json.dumps(generation[name]),
                "--prompt.template", "chat"]
        for key, value in extra.items():
            if key != "limit":
                args += [f"--{key}", str(value)]
        if kind is not None:
            args += ["--judge", judges[kind]]
        main(args)
        saved = json.loads((out / "results.json").read_text())
        assert saved["task"] == name and saved["n"] == 2, name
        assert saved["decoding"]["constrained"] is True and saved["decoding"]["template"] == "chat"
        html = (out / "report.html").read_text()
        for tag in tags:
            assert tag in html, (name, tag)
        for src in [s.split('"')[0] for s in html.split('src="')[1:]]:
            assert (out / src).is_file(), (name, src)
        if name == "coco-t2i":
            assert list((out / "media").rglob("*.png")), "generated images are written through unCLIP"
        if name in ("vctk-tts", "musiccaps-gen"):
            assert list((out / "media").rglob("*.wav")), name
