"""The inference bundle, the AnyGPT pipeline, ``anygpt chat``/``generate`` and ``anygpt convert``."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from anygpt.checkpoints import Bundle, ExportBundle, TokenizerRef, hf_to_anygpt, load_bundle, save_bundle
from anygpt.generation.chat import chat, generate
from anygpt.generation.options import DecodingOptions, PromptOptions
from anygpt.generation.pipeline import AnyGPT, Media, parse_message
from anygpt.modalities.spec import RELEASE_MODALITIES
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import SPECIAL_TOKENS, UnifiedVocab, VocabLayoutError
from tests.generation.stub_tokenizers import stub_image, stub_music, stub_speech


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    text = train_bpe_tokenizer(["describe this image", "say hello", "a red square", "compose calm music"] * 40,
                               vocab_size=320, directory=root / "text")
    tokenizers = {"image": stub_image(64), "speech": stub_speech(32), "music": stub_music(64)}
    refs = {}
    for name, tok in tokenizers.items():
        tok.codec.save_pretrained(root / name)
        refs[name] = TokenizerRef(str(root / name))
    vocab = UnifiedVocab(text, list(tokenizers.values()))
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=512))
    save_bundle(Bundle(model, vocab, tokenizers, "You are a test model.", refs), root / "export")
    Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)).save(root / "in.png")
    sf.write(str(root / "in.wav"), 0.3 * np.sin(np.linspace(0, 400, 16000)).astype(np.float32), 16000)
    return root


def test_export_opens_with_transformers_and_matches_logits(bundle_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export = bundle_dir / "export"
    bundle = load_bundle(export)
    hf_tok = AutoTokenizer.from_pretrained(export)
    assert len(hf_tok) == len(bundle.vocab)
    for token in [*SPECIAL_TOKENS, "<soim>", "<👀63>", "<🗣️0>", "<eomu>"]:
        assert hf_tok.convert_tokens_to_ids(token) == bundle.vocab.token_id(token)
    hf_model = AutoModelForCausalLM.from_pretrained(export).eval()
    ids = torch.tensor([bundle.vocab.encode("[Human]: say hello<eoh> [MMGPT]: <sosp><🗣️3><🗣️7>")])
    with torch.no_grad():
        assert torch.allclose(hf_model(ids).logits, bundle.model(ids), atol=1e-5)
    assert bundle.system_prompt == "You are a test model."


def test_prompts_follow_the_release_templates(bundle_dir):
    anygpt = AnyGPT.load(bundle_dir / "export")
    assert anygpt.template == "base" and anygpt.force_marker  # no instruction tokens; exported by anygpt
    parts = parse_message(f"Describe this [image: {bundle_dir / 'in.png'}] please")
    assert [type(p).__name__ for p in parts] == ["str", "Media", "str"]
    text = anygpt.vocab.decode_text(anygpt.prompt_ids(parts, force="speech"))
    # base: the pretraining template, the user's text as the instruction, the media after it
    assert text.startswith("<s>[Human]: Describe this please <soim><👀") and text.count("<👀") == 32
    assert text.endswith("<eoim><eoh> [MMGPT]: <sosp>")
    chat = AnyGPT.load(bundle_dir / "export", prompt=PromptOptions(template="chat"))
    written = chat.vocab.decode_text(chat.prompt_ids(parts, force="speech", task="none"))
    assert written.startswith("<s>You are a test model.\n[Human]: Describe this <soim><👀")
    assert written.endswith("<eoim> please<eoh>\n[MMGPT]: <sosp>")
    # the release's chat CLI ("interleaved"): media first, then the text; speech asked for by the task prompt
    auto = chat.vocab.decode_text(chat.prompt_ids(parts, output="speech"))
    assert auto.startswith("<s>You are a test model.\n[Human]: <soim><👀")
    assert auto.endswith("<eoim> Describe this please<eoh>\n[MMGPT]:")
    tts = chat.prompt_text(["Hello there"], output="speech")
    assert tts.endswith("[Human]: Hello there Please read the given text.<eoh>\n[MMGPT]:")
    assert chat.prompt_text(["a red square"], output="image").endswith(
        "[Human]: a red square. Please generation an image.<eoh>\n[MMGPT]:")
    pair = chat.pair_prompt_text("Describe it.", [Media("image", str(bundle_dir / "in.png"))], "x2text")
    assert pair.startswith("[Human]: Describe it. <soim><👀") and pair.endswith("<eoim><eoh> [MMGPT]:")
    assert chat.pair_prompt_text("Draw it.", ["a cat"], "text2x", force="image") == (
        "[Human]: Draw it. This is input: a cat<eoh> [MMGPT]: <soim>")


@pytest.mark.parametrize("output", ["image", "speech", "music"])
def test_forced_outputs_decode_into_media(bundle_dir, output):
    anygpt = AnyGPT.load(bundle_dir / "export")
    g = torch.Generator().manual_seed(1)
    prompt = ["make something ", Media("speech", str(bundle_dir / "in.wav"))]
    replies = anygpt.respond([prompt, ["a red square"]], output=output, generator=g, max_new_tokens=48)
    for reply in replies:
        media = reply.media(output)
        assert media, reply.segments
        seg = media[0]
        structure = anygpt.tokenizers[output].structure
        if seg.note is None:  # a closed, valid span
            assert structure.can_end(seg.codes.numel())
        assert seg.data is not None or "empty" in seg.note


def test_chat_keeps_history_and_writes_a_transcript(bundle_dir, tmp_path):
    script = tmp_path / "messages.txt"
    script.write_text(f"Describe this [image: {bundle_dir / 'in.png'}]\n/music compose calm music\n/reset\n"
                      f"/speech say hello\nWhat is this? [speech: {bundle_dir / 'missing.wav'}]\n")
    page = chat(str(bundle_dir / "export"), out=str(tmp_path / "chat"), input=str(script),
                decoding=DecodingOptions(max_new_tokens=24))
    html = (tmp_path / "chat" / "transcript.html").read_text()
    assert page.endswith("transcript.html")
    assert "<img" in html and html.count("<audio") >= 1 and "asked for music output" in html
    assert (tmp_path / "chat" / "inputs" / "in.png").exists()
    assert sorted(p.suffix for p in (tmp_path / "chat").glob("turn*")) in (
        [".wav", ".wav"], [".wav"], [".wav", ".wav", ".wav"])


def test_chat_reports_progress_and_can_be_stopped_from_it(bundle_dir):
    """The hook behind `anygpt serve`'s progress line and Stop button (the chat template, which keeps history;
    the start marker forced: an image span to decode whatever this untrained model samples)."""
    anygpt = AnyGPT.load(bundle_dir / "export", prompt=PromptOptions(template="chat", force_marker=True))
    seen = []
    reply = anygpt.chat(["draw ", Media("image", str(bundle_dir / "in.png"))], output="image",
                        generator=torch.Generator().manual_seed(0),
                        progress=lambda stage, done, total: seen.append((stage, done, total)))
    stages = [stage for stage, _, _ in seen]
    assert stages[0] == "tokenizing" and seen[0][2] == 1  # one media item to tokenize
    generating = [done for stage, done, _ in seen if stage == "generating"]
    assert generating == list(range(1, len(generating) + 1)) and len(generating) >= 30  # a counter per token
    decoding = [(done, total) for stage, done, total in seen if stage == "decoding"]
    spans = len(reply.media())
    assert stages.index("decoding") > stages.index("generating") and decoding == [(i, spans) for i in range(spans)]
    assert reply.media("image") and not reply.interrupted

    stopped = anygpt.chat("say hello", output="speech", generator=torch.Generator().manual_seed(0),
                          progress=lambda stage, done, total: stage == "generating" and done >= 7)
    assert stopped.interrupted and len(stopped.ids) == 1 + 7  # the forced <sosp> and the 7 tokens before the stop
    assert anygpt.history[-1].reply is stopped  # a stopped turn stays in the conversation, as Ctrl-C's does


def test_generate_one_shot_returns_summary(bundle_dir, tmp_path):
    summary = generate("compose calm music", str(bundle_dir / "export"), output="music", out=str(tmp_path / "g"),
                       decoding=DecodingOptions(max_new_tokens=20))
    assert summary["transcript"].endswith("transcript.html")
    assert all(f.endswith(".wav") for f in summary["files"])


def test_bad_inputs_have_clear_errors(bundle_dir, tmp_path):
    anygpt = AnyGPT.load(bundle_dir / "export")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        anygpt.respond([[Media("image", str(bundle_dir / "missing.png"))]])
    with pytest.raises(ValueError, match="no 'video' tokenizer"):
        anygpt.encode_media([Media("video", "x.mp4")])
    with pytest.raises(ValueError, match="context"):
        anygpt.respond([["word " * 600]])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(ValueError, match="reserves"):
        load_bundle(bundle_dir / "export", tokenizers={"image": stub_image(16)})


def _release_folder(root, speech_codes=1024, chat=False):
    """An HF folder built the way the release was: a 32000-id text tokenizer, ``add_tokens`` in the documented
    order (``chat``: then stage 2's ``<-Res->`` and ``<-Ins->``), then ``resize_token_embeddings``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, 32000)}}
    base = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    base.pre_tokenizer = pre_tokenizers.Whitespace()
    base.save(str(root / "base.json"))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(root / "base.json"), unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>")
    tok.add_tokens(list(SPECIAL_TOKENS))
    for spec in RELEASE_MODALITIES:
        size = speech_codes if spec.name == "speech" else spec.codebook_size
        tok.add_tokens([spec.token_format.format(i) for i in range(size)] + list(spec.markers))
    if chat:
        for token in ("<-Res->", "<-Ins->"):
            tok.add_tokens([token])
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    model.resize_token_embeddings(len(tok))
    folder = root / "AnyGPT-chat"
    tok.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder, model


def test_convert_release_folder_checks_layout_and_round_trips(tmp_path):
    folder, hf_model = _release_folder(tmp_path)
    out = hf_to_anygpt(str(folder), str(tmp_path / "converted"))
    info = json.loads((tmp_path / "converted" / "anygpt.json").read_text())
    assert [m["name"] for m in info["modalities"]] == ["image", "speech", "music"]
    assert info["system_prompt"].startswith("You are an AI assistant named MMGPT")
    stubs = {"image": stub_image(8192), "speech": stub_speech(1024), "music": stub_music(8192)}
    bundle = load_bundle(out, tokenizers=stubs)
    assert len(bundle.vocab) == 49418
    ids = torch.tensor([[1, 32000, 32004, 40197, 49417]])
    with torch.no_grad():
        assert torch.allclose(hf_model.eval()(ids).logits, bundle.model(ids), atol=1e-5)


def test_convert_a_chat_shaped_release_folder(tmp_path):
    folder, hf_model = _release_folder(tmp_path, chat=True)
    out = hf_to_anygpt(str(folder), str(tmp_path / "converted"))
    stubs = {"image": stub_image(8192), "speech": stub_speech(1024), "music": stub_music(8192)}
    bundle = load_bundle(out, tokenizers=stubs)
    assert len(bundle.vocab) == 49420 and bundle.vocab.instruction_tokens
    assert (bundle.vocab.token_id("<-Res->"), bundle.vocab.token_id("<-Ins->")) == (49418, 49419)
    assert json.loads((tmp_path / "converted" / "added_tokens.json").read_text())["<-Ins->"] == 49419
    ids = torch.tensor([[1, 32000, 49418, 49419]])
    with torch.no_grad():
        assert torch.allclose(hf_model.eval()(ids).logits, bundle.model(ids), atol=1e-5)


def test_convert_refuses_a_wrong_vocabulary_layout(tmp_path):
    folder, _ = _release_folder(tmp_path, speech_codes=512)
    with pytest.raises(VocabLayoutError, match=r"AnyGPT-chat/tokenizer\.json lacks 512 tokens.*'<🗣️512>'"):
        hf_to_anygpt(str(folder), str(tmp_path / "converted"))


def test_export_records_how_to_prompt_it(bundle_dir, tmp_path):
    """An export trained on anygpt's chat data records chat template + messages as written; flags still override."""
    bundle = load_bundle(bundle_dir / "export")
    bundle.template, bundle.task = "chat", "none"
    save_bundle(bundle, tmp_path / "export")
    recorded = json.loads((tmp_path / "export" / "anygpt.json").read_text())
    assert (recorded["template"], recorded["task"]) == ("chat", "none")
    anygpt = AnyGPT.load(tmp_path / "export")
    assert (anygpt.template, anygpt.task) == ("chat", "none")
    assert anygpt.prompt_text(["Hello there"], output="speech").endswith("[Human]: Hello there<eoh>\n[MMGPT]:")
    assert anygpt.prompt_text(["Hello there"], output="speech", task="auto").endswith(
        "[Human]: Hello there Please read the given text.<eoh>\n[MMGPT]:")
    assert AnyGPT.load(tmp_path / "export", prompt=PromptOptions(template="base")).template == "base"
    with pytest.raises(ValueError, match="template"):
        ExportBundle(str(tmp_path / "x"), template="pretrain")


def test_exports_refer_to_the_shipped_tokenizers_portably(tmp_path):
    from anygpt.assets import asset_path

    text = train_bpe_tokenizer(["a red square", "say hello"] * 20, vocab_size=300, directory=tmp_path / "text")
    image_dir = asset_path("anygpt-assets:tokenizers/image")
    image = TokenizerRef(str(image_dir)).load("image")
    stub = stub_music(64)
    stub.codec.save_pretrained(tmp_path / "music")
    vocab = UnifiedVocab(text, [image, stub])
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=64))
    refs = {"image": TokenizerRef(str(image_dir)), "music": TokenizerRef(str(tmp_path / "music"))}
    save_bundle(Bundle(model, vocab, {"image": image, "music": stub}, None, refs), tmp_path / "export")
    recorded = json.loads((tmp_path / "export" / "anygpt.json").read_text())["tokenizers"]
    assert recorded["image"]["path"] == "anygpt-assets:tokenizers/image"  # not where this machine installed anygpt
    assert recorded["music"]["path"] == "tokenizers/music"  # a small tokenizer travels inside the export
    assert (tmp_path / "export" / "tokenizers" / "music" / "model.safetensors").is_file()
    loaded = load_bundle(tmp_path / "export")
    assert type(loaded.tokenizers["image"].codec) is type(image.codec)
    for (key, value), reference in zip(loaded.tokenizers["image"].codec.state_dict().items(),
                                       image.codec.state_dict().values(), strict=True):
        assert torch.equal(value, reference), key


