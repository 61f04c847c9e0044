"""A refusal detector for model answers: phrase patterns in English, German, French and
Spanish.

Precision first: the refusal *rate* is compared between windows, so a detector that
fires on ordinary answers would bury a real change under noise. Hence:

- only the opening of the answer is read (`HEAD` characters): models refuse up front,
  while long answers quote "I cannot" in passing;
- a pattern needs an inability or apology **and** what is refused ("I can't *help with*",
  "je ne peux pas *vous aider*"), not a bare "I can't" ("I can't stress enough...");
- canned safety phrasing ("as an AI language model, I cannot", "I must decline",
  "ich bin nicht in der Lage", "no estoy en condiciones de").

Text is lower-cased and typographic apostrophes are folded to ``'`` before matching.
Recall is deliberately partial (a polite deflection without these phrases is missed);
a spike in refusals still moves the rate, which is all the drift signal needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HEAD = 400  # characters of the answer examined

_CANT_EN = (
    r"(?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|"
    r"'m not able to|am not allowed to|'m not allowed to|am not permitted to|"
    r"'m not permitted to|must not|shouldn't|should not)"
)
_WHAT_EN = (
    r"(?:help|assist)(?: you)?(?: with| in| on)?\b(?! (?:but|noticing|thinking|wondering|"
    r"feeling|it but))"
    r"|comply\b|fulfil+\b|provide (?:that|this|such|the requested|information|instructions|"
    r"help|assistance)\b|do (?:that|this)\b|answer (?:that|this)\b|share (?:that|this)\b"
    r"|support (?:that|this)\b|generate (?:that|this)\b|create (?:that|this)\b"
    r"|write (?:that|this)\b|engage (?:in|with)\b|complete (?:that|this)\b"
)

PATTERNS: dict[str, tuple[str, ...]] = {
    "en": (
        rf"\bi {_CANT_EN} (?:{_WHAT_EN})",
        r"\bi(?:'m| am) (?:really |very |so )?(?:sorry|afraid),? (?:but )?i "
        rf"{_CANT_EN}\b",
        r"\bas an ai(?: language model| model| assistant)?,? i (?:can't|cannot|can not|"
        r"don't|do not|am not able|am unable|won't)\b",
        r"\bi must (?:respectfully |politely )?decline\b",
        r"\b(?:this|that|your) request (?:violates|goes against|is against|breaches)\b",
        r"\bi(?:'m| am) not able to (?:help|assist|provide|comply)\b",
    ),
    "de": (
        r"\b(?:ich kann|kann ich|ich darf|darf ich|ich werde|werde ich)\b(?:\s+[\w-]+){0,5}?"
        r"\s+(?:nicht|keine\w*)\s+(?:\w+\s+)?(?:helfen|behilflich sein|unterstützen|erfüllen|"
        r"beantworten|nachkommen|bereitstellen|geben|liefern|erstellen|schreiben|tun|machen)\b",
        r"\bich bin (?:leider |hierzu |dazu )?nicht in der lage\b",
        r"\b(?:es tut mir leid|leider|entschuldigung),? (?:aber )?(?:ich kann|kann ich)"
        r"(?:\s+[\w-]+){0,4}?\s+nicht\b",
        r"\bals (?:ki|künstliche intelligenz|ki-sprachmodell|sprachmodell)\b.{0,40}"
        r"\b(?:kann|darf) ich\b.{0,40}\bnicht\b",
        r"\bich muss (?:diese anfrage|das|dies) (?:leider )?ablehnen\b",
    ),
    "fr": (
        r"\bje ne (?:peux|puis|pourrai|vais) pas\b(?:\s+[\w']+){0,2}?\s*"
        r"(?:vous |t')?(?:aider|répondre|fournir|satisfaire|donner|traiter|assister|"
        r"accéder à cette|faire cela|faire ça|créer|rédiger|écrire)\b",
        r"\bje ne suis pas en mesure de\b",
        r"\b(?:désolée?|je suis désolée?|malheureusement),? (?:mais )?je ne (?:peux|puis) pas\b",
        r"\ben tant qu'(?:ia|intelligence artificielle|assistant|modèle de langage)\b.{0,40}"
        r"\bje ne (?:peux|puis|suis)\b",
        r"\bje dois (?:malheureusement |respectueusement )?refuser\b",
    ),
    "es": (
        r"\blo siento,? (?:mucho,? )?(?:pero )?no (?:puedo|me es posible)\b",
        r"\bno (?:puedo|podré|me es posible) (?:ayudar\w*|asistir\w*|cumplir|proporcionar\w*|"
        r"responder\w*|realizar|hacer eso|atender|generar|crear|escribir|dar\w*|ofrecer\w*)\b",
        r"\bno estoy en (?:condiciones|posición|capacidad) de\b",
        r"\bcomo (?:una )?(?:ia|inteligencia artificial|modelo de lenguaje|asistente)\b.{0,40}"
        r"\bno (?:puedo|debo)\b",
        r"\bme temo que no (?:puedo|es posible)\b",
        r"\bdebo (?:rechazar|declinar)\b",
    ),
}

# One alternation of every pattern, tried only on answers holding one of `_TRIGGERS`
# (each pattern needs one of these words): most answers are ruled out by substring
# checks, which keeps a 100k-request window at a second or two.
_COMPILED = re.compile(
    "|".join(f"(?:{pattern})" for patterns in PATTERNS.values() for pattern in patterns),
    re.IGNORECASE | re.DOTALL,
)
_TRIGGERS = (
    "can't", "cannot", "can not", "won't", "will not", "unable", "not able", "not allowed",
    "not permitted", "must not", "shouldn't", "should not", "decline", "request", "as an ai",
    "nicht", "keine", "ablehnen",
    "ne peux", "ne puis", "ne pourrai", "ne vais", "ne suis", "refuser",
    "no puedo", "no podré", "no me es posible", "no estoy", "no debo", "no es posible",
    "rechazar", "declinar",
)  # fmt: skip
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'"})


def normalise(text: str) -> str:
    """The answer's opening, lower-cased, apostrophes folded, whitespace collapsed."""
    return " ".join(text[:HEAD].translate(_APOSTROPHES).lower().split())


def is_refusal(text: str | None) -> bool:
    """Whether the answer opens with a refusal (see the module notes for what counts)."""
    if not text:
        return False
    head = normalise(text)
    if not any(trigger in head for trigger in _TRIGGERS):
        return False
    return _COMPILED.search(head) is not None


def refusal_flags(texts: Iterable[str | None]) -> list[bool]:
    return [is_refusal(text) for text in texts]
