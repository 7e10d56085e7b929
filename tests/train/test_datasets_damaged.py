"""Damaged, hostile or merely odd files for the real-format loaders, and their options: each
is one ValueError or TypeError whose message names the file (or the option), never another
exception type, a misleading later error or a silently wrong dataset."""

import csv
import io

import numpy as np
import pytest

from tests.train.test_datasets_formats import (  # the autouse fixture: no download reaches out
    _no_network_and_private_cache,  # noqa: F401
    idx_bytes,
    write_hour_csv,
    write_mnist,
)
from train import datasets as D
from train.datasets import formats

# --------------------------------------------------------------------------- IDX


def test_idx_files_with_no_examples_are_refused_at_load(tmp_path):
    d = tmp_path / 'm'
    write_mnist(d, gz=False)
    empty = d / 'train-images-idx3-ubyte'
    empty.write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (d / 'train-labels-idx1-ubyte').write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    with pytest.raises(ValueError, match=rf'load_mnist: {empty} holds no images \(its header '
                                         rf'declares 0 records\)'):
        D.load('mnist', path=d)
    empty.write_bytes(idx_bytes(np.zeros((5, 0, 28), np.uint8)))
    with pytest.raises(ValueError, match=rf'{empty} declares images of 0x28 pixels'):
        D.load('mnist', path=d)


@pytest.mark.parametrize('stem,arr,type_byte', [
    ('train-images-idx3-ubyte', np.zeros((5, 28, 28), '>f4'), 0x0D),
    ('t10k-labels-idx1-ubyte', np.zeros(3, '>f8'), 0x0E),
    ('t10k-labels-idx1-ubyte', np.zeros(3, '>i4'), 0x0C),
])
def test_idx_files_of_other_types_are_refused_naming_the_file(tmp_path, stem, arr, type_byte):
    d = tmp_path / 'm'
    write_mnist(d, gz=False)
    (d / stem).write_bytes(idx_bytes(arr, type_byte))
    with pytest.raises(ValueError) as err:
        D.load('fashion_mnist', path=d)
    assert str(err.value) == (f'{d / stem}: expected an IDX file of unsigned bytes (type byte '
                              f'0x08), got {arr.dtype.name} values (type byte 0x{type_byte:02x})')


# --------------------------------------------------------------------------- bike sharing

def _with_value(path, column, value, line=6):
    lines = path.read_text().splitlines()
    row = lines[line - 1].split(',')
    row[formats.BIKE_COLUMNS.index(column)] = value
    lines[line - 1] = ','.join(row)
    path.write_text('\n'.join(lines) + '\n')


@pytest.mark.parametrize('column,value', [('cnt', '1e39'), ('temp', '-3.5e38'),
                                          ('hr', '1e300')])
def test_bike_sharing_values_beyond_float32_are_refused(tmp_path, column, value):
    write_hour_csv(tmp_path / 'hour.csv')
    _with_value(tmp_path / 'hour.csv', column, value)
    with pytest.raises(ValueError, match=rf"hour.csv:6: column '{column}' has value "
                                         rf"'{value}', beyond the float32 range"):
        D.load('bike_sharing', path=tmp_path)


def test_bike_sharing_accepts_a_utf8_byte_order_mark(tmp_path):
    (tmp_path / 'plain').mkdir()
    write_hour_csv(tmp_path / 'plain' / 'hour.csv')
    raw = (tmp_path / 'plain' / 'hour.csv').read_bytes()
    (tmp_path / 'bom').mkdir()
    (tmp_path / 'bom' / 'hour.csv').write_bytes(b'\xef\xbb\xbf' + raw)
    a = D.load('bike_sharing', path=tmp_path / 'plain')
    b = D.load('bike_sharing', path=tmp_path / 'bom')
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


@pytest.mark.parametrize('encode,line,byte', [
    (lambda text: text.replace('2011-01-01', 'Montr\xe9al', 1).encode('latin-1'), 2, None),
    (lambda text: text.encode('utf-16'), 1, 0),
    (lambda text: bytes(range(256)) * 4, 2, 128),
])
def test_bike_sharing_csv_that_is_not_utf8_names_the_file_and_line(tmp_path, encode, line,
                                                                   byte):
    write_hour_csv(tmp_path / 'hour.csv')
    path = tmp_path / 'hour.csv'
    path.write_bytes(encode(path.read_text()))
    with pytest.raises(ValueError) as err:
        D.load('bike_sharing', path=path)
    assert type(err.value) is ValueError     # not a bare UnicodeDecodeError
    assert str(err.value).startswith(f'{path}:{line}: not valid utf-8 text at byte '
                                     f'{"" if byte is None else byte}')


@pytest.mark.parametrize('damage', ['long field', 'open quote'])
def test_bike_sharing_csv_fields_over_the_csv_limit_are_one_error(tmp_path, damage):
    rows = list(csv.reader(io.StringIO(_hour_text(tmp_path))))
    if damage == 'long field':
        rows[4][1] = 'x' * (csv.field_size_limit() + 1)
        text = '\n'.join(','.join(r) for r in rows) + '\n'
    else:       # a quote that never closes swallows the rest of the file into one field
        text = '\n'.join(','.join(r) for r in rows[:4]) + '\n"' + 'y' * 200_000
    (tmp_path / 'hour.csv').write_text(text)
    with pytest.raises(ValueError, match=r'hour.csv:\d+: malformed CSV \(field larger than '
                                         r'field limit'):
        D.load('bike_sharing', path=tmp_path / 'hour.csv')


