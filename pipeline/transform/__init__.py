"""Transform, pure: listing items in, rows of plain Python values out; no I/O, no SQL."""
