"""dentsynth: the library behind the DVC stages (one sub-package per stage family; see README)."""
