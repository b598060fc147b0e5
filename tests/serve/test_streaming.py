"""`AudioStreamer` (#24 item 4) on the tiny speech codec + SoundStorm: pieces from prefix (or windowed) decodes as
codes arrive, the rest from the whole span's decode, so the pieces add up to the non-streamed reply's length."""

import pytest
import torch

from anygpt.generation.pipeline import Reply
from anygpt.generation.streaming import AudioStreamer, pcm16
from anygpt.vocab import Segment


def _span(engine, n: int) -> tuple[torch.Tensor, list[int]]:
    rng = engine.vocab.modalities["speech"]
    codes = torch.randint(0, rng.spec.codebook_size, (n,), generator=torch.Generator().manual_seed(0))
    return codes, [rng.start_id, *(rng.first_id + codes).tolist(), rng.end_id, engine.pad_id]


@pytest.mark.parametrize("window", [None, 8])
def test_pieces_come_every_n_codes_and_add_up_to_the_whole_span(engine, monkeypatch, window):
    codes, ids = _span(engine, 60)
    decoded_lengths: list[int] = []
    decode_span = engine.decode_span

    def spy(seg, *args):
        decoded_lengths.append(seg.codes.numel())
        return decode_span(seg, *args)

    monkeypatch.setattr(engine, "decode_span", spy)
    pieces: list[torch.Tensor] = []
    streamer = AudioStreamer(engine, "speech", pieces.append, every=10, holdback=2, seed=3, window=window)
    arrived = []
    for token in ids:
        streamer.feed(token)
        arrived.append(len(pieces))
    assert arrived[10] == 1 and arrived[9] == 0  # the first piece once 10 codes are in (ids[0]: the marker)
    assert streamer.decodes == 6 and len(pieces) == 6 and streamer.state == "done"
    hop = pieces[0].shape[-1] // 8  # the first piece: 10 codes decoded, the last 2 held back
    first = decode_span(Segment("speech", codes=codes[:10], closed=False), None, None, 3).data.reshape(1, -1)
    assert torch.equal(pieces[0], first[:, :8 * hop])
    if window is None:
        assert decoded_lengths == [10, 20, 30, 40, 50, 60]  # the growing prefix
    else:
        assert decoded_lengths[0] == 10 and max(decoded_lengths[1:]) == window + 10 + 2  # constant per piece
    reply = Reply(engine.decode(ids[:-1], seed=7), ids)
    whole = streamer.finish(reply)
    streamed = torch.cat(pieces, dim=-1)
    assert streamed.shape == whole.shape == (1, 60 * hop)
    tail = pieces[-1].shape[-1]
    assert tail == 2 * hop and torch.equal(streamed[:, -tail:], whole[:, -tail:])
    assert pcm16(torch.tensor([[-1.0, 0.0, 0.5, 1.0]])) == torch.tensor([-32768, 0, 16384, 32767]).to(
        torch.int16).numpy().astype("<i2").tobytes()


def test_the_streamer_checks_its_modality_and_numbers(engine):
    with pytest.raises(ValueError, match="'image' is not an audio modality.*'speech', 'music'"):
        AudioStreamer(engine, "image", print)
    with pytest.raises(ValueError, match="every must be >= 1"):
        AudioStreamer(engine, "speech", print, every=0)
