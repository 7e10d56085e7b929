"""Embedded datasets, the load API and the preprocessing / vocabulary helpers."""

import io
import random
import time

import numpy as np
import pytest

from train import datasets as D
from train.datasets import embedded


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # one cache per test session: MNIST-1D is generated once, never in the user's home
    monkeypatch.setenv('JAXZOO_DATA', str(tmp_path_factory.getbasetemp() / 'jaxzoo_cache'))


# --------------------------------------------------------------------------- API

def test_names_and_unknown_name_suggests_close_matches():
    for name in ['mnist1d', 'digits', 'diabetes', 'and', 'or', 'xor', 'separable', 'linear',
                 'gaussian_ring', 'gaussian_mixture', 'moons', 'adding', 'reber', 'copy',
                 'reverse', 'dates', 'tv_script', 'word_corpus']:
        assert name in D.names()
    with pytest.raises(ValueError, match="'mnist1d'"):
        D.load('mnist_1d')
    with pytest.raises(ValueError, match='unknown dataset'):
        D.load('no-such-thing')
    with pytest.raises(TypeError):
        D.load('moons', n_trian=3)


@pytest.mark.parametrize('name,option', [('and', 'foo'), ('moons', 'n_trian'),
                                         ('mnist1d', 'nm_samples')])
def test_unknown_option_names_the_dataset_and_lists_its_options(name, option):
    with pytest.raises(TypeError) as err:
        D.load(name, **{option: 1})
    msg = str(err.value)
    assert f"dataset {name!r} has no option {option!r}" in msg
    assert 'validation' in msg and 'locals' not in msg
    if name == 'moons':
        assert "did you mean 'n_train'" in msg and 'n_test' in msg


def test_every_embedded_dataset_has_the_required_meta_and_dtypes():
    small = {'adding': {'n_train': 20, 'n_test': 5, 'T': 20}, 'reber': {'n_train': 20,
             'n_test': 5}, 'tv_script': {'n_lines': 50}, 'word_corpus': {'n_sentences': 200},
             'mnist1d': {'args': {'num_samples': 100}}}
    real = {'mnist', 'fashion_mnist', 'cifar10', 'bike_sharing', 'text', 'parallel', 'text8',
            'image_folder'}
    for name in sorted(set(D.names()) - real):
        ds = D.load(name, **small.get(name, {}))
        for key in ('name', 'task', 'source', 'license'):
            assert ds.meta[key], (name, key)
        assert ds.meta['name'] == name
        for x in (ds.x_train, ds.x_test):
            assert isinstance(x, np.ndarray)
            assert x.dtype in (np.float32, np.int32), (name, x.dtype)
        for y in (ds.y_train, ds.y_test):
            assert y is None or y.dtype in (np.float32, np.int32), (name, y.dtype)
        if ds.meta['task'] == 'classification':
            assert ds.y_train.dtype == np.int32
            assert ds.y_train.max() < ds.meta['n_classes']
        with pytest.raises(AttributeError):
            ds.x_train = None  # frozen


def test_validation_split_is_seeded_disjoint_and_complete():
    full = D.load('digits')
    ds = D.load('digits', validation=0.1)
    again = D.load('digits', validation=0.1)
    assert len(ds.x_val) == round(0.1 * len(full.x_train))
    assert len(ds.x_train) + len(ds.x_val) == len(full.x_train)
    np.testing.assert_array_equal(ds.x_val, again.x_val)
    rows = {r.tobytes() for r in full.x_train.reshape(len(full.x_train), -1)}
    val_rows = {r.tobytes() for r in ds.x_val.reshape(len(ds.x_val), -1)}
    tr_rows = {r.tobytes() for r in ds.x_train.reshape(len(ds.x_train), -1)}
    assert val_rows <= rows and tr_rows <= rows
    # the digits set has a few duplicated images, so compare counts rather than sets
    assert len(ds.y_val) + len(ds.y_train) == len(full.y_train)
    # rows of 'linear' are distinct, so disjointness and completeness can be checked exactly
    lin, lin_split = D.load('linear'), D.load('linear', validation=0.25)
    tr = {r.tobytes() for r in lin_split.x_train}
    va = {r.tobytes() for r in lin_split.x_val}
    assert not tr & va and tr | va == {r.tobytes() for r in lin.x_train}
    assert len(va) == 50
    paired = dict(zip((r.tobytes() for r in lin.x_train), lin.y_train.tolist(), strict=True))
    assert all(paired[r.tobytes()] == y for r, y in zip(lin_split.x_val, lin_split.y_val,
                                                        strict=True))
    other = D.load('digits', validation=0.1, validation_seed=1)
    assert not np.array_equal(other.x_val, ds.x_val)
    assert len(D.load('digits', validation=100).x_val) == 100
    for bad in (0.0, 1.0, 0, len(full.x_train), -3, 'a'):
        with pytest.raises((ValueError, TypeError)):
            D.load('digits', validation=bad)