# -- release modes ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_model(bundle_dir):
    """The test bundle's model with the instruction tokens (<-Res->, <-Ins->) added: an instruction-tuned layout."""
    base = load_bundle(bundle_dir / "export")
    vocab = UnifiedVocab(base.vocab.text, [base.tokenizers[m] for m in ("image", "speech", "music")],
                         instruction_tokens=True)
    torch.manual_seed(0)
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=512))
    return AnyGPT(Bundle(model, vocab, base.tokenizers, "You are a test model.", base.refs, force_marker=False))


def test_template_and_decoding_defaults_follow_the_checkpoint(chat_model):
    assert chat_model.template == "chat" and not chat_model.force_marker and chat_model.constrained
    assert chat_model.music_seconds == 5.0 and chat_model.music_start == "start"
    chat_text = chat_model.generation_config("text", "release")
    assert chat_text.num_beams == 5 and chat_text.do_sample and chat_text.max_new_tokens == 500
    assert chat_model.generation_config("text", "release", template="base").max_new_tokens == 100
    assert "constrained decoding on" in chat_model.describe()


def test_spoken_dialogue_replies_split_into_transcript_and_answer(chat_model, tmp_path):
    from anygpt.generation.chat import Transcript, _describe
    from anygpt.generation.options import preset

    v = chat_model.vocab
    speech = v.encode_codes("speech", torch.tensor([1, 2, 3, 4]))
    ids = v.encode("<-Ins-> draw me a sunny beach\n <-Res-> Sure, here it is. ") + speech
    reply = chat_model.reply(ids, False, None, preset("release/speech").resolve(v))
    assert reply.transcript == "draw me a sunny beach"
    assert reply.text == "Sure, here it is." and [s.modality for s in reply.media()] == ["speech"]
    assert "<-" not in _describe(reply) and "(heard: draw me a sunny beach)" in _describe(reply)
    page = Transcript(tmp_path, "t")
    page.note(chat_model.describe())
    page.add_reply(reply)
    html = page.write().read_text()
    assert "heard: draw me a sunny beach" in html and "Sure, here it is." in html
    assert "&lt;-Ins-&gt;" not in html and "&lt;-Res-&gt;" not in html and "constrained decoding on" in html
    plain = chat_model.reply(v.encode(" just text"), False, None, preset("release/text").resolve(v))
    assert plain.transcript is None and plain.text == "just text"


