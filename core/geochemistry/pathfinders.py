"""Commodity presets: the elements a geochemist looks at first when exploring for a commodity.

Each preset names the commodity element(s) (scored by ``target``) and its pathfinder set (the
enrichment index and the multivariate scores), from the literature cited with it. They are fixed
here, from ore-deposit geochemistry; never chosen from a survey's known deposits.

``basis`` says honestly how far the cited work supports the list: which elements it names, and which come from
general practice for the deposit type and were not found in its text (checked in December 2026 against the
abstracts, first pages and companion papers we could reach, not every full text). Every preset but Au lists only
elements a source read names; Au keeps Bi, Mo and Hg, which its source does not name, pending a decision (its
figures in the README depend on Hg).
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
        "pathfinders": ["Ni", "Cu", "Co", "Pt", "Pd", "Ir", "S"],
        "basis": "Ni, Cu and the platinum-group elements (Pt, Pd, Ir) are the ore metals (Schulz et al. 2014); Ni, "
                 "Cu and Co tell nickel-sulphide gossans from others, and Pd and Ir, which follow Ni and survive "
                 "weathering, settle the doubtful ones (Roberts and Travis 1986; Travis et al. 1976); S as in komatiite "
                 "lithogeochemistry (Le Vaillant et al. 2014). Cr and Mg are left out: they mark the ultramafic host, "
                 "and barren komatiite sequences carry more Cr, so a high value is no sign of ore.",
        "reference": "Schulz, K. J. et al. (2014). Occurrence model for magmatic sulfide-rich nickel-copper-"
                     "(platinum-group element) deposits related to mafic and ultramafic dike-sill complexes. USGS "
                     "Scientific Investigations Report 2010-5070-I; Roberts, D. E. and Travis, G. A. (1986). "
                     "Microtextural evaluation of nickel sulphide gossans in Western Australia. Transactions of the "
                     "Royal Society of Edinburgh: Earth Sciences; Travis, G. A., Keays, R. R. and Davison, R. M. "
                     "(1976). Palladium and iridium in the evaluation of nickel gossans in Western Australia. "
                     "Economic Geology 71, 1229-1243.",
    },
    "W": {
        "label": "Tungsten (skarn, greisen, veins)",
        "commodity": ["W"],
        "pathfinders": ["W", "Sn", "Mo", "Bi", "As", "Cu", "F", "Be"],
        "basis": "The USGS models of Sn-W skarns (14a-c) and of Sn-W veins and greisens (15a-c) name Sn, W and Be "
                 "minerals with molybdenite, bismuthinite, arsenopyrite, stannite (Cu), fluorite and beryl; till and "
                 "stream sediments around the Sisson W-Mo deposit carry W and Mo with Ag, As, Bi, Cd, Cu, In, Pb, Te "
                 "and Zn (McClenaghan et al. 2017). F and Be are supported through their minerals only.",
        "reference": "du Bray, E. A. (ed.) (1995). Preliminary compilation of descriptive geoenvironmental mineral "
                     "deposit models. USGS Open-File Report 95-831 (models 14a-c, Hammarstrom et al.; 15a-c, "
                     "Elliott et al.); McClenaghan, M. B. et al. (2017). Indicator mineral and geochemical signatures "
                     "associated with the Sisson W-Mo deposit, New Brunswick, Canada. Geochemistry: Exploration, "
                     "Environment, Analysis 17(4), 297.",
    },
    "Li": {
        "label": "Lithium (LCT pegmatites)",
        "commodity": ["Li"],
        "pathfinders": ["Li", "Cs", "Rb", "Ta", "Sn", "Be", "B", "P", "F"],
        "basis": "The LCT family is marked by Li, Cs and Ta besides Rb, Be, Sn, B, P and F (Černý and Ercit 2005); "
                 "Li, Cs, Ta, Sn and Be are its ore minerals' (Bradley et al. 2017). Nb (a mark of the other, NYF, "
                 "family) and Ga are left out: neither source names them for LCT pegmatites.",
        "reference": "Černý, P. and Ercit, T. S. (2005). The classification of granitic pegmatites revisited. "
                     "Canadian Mineralogist 43, 2005-2026; Bradley, D. C., McCauley, A. D. and Stillings, L. M. "
                     "(2017). Mineral-deposit model for lithium-cesium-tantalum pegmatites. USGS Scientific "
                     "Investigations Report 2010-5070-O.",
    },
    "REE": {
        "label": "Rare earth elements (carbonatite, alkaline, ion-adsorption)",
        "commodity": ["La", "Ce", "Pr", "Nd"],
        "pathfinders": ["La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Y", "Th", "Nb", "P", "Ba", "Sr"],
        "basis": "Carbonatite deposits are rich in the light REE (La, Ce, Pr, Nd), with Nb, phosphate (P) and barite "
                 "(Ba) mined beside them and Sr and Th enriched (Verplanck et al. 2014); alkaline silicate complexes "
                 "hold the heavy REE and Y (Dostal 2017). Sm, Eu, Gd, Tb and Dy, the series between, are named "
                 "only as REE. Ion-adsorption clays carry none of the associates.",
        "reference": "Verplanck, P. L., Van Gosen, B. S., Seal, R. R. and McCafferty, A. E. (2014). A deposit model "
                     "for carbonatite and peralkaline intrusion-related rare earth element deposits. USGS Scientific "
                     "Investigations Report 2010-5070-J; Dostal, J. (2017). Rare earth element deposits of alkaline "
                     "igneous rocks. Resources 6, 34.",
    },
    "ZnPb": {
        "label": "Zinc-lead (sediment-hosted)",
        "commodity": ["Zn", "Pb"],
        "pathfinders": ["Zn", "Pb", "Ag", "Tl", "Mn", "Ba"],
        "basis": "At HYC a Zn, Pb and Tl halo runs 15 km along strike and a Mn-carbonate halo further (Large et al. "
                 "2000, the second of the series Large and McGoldrick 1998 began at Lady Loretta); Ag is mined with "
                 "Zn and Pb, and barite (Ba) marks some deposits and not others (USGS model 31a, Kelley et al.). "
                 "Cd and Hg, associates of sphalerite, are left out: no source read names them as halo elements.",
        "reference": "Large, R. R., Bull, S. W. and McGoldrick, P. J. (2000). Lithogeochemical halos and geochemical "
                     "vectors to stratiform sediment hosted Zn-Pb-Ag deposits, 2. HYC deposit, McArthur River, "
                     "Northern Territory. Journal of Geochemical Exploration 68, 105-126; Large, R. R. and "
                     "McGoldrick, P. J. (1998). Lithogeochemical halos and geochemical vectors to stratiform sediment "
                     "hosted Zn-Pb-Ag deposits, 1. Lady Loretta Deposit, Queensland. Journal of Geochemical "
                     "Exploration 63, 37-56.",
    },
    "U": {
        "label": "Uranium (sandstone, unconformity)",
        "commodity": ["U"],
        "pathfinders": ["U", "V", "Mo", "Se", "As", "Cu", "Ni", "Co", "Pb", "Th"],
        "basis": "Sandstone uranium comes with Mo, Se, V and As, and Th is enriched in the Grants ore zones (Brookins "
                 "et al. 1977); unconformity uranium is traced by Cu, As, Ni, Co and Pb (and B) in sandstone and "
                 "till (Jefferson et al. 2007). Cuney 2009 classifies the deposits and gives no list.",
        "reference": "Brookins, D. G. et al. (1977). AAPG Search and Discovery abstract 90969 (uranium of the Grants "
                     "mineral belt); Jefferson, C. W. et al. (2007). Unconformity-associated uranium deposits of the "
                     "Athabasca Basin, Saskatchewan and Alberta. Geological Association of Canada, Mineral Deposits "
                     "Division, Special Publication 5; Cuney, M. (2009). The extreme diversity of uranium deposits. "
                     "Mineralium Deposita 44, 3-9.",
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
