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
import struct
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
    texts, lines = _tokens(code)
    return [NormalisedToken(text, line) for text, line in zip(texts, lines, strict=True)]


def _tokens(code: str) -> tuple[list[str], list[int]]:
    """``normalised_tokens`` as two lists, texts and lines (what the tight loops want)."""
    texts: list[str] = []
    lines: list[int] = []
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
            texts.append("S")
            lines.append(text_line)
            previous = "S"
            continue
        in_string = False
        if kind == "name":
            if value in ("import", "from") and first:
                in_import = True
            if in_import or previous in (".", "@") or value in _KEPT_NAMES or keyword.iskeyword(value):
                text = value
            else:
                text = "V"
        else:
            text = value
            if value in _OPENING:
                depth += 1
            elif value in _CLOSING:
                depth = max(0, depth - 1)
                if texts and texts[-1] == ",":
                    texts.pop()  # a formatter's "magic trailing comma"
                    lines.pop()
        texts.append(text)
        lines.append(line)
        previous = text
    return texts, lines


def fingerprint(units: Sequence[tuple[str, str]], exclude: frozenset[int] = frozenset()) -> Fingerprint:
    """The fingerprints of a submission's code units (``SubmissionSources.code_units``), without those
    in ``exclude`` (``kgram_hashes`` of the starter)."""
    hashes: set[int] = set()
    where: dict[int, Span] = {}
    digest = hashlib.sha256()
    count = 0
    for unit, (_label, code) in enumerate(units):
        texts, lines = _tokens(code)
        count += len(texts)
        digest.update("\x1f".join(texts).encode() + b"\x1e")
        values = _kgram_values(texts)
        for position in _winnow(values):
            value = values[position]
            if value in exclude:
                continue
            hashes.add(value)
            if value not in where:
                where[value] = Span(unit, lines[position], lines[position + K_TOKENS - 1])
    return Fingerprint(frozenset(hashes), count, digest.hexdigest(), where)


def kgram_hashes(units: Iterable[tuple[str, str]]) -> frozenset[int]:
    """Every k-gram hash (not only the winnowed ones) of some code: what to exclude (the starter)."""
    return frozenset(value for _label, code in units for value in _kgram_values(_tokens(code)[0]))


_MASK = (1 << 64) - 1
_BASE = 0x100000001B3  # FNV's 64-bit prime: any odd multiplier of good spread
_BASE_OUT = pow(_BASE, K_TOKENS - 1, 1 << 64)


def _kgram_values(texts: list[str]) -> list[int]:
    """The hash of each run of ``K_TOKENS`` tokens: a polynomial rolling hash of the tokens' own hashes
    (modulo 2**64), mixed and made signed. Defined here, not by Python's ``hash()``, so it is the same in
    every process and every Python (it is stored)."""
    if len(texts) < K_TOKENS:
        return []
    ids = [_token_hash(text) for text in texts]
    rolling = 0
    for value in ids[:K_TOKENS]:
        rolling = (rolling * _BASE + value) & _MASK
    values = [_signed(_mix(rolling))]
    for start in range(1, len(ids) - K_TOKENS + 1):
        rolling = ((rolling - ids[start - 1] * _BASE_OUT) * _BASE + ids[start + K_TOKENS - 1]) & _MASK
        values.append(_signed(_mix(rolling)))
    return values


_TOKEN_HASHES: dict[str, int] = {}


def _token_hash(text: str) -> int:
    known = _TOKEN_HASHES.get(text)
    if known is None:
        known = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
        if len(_TOKEN_HASHES) < 100_000:  # the vocabulary is small (V, S, keywords, library words)
            _TOKEN_HASHES[text] = known
    return known


def _mix(value: int) -> int:
    """splitmix64's finaliser: nearby rolling values become unrelated (winnowing picks minima)."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


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
    with themself) and they share any. Each item's fingerprints become one bit set (a Python int, a bit
    per distinct fingerprint of all the items), so a pair costs one AND and a bit count in C: a thousand
    submissions (half a million pairs) compare in about a second."""
    numbers: dict[int, int] = {}
    bits = []
    for _group, hashes in items:
        mask = bytearray((len(numbers) + len(hashes)) // 8 + 1)
        for value in hashes:
            number = numbers.setdefault(value, len(numbers))
            if number // 8 >= len(mask):
                mask.extend(bytes(number // 8 - len(mask) + 1))
            mask[number // 8] |= 1 << (number % 8)
        bits.append(int.from_bytes(mask, "little"))
    groups = [group for group, _ in items]
    counts: dict[tuple[int, int], int] = {}
    for later in range(new_from, len(items)):
        mine, group = bits[later], groups[later]
        if not mine:
            continue
        for earlier in range(later):
            if groups[earlier] != group and (shared := (mine & bits[earlier]).bit_count()):
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
    """Fingerprints as bytes to store (8 bytes each, big-endian, sorted)."""
    ordered = sorted(hashes)
    return struct.pack(f">{len(ordered)}q", *ordered)


def unpack(raw: bytes) -> frozenset[int]:
    return frozenset(struct.unpack(f">{len(raw) // 8}q", raw))
