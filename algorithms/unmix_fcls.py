"""oremap:unmix_fcls - fully constrained linear spectral unmixing."""

from ..core.hyperspectral import mapping
from .base import OreMapAlgorithm
from . import styles

MODES = [
    ("fcls", "Fully constrained: abundances >= 0 and summing exactly to 1"),
    ("nn_closed", "Non-negative, then closed to sum 1 (scale-invariant, for shade or brightness differences)"),
]


class UnmixFcls(OreMapAlgorithm):
    NAME = "unmix_fcls"
    DISPLAY_NAME = "Fully constrained linear unmixing"
    GROUP = "abundance"
    TAGS = "fcls,unmixing,abundance,endmember,linear mixing,hyperspectral,nnls"
    HELP = (
        "Estimates, for every pixel, the fractions of a set of endmember spectra whose linear mixture best "
        "reproduces the pixel spectrum (least squares), with the fractions non-negative and summing to one. "
        "The solver is exact (an active-set method whose optimality conditions are checked) and works on "
        "all pixels of a block at once.\n\n"
        "Strict mode assumes the endmembers have the brightness of the image (same calibration, no shade). "
        "When they do not (laboratory spectra against a shaded scene, say) use the non-negative-then-closed "
        "mode: a non-negative fit with free scale, divided by its sum, which does not depend on brightness.\n\n"
        "Endmembers come from a spectral library (resampled by wavelength to the image's bands) or from "
        "named points on the raster.")
    PARAM_HELP = {
        "INPUT": "Hyperspectral reflectance raster with band wavelengths in its metadata (or under the "
                 "advanced wavelength parameter when endmembers come from a library).",
        "LIBRARY": "The endmember spectra, at least 2, in one file: ENVI spectral library (.sli with .hdr) or CSV (a "
                   "wavelength column in nm or micrometres, then one column per spectrum, or one spectrum per row). "
                   "A one-spectrum file (.sed, .sig, ASD text export, ECOSTRESS, splib07 ASCII) cannot serve: "
                   "combine such spectra into one CSV or ENVI library first. Leave empty when using endmember "
                   "points.",
        "SPECTRA": "Names of the library spectra to use as endmembers (at least 2; ';' or ',' separated; "
                   "a unique start of a name is enough). Empty: every spectrum of the library.",
        "MODE": "Strict fully constrained, or non-negative then closed (scale-invariant).",
        "SCALE": "Divisor turning stored values into reflectance (10000 for 0-10000 integers), 0 = "
                 "automatic (see the log). Strict mode needs reflectance on the scale of the endmembers.",
    }
    OUTPUT_HELP = {
        "OUTPUT": "Float32 raster: one abundance band per endmember (0-1, band names = endmember names), then "
                  "residuals, root-mean-square over the bands in reflectance units. Strict mode: one band "
                  "'RMSE (fully constrained fit)', how far the abundances times the endmembers are from the pixel "
                  "(high values point at missing endmembers, or at image and endmembers on different brightness "
                  "scales: the log then suggests the scale-invariant mode). Non-negative-then-closed mode: two "
                  "bands. 'RMSE (non-negative fit)' is the residual of the non-negative fit before closure, whose "
                  "brightness is free: it measures how well the endmembers' shapes explain the pixel. 'RMSE "
                  "(closed abundances)' is the residual of the closed abundances themselves times the endmembers: "
                  "it also contains the brightness difference between pixel and endmembers (shade, calibration), "
                  "so it is large on a dark or bright scene even when the proportions are right.",
        "VALID_PIXELS": "Number of valid (not nodata) pixels processed.",
    }
    REFERENCES = [
        "Heinz, D. C. and Chang, C.-I. (2001). Fully constrained least squares linear spectral mixture "
        "analysis method for material quantification in hyperspectral imagery. IEEE TGRS 39(3), 529-545.",
        "Lawson, C. L. and Hanson, R. J. (1974). Solving Least Squares Problems. Prentice-Hall.",
        "Keshava, N. and Mustard, J. F. (2002). Spectral unmixing. IEEE Signal Processing Magazine 19(1), 44-57.",
    ]

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_raster_input()
        self.add_library_parameters(optional=True)
        self.add_endmember_points()
        self.add_enum("MODE", "Constraint", [label for _, label in MODES])
        self.add_band_parameters()
        self.add_raster_output("OUTPUT", "Abundances")
        self.add_value_output("VALID_PIXELS", "Pixels unmixed (valid pixels)")

    def process(self, parameters, context, feedback):
        raster, layer = self.raster_path(parameters, "INPUT", context)
        endmembers, band_info, image_bands, (nodata, scale) = self.reference_spectra(
            parameters, context, feedback, raster, layer)
        if image_bands is None and endmembers.n_spectra < 2:
            if self.parameterAsString(parameters, "SPECTRA", context).strip():   # the names chosen leave one spectrum
                raise self.fail("SPECTRA", f"{endmembers.n_spectra} spectrum is named; unmixing needs at least 2 "
                                           "endmembers.", "Name two spectra of the library or more (';' separated), "
                                                          "or leave SPECTRA empty to use them all.")
            raise self.fail("LIBRARY", f"The library holds {endmembers.n_spectra} spectrum; unmixing needs at least "
                                       "2 endmembers.",
                            "A one-spectrum file cannot serve as an endmember library: combine the spectra into one "
                            "CSV or ENVI library, or use endmember POINTS.")
        out_path = self.output_path(parameters, "OUTPUT", context, feedback)
        stats = mapping.unmix_map(
            raster, endmembers, out_path, mode=MODES[self.parameterAsEnum(parameters, "MODE", context)][0],
            band_info=band_info, image_bands=image_bands, scale=scale, nodata=nodata,
            memory_mb=self.memory_mb(), feedback=feedback)
        for name, value in stats["mean_abundance"].items():
            feedback.info(f"  mean abundance {name}: {value:.3f}")
        if "mean_closed_rmse" in stats:
            feedback.info(f"  mean RMSE of the non-negative fit: {stats['mean_rmse']:.4g}; of the closed abundances: "
                          f"{stats['mean_closed_rmse']:.4g}")
        else:
            feedback.info(f"  mean RMSE of the fully constrained fit: {stats['mean_rmse']:.4g}")
        # show the endmember with the largest mean abundance first; the user switches bands in the style panel
        self.style_output(context, out_path, styles.abundance_ramp(stats["mean_abundance"], 1.0))
        return {"OUTPUT": out_path, "VALID_PIXELS": stats["valid_pixels"]}
