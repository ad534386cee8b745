"""Similarity between submissions: fingerprints that survive renamed variables, reformatting, changed
comments and reordered functions. Winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003), as MOSS
and copydetect do it, over normalised Python tokens.

1. **Normalise** (``normalised_tokens``): Python's tokens, by one regular expression; comments,
   docstrings and layout are dropped; every string literal becomes ``S`` (f-strings and implicitly
   joined literals included); the candidate's own names (variables, parameters,
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
alike), tokenises with Pygments (five times slower than the one regular expression here), and brings
matplotlib and tqdm along. The algorithm is the same.
"""

from __future__ import annotations

import builtins
import hashlib
import keyword
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

K_TOKENS = 12
WINDOW = 8
GUARANTEED_TOKENS = K_TOKENS + WINDOW - 1

# When a pair is flagged as a likely copy: this share of the smaller submission's fingerprints is
# shared, and at least this many fingerprints (a few lines' worth, so two near-empty files are not
# "identical"). Chosen from the challenges' reference and known-good solutions, which are independent
# work (tests/grader/test_similarity.py): they share at most about 0.25.
FLAG_SHARE = 0.5
FLAG_MIN_SHARED = 8



class NormalisedToken(NamedTuple):  # a tuple: a file has thousands of them, made in a tight loop
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

_STRING = (r"[rRbBuUfF]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\""
           r"|'(?:\\.|[^\\'\n])*'|\"(?:\\.|[^\\\"\n])*\")")
_NUMBER = (r"(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
           r"|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?)")
_OPERATOR = (r"(?:\*\*=|//=|>>=|<<=|\.\.\.|->|:=|\*\*|//|<<|>>|<=|>=|==|!=|[-+*/%&|^@]="
             r"|[-+*/%&|^~<>=.,:;@()\[\]{}])")
# One pass of one regular expression (C speed): Pygments' lexer is five times slower, and its colours
# are not needed here. Anything else (a stray "$", a quote that never closes) is one token of its own.
_TOKENS = re.compile(
    rf"(?P<space>[ \t\f]+|\\\r?\n)|(?P<newline>\r?\n)|(?P<comment>#[^\r\n]*)|(?P<string>{_STRING})"
    rf"|(?P<name>[^\W\d]\w*)|(?P<number>{_NUMBER})|(?P<op>{_OPERATOR})|(?P<other>\S)", re.DOTALL)
_KEPT_NAMES = frozenset(dir(builtins)) | {"self", "cls"}
_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")


def normalised_tokens(code: str) -> list[NormalisedToken]:
    """The code as the tokens fingerprints are made of (see the module's docstring)."""
    tokens: list[NormalisedToken] = []
    line, depth = 1, 0
    line_start = True  # no token yet on this logical line
    in_import = in_string = False
    previous = ""
    for match in _TOKENS.finditer(code):
        kind, value = match.lastgroup, match.group()
        if kind == "space":
            line += value.count("\n")
            continue
        if kind == "newline":
            line += 1
            if depth == 0:
                line_start, in_import, in_string = True, False, False
            continue
        if kind == "comment":
            continue
        first = line_start
        line_start = False
        if kind == "string":
            text_line = line
            line += value.count("\n")
            if (first and depth == 0) or in_string:  # a docstring (a statement that is a string), or a
                in_string = in_string or not first     # string joined to the one before it
                continue
            in_string = True
            tokens.append(NormalisedToken("S", text_line))
            previous = "S"
            continue
        in_string = False
        if kind == "name":
            if value in ("import", "from") and first:
                in_import = True
            if keyword.iskeyword(value) or in_import or previous in (".", "@") or value in _KEPT_NAMES:
                text = value
            else:
                text = "V"
        else:
            text = value
            if value in _OPENING:
                depth += 1
            elif value in _CLOSING:
                depth = max(0, depth - 1)
                if tokens and tokens[-1].text == ",":
                    tokens.pop()  # a formatter's "magic trailing comma"
        tokens.append(NormalisedToken(text, line))
        previous = text
    return tokens


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
    if not values:
        return []
    if len(values) <= WINDOW:
        smallest = min(values)
        return [len(values) - 1 - values[::-1].index(smallest)]
    chosen: list[int] = []
    for start in range(len(values) - WINDOW + 1):
        window = values[start:start + WINDOW]
        best = start + WINDOW - 1 - window[::-1].index(min(window))  # min and index run in C
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
    ``j`` is new (index ``new_from`` or later), they are of different groups (a candidate is not compared
    with themself) and they share any. One set intersection per pair, in C: with a few dozen to a few
    hundred fingerprints each, that beats an inverted index in Python when most pairs share code (one
    challenge's submissions all start from the same statement), and is never far behind when few do."""
    counts: dict[tuple[int, int], int] = {}
    for later in range(new_from, len(items)):
        group, hashes = items[later]
        if not hashes:
            continue
        for earlier in range(later):
            other_group, other = items[earlier]
            if other_group != group and (shared := len(hashes & other)):
                counts[(earlier, later)] = shared
    return counts


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
