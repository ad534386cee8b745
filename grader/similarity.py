"""Similarity between submissions: fingerprints that survive renamed variables, reformatting, changed
comments and reordered functions. Winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003), as MOSS
and copydetect do it, over normalised Python tokens.

1. **Normalise** (``normalised_tokens``): Pygments' Python lexer; comments, docstrings and layout are
   dropped; every string literal becomes ``S``; the candidate's own names (variables, parameters,
   functions, classes) become ``V``; keywords, operators, numbers, built-ins, imported module names
   and attribute names after a dot (``torch.maximum``, ``x.clamp``: the library's words, which a copy
   keeps) stay as they are; a trailing comma before a closing bracket is dropped (a formatter adds it).
2. **Hash** every run of ``K_TOKENS`` tokens (within one file or notebook cell) with BLAKE2b, stable
   across processes, so fingerprints can be stored.
3. **Winnow**: keep the smallest hash of each window of ``WINDOW`` consecutive hashes. Any run of at
   least ``K_TOKENS + WINDOW - 1`` tokens shared by two submissions leaves at least one shared
   fingerprint; shorter coincidences mostly leave none.
4. **Exclude** every k-gram of the challenge's starter (what everyone was given).

Fingerprints are a set, so the order of functions does not matter: reordering only breaks the k-grams
that straddle two functions. Two submissions' ``Overlap`` is the number of fingerprints they share and
the share of each one's fingerprints that is shared; ``regions`` lays the shared fingerprints out as
matching line ranges, side by side.

Why not copydetect itself: it hashes k-grams with Python's ``hash()``, which changes from process to
process (fingerprints could not be stored), renames attribute names too (``torch.maximum`` and
``x.clamp`` both become ``V.V``, which makes independent solutions of a short, library-heavy task look
alike), compares every pair with a fresh set intersection rather than through an index, and brings
matplotlib and tqdm along. The algorithm is the same.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from pygments.lexers.python import PythonLexer
from pygments.token import Comment, Keyword, Name, Number, String, Text, _TokenType, is_token_subtype

K_TOKENS = 12
WINDOW = 8
GUARANTEED_TOKENS = K_TOKENS + WINDOW - 1

# When a pair is flagged as a likely copy: this share of the smaller submission's fingerprints is
# shared, and at least this many fingerprints (a few lines' worth, so two near-empty files are not
# "identical"). Chosen from the challenges' reference and known-good solutions, which are independent
# work (tests/grader/test_similarity.py): they share at most about 0.25.
FLAG_SHARE = 0.5
FLAG_MIN_SHARED = 8

_KEPT_NAMES = (Name.Builtin, Name.Exception, Name.Namespace, Name.Decorator)
_CLOSING = frozenset(")]}")


@dataclass(frozen=True)
class NormalisedToken:
    text: str
    line: int  # 1-based, in its unit (a file or a notebook cell)


@dataclass(frozen=True, order=True)
class Span:
    """Lines ``first`` to ``last`` (1-based, inclusive) of code unit number ``unit``."""

    unit: int
    first: int
    last: int


@dataclass
class Fingerprint:
    """A submission's winnowed fingerprints, with where each one came from (for ``regions``)."""

    hashes: frozenset[int]
    tokens: int
    digest: str  # SHA-256 of the normalised token stream: equal digests are copies but for names and layout
    where: dict[int, Span] = field(default_factory=dict, repr=False)  # a fingerprint's first place

    def __len__(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class Overlap:
    shared: int
    share_a: float  # of a's fingerprints, the share b has too
    share_b: float

    @property
    def share(self) -> float:
        """The share of the smaller submission that the other one holds too: how much of it is copied."""
        return max(self.share_a, self.share_b)

    @property
    def flagged(self) -> bool:
        return self.shared >= FLAG_MIN_SHARED and self.share >= FLAG_SHARE


@dataclass(frozen=True)
class Region:
    """A run of matching code: ``a`` in the first submission, ``b`` in the second."""

    number: int
    a: Span
    b: Span
    fingerprints: int


# -- normalising and fingerprinting -------------------------------------------------------------

@functools.cache
def _lexer() -> PythonLexer:
    return PythonLexer(stripnl=False, ensurenl=False)


def normalised_tokens(code: str) -> list[NormalisedToken]:
    """The code as the tokens fingerprints are made of (see the module's docstring)."""
    line_starts = [0] + [index + 1 for index, char in enumerate(code) if char == "\n"]
    tokens: list[NormalisedToken] = []
    previous = ""
    in_string = False
    for index, kind, value in _lexer().get_tokens_unprocessed(code):
        if _is(kind, Text) or _is(kind, Comment) or _is(kind, String.Doc):
            continue
        if _is(kind, String):
            if in_string:
                continue  # one S per literal, however it is split or implicitly joined
            text, in_string = "S", True
        else:
            in_string = False
            text = _normalised(kind, value, previous)
        if text in _CLOSING and tokens and tokens[-1].text == ",":
            tokens.pop()  # black's "magic trailing comma"
        tokens.append(NormalisedToken(text, bisect.bisect_right(line_starts, index)))
        previous = text
    return tokens


def _normalised(kind: _TokenType, value: str, previous: str) -> str:
    if _is(kind, Name):
        if previous == "." or any(_is(kind, kept) for kept in _KEPT_NAMES):
            return value
        return "V"
    if _is(kind, Keyword) or _is(kind, Number):
        return value
    return value.strip()


def _is(kind: _TokenType, parent: _TokenType) -> bool:
    return is_token_subtype(kind, parent)


def fingerprint(units: Sequence[tuple[str, str]], exclude: frozenset[int] = frozenset()) -> Fingerprint:
    """The fingerprints of a submission's code units (``SubmissionSources.code_units``), without those
    in ``exclude`` (``kgram_hashes`` of the starter)."""
    hashes: set[int] = set()
    where: dict[int, Span] = {}
    digest = hashlib.sha256()
    count = 0
    for unit, (_label, code) in enumerate(units):
        tokens = normalised_tokens(code)
        count += len(tokens)
        digest.update("\x1f".join(token.text for token in tokens).encode() + b"\x1e")
        kgrams = _kgrams(tokens)
        for position in _winnow([value for value, _ in kgrams]):
            value, (first, last) = kgrams[position]
            if value in exclude:
                continue
            hashes.add(value)
            where.setdefault(value, Span(unit, first, last))
    return Fingerprint(frozenset(hashes), count, digest.hexdigest(), where)


def kgram_hashes(units: Iterable[tuple[str, str]]) -> frozenset[int]:
    """Every k-gram hash (not only the winnowed ones) of some code: what to exclude (the starter)."""
    return frozenset(value for _label, code in units for value, _ in _kgrams(normalised_tokens(code)))


def _kgrams(tokens: list[NormalisedToken]) -> list[tuple[int, tuple[int, int]]]:
    """Each run of ``K_TOKENS`` tokens: its hash and the lines it spans."""
    texts = [token.text for token in tokens]
    return [
        (_hash("\x1f".join(texts[start:start + K_TOKENS])), (tokens[start].line, tokens[start + K_TOKENS - 1].line))
        for start in range(len(tokens) - K_TOKENS + 1)
    ]


def _hash(text: str) -> int:
    """A signed 64-bit hash, the same in every process (it is stored)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _winnow(values: list[int]) -> list[int]:
    """Positions chosen by robust winnowing: each window's minimum, the rightmost on ties, taken once."""
    if len(values) <= WINDOW:
        return [min(range(len(values)), key=lambda i: (values[i], -i))] if values else []
    chosen: list[int] = []
    for start in range(len(values) - WINDOW + 1):
        window = range(start, start + WINDOW)
        best = min(window, key=lambda i: (values[i], -i))
        if not chosen or chosen[-1] != best:
            chosen.append(best)
    return chosen


# -- comparing ----------------------------------------------------------------------------------

def overlap(a: Fingerprint | frozenset[int], b: Fingerprint | frozenset[int]) -> Overlap:
    hashes_a = a.hashes if isinstance(a, Fingerprint) else a
    hashes_b = b.hashes if isinstance(b, Fingerprint) else b
    shared = len(hashes_a & hashes_b)
    return Overlap(shared, shared / len(hashes_a) if hashes_a else 0.0, shared / len(hashes_b) if hashes_b else 0.0)


def shared_counts(
    items: Sequence[tuple[Hashable, frozenset[int]]], new_from: int = 0
) -> dict[tuple[int, int], int]:
    """Fingerprints shared by each pair ``(i, j)``, ``i < j``, of ``items`` (``(group, hashes)``) where
    at least one of the two is new (index ``new_from`` or later) and they are of different groups (a
    candidate is not compared with themself). Through an inverted index, so the cost follows the
    fingerprints actually shared, not the number of pairs."""
    index: dict[int, list[int]] = defaultdict(list)
    for position, (_group, hashes) in enumerate(items):
        for value in hashes:
            index[value].append(position)
    counts: Counter[tuple[int, int]] = Counter()
    for postings in index.values():
        if len(postings) < 2 or postings[-1] < new_from:
            continue
        for later in postings:
            if later < new_from:
                continue
            group = items[later][0]
            for earlier in postings:
                if earlier >= later:
                    break
                if items[earlier][0] != group:
                    counts[(earlier, later)] += 1
    return dict(counts)


def regions(a: Fingerprint, b: Fingerprint) -> list[Region]:
    """The shared fingerprints laid out as matching line ranges, in the order of ``a``: consecutive
    fingerprints whose places touch in both submissions are merged into one region."""
    pairs = sorted((a.where[value], b.where[value]) for value in a.hashes & b.hashes
                   if value in a.where and value in b.where)
    merged: list[Region] = []
    for span_a, span_b in pairs:
        last = merged[-1] if merged else None
        if last is not None and _touches(last.a, span_a) and _touches(last.b, span_b):
            merged[-1] = Region(last.number, _union(last.a, span_a), _union(last.b, span_b), last.fingerprints + 1)
        else:
            merged.append(Region(len(merged) + 1, span_a, span_b, 1))
    return merged


def _touches(before: Span, after: Span, gap_lines: int = 2) -> bool:
    return (before.unit == after.unit and after.first <= before.last + gap_lines
            and after.last >= before.first - gap_lines)


def _union(one: Span, other: Span) -> Span:
    return Span(one.unit, min(one.first, other.first), max(one.last, other.last))


def pack(hashes: Iterable[int]) -> bytes:
    """Fingerprints as bytes to store (8 bytes each, sorted)."""
    return b"".join(value.to_bytes(8, "big", signed=True) for value in sorted(hashes))


def unpack(raw: bytes) -> frozenset[int]:
    return frozenset(int.from_bytes(raw[i:i + 8], "big", signed=True) for i in range(0, len(raw), 8))
