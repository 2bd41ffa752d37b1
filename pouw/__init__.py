"""The PoUW protocol math (docs/protocol.md sections 1-9), pure NumPy + BLAKE3.

Nothing here does I/O, reads a clock or draws randomness: every function is a
deterministic map from bytes and integer matrices to bytes and integer
matrices, so any backend (``kernels``) and any peer can reproduce it exactly.

Reading order for a newcomer: ``hashing`` -> ``matrix`` -> ``merkle`` ->
``commit`` -> ``header`` -> ``seeds`` -> ``noise`` -> ``transcript`` ->
``product`` -> ``certificate`` -> ``verify`` -> ``jobs``.
"""


