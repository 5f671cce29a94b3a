"""Per-file evidence extractors: bytes of one blob in, columnar rows out.

Extractors never import or execute the code they read: ``ast`` and ``symtable`` only parse.
"""
