"""First-audio latency of streamed spoken replies against the whole reply's latency, through ``anygpt serve``.

    python -m benchmarks.perf.serve_stream --tiny --chunk_codes 10 25 50 --windows whole 50 \
        --out runs/perf/serve_stream.json
    python -m benchmarks.perf.serve_stream --ckpt runs/demo/export ...

Each seed's spoken reply (``modalities: ["text", "audio"]``) is asked for without streaming (the whole-reply latency
and its audio), then streamed with each ``--chunk_codes`` N and ``--windows`` W
(`anygpt.generation.streaming.AudioStreamer` decodes, every N speech codes, the growing prefix or only its codes from
W before the unsent part): the time to the first audio piece, the time to the last event, the
pieces, and how close the streamed audio is to the non-streamed reply (same length always; SNR in dB of the whole,
and the share of samples that are equal: the last piece is the whole span's own decode). One client, one request at
a time, official ``openai`` client.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.perf.serve_load import add_server_options, served


def streamed(client, model: str, ask: dict, chunk_codes: int, window: int | None) -> dict:
    """One streamed spoken reply: latencies, pieces and the concatenated samples."""
    started = time.perf_counter()
    first, pieces = None, []
    audio = {"voice": "default", "format": "pcm16", "chunk_codes": chunk_codes}
    for chunk in client.chat.completions.create(model=model, stream=True, audio=audio | (
            {} if window is None else {"window_codes": window}), **ask):
        audio = chunk.choices[0].delta.audio if chunk.choices else None
        if audio is not None and audio.data:
            first = time.perf_counter() - started if first is None else first
            pieces.append(base64.b64decode(audio.data))
    total = time.perf_counter() - started
    return {"first_audio_s": first, "total_s": total, "pieces": len(pieces),
            "samples": np.frombuffer(b"".join(pieces), dtype="<i2")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(parser)
    parser.add_argument("--chunk_codes", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--windows", nargs="+", default=["whole"],
                        help="audio.window_codes values to try: a number of codes of left context, or 'whole' (the "
                             "whole prefix)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max_tokens", type=int, default=300)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    with served(args, "serve-stream-") as (ckpt, _, _, client, model):
        windows = [None if w == "whole" else int(w) for w in args.windows]
        runs = [(n, w) for w in windows for n in args.chunk_codes]
        name = {(n, w): f"chunk_codes={n}, window_codes={'whole' if w is None else w}" for n, w in runs}
        rows: dict[str, list[dict]] = {"whole": [], **{name[r]: [] for r in runs}}
        for seed in range(args.seeds):
            ask = {"messages": [{"role": "user", "content": f"say hello number {seed}"}],
                   "modalities": ["text", "audio"], "max_tokens": args.max_tokens, "seed": seed}
            started = time.perf_counter()
            message = client.chat.completions.create(model=model, audio={"voice": "default", "format": "wav"},
                                                     **ask).choices[0].message
            whole_s = time.perf_counter() - started
            if message.audio is None:
                raise SystemExit(f"seed {seed}: the model gave no spoken reply ({message.model_extra.get('notes')})")
            reference, rate = sf.read(io.BytesIO(base64.b64decode(message.audio.data)), dtype="int16")
            rows["whole"].append({"seed": seed, "total_s": whole_s, "audio_s": len(reference) / rate})
            for n, w in runs:
                got = streamed(client, model, ask, n, w)
                samples = got.pop("samples")
                if samples.shape != reference.shape:
                    raise SystemExit(f"seed {seed}, chunk_codes {n}: {samples.shape} streamed samples against "
                                     f"{reference.shape} in the non-streamed reply")
                error = (samples.astype(float) - reference).astype(float)
                snr = 10 * np.log10(np.sum(reference.astype(float) ** 2) / max(np.sum(error ** 2), 1e-9))
                rows[name[n, w]].append({"seed": seed, **got, "snr_db": round(float(snr), 2),
                                     "equal_share": round(float(np.mean(samples == reference)), 3)})
    summary = {"ckpt": ckpt, "seeds": args.seeds, "max_tokens": args.max_tokens, "cpu_count": os.cpu_count(),
               "audio_s_median": round(statistics.median(r["audio_s"] for r in rows["whole"]), 2),
               "whole_reply_s_median": round(statistics.median(r["total_s"] for r in rows["whole"]), 3)}
    for run in runs:
        summary[name[run]] = {key: round(statistics.median(r[key] for r in rows[name[run]]), 3)
                              for key in ("first_audio_s", "total_s", "pieces", "snr_db", "equal_share")}
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
