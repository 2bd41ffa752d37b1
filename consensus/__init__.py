"""Chain rules of consensus v1 (docs/protocol.md section 10), pure.

Plain functions over frozen dataclasses: no I/O, no clock, no randomness; the
time and the network parameters come in as arguments. Imports only ``pouw``,
``cryptography`` and the standard library.

Reading order for a newcomer: ``types`` -> ``codec`` -> ``address`` -> ``keys``
-> ``networks`` -> ``genesis`` -> ``tx`` -> ``difficulty`` -> ``validation`` ->
``state`` -> ``forkchoice`` -> ``assemble``; errors are in ``errors``.
"""
