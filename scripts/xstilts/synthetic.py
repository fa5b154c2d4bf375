"""The embedded benchmark: a small synthetic multilingual stand-in for every dataset of the paper.

Why synthetic: the workflow must run end to end on a fresh clone with no network, so the demo
preset generates its own data, deterministically from a seed, in exactly the canonical formats
(``formats.py``) that the real-data converters write.

How it is built. A tiny "world" of people, places, organisations, objects and actions is
described by semantic *frames* (``possess``, ``live``, ``work``, ``act``, ``give``, ``get``).
Each language renders a frame with its own lexicon and word order:

* English uses real English words; every other language gets pseudo-words built from syllables
  in its own script (Latin with diacritics, Cyrillic, Han, Arabic, Hangul), and its own word
  order (SVO / SOV / VSO, adjective before or after the noun, prepositions or postpositions,
  articles or none).
* Names of people, places and organisations and all numbers are written identically in every
  language, like named entities in real multilingual text. Together with code-switched lines in
  the unlabelled corpus, these shared anchors are what lets a model trained on English transfer
  zero-shot, as sub-word overlap does for XLM-R.
* Labels are functions of the frames (NLI labels from frame identity/alteration, QA answers as
  spans of the frame slots, POS/NER/CCG-like tags from the rendering), so a model that learns
  the task beats chance, and the same function applies in every language.

Everything is drawn from ``random.Random`` instances seeded with strings derived from the
global seed, the dataset, the language and the split: output bytes are identical across runs,
machines and Python hash seeds, and resizing one dataset leaves the others unchanged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from xstilts import formats
from xstilts.tasks import BITEXT, CHOICE, DATASETS, INTERMEDIATE_TRAINING_DATASETS, PAIR, PARALLEL, SPAN, TAGGING, TARGET_TASKS, TEXT

# --------------------------------------------------------------------------------------------
# The English lexicon (the other languages are generated from it)

CATEGORIES: dict[str, list[tuple[str, str]]] = {
    # category -> (singular, plural)
    "fruit": [("apple", "apples"), ("pear", "pears"), ("plum", "plums"), ("lemon", "lemons"),
              ("cherry", "cherries"), ("melon", "melons"), ("grape", "grapes"), ("peach", "peaches")],
    "tool": [("hammer", "hammers"), ("saw", "saws"), ("drill", "drills"), ("wrench", "wrenches"),
             ("chisel", "chisels"), ("spade", "spades"), ("rake", "rakes"), ("ladder", "ladders")],
    "animal": [("horse", "horses"), ("goat", "goats"), ("sheep", "sheep"), ("rabbit", "rabbits"),
               ("duck", "ducks"), ("tiger", "tigers"), ("camel", "camels"), ("zebra", "zebras")],
    "vehicle": [("car", "cars"), ("truck", "trucks"), ("boat", "boats"), ("bike", "bikes"),
                ("train", "trains"), ("tram", "trams"), ("plane", "planes"), ("van", "vans")],
    "furniture": [("chair", "chairs"), ("table", "tables"), ("sofa", "sofas"), ("desk", "desks"),
                  ("bed", "beds"), ("shelf", "shelves"), ("stool", "stools"), ("bench", "benches")],
    "instrument": [("piano", "pianos"), ("violin", "violins"), ("drum", "drums"), ("flute", "flutes"),
                   ("guitar", "guitars"), ("harp", "harps"), ("trumpet", "trumpets"), ("cello", "cellos")],
}
NOUNS = [sg for items in CATEGORIES.values() for sg, _ in items]
PLURAL = {sg: pl for items in CATEGORIES.values() for sg, pl in items}
CATEGORY_OF = {sg: cat for cat, items in CATEGORIES.items() for sg, _ in items}
ADJECTIVES = ["red", "blue", "green", "yellow", "black", "white", "small", "big", "old", "new", "heavy", "cheap"]
# Action verbs as (3rd person singular, base form). SCRIPT gives the typical next action, the
# "commonsense" that the HellaSwag-shaped task asks for.
ACTIONS = [("buys", "buy"), ("cleans", "clean"), ("paints", "paint"), ("sells", "sell"),
           ("repairs", "repair"), ("carries", "carry"), ("finds", "find"), ("hides", "hide"),
           ("washes", "wash"), ("draws", "draw"), ("builds", "build"), ("loses", "lose")]
ACTION_BASE = dict(ACTIONS)
SCRIPT = {ACTIONS[i][0]: ACTIONS[(i + 1) % len(ACTIONS)][0] for i in range(len(ACTIONS))}
# The action that typically comes before (its cause, in the COPA-shaped tasks).
BEFORE = {after: before for before, after in SCRIPT.items()}
ORG_SUFFIXES = ["Group", "Bank", "Institute", "Company", "Museum"]
# Function words and fixed phrases, keyed by an English citation form.
FUNCTION_WORDS = [
    "the", "in", "for", "from", "to", "and", "then", "does", "not", "has", "have", "lives", "live",
    "works", "work", "gives", "give", "gets", "get", "who", "where", "what", "how", "many", "which",
    "place", "number", "of", "person", "thing", "these", "is", "a", "kind",
]
CATEGORY_WORDS = list(CATEGORIES)
CONTENT_WORDS = (
    NOUNS + [PLURAL[n] for n in NOUNS] + ADJECTIVES + [v for v, _ in ACTIONS] + [b for _, b in ACTIONS]
    + ORG_SUFFIXES + CATEGORY_WORDS
)
ALL_WORDS = list(dict.fromkeys(CONTENT_WORDS + FUNCTION_WORDS))


# --------------------------------------------------------------------------------------------
# Languages: scripts and word order


@dataclass(frozen=True)
class LanguageProfile:
    """How a language writes words and orders them."""

    make_word: Callable[[random.Random], str]
    order: str = "SVO"  # SVO, SOV or VSO
    adj_first: bool = True  # adjective before the noun
    prepositions: bool = True  # adpositions before (True) or after (False) their noun phrase
    articles: bool = True
    plural_suffix: str = ""


def _syllables(onsets: list[str], vowels: list[str], codas: list[str], lo: int = 1, hi: int = 3):
    def make(rng: random.Random) -> str:
        n = rng.randint(lo, hi)
        return "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(n))

    return make


def _han(rng: random.Random) -> str:
    return "".join(chr(rng.randrange(0x4E00, 0x9FA6)) for _ in range(rng.randint(1, 2)))


def _hangul(rng: random.Random) -> str:
    def syllable() -> str:
        return chr(0xAC00 + (rng.randrange(19) * 21 + rng.randrange(21)) * 28 + rng.choice([0, 0, 4, 8, 16]))

    return "".join(syllable() for _ in range(rng.randint(1, 3)))


_ARABIC_CONSONANTS = list("بتثجحخدذرزسشصضطظعغفقكلمنهوي")


def _arabic(rng: random.Random) -> str:
    return "".join(rng.choice(_ARABIC_CONSONANTS) + rng.choice(["", "ا", "و", "ي"]) for _ in range(rng.randint(2, 4)))


PROFILES: dict[str, LanguageProfile] = {
    "de": LanguageProfile(_syllables(list("bdfghklmnrstwz") + ["sch", "st", "pf", "kr"],
                                     ["a", "e", "i", "o", "u", "ä", "ö", "ü", "ei", "au"],
                                     ["", "", "n", "r", "t", "ch", "ck", "l"]), plural_suffix="en"),
    "fr": LanguageProfile(_syllables(list("bdfgjlmnprstv") + ["ch", "gr", "tr"],
                                     ["a", "e", "i", "o", "u", "é", "è", "ou", "eau", "ai"],
                                     ["", "", "s", "x", "r", "l"]), adj_first=False, plural_suffix="s"),
    "es": LanguageProfile(_syllables(list("bcdfglmnprstv") + ["ñ", "ll", "ch"],
                                     ["a", "e", "i", "o", "u", "á", "é", "ó"],
                                     ["", "", "n", "s", "r", "l"]), adj_first=False, plural_suffix="s"),
    "fi": LanguageProfile(_syllables(list("kthjlmnprsv"), ["a", "e", "i", "o", "u", "y", "ä", "ö", "aa", "ii"],
                                     ["", "", "n", "t", "s", "kk"], 2, 3),
                          prepositions=False, articles=False, plural_suffix="t"),
    "ru": LanguageProfile(_syllables(list("бвгджзклмнпрстфхцчш"), list("аеиоуыяю"), ["", "", "н", "т", "к", "й", "р"]),
                          articles=False, plural_suffix="ы"),
    "zh": LanguageProfile(_han, articles=False),
    "ar": LanguageProfile(_arabic, order="VSO", adj_first=False, plural_suffix="ات"),
    "ko": LanguageProfile(_hangul, order="SOV", prepositions=False, articles=False, plural_suffix="들"),
    "ja": LanguageProfile(lambda rng: "".join(chr(rng.randrange(0x30A2, 0x30F3)) for _ in range(rng.randint(2, 4))),
                          order="SOV", prepositions=False, articles=False),
    # XCOPA's languages (XTREME-R), so that the demo can evaluate XCOPA in languages of its own.
    "et": LanguageProfile(_syllables(list("hjklmnprstv"), ["a", "e", "i", "o", "u", "õ", "ä", "ö", "ü", "aa"],
                                     ["", "", "d", "l", "s", "t"], 2, 3),
                          prepositions=False, articles=False, plural_suffix="d"),
    "ht": LanguageProfile(_syllables(list("bdfgklmnpstvz") + ["ch", "kr"], ["a", "e", "i", "o", "ou", "è", "ò", "an", "en"],
                                     ["", "", "n", "t"]), adj_first=False, articles=False),
    "id": LanguageProfile(_syllables(list("bcdgjklmnprst") + ["ng", "ny"], ["a", "e", "i", "o", "u"],
                                     ["", "", "n", "k", "ng", "r"], 2, 3), adj_first=False, articles=False),
    "it": LanguageProfile(_syllables(list("bcdfglmnprstv") + ["gl", "sc", "zz"], ["a", "e", "i", "o", "u", "è", "ò"],
                                     ["", "", "", "n", "r", "l"], 2, 3), adj_first=False, plural_suffix="i"),
    "qu": LanguageProfile(_syllables(list("chklmnpqrstwy") + ["ll", "ch'"], ["a", "i", "u"], ["", "", "n", "q", "y", "s"], 2, 3),
                          order="SOV", prepositions=False, articles=False, plural_suffix="kuna"),
    "sw": LanguageProfile(_syllables(list("bdfgjklmnprstwyz") + ["mb", "nd", "ng"], ["a", "e", "i", "o", "u"], [""], 2, 3),
                          adj_first=False, articles=False),
    "ta": LanguageProfile(lambda rng: "".join(chr(rng.choice([0x0B95, 0x0B99, 0x0B9A, 0x0B9E, 0x0B9F, 0x0BA3, 0x0BA4,
                                                                   0x0BA8, 0x0BAA, 0x0BAE, 0x0BAF, 0x0BB0, 0x0BB2, 0x0BB5]))
                                              + rng.choice(["", "\u0BBE", "\u0BBF", "\u0BC1", "\u0BC6"])
                                              for _ in range(rng.randint(2, 4))),
                          order="SOV", prepositions=False, articles=False, plural_suffix="கள்"),
    "th": LanguageProfile(lambda rng: "".join(chr(rng.randrange(0x0E01, 0x0E2E)) + rng.choice(["", "\u0E32", "\u0E34", "\u0E38"])
                                              for _ in range(rng.randint(2, 3))), adj_first=False, articles=False),
    "tr": LanguageProfile(_syllables(list("bcdgklmnprstyz") + ["ç", "ş"], ["a", "e", "ı", "i", "o", "ö", "u", "ü"],
                                     ["", "", "k", "l", "n", "r", "ş"], 2, 3),
                          order="SOV", prepositions=False, articles=False, plural_suffix="ler"),
    "vi": LanguageProfile(_syllables(list("bcdghklmnstv") + ["đ", "ng", "nh", "th", "tr"],
                                     ["a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "á", "ạ", "ề"],
                                     ["", "", "n", "ng", "c", "t"], 1, 1), adj_first=False, articles=False),
}
SUPPORTED_LANGUAGES = ("en", *sorted(PROFILES))
ENGLISH = LanguageProfile(lambda rng: "", plural_suffix="")


def _lexicon(seed: int, lang: str) -> dict[str, str]:
    """Map every English word to its surface form in ``lang`` (identity for English)."""
    if lang == "en":
        return {w: w for w in ALL_WORDS}
    profile = PROFILES[lang]
    rng = random.Random(f"lexicon/{seed}/{lang}")
    lexicon: dict[str, str] = {}
    used: set[str] = set()
    plurals_only = set(PLURAL.values()) - set(PLURAL)
    for word in ALL_WORDS:
        if word in plurals_only:
            continue
        form = profile.make_word(rng)
        while not form or form in used:
            form = profile.make_word(rng)
        used.add(form)
        lexicon[word] = form
    for singular, plural in PLURAL.items():
        if plural != singular:  # English "sheep" has no distinct plural; neither do its translations
            lexicon[plural] = lexicon[singular] + profile.plural_suffix
    return lexicon


# --------------------------------------------------------------------------------------------
# The world: shared named entities


def _names(rng: random.Random, n: int, syllables: tuple[int, int]) -> list[str]:
    onsets = list("bdfgklmnprstvz") + ["br", "tr", "kr", "st"]
    vowels = list("aeiou") + ["ia", "ou"]
    names: list[str] = []
    while len(names) < n:
        name = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(*syllables)))
        name = name.capitalize()
        if name not in names and name.lower() not in ALL_WORDS:
            names.append(name)
    return names


@dataclass(frozen=True)
class World:
    people: tuple[str, ...]
    places: tuple[tuple[str, ...], ...]  # multi-token place names
    orgs: tuple[tuple[str, str], ...]  # (name, English suffix); the suffix is translated

    @staticmethod
    def build(seed: int) -> "World":
        rng = random.Random(f"world/{seed}")
        people = _names(rng, 60, (2, 3))
        place_heads = _names(rng, 30, (2, 3))
        places = tuple((h,) if i % 3 else ("Port" if i % 2 else "San", h) for i, h in enumerate(place_heads))
        org_names = _names(rng, 20, (2, 2))
        orgs = tuple((name, ORG_SUFFIXES[i % len(ORG_SUFFIXES)]) for i, name in enumerate(org_names))
        return World(tuple(people), places, orgs)


# --------------------------------------------------------------------------------------------
# Frames and rendering


@dataclass(frozen=True)
class Frame:
    """A proposition. Unused slots are None."""

    kind: str  # possess, live, work, act, give, get
    person: str
    other: str | None = None  # second person (give/get)
    number: int | None = None
    adj: str | None = None
    noun: str | None = None
    verb: str | None = None
    place: tuple[str, ...] | None = None
    org: tuple[str, str] | None = None
    negated: bool = False


@dataclass
class Token:
    text: str
    upos: str
    ner: str = "O"
    role: str = ""  # grammatical role, used to derive CCG-like supertags


@dataclass
class Renderer:
    """Renders frames as token sequences in one language."""

    lang: str
    lexicon: dict[str, str]
    profile: LanguageProfile

    def w(self, english: str, upos: str, role: str, ner: str = "O") -> Token:
        return Token(self.lexicon[english], upos, ner, role)

    def person(self, name: str, role: str) -> list[Token]:
        return [Token(name, "PROPN", "B-PER", role)]

    def place(self, place: tuple[str, ...], role: str) -> list[Token]:
        return [Token(t, "PROPN", "B-LOC" if i == 0 else "I-LOC", role) for i, t in enumerate(place)]

    def org(self, org: tuple[str, str], role: str) -> list[Token]:
        name, suffix = org
        return [Token(name, "PROPN", "B-ORG", role), Token(self.lexicon[suffix], "PROPN", "I-ORG", role)]

    def noun_phrase(self, noun: str, adj: str | None, number: int | None, det: bool, role: str) -> list[Token]:
        head = self.w(PLURAL[noun] if number and number > 1 else noun, "NOUN", role + ":noun")
        parts: list[Token] = []
        if det and self.profile.articles:
            parts.append(self.w("the", "DET", role + ":det"))
        if number is not None:
            parts.append(Token(str(number), "NUM", "O", role + ":num"))
        if adj is None:
            parts.append(head)
        elif self.profile.adj_first:
            parts += [self.w(adj, "ADJ", role + ":adj"), head]
        else:
            parts += [head, self.w(adj, "ADJ", role + ":adj")]
        return parts

    def adposition(self, english: str, np: list[Token], role: str) -> list[Token]:
        adp = self.w(english, "ADP", role + ":adp")
        return [adp, *np] if self.profile.prepositions else [*np, adp]

    def clause(self, subject: list[Token], verb: list[Token], objects: list[Token]) -> list[Token]:
        if self.profile.order == "SOV":
            return subject + objects + verb
        if self.profile.order == "VSO":
            return verb + subject + objects
        return subject + verb + objects

    def verb(self, finite: str, base: str, negated: bool) -> list[Token]:
        if not negated:
            return [self.w(finite, "VERB", "verb")]
        return [self.w("does", "AUX", "aux"), self.w("not", "PART", "neg"), self.w(base, "VERB", "verb")]

    def frame(self, f: Frame) -> list[Token]:
        subj = self.person(f.person, "subj")
        if f.kind == "possess":
            obj = self.noun_phrase(f.noun, f.adj, f.number, det=False, role="obj")
            return self.clause(subj, self.verb("has", "have", f.negated), obj)
        if f.kind == "live":
            return self.clause(subj, self.verb("lives", "live", f.negated), self.adposition("in", self.place(f.place, "loc"), "pp"))
        if f.kind == "work":
            return self.clause(subj, self.verb("works", "work", f.negated), self.adposition("for", self.org(f.org, "org"), "pp"))
        if f.kind == "act":
            obj = self.noun_phrase(f.noun, f.adj, None, det=True, role="obj")
            if f.place:
                obj = obj + self.adposition("in", self.place(f.place, "loc"), "pp")
            return self.clause(subj, self.verb(f.verb, ACTION_BASE[f.verb], f.negated), obj)
        if f.kind == "give":
            obj = self.person(f.other, "iobj") + self.noun_phrase(f.noun, f.adj, None, det=True, role="obj")
            return self.clause(subj, self.verb("gives", "give", f.negated), obj)
        if f.kind == "get":
            obj = self.noun_phrase(f.noun, f.adj, None, det=True, role="obj") + self.adposition(
                "from", self.person(f.other, "src"), "pp")
            return self.clause(subj, self.verb("gets", "get", f.negated), obj)
        raise ValueError(f"unknown frame kind {f.kind}")

    def sentence(self, frames: list[Frame], then: bool = False) -> list[Token]:
        """Frames joined with 'and' (or 'then' for a narrative continuation), ending in '.'."""
        tokens: list[Token] = []
        if then:
            tokens.append(self.w("then", "ADV", "then"))
        for i, f in enumerate(frames):
            if i:
                tokens.append(self.w("and", "CCONJ", "conj"))
            tokens += self.frame(f)
        tokens.append(Token(".", "PUNCT", "O", "punct"))
        return tokens

    def wh_words(self, *english: str) -> list[Token]:
        return [self.w(x, "PRON" if x in ("who", "what", "which") else "ADV", "wh") for x in english]

    def question(self, f: Frame, variant: int = 0) -> tuple[list[Token], list[Token]]:
        """A question about one slot of ``f`` and the tokens of its answer (as in the frame)."""
        q = self.wh_words
        subj = self.person(f.person, "subj")
        if f.kind == "live":
            wh = q("where") if variant == 0 else [*q("in", "which"), self.w("place", "NOUN", "wh")]
            body = self.clause(subj, [self.w("live", "VERB", "verb")], [])
            answer = self.place(f.place, "loc")
        elif f.kind == "possess":
            wh = [*q("how", "many"), self.w(PLURAL[f.noun], "NOUN", "wh")] if variant == 0 else [
                *q("what"), self.w("number", "NOUN", "wh"), self.w("of", "ADP", "wh"), self.w(PLURAL[f.noun], "NOUN", "wh")]
            body = self.clause(subj, [self.w("have", "VERB", "verb")], [])
            answer = [Token(str(f.number), "NUM")]
        elif f.kind == "work":
            wh = q("who") if variant == 0 else [*q("which"), self.w("person", "NOUN", "wh")]
            body = self.clause([], [self.w("works", "VERB", "verb")], self.adposition("for", self.org(f.org, "org"), "pp"))
            answer = subj
        elif f.kind == "act":
            wh = q("what") if variant == 0 else [*q("which"), self.w("thing", "NOUN", "wh")]
            body = self.clause(subj, [self.w(ACTION_BASE[f.verb], "VERB", "verb")], [])
            answer = [t for t in self.noun_phrase(f.noun, f.adj, None, det=False, role="obj")]
        else:
            raise ValueError(f"no question for frame kind {f.kind}")
        aux = [self.w("does", "AUX", "aux")] if self.lang == "en" and f.kind != "work" else []
        if self.profile.order == "SOV":
            tokens = body[:-1] + wh + body[-1:] if body else wh
        else:
            tokens = wh + aux + body
        return tokens + [Token("?", "PUNCT", "O", "punct")], answer


def detokenize(tokens: list[Token]) -> str:
    return " ".join(t.text for t in tokens)


def _char_offset(tokens: list[Token], start_index: int) -> int:
    return sum(len(t.text) + 1 for t in tokens[:start_index])


def _find_span(tokens: list[Token], answer: list[Token]) -> int:
    texts = [t.text for t in tokens]
    target = [t.text for t in answer]
    for i in range(len(texts) - len(target) + 1):
        if texts[i : i + len(target)] == target:
            return i
    raise ValueError("answer not found in context")


# CCG-like supertags (English): a category per grammatical role, refined by the frame kind and
# clause position, giving a label set an order of magnitude larger than UPOS, as CCG is.
_CCG_CATEGORY = {
    "subj": "NP", "verb": "(S[dcl]\\NP)/NP", "aux": "(S[dcl]\\NP)/(S[b]\\NP)", "neg": "(S\\NP)\\(S\\NP)",
    "obj:det": "NP[nb]/N", "obj:adj": "N/N", "obj:noun": "N", "obj:num": "N/N", "iobj": "NP",
    "pp:adp": "PP/NP", "loc": "N", "org": "N", "src": "NP", "punct": ".", "conj": "conj", "then": "S/S",
}


def ccg_tag(token: Token, frame_kind: str, clause: int) -> str:
    cat = _CCG_CATEGORY.get(token.role, "N")
    return f"{cat}[{frame_kind}{clause}]"


# --------------------------------------------------------------------------------------------
# Frame sampling


@dataclass
class Sampler:
    world: World
    rng: random.Random

    def person(self, exclude: set[str] = frozenset()) -> str:
        while True:
            p = self.rng.choice(self.world.people)
            if p not in exclude:
                return p

    def frame(self, kind: str | None = None, person: str | None = None, exclude: set[str] = frozenset()) -> Frame:
        rng = self.rng
        kind = kind or rng.choice(["possess", "live", "work", "act"])
        person = person or self.person(exclude)
        adj = rng.choice(ADJECTIVES) if rng.random() < 0.6 else None
        if kind == "possess":
            return Frame(kind, person, number=rng.randint(2, 12), adj=adj, noun=rng.choice(NOUNS))
        if kind == "live":
            return Frame(kind, person, place=rng.choice(self.world.places))
        if kind == "work":
            return Frame(kind, person, org=rng.choice(self.world.orgs))
        if kind == "act":
            place = rng.choice(self.world.places) if rng.random() < 0.5 else None
            return Frame(kind, person, adj=adj, noun=rng.choice(NOUNS), verb=rng.choice(ACTIONS)[0], place=place)
        if kind in ("give", "get"):
            return Frame(kind, person, other=self.person({person}), adj=adj, noun=rng.choice(NOUNS))
        raise ValueError(kind)

    def frames(self, n: int, kinds: list[str] | None = None) -> list[Frame]:
        """``n`` frames about distinct people."""
        out: list[Frame] = []
        used: set[str] = set()
        for _ in range(n):
            f = self.frame(self.rng.choice(kinds) if kinds else None, exclude=used)
            used.add(f.person)
            out.append(f)
        return out

    def story(self, n: int) -> list[Frame]:
        """``n`` frames about one or two people, who recur: like entities in running text,
        which is what teaches a masked LM to look back for a repeated name or number."""
        people = [self.person() for _ in range(self.rng.randint(1, 2))]
        return [self.frame(person=self.rng.choice(people)) for _ in range(n)]

    def alter(self, f: Frame) -> Frame:
        """A frame contradicting ``f``: a functional slot changed, or negation."""
        rng = self.rng
        if f.kind == "possess":
            return replace(f, number=rng.choice([n for n in range(2, 13) if n != f.number]))
        if f.kind == "live":
            return replace(f, place=rng.choice([p for p in self.world.places if p != f.place]))
        if f.kind == "work":
            return replace(f, org=rng.choice([o for o in self.world.orgs if o != f.org]))
        return replace(f, negated=True)


# --------------------------------------------------------------------------------------------
# Dataset generators. Each returns canonical records for one (language, split).


@dataclass(frozen=True)
class Difficulty:
    premise_frames: tuple[int, int]
    neutral_same_person: float  # share of neutral hypotheses about a premise person


NLI_DIFFICULTY = {
    "snli": Difficulty((1, 1), 0.0),
    "mnli": Difficulty((1, 1), 0.2),
    "xnli": Difficulty((1, 1), 0.2),
    "anli_r1": Difficulty((2, 3), 0.4),
    "anli_r2": Difficulty((2, 4), 0.5),
    "anli_r3": Difficulty((3, 4), 0.6),
}


def gen_nli(dataset: str, r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    diff = NLI_DIFFICULTY[dataset]
    records = []
    for i in range(n):
        premise = s.frames(s.rng.randint(*diff.premise_frames))
        label = ("entailment", "neutral", "contradiction")[i % 3]
        target = s.rng.choice(premise)
        if label == "entailment":
            hyp = replace(target, adj=None) if s.rng.random() < 0.3 else target
        elif label == "contradiction":
            hyp = s.alter(target)
        else:
            people = {f.person for f in premise}
            kinds = {f.kind for f in premise if f.person == target.person}
            free = [k for k in ("possess", "live", "work") if k not in kinds]
            if s.rng.random() < diff.neutral_same_person and free:
                hyp = s.frame(s.rng.choice(free), person=target.person)
            else:
                hyp = s.frame(exclude=people)
        records.append({
            "id": f"{prefix}-{i}",
            "sentence1": " ".join(detokenize(r.sentence([f])) for f in premise),
            "sentence2": detokenize(r.sentence([hyp])),
            "label": label,
        })
    s.rng.shuffle(records)
    return records


def gen_qqp(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        f = s.frame(s.rng.choice(["possess", "live", "work", "act"]))
        duplicate = i % 5 < 2
        if duplicate:
            g, variants = f, (0, 1)
        else:
            g = s.frame(f.kind, exclude={f.person}) if s.rng.random() < 0.5 else s.frame(
                s.rng.choice([k for k in ("possess", "live", "work", "act") if k != f.kind]), person=f.person)
            variants = (s.rng.randint(0, 1), s.rng.randint(0, 1))
        q1, q2 = r.question(f, variants[0])[0], r.question(g, variants[1])[0]
        records.append({"id": f"{prefix}-{i}", "sentence1": detokenize(q1), "sentence2": detokenize(q2),
                        "label": "1" if duplicate else "0"})
    s.rng.shuffle(records)
    return records


def gen_paws(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        give = s.frame("give")
        get_form = replace(give, kind="get", person=give.other, other=give.person)
        paraphrase = i % 2 == 0
        if paraphrase:
            second = get_form
        else:
            # Same words, roles swapped: the adversarial, high-overlap negatives of PAWS.
            second = s.rng.choice([replace(give, person=give.other, other=give.person),
                                   replace(get_form, person=give.person, other=give.other)])
        first, second = (give, second) if s.rng.random() < 0.5 else (second, give)
        records.append({"id": f"{prefix}-{i}", "sentence1": detokenize(r.sentence([first])),
                        "sentence2": detokenize(r.sentence([second])), "label": "1" if paraphrase else "0"})
    s.rng.shuffle(records)
    return records


def gen_squad(r: Renderer, s: Sampler, n: int, prefix: str, unanswerable: bool) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    doc = 0
    while len(records) < n:
        frames = s.frames(s.rng.randint(3, 5), kinds=["possess", "live", "work", "act"])
        sentences = [r.sentence([f]) for f in frames]
        context_tokens = [t for sent in sentences for t in sent]
        context = detokenize(context_tokens)
        title = f"{prefix}-doc{doc}"
        # "Who works for X?" is ambiguous when two people work for X: never ask it then.
        askable = [k for k, f in enumerate(frames)
                   if f.kind != "work" or sum(g.org == f.org for g in frames if g.kind == "work") == 1]
        asked = s.rng.sample(askable, k=min(len(askable), s.rng.randint(1, 3)))
        for k in asked:
            if len(records) >= n:
                break
            qid = f"{prefix}-{len(records)}"
            if unanswerable and s.rng.random() < 1 / 3:
                # Ask about someone absent from the context: no answer (SQuAD v2.0).
                absent = s.frame(frames[k].kind, exclude={f.person for f in frames})
                question, _ = r.question(absent, s.rng.randint(0, 1))
                answers = {"text": [], "answer_start": []}
            else:
                question, answer = r.question(frames[k], s.rng.randint(0, 1))
                offset = sum(len(sent) for sent in sentences[:k])
                start = offset + _find_span(sentences[k], answer)
                char = _char_offset(context_tokens, start)
                text = detokenize(answer)
                answers = {"text": [text], "answer_start": [char]}
            records.append({"id": qid, "title": title, "context": context,
                            "question": detokenize(question), "answers": answers})
        doc += 1
    return records


def gen_hellaswag(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        f = s.frame("act")
        nxt = replace(f, verb=SCRIPT[f.verb], place=None)
        # Each distractor breaks the script (another action) and, for two of them, also the
        # person or the object: the right ending is not simply the one most like the others.
        verbs = s.rng.sample([v for v, _ in ACTIONS if v not in (nxt.verb, f.verb)], 3)
        endings = [nxt, replace(nxt, verb=verbs[0]), replace(nxt, verb=verbs[1], person=s.person({f.person})),
                   replace(nxt, verb=verbs[2], noun=s.rng.choice([x for x in NOUNS if x != f.noun]))]
        order = list(range(4))
        s.rng.shuffle(order)
        records.append({"id": f"{prefix}-{i}", "context": detokenize(r.sentence([f])), "question": "",
                        "choices": [detokenize(r.sentence([endings[j]], then=True)) for j in order],
                        "label": order.index(0)})
    return records


# The COPA-shaped question, as XTREME-R's XCOPA script words it (in English, in every language).
COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What was the effect?"}


def _alternative(s: Sampler, f: Frame, verbs: list[str]) -> Frame:
    return replace(f, verb=s.rng.choice([v for v, _ in ACTIONS if v not in verbs]), place=None)


def gen_copa(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    """COPA/XCOPA-shaped causal reasoning: a premise, "cause" or "effect", two alternatives.

    The premise is an action; its effect is the action that typically follows (``SCRIPT``, as
    in the HellaSwag-shaped task) and its cause the one that typically precedes (``BEFORE``),
    by the same person on the same object. The wrong alternative is, half of the time, the
    other direction (so the question decides) and otherwise an unrelated action.
    """
    records = []
    for i in range(n):
        f = replace(s.frame("act"), place=None)
        question = s.rng.choice(["cause", "effect"])
        cause, effect = replace(f, verb=BEFORE[f.verb]), replace(f, verb=SCRIPT[f.verb])
        right, other = (cause, effect) if question == "cause" else (effect, cause)
        wrong = other if s.rng.random() < 0.5 else _alternative(s, f, [f.verb, cause.verb, effect.verb])
        label = s.rng.randint(0, 1)
        pair = [wrong, right] if label else [right, wrong]
        records.append({"id": f"{prefix}-{i}", "context": detokenize(r.sentence([f])), "question": COPA_QUESTIONS[question],
                        "choices": [detokenize(r.sentence([a])) for a in pair], "label": label})
    return records


def gen_siqa(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    """Social IQa-shaped (English): what a person does next, or did before, with three answers."""
    records = []
    for i in range(n):
        f = replace(s.frame("act"), place=None)
        ask_next = s.rng.random() < 0.5
        before, after = replace(f, verb=BEFORE[f.verb]), replace(f, verb=SCRIPT[f.verb])
        right, other = (after, before) if ask_next else (before, after)
        question = f"What will {f.person} do next?" if ask_next else f"What did {f.person} do before?"
        answers = [right, other, _alternative(s, f, [f.verb, before.verb, after.verb])]
        order = list(range(3))
        s.rng.shuffle(order)
        records.append({"id": f"{prefix}-{i}", "context": detokenize(r.sentence([f])), "question": question,
                        "choices": [detokenize(r.sentence([answers[j]])) for j in order], "label": order.index(0)})
    return records


def _object_phrase(r: Renderer, f: Frame) -> str:
    return detokenize(r.noun_phrase(f.noun, f.adj, None, det=False, role="obj"))


def gen_cosmosqa(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        frames = s.frames(s.rng.randint(2, 3), kinds=["act"])
        k = s.rng.randrange(len(frames))
        question, _ = r.question(frames[k], 0)
        right = _object_phrase(r, frames[k])
        choices = [right]
        for f in frames:
            phrase = _object_phrase(r, f)
            if phrase not in choices:
                choices.append(phrase)
        while len(choices) < 4:
            phrase = _object_phrase(r, s.frame("act"))
            if phrase not in choices:
                choices.append(phrase)
        choices = choices[:4]
        s.rng.shuffle(choices)
        records.append({"id": f"{prefix}-{i}", "context": " ".join(detokenize(r.sentence([f])) for f in frames),
                        "question": detokenize(question), "choices": choices, "label": choices.index(right)})
    return records


def gen_commonsenseqa(r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        category = s.rng.choice(CATEGORY_WORDS)
        right = s.rng.choice([x for x in NOUNS if CATEGORY_OF[x] == category])
        others = s.rng.sample([x for x in NOUNS if CATEGORY_OF[x] != category], 4)
        choices = [r.lexicon[x] for x in [right, *others]]
        s.rng.shuffle(choices)
        question = [r.lexicon[x] for x in ("which", "of", "these", "is", "a", "kind", "of")] + [r.lexicon[category], "?"]
        records.append({"id": f"{prefix}-{i}", "context": "", "question": " ".join(question),
                        "choices": choices, "label": choices.index(r.lexicon[right])})
    return records


def _tagged_sentence(r: Renderer, s: Sampler) -> tuple[list[Token], list[tuple[str, int]]]:
    """A 1-2 clause sentence and, per token, the (frame kind, clause index) it belongs to."""
    frames = s.frames(s.rng.choice([1, 1, 2]), kinds=["possess", "live", "work", "act", "give", "get"])
    tokens: list[Token] = []
    origin: list[tuple[str, int]] = []
    for i, f in enumerate(frames):
        if i:
            tokens.append(r.w("and", "CCONJ", "conj"))
            origin.append((f.kind, i))
        clause = r.frame(f)
        tokens += clause
        origin += [(f.kind, i)] * len(clause)
    tokens.append(Token(".", "PUNCT", "O", "punct"))
    origin.append((frames[-1].kind, len(frames) - 1))
    return tokens, origin


def gen_tagging(dataset: str, r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        tokens, origin = _tagged_sentence(r, s)
        if dataset == "udpos":
            tags = [t.upos for t in tokens]
        elif dataset == "panx":
            tags = [t.ner for t in tokens]
        else:
            tags = [ccg_tag(t, kind, clause) for t, (kind, clause) in zip(tokens, origin)]
        records.append({"id": f"{prefix}-{i}", "tokens": [t.text for t in tokens], "tags": tags})
    return records


# --------------------------------------------------------------------------------------------
# Retrieval data and the unlabelled corpus


def _unique_frames(s: Sampler, n: int, seen: set[tuple[Frame, ...]]) -> list[list[Frame]]:
    out = []
    while len(out) < n:
        frames = tuple(s.frames(s.rng.choice([1, 1, 2])))
        if frames not in seen:
            seen.add(frames)
            out.append(list(frames))
    return out


def gen_bucc(src: Renderer, trg: Renderer, s: Sampler, n_parallel: int, n_distractors: int, lang: str):
    """BUCC-style comparable corpora: parallel pairs hidden among one-sided distractors."""
    seen: set[tuple[Frame, ...]] = set()
    parallel = _unique_frames(s, n_parallel, seen)
    src_only = _unique_frames(s, n_distractors, seen)
    trg_only = _unique_frames(s, n_distractors, seen)
    src_items = [(f, i) for i, f in enumerate(parallel)] + [(f, None) for f in src_only]
    trg_items = [(f, i) for i, f in enumerate(parallel)] + [(f, None) for f in trg_only]
    s.rng.shuffle(src_items)
    s.rng.shuffle(trg_items)
    src_rows, trg_rows, src_id_of, trg_id_of = [], [], {}, {}
    for k, (frames, pair) in enumerate(src_items):
        sid = f"{lang}-{k + 1:09d}"
        src_rows.append((sid, detokenize(src.sentence(frames))))
        if pair is not None:
            src_id_of[pair] = sid
    for k, (frames, pair) in enumerate(trg_items):
        tid = f"en-{k + 1:09d}"
        trg_rows.append((tid, detokenize(trg.sentence(frames))))
        if pair is not None:
            trg_id_of[pair] = tid
    gold = sorted((src_id_of[i], trg_id_of[i]) for i in range(len(parallel)))
    return src_rows, trg_rows, gold


def gen_tatoeba(src: Renderer, trg: Renderer, s: Sampler, n: int) -> tuple[list[str], list[str]]:
    pairs = _unique_frames(s, n, set())
    return [detokenize(src.sentence(f)) for f in pairs], [detokenize(trg.sentence(f)) for f in pairs]


def gen_corpus(lang: str, renderers: dict[str, Renderer], s: Sampler, n: int, code_switch_rate: float) -> list[str]:
    """Unlabelled sentences; a share of them code-switched, content words swapped for translations."""
    r = renderers[lang]
    others = [x for x in sorted(renderers) if x != lang]
    inverse = {form: word for word, form in r.lexicon.items()}
    lines = []
    for _ in range(n):
        tokens = r.sentence(s.story(s.rng.randint(1, 3)))
        if others and s.rng.random() < code_switch_rate:
            other = renderers[s.rng.choice(others)]
            texts = []
            for t in tokens:
                english = inverse.get(t.text)
                if english in CONTENT_WORDS and s.rng.random() < 0.5:
                    texts.append(other.lexicon[english])
                else:
                    texts.append(t.text)
            lines.append(" ".join(texts))
        else:
            lines.append(detokenize(tokens))
    return lines


# --------------------------------------------------------------------------------------------
# Driver


@dataclass
class SyntheticSpec:
    """What to generate: which datasets, languages and sizes (the demo preset's ``data.synthetic``)."""

    seed: int
    #: dataset -> split -> languages (already filtered by the preset).
    layout: dict[str, dict[str, list[str]]]
    #: dataset -> split -> number of examples (BUCC: parallel pairs; corpus: lines per language).
    sizes: dict[str, dict[str, int]]
    bucc_distractor_ratio: float = 1.0
    code_switch_rate: float = 0.3
    #: Machine translations (datasets with ``translation_of``): share of content words left in English.
    translation_noise: float = 0.0
    #: Target datasets generated by other jobs whose evaluation examples a translation must not
    #: hold: dataset -> {"layout": split -> languages, "sizes": split -> n} (targets in ``layout``
    #: count too).
    exclude: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


#: Text fields of a translated record that translation noise may touch. Span QA: the question
#: only, so the answers' character offsets into the context stay exact.
NOISY_FIELDS: dict[str, tuple[str, ...]] = {PAIR: ("sentence1", "sentence2"), SPAN: ("question",)}


def _evaluation_keys(exclude: dict[str, Any], fmt: str, lang: str, world: "World", renderers: dict[str, Renderer],
                     seed: int) -> set[tuple[str, ...]]:
    """The text keys (``leakage.example_key``) of every excluded target's dev and test examples in
    ``lang``, regenerated exactly as their own jobs generate them."""
    from xstilts.leakage import example_key

    keys: set[tuple[str, ...]] = set()
    for target, spec in sorted(exclude.items()):
        if DATASETS[target].format != fmt:
            continue
        for split in ("dev", "test"):
            if lang in spec["layout"].get(split, []):
                sampler = Sampler(world, random.Random(f"data/{seed}/{target}/{lang}/{split}"))
                records = _generate_records(target, renderers[lang], sampler, spec["sizes"][split],
                                            f"{target}-{lang}-{split}")
                keys.update(example_key(r, fmt) for r in records)
    return keys


def _without_evaluation_text(records: list[dict[str, Any]], exclude: dict[str, Any], fmt: str, lang: str,
                             world: "World", renderers: dict[str, Renderer], seed: int) -> list[dict[str, Any]]:
    """Intermediate training records less those equal to an excluded target's dev/test example.

    The synthetic world is small, so short examples repeat by chance across datasets; an
    intermediate training set (a translation included) never holds a target's evaluation text
    (``xstilts.leakage``)."""
    from xstilts.leakage import TEXT_FIELDS, example_key

    if fmt not in TEXT_FIELDS:
        return records
    avoid = _evaluation_keys(exclude, fmt, lang, world, renderers, seed)
    return [r for r in records if example_key(r, fmt) not in avoid] if avoid else records


def untranslate(records: list[dict[str, Any]], fmt: str, r: Renderer, rate: float,
                rng: random.Random) -> list[dict[str, Any]]:
    """Simulated MT noise: each content word of a record's noisy fields is left untranslated
    (its English form) with probability ``rate``, the commonest error of MT on rare words."""
    english = {form: word for word, form in r.lexicon.items() if word in CONTENT_WORDS}
    out = []
    for record in records:
        record = dict(record)
        for key in NOISY_FIELDS[fmt]:
            record[key] = " ".join(english[w] if w in english and rng.random() < rate else w
                                   for w in record[key].split(" "))
        out.append(record)
    return out


def _generate_records(dataset: str, r: Renderer, s: Sampler, n: int, prefix: str) -> list[dict[str, Any]]:
    if dataset in NLI_DIFFICULTY:
        return gen_nli(dataset, r, s, n, prefix)
    if dataset == "qqp":
        return gen_qqp(r, s, n, prefix)
    if dataset == "pawsx":
        return gen_paws(r, s, n, prefix)
    if DATASETS[dataset].format == SPAN:
        return gen_squad(r, s, n, prefix, DATASETS[dataset].unanswerable)
    if dataset == "hellaswag":
        return gen_hellaswag(r, s, n, prefix)
    if dataset == "cosmosqa":
        return gen_cosmosqa(r, s, n, prefix)
    if dataset == "commonsenseqa":
        return gen_commonsenseqa(r, s, n, prefix)
    if dataset in ("copa", "xcopa"):
        return gen_copa(r, s, n, prefix)
    if dataset == "siqa":
        return gen_siqa(r, s, n, prefix)
    if DATASETS[dataset].format == TAGGING:
        return gen_tagging(dataset, r, s, n, prefix)
    raise ValueError(f"the synthetic benchmark has no generator for dataset {dataset!r}")


def generate(spec: SyntheticSpec, data_root: str | Path) -> list[str]:
    """Write the whole synthetic benchmark under ``data_root``; return the paths written."""
    # English is always rendered: BUCC and Tatoeba pair every language with it.
    languages = sorted({"en"} | {lang for splits in spec.layout.values() for langs in splits.values() for lang in langs})
    unsupported = [lang for lang in languages if lang not in SUPPORTED_LANGUAGES]
    if unsupported:
        raise ValueError(
            f"the synthetic benchmark cannot generate language(s) {unsupported}; "
            f"supported: {', '.join(SUPPORTED_LANGUAGES)}"
        )
    world = World.build(spec.seed)
    renderers = {
        lang: Renderer(lang, _lexicon(spec.seed, lang), PROFILES.get(lang, ENGLISH)) for lang in languages
    }
    excluded = {**{t: {"layout": spec.layout[t], "sizes": spec.sizes[t]} for t in spec.layout if t in TARGET_TASKS},
                **spec.exclude}
    written: list[str] = []
    for dataset in sorted(spec.layout):
        fmt = DATASETS[dataset].format
        for split, langs in sorted(spec.layout[dataset].items()):
            n = spec.sizes[dataset][split]
            for lang in langs:
                sampler = Sampler(world, random.Random(f"data/{spec.seed}/{dataset}/{lang}/{split}"))
                files = formats.data_files(data_root, dataset, lang, split)
                if fmt == TEXT:
                    formats.write_lines(files["text"], gen_corpus(lang, renderers, sampler, n, spec.code_switch_rate))
                elif fmt == BITEXT:
                    src, trg, gold = gen_bucc(renderers[lang], renderers["en"], sampler, n,
                                              round(n * spec.bucc_distractor_ratio), lang)
                    formats.write_tsv(files["source"], src)
                    formats.write_tsv(files["target"], trg)
                    formats.write_tsv(files["gold"], gold)
                elif fmt == PARALLEL:
                    src, trg = gen_tatoeba(renderers[lang], renderers["en"], sampler, n)
                    formats.write_lines(files["source"], src)
                    formats.write_lines(files["target"], trg)
                elif fmt in (PAIR, CHOICE, SPAN, TAGGING) and DATASETS[dataset].translation_of:
                    # A machine translation: the English dataset's own examples (same sampler
                    # seed, same draws), rendered in this language, then noised.
                    source = DATASETS[dataset].translation_of
                    sampler = Sampler(world, random.Random(f"data/{spec.seed}/{source}/en/{split}"))
                    records = _generate_records(source, renderers[lang], sampler, n, f"{dataset}-{lang}-{split}")
                    if spec.translation_noise:
                        noise = random.Random(f"noise/{spec.seed}/{dataset}/{lang}/{split}")
                        records = untranslate(records, fmt, renderers[lang], spec.translation_noise, noise)
                    # Exactly the English examples the source keeps (see _without_evaluation_text),
                    # less those whose translation is a target's evaluation text in this language.
                    sampler = Sampler(world, random.Random(f"data/{spec.seed}/{source}/en/{split}"))
                    english = _generate_records(source, renderers["en"], sampler, n, "en")
                    kept = _without_evaluation_text(english, excluded, fmt, "en", world, renderers, spec.seed)
                    records = _without_evaluation_text([r for r, e in zip(records, english) if e in kept], excluded,
                                                       fmt, lang, world, renderers, spec.seed)
                    formats.write_jsonl(files["records"], records)
                elif fmt in (PAIR, CHOICE, SPAN, TAGGING):
                    prefix = f"{dataset}-{lang}-{split}"
                    records = _generate_records(dataset, renderers[lang], sampler, n, prefix)
                    if split == "train" and dataset in INTERMEDIATE_TRAINING_DATASETS:
                        records = _without_evaluation_text(records, excluded, fmt, lang, world, renderers, spec.seed)
                    formats.write_jsonl(files["records"], records)
                else:  # pragma: no cover - registry and generator out of sync
                    raise ValueError(f"unknown format {fmt}")
                written += sorted(files.values())
    return written
