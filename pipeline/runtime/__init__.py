"""How the .pyz runs, not what it does: the compiled cache, the heap."""
