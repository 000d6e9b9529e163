"""Entry point of redpipe.pyz.

Kept to syntax that Python 2.7 and 3.0-3.8 can still parse, so an interpreter that is too
old prints one clear line instead of a SyntaxError or ImportError from deep inside.
"""

import sys

if sys.version_info < (3, 9):
    sys.stderr.write(
        "redpipe needs Python 3.9 or newer; %s is %s\n"
        % (sys.executable or "this python", sys.version.split()[0])
    )
    sys.exit(1)

from pipeline.cli import main

sys.exit(main())
