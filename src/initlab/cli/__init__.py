"""The ``initlab`` command line (a thin shell over the library)."""
