import json

import pytest
import torch

from benchmarks.judges.asr import ALPHABET, CtcAsr, WhisperAsr, ctc_greedy_decode, normalize_transcript, word_error_rate
from benchmarks.judges.registry import load_judge


def test_normalize_and_greedy_decode():
    assert normalize_transcript("Hello,  WORLD! It's 5-ish") == "hello world it's ish"
    # frames: h h <blank> i <space> <space> a a -> "hi a"
    ids = [ALPHABET.index(c) + 1 if c != "_" else 0 for c in "hh_i  aa"]
    log_probs = torch.full((1, len(ids), len(ALPHABET) + 1), -10.0)
    log_probs[0, torch.arange(len(ids)), torch.tensor(ids)] = 0.0
    assert ctc_greedy_decode(log_probs, torch.tensor([len(ids)])) == ["hi a"]
    assert ctc_greedy_decode(log_probs, torch.tensor([2])) == ["h"]  # respects lengths


def test_word_error_rate_uses_whisper_normalisation():
    assert word_error_rate(["twenty five apples"], ["25 Apples."]) == 0.0
    assert word_error_rate(["a b"], ["a c"]) == 0.5


def test_ctc_model_interface_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = CtcAsr(hidden=32, layers=1).eval()
    wavs = [torch.randn(16000) * 0.1, torch.randn(2, 8000) * 0.1]
    out = model.transcribe(wavs, 16000)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert all(set(t) <= set(ALPHABET) for t in out)
    with torch.no_grad():
        assert model(model.features(torch.zeros(1, 16000))).shape[1] == model.output_lengths(torch.tensor([16000]))
    model.save(tmp_path)
    judge = load_judge("asr", tmp_path)
    assert judge.transcribe(wavs, 16000) == out
    assert judge.transcribe([wavs[0]], 16000) == out[:1]  # batching does not change a transcript
    with pytest.raises(ValueError, match="utterance 0"):
        judge.transcribe([torch.zeros(3, 2, 5)], 16000)


def _tiny_whisper(path):
    """A random Whisper with a 30-token character vocabulary, written like a real checkpoint folder (no download)."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    path.mkdir()
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")} | {"Ġ": 26}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]
    vocab |= {s: len(vocab) + i for i, s in enumerate(specials)}
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = WhisperTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), unk_token=specials[0],
                                 bos_token=specials[0], eos_token=specials[0], pad_token=specials[0],
                                 additional_special_tokens=specials[1:])
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer)
    processor.save_pretrained(path)
    eot = vocab[specials[0]]
    config = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                           max_source_positions=1500, max_target_positions=32, pad_token_id=eot, bos_token_id=eot,
                           eos_token_id=eot, decoder_start_token_id=vocab[specials[1]], suppress_tokens=None,
                           begin_suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    return model, tokenizer


@pytest.mark.slow
def test_whisper_adapter_matches_transformers(tmp_path):
    from transformers import WhisperFeatureExtractor

    model, tokenizer = _tiny_whisper(tmp_path / "whisper")
    judge = load_judge("asr", tmp_path / "whisper")
    assert isinstance(judge, WhisperAsr) and judge.description.startswith("Whisper")
    judge.max_new_tokens = 6
    wavs = [torch.randn(16000) * 0.1, torch.randn(12000) * 0.1]
    out = judge.transcribe(wavs, 16000)
    feats = WhisperFeatureExtractor(feature_size=80)([w.numpy() for w in wavs], sampling_rate=16000,
                                                     return_tensors="pt").input_features
    with torch.no_grad():
        ref = tokenizer.batch_decode(model.generate(feats, max_new_tokens=6), skip_special_tokens=True)
    assert out == [r.strip() for r in ref]
    # other sample rates are resampled to Whisper's 16 kHz
    assert len(judge.transcribe([torch.randn(2, 8000) * 0.1], 8000)) == 1
    with pytest.raises(FileNotFoundError, match="config.json"):
        WhisperAsr(tmp_path)


def test_lexicon_snapping_fixes_close_misspellings_only(tmp_path):
    model = CtcAsr(hidden=16, layers=1, lexicon=["borrowed", "camera", "frank", "the"])
    assert model.snap_to_lexicon("frank borowed the camr") == "frank borrowed the camera"
    assert model.snap_to_lexicon("xylophone") == "xylophone"  # nothing close: left alone
    model.save(tmp_path)
    assert CtcAsr.load(tmp_path).lexicon == model.lexicon
