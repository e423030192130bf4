"""Type stub for the Rust extension module `frontrun._native`.

Each subsystem keeps its own section below; edit only yours.
"""

__version__: str
