#!/usr/bin/env bash
# make demo: OreMap headless with qgis_process on the bundled real AVIRIS-NG tile.
# Runs SAM and fully constrained unmixing against a handful of USGS minerals, and the bundled
# spectral CNN (USGS minerals model, the image resampled to its wavelengths), and writes
# styled outputs (.tif + .qml) and a short summary into demo_output/. Then the geochemical
# prospectivity chain on the real survey in ../shared/data/geochem (scripts/demo_prospectivity.py,
# processing.run): element selection, IDW, ResNet with spatial CV, map, evaluation, into
# demo_output/prospectivity/. Last, Sentinel-2 mine detection (scripts/demo_mines.py): a U-Net and
# a patch classifier trained on scenes with known mines painted into real BigEarthNet backgrounds,
# scored on an unseen scene and on the real patches, into demo_output/mines/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo_output
DATA=test/data
CUBE=$DATA/ang20150420t182808_corr_v1e_img_4200-4210_70-80.img
LIB=$DATA/usgs_minerals.sli
MINERALS="Kaolinite CM9;Alunite GDS84;Muscovite GDS107;Montmorillonite SWy-1;Calcite WS272;Goethite WS222;Hematite GDS27;Lawn_Grass GDS91"
mkdir -p "$OUT"
rm -f "$OUT"/*.tif "$OUT"/*.qml "$OUT"/*.json

echo "OreMap demo: $(basename "$CUBE") (real AVIRIS-NG reflectance, 432 bands) vs USGS splib07 minerals"
qgis_process --json run oremap:sam_classify -- \
  INPUT="$CUBE" LIBRARY="$LIB" SPECTRA="$MINERALS" METHOD=0 THRESHOLD=0.25 \
  OUTPUT_CLASSES="$OUT/sam_classes.tif" OUTPUT_SCORE="$OUT/sam_angle.tif" > "$OUT/sam_run.json"
qgis_process --json run oremap:unmix_fcls -- \
  INPUT="$CUBE" LIBRARY="$LIB" SPECTRA="$MINERALS" MODE=1 \
  OUTPUT="$OUT/abundances_closed.tif" > "$OUT/unmix_closed_run.json"
qgis_process --json run oremap:unmix_fcls -- \
  INPUT="$CUBE" LIBRARY="$LIB" SPECTRA="$MINERALS" MODE=0 \
  OUTPUT="$OUT/abundances_fcls.tif" > "$OUT/unmix_fcls_run.json"
qgis_process --json run oremap:classify_spectral_cnn -- \
  INPUT="$CUBE" MODEL=0 MIN_CONFIDENCE=0.5 \
  OUTPUT_CLASSES="$OUT/cnn_classes.tif" OUTPUT_CONFIDENCE="$OUT/cnn_confidence.tif" > "$OUT/cnn_run.json"
.venv/bin/python scripts/demo_summary.py "$OUT" | tee "$OUT/summary.txt"

echo
echo "OreMap demo: geochemical prospectivity on the GSWA/WAMEX stream-sediment survey (1,392 samples, 32 Au sites)"
.venv/bin/python scripts/demo_prospectivity.py "$OUT/prospectivity"

echo
echo "OreMap demo: Sentinel-2 mine detection (synthetic mines in real BigEarthNet backgrounds)"
.venv/bin/python scripts/demo_mines.py "$OUT/mines"
echo "Outputs in $OUT/, $OUT/prospectivity/ and $OUT/mines/ (open the .tif files in QGIS: each loads with its .qml style)."
