"""Online log template mining with bounded memory.

A line is first pre-masked with one combined regular expression: every token that carries a
digit (numbers, hex, IPs with ports, UUIDs, paths with digits, durations like ``30s``) becomes
``<*>``, and so does the value of ``key=value``. Runs of ``<*>`` collapse into one. The masked
text is looked up in a bounded cache; on a miss, templates of the same token count are compared
position by position. A template whose every constant matches is taken (so feeding a line again
places it the same way); otherwise the most similar one is joined, its differing positions
becoming ``<*>``, if enough positions agree (``similarity``) and no two plain words differ
(``Started``/``Stopped`` are different events; a word after ``user``/``for`` is a name);
otherwise the line founds a new template. Template ids are a short hash of the founding text,
so the same input in the same order yields the same ids in any process.

Memory is bounded by ``max_templates`` (clusters) and ``max_cache`` (masked texts). When the
cluster table is full, a line that fits no cluster goes to a catch-all overflow template for
its token count, and the refusal is counted in ``overflowed``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "MINED_LINE_CHARS",
    "WILDCARD",
    "MinedLine",
    "Template",
    "TemplateMiner",
    "TemplateMinerConfig",
    "extract_variables",
    "mask",
    "mined_line",
]

WILDCARD = "<*>"
# The default length of the mined part of a line; a writer configured otherwise masks again.
MINED_LINE_CHARS = 1_024

# One pass over the line. Except for parenthesised asides, every alternative starts at a token
# start (one shared look-behind), which keeps the scan cheap: this is the per-line hot path.
_DELIMS = r"\s,;=()\[\]{}<>\"'|"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_UNIT = r"(?:[mun]?s|secs?|seconds?|mins?|minutes?|h|hours?|days?)"
_VARIABLE = re.compile(
    r"\s*\((?:[^()]*\d[^()]*)?\)"  # an aside with a number, (1.2 KB), or an empty ()
    rf"|(?<![^{_DELIMS}])(?:"  # at a token start:
    rf"(?=[A-Z])(?:{_DAY}\s+)?{_MONTH}\s+\d+\s+[\d:]+(?:\s+\d{{4}})?"  # a date
    rf"|[<>~]?\d[\d.:]*\s?{_UNIT}(?![^{_DELIMS}])"  # a duration: 12ms, <1 sec
    rf"|[^{_DELIMS}]*\d[^{_DELIMS}]*"  # a token with a digit: numbers, hex, IPs, ids
    rf"|(?<==)[^{_DELIMS}]+"  # the value after key=
    rf"|(?:/|\w+://)[^{_DELIMS}]*"  # a path or URL
    r")"
)
_PUNCTUATION = "\"'()[]{}<>,.;:!?"
# Words after which a plain word is usually a name, not part of the event.
_NAME_INTRODUCERS = frozenset({"user", "for"})
_RUNS = re.compile(r"<\*>(?:[\s,]*<\*>)+")


@dataclass(frozen=True, kw_only=True)
class TemplateMinerConfig:
    """Settings of the miner; one generic configuration serves every log."""

    max_templates: int = 10_000
    max_cache: int = 100_000
    similarity: float = 0.8

    def validate(self) -> None:
        """Fail with one clear message on a bad setting."""
        if self.max_templates < 1:
            raise ValueError(f"max_templates must be >= 1, got {self.max_templates}")
        if self.max_cache < 0:
            raise ValueError(f"max_cache must be >= 0, got {self.max_cache}")
        if not 0.0 < self.similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], got {self.similarity}")


@dataclass(eq=False)
class Template:
    """One cluster of lines: a stable id, its current tokens and how many lines it took."""

    template_id: str
    tokens: list[str]
    count: int = 0
    overflow: bool = False
    text: str = field(init=False)

    def __post_init__(self) -> None:
        self.text = " ".join(self.tokens)


@dataclass(frozen=True)
class MinedLine:
    """What the miner says about one line."""

    template_id: str
    template: str
    variables: list[str] = field(default_factory=list)


def template_id_of(text: str) -> str:
    """A short, stable id for the text a template was founded with."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def mask(message: str) -> str:
    """The message with obvious variables replaced by ``<*>`` and runs of them collapsed."""
    masked = _VARIABLE.sub(WILDCARD, message)
    if masked.count(WILDCARD) > 1:
        masked = _RUNS.sub(WILDCARD, masked)
    return masked


