"""Options of the embedded and generated datasets: a value of the wrong kind, or a size whose
arrays would pass `train.datasets.limits.MAX_ARRAY_BYTES`, is one TypeError or ValueError
naming the option, raised before anything is generated."""

import re

import pytest

from train import datasets as D


@pytest.mark.parametrize('name,options,message', [
    ('mnist1d', {'channel_axis': [1, 2]}, 'load_mnist1d: channel_axis must be true or false, '
                                          'got list [1, 2]'),
    ('mnist1d', {'cache': 'no'}, "load_mnist1d: cache must be true or false, got str 'no'"),
    ('mnist1d', {'args': [1]}, 'load_mnist1d: args must be a dict of mnist1d arguments, got '
                               'list [1]'),
    ('digits', {'flatten': [1]}, 'load_digits: flatten must be true or false, got list [1]'),
    ('digits', {'stratify': 'no'}, "load_digits: stratify must be true or false, got str 'no'"),
])
def test_embedded_options_of_the_wrong_kind_are_refused(name, options, message):
    with pytest.raises((TypeError, ValueError)) as err:
        D.load(name, **options)
    assert str(err.value) == message


@pytest.mark.parametrize('name,options,shape', [
    ('adding', {'n_train': 10**10}, '(10000001000, 110, 2)'),
    ('copy', {'length': 10**9}, '(5500, 1000000000)'),
    ('linear', {'n_features': 10**9}, '(300, 1000000000)'),
    ('gaussian_mixture', {'n_components': 10**9, 'dim': 1000}, '(1000000000, 1000)'),
])
def test_generated_sizes_past_max_array_bytes_are_refused_before_allocating(name, options,
                                                                             shape):
    with pytest.raises(ValueError, match=rf'load_{name}: .* of shape {re.escape(shape)} would '
                                         rf'need .*MAX_ARRAY_BYTES'):
        D.load(name, **options)


@pytest.mark.parametrize('name,options', [
    ('mnist1d', {'args': {'num_samples': 100}, 'cache': False}),
    ('reber', {'n_train': 100}), ('dates', {'n_train': 100}), ('tv_script', {'n_lines': 100}),
    ('word_corpus', {'n_sentences': 100}), ('separable', {'n_train': 100}),
    ('gaussian_ring', {'n_train': 100}), ('moons', {'n_train': 100}),
    ('reverse', {'n_train': 100}),
])
def test_every_generated_size_is_checked_against_max_array_bytes(name, options, monkeypatch):
    # the python loops of mnist1d, reber, dates, tv_script and word_corpus would otherwise
    # run for hours on a huge count before any allocation failed
    monkeypatch.setattr('train.datasets.limits.MAX_ARRAY_BYTES', 1000)
    with pytest.raises(ValueError, match=rf'load_{name}: .* would need \d+ bytes.*, more than '
                                         rf'the limit train.datasets.limits.MAX_ARRAY_BYTES = '
                                         rf'1000 bytes'):
        D.load(name, **options)
