"""Text files: plain text (characters), tab-separated sentence pairs, and text8 (words)."""

from __future__ import annotations

import contextlib
import re
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import download as dl
from .. import limits
from ..core import Dataset, check_bool, fraction, make_meta, positive_int, register
from ..preprocessing import train_val_split
from ..vocab import WORD_SPECIALS, CharVocab, WordVocab, join_words, word_tokens
from .files import find, given_file, optional_int, read_text, text_encoding


@register('text')
def load_text(*, path=None, download: bool = False, test_fraction: float = 0.1,
              encoding: str = 'utf-8', level: str = 'char') -> Dataset:
    """A plain-text corpus as character ids (default: Tiny Shakespeare, Karpathy's char-rnn
    input.txt; the text is Shakespeare, public domain; the file is distributed with char-rnn,
    MIT).

    Args:
        path: the text file (default: cache/tiny_shakespeare/input.txt), at most
            `limits.MAX_TEXT_BYTES`.
        test_fraction: the last part of the text held out as test.
        encoding: the file's text encoding (a UTF-8 byte-order mark is dropped).
        level: 'char' (character ids) or 'word' (the TV-script project's preprocessing,
            `vocab.word_tokens`: lower-cased words, punctuation and line breaks as words of
            their own; the test part is the last `test_fraction` of the words).

    Returns:
        Dataset with x_train/x_test <int32>[n_tokens] and y None; meta 'vocab' (every
        character, or word, of the whole file, so the test text has no unknowns), 'level',
        'text_train', 'text_test'.
    """
    check_bool(download, 'download', 'load_text')
    test_fraction = fraction(test_fraction, 'test_fraction', 'load_text')
    encoding = text_encoding(encoding, 'load_text')
    file = given_file('text', path, 'a text file, or a directory holding input.txt')
    if file is None:
        file = find(dl.dataset_dir('text', path), ['input.txt'], 'text', download,
                     path is not None)
    if level not in ('char', 'word'):
        raise ValueError(f"load_text: level must be 'char' or 'word', got {level!r}")
    text = read_text(file, encoding)
    tokens = list(text) if level == 'char' else word_tokens(text)
    cut = len(tokens) - max(1, int(round(test_fraction * len(tokens))))
    if cut < 1:
        unit = 'character' if level == 'char' else 'word'
        raise ValueError(f'load_text: {file} has {len(tokens)} {unit}(s); with '
                         f'test_fraction={test_fraction} no training text is left (need at '
                         f'least one {unit} for each split)')
    if level == 'char':
        vocab, train, test = CharVocab(text), text[:cut], text[cut:]
    else:
        vocab = WordVocab([tokens], specials=())     # one token list: '\n' is a word
        train, test = join_words(tokens[:cut]), join_words(tokens[cut:])
    meta = make_meta('text', 'text', f'plain text file {file.name}',
                     'that of the text (Tiny Shakespeare: public domain text, char-rnn MIT)',
                     vocab=vocab, n_classes=len(vocab), level=level, text_train=train,
                     text_test=test, file=str(file))
    return Dataset(vocab.encode(tokens[:cut]), None, vocab.encode(tokens[cut:]), None,
                   meta=meta)


# --------------------------------------------------------------------------- parallel corpus


def normalize_sentence(s: str) -> str:
    """Lower-case, strip accents' combining marks to ASCII letters, put spaces around
    . ! ? and drop other non-letters (the normalization of the PyTorch seq2seq tutorial)."""
    s = ''.join(c for c in unicodedata.normalize('NFD', s.lower().strip())
                if unicodedata.category(c) != 'Mn')
    s = re.sub(r'([.!?])', r' \1', s)
    s = re.sub(r"[^a-z.!?']+", ' ', s)
    return ' '.join(s.split())


def read_parallel(path, *, encoding='utf-8') -> list[tuple[str, str]]:
    """Sentence pairs from a tab-separated file ('source<TAB>target[<TAB>attribution]')."""
    path = Path(path)
    pairs = []
    text = read_text(path, text_encoding(encoding, 'read_parallel'))
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split('\t')
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f'{path}:{lineno}: expected "source<TAB>target", got {line[:60]!r}')
        pairs.append((parts[0], parts[1]))
    return pairs