class TemplateMiner:
    """Assigns each log message a template id, template text and variable values, online."""

    def __init__(self, config: TemplateMinerConfig | None = None) -> None:
        self.config = config or TemplateMinerConfig()
        self.config.validate()
        self._cache: dict[str, Template] = {}
        self._by_length: dict[int, list[Template]] = {}
        self._templates: dict[str, Template] = {}
        self._overflow: dict[int, Template] = {}
        self.overflowed = 0
        self.cache_evictions = 0

    @property
    def template_count(self) -> int:
        """Templates currently held (overflow catch-alls not included)."""
        return len(self._templates)

    def templates(self) -> list[Template]:
        """Every template, overflow catch-alls included, in order of creation."""
        return [*self._templates.values(), *self._overflow.values()]

    def restore(self, template_id: str, text: str) -> bool:
        """Take back a template an earlier run persisted, so that its id stays the same.

        Restore in creation order: the first template a line fits wins. Returns False (and
        keeps nothing) when the id is already held or the table is full.
        """
        if template_id in self._templates or len(self._templates) >= self.config.max_templates:
            return False
        tokens = text.split(" ")
        template = Template(template_id, tokens)
        self._templates[template_id] = template
        self._by_length.setdefault(len(tokens), []).append(template)
        return True

    def add(self, message: str, *, masked: str | None = None) -> MinedLine:
        """Mine one message and return its template id, template and variables.

        `masked` is ``mask(message)`` when the caller has it already (masked elsewhere).
        """
        template = self._match(message, masked)
        return MinedLine(template.template_id, template.text, extract_variables(template, message))

    def match(self, message: str, *, masked: str | None = None) -> Template:
        """The template the message joins, placed as `add` places it; no variables taken."""
        return self._match(message, masked)

    def add_ids(self, messages: Iterable[str]) -> list[str]:
        """Mine many messages; return only their template ids (the fast path)."""
        match = self._match
        return [match(message).template_id for message in messages]

    def add_batch(self, messages: Iterable[str]) -> list[MinedLine]:
        """Mine many messages in order; the same as calling `add` for each."""
        return [self.add(message) for message in messages]

    def _match(self, message: str, masked: str | None = None) -> Template:
        if masked is None:
            masked = mask(message)
        template = self._cache.get(masked)
        if template is None:
            template = self._place(masked.split())
            self._remember(masked, template)
        template.count += 1
        return template

    def _remember(self, masked: str, template: Template) -> None:
        if not self.config.max_cache:
            return
        if len(self._cache) >= self.config.max_cache:
            # Dropping the whole cache is cheap and keeps memory bounded; it refills in order.
            self._cache.clear()
            self.cache_evictions += 1
        self._cache[masked] = template

    def _place(self, tokens: list[str]) -> Template:
        candidates = self._by_length.setdefault(len(tokens), [])
        best = _most_similar(candidates, tokens, self.config.similarity)
        if best is not None:
            _generalise(best, tokens)
            return best
        if len(self._templates) >= self.config.max_templates:
            self.overflowed += 1
            return self._overflow_for(len(tokens))
        text = " ".join(tokens)
        template = Template(template_id_of(text), tokens)
        self._templates[template.template_id] = template
        candidates.append(template)
        return template

    def _overflow_for(self, length: int) -> Template:
        template = self._overflow.get(length)
        if template is None:
            tokens = [WILDCARD] * length
            template = Template(template_id_of(f"overflow:{length}"), tokens, overflow=True)
            self._overflow[length] = template
        return template


def _most_similar(candidates: list[Template], tokens: list[str], floor: float) -> Template | None:
    """The template ``tokens`` already fit, else the most similar one if similar enough.

    Fitting first keeps the miner idempotent: a line placed once is placed the same way again
    even after its template was generalised further.
    """
    best: Template | None = None
    best_score = floor * len(tokens)
    for template in candidates:
        same, fits = _shared(template.tokens, tokens)
        if fits:
            return template
        if same >= best_score:
            best, best_score = template, same + 0.5
    return best


def _shared(template: list[str], tokens: list[str]) -> tuple[int, bool]:
    """How many positions agree, and whether every constant of the template agrees.

    Two plain words that differ name different events (``Started``/``Stopped``): then the
    answer is (-1, False), unless the word before introduces a name (``for root``).
    """
    same = 0
    constants = 0
    previous = ""
    for mine, theirs in zip(template, tokens, strict=True):
        if mine == theirs:
            same += 1
            constants += mine != WILDCARD
        elif mine != WILDCARD:
            if _is_word(mine) and _is_word(theirs) and previous not in _NAME_INTRODUCERS:
                return -1, False
            constants = -len(template)
        previous = mine
    return same, constants > 0


def _is_word(token: str) -> bool:
    """A plain word, perhaps quoted or followed by punctuation: ``Started``, ``"GET``."""
    return token.strip(_PUNCTUATION).replace("-", "").isalpha()


def _generalise(template: Template, tokens: list[str]) -> None:
    """Turn the positions where ``tokens`` differ from the template into wildcards."""
    current = template.tokens
    for index, token in enumerate(tokens):
        if current[index] != token and current[index] != WILDCARD:
            current[index] = WILDCARD
    template.text = " ".join(current)


def mined_line(body: str, limit: int) -> str | None:
    """The part of a string body that is mined: its first line, at most `limit` characters.

    None when that part is blank (a blank line gets no template).
    """
    line = body.partition("\n")[0][:limit] if "\n" in body else body[:limit]
    if not line or line.isspace():
        return None
    return line


def extract_variables(template: Template, message: str) -> list[str]:
    """The parts of ``message`` that the template's wildcards stand for."""
    text = template.text
    pattern = _REGEX_CACHE.get(text, _UNCOMPILED)
    if pattern is _UNCOMPILED:
        pattern = _template_regex(text)
    if pattern is None:
        return []
    found = pattern.fullmatch(" ".join(message.split()))
    if found is None:
        return []
    return [value for value in found.groups() if value is not None]


# Per template text: its regex, or None when no token is a wildcard (no variables to take).
_REGEX_CACHE: dict[str, re.Pattern[str] | None] = {}
_REGEX_CACHE_MAX = 4096
_UNCOMPILED = re.compile("")


def _template_regex(text: str) -> re.Pattern[str] | None:
    if len(_REGEX_CACHE) >= _REGEX_CACHE_MAX:
        _REGEX_CACHE.clear()
    pattern = None
    # The text is the tokens joined by one space; a wildcard inside a token (``bytes<*>``)
    # alone does not count, as before.
    if WILDCARD in text.split(" "):
        parts = [re.escape(part) for part in text.split(WILDCARD)]
        pattern = re.compile("(.*?)".join(parts), re.DOTALL)
    _REGEX_CACHE[text] = pattern
    return pattern
