"""zoo.bleu against BLEU values computed by hand (Papineni et al. 2002) and sacrebleu."""

import math

import pytest

from zoo import bleu

REF = "the cat is on the mat"


def test_modified_unigram_precision_clips_counts():
    # Papineni et al.'s example: 7 x "the" against a reference with two "the": p1 = 2/7.
    r = bleu.corpus_bleu(["the the the the the the the"], [REF], max_order=1)
    assert r.matches == (2,) and r.totals == (7,)
    assert r.bleu == pytest.approx(2 / 7, abs=1e-12)
    assert r.brevity_penalty == 1.0                  # c = 7 > r = 6


def test_bleu3_by_hand_and_zero_bleu4_without_smoothing():
    hyp = "the cat sat on the mat"
    # p1 = 5/6, p2 = 3/5, p3 = 1/4, p4 = 0/3, lengths equal so BP = 1.
    r3 = bleu.corpus_bleu([hyp], [REF], max_order=3)
    assert r3.matches == (5, 3, 1) and r3.totals == (6, 5, 4)
    assert r3.bleu == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3), abs=1e-12)
    assert r3.bleu == pytest.approx(0.5, abs=1e-12)
    assert bleu.corpus_bleu([hyp], [REF]).bleu == 0.0
    # exp smoothing: the first order without a match counts 1 / (2 * 3).
    assert bleu.corpus_bleu([hyp], [REF], smooth="exp").bleu == pytest.approx(
        (1 / 48) ** 0.25, abs=1e-12)
    # add-one for n > 1: 5/6, 4/6, 2/5, 1/4.
    assert bleu.sentence_bleu(hyp, REF).bleu == pytest.approx((1 / 18) ** 0.25, abs=1e-12)


def test_brevity_penalty():
    r = bleu.corpus_bleu(["the cat"], [REF], max_order=2)
    assert r.brevity_penalty == pytest.approx(math.exp(1 - 6 / 2), abs=1e-12)
    assert r.bleu == pytest.approx(math.exp(-2.0), abs=1e-12)


def test_multiple_references_max_count_and_closest_length():
    refs = [["the", "cat"], ["the", "the", "dog"]]
    r = bleu.corpus_bleu(["the the the"], [refs], max_order=1)
    assert r.bleu == pytest.approx(2 / 3, abs=1e-12)     # "the" clipped at 2 (second ref)
    assert r.ref_len == 3
    # hypothesis of length 4 between references of 3 and 5: the shorter one counts.
    _, _, _, ref_len = bleu.bleu_statistics("a b c d", [["a", "b", "c"], list("abcde")])
    assert ref_len == 3


def test_corpus_statistics_are_summed_not_averaged():
    hyps, refs = ["the cat sat on the mat", "the cat"], [REF, REF]
    r = bleu.corpus_bleu(hyps, refs, max_order=2)
    # p1 = (5 + 2) / (6 + 2), p2 = (3 + 1) / (5 + 1), c = 8, r = 12.
    expected = math.exp(1 - 12 / 8) * math.sqrt(7 / 8 * 4 / 6)
    assert r.bleu == pytest.approx(expected, abs=1e-12)
    mean_sentence = sum(bleu.corpus_bleu([h], [x], max_order=2).bleu
                        for h, x in zip(hyps, refs, strict=True)) / 2
    assert abs(mean_sentence - expected) > 0.03     # 0.421 vs 0.463


def test_token_ids_work_like_words_and_identity_is_one():
    assert bleu.corpus_bleu([[3, 4, 5, 6, 7]], [[3, 4, 5, 6, 7]]).bleu == pytest.approx(1.0)
    assert bleu.corpus_bleu([[]], [[1, 2]]).bleu == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="corpus_bleu"):
        bleu.corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="smooth"):
        bleu.corpus_bleu(["a"], ["a"], smooth="bogus")
    with pytest.raises(TypeError, match="bleu_statistics"):
        bleu.corpus_bleu([3.5], ["a"])


@pytest.mark.parametrize("smooth", ["none", "exp"])
def test_against_sacrebleu(smooth):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = ["the cat sat on the mat", "a dog runs in the park today", "hello there friend",
            "one two three four five six", "the the the"]
    refs = ["the cat is on the mat", "the dog runs in a park", "hello my friend",
            "one two three four five six", "the cat"]
    ours = bleu.corpus_bleu(hyps, refs, smooth=smooth)
    theirs = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method=smooth,
                                   force=True)
    assert ours.score == pytest.approx(theirs.score, abs=1e-9)
    assert ours.hyp_len == theirs.sys_len and ours.ref_len == theirs.ref_len


def test_numpy_token_ids_are_one_reference_not_many():
    import numpy as np

    from zoo.bleu import sentence_bleu

    hyp = [1, 2, 3, 4, 5]
    ref_np = list(np.array([1, 2, 3, 4, 5]))       # a list of NumPy integer scalars
    assert sentence_bleu(hyp, ref_np).bleu == pytest.approx(1.0)
    assert sentence_bleu(hyp, np.array([1, 2, 3, 4, 5])).bleu == pytest.approx(1.0)
    # Two references as rank-1 arrays are still two references.
    two = [np.array([9, 9, 9, 9, 9]), np.array([1, 2, 3, 4, 5])]
    assert sentence_bleu(hyp, two).bleu == pytest.approx(1.0)
