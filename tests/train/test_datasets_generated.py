"""Generated datasets: determinism and the known facts each one must satisfy."""

import datetime
import math
import re

import numpy as np
import pytest

from train import datasets as D
from train.datasets import text as T

GENERATED = {
    'separable': {}, 'linear': {}, 'gaussian_ring': {'n_train': 500, 'n_test': 100},
    'gaussian_mixture': {}, 'moons': {}, 'adding': {'T': 20, 'n_train': 100, 'n_test': 10},
    'reber': {'n_train': 100, 'n_test': 10}, 'copy': {'delay': 5}, 'reverse': {},
    'dates': {'n_train': 200, 'n_test': 10}, 'tv_script': {'n_lines': 200},
    'word_corpus': {'n_sentences': 500},
}


@pytest.mark.parametrize('name', sorted(GENERATED))
def test_same_seed_same_bytes_other_seed_other_data(name):
    a = D.load(name, seed=3, **GENERATED[name])
    b = D.load(name, seed=3, **GENERATED[name])
    c = D.load(name, seed=4, **GENERATED[name])
    for f in ('x_train', 'y_train', 'x_test', 'y_test'):
        u, v = getattr(a, f), getattr(b, f)
        assert (u is None and v is None) or u.tobytes() == v.tobytes(), (name, f)
    assert a.x_train.tobytes() != c.x_train.tobytes()
    with pytest.raises(TypeError, match='seed'):
        D.load(name, seed=1.5, **GENERATED[name])


def test_logic_gates_are_the_truth_tables():
    ops = {'and': lambda a, b: a and b, 'or': lambda a, b: a or b, 'xor': lambda a, b: a != b}
    for name, op in ops.items():
        ds = D.load(name)
        assert ds.x_train.shape == (4, 2)
        for (a, b), y in zip(ds.x_train.astype(int), ds.y_train, strict=True):
            assert y == int(op(bool(a), bool(b))), (name, a, b)


def test_separable_and_linear_have_their_stated_truth():
    ds = D.load('separable', margin=0.1)
    w, b = ds.meta['true_w'], ds.meta['true_b']
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        score = x.astype(np.float64) @ w + b
        np.testing.assert_array_equal(y, (score > 0).astype(np.int32))
        assert np.abs(score).min() > 0.1 - 1e-6
    assert 0.2 < ds.y_train.mean() < 0.8
    lin = D.load('linear', n_train=2000, noise=0.1, n_features=4)
    design = np.c_[lin.x_train, np.ones(len(lin.x_train))].astype(np.float64)
    coef, res, *_ = np.linalg.lstsq(design, lin.y_train.astype(np.float64), rcond=None)
    # least-squares error of each coefficient is about noise / sqrt(n) = 0.002
    np.testing.assert_allclose(coef[:4], lin.meta['true_w'], atol=0.01)
    assert abs(coef[4] - lin.meta['true_b']) < 0.01
    assert abs(math.sqrt(res[0] / len(design)) - 0.1) < 0.01


def test_gaussian_ring_modes_and_spread():
    ds = D.load('gaussian_ring', n_train=8000, n_test=100, std=0.05)
    c = ds.meta['centers']
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 2.0, rtol=1e-6)
    np.testing.assert_allclose(c[1], [2 * np.cos(np.pi / 4), 2 * np.sin(np.pi / 4)], rtol=1e-6)
    for k in range(8):
        pts = ds.x_train[ds.y_train == k].astype(np.float64)
        assert abs(len(pts) - 1000) < 5 * math.sqrt(1000)
        # mean within 5 standard errors, std within 10%
        assert np.abs(pts.mean(0) - c[k]).max() < 5 * 0.05 / math.sqrt(len(pts))
        assert abs(pts.std(0).mean() - 0.05) < 0.005
    mix = D.load('gaussian_mixture', n_components=4, dim=3)
    assert mix.x_train.shape == (1000, 3) and mix.meta['centers'].shape == (4, 3)
    nearest = np.argmin(((mix.x_train[:, None] - mix.meta['centers']) ** 2).sum(-1), axis=1)
    assert (nearest == mix.y_train).mean() > 0.9


