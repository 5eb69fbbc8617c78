"""Help text of every algorithm: each description once, every parameter's default and range from its definition."""

import re

import pytest

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from oremap.algorithms.base import parameter_facts, plain_text


def _facts(parameter):
    return parameter_facts(parameter)


def test_parameter_facts_known_values():
    number = QgsProcessingParameterNumber
    assert _facts(number("E", "e", number.Integer, defaultValue=150, minValue=1)) == [
        "Default: 150.", "Allowed: 1 or more."]
    fraction = number("V", "v", number.Double, defaultValue=0.25, minValue=0.05, maxValue=0.8)
    assert _facts(fraction) == ["Default: 0.25.", "Allowed: 0.05 to 0.8."]
    assert _facts(number("L", "l", number.Double, defaultValue=1e-3, minValue=1e-6, maxValue=1.0)) == [
        "Default: 0.001.", "Allowed: 1e-06 to 1."]
    unbounded = number("N", "n", number.Double, optional=True)
    assert _facts(unbounded) == ["Optional: no default."]
    capped = number("C", "c", number.Double, defaultValue=-2.5)
    capped.setMaximum(0)
    assert _facts(capped) == ["Default: -2.5.", "Allowed: 0 or less."]
    enum = QgsProcessingParameterEnum("P", "p", options=["none", "brightness", "continuum"], defaultValue=1)
    assert _facts(enum) == ["Default: brightness (1)."]
    assert _facts(QgsProcessingParameterBoolean("B", "b", defaultValue=False)) == ["Default: no."]
    assert _facts(QgsProcessingParameterString("S", "s", defaultValue="Au;Hg", optional=True)) == [
        "Optional.", "Default: Au;Hg."]
    assert plain_text("<p>SAM &amp; SID: <b>angle</b>\n in  rad</p>") == "SAM & SID: angle in rad"


def _dd(help_html, name):
    """The <dd> text of parameter ``name`` in the HTML help."""
    found = re.search(rf"\(<code>{name}</code>\)</dt><dd>(.*?)</dd>", help_html, re.S)
    assert found, name
    return found.group(1)


def test_every_algorithm_states_defaults_and_ranges_once(processing_provider):
    checked = 0
    for alg in processing_provider.algorithms():
        help_html = alg.shortHelpString()
        paragraphs = alg.HELP.split("\n\n")
        # issue 17: the description once (the toolbox tooltip is the first paragraph, not repeated by qgis_process)
        for p in paragraphs:
            assert help_html.count(p) == 1, f"{alg.id()}: a paragraph of the description appears twice"
        assert alg.shortDescription() == paragraphs[0]
        text = alg.help_text()
        assert "<p>" not in text and "<dd>" not in text
        assert text.count(plain_text(paragraphs[0])[:60]) == 1
        for definition in alg.parameterDefinitions():
            dd = _dd(help_html, definition.name())
            if definition.isDestination():
                continue
            default = definition.defaultValue()
            if isinstance(definition, QgsProcessingParameterNumber):
                integer = definition.dataType() == QgsProcessingParameterNumber.Integer
                if default is not None:
                    value = float(default)
                    shown = re.search(r"Default: ([-+0-9.e]+)\.", dd)
                    assert shown, f"{alg.id()}: {definition.name()} shows no default"
                    assert float(shown.group(1)) == pytest.approx(value, rel=1e-6)
                    checked += 1
                if definition.minimum() > -1e300:
                    low = re.search(r"Allowed: ([-+0-9.e]+)", dd)
                    assert low and float(low.group(1)) == pytest.approx(definition.minimum(), rel=1e-6), \
                        f"{alg.id()}: {definition.name()} shows no range"
                if definition.maximum() < 1e300:
                    assert re.search(r"to ([-+0-9.e]+)\.", dd) or "or less" in dd
                if integer and default is not None:
                    assert f"Default: {int(default)}." in dd
            elif isinstance(definition, QgsProcessingParameterEnum) and default is not None:
                chosen = default if isinstance(default, list) else [default]
                named = ", ".join(f"{definition.options()[int(i)]} ({int(i)})" for i in chosen)
                assert f"Default: {named}." in dd
                checked += 1
            elif isinstance(definition, QgsProcessingParameterBoolean):
                assert f"Default: {'yes' if default else 'no'}." in dd
                checked += 1
            if definition.flags() & QgsProcessingParameterDefinition.FlagOptional:
                assert "Optional" in dd
    assert checked > 60  # defaults of every algorithm's numbers, choices and switches


def test_train_spectral_cnn_help_names_its_defaults(processing_provider):
    # issue 22: these had to be read from the code
    alg = processing_provider.algorithm("train_spectral_cnn")
    help_html = alg.shortHelpString()
    for name in ("EPOCHS", "PATIENCE", "VALIDATION_FRACTION", "SEED", "PREPROCESSING"):
        value = alg.parameterDefinition(name).defaultValue()
        assert "Default: " in _dd(help_html, name)
        assert str(value) in _dd(help_html, name)


@pytest.mark.slow
def test_qgis_process_help_prints_the_description_once(qgis_process):
    proc = qgis_process("help", "oremap:accuracy_assessment")
    out = proc.stdout
    first = "Compares a class raster with reference data"
    assert out.count(first) == 1
    assert "<p>" not in out and "<dd>" not in out
    # the generated facts reach the terminal: the report is optional
    assert "written to a temporary file" in out


def test_reports_and_tables_are_never_mandatory(processing_provider):
    """Issue 23: qgis_process needs only the inputs and the main output (the first destination)."""
    from qgis.core import QgsProcessingParameterFileDestination

    reports = 0
    for alg in processing_provider.algorithms():
        destinations = [d for d in alg.parameterDefinitions() if d.isDestination()]
        for d in destinations[1:]:
            assert d.flags() & QgsProcessingParameterDefinition.FlagOptional, f"{alg.id()}: {d.name()} is mandatory"
        for d in destinations:
            if isinstance(d, QgsProcessingParameterFileDestination) and re.search(r"\*\.(html|csv)", d.fileFilter()):
                assert d.flags() & QgsProcessingParameterDefinition.FlagOptional, f"{alg.id()}: {d.name()}"
                reports += 1
    assert reports >= 12  # 8 HTML reports, 4 CSV tables


def test_help_texts_escape_less_and_greater_than(processing_provider):
    """The help is HTML: a bare '<0.005' opened a tag that ran to the next '>', and the dialog and qgis_process
    showed "(' 10')" for "('<0.005') ... ('>10')". Only the tags the help itself writes may stand in the texts."""
    tag = re.compile(r"</?(b|i|em|strong|code|br|sub|sup|a|p|ul|li)\b[^<>]*>")
    for alg in processing_provider.algorithms():
        texts = [alg.HELP, *getattr(alg, "PARAM_HELP", {}).values(), *getattr(alg, "OUTPUT_HELP", {}).values(),
                 *getattr(alg, "REFERENCES", [])]
        for text in texts:
            bare = re.findall(r"[<>]", tag.sub("", text))
            assert not bare, f"{alg.id()}: write &lt; and &gt; in the help: {text[:80]}..."