def _hour_text(tmp_path):
    write_hour_csv(tmp_path / 'hour.csv')
    return (tmp_path / 'hour.csv').read_text()


@pytest.mark.parametrize('options,error,message', [
    ({'test_days': -5}, ValueError, 'load_bike_sharing: test_days must be >= 1, got -5'),
    ({'val_days': 'x'}, TypeError, "load_bike_sharing: val_days must be an int, got str 'x'"),
    ({'targets': 5}, TypeError, 'load_bike_sharing: targets must be a column name or a list '
                                'of them, got int 5'),
])
def test_bike_sharing_options_are_checked(tmp_path, options, error, message):
    write_hour_csv(tmp_path / 'hour.csv')
    with pytest.raises(error) as err:
        D.load('bike_sharing', path=tmp_path, **options)
    assert str(err.value) == message


# --------------------------------------------------------------------------- text and pairs

@pytest.mark.parametrize('encoding', ['no-such-codec', 'base64', 'rot13'])
def test_text_encoding_option_that_is_no_text_codec_is_a_value_error(tmp_path, encoding):
    (tmp_path / 'input.txt').write_text('hello world\n' * 10)
    with pytest.raises(ValueError, match=rf"load_text: encoding '{encoding}' is not a text "
                                         rf"encoding Python knows"):
        D.load('text', path=tmp_path / 'input.txt', encoding=encoding)


def test_text_too_short_for_both_splits_is_refused_at_load(tmp_path):
    (tmp_path / 'one.txt').write_text('a')
    with pytest.raises(ValueError, match=r'load_text: .*one.txt has 1 character\(s\); with '
                                         r'test_fraction=0.1 no training text is left'):
        D.load('text', path=tmp_path / 'one.txt')


def test_parallel_pairs_that_are_not_utf8_name_the_line(tmp_path):
    (tmp_path / 'p.txt').write_bytes(b'Go.\tVa !\n' * 3 + b'Caf\xe9.\tCaf\xe9.\n')
    with pytest.raises(ValueError, match=r'p.txt:4: not valid utf-8 text at byte 30'):
        D.load('parallel', path=tmp_path / 'p.txt')


# --------------------------------------------------------------------------- options

@pytest.mark.parametrize('name,options,message', [
    ('mnist', {'download': 'yes'}, "load_mnist: download must be true or false, got str 'yes'"),
    ('parallel', {'reverse': [1]}, 'load_parallel: reverse must be true or false, got list [1]'),
    ('parallel', {'max_length': 'x'}, "load_parallel: max_length must be an int, got str 'x'"),
    ('text8', {'max_tokens': 'abc'}, "load_text8: max_tokens must be an int, got str 'abc'"),
    ('text8', {'max_tokens': -5}, 'load_text8: max_tokens must be >= 2, got -5'),
    ('text8', {'test_fraction': '0.1'}, "load_text8: test_fraction must be a number in (0, 1), "
                                        "got str '0.1'"),
    ('cifar10', {'expected_records': 'x'}, "load_cifar10: expected_records must be an int, got "
                                           "str 'x'"),
    ('image_folder', {'size': [5]}, 'load_image_folder: size must be an int or a (height, '
                                    'width) pair, got list [5]'),
    ('image_folder', {'crop': [0, 0, 5]}, 'load_image_folder: crop must be None or a (left, '
                                          'top, right, bottom) box of 4 ints, got list [0, 0, '
                                          '5]'),
    ('text', {'path': 5}, 'text: path must be a file or folder name (str or os.PathLike), got '
                          'int 5'),
])
def test_file_loader_options_of_the_wrong_kind_are_refused_before_any_work(name, options, message):
    with pytest.raises((TypeError, ValueError)) as err:
        D.load(name, **options)
    assert str(err.value) == message


# --------------------------------------------------------------------------- images

def test_image_pillow_cannot_parse_is_one_error_naming_the_file(tmp_path):
    (tmp_path / 'img').mkdir()
    bad = tmp_path / 'img' / 'a.ppm'
    bad.write_bytes(b'P6\n25\xf9 17\n255\n' + bytes(100))     # Pillow raises a bare ValueError
    with pytest.raises(ValueError, match=rf'load_image_folder: cannot read image '
                                         rf'{bad}: invalid literal'):
        D.load('image_folder', path=tmp_path / 'img')


def test_text8_word_longer_than_a_chunk_is_refused(tmp_path):
    (tmp_path / 'text8').write_bytes(b' a b ' + b'x' * (3 << 20))
    with pytest.raises(ValueError, match=r'text8: not text8: a word longer than 1048576 bytes'):
        D.load('text8', path=tmp_path / 'text8', max_tokens=10)
