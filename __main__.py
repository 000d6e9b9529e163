"""Entry point of redpipe.pyz.

Kept to syntax that Python 2.7 and 3.0-3.8 can still parse, so an interpreter that is too
old prints one clear line instead of a SyntaxError or ImportError from deep inside.
"""

import os
import sys

if sys.version_info < (3, 9):
    sys.stderr.write(
        "redpipe needs Python 3.9 or newer; %s is %s\n"
        % (sys.executable or "this python", sys.version.split()[0])
    )
    sys.exit(1)

from pipeline.runtime.unpack import unpacked

_compiled = unpacked(os.path.dirname(os.path.abspath(__file__)))
if _compiled:
    # Import everything, this package included, from the compiled copy from here on.
    sys.path.insert(0, _compiled)
    for _name in [m for m in sys.modules if m == "pipeline" or m.startswith("pipeline.")]:
        del sys.modules[_name]

from pipeline.cli.main import main  # noqa: E402

sys.exit(main())
