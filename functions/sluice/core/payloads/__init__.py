"""One module per event payload class (the contract, the bases and the wire registry are in
``sluice.core.events``).

Import them from ``sluice.core.events`` as before: a class is created (its dataclass methods
compiled) when a function first uses it, so a function's cold start pays only for the payloads
its first event needs.
"""