def test_moons_without_noise_lie_on_their_half_circles():
    ds = D.load('moons', noise=0.0)
    x, y = ds.x_train.astype(np.float64), ds.y_train
    up, lo = x[y == 0], x[y == 1]
    np.testing.assert_allclose(np.linalg.norm(up, axis=1), 1.0, atol=1e-6)
    assert (up[:, 1] >= -1e-6).all()
    np.testing.assert_allclose(np.linalg.norm(lo - [1.0, 0.5], axis=1), 1.0, atol=1e-6)
    assert (lo[:, 1] <= 0.5 + 1e-6).all()


# --------------------------------------------------------------------------- adding

def test_adding_problem_structure_and_target_statistics():
    T = 40
    ds = D.load('adding', T=T, n_train=20_000, n_test=10)
    x, y, lengths = ds.x_train, ds.y_train, ds.meta['lengths_train']
    assert x.shape == (20_000, T + T // 10, 2)
    assert lengths.min() == T and lengths.max() == T + T // 10
    marks = x[..., 1]
    ones = [np.flatnonzero(m == 1) for m in marks]
    assert all(len(o) == 2 for o in ones)
    assert all(o[0] < 10 and o[1] < T // 2 for o in ones)
    for m, o, L in zip(marks[:500], ones[:500], lengths[:500], strict=True):
        if 0 not in o:
            assert m[0] == -1
        assert m[L - 1] == -1 and (m[L:] == 0).all()
        assert set(np.flatnonzero(m == -1)) <= {0, L - 1}
    vals = x[..., 0]
    recomputed = 0.5 + np.array([vals[i, o].sum() for i, o in enumerate(ones)]) / 4
    np.testing.assert_allclose(y, recomputed, atol=1e-6)
    assert np.abs(vals).max() <= 1
    # theory: X1, X2 ~ U[-1, 1] (variance 1/3 each), except that a marked first pair is set to
    # 0, which happens with probability p0 = 1/10 + 9/10 * 1/(T/2 - 1)
    p0 = 0.1 + 0.9 / (T // 2 - 1)
    var = (2 - p0) / 3 / 16
    n = len(y)
    assert abs(y.mean() - 0.5) < 4 * math.sqrt(var / n)
    # the variance of a sample variance is about (mu4 - var^2) / n; mu4 <= 3 var^2 here
    assert abs(y.var() - var) < 4 * math.sqrt(2 * var ** 2 / n)
    first_marked = np.mean([0 in o for o in ones])
    assert abs(first_marked - p0) < 4 * math.sqrt(p0 * (1 - p0) / n)


def test_adding_01_variant():
    T = 30
    ds = D.load('adding', T=T, variant='01', n_train=20_000, n_test=10)
    x, y = ds.x_train, ds.y_train
    assert x.shape == (20_000, T, 2) and (ds.meta['lengths_train'] == T).all()
    assert (x[..., 0] >= 0).all() and (x[..., 0] <= 1).all()
    assert ((x[:, :T // 2, 1] == 1).sum(1) == 1).all()
    assert ((x[:, T // 2:, 1] == 1).sum(1) == 1).all()
    np.testing.assert_allclose(y, (x[..., 0] * x[..., 1]).sum(1), atol=1e-5)
    n = len(y)
    assert abs(y.mean() - 1.0) < 4 * math.sqrt(1 / 6 / n)
    assert abs(y.var() - 1 / 6) < 4 * math.sqrt(2 / 36 / n)
    with pytest.raises(ValueError, match='variant'):
        D.load('adding', variant='02')
    with pytest.raises(ValueError, match='T must be >= 10'):
        D.load('adding', T=5)


# --------------------------------------------------------------------------- Reber

# The Reber grammar as a regular expression, derived by hand from the state graph of
# Hochreiter & Schmidhuber (1997), figure 5, independently of the generator's table.
_FROM5 = r'(?:PXT*V)*(?:V|PS)'
_REBER = rf'B(?:TS*X(?:S|XT*V{_FROM5})|PT*V{_FROM5})E'
EMBEDDED_REBER = re.compile(rf'B([TP]){_REBER}\1E')


def test_reber_checker_can_fail():
    assert EMBEDDED_REBER.fullmatch('BTBTXSETE')
    assert EMBEDDED_REBER.fullmatch('BPBPVVEPE')
    assert not EMBEDDED_REBER.fullmatch('BTBTXSEPE')  # wrong second-to-last symbol
    assert not EMBEDDED_REBER.fullmatch('BTBTSETE')


def test_reber_strings_are_grammatical_and_legal_sets_are_right():
    ds = D.load('reber', n_train=3000, n_test=100)
    vocab = ds.meta['vocab']
    assert vocab.tokens == ['<pad>', 'B', 'T', 'P', 'S', 'X', 'V', 'E']
    strings = [vocab.decode(r) for r in ds.x_train]
    lengths = ds.meta['lengths_train']
    assert [len(s) for s in strings] == lengths.tolist()
    assert all(EMBEDDED_REBER.fullmatch(s) for s in strings)
    # every symbol that was observed to follow a prefix must be in that prefix's legal set,
    # and with 3000 strings every branch of the commonest prefixes is seen
    followers, seen_count = {}, {}
    for s in strings:
        for t in range(1, len(s)):
            followers.setdefault(s[:t], set()).add(s[t])
            seen_count[s[:t]] = seen_count.get(s[:t], 0) + 1
    legal_of = {}
    for row, s, L in zip(ds.y_train, strings, lengths, strict=True):
        for t in range(L):
            legal = {vocab.tokens[j] for j in np.flatnonzero(row[t])}
            legal_of.setdefault(s[:t + 1], legal)
            assert legal_of[s[:t + 1]] == legal
        assert not row[L - 1:].any()  # nothing follows the final E, padding is empty
        assert legal_of[s[:-2]] == {s[1]}  # the long-range dependency
    n_checked = 0
    for prefix, seen in followers.items():
        assert seen <= legal_of[prefix], prefix
        if seen_count[prefix] >= 30:  # a missed branch has probability < 2**-29
            assert seen == legal_of[prefix], prefix
            n_checked += 1
    assert n_checked > 100
    capped = D.load('reber', n_train=50, n_test=5, max_length=12)
    assert capped.meta['lengths_train'].max() <= 12


# --------------------------------------------------------------------------- copy / reverse

def test_copy_and_reverse():
    ds = D.load('copy', length=6, n_symbols=5)
    np.testing.assert_array_equal(ds.x_train, ds.y_train)
    assert ds.x_train.min() >= 1 and ds.x_train.max() <= 5
    mem = D.load('copy', length=4, delay=3, n_symbols=5, n_train=10, n_test=2)
    x, y = mem.x_train, mem.y_train
    assert x.shape == (10, 11)
    np.testing.assert_array_equal(y[:, 7:], x[:, :4])
    assert (y[:, :7] == 0).all() and (x[:, 4:6] == 0).all() and (x[:, 6] == 6).all()
    assert (x[:, 7:] == 0).all()
    rev = D.load('reverse', length=7)
    np.testing.assert_array_equal(rev.y_test, np.flip(rev.x_test, axis=1))


# --------------------------------------------------------------------------- dates

def _parse_date(s):
    s2 = re.sub(r'(\d+)(st|nd|rd|th)\b', r'\1', s).replace(' of ', ' ')
    patterns = ['%d %B %Y', '%d %b %Y', '%B %d, %Y', '%b %d, %Y', '%A, %B %d, %Y',
                '%a, %d %b %Y', '%a %b %d %Y', '%m/%d/%Y', '%Y/%m/%d', '%d.%m.%Y', '%Y%m%d',
                '%Y-%m-%d']
    found = set()
    for p in patterns:
        try:
            found.add(datetime.datetime.strptime(s2, p).date())
        except ValueError:
            pass
    assert len(found) == 1, (s, found)
    return found.pop()


def test_dates_round_trip():
    ds = D.load('dates', n_train=3000, n_test=200)
    src, tgt = ds.meta['source_vocab'], ds.meta['target_vocab']
    assert ds.x_train.shape == (3000, 32) and ds.y_train.shape == (3000, 12)
    texts, isos = ds.meta['source_text_train'], ds.meta['target_text_train']
    assert set(ds.meta['format_train']) == set(T.DATE_FORMATS)
    for i in range(3000):
        assert src.decode(ds.x_train[i]) == texts[i]
        assert tgt.decode(ds.y_train[i]) == isos[i]
        assert ds.y_train[i, 0] == tgt.bos_id and ds.y_train[i, 11] == tgt.eos_id
        assert _parse_date(texts[i]).isoformat() == isos[i]
    years = [int(s[:4]) for s in isos]
    assert min(years) >= 1900 and max(years) <= 2099
    with pytest.raises(ValueError, match='unknown formats'):
        D.load('dates', formats=['nope'])


# --------------------------------------------------------------------------- TV script

def test_tv_entropy_rate_on_a_grammar_computed_by_hand():
    # two speakers alternate (0 bits); 'x{s}' and '{s}x' with s in {x, y}: the string 'xx'
    # has two derivations (p = 1/2), 'xy' and 'yx' p = 1/4 each: H = 1.5 bits per line.
    # Each line is 'A: ??\n' = 6 characters, so the rate is 0.25 bits per character.
    g = {'speakers': ['A', 'B'], 'templates': [(0.5, 'x{s}'), (0.5, '{s}x')],
         'slots': {'s': ['x', 'y']}, 'direction_prob': 0.0, 'directions': []}
    ent = T.tv_entropy_rate(g)
    assert ent['line_entropy_bits'] == pytest.approx(1.5, abs=1e-12)
    assert ent['bits_per_char'] == pytest.approx(0.25, abs=1e-12)
    ds = D.load('tv_script', grammar=g, n_lines=20)
    assert ds.meta['entropy_bits_per_char'] == pytest.approx(0.25)
    lines = ds.meta['text_train'].splitlines()
    assert all(re.fullmatch(r'[AB]: (xx|xy|yx)', s) for s in lines)
    assert all(a[0] != b[0] for a, b in zip(lines, lines[1:], strict=False))


def test_tv_script_text_matches_its_entropy():
    ds = D.load('tv_script', n_lines=4000)
    text = ds.meta['text_train'] + ds.meta['text_test']
    vocab = ds.meta['vocab']
    assert vocab.decode(ds.x_train) == ds.meta['text_train']
    speakers = T.TV_GRAMMAR['speakers']
    lines = text.splitlines()
    pattern = re.compile(rf"({'|'.join(speakers)}): (.+)")
    parsed = [pattern.fullmatch(s) for s in lines]
    assert all(parsed)
    assert all(a.group(1) != b.group(1) for a, b in zip(parsed, parsed[1:], strict=False))
    # the sample's information content per character estimates the entropy rate: each line
    # costs log2(4) bits for its speaker and -log2 p(line) for its words
    dist = T._line_distribution(T.TV_GRAMMAR)
    bits = np.array([2.0 - math.log2(dist[m.group(2)]) for m in parsed[1:]])
    chars = sum(len(s) + 1 for s in lines[1:])
    rate = ds.meta['entropy_bits_per_char']
    per_line_sd = bits.std() / math.sqrt(len(bits))
    mean_len = chars / len(bits)
    assert abs(bits.sum() / chars - rate) < 4 * per_line_sd / mean_len + 0.01 * rate
    assert 0.3 < rate < 0.6


# --------------------------------------------------------------------------- word corpus

def test_word_corpus_analogies_are_solved_by_cooccurrence_vectors():
    ds = D.load('word_corpus', n_sentences=20_000)
    vocab = ds.meta['vocab']
    words = vocab.tokens
    ids = ds.x_train.reshape(-1, ds.meta['sentence_length'])
    targets = sorted({w for ws in ds.meta['word_classes'].values() for w in ws})
    t_index = {w: i for i, w in enumerate(targets)}
    # context distribution of each target word from its sentences
    counts = np.zeros((len(targets), len(words)))
    for sent in ids:
        toks = [words[i] for i in sent]
        (tw,) = [t for t in toks if t in t_index]
        for t in toks:
            if t != tw:
                counts[t_index[tw], vocab.index[t]] += 1
    vecs = counts / counts.sum(1, keepdims=True)
    analogies = ds.meta['analogies']
    assert ('man', 'woman', 'king', 'queen') in analogies
    assert ('france', 'paris', 'italy', 'rome') in analogies
    correct = 0
    for a, b, c, d in analogies:
        q = vecs[t_index[b]] - vecs[t_index[a]] + vecs[t_index[c]]
        dist = np.linalg.norm(vecs - q, axis=1)
        for w in (a, b, c):
            dist[t_index[w]] = np.inf
        correct += targets[int(np.argmin(dist))] == d
    assert correct / len(analogies) > 0.95
    # a wrong answer key would score near chance
    wrong = sum(targets[int(np.argmin(np.linalg.norm(
        vecs - (vecs[t_index[b]] - vecs[t_index[a]] + vecs[t_index[c]]), axis=1)))] == a
        for a, b, c, d in analogies)
    assert wrong / len(analogies) < 0.2
