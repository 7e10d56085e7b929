"""BLEU: corpus-level modified n-gram precision with a brevity penalty (Papineni et al. 2002).

For a corpus of hypotheses ``h_i`` with reference sets ``R_i``::

    p_n  = sum_i sum_{g in ngrams_n(h_i)} min(count_{h_i}(g), max_{r in R_i} count_r(g))
           / sum_i |ngrams_n(h_i)|                      (clipped n-gram precision)
    c    = sum_i |h_i|,   r = sum_i |closest reference of h_i|  (ties: the shorter one)
    BP   = 1 if c > r else exp(1 - r / c)
    BLEU = BP * exp(sum_{n=1..N} (1/N) log p_n)

Statistics are summed over the corpus before the ratio is taken (corpus BLEU is not the mean
of sentence BLEUs). Without smoothing, any ``p_n = 0`` gives BLEU 0. ``smooth='exp'`` is
sacrebleu's default ("exp", Chen and Cherry 2014 method 3): the k-th n-gram order with no
match counts as ``1 / (2^k * total_n)``; ``smooth='add1'`` adds one to the numerator and the
denominator of every order n > 1 (Lin and Och 2004), the usual choice for sentence BLEU.

Inputs are token sequences (lists of strings or ints) or strings split on whitespace: no
other tokenization is applied, so for sacrebleu comparisons use ``tokenize='none'``.

References:
    Papineni, Roukos, Ward and Zhu, "BLEU: a method for automatic evaluation of machine
    translation", ACL 2002. Post, "A call for clarity in reporting BLEU scores", WMT 2018
    (sacrebleu). Chen and Cherry, "A systematic comparison of smoothing techniques for
    sentence-level BLEU", WMT 2014. Lin and Och, "ORANGE", COLING 2004.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["BleuResult", "ngrams", "bleu_statistics", "corpus_bleu", "sentence_bleu"]

SMOOTHING = ("none", "exp", "add1")


@dataclasses.dataclass(frozen=True)
class BleuResult:
    """A BLEU score and the statistics behind it.

    Attributes:
        bleu: the score in [0, 1] (multiply by 100 for the usual reporting scale).
        precisions: ``p_1 .. p_N`` after smoothing.
        brevity_penalty: BP.
        hyp_len: total hypothesis length c.
        ref_len: total effective reference length r.
        matches: clipped n-gram matches per order (before smoothing).
        totals: hypothesis n-gram counts per order.
    """

    bleu: float
    precisions: tuple[float, ...]
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    matches: tuple[int, ...]
    totals: tuple[int, ...]

    @property
    def score(self) -> float:
        """BLEU on sacrebleu's 0-100 scale."""
        return 100.0 * self.bleu


def _tokens(x, what: str, fn: str) -> list:
    if isinstance(x, str):
        return x.split()
    if isinstance(x, Sequence) or hasattr(x, "tolist"):
        return list(x.tolist() if hasattr(x, "tolist") else x)
    raise TypeError(f"{fn}: each {what} must be a string or a sequence of tokens, got "
                    f"{type(x).__name__}")


