"""espeak-ng through ctypes (library and voice data from the `espeakng-loader` wheel), reproducibly.

espeak-ng is not a pure function of its inputs: it seeds its random generator (breathy voices) from the clock, and it
keeps hidden state in library globals across calls (two syntheses of the same text in one process differ slightly in
timing; neither espeak_Cancel nor espeak_Terminate + espeak_Initialize resets it). So synthesis runs in a small server
process whose engine is initialized but never speaks; it forks one child per request, the child sets the random seed,
speaks and replies. Every utterance then starts from the same state and depends only on its own inputs, whichever
worker asks for it and in whatever order.

This file imports only the standard library (plus the loader) so the server process, started as a script, is small
and forks in about a millisecond.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import subprocess
import sys

ESPEAK_RATE = 22050

# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Engine:
    """The ctypes binding: synchronous synthesis to int16 bytes at 22.05 kHz plus phoneme and word events."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise ImportError("speech synthesis needs the `espeakng-loader` wheel: pip install espeakng-loader") from e
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
                                     _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected sample rate {ESPEAK_RATE}")
        self.lib = lib
        self._chunks: list[bytes] = []
        self._events: list[list] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: espeak calls it from C
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_SetVoiceByName(b"en")  # load the English data now, before any fork

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type in (EVENT_PHONEME, EVENT_WORD):
                name = e.id.string.decode("utf-8", "replace") if e.type == EVENT_PHONEME else ""
                self._events.append([e.type, e.sample, e.text_position, e.length, name])
            i += 1
        return 0

    def speak(self, text: str, voice: str, pitch: int, pitch_range: int, rate: int, seed: int) -> dict:
        """Synthesize ``text``; returns {"audio": int16 little-endian bytes, "events": [...], "ipa": str}."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (see espeak-ng-data/voices and lang/)")
        for param, value in ((_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range), (_PARAM_RATE, rate)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self.lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} on {text!r}")
        return {"audio": b"".join(self._chunks), "events": self._events, "ipa": self.ipa(text)}

    def ipa(self, text: str) -> str:
        """IPA transcription of ``text`` in the current voice (one clause per espeak call)."""
        ptr = ctypes.c_char_p(text.encode("utf-8"))
        parts = []
        while ptr.value:
            out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, 0x02)
            if out:
                parts.append(out.decode("utf-8", "replace").strip())
        return " ".join(p for p in parts if p)


def serve() -> None:
    """Server loop: one json request per stdin line, one json reply per stdout line, each request in a fresh fork."""
    engine = Engine()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: speak once from the pristine state, reply, exit without cleanup
            os.close(read_fd)
            try:
                res = engine.speak(**json.loads(line))
                reply = {"audio": base64.b64encode(res["audio"]).decode(), "events": res["events"], "ipa": res["ipa"]}
            except Exception as e:  # reported to the client, which raises it
                reply = {"error": f"{type(e).__name__}: {e}"}
            with os.fdopen(write_fd, "w") as pipe:
                pipe.write(json.dumps(reply))
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            reply = pipe.read()
        os.waitpid(pid, 0)
        out.write((reply or json.dumps({"error": "synthesis process died"})) + "\n")
        out.flush()


class Client:
    """Talks to a server process (started on first use, stopped with the client or at interpreter exit)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            first = self._proc.stdout.readline().strip()
            if first != "ready":
                self.close()
                raise RuntimeError(f"the espeak-ng server did not start (said {first!r}); is espeakng-loader "
                                   "installed?")
        return self._proc

    def speak(self, text: str, voice: str, pitch: int = 50, pitch_range: int = 50, rate: int = 175,
              seed: int = 0) -> dict:
        """Synthesize; returns {"audio": int16 bytes at 22.05 kHz, "events": [[type, sample, pos, len, name]]}."""
        proc = self._start()
        request = {"text": text, "voice": voice, "pitch": pitch, "pitch_range": pitch_range, "rate": rate, "seed": seed}
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"the espeak-ng server exited while speaking {text!r}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"espeak-ng failed on {text!r} with voice {voice!r}: {reply['error']}")
        reply["audio"] = base64.b64decode(reply["audio"])
        return reply

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the server exits on its own when its stdin closes
            pass


if __name__ == "__main__":
    serve()
