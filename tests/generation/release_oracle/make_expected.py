"""One-off oracle: the ids the released AnyGPT's own tokenizer stack gives for our parity cases.

NOT part of the test run and never a project dependency. It runs once, in a throwaway environment holding the
release's pinned stack (transformers 4.34.1, its slow `LlamaTokenizer` with ``use_fast=False``, sentencepiece), and it
builds every prompt string with the release's own prompter and conversation template, imported from a local clone of
OpenMOSS/AnyGPT. Its output, ``expected.json`` beside this file, is what ``test_release_tokenization.py`` compares
our encoding with. Re-run it only when a case is added (the exact commands)::

    python3 -m venv /tmp/release-oracle && /tmp/release-oracle/bin/pip install transformers==4.34.1 \
        sentencepiece==0.1.99 protobuf
    .venv/bin/python -c "from tests.generation.release_oracle import spm_model as m; \
        open('/tmp/oracle.model', 'wb').write(m.train())"          # the project's sentencepiece trains the model
    PYTHONPATH=$PWD /tmp/release-oracle/bin/python tests/generation/release_oracle/make_expected.py \
        --spm /tmp/oracle.model --release /path/to/OpenMOSS-AnyGPT \
        --out tests/generation/release_oracle/expected.json

The SentencePiece model is trained by the project's environment (the trainer's bytes differ between sentencepiece
versions); its SHA-256 is recorded so the test knows it encodes with the model the oracle saw.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path

# Media spans as the release writes them (anything2token.modality_tokens_to_string), with small fixed codes.
IMAGE = [5, 8191, 17, 0] * 8  # 32 codes, as SEED gives
SPEECH = [3, 1023, 77, 512, 9, 9, 0, 401]
MUSIC = [[1, 2047, 5], [0, 33, 2000], [7, 7, 7], [100, 200, 300]]  # 4 codebooks x 3 frames


def release_added_tokens(prompter, a2t) -> list[list[str]]:
    """The `add_tokens` calls of stage 1 and stage 2, in order (each inner list is one call)."""
    calls = [[t] for t in (prompter.user_name, prompter.chatbot_name, prompter.user_end, prompter.chatbot_end)]
    for spec in a2t.modal_special_str.values():
        calls.append([f"<{spec['prefix']}{x}>" for x in range(spec["vocab_size"])] + [spec["sos"], spec["eos"]])
    calls += [[t] for t in prompter.special_tokens if all(t not in c for c in calls)]  # stage 2: <-Res->, <-Ins->
    return calls


def build_tokenizer(model: Path, calls, strip: bool = False, **kwargs):
    """``strip``: add the single named tokens as ``AddedToken(lstrip=True, rstrip=True)`` (a folder whose
    ``tokenizer_config.json`` records such flags) instead of plain strings."""
    from transformers import AddedToken, LlamaTokenizer

    tok = LlamaTokenizer(vocab_file=str(model), **kwargs)
    for call in calls:
        if not all(t in tok.get_vocab() for t in call):
            tok.add_tokens([AddedToken(t, lstrip=True, rstrip=True) for t in call] if strip and len(call) == 1
                           else call)
    return tok


def cases(prompter, conversation_module, a2t) -> list[dict]:
    """Each case: what our side needs to rebuild the prompt (``inputs``) and the release's string (``text``)."""
    make = prompter.Prompter()
    image = a2t.modality_tokens_to_string(IMAGE, "image")
    speech = a2t.modality_tokens_to_string(SPEECH, "speech")
    music = a2t.modality_tokens_to_string(MUSIC, "music")
    media = {"image": image, "speech": speech, "music": music}
    out: list[dict] = []

    def chat(name: str, history: list[tuple[str, str]], message: str, inputs: dict) -> None:
        conv = conversation_module.get_conv_template("MMGPT")
        for user, assistant in history:
            conv.append_message(conv.roles[0], user)
            conv.append_message(conv.roles[1], assistant)
        conv.append_message(conv.roles[0], message)
        out.append({"name": name, "kind": "chat", "inputs": {**inputs, "history": history},
                    "text": conv.get_prompt()})

    def task(task_name: str, instruction: str, images=(), speeches=(), musics=()) -> str:
        return make.generate_insturction_prompt(task_name, instruction, list(images), list(speeches),
                                                    list(musics)).strip()

    chat("chat-text-to-image", [], task("Text-to-Image Generation", "a red circle on a blue background"),
         {"task": "text-to-image", "text": "a red circle on a blue background"})
    chat("chat-text-to-image-no-period", [], task("Text-to-Image Generation", "two green squares"),
         {"task": "text-to-image", "text": "two green squares"})
    chat("chat-speech-instruction", [], task("Speech-Instruction", "", speeches=[speech]),
         {"task": "speech-instruction", "media": ["speech"]})
    chat("chat-image-captioning", [], task("Image Captioning", "", images=[image]),
         {"task": "image-captioning", "media": ["image"]})
    chat("chat-interleaved-image-text", [], task("interleaved", "What is in this picture?", images=[image]),
         {"task": "interleaved", "text": "What is in this picture?", "media": ["image"]})
    chat("chat-interleaved-speech", [], task("interleaved", "", speeches=[speech]),
         {"task": "interleaved", "text": "", "media": ["speech"]})
    chat("chat-interleaved-music", [], task("interleaved", "Describe this music.", musics=[music]),
         {"task": "interleaved", "text": "Describe this music.", "media": ["music"]})
    for name, template, fields in (("text-to-speech", "Text-to-Speech", {"caption": "Hello world, how are you?"}),
                                   ("text-to-music", "Text-to-Music", {"caption": "calm piano, slow tempo"}),
                                   ("music-to-text", "Music-to-Text", {"music": music}),
                                   ("speech-to-text", "Speech-to-Text", {"speech": speech})):
        message = prompter.task_prompts[template].format(**fields)
        chat(f"chat-task-{name}", [], message, {"task": name, "text": fields.get("caption", ""),
                                                "media": [k for k in fields if k != "caption"]})
    speech_reply = prompter.task_prompts["Speech-Response"].format(
        instruction="Can you draw me a picture of a sunny beach?", response="Sure, here it is. " + speech)
    chat("chat-history", [(task("Speech-Instruction", "", speeches=[speech]), speech_reply),
                          ("Thank you!  And now?", "You are welcome.")],
         "Describe this: " + image, {"task": "history", "media": ["speech", "image"]})
    # the base model's prompts (generate_prompt_input) and the stage-1 pretraining strings (generate_*_template)
    for modality in ("image", "speech", "music"):
        random.seed(len(out))
        prompt = make.generate_prompt_input(media[modality], modality)
        instruction = prompt.split(": ", 1)[1].rsplit(" " + media[modality], 1)[0]
        out.append({"name": f"base-{modality}-to-text", "kind": "base",
                    "inputs": {"direction": "x2text", "modality": modality, "instruction": instruction},
                    "text": prompt})
        random.seed(len(out))
        text = "I could be bounded in a nutshell."
        prompt = make.generate_prompt_input(text, "text", to_modality=modality)
        instruction = prompt.split(": ", 1)[1].split(" This is input: ", 1)[0]
        out.append({"name": f"base-text-to-{modality}", "kind": "base",
                    "inputs": {"direction": "text2x", "modality": modality, "instruction": instruction,
                               "text": text}, "text": prompt})
        for direction, render in (("x2text", make.generate_x2t_template),
                                  ("text2x", make.generate_t2x_template)):
            random.seed(len(out))
            caption = "a red circle on a blue background"
            full = render(media[modality], caption, modality)
            pool = (prompter.other2text_instructions if direction == "x2text"
                    else prompter.text2other_instructions)[modality]
            instruction = next(i for i in pool if full.startswith(f"{prompter.user_name}: {i} "))
            out.append({"name": f"pretrain-{modality}-{direction}", "kind": "pretrain",
                        "inputs": {"direction": direction, "modality": modality, "instruction": instruction,
                                   "text": caption}, "text": full})
    for name, text in (
        ("raw-spaces-around-added-tokens", "[Human]:  two  spaces <eoh>\n\n[MMGPT]:  answer <eos>"),
        ("raw-leading-space", " starts with a space<eoh>"),
        ("raw-adjacent-tokens", "<eoh><eos>[Human][MMGPT]<-Ins-><-Res-><soim><eoim>"),
        ("raw-newlines-tabs", "line one\nline two\n\tindented <eos>\n"),
        ("raw-digits-punctuation", "It's 10:30, 42 dogs; 3.14!"),
        ("raw-non-ascii", "café naïve 中文 🎶 <🎶5>"),
        ("raw-unknown-code-token", "<👀99999> <🗣️1024> <👀12>"),
        ("raw-sentencepiece-underline", "a\u2581b \u2581c"),
        ("raw-bos-eos-literals", "<s> hello </s> <unk>"),
        ("raw-instruction-reply", "<-Ins-> What is this?\n <-Res-> A cat. " + speech),
        ("raw-empty", ""),
    ):
        out.append({"name": name, "kind": "raw", "inputs": {}, "text": text})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spm", type=Path, required=True, help="tokenizer.model written by spm_model.train()")
    parser.add_argument("--release", type=Path, required=True, help="a local clone of OpenMOSS/AnyGPT")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import transformers

    sys.path.insert(0, str(args.release / "anygpt" / "src"))
    from m_utils import anything2token as a2t
    from m_utils import conversation as conversation_module
    from m_utils import prompter

    calls = release_added_tokens(prompter, a2t)
    model_bytes = args.spm.read_bytes()
    variants = {}
    memory = build_tokenizer(args.spm, calls)  # as the training scripts tokenize (tokens added in memory)
    with tempfile.TemporaryDirectory() as tmp:
        memory.save_pretrained(tmp)  # as the release folder was written ...
        from transformers import LlamaTokenizer

        saved = LlamaTokenizer.from_pretrained(tmp)  # ... and as the inference CLIs load it
        files = sorted(p.name for p in Path(tmp).iterdir())
        tokenizer_config = json.loads((Path(tmp) / "tokenizer_config.json").read_text())
        special_tokens_map = json.loads((Path(tmp) / "special_tokens_map.json").read_text())
    variants["memory"] = memory
    variants["saved"] = saved
    variants["legacy_false"] = build_tokenizer(args.spm, calls, legacy=False)
    variants["stripped"] = build_tokenizer(args.spm, calls, strip=True)
    added = {tok: i for tok, i in saved.get_added_vocab().items() if i >= saved.vocab_size}
    decoder = tokenizer_config.pop("added_tokens_decoder")
    results = []
    for case in cases(prompter, conversation_module, a2t):
        ids = {name: tok(case["text"]).input_ids for name, tok in variants.items()}
        results.append({**case, "ids": ids})
    expected = {
        "generated_by": "tests/generation/release_oracle/make_expected.py",
        "transformers": transformers.__version__,
        "spm_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "release_added_token_calls": [[c[0], c[-1], len(c)] for c in calls],
        "added_tokens": {t: added[t] for t in ("[Human]", "[MMGPT]", "<eoh>", "<eos>", "<👀0>", "<soim>", "<eoim>",
                                                "<🗣️0>", "<sosp>", "<eosp>", "<🎶0>", "<somu>", "<eomu>", "<-Res->",
                                                "<-Ins->")},
        "vocab_size": len(saved),
        "saved_files": files,
        "tokenizer_config": tokenizer_config,
        "added_tokens_decoder_sample": {k: decoder[k] for k in list(decoder)[:4] + list(decoder)[-2:]},
        "special_tokens_map": special_tokens_map,
        "media": {"image": IMAGE, "speech": SPEECH, "music": MUSIC},
        "cases": results,
    }
    args.out.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(results)} cases to {args.out}")


if __name__ == "__main__":
    main()
