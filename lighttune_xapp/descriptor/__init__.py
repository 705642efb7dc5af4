"""The default xApp descriptor shipped inside the package.

``config-file.json`` and ``schema.json`` here are byte-for-byte copies of the checkout's
``xapp-descriptor/`` files (``tests/test_packaging.py`` checks it), so that an installed
package (``pip install .``) finds a descriptor without a checkout: the local xApp and
``lighttune-demo`` use it when neither ``--config`` nor ``$CONFIG_FILE`` names one.
"""
