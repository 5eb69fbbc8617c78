"""Assay values written as text, as laboratories and survey compilations write them.

``'<0.5'`` (below the detection limit), ``'>10000'`` (over the upper limit), ``'BDL'`` (below an unreported limit),
``'n.a.'`` or ``'IS'`` (no result), and decimal commas (``'0,05'``). One reading for every place a value arrives as
text: a layer's text field (``algorithms.base.assay_number``) and a laboratory's results file
(:mod:`core.geochemistry.lab_results`).
"""

import re

#: Words laboratories write for a result below an unreported detection limit (lower case, dots and spaces removed).
BELOW_DETECTION_WORDS = {"bdl", "bd", "<dl", "<lod", "<ld", "bld", "lod", "belowdetection", "notdetected", "<lld",
                         "lld", "<ldl", "<mdl", "<lor", "<loq", "<ll"}
# ('nd' / 'n.d.' is left missing: in assay tables it is as often "not determined" as "not detected"; it is no text
# either, so it does not make the field text: NO_VALUE_WORDS)
#: Words compilations write for "no result" (not analysed, insufficient sample, not received...; ALS writes NSS, not
#: sufficient sample, and LNR, listed not received).
MISSING_WORDS = {"na", "n/a", "-", "--", "---", "is", "ns", "nr", "nan", "null", "none", "x", "notanalysed",
                 "notanalyzed", "nosample", "lns", "tbr", "nss", "lnr"}
#: Words that are no value when judging whether a text field holds numbers: the words for "no result", and 'n.d.'.
NO_VALUE_WORDS = MISSING_WORDS | {"nd"}

#: A value that can only be written with a decimal comma: a comma not followed by three digits, or after a lone 0,
#: or after points between groups of three digits ('1.800,5').
DECIMAL_COMMA = re.compile(r"[<>]?\s*[-+]?(\d*,\d{1,2}|\d*,\d{4,}|0,\d+|\d{1,3}(\.\d{3})+,\d+)")
#: A value that can only be written with thousands separators: several comma groups, or commas and a point.
THOUSANDS = re.compile(r"[<>]?\s*[-+]?\d{1,3}(,\d{3}){2,}(\.\d*)?|[<>]?\s*[-+]?\d{1,3}(,\d{3})+\.\d*")


def word(text):
    """``text`` as the word lists hold it: lower case, without dots and spaces."""
    return text.strip().lower().replace(".", "").replace(" ", "")


def decimal(text, comma=None):
    """``float`` of a number written with a decimal point or, when it has no point and one comma, a decimal
    comma (``'0,05'``, as decimal-comma CSV files write values that load as text). ``comma``: ``"decimal"`` when the
    layer is known to write decimal commas (:func:`decimal_comma_texts`), so ``'1,945'`` is 1.945; else such a value,
    one to three digits and three after the comma, is read with a thousands separator (1945), as a spreadsheet
    formats numbers. A comma with a point (``'1,250.5'``) is a thousands separator; in a decimal-comma layer a point
    between groups of three digits is (``'1.800'``, ``'1.800,5'``: German, French and Spanish spreadsheets write
    1800 so), but never after a lone 0 (``'0.005'`` is 0.005 in any file)."""
    text = text.strip()
    if comma == "decimal" and "." in text and re.fullmatch(r"[-+]?[1-9]\d{0,2}(\.\d{3})+(,\d*)?", text):
        text = text.replace(".", "")
    if "," in text and "." in text and re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+\.\d*", text):
        text = text.replace(",", "")
    elif comma != "decimal" and re.fullmatch(r"[-+]?[1-9]\d{0,2}(,\d{3}){2,}", text):   # '7,000,000'
        text = text.replace(",", "")
    elif "," in text and "." not in text and text.count(",") == 1:
        thousands = comma != "decimal" and re.fullmatch(r"[-+]?[1-9]\d{0,2},\d{3}", text)
        text = text.replace(",", "" if thousands else ".")
    return float(text)


def assay_value(text, comma=None):
    """An element's value written as ``text``: a number; ``'<0.5'`` (below the detection limit) minus the limit, the
    survey tables' convention; ``'>10000'`` (over range) the limit; ``'BDL'`` (:data:`BELOW_DETECTION_WORDS`: below
    an unreported limit) ``-inf``; a decimal comma as :func:`decimal` reads it. Words for no result
    (:data:`MISSING_WORDS`), ``'n.d.'`` and other text are NaN."""
    text = str(text)
    if comma != "decimal":   # a decimal-comma text is read by decimal() alone: float() reads '1.800' as 1.8
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if number == number:
            return number
    text = text.strip()
    if word(text) in BELOW_DETECTION_WORDS:
        return float("-inf")
    try:
        if text[:1] in ("<", ">"):
            limit = abs(decimal(text[1:], comma))
            return -limit if text[0] == "<" else limit
        return decimal(text, comma)
    except ValueError:
        return float("nan")


def decimal_comma_texts(texts):
    """Whether values written as ``texts`` use decimal commas: some value can only be read so ('0,05', '<0,5',
    '12,5') and none only with thousands separators ('1,250,000', '1,250.5')."""
    found = False
    for value in texts:
        if not isinstance(value, str) or "," not in value:
            continue
        text = value.strip()
        if THOUSANDS.fullmatch(text):
            return False
        found = found or bool(DECIMAL_COMMA.fullmatch(text))
    return found
