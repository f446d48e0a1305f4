"""How the path-filtering orb's script reads git's list of changed files: quotes, words, patterns, echo, grep.

``create-parameters.sh`` (v2.1.0) runs ``FILES_CHANGED=$(git -c core.quotepath=false diff --name-only ...)``,
then ``for i in $FILES_CHANGED`` and ``echo "$i" | grep -P "^REGEX$"``. A plain name is one word that grep
reads as it is; these functions reproduce what happens to the others, so ``ci.changes`` can decide as the orb
does and say which names make it decide otherwise than the files changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: bash's default IFS: ``for i in $FILES_CHANGED`` splits there and nowhere else.
_IFS = re.compile(r"[ \t\n]+")
#: Names the orb may read otherwise than git wrote them (split, quoted, expanded, taken for an option, not
#: UTF-8). Anything else is one plain word, the common case, which skips the slow path.
_UNUSUAL = re.compile(r'[ \t\n*?\[\\"\udc80-\udcff]|^-')
#: bash's ``echo`` takes a lone argument made of these for options: it prints nothing (-n) or an empty line.
_ECHO_OPTION = re.compile(r"-[neE]+")
_NOT_UTF8 = re.compile(r"[\udc80-\udcff]")  # bytes that are not UTF-8, kept as surrogate escapes
_GLOB = re.compile(r"[*?\[]")  # a word bash may expand as a file pattern


@dataclass(frozen=True)
class FileChange:
    """One entry of ``git diff --name-status``: A, M, D, T, R (renamed: ``old_path`` set) ...

    ``path`` is the file's name (bytes that are not UTF-8 kept as surrogate escapes); ``listed`` is the line
    ``git -c core.quotepath=false diff --name-only`` prints for it, quoted when git quotes it: what the orb reads.
    """

    status: str
    path: str
    old_path: str | None = None
    listed: str = ""

    def __post_init__(self):
        if not self.listed:
            object.__setattr__(self, "listed", self.path)


def split_words(listed: str) -> list[str]:
    """bash's word splitting of an unquoted expansion with the default IFS."""
    return [word for word in _IFS.split(listed) if word]


def unquote(listed: str) -> str:
    """The name behind a line of ``git diff --name-only``: git's C-style quoting undone (``"a\\"b"`` -> ``a"b``)."""
    if len(listed) < 2 or listed[0] != '"' or listed[-1] != '"':
        return listed  # git quotes every name that holds a '"', so an unquoted one never starts with one
    raw, out, i = listed[1:-1].encode("utf-8", "surrogateescape"), bytearray(), 0
    while i < len(raw):
        if raw[i] != 0x5C:  # a backslash
            out.append(raw[i])
            i += 1
        elif raw[i + 1:i + 2].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(b'\a\b\t\n\v\f\r"\\'[b'abtnvfr"\\'.index(raw[i + 1])])
            i += 2
    return out.decode("utf-8", "surrogateescape")


def printable(text: str) -> str:
    """Text as it can be printed: a byte that is not UTF-8 as a backslash and three octal digits, as git shows it."""
    return _NOT_UTF8.sub(lambda match: f"\\{ord(match.group()) - 0xDC00:03o}", text)


def shown(path: str) -> str:
    """A name as ``git status`` shows it: as it is, or C-quoted with octal escapes when it holds unusual bytes."""
    raw = path.encode("utf-8", "surrogateescape")
    if all(0x20 <= byte < 0x7F and byte not in b'"\\' for byte in raw):
        return path
    escapes = {0x07: "\\a", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r",
               0x22: '\\"', 0x5C: "\\\\"}
    return '"' + "".join(escapes.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}") for b in raw) + '"'


def not_utf8(text: str) -> bool:
    """Whether a name holds a byte that is not UTF-8 (kept as a surrogate escape)."""
    return not text.isascii() and _NOT_UTF8.search(text) is not None


def grep_lines(word: str) -> list[str]:
    """The lines ``echo "$word" | grep -P "^REGEX$"`` can match in a UTF-8 locale.

    A line holding a byte that is not UTF-8 is left out: grep -P treats such a byte as a barrier no match
    crosses, and a match of "^REGEX$" must span the whole line (true for a REGEX without a top-level '|').
    """
    if _ECHO_OPTION.fullmatch(word):
        return [] if "n" in word else [""]
    lines = word.split("\n")  # only a name a pattern expanded to can hold a newline
    return [line for line in lines if not not_utf8(line)]


