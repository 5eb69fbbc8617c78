"""Scale-out: the mapping algorithms of the domains over many scenes and large rasters on a Dask cluster.

What lives here: ``batch`` (scenes and row ranges as Dask tasks that read and write through the block
engine themselves, parts assembled atomically, resume, models sent as files or bytes, never pickled).

What it may import: the engine and every domain (it runs their per-pixel algorithms). Nothing else in
``core`` imports it: it is the layer above the domains, as the Processing algorithms are.
"""
