"""A synthetic regional stream-sediment survey over an Archaean granite-greenstone terrane with orogenic gold.

A second check, beside the real area1 survey, for the default anomaly score (``bench/bench_anomaly_default.py``,
``test/test_geochem_anomaly.py``). Built from geology, not from area1's deposits or scores:

* **Lithology.** Granite-gneiss with two sinuous north-south greenstone belts (about a quarter of the area), as
  in the Yilgarn Craton. Granite-derived sediment carries more rare earths, Y, Th, U, Rb, Cs, Zr, Ba, Li, Ga;
  greenstone-derived sediment more Ni, Cr, Co, Cu, Mg, Fe, Sc, Ti, Mn, Zn (and a little more As, Au). The log10
  differences between the two (0.1-0.5) are of the order of the felsic/mafic contrasts of crustal averages
  (Rudnick and Gao 2003).
* **Regional variation.** Smooth random fields (about 8 km correlation: catchments, regolith) on four factors:
  felsic, mafic, regolith iron-oxide scavenging (Fe, Mn, As, Pb, Mo, Cu, Zn, Ga, Se) and carbonate/evaporite
  (Ca, Sr, Mg, Br, I). Rare earths share one factor tightly (their chondrite-normalised pattern is smooth).
* **Gold systems.** Sites only in the greenstone belts (orogenic gold is greenstone-hosted: Groves et al. 1998),
  each with a dispersion train: a log10 enrichment decaying as exp(-d / 1 km), strongest in Au, then As, Sb, W,
  Bi, Te, Ag, Hg, Mo (the pathfinder suite of Eilu and Groves 2001), with a weak sericite signal (Rb, Ba, Cs).
  Gold carries a large nugget noise.
* **Laboratory.** Values rounded to the reporting resolution, values below the detection limit stored as minus
  the detection limit, a fifth of the samples (an older campaign in the west) analysed only for a short suite
  (-9999 elsewhere), as in GSWA compilations.

Coordinates: metres in a UTM-like CRS (EPSG:32750 area); element fields ``<El>_ppm`` (Pd in ppb).
"""

import numpy as np
import pandas as pd

#: element -> (median level in granite terrain (ppm; Pd ppb), detection limit, reporting resolution)
LEVELS = {
    "Au": (0.002, 0.001, 0.001), "Ag": (0.05, 0.02, 0.01), "As": (5.0, 0.5, 0.5), "Sb": (0.3, 0.1, 0.05),
    "W": (1.0, 0.5, 0.1), "Bi": (0.2, 0.05, 0.01), "Te": (0.02, 0.01, 0.01), "Hg": (0.02, 0.01, 0.01),
    "Mo": (1.0, 0.2, 0.1), "Pb": (15.0, 1.0, 1.0), "Zn": (40.0, 2.0, 1.0), "Cu": (20.0, 1.0, 0.5),
    "Ni": (30.0, 1.0, 1.0), "Co": (12.0, 0.5, 0.5), "Cr": (80.0, 2.0, 1.0), "Mg": (5000.0, 50.0, 10.0),
    "Fe": (30000.0, 100.0, 10.0), "Sc": (10.0, 0.5, 0.1), "Ti": (3000.0, 20.0, 10.0), "Mn": (400.0, 5.0, 1.0),
    "Ca": (3000.0, 50.0, 10.0), "Sr": (80.0, 1.0, 0.5), "Br": (5.0, 0.5, 0.1), "I": (2.0, 0.5, 0.1),
    "Se": (0.3, 0.1, 0.05), "Pd": (2.0, 1.0, 0.5), "Ba": (300.0, 5.0, 1.0), "Li": (15.0, 1.0, 0.5),
    "Ga": (15.0, 0.5, 0.1), "Rb": (80.0, 0.5, 0.1), "Cs": (3.0, 0.1, 0.05), "Zr": (250.0, 1.0, 0.5),
    "Th": (12.0, 0.1, 0.05), "U": (2.5, 0.05, 0.01), "Y": (20.0, 0.1, 0.05),
    "La": (30.0, 0.1, 0.05), "Ce": (60.0, 0.1, 0.05), "Pr": (7.0, 0.05, 0.01), "Nd": (25.0, 0.1, 0.05),
    "Sm": (5.0, 0.05, 0.01), "Eu": (1.0, 0.02, 0.01), "Gd": (4.0, 0.05, 0.01), "Tb": (0.7, 0.02, 0.01),
    "Dy": (4.0, 0.05, 0.01), "Ho": (0.8, 0.02, 0.01), "Er": (2.3, 0.05, 0.01), "Tm": (0.35, 0.02, 0.01),
    "Yb": (2.2, 0.05, 0.01), "Lu": (0.33, 0.02, 0.01),
}
REE = ["La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"]
#: log10(greenstone) - log10(granite) terrain
GREENSTONE_SHIFT = dict({e: -0.35 for e in REE}, Y=-0.3, Th=-0.4, U=-0.3, Rb=-0.4, Cs=-0.3, Zr=-0.2, Ga=-0.1,
                        Ba=-0.2, Li=-0.15, Ni=0.5, Cr=0.5, Co=0.35, Cu=0.3, Mg=0.3, Fe=0.15, Sc=0.3, Ti=0.2,
                        Mn=0.15, Zn=0.15, As=0.15, Au=0.1)
