"""What a file that is not the expected CSV most likely is, and what its user can do about it. Pure: no Django.

The checks say what is wrong ("not UTF-8 text", "Missing columns"); these hints say why it probably happened:
a spreadsheet saved in its own format, a file saved as UTF-16 or in a regional code page, a locale that
separates cells with semicolons, a header typed with other capitals.
"""

from collections.abc import Collection, Sequence

SAVE_AS_CSV = "save it from the spreadsheet as 'CSV UTF-8 (Comma delimited)' and upload that file"

# The first bytes of formats that are uploaded by mistake, and what to tell their owner.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", f"It looks like an Excel workbook (.xlsx) or another zip archive: {SAVE_AS_CSV}."),
    (b"\xd0\xcf\x11\xe0", f"It looks like an old Excel workbook (.xls): {SAVE_AS_CSV}."),
    (b"\xff\xfe", f"It is UTF-16 text: {SAVE_AS_CSV}, or convert it with `iconv -f UTF-16 -t UTF-8`."),
    (b"\xfe\xff", f"It is UTF-16 text: {SAVE_AS_CSV}, or convert it with `iconv -f UTF-16 -t UTF-8`."),
    (b"\x1f\x8b", "It is a gzip archive: decompress it and upload the CSV inside."),
    (b"PAR1", "It is a Parquet file: write it out as CSV and upload that."),
)

_CODE_PAGE = (
    "It is probably in a regional code page such as Windows-1252: "
    f"{SAVE_AS_CSV}, or convert it with `iconv -f WINDOWS-1252 -t UTF-8`."
)
_UTF16_WITHOUT_BOM = f"It looks like UTF-16 text: {SAVE_AS_CSV}, or convert it with `iconv -f UTF-16LE -t UTF-8`."

# Cell separators other locales and tools use, for a header row read as one column.
DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def encoding_hint(head: bytes) -> str:
    """A hint for a file whose first bytes are ``head`` and that is not UTF-8 text (or holds NUL bytes)."""
    for signature, hint in _SIGNATURES:
        if head.startswith(signature):
            return hint
    if _alternating_nul(head):
        return _UTF16_WITHOUT_BOM
    return _CODE_PAGE


def _alternating_nul(head: bytes) -> bool:
    """ASCII text in UTF-16 without a byte-order mark: every other byte is NUL."""
    pairs = head[: len(head) - len(head) % 2]
    return len(pairs) >= 4 and (pairs[1::2].count(0) == len(pairs) // 2 or pairs[0::2].count(0) == len(pairs) // 2)


def columns_hint(available: Collection[str], missing: Sequence[str]) -> str | None:
    """Why the columns ``missing`` may not be among ``available`` although the user meant them to be."""
    if len(available) == 1:
        (only,) = available
        for delimiter, name in DELIMITERS.items():
            if delimiter in only:
                return f"The header row is one column holding {name}: separate the cells with commas ({SAVE_AS_CSV})."
    by_folded = {name.strip().casefold(): name for name in available}
    renamed = [(by_folded[name.casefold()], name) for name in missing if name.casefold() in by_folded]
    if renamed:
        found = ", ".join(f"{have!r} for {want!r}" for have, want in renamed)
        return f"Column names are case-sensitive: the file has {found}."
    return None
