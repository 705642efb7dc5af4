"""Data files of the radio model (fitted BLER curves); a package so that wheels carry them."""