@register('parallel')
def load_parallel(*, path=None, download: bool = False, reverse: bool = False,
                  max_length: int | None = 10, normalize: bool = True, min_count: int = 1,
                  test_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """A tab-separated parallel corpus (Tatoeba via manythings.org/anki, e.g. eng-fra.txt)
    as word ids for translation.

    Source: Tatoeba sentences (tatoeba.org) as packaged by manythings.org/anki. License:
    CC BY 2.0 FR (attribution in the file's third column).

    Args:
        path: the .txt file or a directory with eng-fra.txt, data/eng-fra.txt (the PyTorch
            tutorial's data.zip) or fra.txt (manythings.org/anki) (default: cache).
        reverse: translate column 2 -> column 1 instead of 1 -> 2.
        max_length: keep pairs whose sides have at most this many tokens (None: all).
        normalize: apply `normalize_sentence`.
        min_count: rarer words map to '<unk>'. Vocabularies come from the training pairs.

    Returns:
        Dataset with x <int32>[n, S] source ids + '<eos>' and y <int32>[n, T] '<bos>' target
        ids '<eos>', both padded with '<pad>' = 0; meta 'source_vocab', 'target_vocab',
        'vocab' (= source), 'source_text_*', 'target_text_*'.
    """
    fn = 'load_parallel'
    for what, flag in (('download', download), ('reverse', reverse), ('normalize', normalize)):
        check_bool(flag, what, fn)
    max_length = optional_int(max_length, 'max_length', fn)
    min_count = positive_int(min_count, 'min_count', fn)
    file = given_file('parallel', path, 'a tab-separated .txt file, or a directory holding '
                       'eng-fra.txt or fra.txt')
    if file is None:
        file = find(dl.dataset_dir('parallel', path),
                     ['eng-fra.txt', 'data/eng-fra.txt', 'fra.txt'],
                     'parallel', download, path is not None)
    pairs = read_parallel(file)
    if reverse:
        pairs = [(b, a) for a, b in pairs]
    if normalize:
        pairs = [(normalize_sentence(a), normalize_sentence(b)) for a, b in pairs]
    if max_length is not None:
        pairs = [(a, b) for a, b in pairs
                 if 0 < len(a.split()) <= max_length and 0 < len(b.split()) <= max_length]
    if len(pairs) < 2:
        raise ValueError(f'load_parallel: {file} has {len(pairs)} usable pairs after '
                         f'filtering (max_length={max_length}); need at least 2')
    idx = np.arange(len(pairs))
    tr, _, te, _ = train_val_split(idx, validation=test_fraction, seed=seed)
    src_vocab = WordVocab([pairs[i][0] for i in tr], min_count=min_count)
    tgt_vocab = WordVocab([pairs[i][1] for i in tr], min_count=min_count)
    longest_src = max(len(a.split()) for a, _ in pairs) + 1
    longest_tgt = max(len(b.split()) for _, b in pairs) + 2
    for xy, longest in (('x', longest_src), ('y', longest_tgt)):
        limits.check_array_bytes(fn, f'{xy} (the ids of {file} padded to its longest sentence; '
                                 f'max_length shortens it)', (len(pairs), longest))

    def encode(ids):
        x = src_vocab.encode_batch([pairs[i][0] for i in ids], longest_src, add_eos=True)
        y = tgt_vocab.encode_batch([pairs[i][1] for i in ids], longest_tgt, add_bos=True,
                                   add_eos=True)
        return x, y

    meta = make_meta('parallel', 'translation', f'tab-separated parallel corpus {file.name}',
                     'CC BY 2.0 FR (Tatoeba)', vocab=src_vocab, source_vocab=src_vocab,
                     target_vocab=tgt_vocab,
                     source_text_train=[pairs[i][0] for i in tr],
                     target_text_train=[pairs[i][1] for i in tr],
                     source_text_test=[pairs[i][0] for i in te],
                     target_text_test=[pairs[i][1] for i in te])
    return Dataset(*encode(tr), *encode(te), meta=meta)


# --------------------------------------------------------------------------- text8


_NOT_TEXT8 = re.compile(rb'[^a-z ]')
_TEXT8_CHUNK = 1 << 20


@contextlib.contextmanager
def _text8_stream(path: Path, whole: bool):
    """A binary stream of the corpus: the `text8` member of a zip, or the file itself. A
    whole read (no max_tokens) must declare at most MAX_TEXT_BYTES."""
    def check_whole(size, what):
        if whole and size > limits.MAX_TEXT_BYTES:
            raise ValueError(f'{path}: {what} {limits.nbytes(size)}, more than '
                             f'{limits.limit_text("MAX_TEXT_BYTES")} for a whole read; pass '
                             f'max_tokens to read only the first words')

    if not zipfile.is_zipfile(path):
        check_whole(path.stat().st_size, 'has')
        try:
            with open(path, 'rb') as f:
                yield f
        except OSError as e:
            raise ValueError(f'{path}: cannot read the file ({e.strerror or e})') from e
        return
    try:
        with zipfile.ZipFile(path) as zf:
            if 'text8' not in zf.namelist():
                raise ValueError(f'{path}: zip has no member named text8 '
                                 f'(members: {zf.namelist()[:5]})')
            info = zf.getinfo('text8')
            dl.check_zip_member(info, path, path.stat().st_size)
            check_whole(info.file_size, 'member text8 declares')
            with zf.open(info) as f:
                yield f
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OSError) as e:
        raise ValueError(f'{path}: damaged or truncated zip archive '
                         f'({type(e).__name__}: {e})') from e


