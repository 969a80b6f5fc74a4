"""Turn a patient's own words ("tenis elbow", "pinched nerve in my neck") into conditions.

Pure functions over the taxonomy; no I/O. Every phrase a condition is known by (its name and lay
synonyms) is split into words; a query word matches a phrase word exactly, with one typo (two for
long words), or as a prefix while the patient is still typing the last word. A phrase scores the
IDF-weighted words it matched times the share of the phrase matched, so "tennis elbow" beats "elbow
pain" for "tenis elbow", and rare words ("sciatic") outweigh common ones ("pain"). Naming a body
part ("... in my neck") favours that region's conditions.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import DamerauLevenshtein

from directory.taxonomy import CONDITION_BY_SLUG, CONDITIONS, REGIONS, Condition

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "at",
        "or",
        "of",
        "on",
        "in",
        "into",
        "my",
        "the",
        "i",
        "im",
        "ive",
        "have",
        "has",
        "had",
        "with",
        "from",
        "to",
        "for",
        "is",
        "it",
        "its",
        "this",
        "that",
        "me",
        "when",
        "do",
        "does",
        "get",
        "got",
        "very",
        "really",
        "bad",
        "some",
        "kind",
        "sort",
        "feel",
        "feels",
        "like",
        "lot",
    ]
)
# Below this a query is not taken to mean any condition (a lone common word like "pain").
MIN_SCORE = 0.9
# Conditions scoring within this share of the best are offered together ("arthritis").
TIE_SHARE = 0.97


@dataclass(frozen=True, slots=True)
class ConditionMatch:
    condition: Condition
    score: float
    phrase: str

    @property
    def why(self) -> str:
        """Why the condition matched, e.g. "tennis elbow -> Lateral epicondylitis (M77.1-)"."""
        codes = f" ({self.condition.icd10_label})" if self.condition.icd10 else ""
        return f"{self.phrase} -> {self.condition.name}{codes}"


def normalize(text: str) -> list[str]:
    """Lower-case ASCII words without accents, apostrophes or punctuation."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = decomposed.encode("ascii", "ignore").decode().lower().replace("'", "")
    return re.findall(r"[a-z0-9]+", ascii_text)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def _content_words(text: str) -> tuple[str, ...]:
    return tuple(_stem(w) for w in normalize(text) if w not in STOPWORDS)


@dataclass(frozen=True, slots=True)
class _Phrase:
    text: str
    words: tuple[str, ...]
    condition: Condition


def _phrases() -> list[_Phrase]:
    phrases: list[_Phrase] = []
    for condition in CONDITIONS:
        for text in (condition.name, *condition.synonyms):
            words = _content_words(text)
            if words:
                phrases.append(_Phrase(text.lower(), words, condition))
    return phrases


PHRASES = _phrases()
VOCABULARY = frozenset(w for p in PHRASES for w in p.words)


def _idf() -> dict[str, float]:
    containing: dict[str, set[str]] = {}
    for phrase in PHRASES:
        for word in phrase.words:
            containing.setdefault(word, set()).add(phrase.condition.slug)
    total = len(CONDITIONS)
    return {w: 1.0 + math.log(total / len(slugs)) for w, slugs in containing.items()}


IDF = _idf()
_REGION_PHRASES = sorted(
    ((_content_words(word), region.slug) for region in REGIONS for word in region.words),
    key=lambda item: -len(item[0]),
)


def _word_similarity(query_word: str, vocab_word: str, *, is_last: bool) -> float:
    if query_word == vocab_word:
        return 1.0
    allowed = 2 if len(vocab_word) >= 8 else 1 if len(vocab_word) >= 4 else 0
    if (
        allowed
        and len(query_word) >= 3
        and DamerauLevenshtein.distance(query_word, vocab_word, score_cutoff=allowed) <= allowed
    ):
        return 0.85
    # The patient may still be typing the last word ("tenn" -> "tennis").
    if is_last and len(query_word) >= 3 and vocab_word.startswith(query_word):
        return 0.7
    return 0.0


def regions_named(words: Iterable[str]) -> set[str]:
    """Region slugs a query names by body part ("my lower back" -> lower-spine)."""
    remaining = list(words)
    named: set[str] = set()
    for region_words, slug in _REGION_PHRASES:
        n = len(region_words)
        for i in range(len(remaining) - n + 1):
            if tuple(remaining[i : i + n]) == region_words:
                named.add(slug)
                # "upper back" must not also count as "back".
                del remaining[i : i + n]
                break
    return named


@lru_cache(maxsize=4096)
def match_conditions(query: str, limit: int = 10) -> tuple[ConditionMatch, ...]:
    """Conditions a free-text query may mean, best first, each with the phrase that matched."""
    words = _content_words(query)
    if not words:
        return ()
    # Best similarity of each vocabulary word to any query word.
    similarity: dict[str, float] = {}
    for vocab_word in VOCABULARY:
        best = max(
            _word_similarity(w, vocab_word, is_last=(i == len(words) - 1)) for i, w in enumerate(words)
        )
        if best:
            similarity[vocab_word] = best
    if not similarity:
        return ()
    named = regions_named(words)
    best_by_condition: dict[str, ConditionMatch] = {}
    for phrase in PHRASES:
        matched = [similarity.get(w, 0.0) for w in phrase.words]
        if not any(matched):
            continue
        weight = sum(IDF[w] * m for w, m in zip(phrase.words, matched, strict=True))
        coverage = sum(matched) / len(phrase.words)
        score = weight * coverage
        regions = set(phrase.condition.regions)
        if named:
            score += 0.5 if regions & named else -1.0
        current = best_by_condition.get(phrase.condition.slug)
        if current is None or score > current.score:
            best_by_condition[phrase.condition.slug] = ConditionMatch(
                phrase.condition, round(score, 4), phrase.text
            )
    ranked = sorted(best_by_condition.values(), key=lambda m: (-m.score, m.condition.slug))
    return tuple(m for m in ranked if m.score > 0)[:limit]


def resolve_condition(text: str) -> tuple[ConditionMatch, ...]:
    """What a `condition=` parameter means: a slug exactly, else the best free-text matches.

    Several conditions come back only when they score alike ("arthritis" names several joints).
    An empty result means the text names no condition we know.
    """
    slug = text.strip().lower()
    if slug in CONDITION_BY_SLUG:
        condition = CONDITION_BY_SLUG[slug]
        return (ConditionMatch(condition, 100.0, slug),)
    matches = match_conditions(text)
    if not matches or matches[0].score < MIN_SCORE:
        return ()
    top = matches[0].score
    return tuple(m for m in matches if m.score >= top * TIE_SHARE)