def expand_pattern(word: str, tree: dict[str, dict[str, str]]) -> list[str] | None:
    """bash's pathname expansion of one word in the checkout (bash 5.2's defaults: no dotglob, nullglob, extglob).

    Returns:
        The names it expands to, sorted; ``[word]`` when it is no pattern or matches nothing (bash keeps it);
        None when it is not reproduced here (a POSIX class, or a match reaching into ``.git``, a symbolic link
        or outside the checkout).
    """
    parts = word.split("/")
    components = [_component(part) for part in parts]
    if not any(glob for _, glob in components):
        return [word]  # no pattern: bash leaves the word, backslashes and all
    if any(regex is None for regex, _ in components) or parts[0] == "" or any(
            part in (".", "..") for part in parts) or "" in parts[1:-1]:
        return None
    folders_only = parts[-1] == ""
    if folders_only:
        parts, components = parts[:-1], components[:-1]
    found = [""]
    for number, (part, (regex, _)) in enumerate(zip(parts, components)):
        last = number == len(parts) - 1
        compiled = re.compile(regex, re.S)
        explicit_dot = part.startswith((".", "\\."))  # a leading '.' is matched only by a '.' of the pattern
        matches = []
        for folder in found:
            for name, kind in tree[folder].items():
                if (name.startswith(".") and not explicit_dot) or not compiled.fullmatch(name):
                    continue
                if last and not folders_only:
                    matches.append(f"{folder}/{name}" if folder else name)
                elif kind in ("git", "link"):
                    return None  # bash would look inside; what it finds is not in HEAD's tree
                elif kind in ("tree", "commit"):
                    matches.append(f"{folder}/{name}" if folder else name)
        found = matches
    return sorted(f"{path}/" if folders_only else path for path in found) or [word]


def _component(part: str) -> tuple[str | None, bool]:
    """One path component of a bash pattern as a regular expression, and whether it holds a glob character."""
    out, glob, i = [], False, 0
    while i < len(part):
        char = part[i]
        if char == "\\" and i + 1 < len(part):
            out.append(re.escape(part[i + 1]))
            i += 2
            continue
        bracket = _bracket(part, i) if char == "[" else None
        if char in "*?":
            out.append(".*" if char == "*" else ".")
            glob = True
        elif bracket is not None:
            regex, i = bracket
            if regex is None:
                return None, True
            out.append(regex)
            glob = True
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out), glob


def _bracket(part: str, start: int) -> tuple[str | None, int] | None:
    """A bracket expression at ``start``: its regex (None: a class, not reproduced) and where it ends; None when
    it is not closed (bash then reads the '[' as itself)."""
    i = start + 1
    negate = i < len(part) and part[i] in "!^"
    i += negate
    items, first = [], True
    while i < len(part):
        char = part[i]
        if char == "]" and not first:
            body = "".join(items)
            return (f"[{'^' if negate else ''}{body}]" if body else "." if negate else "(?!)"), i + 1
        first = False
        if char == "[" and part[i + 1:i + 2] in (":", "=", ".") and part.find(part[i + 1] + "]", i + 2) != -1:
            return None, len(part)
        if char == "\\" and i + 1 < len(part):
            i += 1
            char = part[i]
        if part[i + 1:i + 2] == "-" and i + 2 < len(part) and part[i + 2] != "]":
            high = part[i + 2]
            if char <= high:  # bash's globasciiranges: by code point; a reversed range matches nothing
                items.append(f"{re.escape(char)}-{re.escape(high)}")
            i += 3
            continue
        items.append(re.escape(char))
        i += 1
    return None


def orb_words(changes: list[FileChange], tree: Callable[[], dict[str, dict[str, str]]]) -> tuple[
        list[str], list[str], bool]:
    """The words the orb's loop matches, and how unusual names were read.

    Args:
        changes: the diff.
        tree: gives the checkout's tree (called only when a word is a file pattern).

    Returns:
        The words; one note per unusual name; whether a pattern could not be reproduced.
    """
    words, notes, unknown = [], [], False
    for change in changes:
        if not _UNUSUAL.search(change.listed):
            words.append(change.listed)
            continue
        split = split_words(change.listed)
        how = [f"git lists it quoted, and the orb reads the quotes and backslashes too: {printable(change.listed)}"
               ] if change.listed != change.path else []
        if len(split) > 1:
            how.append(f"bash splits it into {len(split)} words: {' and '.join(map(printable, split))}")
        for word in split:
            expanded = expand_pattern(word, tree()) if _GLOB.search(word) else [word]
            if expanded is None:
                unknown = True
                how.append(f"bash expands {printable(word)} as a file pattern in the checkout, which is not "
                           f"reproduced here (counted as it stands)")
                expanded = [word]
            elif expanded != [word]:
                more = f", ... ({len(expanded)} in all)" if len(expanded) > 5 else ""
                how.append(f"bash expands {printable(word)} in the checkout into {', '.join(map(shown, expanded[:5]))}"
                           f"{more}")
            how += [f"echo takes {shown(name)} for its option and prints no name"
                    for name in expanded if _ECHO_OPTION.fullmatch(name)]
            if any(map(not_utf8, expanded)):
                how.append("it is not UTF-8, and grep -P in the orb's UTF-8 locale matches no mapping line on it")
            words += expanded
        if how:
            notes.append(f"{shown(change.path)}: {'; '.join(how)}")
    return words, notes, unknown
