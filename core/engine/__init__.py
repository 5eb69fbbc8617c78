"""The engine: shared machinery every OreMap domain builds on.

What lives here: the raster block engine (``raster``), atomic file writing (``files``),
progress and cancel (``feedback``), errors, optional dependencies and compute devices
(``dependencies``, ``compute``), the one torch training loop every network uses (``torch_training``), the model format and the model library (``model_format``,
``onnx_ensemble``, ``bundled``, ``model_library``), HTML reports and colours (``report``,
``colors``), band metadata (``wavelengths``, used by hyperspectral and Sentinel-2),
pixels under points and polygons (``sampling``), accuracy assessment of any class map
(``accuracy``: the evaluation home for class maps, used by every domain that maps
classes), and numerical pieces that two domains share: compositional data (``compositional``:
abundance and geochemistry), the FCLS solver (``unmixing``: hyperspectral maps and
abundance ensembles), spectral preprocessing and the 1D spectral CNN (``spectra``,
``spectral_network``: the spectral classifier and the abundance regressor) and the
name-matching rules (``names``: spectral libraries and accuracy legends).

What it may import: itself and third-party libraries only; never a domain subpackage
(``hyperspectral``, ``abundance``, ``geochemistry``, ``sentinel2``) and never qgis.
"""
