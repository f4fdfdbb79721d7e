"""Composer names: one spelling per person, whatever the source wrote, so that counts, splits by composer and composer
labels see one composer once.

Sources write names many ways: kern ``!!!COM`` as "Paderewski, Ignacy Jan", music21 as "Wolfgang Amadeus Mozart",
sidecars as typed, some with life dates ("Haydn, Joseph (1732-1809)") or HTML entities ("M&uuml;ller"); anonymous works
as "Anonim", "Anon.", "unknown". `normalize_composer` turns each into "First Last" (Unicode NFC, single spaces, no
dates), anonymous works into "Anonymous", and known variants of one person into one spelling (`ALIASES`).
"""

from __future__ import annotations

import html
import re
import unicodedata

ANONYMOUS = "Anonymous"
# Lower-case spellings (after accents are kept and dates dropped) that mean nobody in particular.
_ANONYMOUS_NAMES = frozenset(
    {"anonymous", "anonim", "anon", "anon.", "anonymus", "anonyme", "anonimo", "anónimo", "unknown", "unbekannt",
     "traditional", "trad.", "n.n.", "nn", "?"}
)
# Variants of one person's name (compared without accents and case) -> the spelling kept.
ALIASES = {
    "frederic chopin": "Fryderyk Chopin",
    "frederick chopin": "Fryderyk Chopin",
    "fryderyk franciszek chopin": "Fryderyk Chopin",
    "joseph haydn": "Franz Joseph Haydn",
    "j. haydn": "Franz Joseph Haydn",
    "ludwig beethoven": "Ludwig van Beethoven",
    "w. a. mozart": "Wolfgang Amadeus Mozart",
    "wolfgang amadeus mozart": "Wolfgang Amadeus Mozart",
    "j. s. bach": "Johann Sebastian Bach",
    "muler august eberhard": "August Eberhard Müller",  # kernScores' "M&uuml;ler August Eberhard"
}
_DATES = re.compile(r"\s*[\(\[]\s*(?:c\.\s*|ca\.\s*|fl\.\s*|b\.\s*|d\.\s*)?\d{3,4}[^\)\]]*[\)\]]\s*")
_TRAILING_DATES = re.compile(r",?\s+(?:c\.\s*)?\d{3,4}\s*[-–]\s*(?:c\.\s*)?\d{0,4}\??\s*$")


def normalize_composer(name: str) -> str:
    """One spelling of a composer's name: "Paderewski, Ignacy Jan" -> "Ignacy Jan Paderewski"; "" stays ""."""
    text = unicodedata.normalize("NFC", html.unescape(str(name or "")))
    text = _DATES.sub(" ", text)
    text = _TRAILING_DATES.sub("", text)
    text = " ".join(text.replace("\u00a0", " ").split()).strip(" ;,")
    if not text:
        return ""
    if text.lower() in _ANONYMOUS_NAMES:
        return ANONYMOUS
    text = " ".join(word.capitalize() if len(word) > 2 and word.isupper() else word for word in text.split())
    last, comma, first = text.partition(",")
    if comma and first.strip() and "," not in first:  # "Last, First" (one comma): a catalogue's order
        text = f"{first.strip()} {last.strip()}"
    return ALIASES.get(_key(text), text)


def folded_composer(name: str) -> tuple[str, str]:
    """`normalize_composer(name)`, and that spelling without accents and case: spellings that fold alike are one
    composer, written as the first one a build meets (`pipeline.Planner`)."""
    name = normalize_composer(name)
    return name, "".join(c for c in unicodedata.normalize("NFKD", name.lower()) if not unicodedata.combining(c))


def _key(name: str) -> str:
    """`name` without accents, case and dots' spacing: "Frédéric  Chopin" and "frederic chopin" meet."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(stripped.lower().replace(".", ". ").split())


__all__ = ["ALIASES", "ANONYMOUS", "folded_composer", "normalize_composer"]