def test_constrained_decoding_can_be_switched_off(chat_model):
    from anygpt.generation.options import GenerationConfig

    prompt = [chat_model.encode_prompt(chat_model.prompt_text(["make music"], output="music", force="music"))]
    config = GenerationConfig(max_new_tokens=12, stop_ids=(chat_model.vocab.token_id("<eos>"),))
    constrained, _ = chat_model.generate_ids(prompt, config)
    music = chat_model.vocab.modalities["music"]
    assert all(i in music.codes or i == music.end_id for i in constrained[0])  # only music codes inside the span
    chat_model.constrained = False
    try:
        free, _ = chat_model.generate_ids(prompt, config)
    finally:
        chat_model.constrained = True
    assert free != constrained  # the untrained model's unconstrained choice leaves the span


def test_music_input_is_cropped_like_the_release(chat_model):
    wav = torch.arange(16000 * 30, dtype=torch.float32)
    assert chat_model.crop_music(wav, 16000).shape[-1] == 5 * 16000 and chat_model.crop_music(wav, 16000)[0] == 0
    base = AnyGPT(chat_model.bundle, PromptOptions(template="base"))
    assert base.music_seconds == 20.0 and base.crop_music(wav, 16000).shape[-1] == 20 * 16000
    randomly = AnyGPT(chat_model.bundle, PromptOptions(music_start="random"))
    starts = {int(randomly.crop_music(wav, 16000, torch.Generator().manual_seed(s))[0]) for s in range(4)}
    assert len(starts) > 1 and all(0 <= s <= 25 * 16000 for s in starts)
    assert chat_model.crop_music(wav[:100], 16000).shape[-1] == 100  # shorter clips stay whole
    with pytest.raises(ValueError, match="music_start"):
        AnyGPT(chat_model.bundle, PromptOptions(music_start="middle"))
    with pytest.raises(ValueError, match="unknown task prompt 'poem'"):
        AnyGPT(chat_model.bundle, PromptOptions(task="poem"))
    assert AnyGPT(chat_model.bundle, PromptOptions(task="none", system_prompt="Be brief.")).task == "none"


