import pytest

from tests.functional.harness import NodeProcess


@pytest.fixture
def node_factory(tmp_path):
    nodes = []

    def make(name="node", *args, network="regtest"):
        n = NodeProcess(tmp_path / name, *args, network=network)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        n.stop()
