"""The papers' descriptor files read unchanged, paired with a dataset's classes by one of two rules.

Formats (``format``):

* ``"cupl"``: ``{"class": ["full sentence.", ...]}`` (CuPL's released files); the sentences as stored.
* ``"dclip"``: ``{"class": ["descriptor", ...]}``; each descriptor becomes DCLIP's sentence
  ``"<key>, which ..."`` (``dclip_sentence``), the key spelt as the official code spells it
  (``wordify``: underscores as spaces), so the text side is the one the published numbers read.

Pairing rules (``match``, a per-file setting of the profile's descriptor entry):

* ``"name"`` (default): a file key names a class when the two agree after one of these, tried in
  turn, each only where it pairs one key with one class (``NAME_RULES``): case and underscores
  (``sea_lion`` / ``Sea Lion``); punctuation, with a Places365 category's letter folder dropped
  (DCLIP's ``Black-footed Albatross`` / CUB's ``Black_footed_Albatross``, ``apartment_building-outdoor``
  / ``/a/apartment_building/outdoor``); spacing (CuPL's ``Hand Stand Pushups`` / CoOp's
  ``Handstand_Pushups``); word order (CuPL's ``Dodge Dakota Crew Cab 2010`` / CoOp's ``2010 Dodge
  Dakota Crew Cab``, ``wrestling ring (indoor)`` / ``indoor wrestling_ring``); a trailing gloss in
  parentheses (DCLIP's ``arcade (passageway)`` / ``arcade``). Sentences come back in the dataset's class
  order whatever the file's key order.
* ``"order"``: the official DCLIP and LaZSL code pairs key *i* with class *i* (their ``load_gpt_descriptions``
  takes the JSON's key order as the label order). Needed where the file names classes otherwise
  (DCLIP's EuroSAT file: "brushland or shrubland" for "Herbaceous Vegetation Land", in CoOp's
  order) or where the dataset's names repeat (CLIP's ImageNet names list "sunglasses" twice). It is
  checked, never silent: the counts must be equal, and a key that names a class under the first
  three name rules must sit at that class's position; otherwise the order is not the dataset's
  (DCLIP issue #10: Pets by order against another class order gives about 11%) and the error names
  the keys. ``DescriptorFile.pairing`` lists every pair, for the notebook to print.

A missing file raises ``DescriptorFileMissing`` (callers may leave the descriptor methods out, with
the reason); any other mismatch raises ``DescriptorError`` naming the file and the classes.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

FORMATS = ("cupl", "dclip")
MATCH_RULES = ("name", "order")


class DescriptorError(ValueError):
    """A descriptor file that does not match the class list; the message names file and class."""


class DescriptorFileMissing(DescriptorError):
    """The descriptor file a profile names does not exist."""


def wordify(key: str) -> str:
    """The official DCLIP code's class word in a sentence: the key with underscores as spaces."""
    return key.replace("_", " ")


def dclip_sentence(classname: str, descriptor: str, period: bool = False) -> str:
    """DCLIP's sentence for one descriptor: ``"{class}, which {is|has|...} {descriptor}"``.

    The official code's rule (``make_descriptor_sentence``, sachit-menon/classify_by_description_release),
    which tests string prefixes, not words: a descriptor starting with "a" (so "an ..." and "angular
    ..." too) or "used" reads "which is"; one starting with "has", "often", "typically", "may" or
    "can" reads "which"; any other "which has". An empty descriptor (DCLIP's stand-in for an empty
    list) gives ``"{class}, which has "`` as the official code builds it. DCLIP appends "." for
    ImageNet only (``period``).
    """
    if descriptor.startswith(("a", "used")):
        link = "which is"
    elif descriptor.startswith(("has", "often", "typically", "may", "can")):
        link = "which"
    else:
        link = "which has"
    return f"{classname}, {link} {descriptor}" + ("." if period else "")


# --------------------------------------------------------------------------------------------------
# Name rules: each maps a name to the form two names must share


