"""Real-format loaders on small files written here in the exact published formats, damaged
inputs, downloads (never touching the network) and safe archive extraction."""

import csv
import datetime
import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from urllib.error import URLError

import numpy as np
import pytest

from train import datasets as D
from train.datasets import download as dl
from train.datasets import formats


@pytest.fixture(autouse=True)
def _no_network_and_private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('JAXZOO_DATA', str(tmp_path / 'cache'))

    def refuse(*args, **kwargs):
        raise URLError('network disabled in tests')
    monkeypatch.setattr(dl, 'urlopen', refuse)


# --------------------------------------------------------------------------- IDX

def idx_bytes(arr, type_byte=0x08):
    """IDX written independently of the loader: magic 0x00 0x00 type rank, big-endian dims."""
    head = struct.pack('>BBBB', 0, 0, type_byte, arr.ndim)
    head += b''.join(struct.pack('>I', d) for d in arr.shape)
    return head + arr.astype('>u1' if type_byte == 0x08 else arr.dtype).tobytes()


def write_mnist(directory, n_train=5, n_test=3, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (('train', n_train), ('t10k', n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr, rank in (('images', images, 3), ('labels', labels, 1)):
            name = f'{split}-{kind}-idx{rank}-ubyte'
            raw = idx_bytes(arr)
            if gz:
                (directory / (name + '.gz')).write_bytes(gzip.compress(raw))
            else:
                (directory / name).write_bytes(raw)
        data[split] = (images, labels)
    return data


@pytest.mark.parametrize('gz', [True, False])
def test_mnist_idx_round_trip(tmp_path, gz):
    data = write_mnist(tmp_path / 'm', gz=gz)
    ds = D.load('mnist', path=tmp_path / 'm')
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train[..., 0], data['train'][0] / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, data['train'][1])
    np.testing.assert_array_equal(ds.y_test, data['t10k'][1])
    assert ds.y_train.dtype == np.int32


def test_fashion_mnist_from_the_cache_dir():
    data = write_mnist(D.cache_dir() / 'fashion_mnist', n_train=4, n_test=2)
    ds = D.load('fashion_mnist')
    np.testing.assert_array_equal(ds.x_test[..., 0] * 255, data['t10k'][0])
    assert ds.meta['classes'][9] == 'Ankle boot'


def test_parse_idx_other_types_and_errors():
    arr = np.arange(6, dtype='>i4').reshape(2, 3)
    np.testing.assert_array_equal(formats.parse_idx(idx_bytes(arr, 0x0C)), arr)
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match='wrong magic'):
        formats.parse_idx(b'\x12\x34' + good[2:])
    with pytest.raises(ValueError, match='wrong magic'):
        formats.parse_idx(good[:2] + b'\x07' + good[3:])
    with pytest.raises(ValueError, match='rank 1'):
        formats.parse_idx(good, ndim=1)
    with pytest.raises(ValueError, match='truncated'):
        formats.parse_idx(good[:-1])
    with pytest.raises(ValueError, match='truncated IDX header'):
        formats.parse_idx(good[:9])
    with pytest.raises(ValueError, match='unexpected bytes'):
        formats.parse_idx(good + b'\x00')


@pytest.mark.parametrize('dims', [(0xFFFFFFFF,) * 3, (2**21, 2**21, 2**22)])
def test_parse_idx_huge_header_dims_report_file_dims_and_exact_sizes(dims):
    # 2**21 * 2**21 * 2**22 == 2**64 wraps to 0 in int64; the expected size is exact
    head = struct.pack('>BBBB', 0, 0, 0x08, 3) + struct.pack('>III', *dims)
    need = dims[0] * dims[1] * dims[2]
    with pytest.raises(ValueError) as err:
        formats.parse_idx(head + bytes(16), source='f.idx')
    msg = str(err.value)
    assert msg.startswith('f.idx: truncated')
    assert str(dims) in msg and f'({need} bytes of data)' in msg and 'only 16 bytes' in msg


def test_mnist_damaged_files_give_clear_errors(tmp_path):
    d = tmp_path / 'm'
    write_mnist(d)
    lab = d / 'train-labels-idx1-ubyte.gz'
    # a label file whose header declares 4 records next to 5 images
    lab.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(ValueError, match='record count mismatch.*5 images.*4 labels'):
        D.load('mnist', path=d)
    # the header says 5 but the data stops early
    lab.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))[:-2]))
    with pytest.raises(ValueError, match='truncated'):
        D.load('mnist', path=d)
    # a truncated gzip stream
    lab.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8)))[:-6])
    with pytest.raises(ValueError, match='gzip'):
        D.load('mnist', path=d)
    lab.write_bytes(gzip.compress(idx_bytes(np.full(5, 11, np.uint8))))
    with pytest.raises(ValueError, match='label 11'):
        D.load('mnist', path=d)
    lab.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    D.load('mnist', path=d)  # repaired
    img = d / 't10k-images-idx3-ubyte.gz'
    img.write_bytes(gzip.compress(b'\x00\x00\x08\x01' + struct.pack('>I', 3) + bytes(3)))
    with pytest.raises(ValueError, match='rank 3'):
        D.load('mnist', path=d)


