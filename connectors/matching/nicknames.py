"""Common English given-name short forms, so "Bill" can agree with "William".

Each formal name lists the short forms people are commonly recorded under. The table is
symmetric in use: ``is_nickname_pair`` holds when either name is a short form of the
other, or both are short forms of one formal name.
"""

from __future__ import annotations

from functools import cache

__all__ = ["NICKNAMES", "formal_names", "is_nickname_pair"]

NICKNAMES: dict[str, tuple[str, ...]] = {
    "abigail": ("abby", "abi", "gail"),
    "alexander": ("alex", "sandy", "xander", "al"),
    "alexandra": ("alex", "lexi", "sandra", "sandy"),
    "alfred": ("alf", "alfie", "fred"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony", "ant"),
    "benjamin": ("ben", "benji", "benny"),
    "catherine": ("cathy", "cath", "kate", "katie", "kat"),
    "charles": ("charlie", "chas", "chuck"),
    "charlotte": ("lottie", "charlie", "lotte"),
    "christine": ("chris", "chrissy", "tina"),
    "christopher": ("chris", "kit", "topher"),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davy", "davie"),
    "deborah": ("debbie", "deb", "debs"),
    "dorothy": ("dot", "dotty", "dolly"),
    "edward": ("ed", "eddie", "ted", "ned"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "libby", "bess"),
    "eleanor": ("ellie", "nell", "nora", "elle"),
    "frederick": ("fred", "freddie", "freddy"),
    "gareth": ("gaz", "gary"),
    "harold": ("harry", "hal"),
    "henry": ("harry", "hank", "hal"),
    "jacqueline": ("jackie", "jacqui"),
    "james": ("jim", "jimmy", "jamie", "jem"),
    "jennifer": ("jen", "jenny", "jenna"),
    "jessica": ("jess", "jessie"),
    "john": ("jack", "johnny", "jon"),
    "jonathan": ("jon", "jonny", "nathan"),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "julian": ("jules",),
    "katherine": ("kate", "katie", "kathy", "kat", "kath"),
    "kenneth": ("ken", "kenny"),
    "lawrence": ("larry", "laurie"),
    "leonard": ("len", "lenny", "leo"),
    "margaret": ("maggie", "meg", "peggy", "madge", "marge", "greta"),
    "matthew": ("matt", "matty"),
    "michael": ("mike", "mick", "micky", "mikey"),
    "nicholas": ("nick", "nicky", "nico"),
    "patricia": ("pat", "patsy", "trish", "tricia"),
    "patrick": ("pat", "paddy"),
    "peter": ("pete",),
    "philip": ("phil", "pip"),
    "rebecca": ("becky", "becca", "bex"),
    "richard": ("rick", "ricky", "dick", "rich", "richie"),
    "robert": ("rob", "robbie", "bob", "bobby", "bert"),
    "ronald": ("ron", "ronnie"),
    "samantha": ("sam", "sammy"),
    "samuel": ("sam", "sammy"),
    "sarah": ("sally", "sadie"),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "susan": ("sue", "susie", "suzy"),
    "theodore": ("theo", "ted", "teddy"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "tori", "vic"),
    "william": ("bill", "billy", "will", "willie", "liam"),
    "zachary": ("zach", "zack"),
}


@cache
def _formal_index() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for formal, shorts in NICKNAMES.items():
        index.setdefault(formal, set()).add(formal)
        for short in shorts:
            index.setdefault(short, set()).add(formal)
    return {name: frozenset(formals) for name, formals in index.items()}


def formal_names(name: str) -> frozenset[str]:
    """The formal names ``name`` is (or is a short form of); empty when unknown."""
    return _formal_index().get(name.lower(), frozenset())


def is_nickname_pair(left: str, right: str) -> bool:
    """Whether two different given names are known forms of one formal name."""
    a, b = left.lower(), right.lower()
    return a != b and bool(formal_names(a) & formal_names(b))
