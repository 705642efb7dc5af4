"""pycrate runtime modules generated from ../asn1/*.asn1 (data; do not edit)."""
