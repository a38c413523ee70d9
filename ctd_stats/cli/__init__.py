"""The ``ctd`` command line: :mod:`.entry` (parser, dispatch) and one module per sub-command."""
