"""The ``tollhouse`` command line: the composition root that wires every package together.

Nothing imports this package; it imports the others.
"""
