"""Character and word vocabularies with encode and decode.

A `Vocabulary` is an ordered list of tokens; a token's id is its position. Special tokens come
first, so `<pad>` is id 0 whenever it is present.
"""

from __future__ import annotations

import collections
import re

import numpy as np

PAD, BOS, EOS, UNK = '<pad>', '<bos>', '<eos>', '<unk>'
WORD_SPECIALS = (PAD, BOS, EOS, UNK)


class Vocabulary:
    """Ordered tokens with id lookup.

    Args:
        tokens: the tokens in id order (unique).
        level: 'char' (decode joins with '') or 'word' (decode joins with ' ').
        specials: which of `tokens` are special (skipped by `decode(..., strip=True)`).
    """

    def __init__(self, tokens, *, level: str = 'char', specials=()):
        tokens = list(tokens)
        if len(set(tokens)) != len(tokens):
            dup = [t for t, c in collections.Counter(tokens).items() if c > 1]
            raise ValueError(f'Vocabulary: tokens must be unique, duplicated {dup[:5]}')
        if level not in ('char', 'word'):
            raise ValueError(f"Vocabulary: level must be 'char' or 'word', got {level!r}")
        self.tokens = tokens
        self.level = level
        self.specials = tuple(specials)
        self.index = {t: i for i, t in enumerate(tokens)}

    def __len__(self):
        return len(self.tokens)

    def __contains__(self, token):
        return token in self.index

    def __repr__(self):
        return f'Vocabulary({self.level}, {len(self)} tokens, specials={self.specials})'

    def __eq__(self, other):
        return (isinstance(other, Vocabulary) and self.tokens == other.tokens
                and self.level == other.level)

    __hash__ = None

    @property
    def pad_id(self):
        return self.index.get(PAD)

    @property
    def bos_id(self):
        return self.index.get(BOS)

    @property
    def eos_id(self):
        return self.index.get(EOS)

    @property
    def unk_id(self):
        return self.index.get(UNK)

    def split(self, text: str) -> list[str]:
        """Tokens of `text`: its characters, or its whitespace-separated words."""
        return list(text) if self.level == 'char' else text.split()

    def encode(self, text_or_tokens, *, add_bos: bool = False, add_eos: bool = False):
        """Ids of a string (split by `split`) or of a token list.

        Returns:
            <int32>[n_tokens]. Unknown tokens map to `<unk>` if present, else ValueError.
        """
        toks = self.split(text_or_tokens) if isinstance(text_or_tokens, str) \
            else list(text_or_tokens)
        unk = self.unk_id
        ids = []
        for t in toks:
            i = self.index.get(t, unk)
            if i is None:
                raise ValueError(f'Vocabulary.encode: token {t!r} is not in the vocabulary '
                                 f'and it has no {UNK}')
            ids.append(i)
        if add_bos:
            ids.insert(0, self._need(self.bos_id, BOS))
        if add_eos:
            ids.append(self._need(self.eos_id, EOS))
        return np.asarray(ids, dtype=np.int32)

    def _need(self, i, tok):
        if i is None:
            raise ValueError(f'Vocabulary.encode: vocabulary has no {tok}')
        return i

    def decode(self, ids, *, strip: bool = True) -> str:
        """Text of `ids` (<int>[n]); with `strip`, special tokens are dropped and decoding
        stops at the first `<eos>`."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f'Vocabulary.decode: id {i} outside [0, {len(self.tokens)})')
            t = self.tokens[i]
            if strip and t == EOS:
                break
            if strip and t in self.specials:
                continue
            out.append(t)
        return ''.join(out) if self.level == 'char' else ' '.join(out)

    def encode_batch(self, texts, length: int | None = None, *, add_bos=False, add_eos=False):
        """Encode several texts into one <int32>[n, length] array padded with `<pad>`."""
        seqs = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        return pad_sequences(seqs, length, self._need(self.pad_id, PAD), 'encode_batch')


def pad_sequences(seqs, length, pad_id, fn='pad_sequences'):
    """Stack 1-D int sequences into <int32>[n, length], right-padded with `pad_id`."""
    longest = max((len(s) for s in seqs), default=0)
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f'{fn}: a sequence has {longest} tokens, more than length={length}')
    out = np.full((len(seqs), length), pad_id, dtype=np.int32)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def CharVocab(text_or_chars, *, specials=()) -> Vocabulary:
    """Character vocabulary: `specials` first, then the sorted distinct characters.

    Args:
        text_or_chars: a string (or iterable of strings) whose characters form the vocabulary.
        specials: extra tokens placed first (e.g. ('<pad>', '<bos>', '<eos>')).
    """
    if isinstance(text_or_chars, str):
        chars = set(text_or_chars)
    else:
        chars = set()
        for s in text_or_chars:
            chars.update(s)
    chars -= set(specials)
    return Vocabulary(list(specials) + sorted(chars), level='char', specials=specials)


def WordVocab(tokens_or_texts, *, min_count: int = 1, max_size: int | None = None,
              specials=WORD_SPECIALS) -> Vocabulary:
    """Word vocabulary: specials first, then words by decreasing count (ties alphabetical).

    Args:
        tokens_or_texts: a list of tokens, or a list of strings split on whitespace.
        min_count: drop words seen fewer times (they encode to `<unk>`).
        max_size: keep at most this many tokens in total, specials included.
        specials: defaults to ('<pad>', '<bos>', '<eos>', '<unk>').
    """
    items = list(tokens_or_texts)
    counts = collections.Counter()
    if items and all(isinstance(t, str) and not re.search(r'\s', t) for t in items):
        counts.update(items)
    else:
        for t in items:
            counts.update(t.split() if isinstance(t, str) else t)
    for s in specials:
        counts.pop(s, None)
    words = sorted((w for w, c in counts.items() if c >= min_count),
                   key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[:max(0, max_size - len(specials))]
    return Vocabulary(list(specials) + words, level='word', specials=specials)


# The TV-script project's word tokens (udacity deep-learning, tv-script-generation:
# `token_lookup`): these punctuation marks and the line break become words of their own; a
# colon stays on its word, so a speaker "jerry:" is one token.
WORD_PUNCTUATION = ('.', ',', '"', ';', '!', '?', '(', ')', '--', '\n')
_WORD_RE = re.compile(r'\n|--|[.,";!?()]|(?:(?!--)[^\s.,";!?()])+')


def word_tokens(text: str, *, lower: bool = True) -> list[str]:
    """`text` as the TV-script project's words: lower-cased (with `lower`), each of
    `WORD_PUNCTUATION` (line breaks included) a token, other runs of non-space characters one
    token each (so "jerry:" and "don't" stay whole)."""
    if not isinstance(text, str):
        raise TypeError(f'word_tokens: expected a str, got {type(text).__name__}')
    return _WORD_RE.findall(text.lower() if lower else text)


def join_words(tokens) -> str:
    """Text from `word_tokens`' tokens: words separated by spaces, no space before closing
    punctuation or after an opening parenthesis, none around line breaks."""
    out = ''
    for t in tokens:
        if not out or out.endswith(('\n', '(')) or t in ('.', ',', ';', '!', '?', ')', '\n'):
            out += t
        else:
            out += ' ' + t
    return out
