#!/usr/bin/env python3
"""Copy the newest entry of CHANGELOG.md into metadata.txt's ``changelog=`` (``make changelog``).

CHANGELOG.md is kept by hand: ``## <version> - <YYYY-MM-DD>`` headings, newest first (the form
qgis-plugin-ci reads), each followed by its lines. The QGIS plugin manager and plugins.qgis.org show
the ``changelog`` of metadata.txt, so the newest entry goes there as a multi-line value: its heading
on the first line, then its non-empty lines, indented. ``%`` is written ``%%``: QGIS and the plugin
repository read metadata.txt with Python's ``configparser``, whose interpolation would refuse a lone ``%``.

Refuses when the newest heading's version is not metadata.txt's ``version=``.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANGELOG = os.path.join(ROOT, "CHANGELOG.md")
METADATA = os.path.join(ROOT, "metadata.txt")

#: A release heading: ``## 0.2.0 - 2026-12-04``.
HEADING = re.compile(r"^## (\d+\.\d+\.\d+) - (\d{4}-\d{2}-\d{2})\s*$")


def entries(text):
    """``[(version, date, [line, ...]), ...]`` of a changelog, in file order; lines stripped, empty ones left out."""
    found = []
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            found.append((match.group(1), match.group(2), []))
        elif line.startswith("## "):
            raise ValueError(f"CHANGELOG.md: heading {line!r} is not '## <major.minor.patch> - <YYYY-MM-DD>'.")
        elif found and line.strip():
            found[-1][2].append(line.strip())
    return found


def newest_entry(path=CHANGELOG):
    with open(path, encoding="utf-8") as handle:
        found = entries(handle.read())
    if not found:
        raise ValueError("CHANGELOG.md has no '## <version> - <date>' entry.")
    return found[0]


def metadata_value(version, date, lines):
    """The ``changelog=`` block of metadata.txt for one entry (lines end with a newline)."""
    text = [f"changelog={version} - {date}"] + [f"    {line}" for line in lines]
    return "".join(line.replace("%", "%%") + "\n" for line in text)


def _key(line):
    """The key of a ``key=value`` line (``None`` for continuation, comment and section lines)."""
    if line[:1] in (" ", "\t", "#", ";", "["):
        return None
    return line.split("=", 1)[0].strip() if "=" in line else None


def metadata_version(text):
    """The ``version=`` of metadata.txt's text (``None`` when missing)."""
    for line in text.splitlines():
        if _key(line) == "version":
            return line.split("=", 1)[1].strip()
    return None


def sync(changelog=CHANGELOG, metadata=METADATA):
    version, date, lines = newest_entry(changelog)
    with open(metadata, encoding="utf-8") as handle:
        text = handle.read()
    if metadata_version(text) != version:
        raise ValueError(f"CHANGELOG.md's newest entry is {version} but metadata.txt has "
                         f"version={metadata_version(text)}: make them the same release.")
    block = metadata_value(version, date, lines)
    source = text.splitlines(keepends=True)
    # replace the changelog (key and continuation lines), or add one after version=
    anchor = "changelog" if any(_key(line) == "changelog" for line in source) else "version"
    out, skipping = [], False
    for line in source:
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = False
        if _key(line) == anchor:
            if anchor == "version":
                out.append(line if line.endswith("\n") else line + "\n")
            out.append(block)
            skipping = anchor == "changelog"
            continue
        out.append(line)
    new = "".join(out)
    if new != text:
        tmp = metadata + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(new)
        os.replace(tmp, metadata)
    return new != text


def main():
    try:
        changed = sync()
    except ValueError as err:
        sys.exit(str(err))
    print("metadata.txt: changelog updated" if changed else "metadata.txt: changelog already up to date")


if __name__ == "__main__":
    main()
