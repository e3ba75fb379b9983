"""Experiments: grids of independent cells run on a Dask cluster into one SQLite results store.

* :mod:`.store`: the results store (SQLite, WAL, one row per cell keyed by the canonical
  JSON of its configuration; resume, export to JSON lines / CSV, migration of the
  JSON-lines results of earlier sweeps);
* :mod:`.execution`: the Dask client (an existing scheduler or a LocalCluster of
  single-threaded workers) and the loop that writes each finished cell;
* :mod:`.scanning`: parameter scans of engine quantities (lambda_G, trainable depth, q*, c*,
  spectrum eigenvalues) over batch size, gamma, beta, eps, sigma_w;
* :mod:`.figures`: the line plot / heatmap of a scan.

See docs/theory.md section 17.  The edge layer: may import every layer of bnsym (numerics,
meanfield, train, plotting, ...) except :mod:`bnsym.cli`; only the CLI and ``bnsym`` import it.
``distributed`` is imported lazily, inside :mod:`.execution`.
"""
