"""OreMap's name-matching rules, shared by spectral libraries (the *Spectra* parameter) and the
accuracy assessment (class names of a legend against reference labels).
"""


def name_key(name):
    """Name for loose matching: case-folded, runs of white space as one space, accents in one Unicode form (NFC:
    'Hématite' typed on macOS or pasted from a PDF, with a combining accent, is the same name as with a
    precomposed one)."""
    import unicodedata

    return unicodedata.normalize("NFC", " ".join(str(name).split())).casefold()


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
