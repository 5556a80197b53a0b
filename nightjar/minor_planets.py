"""Minor-planet designations in the Minor Planet Center's packed and unpacked forms.

Surveys name asteroids differently: Rubin's ``ssSource.designation`` and ``mpc_orbits``
use the MPC's packed form (``K01S97B``), ZTF's ``ssnamenr`` writes numbers and
unspaced provisional designations (``270038``, ``(53786)2000EM97``, ``2001SB97``), and
people type ``2001 SB97`` or ``(433) Eros``.  :func:`designation_keys` turns any of
them into the same lookup keys, so one asteroid's detections of both surveys meet.

Formats (MPC, https://www.minorplanetcenter.net/iau/info/PackedDes.html):

* numbered: 5 characters, the first a digit or a letter for the ten-thousands
  (``A0345`` = 100345, A-Z = 10-35, a-z = 36-61), ``~`` + 4 base-62 digits from 620000;
* provisional: century letter (I 18, J 19, K 20, L 21), two year digits, the half-month
  letter, the cycle count as a digit-or-letter and a digit (``B9`` = 119), the
  second letter: ``J99JB9X`` = ``1999 JX119``;
* survey designations: ``PLS2040`` = ``2040 P-L``, ``T1S3138`` = ``3138 T-1``.

sbpy's ``Names`` parses some of these but not cycle counts above 99 nor ZTF's unspaced
forms, hence this small module.  Pure functions.
"""

from __future__ import annotations

import re

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CENTURY = {"I": 18, "J": 19, "K": 20, "L": 21}
_CENTURY_LETTER = {v: k for k, v in _CENTURY.items()}
_HALF_MONTH = "ABCDEFGHJKLMNOPQRSTUVWXY"  # no I
_SURVEYS = {"PLS": "P-L", "T1S": "T-1", "T2S": "T-2", "T3S": "T-3"}

_PACKED_NUMBER = re.compile(r"^[0-9A-Za-z]\d{4}$")
_PACKED_TILDE = re.compile(r"^~[0-9A-Za-z]{4}$")
_PACKED_PROVISIONAL = re.compile(r"^([IJKL])(\d\d)([A-HJ-Y])([0-9A-Za-z])(\d)([A-Z])$")
_PACKED_SURVEY = re.compile(r"^(PLS|T1S|T2S|T3S)(\d{4})$")
_UNPACKED_PROVISIONAL = re.compile(r"^(1[89]|2[01])(\d\d)\s*([A-HJ-Y])([A-Z])(\d*)$")
_UNPACKED_SURVEY = re.compile(r"^(\d{4})\s*(P-L|T-1|T-2|T-3)$")
_NUMBERED = re.compile(r"^\(?(\d+)\)?\s*(.*)$")


def unpack_number(packed: str) -> int | None:
    """The number of a packed numbered designation (``A0345`` -> 100345), else None."""
    if _PACKED_TILDE.match(packed):
        value = 0
        for char in packed[1:]:
            value = value * 62 + _BASE62.index(char)
        return 620000 + value
    if _PACKED_NUMBER.match(packed):
        return _BASE62.index(packed[0]) * 10000 + int(packed[1:])
    return None


def unpack_provisional(packed: str) -> str | None:
    """``K01S97B`` -> ``2001 SB97``; ``PLS2040`` -> ``2040 P-L``; None if not packed."""
    found = _PACKED_PROVISIONAL.match(packed)
    if found:
        century, year, half, cycle_hi, cycle_lo, second = found.groups()
        cycle = _BASE62.index(cycle_hi) * 10 + int(cycle_lo)
        return f"{_CENTURY[century]}{year} {half}{second}{cycle if cycle else ''}"
    survey = _PACKED_SURVEY.match(packed)
    if survey:
        return f"{survey[2]} {_SURVEYS[survey[1]]}"
    return None


def pack_provisional(unpacked: str) -> str | None:
    """``2001 SB97`` (or ``2001SB97``) -> ``K01S97B``; None if not a provisional
    designation (or its cycle count is beyond 619, the extended form)."""
    found = _UNPACKED_PROVISIONAL.match(unpacked.strip())
    if not found:
        return None
    century, year, half, second, cycle_text = found.groups()
    cycle = int(cycle_text) if cycle_text else 0
    if cycle >= 620:
        return None
    return (f"{_CENTURY_LETTER[int(century)]}{year}{half}{_BASE62[cycle // 10]}{cycle % 10}"
            f"{second}")


def _provisional(text: str) -> str | None:
    """The unpacked provisional or survey designation in ``text``, normalised."""
    text = text.strip()
    unpacked = unpack_provisional(text)
    if unpacked:
        return unpacked
    found = _UNPACKED_PROVISIONAL.match(text)
    if found:
        century, year, half, second, cycle = found.groups()
        return f"{century}{year} {half}{second}{int(cycle) if cycle and int(cycle) else ''}"
    survey = _UNPACKED_SURVEY.match(text)
    if survey:
        return f"{survey[1]} {survey[2]}"
    return None


def designation_keys(text: str | None) -> list[str]:
    """Lookup keys of a designation in any of the forms above (empty for nothing usable).

    ``number:N`` for a numbered minor planet, ``provisional:YYYY HLn`` for a provisional
    (or survey) designation, ``name:...`` (lower case) for a name; a ZTF
    ``(53786)2000EM97`` gives both its number and its provisional designation.
    """
    if text is None:
        return []
    text = str(text).strip()
    if not text or text.lower() in ("null", "none", "nan"):
        return []
    keys: list[str] = []
    number = unpack_number(text) if len(text) == 5 and not text.isdigit() else None
    if number is None and (text.isdigit() or text.startswith("(")):
        found = _NUMBERED.match(text)
        if found:
            number = int(found[1])
            text = found[2]
    elif number is not None:
        text = ""
    if number is not None:
        keys.append(f"number:{number}")
    if text:
        provisional = _provisional(text)
        if provisional:
            keys.append(f"provisional:{provisional}")
        elif not keys or not text.isdigit():
            keys.append(f"name:{' '.join(text.split()).lower()}")
    return keys


def display_designation(text: str) -> str:
    """A designation as people write it: ``K01S97B`` -> ``2001 SB97``, ``A0345`` ->
    ``100345``, ``(53786)2000EM97`` -> ``53786``; a name unchanged but trimmed."""
    keys = designation_keys(text)
    if not keys or keys[0].startswith("name:"):
        return text.strip()
    return keys[0].partition(":")[2]