def test_validation_split_carries_per_example_meta():
    ds = D.load('adding', T=20, n_train=200, n_test=10, validation=50)
    assert ds.meta['lengths_val'].shape == (50,) and ds.meta['lengths_train'].shape == (150,)
    for x, lengths in ((ds.x_val, ds.meta['lengths_val']),
                       (ds.x_train, ds.meta['lengths_train'])):
        # the last real step carries a marker (-1 or 1); padding is all zero
        last_marker = np.array([abs(xi[L - 1, 1]) for xi, L in zip(x, lengths, strict=True)])
        assert (last_marker == 1).all()
        assert all((xi[L:] == 0).all() for xi, L in zip(x, lengths, strict=True))
    text = D.load('tv_script', n_lines=100, validation=0.2)
    assert text.meta['vocab'].decode(text.x_val) == text.meta['text_val']
    assert text.meta['text_train'] + text.meta['text_val'] == \
        D.load('tv_script', n_lines=100).meta['text_train']


# --------------------------------------------------------------------------- MNIST-1D

def test_mnist1d_matches_the_published_dataset():
    from mnist1d.data import get_dataset_args
    published = get_dataset_args(as_dict=True)
    published.pop('url')
    assert embedded.MNIST1D_ARGS == published
    np_state = np.random.get_state()[1].copy()
    py_state = random.getstate()
    t0 = time.perf_counter()
    ds = D.load('mnist1d')
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = D.load('mnist1d')
    second = time.perf_counter() - t0
    print(f'mnist1d load: first {first:.2f} s (generate + cache), cached {second:.3f} s')
    # the generator seeds NumPy's global RNG; load must leave it as it was
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.y_train[:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [500] * 10
    np.testing.assert_array_equal(ds.x_train, cached.x_train)
    # the generator standardizes the whole set (train + test) to mean 0 and std 1
    allx = np.concatenate([ds.x_train, ds.x_test]).astype(np.float64)
    assert abs(allx.mean()) < 1e-5 and abs(allx.std() - 1) < 1e-5
    assert D.load('mnist1d', channel_axis=True).x_train.shape == (4000, 40, 1)


def test_mnist1d_small_config_is_deterministic_and_rejects_unknown_args():
    a = D.load('mnist1d', args={'num_samples': 200}, cache=False)
    b = D.load('mnist1d', args={'num_samples': 200}, cache=False)
    assert a.x_train.shape == (160, 40)
    assert a.x_train.tobytes() == b.x_train.tobytes()
    assert a.y_test.tobytes() == b.y_test.tobytes()
    c = D.load('mnist1d', args={'num_samples': 200, 'seed': 7}, cache=False)
    assert not np.array_equal(a.x_train, c.x_train)
    with pytest.raises(ValueError, match='num_sample'):
        D.load('mnist1d', args={'num_sample': 200})


def test_mnist1d_damaged_cache_is_regenerated():
    args = {'num_samples': 100}
    good = D.load('mnist1d', args=args)
    paths = list((D.cache_dir() / 'mnist1d').glob('*.npz'))
    assert paths
    whole = {p: p.read_bytes() for p in paths}
    # not an npz at all; a zip cut short (an interrupted copy: np.load raises BadZipFile); a
    # well-formed npz without the expected arrays
    missing_keys = io.BytesIO()
    np.savez(missing_keys, x=np.zeros(3))
    for damage in (lambda b: b'not an npz', lambda b: b[:len(b) // 2],
                   lambda b: missing_keys.getvalue()):
        for p in paths:
            p.write_bytes(damage(whole[p]))
        again = D.load('mnist1d', args=args)
        np.testing.assert_array_equal(good.x_train, again.x_train)
        np.testing.assert_array_equal(good.y_test, again.y_test)


# --------------------------------------------------------------------------- sklearn sets

def test_digits_equals_sklearn_and_loads_fast():
    from sklearn.datasets import load_digits
    t0 = time.perf_counter()
    ds = D.load('digits')
    print(f'digits load: {time.perf_counter() - t0:.3f} s')
    ref = load_digits()
    assert ds.x_train.shape[1:] == (8, 8, 1)
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    ours = np.concatenate([ds.x_train, ds.x_test])[..., 0] * 16
    ours_y = np.concatenate([ds.y_train, ds.y_test])
    key = lambda imgs, ys: sorted(zip((i.tobytes() for i in imgs.astype(np.int64)), ys.tolist(),
                                      strict=True))
    assert key(ours, ours_y) == key(ref.images, ref.target)
    # stratified: each class's test share is 20% within one example
    for c in range(10):
        n_c = (ref.target == c).sum()
        assert abs((ds.y_test == c).sum() - 0.2 * n_c) <= 1
    assert D.load('digits', flatten=True).x_train.shape[1:] == (64,)


def test_diabetes_standardized_with_train_scalers():
    from sklearn.datasets import load_diabetes
    ds = D.load('diabetes')
    ref = load_diabetes(scaled=False)
    sx, sy = ds.meta['scalers']['x'], ds.meta['scalers']['y']
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(ds.y_train.mean(), 0, atol=1e-5)
    assert abs(ds.x_test.mean()) > 1e-4  # the test split is not refitted
    raw_x = np.concatenate([sx.inverse_transform(ds.x_train), sx.inverse_transform(ds.x_test)])
    raw_y = np.concatenate([sy.inverse_transform(ds.y_train[:, None])[:, 0],
                            sy.inverse_transform(ds.y_test[:, None])[:, 0]])
    order = np.lexsort(raw_x.T[::-1])
    ref_order = np.lexsort(ref.data.T[::-1])
    np.testing.assert_allclose(raw_x[order], ref.data[ref_order], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(raw_y[order], ref.target[ref_order], rtol=1e-5)
    assert ds.meta['feature_names'] == list(ref.feature_names)


# --------------------------------------------------------------------------- helpers

def test_scalers_fit_on_train_only_and_invert():
    rng = np.random.default_rng(0)
    x_tr = rng.normal(3.0, 2.0, size=(500, 3)).astype(np.float32)
    x_tr[:, 2] = 5.0  # constant feature
    x_te = rng.normal(0.0, 1.0, size=(50, 3)).astype(np.float32)
    s = D.standardize(x_tr)
    z = s.transform(x_tr)
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(z[:, 2], 0)
    np.testing.assert_allclose(s.transform(x_te), (x_te - x_tr.mean(0)) /
                               np.where(x_tr.std(0) > 0, x_tr.std(0), 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(s.transform(x_te)), x_te, atol=1e-5)
    m = D.min_max(x_tr)
    zm = m.transform(x_tr)
    np.testing.assert_allclose(zm[:, :2].min(0), 0, atol=1e-6)
    np.testing.assert_allclose(zm[:, :2].max(0), 1, atol=1e-6)
    np.testing.assert_allclose(m.inverse_transform(m.transform(x_te)), x_te, atol=1e-5)
    with pytest.raises(ValueError, match='Scaler.transform'):
        s.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match='standardize'):
        D.standardize(np.zeros((0, 3)))


def test_one_hot_and_train_val_split():
    labels = np.array([[0, 2], [1, 1]])
    np.testing.assert_array_equal(D.one_hot(labels, 3), np.eye(3, dtype=np.float32)[labels])
    with pytest.raises(ValueError, match='one_hot'):
        D.one_hot(np.array([3]), 3)
    with pytest.raises(TypeError, match='one_hot'):
        D.one_hot(np.array([0.5]), 3)
    x = np.arange(100)
    y = np.arange(100) % 4
    a = D.train_val_split(x, y, validation=0.25, seed=3, stratify=True)
    assert sorted(np.concatenate([a[0], a[2]]).tolist()) == list(range(100))
    assert len(a[2]) == 25 and sorted(np.bincount(a[3]).tolist()) == [6, 6, 6, 7]
    b = D.train_val_split(x, y, validation=0.25, seed=3, stratify=True)
    np.testing.assert_array_equal(a[2], b[2])
    with pytest.raises(ValueError, match='train_val_split'):
        D.train_val_split(x, y[:5])


def test_vocabularies_round_trip():
    v = D.CharVocab('hello world')
    assert v.tokens == sorted(set('hello world'))
    assert v.decode(v.encode('hold')) == 'hold'
    with pytest.raises(ValueError, match='not in the vocabulary'):
        v.encode('z')
    w = D.WordVocab('the cat saw the dog the end'.split(), min_count=1)
    assert w.tokens[:4] == ['<pad>', '<bos>', '<eos>', '<unk>']
    assert w.tokens[4] == 'the'  # most frequent first
    ids = w.encode('the cat ate', add_bos=True, add_eos=True)
    assert ids[0] == w.bos_id and ids[-1] == w.eos_id and ids[3] == w.unk_id
    assert w.decode(ids) == 'the cat'  # specials dropped
    assert w.decode(ids, strip=False) == '<bos> the cat <unk> <eos>'
    batch = w.encode_batch(['the cat', 'dog'], 4)
    np.testing.assert_array_equal(batch[1], [w.index['dog'], 0, 0, 0])
    with pytest.raises(ValueError, match='length=1'):
        w.encode_batch(['the cat'], 1)
    rare = D.WordVocab('a a b'.split(), min_count=2)
    assert 'b' not in rare and 'a' in rare