def test_missing_files_give_one_message_naming_files_and_place(tmp_path):
    with pytest.raises(dl.MissingDataError) as err:
        D.load('mnist')
    msg = str(err.value)
    assert str(D.cache_dir() / 'mnist') in msg
    for stem in ('train-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
        assert stem in msg
    assert 'storage.googleapis.com' in msg and 'JAXZOO_DATA' in msg
    for name in ('cifar10', 'bike_sharing', 'text', 'parallel', 'text8'):
        with pytest.raises(dl.MissingDataError, match='Put these files in'):
            D.load(name)
    with pytest.raises(dl.MissingDataError):
        D.load('image_folder', path=tmp_path / 'nothing')
    assert isinstance(dl.MissingDataError('x'), FileNotFoundError)


# --------------------------------------------------------------------------- CIFAR-10

def cifar_records(labels, rng):
    pixels = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    raw = b''.join(bytes([lab]) + p.tobytes() for lab, p in zip(labels, pixels, strict=True))
    return raw, pixels


def write_cifar_tar(directory, rng, n=4):
    """cifar-10-binary.tar.gz with cifar-10-batches-bin/ as in the real archive."""
    directory.mkdir(parents=True, exist_ok=True)
    members, truth = {}, {}
    for name in [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']:
        labels = rng.integers(0, 10, size=n)
        raw, pixels = cifar_records(labels, rng)
        members[name] = raw
        truth[name] = (labels, pixels)
    members['batches.meta.txt'] = '\n'.join(formats.CIFAR10_CLASSES).encode() + b'\n\n'
    with tarfile.open(directory / 'cifar-10-binary.tar.gz', 'w:gz') as tf:
        for name, raw in members.items():
            info = tarfile.TarInfo('cifar-10-batches-bin/' + name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return truth


def test_cifar10_binary_records_from_the_archive(tmp_path):
    rng = np.random.default_rng(0)
    truth = write_cifar_tar(tmp_path / 'c', rng)
    ds = D.load('cifar10', path=tmp_path / 'c')
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    labels, pixels = truth['data_batch_2.bin']
    np.testing.assert_array_equal(ds.y_train[4:8], labels)
    # record layout: 1024 red bytes, 1024 green, 1024 blue, each row-major
    for i in range(4):
        for (r, c, ch) in ((0, 0, 0), (5, 7, 1), (31, 31, 2), (2, 30, 2)):
            assert ds.x_train[4 + i, r, c, ch] == np.float32(
                pixels[i, ch * 1024 + r * 32 + c]) / np.float32(255)
    np.testing.assert_array_equal(ds.y_test, truth['test_batch.bin'][0])
    assert ds.meta['classes'] == formats.CIFAR10_CLASSES
    with pytest.raises(ValueError, match='holds 4 records, expected 10000'):
        D.load('cifar10', path=tmp_path / 'c', expected_records=10000)


def test_cifar10_damaged_batches(tmp_path):
    rng = np.random.default_rng(1)
    write_cifar_tar(tmp_path / 'c', rng)
    D.load('cifar10', path=tmp_path / 'c')  # extracts
    batch = tmp_path / 'c' / 'cifar-10-batches-bin' / 'data_batch_3.bin'
    raw = batch.read_bytes()
    batch.write_bytes(raw[:-100])
    with pytest.raises(ValueError, match='not a positive multiple of the 3073-byte'):
        D.load('cifar10', path=tmp_path / 'c')
    batch.write_bytes(bytes([42]) + raw[1:])
    with pytest.raises(ValueError, match='record 0 has label 42'):
        D.load('cifar10', path=tmp_path / 'c')


# --------------------------------------------------------------------------- bike sharing

def write_hour_csv(path, n_days=100, seed=0, drop=()):
    rng = np.random.default_rng(seed)
    start = datetime.date(2011, 1, 1)
    rows = []
    instant = 0
    for d in range(n_days):
        day = start + datetime.timedelta(days=d)
        for hr in range(24):
            if (d * 24 + hr) % 37 == 5:  # the real file misses some hours
                continue
            instant += 1
            casual, registered = int(rng.integers(0, 50)), int(rng.integers(0, 300))
            rows.append({
                'instant': instant, 'dteday': day.isoformat(),
                'season': (day.month % 12) // 3 + 1, 'yr': day.year - 2011, 'mnth': day.month,
                'hr': hr, 'holiday': int(rng.random() < 0.03),
                'weekday': (day.weekday() + 1) % 7, 'workingday': int(day.weekday() < 5),
                'weathersit': int(rng.integers(1, 5)), 'temp': round(rng.random(), 2),
                'atemp': round(rng.random(), 4), 'hum': round(rng.random(), 2),
                'windspeed': round(rng.random() * 0.5, 4), 'casual': casual,
                'registered': registered, 'cnt': casual + registered})
    cols = [c for c in formats.BIKE_COLUMNS if c not in drop]
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction='ignore')
        w.writeheader()
        w.writerows(rows)
    return rows


def test_bike_sharing_preprocessing_of_the_first_project(tmp_path):
    rows = write_hour_csv(tmp_path / 'hour.csv')
    ds = D.load('bike_sharing', path=tmp_path)
    days = sorted({r['dteday'] for r in rows})
    test_days, val_days = set(days[-21:]), set(days[-81:-21])
    by_split = {k: [r for r in rows if (r['dteday'] in test_days) == (k == 'test')
                    and (r['dteday'] in val_days) == (k == 'val')]
                for k in ('train', 'val', 'test')}
    assert len(ds.x_train) == len(by_split['train'])
    assert len(ds.x_val) == len(by_split['val']) and len(ds.x_test) == len(by_split['test'])
    names = ds.meta['feature_names']
    assert len(names) == 5 + 4 + 4 + 12 + 24 + 7 == ds.x_train.shape[1] == 56
    for dropped in ('instant', 'dteday', 'atemp', 'workingday', 'cnt', 'casual', 'registered',
                    'season', 'hr'):
        assert dropped not in names
    # one-hot blocks against the raw rows
    for i in (0, 17, 100):
        r = by_split['train'][i]
        for c in ('season', 'weathersit', 'mnth', 'hr', 'weekday'):
            hot = [n for n, v in zip(names, ds.x_train[i], strict=True)
                   if n.startswith(c + '_') and v == 1]
            assert hot == [f"{c}_{r[c]}"]
        assert ds.x_train[i, names.index('yr')] == r['yr']
    # standardized with training statistics only, undone by the scalers
    train_cnt = np.array([r['cnt'] for r in by_split['train']], np.float64)
    expected = (train_cnt - train_cnt.mean()) / train_cnt.std()
    np.testing.assert_allclose(ds.y_train, expected, rtol=1e-5, atol=1e-5)
    test_cnt = np.array([r['cnt'] for r in by_split['test']], np.float64)
    undone = ds.meta['scalers']['cnt'].inverse_transform(ds.y_test[:, None])[:, 0]
    np.testing.assert_allclose(undone, test_cnt, rtol=1e-5, atol=1e-3)
    temp = np.array([r['temp'] for r in by_split['train']])
    np.testing.assert_allclose(ds.x_train[:, names.index('temp')],
                               (temp - temp.mean()) / temp.std(), atol=1e-5)
    multi = D.load('bike_sharing', path=tmp_path / 'hour.csv', targets=('cnt', 'casual'))
    assert multi.y_train.shape == (len(by_split['train']), 2)
    with pytest.raises(ValueError, match='already has a validation split'):
        D.load('bike_sharing', path=tmp_path, validation=0.1)


def test_bike_sharing_bad_csv(tmp_path):
    write_hour_csv(tmp_path / 'hour.csv', drop=('windspeed',))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['windspeed'\]"):
        D.load('bike_sharing', path=tmp_path)
    write_hour_csv(tmp_path / 'hour.csv')
    text = (tmp_path / 'hour.csv').read_text().splitlines()
    good = list(text)
    text[3] = 'x' + text[3]
    (tmp_path / 'hour.csv').write_text('\n'.join(text) + '\n')
    with pytest.raises(ValueError, match=r"hour.csv:4: column 'instant' has non-numeric"):
        D.load('bike_sharing', path=tmp_path)
    text = list(good)
    text[5] = text[5].replace(',2011-', ',11-', 1)
    (tmp_path / 'hour.csv').write_text('\n'.join(text) + '\n')
    with pytest.raises(ValueError, match=r"dteday '11-01-01' is not a YYYY-MM-DD date"):
        D.load('bike_sharing', path=tmp_path)
    write_hour_csv(tmp_path / 'hour.csv', n_days=50)
    with pytest.raises(ValueError, match='covers 50 days'):
        D.load('bike_sharing', path=tmp_path)


@pytest.mark.parametrize('column,value,message', [
    ('hr', '3.7', "column 'hr' has non-integer value '3.7'"),
    ('season', '2.0001', "column 'season' has non-integer value '2.0001'"),
    ('temp', 'nan', "column 'temp' has non-finite value 'nan'"),
    ('cnt', 'inf', "column 'cnt' has non-finite value 'inf'"),
    ('hr', '24', r"column 'hr' has values \[24\] outside"),
])
def test_bike_sharing_rejects_fractional_codes_and_non_finite_numbers(tmp_path, column, value,
                                                                      message):
    write_hour_csv(tmp_path / 'hour.csv')
    lines = (tmp_path / 'hour.csv').read_text().splitlines()
    row = lines[6].split(',')
    row[formats.BIKE_COLUMNS.index(column)] = value
    lines[6] = ','.join(row)
    lines.insert(3, '')     # a blank line: rows after it keep their file line numbers
    (tmp_path / 'hour.csv').write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r'hour.csv:8: ' + message):
        D.load('bike_sharing', path=tmp_path / 'hour.csv')


@pytest.mark.parametrize('name,target', [
    ('text', 'x/doesnotexist.txt'), ('bike_sharing', 'x/hour.csv'), ('parallel', 'x/fra.txt'),
    ('text8', 'x/text8.zip'), ('mnist', 'x/mnist'), ('cifar10', 'x/cifar'),
    ('image_folder', 'x/faces'),
])
def test_a_path_that_does_not_exist_is_named_as_such(tmp_path, name, target):
    path = tmp_path / target
    with pytest.raises(dl.MissingDataError) as err:
        D.load(name, path=path)
    msg = str(err.value)
    assert f'{path} does not exist' in msg and 'Put these files' not in msg


# --------------------------------------------------------------------------- text corpora

def test_plain_text_char_level(tmp_path):
    text = 'First Citizen:\nBefore we proceed any further, hear me speak.\n' * 20
    (tmp_path / 'input.txt').write_text(text)
    ds = D.load('text', path=tmp_path / 'input.txt', test_fraction=0.25)
    v = ds.meta['vocab']
    assert v.decode(ds.x_train) + v.decode(ds.x_test) == text
    assert len(ds.x_test) == round(0.25 * len(text))
    assert set(v.tokens) == set(text)
    (tmp_path / 'bad.txt').write_bytes(b'abc\xff\xfe')
    with pytest.raises(ValueError, match='not valid utf-8'):
        D.load('text', path=tmp_path / 'bad.txt')


def test_parallel_tab_separated(tmp_path):
    lines = ['Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)',
             'I\'m fine.\tJe vais bien.\tCC-BY 2.0 (France) Attribution: tatoeba.org #1',
             'Who are you?\tQui êtes-vous ?\tCC-BY 2.0 (France) Attribution: tatoeba.org #2',
             'This sentence is much too long to be kept here ok.\tTrop long.\tCC-BY',
             ] + [f'Hello {i}.\tBonjour {i}.' for i in 'abcdefgh']
    (tmp_path / 'eng-fra.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    ds = D.load('parallel', path=tmp_path, max_length=6, test_fraction=0.25)
    src, tgt = ds.meta['source_vocab'], ds.meta['target_vocab']
    all_src = ds.meta['source_text_train'] + ds.meta['source_text_test']
    all_tgt = ds.meta['target_text_train'] + ds.meta['target_text_test']
    assert len(all_src) == 11  # the long sentence is filtered out
    pairs = dict(zip(all_src, all_tgt, strict=True))
    assert pairs['who are you ?'] == 'qui etes vous ?'
    assert pairs["i'm fine ."] == 'je vais bien .'
    for i, s in enumerate(ds.meta['source_text_train']):
        assert src.decode(ds.x_train[i]) == s
        assert tgt.decode(ds.y_train[i]) == ds.meta['target_text_train'][i]
        assert ds.y_train[i, 0] == tgt.bos_id
    rev = D.load('parallel', path=tmp_path / 'eng-fra.txt', reverse=True, max_length=None)
    assert 'va !' in rev.meta['source_text_train'] + rev.meta['source_text_test']
    (tmp_path / 'broken.txt').write_text('Go.\tVa !\nno tab here\n')
    with pytest.raises(ValueError, match=r'broken.txt:2: expected "source<TAB>target"'):
        D.load('parallel', path=tmp_path / 'broken.txt')


def test_text8_raw_and_zip(tmp_path):
    words = ('anarchism originated as a term of abuse first used against early working class '
             'radicals ') * 30
    (tmp_path / 'text8').write_bytes(b' ' + words.strip().encode())
    with zipfile.ZipFile(tmp_path / 'text8.zip', 'w') as zf:
        zf.write(tmp_path / 'text8', 'text8')
    a = D.load('text8', path=tmp_path / 'text8')
    b = D.load('text8', path=tmp_path / 'text8.zip')
    np.testing.assert_array_equal(a.x_train, b.x_train)
    v = a.meta['vocab']
    assert v.decode(np.concatenate([a.x_train, a.x_test])) == words.strip()
    small = D.load('text8', path=tmp_path / 'text8', max_tokens=50, vocab_size=8)
    assert len(small.meta['vocab']) == 8 and len(small.x_train) + len(small.x_test) == 50
    (tmp_path / 'bad8').write_bytes(b'hello World')
    with pytest.raises(ValueError, match="not text8: byte b'W'"):
        D.load('text8', path=tmp_path / 'bad8')


def test_text8_zip_with_a_broken_central_directory_names_the_file(tmp_path):
    with zipfile.ZipFile(tmp_path / 'text8.zip', 'w') as zf:
        zf.writestr('text8', ' a b c d e f g ' * 10)
    raw = (tmp_path / 'text8.zip').read_bytes()
    broken = tmp_path / 'broken.zip'
    broken.write_bytes(raw[:30] + raw[-22:])    # the end record survives, its offsets lie
    assert zipfile.is_zipfile(broken)
    with pytest.raises(ValueError, match=r'broken.zip: damaged or truncated zip archive'):
        D.load('text8', path=broken)


def test_image_folder(tmp_path):
    from PIL import Image
    colors = {'alice': (255, 0, 0), 'bob': (0, 0, 255)}
    for who, color in colors.items():
        (tmp_path / 'faces' / who).mkdir(parents=True)
        for k in range(3):
            Image.new('RGB', (40, 30), color).save(tmp_path / 'faces' / who / f'{k}.png')
    ds = D.load('image_folder', path=tmp_path / 'faces', size=(16, 8), test_fraction=0)
    assert ds.x_train.shape == (6, 16, 8, 3) and len(ds.x_test) == 0
    assert ds.meta['classes'] == ['alice', 'bob']
    np.testing.assert_allclose(ds.x_train[ds.y_train == 0], np.broadcast_to([1, 0, 0],
                               (3, 16, 8, 3)), atol=1e-6)
    np.testing.assert_allclose(ds.x_train[ds.y_train == 1][..., 2], 1.0, atol=1e-6)
    grey = D.load('image_folder', path=tmp_path / 'faces', size=4, mode='L',
                  test_fraction=0.5)
    assert grey.x_train.shape == (3, 4, 4, 1) and grey.x_test.shape == (3, 4, 4, 1)
    # ITU-R 601 luma of pure red is 299/1000
    red = np.concatenate([grey.x_train[grey.y_train == 0], grey.x_test[grey.y_test == 0]])
    np.testing.assert_allclose(red, 76 / 255, atol=1 / 255)
    (tmp_path / 'faces' / 'bob' / 'broken.png').write_bytes(b'\x89PNG not really')
    with pytest.raises(ValueError, match='cannot read image .*broken.png'):
        D.load('image_folder', path=tmp_path / 'faces')


def test_image_folder_loose_images_are_one_class_alone_and_refused_next_to_classes(tmp_path):
    from PIL import Image
    flat = tmp_path / 'flat'
    flat.mkdir()
    for k in range(2):
        Image.new('RGB', (6, 6), (k * 100, 0, 0)).save(flat / f'{k}.png')
    ds = D.load('image_folder', path=flat, size=4)
    assert ds.y_train.tolist() == [0, 0] and ds.meta['classes'] == ['']
    # a loose image next to class folders would get label 0, the first class's
    (flat / 'cats').mkdir()
    Image.new('RGB', (6, 6)).save(flat / 'cats' / 'c.png')
    with pytest.raises(ValueError, match=r'both class sub-folders \(cats\) and 2 image\(s\) '
                                         r'directly in it \(0.png, 1.png\)'):
        D.load('image_folder', path=flat, size=4)


# --------------------------------------------------------------------------- downloads

def test_download_file_checks_sha256_and_writes_atomically(tmp_path, monkeypatch):
    from urllib.request import urlopen
    monkeypatch.setattr(dl, 'urlopen', urlopen)  # file:// only: still no network
    src = tmp_path / 'payload.bin'
    src.write_bytes(b'some bytes' * 1000)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / 'cache' / 'x' / 'payload.bin'
    dl.download_file(src.as_uri(), dest, sha256=good)
    assert dest.read_bytes() == src.read_bytes()
    other = tmp_path / 'cache' / 'x' / 'other.bin'
    with pytest.raises(ValueError, match='checksum mismatch'):
        dl.download_file(src.as_uri(), other, sha256='0' * 64)
    assert not other.exists()
    assert [p.name for p in dest.parent.iterdir()] == ['payload.bin']  # no partial files
    with pytest.raises(dl.MissingDataError, match='could not fetch'):
        dl.download_file((tmp_path / 'absent.bin').as_uri(), other)


def test_offline_download_is_one_clear_error(tmp_path):
    with pytest.raises(dl.MissingDataError, match='network disabled'):
        D.load('mnist', download=True)


def test_load_with_download_fetches_checks_and_reads(tmp_path, monkeypatch):
    from urllib.request import urlopen
    monkeypatch.setattr(dl, 'urlopen', urlopen)
    served = tmp_path / 'served'
    data = write_mnist(served, n_train=6, n_test=2)
    remotes = tuple(dl.Remote(p.name, p.as_uri(), dl.sha256_file(p))
                    for p in sorted(served.iterdir()))
    monkeypatch.setitem(dl.KNOWN, 'mnist', ('mnist', remotes))
    ds = D.load('mnist', download=True)
    np.testing.assert_array_equal(ds.y_train, data['train'][1])
    assert (D.cache_dir() / 'mnist' / 'train-images-idx3-ubyte.gz').is_file()
    bad = tuple(dl.Remote(r.filename, r.url, 'f' * 64) for r in remotes)
    monkeypatch.setitem(dl.KNOWN, 'mnist', ('mnist', bad))
    with pytest.raises(ValueError, match='checksum mismatch'):
        dl.fetch('mnist', tmp_path / 'elsewhere')
    # the CIFAR archive is fetched and extracted through the same path
    rng = np.random.default_rng(2)
    truth = write_cifar_tar(tmp_path / 'cserved', rng, n=2)
    arch = tmp_path / 'cserved' / 'cifar-10-binary.tar.gz'
    monkeypatch.setitem(dl.KNOWN, 'cifar10', ('cifar10', (dl.Remote(
        arch.name, arch.as_uri(), dl.sha256_file(arch), extract=True),)))
    c = D.load('cifar10', download=True)
    np.testing.assert_array_equal(c.y_test, truth['test_batch.bin'][0])


def test_known_hashes_are_well_formed():
    for _name, (_sub, remotes) in dl.KNOWN.items():
        for r in remotes:
            assert r.url.startswith(('http://', 'https://'))
            assert r.sha256 is None or (len(r.sha256) == 64 and int(r.sha256, 16) >= 0)


def _tar_with(path, name, *, linkname=None, data=b'x'):
    with tarfile.open(path, 'w:gz') as tf:
        ok = tarfile.TarInfo('fine/ok.txt')
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b'ok'))
        info = tarfile.TarInfo(name)
        if linkname is not None:
            info.type, info.linkname = tarfile.SYMTYPE, linkname
            tf.addfile(info)
        else:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize('name,linkname,match', [
    ('../evil.txt', None, r"contains '\.\.'"),
    ('fine/../../evil.txt', None, r"contains '\.\.'"),
    ('/tmp/evil.txt', None, 'absolute path'),
    ('fine/link', '/etc/passwd', 'links to'),
    ('fine/link', '../../outside', 'links to'),
])
def test_safe_extract_rejects_members_escaping_the_target(tmp_path, name, linkname, match):
    arch = tmp_path / 'a.tar.gz'
    _tar_with(arch, name, linkname=linkname)
    target = tmp_path / 'out' / 'inner'
    with pytest.raises(ValueError, match=match):
        dl.safe_extract(arch, target)
    assert not (target / 'fine' / 'ok.txt').exists()  # checked before anything is written
    assert not (tmp_path / 'out' / 'evil.txt').exists()


def test_safe_extract_zip_and_good_archives(tmp_path):
    good = tmp_path / 'good.tar.gz'
    _tar_with(good, 'fine/link', linkname='ok.txt')
    out = dl.safe_extract(good, tmp_path / 'g')
    assert (out / 'fine' / 'ok.txt').read_bytes() == b'ok'
    z = tmp_path / 'bad.zip'
    with zipfile.ZipFile(z, 'w') as zf:
        zf.writestr('a/ok.txt', 'ok')
        zf.writestr('../evil.txt', 'evil')
    with pytest.raises(ValueError, match=r"contains '\.\.'"):
        dl.safe_extract(z, tmp_path / 'z')
    assert not (tmp_path / 'evil.txt').exists()
    zgood = tmp_path / 'good.zip'
    with zipfile.ZipFile(zgood, 'w') as zf:
        zf.writestr('hour.csv', 'a,b\n')
    assert (dl.safe_extract(zgood, tmp_path / 'zg') / 'hour.csv').read_text() == 'a,b\n'
    (tmp_path / 'junk.bin').write_bytes(b'neither')
    with pytest.raises(ValueError, match='neither a zip nor a tar'):
        dl.safe_extract(tmp_path / 'junk.bin', tmp_path / 'j')