def ngrams(tokens: Sequence, n: int) -> Counter:
    """Counts of the n-grams (as tuples) of one token sequence."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _is_multi(entry) -> bool:
    """Several references are a sequence of token sequences (lists, tuples or arrays); a
    string or a flat sequence of tokens (a list of strings included) is one reference."""
    if isinstance(entry, str) or not isinstance(entry, Sequence) or not entry:
        return False
    # NumPy scalars have .tolist() too: only arrays of rank >= 1 count as token sequences.
    return all(isinstance(e, (list, tuple)) or getattr(e, "ndim", 0) >= 1 for e in entry)


def _closest(ref_lens: list[int], hyp_len: int) -> int:
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def bleu_statistics(hypothesis, references, max_order: int = 4):
    """Sufficient statistics of one sentence pair.

    Args:
        hypothesis: a token sequence or a whitespace-separated string.
        references: one reference (a string or a flat sequence of tokens) or several, given
            as a sequence of token sequences (``[['a', 'cat'], ['the', 'cat']]``).
        max_order: N, the largest n-gram order.

    Returns:
        ``(matches <int>[N], totals <int>[N], hyp_len, ref_len)`` as Python lists / ints.
    """
    fn = "bleu_statistics"
    hyp = _tokens(hypothesis, "hypothesis", fn)
    refs = [_tokens(r, "reference", fn) for r in
            (references if _is_multi(references) else [references])]
    if not refs:
        raise ValueError(f"{fn}: expected at least one reference, got none")
    matches, totals = [], []
    ref_counts = [[ngrams(r, n) for r in refs] for n in range(1, max_order + 1)]
    for n in range(1, max_order + 1):
        h = ngrams(hyp, n)
        most = Counter()
        for rc in ref_counts[n - 1]:
            most |= rc          # max count over references
        matches.append(sum(min(c, most[g]) for g, c in h.items()))
        totals.append(max(0, len(hyp) - n + 1))
    return matches, totals, len(hyp), _closest([len(r) for r in refs], len(hyp))


def _score(matches, totals, hyp_len, ref_len, smooth: str, fn: str) -> BleuResult:
    if smooth not in SMOOTHING:
        raise ValueError(f"{fn}: smooth must be one of {SMOOTHING}, got {smooth!r}")
    n_orders = len(matches)
    bp = 1.0 if hyp_len > ref_len else (math.exp(1.0 - ref_len / hyp_len) if hyp_len else 0.0)
    precisions, invcnt = [], 1
    for n, (m, t) in enumerate(zip(matches, totals, strict=True), start=1):
        if smooth == "add1" and n > 1:
            m, t = m + 1, t + 1
        if t == 0:
            precisions.append(0.0)
        elif m == 0 and smooth == "exp":
            invcnt *= 2
            precisions.append(1.0 / (invcnt * t))
        else:
            precisions.append(m / t)
    if hyp_len == 0 or min(precisions) == 0.0:
        bleu = 0.0
    else:
        bleu = bp * math.exp(sum(math.log(p) for p in precisions) / n_orders)
    return BleuResult(bleu, tuple(precisions), bp, hyp_len, ref_len, tuple(matches),
                      tuple(totals))


def corpus_bleu(hypotheses, references, *, max_order: int = 4, smooth: str = "none"
                ) -> BleuResult:
    """Corpus BLEU of ``hypotheses`` against ``references``.

    Args:
        hypotheses: list of n token sequences (or strings).
        references: list of n entries, each one reference (string or token sequence) or
            several references as a list of token sequences (see :func:`bleu_statistics`).
        max_order: N (4 is standard BLEU-4), uniform weights 1/N.
        smooth: 'none' (Papineni), 'exp' (sacrebleu's default) or 'add1'.

    Returns:
        :class:`BleuResult`.

    Raises:
        ValueError: when the two lists differ in length or are empty.
    """
    fn = "corpus_bleu"
    if len(hypotheses) != len(references):
        raise ValueError(f"{fn}: expected as many references as hypotheses, got "
                         f"{len(references)} and {len(hypotheses)}")
    if not hypotheses:
        raise ValueError(f"{fn}: expected at least one hypothesis, got none")
    if not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"{fn}: max_order must be an int >= 1, got {max_order!r}")
    matches, totals = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references, strict=True):
        m, t, hl, rl = bleu_statistics(h, r, max_order)
        matches = [a + b for a, b in zip(matches, m, strict=True)]
        totals = [a + b for a, b in zip(totals, t, strict=True)]
        hyp_len, ref_len = hyp_len + hl, ref_len + rl
    return _score(matches, totals, hyp_len, ref_len, smooth, fn)


def sentence_bleu(hypothesis, references, *, max_order: int = 4, smooth: str = "add1"
                  ) -> BleuResult:
    """BLEU of one sentence (smoothed with add-one by default: short sentences often have no
    4-gram match). Same arguments as :func:`corpus_bleu` for a single pair."""
    m, t, hl, rl = bleu_statistics(hypothesis, references, max_order)
    return _score(m, t, hl, rl, smooth, "sentence_bleu")