def read_text8(path, *, max_tokens: int | None = None) -> list[str]:
    """The words of the text8 corpus (one line of lower-case words), from `text8` or
    `text8.zip`, read in 1 MiB chunks: with `max_tokens`, only as far as the first that many
    words (however large the file); without, the file may hold at most
    `limits.MAX_TEXT_BYTES`.

    Raises:
        ValueError: naming the file: damaged zip, no text8 member, encrypted or implausible
            member, too large, empty, a byte other than a-z and space, or a 'word' over 1 MiB.
    """
    path = Path(path)
    words: list[str] = []
    carry, offset = '', 0     # carry: a word cut by the chunk boundary
    with _text8_stream(path, max_tokens is None) as f:
        while max_tokens is None or len(words) < max_tokens:
            chunk = f.read(_TEXT8_CHUNK)
            if not chunk:
                break
            bad = _NOT_TEXT8.search(chunk)
            if bad:
                raise ValueError(f'{path}: not text8: byte {chunk[bad.start():bad.start() + 1]!r} '
                                 f'at offset {offset + bad.start()} (text8 has only a-z and '
                                 f'spaces)')
            offset += len(chunk)
            text = carry + chunk.decode('ascii')
            cut = text.rfind(' ') + 1
            words.extend(text[:cut].split())
            carry = text[cut:]
            if len(carry) > _TEXT8_CHUNK:
                raise ValueError(f'{path}: not text8: a word longer than {_TEXT8_CHUNK} bytes '
                                 f'ends at offset {offset}')
    if offset == 0:
        raise ValueError(f'{path}: empty text8 file')
    if carry:
        words.append(carry)
    return words if max_tokens is None else words[:max_tokens]


@register('text8')
def load_text8(*, path=None, download: bool = False, max_tokens: int | None = None,
               vocab_size: int | None = 50_000, min_count: int = 1,
               test_fraction: float = 0.05) -> Dataset:
    """text8: the first 10^8 bytes of an English Wikipedia dump, cleaned to a-z and spaces
    (Mahoney, mattmahoney.net/dc/textdata.html), as word ids for word2vec.

    License: Wikipedia text, CC BY-SA.

    Args:
        path: `text8` or `text8.zip`, or a directory with either (default: cache).
        max_tokens: use only the first this many words (the file is read only that far);
            None reads it whole, up to `limits.MAX_TEXT_BYTES`.
        vocab_size: keep the most frequent words (specials included); others map to '<unk>'.

    Returns:
        Dataset with x_train/x_test <int32>[n_words] and y None; meta 'vocab' (from the
        training words).
    """
    fn = 'load_text8'
    check_bool(download, 'download', fn)
    max_tokens = optional_int(max_tokens, 'max_tokens', fn, minimum=2)
    vocab_size = optional_int(vocab_size, 'vocab_size', fn, minimum=len(WORD_SPECIALS) + 1)
    min_count = positive_int(min_count, 'min_count', fn)
    test_fraction = fraction(test_fraction, 'test_fraction', fn)
    file = given_file('text8', path, 'text8 or text8.zip, or a directory holding one')
    if file is None:
        file = find(dl.dataset_dir('text8', path), ['text8', 'text8.zip'], 'text8', download,
                     path is not None)
    words = read_text8(file, max_tokens=max_tokens)
    if len(words) < 2:
        raise ValueError(f'{fn}: {file} has {len(words)} word(s); need at least 2 (one for '
                         f'training, one for testing)')
    cut = len(words) - max(1, int(round(test_fraction * len(words))))
    if cut < 1:
        raise ValueError(f'{fn}: test_fraction={test_fraction} leaves none of the '
                         f'{len(words)} words of {file} for training')
    vocab = WordVocab(words[:cut], min_count=min_count, max_size=vocab_size)
    meta = make_meta('text8', 'words', 'text8 (Mahoney), first 1e8 bytes of Wikipedia',
                     'CC BY-SA (Wikipedia text)', vocab=vocab, n_classes=len(vocab))
    return Dataset(vocab.encode(words[:cut]), None, vocab.encode(words[cut:]), None, meta=meta)
