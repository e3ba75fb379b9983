"""Run a benchmark's workload in a fresh Python process, so that no import, cache or hint of the
parent (or of another workload) is shared (used by bench_gmpy.py and bench_split.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def fresh_process(code, *argv, env=None):
    """Run ``code`` with ``sys.executable -c`` and the arguments ``argv``, BLAS pinned to one thread
    (``OPENBLAS_NUM_THREADS=1``) and the environment changed by ``env`` (a value of None removes the
    variable); return the JSON object the child prints on its last line of output."""
    child_env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    done = subprocess.run([sys.executable, "-c", code, *map(str, argv)], env=child_env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