def test_base_instructions_are_read_from_a_local_release_copy_without_running_it(chat_model, tmp_path):
    import random

    from anygpt.prompts import load_instructions

    folder = tmp_path / "AnyGPT" / "anygpt" / "src" / "m_utils"
    folder.mkdir(parents=True)
    canary = tmp_path / "ran"
    for name, phrase in (("other2text_instructions", "Caption this."), ("text2other_instructions", "Render this.")):
        (folder / f"{name}.py").write_text(f"open({str(canary)!r}, 'w')\n"
                                           f"{name} = {{'image': [{phrase!r}], 'speech': [{phrase!r}]}}\n")
    pools = load_instructions(tmp_path / "AnyGPT")
    assert not canary.exists()  # parsed, never executed
    assert pools.pools["text2x"]["image"] == ["Render this."]
    base = AnyGPT(chat_model.bundle, PromptOptions(template="base", instructions=str(tmp_path / "AnyGPT")))
    assert not canary.exists()
    text = base.prompt_text(["a red square"], output="image", rng=random.Random(0))
    assert text == "[Human]: Render this. This is input: a red square<eoh> [MMGPT]:"
    with pytest.raises(ValueError, match="no text2x instructions for 'music'"):
        base.prompt_text(["a tune"], output="music", rng=random.Random(0))
    with pytest.raises(FileNotFoundError, match="other2text_instructions.py"):
        load_instructions(tmp_path)


