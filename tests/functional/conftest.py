import pytest

from tests.functional.harness import NodeProcess


@pytest.fixture
def node_factory(tmp_path):
    nodes = []

    def make(name="node", *args, network="regtest", p2p=False, env=None):
        n = NodeProcess(tmp_path / name, *args, network=network, p2p=p2p, env=env)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        n.stop()
