"""Commodity presets: the elements a geochemist looks at first when exploring for a commodity.

Each preset names the commodity element(s) (scored by ``target``) and its pathfinder set (the
enrichment index and the multivariate scores), from the literature cited with it. They are fixed
here, from ore-deposit geochemistry; never chosen from a survey's known deposits.

``basis`` says honestly how far the cited work supports the list: which elements it names, and which come from
general practice for the deposit type and were not found in its text (checked in December 2026 against the
abstracts and companion papers we could reach, not every full text).
"""

from ..engine.errors import OreMapError


PRESETS = {
    "Au": {
        "label": "Gold (orogenic / lode gold)",
        "commodity": ["Au"],
        "pathfinders": ["Au", "Ag", "As", "Sb", "W", "Bi", "Te", "Hg", "Mo"],
        "basis": "Au, Ag, As, Sb, Te and W are the alteration-halo enrichments of Yilgarn orogenic gold (Eilu and "
                 "Groves 2001; its companion study Eilu and Mikucki 1998 names them). Bi and Mo (enriched locally) "
                 "and Hg (typical of shallow orogenic gold) are pathfinders of orogenic gold elsewhere, not found in "
                 "the cited text.",
        "reference": "Eilu, P. and Groves, D. I. (2001). Primary alteration and geochemical dispersion haloes of "
                     "Archaean orogenic gold deposits in the Yilgarn Craton: the pre-weathering scenario. "
                     "Geochemistry: Exploration, Environment, Analysis 1, 183-200.",
    },
    "Cu": {
        "label": "Copper (porphyry Cu-Mo-Au)",
        "commodity": ["Cu"],
        "pathfinders": ["Cu", "Mo", "Au", "Ag", "As", "Pb", "Zn", "Sb", "Bi", "Te", "Se", "Mn", "W", "Sn", "Tl"],
        "basis": "Halley et al. 2015 name Mo, W, Se, Te, Bi, As and Sb (and the zoning outward from the copper shell "
                 "Mo, Sn, Se, Bi, Te, As, Sb, Tl); Zn, Mn, Pb and Ag are redeposited where the acid is neutralised; "
                 "Sillitoe 2010 places the Au and Zn-Pb-Ag deposits around the porphyry.",
        "reference": "Sillitoe, R. H. (2010). Porphyry copper systems. Economic Geology 105, 3-41; Halley, S., "
                     "Dilles, J. H. and Tosdal, R. M. (2015). Footprints: hydrothermal alteration and geochemical "
                     "dispersion around porphyry copper deposits. SEG Newsletter 100.",
    },
    "Ni": {
        "label": "Nickel (magmatic Ni-Cu-PGE sulphide)",
        "commodity": ["Ni"],
        "pathfinders": ["Ni", "Cu", "Co", "Cr", "Mg", "Pt", "Pd", "S"],
        "basis": "Ni, Cu, Co, Pt, Pd and S are the ore elements of magmatic sulphides; Cr and Mg mark the "
                 "ultramafic host rock, not the mineralisation. The list was not checked against the book's text.",
        "reference": "Naldrett, A. J. (2004). Magmatic Sulfide Deposits: Geology, Geochemistry and Exploration. "
                     "Springer.",
    },
    "W": {
        "label": "Tungsten (skarn, greisen, veins)",
        "commodity": ["W"],
        "pathfinders": ["W", "Sn", "Mo", "Bi", "As", "Cu", "F", "Be"],
        "basis": "Meinert et al. 2005 treat skarns only (W skarns with Mo, Cu, Zn, Bi; F, Be with Sn skarns); the "
                 "greisen and vein part of the label is not covered by the cited work. Not checked element by "
                 "element against its text.",
        "reference": "Meinert, L. D., Dipple, G. M. and Nicolescu, S. (2005). World skarn deposits. Economic "
                     "Geology 100th Anniversary Volume, 299-336.",
    },
    "Li": {
        "label": "Lithium (LCT pegmatites)",
        "commodity": ["Li"],
        "pathfinders": ["Li", "Cs", "Rb", "Ta", "Nb", "Sn", "Be", "Ga"],
        "basis": "The LCT family's signature (Černý and Ercit 2005: Li, Cs, Ta, with Rb, Be, Sn, B, P, F); Ga and Nb "
                 "of fertile granites and their pegmatites.",
        "reference": "Bradley, D. C. et al. (2017). Lithium. In: Critical Mineral Resources of the United States, "
                     "USGS Professional Paper 1802-K; Černý, P. and Ercit, T. S. (2005). The classification of "
                     "granitic pegmatites revisited. Canadian Mineralogist 43, 2005-2026.",
    },
    "REE": {
        "label": "Rare earth elements (carbonatite, alkaline, ion-adsorption)",
        "commodity": ["La", "Ce", "Pr", "Nd"],
        "pathfinders": ["La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Y", "Th", "Nb", "P", "Ba", "Sr"],
        "basis": "The cited works describe the deposits and their minerals, and give no pathfinder list: Th and P "
                 "(monazite), Ba and Sr (carbonatite) and Nb (pyrochlore) are taken from that mineralogy. "
                 "Ion-adsorption clays carry none of them.",
        "reference": "Chakhmouradian, A. R. and Wall, F. (2012). Rare earth elements: minerals, mines, magnets "
                     "(and more). Elements 8, 333-340; Verplanck, P. L. and Hitzman, M. W. (eds) (2016). Rare "
                     "Earth and Critical Elements in Ore Deposits. Reviews in Economic Geology 18, Society of "
                     "Economic Geologists.",
    },
    "ZnPb": {
        "label": "Zinc-lead (sediment-hosted)",
        "commodity": ["Zn", "Pb"],
        "pathfinders": ["Zn", "Pb", "Ag", "Cd", "Ba", "Mn", "Tl", "Hg"],
        "basis": "The haloes of Zn, Pb, Tl and Mn are Large and McGoldrick's (SEDEX, Lady Loretta; Large et al. 2000 "
                 "for the second deposit of the series); Ag, Cd, Ba and Hg are common associates of sediment-hosted "
                 "Zn-Pb not stated as halo elements there.",
        "reference": "Large, R. R. and McGoldrick, P. J. (1998). Lithogeochemical halos and geochemical vectors to "
                     "stratiform sediment hosted Zn-Pb-Ag deposits, 1. Lady Loretta Deposit, Queensland. Journal of "
                     "Geochemical Exploration 63, 37-56.",
    },
    "U": {
        "label": "Uranium",
        "commodity": ["U"],
        "pathfinders": ["U", "Th", "V", "Mo", "Se", "As", "Cu"],
        "basis": "Cuney 2009 classifies uranium deposits and gives no pathfinder list: V, Mo, Se and As are those "
                 "of sandstone (roll-front) deposits, As and Cu of unconformity deposits, Th of magmatic ones.",
        "reference": "Cuney, M. (2009). The extreme diversity of uranium deposits. Mineralium Deposita 44, 3-9.",
    },
}
TARGETS = ["none"] + list(PRESETS)
"""Target choices, ``none`` (no commodity: every element measured widely enough) first."""


def preset_columns(target, elements, names):
    """``(commodity columns, pathfinder columns, missing symbols)`` of a preset among the survey's elements.

    ``elements``: element symbols of the survey's columns; ``names``: those columns (same order).
    """
    if target not in PRESETS:
        raise OreMapError(f"Unknown target '{target}'.", "target", f"Use one of: {', '.join(TARGETS)}.")
    preset = PRESETS[target]
    by_symbol = dict(zip(elements, names))
    commodity = [by_symbol[e] for e in preset["commodity"] if e in by_symbol]
    pathfinders = [by_symbol[e] for e in preset["pathfinders"] if e in by_symbol]
    missing = [e for e in preset["pathfinders"] if e not in by_symbol]
    return commodity, pathfinders, missing