def _plain(name: str) -> str:
    """Lower case, a Places365 category's letter folder dropped (``/a/arcade`` -> ``arcade``)."""
    name = name.strip().lower()
    return re.sub(r"^/[a-z]/", "", name)


def _case(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _punctuation(name: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", re.sub(r"['\u2019]", "", _plain(name))).split())


def _spacing(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", _plain(name))


def _word_order(name: str) -> str:
    return " ".join(sorted(re.sub(r"[^0-9a-z]", "", word) for word in re.split(r"[\s_]+", _plain(name))
                           if re.sub(r"[^0-9a-z]", "", word)))


def _gloss(name: str) -> str:
    return _word_order(re.sub(r"\s*\([^()]*\)\s*$", "", name))


NAME_RULES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("case", _case), ("punctuation", _punctuation), ("spacing", _spacing),
    ("word order", lambda n: " ".join(sorted(_punctuation(n).split()))), ("word order", _word_order),
    ("gloss", _gloss))
ORDER_CHECK_RULES = NAME_RULES[:3]  # the rules strict enough to say a key names another class


@dataclass(frozen=True)
class DescriptorFile:
    """A descriptor file paired with a class list: ``sentences[c]`` for class ``classnames[c]``,
    read from file key ``keys[c]``; ``how[c]`` is the rule that paired them."""

    path: Path
    match: str
    classnames: list[str]
    keys: list[str]
    how: list[str]
    sentences: list[list[str]]

    def pairing(self) -> list[tuple[str, str, str]]:
        """(class, file key, rule) for every class, in the dataset's class order."""
        return list(zip(self.classnames, self.keys, self.how))

    def describe(self) -> str:
        """The file, its rule, and one line per pair whose names differ beyond case and punctuation."""
        differ = [(c, k, how) for c, k, how in self.pairing() if _punctuation(c) != _punctuation(k)]
        rule = "key order (the official code's rule: key i is class i)" if self.match == "order" else "name"
        lines = [f"{'/'.join(self.path.parts[-2:])}: {len(self.keys)} classes paired by {rule}; "
                 f"{len(self.keys) - len(differ)} keys name their class up to case and punctuation"
                 + (", the others:" if differ else "")]
        lines += [f"  {c!r:<40} <- {k!r} ({how})" for c, k, how in differ]
        return "\n".join(lines)


def _read(path: Path) -> dict:
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise DescriptorFileMissing(f"descriptor file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DescriptorError(f"descriptor file {path} is not valid JSON: {err}") from None
    if not isinstance(table, dict):
        raise DescriptorError(f"descriptor file {path} must hold an object {{class: [sentences]}}")
    seen: dict[str, str] = {}
    for key in table:
        if _case(key) in seen:
            raise DescriptorError(f"descriptor file {path} lists class {key!r} twice (as {seen[_case(key)]!r})")
        seen[_case(key)] = key
    return table


def _by_name(keys: list[str], classnames: Sequence[str]) -> dict[int, tuple[int, str]]:
    """class index -> (key index, rule), each rule applied only where it pairs one key with one class."""
    paired: dict[int, tuple[int, str]] = {}
    for rule, form in NAME_RULES:
        used = {k for k, _ in paired.values()}
        free_keys, free_classes = defaultdict(list), defaultdict(list)
        for k, key in enumerate(keys):
            if k not in used:
                free_keys[form(key)].append(k)
        for c, name in enumerate(classnames):
            if c not in paired:
                free_classes[form(name)].append(c)
        for shape, classes in free_classes.items():
            if len(classes) == 1 and len(free_keys.get(shape, ())) == 1:
                paired[classes[0]] = (free_keys[shape][0], rule)
    return paired


def _check_order(path: Path, keys: list[str], classnames: Sequence[str]) -> None:
    if len(keys) != len(classnames):
        raise DescriptorError(f"descriptor file {path} is read by key order (match: order), but it lists "
                              f"{len(keys)} classes and the dataset has {len(classnames)}: key i must be class i")
    misplaced = []
    for k, key in enumerate(keys):
        for _, form in ORDER_CHECK_RULES:
            hits = [c for c, name in enumerate(classnames) if form(name) == form(key)]
            if hits:
                if len(hits) == 1 and hits[0] != k:
                    misplaced.append(f"{key!r} at position {k} names class {classnames[hits[0]]!r} at {hits[0]}")
                break
    if misplaced:
        shown = "; ".join(misplaced[:5]) + (f"; and {len(misplaced) - 5} more" if len(misplaced) > 5 else "")
        raise DescriptorError(f"descriptor file {path} is read by key order (match: order), but its order is not the "
                              f"dataset's class order: {shown}. Key order against another class order pairs the "
                              "wrong descriptions (DCLIP issue #10: Pets at about 11%); use match: name")


def load_descriptor_file(path: str | Path, classnames: Sequence[str], format: Literal["cupl", "dclip"] = "cupl",
                         period: bool = False, extra: Literal["error", "ignore"] = "error",
                         match: Literal["name", "order"] = "name",
                         within: tuple[Sequence[str], Sequence[int]] | None = None) -> DescriptorFile:
    """Read a descriptor JSON and pair it with ``classnames`` (see the module doc).

    ``within = (all classnames, indices)`` says the dataset's classes are ``all[indices]`` of a larger
    list (ImageNet-A and -R within ImageNet's 1000): ``match="order"`` then counts and checks the
    file against the whole list. Classes in the file but not in the dataset are an error under
    ``match="name"`` unless ``extra="ignore"`` (ImageNet's file read for a 200-class variant).
    """
    path = Path(path)
    if format not in FORMATS:
        raise DescriptorError(f"descriptor format must be 'cupl' or 'dclip', got {format!r} (for {path})")
    if match not in MATCH_RULES:
        raise DescriptorError(f"descriptor match must be 'name' or 'order', got {match!r} (for {path})")
    table = _read(path)
    keys = list(table)
    if match == "order":
        full, indices = (list(within[0]), [int(i) for i in within[1]]) if within else (list(classnames), None)
        _check_order(path, keys, full)
        chosen = indices if indices is not None else list(range(len(full)))
        pairs = [(keys[i], "order") for i in chosen]
    else:
        paired = _by_name(keys, classnames)
        missing = [c for i, c in enumerate(classnames) if i not in paired]
        if missing:
            raise DescriptorError(
                f"descriptor file {path} has no entry for class(es) {missing}: add one list of sentences per class "
                "(keys match the class names ignoring case, punctuation, spacing, word order and a trailing gloss in "
                "parentheses); a file that names the classes otherwise in the dataset's class order, as the official "
                "DCLIP/LaZSL code reads it, needs match: order in the profile's descriptor entry")
        unused = sorted(set(range(len(keys))) - {k for k, _ in paired.values()})
        if unused and extra == "error":
            raise DescriptorError(f"descriptor file {path} names class(es) not in the dataset: {[keys[k] for k in unused]}; "
                                  "fix the spelling, or pass extra='ignore' when the file covers a larger class list")
        pairs = [(keys[paired[i][0]], paired[i][1]) for i in range(len(classnames))]
    sentences = []
    for name, (key, _) in zip(classnames, pairs):
        values = table[key]
        if not isinstance(values, list) or not all(isinstance(s, str) for s in values):
            raise DescriptorError(f"descriptor file {path}: class {name!r} must map to a list of strings (key {key!r})")
        values = values or [""]  # DCLIP's convention for an empty list
        if format == "dclip":
            values = [dclip_sentence(wordify(key), s, period) for s in values]
        sentences.append(values)
    return DescriptorFile(path, match, list(classnames), [k for k, _ in pairs], [h for _, h in pairs], sentences)


def load_descriptors(path: str | Path, classnames: Sequence[str], format: Literal["cupl", "dclip"] = "cupl",
                     period: bool = False, extra: Literal["error", "ignore"] = "error",
                     match: Literal["name", "order"] = "name") -> list[list[str]]:
    """One list of sentences per class, in the dataset's class order (``load_descriptor_file``'s)."""
    return load_descriptor_file(path, classnames, format, period, extra, match).sentences