#: loadings (log10 per unit of the factor) on the felsic, mafic, regolith and carbonate factors
LOADINGS = {
    "felsic": dict({e: 0.15 for e in REE}, Y=0.13, Th=0.15, U=0.12, Rb=0.12, Cs=0.1, Zr=0.1, Ba=0.08, Li=0.06,
                   Ga=0.05),
    "mafic": dict(Ni=0.2, Cr=0.2, Co=0.15, Cu=0.12, Mg=0.12, Fe=0.08, Sc=0.1, Ti=0.08, Mn=0.08, Zn=0.06),
    "regolith": dict(Fe=0.12, Mn=0.15, As=0.15, Pb=0.1, Mo=0.1, Cu=0.08, Zn=0.1, Ga=0.06, Se=0.1, Sb=0.06),
    "carbonate": dict(Ca=0.25, Sr=0.2, Mg=0.1, Br=0.2, I=0.2),
}
#: element-specific (sampling + analytical) noise, log10 sd; default 0.12
NOISE = dict({e: 0.03 for e in REE}, Au=0.35, Ag=0.2, Hg=0.15, Te=0.15, Pd=0.2, Sb=0.15, Bi=0.15, W=0.15)
#: log10 enrichment at a gold site, relative to Au (times the site's strength)
HALO = dict(Au=1.0, As=0.6, Sb=0.45, W=0.3, Bi=0.35, Te=0.35, Ag=0.35, Hg=0.25, Mo=0.2, Pb=0.1, Cu=0.1,
            Rb=0.08, Ba=0.08, Cs=0.08)
SHORT_SUITE = ["Au", "As", "Cu", "Pb", "Zn", "Ni", "Co", "Fe"]
HALO_LENGTH = 1000.0
WIDTH, HEIGHT = 60000.0, 40000.0


def _smooth_field(rng, x, y, length=8000.0, n_waves=24):
    """A zero-mean, unit-variance Gaussian random field from random plane waves (correlation ~ ``length``)."""
    k = rng.standard_normal((n_waves, 2)) / length
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    return np.sqrt(2.0 / n_waves) * np.cos(2 * np.pi * (np.outer(x, k[:, 0]) + np.outer(y, k[:, 1])) + phase).sum(1)


def greenstone(x, y, seed):
    """True where the position lies in one of the two sinuous north-south greenstone belts."""
    rng = np.random.default_rng(seed + 1000)
    belt = np.zeros(np.shape(x), bool)
    for centre in (0.3 * WIDTH, 0.7 * WIDTH):
        amp, wavelength, phase = rng.uniform(1500, 3000), rng.uniform(15000, 30000), rng.uniform(0, 2 * np.pi)
        axis = centre + amp * np.sin(2 * np.pi * np.asarray(y) / wavelength + phase)
        belt |= np.abs(np.asarray(x) - axis) < 0.075 * WIDTH
    return belt


def survey(n=1500, n_sites=12, seed=0):
    """``(table, x, y, sites)``: a DataFrame of ``<El>_ppm`` fields (Pd_ppb), sample and site coordinates (m)."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, WIDTH, n), rng.uniform(0, HEIGHT, n)
    belt = greenstone(x, y, seed)
    # gold sites: in the belts, at least 3 km apart
    sites = []
    while len(sites) < n_sites:
        sx, sy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        if greenstone(np.array([sx]), np.array([sy]), seed)[0] and all(
                np.hypot(sx - a, sy - b) >= 3000 for a, b in sites):
            sites.append((sx, sy))
    sites = np.array(sites)
    strength = rng.uniform(0.5, 1.2, n_sites)
    d = np.hypot(x[:, None] - sites[None, :, 0], y[:, None] - sites[None, :, 1])
    halo = (strength[None, :] * np.exp(-d / HALO_LENGTH)).max(axis=1)
    factors = {name: _smooth_field(rng, x, y) for name in LOADINGS}
    table = {}
    for element, (level, limit, resolution) in LEVELS.items():
        log = np.log10(level) + GREENSTONE_SHIFT.get(element, 0.0) * belt
        for name, field in factors.items():
            log = log + LOADINGS[name].get(element, 0.0) * field
        log = log + HALO.get(element, 0.0) * halo + NOISE.get(element, 0.12) * rng.standard_normal(n)
        value = np.round(10 ** log / resolution) * resolution
        value = np.where(value < limit, -limit, value)
        unit = "ppb" if element == "Pd" else "ppm"
        table[f"{element}_{unit}"] = value
    table = pd.DataFrame(table)
    old = x < 0.17 * WIDTH                                        # an older campaign: the short suite only
    for column in table.columns:
        if column.split("_")[0] not in SHORT_SUITE:
            table.loc[old, column] = -9999.0
    return table, x, y, sites
