"""OreMap's name-matching rules, shared by spectral libraries (the *Spectra* parameter) and the
accuracy assessment (class names of a legend against reference labels).
"""


def name_key(name):
    """Name for loose matching: case-folded, runs of white space as one space, accents in one Unicode form (NFC:
    'Hématite' typed on macOS or pasted from a PDF, with a combining accent, is the same name as with a
    precomposed one)."""
    import unicodedata

    return unicodedata.normalize("NFC", " ".join(str(name).split())).casefold()


def one_spelling(labels, where, fix, warn=None):
    """``labels`` with the spellings of one class name (case, spaces, Unicode form: 'Kaolinit' and 'kaolinit ',
    'Hämatit' with a precomposed or a combining accent: :func:`name_key`) made one, the most frequent spelling kept;
    a tie is broken by the spelling itself, never by the labels' order (a precomposed accent before a combining one,
    mixed case before all capitals, then code-point order), so the same labels in another order give the same
    classes. Labels that are not text (class codes) are left as they are. Without it each spelling was a
    class of its own, and one mineral took several classes of a model and its map. ``warn(text)`` is told which
    spellings were merged, ``where`` they were found (``"'mineral'"``, ``"The spectrum names"``) and ``fix``."""
    import unicodedata
    from collections import Counter

    def shown(text):  # two encodings of one accent look alike: say which is which
        return repr(text) + (" (accent as a combining mark)" if unicodedata.normalize("NFC", text) != text else "")

    counts = Counter(v for v in labels if isinstance(v, str))
    spellings = {}
    for text in sorted(counts, key=lambda t: (-counts[t], unicodedata.normalize("NFC", t) != t, t.isupper(), t)):
        spellings.setdefault(name_key(text), []).append(text)
    merged = [v for v in spellings.values() if len(v) > 1]
    if not merged:
        return labels
    if warn is not None:
        warn(f"{where} spells some classes in more than one way, taken as one class each (case, spaces and accent "
             "encoding ignored): " + "; ".join(" = ".join(shown(t) for t in v) for v in merged) + f". {fix}")
    keep = {t: v[0] for v in merged for t in v}
    return [keep.get(v, v) if isinstance(v, str) else v for v in labels]


def match_name(wanted, names, keys=None):
    """Find ``wanted`` among ``names`` by OreMap's name-matching rules.

    The rules, in order: exact name; the same name ignoring case and repeated
    white space (:func:`name_key`); a unique name starting with it; a unique
    name containing it. The first rule with any match decides.

    Parameters
    ----------
    wanted : str
    names : sequence of str
    keys : list of str, optional
        ``[name_key(n) for n in names]``, when already computed.

    Returns
    -------
    (int or None, list of int)
        ``(index, [])`` for a unique match; ``(None, indexes)`` when the
        deciding rule matches several names; ``(None, [])`` when none match.
    """
    wanted = str(wanted)
    names = [str(n) for n in names]
    exact = [i for i, n in enumerate(names) if n == wanted]
    if len(exact) == 1:
        return exact[0], []
    if len(exact) > 1:
        return None, exact
    key = name_key(wanted)
    if not key:
        return None, []
    keys = [name_key(n) for n in names] if keys is None else keys
    for rule in (str.__eq__, str.startswith, str.__contains__):
        hits = [i for i, k in enumerate(keys) if rule(k, key)]
        if len(hits) == 1:
            return hits[0], []
        if hits:
            return None, hits
    return None, []
