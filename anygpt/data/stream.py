"""One source's stream for one reader: shard order per pass, split among readers, shuffle buffer, exact resume."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from anygpt.data.schema import ShardSample
from anygpt.data.shards import ReaderStats, decode, iter_raw


class SampleStream:
    """Decoded samples of one source as seen by one reader (a rank's loader worker), shuffled and resumable.

    Every pass over the source lists its shards in an order drawn from ``seed`` and the pass number (the same order on
    every reader) and splits it among the ``readers``: with at least as many shards as readers each reader takes
    every ``readers``-th shard; with fewer, each shard is shared by a few readers (reader ``r`` reads shard
    ``r % shards`` and keeps one residue class of its samples), so no reader reads more than its share of shards.
    Either way a pass hands each sample to exactly one reader. Samples then go through a buffer of ``shuffle_buffer``
    samples from which they leave in random order (webdataset's ``shuffle``), so consecutive samples rarely share a
    shard.

    The position (`state_dict`) is a few integers plus the buffer as (shard, sample index) references, never the
    samples themselves: restoring it re-reads the referenced samples and continues exactly where the stream stopped.

    Args:
        urls: the source's shards (sorted; indices into this list appear in the state).
        seed: the stream's identity (e.g. ``"{seed}-{epoch}-{source}"``); readers of one stream share it.
        reader / readers: this reader's index and how many there are (ranks x loader workers).
        shuffle_buffer: samples held for shuffling (0 or 1: samples leave in shard order).
        shuffle_shards: draw a new shard order every pass (off: sorted order, as for validation).
        cycle: start the next pass when one ends (the training stream is endless); off: one pass, then stop.
        codebook_sizes / stats: as `decode`.
        name: the source's name in messages.
    """

    max_bad_in_a_row = 1000  # a source that yields nothing usable stops the run instead of spinning

    def __init__(self, urls: list[str], seed: str, reader: int = 0, readers: int = 1, shuffle_buffer: int = 0,
                 shuffle_shards: bool = True, cycle: bool = True, codebook_sizes: Mapping[str, int] | None = None,
                 stats: ReaderStats | None = None, name: str = "") -> None:
        if not urls:
            raise ValueError(f"source {name!r} has no shards")
        if not 0 <= reader < readers:
            raise ValueError(f"reader {reader} is not in [0, {readers})")
        self.urls, self.seed, self.reader, self.readers = list(urls), str(seed), reader, readers
        self.shuffle_buffer, self.shuffle_shards, self.cycle = max(0, int(shuffle_buffer)), shuffle_shards, cycle
        self.codebook_sizes = codebook_sizes
        self.stats = stats if stats is not None else ReaderStats()
        self.name = name or str(urls[0])
        self.pass_index = 0  # passes started
        self.cursor = 0  # position in this reader's shard list of the pass
        self.consumed = 0  # raw samples read from the current shard
        self.refs: list[int] = []  # the buffer as flat (url index, raw index) pairs, in buffer order
        self.rng = random.Random(f"{self.seed}-buffer-{reader}-of-{readers}")
        self.exhausted = False
        self.read_all = False  # fallback when a pass holds fewer samples than readers
        self._buffer: list[ShardSample] | None = []  # None: to be re-read from `refs` (after load_state_dict)
        self._open: tuple[int, int, Iterator[dict[str, Any]]] | None = None  # (url index, next raw index, iterator)
        self._plan: tuple[tuple[int, bool], list[tuple[int, int]]] | None = None  # the current pass's shards

    # -- the plan of a pass --------------------------------------------------------------------------------------------
    def pass_shards(self, pass_index: int) -> list[tuple[int, int]]:
        """This reader's shards in pass ``pass_index``: (url index, position in the pass's order) pairs."""
        key = (pass_index, self.read_all)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, self._draw_pass(pass_index))
        return self._plan[1]

    def _draw_pass(self, pass_index: int) -> list[tuple[int, int]]:
        order = list(range(len(self.urls)))
        if self.shuffle_shards:
            random.Random(f"{self.seed}-shards-pass-{pass_index}").shuffle(order)
        if self.read_all:
            return list(enumerate(order))
        if len(order) >= self.readers:
            return [(url, pos) for pos, url in list(enumerate(order))[self.reader::self.readers]]
        position = self.reader % len(order)  # fewer shards than readers: each shard shared by a few readers
        return [(order[position], position)]

    def _keeps(self, position: int, raw_index: int) -> bool:
        """With fewer shards (``n``) than readers, the shard at ``position`` is shared by the readers ``r`` with
        ``r % n == position``; each keeps the samples whose index falls in its residue class."""
        shards = len(self.urls)
        if self.read_all or shards >= self.readers:
            return True
        sharing = self.readers // shards + (position < self.readers % shards)
        return raw_index % sharing == self.reader // shards

    # -- reading -------------------------------------------------------------------------------------------------------
    def _next_raw(self) -> tuple[int, int, dict[str, Any]] | None:
        """The next raw sample this reader keeps, moving through shards and passes; None when a pass ends and
        ``cycle`` is off."""
        empty_passes = 0  # passes that ended in this call without giving this reader a sample
        kept_this_pass = seen_this_pass = 0
        while True:
            shards = self.pass_shards(self.pass_index)
            if self.cursor >= len(shards):  # the pass is over
                if not self.cycle:
                    return None
                empty_passes = empty_passes + 1 if not kept_this_pass else 0
                if empty_passes >= 2:  # a whole pass (the second) was read here and gave this reader nothing
                    if not seen_this_pass:
                        raise RuntimeError(f"source {self.name}: no readable sample in a whole pass over its "
                                           f"{len(self.urls)} shard(s) (first: {self.urls[0]}); check its shards")
                    self.read_all = True
                    empty_passes = 0
                    warnings.warn(f"source {self.name}: a pass holds fewer samples than the {self.readers} readers; "
                                  "every reader now reads all of it (samples repeat across readers)", stacklevel=3)
                self.pass_index += 1
                self.cursor = self.consumed = 0
                kept_this_pass = seen_this_pass = 0
                self._open = None
                continue
            url, position = shards[self.cursor]
            if self._open is None or self._open[0] != url or self._open[1] != self.consumed:
                iterator = iter_raw(self.urls[url], self.stats)
                for _ in range(self.consumed):  # resume inside the shard
                    next(iterator, None)
                self._open = (url, self.consumed, iterator)
            raw = next(self._open[2], None)
            if raw is None:
                self.cursor += 1
                self.consumed = 0
                self._open = None
                continue
            index = self.consumed
            self.consumed += 1
            self._open = (url, self.consumed, self._open[2])
            seen_this_pass += 1
            if self._keeps(position, index):
                kept_this_pass += 1
                return url, index, raw

    def _next_decoded(self) -> tuple[int, int, ShardSample] | None:
        bad = 0
        while True:
            item = self._next_raw()
            if item is None:
                return None
            url, index, raw = item
            sample = decode(raw, self.stats, self.codebook_sizes)
            if sample is not None:
                return url, index, sample
            bad += 1
            if bad >= self.max_bad_in_a_row:
                raise RuntimeError(f"source {self.name}: {bad} unusable samples in a row (last in {self.urls[url]}); "
                                   "are these shards made for this vocabulary? See the warnings above.")

    def _restore_buffer(self) -> list[ShardSample]:
        """Re-read the samples the saved buffer referenced (each shard once, up to its last referenced sample)."""
        pairs = list(zip(self.refs[0::2], self.refs[1::2], strict=True))
        wanted: dict[int, set[int]] = {}
        for url, index in pairs:
            wanted.setdefault(url, set()).add(index)
        found: dict[tuple[int, int], ShardSample] = {}
        for url, indices in wanted.items():
            last = max(indices)
            for index, raw in enumerate(iter_raw(self.urls[url], ReaderStats())):
                if index in indices:
                    sample = decode(raw, ReaderStats(), self.codebook_sizes)
                    if sample is not None:
                        found[url, index] = sample
                if index >= last:
                    break
        missing = [p for p in pairs if p not in found]
        if missing:
            first = f"{self.urls[missing[0][0]]} sample {missing[0][1]}"
            self.stats.note(f"source {self.name}: {len(missing)} buffered sample(s) of the saved position are no "
                            f"longer readable (first: {first}); the shards changed since the checkpoint, so the "
                            "resumed stream differs")
        kept = [p for p in pairs if p in found]
        self.refs = [x for p in kept for x in p]
        return [found[p] for p in kept]

    def __next__(self) -> ShardSample:
        if self._buffer is None:
            self._buffer = self._restore_buffer()
        buffer, size = self._buffer, max(1, self.shuffle_buffer)
        while not self.exhausted and len(buffer) < size:
            item = self._next_decoded()
            if item is None:
                self.exhausted = True
                break
            url, index, sample = item
            buffer.append(sample)
            self.refs.extend((url, index))
        if not buffer:
            raise StopIteration
        pick = self.rng.randrange(len(buffer)) if size > 1 else 0
        last = len(buffer) - 1
        buffer[pick], buffer[last] = buffer[last], buffer[pick]
        i, j, refs = 2 * pick, 2 * last, self.refs
        refs[i], refs[i + 1], refs[j], refs[j + 1] = refs[j], refs[j + 1], refs[i], refs[i + 1]
        del self.refs[-2:]
        return buffer.pop()

    def __iter__(self) -> SampleStream:
        return self

    # -- state ---------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"pass": self.pass_index, "cursor": self.cursor, "consumed": self.consumed, "refs": list(self.refs),
                "rng": [version, list(internal), gauss], "exhausted": self.exhausted, "read_all": self.read_all}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pass_index, self.cursor, self.consumed = int(state["pass"]), int(state["cursor"]), int(state["consumed"])
        self.refs = [int(x) for x in state["refs"]]
        if max(self.refs[0::2], default=-1) >= len(self.urls):
            raise ValueError(f"source {self.name}: the saved position names shard {max(self.refs[0::2])} but the "
                             f"source has {len(self.urls)} shards now; resume with the shards it was saved with")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.exhausted, self.read_all = bool(state["exhausted"]), bool(state["read_all"])
        self._buffer = None if self.refs else []
        self._open = None