@pytest.mark.parametrize("command", [["chat"], ["generate", "hello"], ["benchmark", "coco-caption"]])
def test_compile_flag_parses_on_chat_generate_and_benchmark(command, capsys):
    from anygpt.cli import main

    for value in ("false", "true"):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--loading.compile", value, "--print_config"])
        assert exit_info.value.code in (0, None)
        assert f"compile: {value}" in capsys.readouterr().out


def test_decode_seed_fixes_a_sampling_decoders_draws(bundle_dir, monkeypatch):
    """A sampling decoder (SoundStorm) gets a generator seeded by ``seed``: the same ids decode alike in every run."""
    anygpt = AnyGPT.load(bundle_dir / "export")
    codec = anygpt.tokenizers["speech"].codec
    seen = []

    def sampling_decode(codes, generator=None, **context):
        seen.append(generator)
        return [torch.rand(1, 8, generator=generator) for _ in codes]

    monkeypatch.setattr(codec, "decode", sampling_decode)
    ids = anygpt.vocab.encode("<sosp><🗣️3><🗣️7><eosp>")
    first, again, other = (anygpt.decode(ids, seed=s)[0].data for s in (5, 5, 6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    anygpt.decode(ids)
    assert seen[-1] is None  # no seed: the decoder draws from torch's global generator, as before
    config = anygpt.generation_config("speech", "release")
    replies = [anygpt.reply(ids, False, None, config, generator=torch.Generator().manual_seed(9)) for _ in range(2)]
    assert torch.equal(replies[0].segments[0].data, replies[1].segments[0].data)  # chat: seeded turn, same speech
