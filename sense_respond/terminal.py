"""Text from social feeds made safe to print on a terminal.

A post, a handle or a display name is written by strangers. Printed raw, an escape sequence in
it can recolour or clear the screen, retitle the window, plant a hyperlink (OSC 8), move the
cursor to overwrite earlier lines, or, on some terminals, answer back into the input; a bidi
override can make a line read differently from what it is. `safe_text` strips all of that;
`terminal_json` keeps JSON lossless by escaping the same characters as `\\uXXXX`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_ESCAPE_SEQUENCE = re.compile(
    r"""
    (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?     # CSI: colours, cursor moves, ...
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                 # OSC, DCS, SOS, PM, APC ...
        [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?               # ... up to BEL or ST (or the end)
  | \x1b[\x20-\x2f]*[\x30-\x7e]?                            # other ESC sequences (and lone ESC)
    """,
    re.VERBOSE,
)
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))) + _BIDI
_DROP = re.compile(f"[{re.escape(_CONTROLS)}]")
_DROP_KEEP_NEWLINE = re.compile(f"[{re.escape(_CONTROLS.replace(chr(10), ''))}]")
_SPACES = str.maketrans(
    {"\t": " ", "\r": " ", "\u2028": " ", "\u2029": " ", "\x0b": " ", "\x0c": " "}
)
_JSON_UNSAFE = re.compile(
    f"[{re.escape(''.join(chr(c) for c in range(0x7F, 0xA0)) + _BIDI)}\u2028\u2029]"
)


def safe_text(text: object, *, keep_newlines: bool = False) -> str:
    """`text` without terminal escape sequences, C0/C1 control characters and bidi controls.

    Tabs, carriage returns and line/paragraph separators become spaces; newlines stay only with
    `keep_newlines` (else they become spaces too, so one value stays on one line).
    """
    value = _ESCAPE_SEQUENCE.sub("", str(text)).translate(_SPACES)
    if not keep_newlines:
        value = value.replace("\n", " ")
    return (_DROP_KEEP_NEWLINE if keep_newlines else _DROP).sub("", value)


def terminal_json(value: Any) -> str:
    """`value` as one line of JSON that is safe on a terminal and decodes to the same value:
    orjson escapes C0 controls already; DEL, C1 controls, bidi controls and U+2028/U+2029 are
    escaped here too (they only ever occur inside JSON strings)."""
    text = orjson.dumps(value).decode()
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
