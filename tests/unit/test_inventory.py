from pathlib import Path

import pytest

from fabfile.errors import InventoryError
from fabfile.inventory import load_cluster, parse_cluster

REPO = Path(__file__).resolve().parents[2]


def test_defaults_apply_to_every_node_and_nodes_override_them():
    cluster = parse_cluster(
        """
defaults: {user: farm, port: 2222, workdir: /srv/povfarm, threads: 2}
nodes:
  - {name: crab, host: 192.168.1.12}
  - {name: eagle, host: 192.168.1.13, port: 22, threads: 4}
  - {name: here, transport: local}
"""
    )
    crab, eagle, here = cluster.nodes
    assert (crab.user, crab.port, crab.workdir, crab.threads) == ("farm", 2222, "/srv/povfarm", 2)
    assert (eagle.port, eagle.threads) == (22, 4)
    assert here.is_local and here.address == "local"
    assert crab.address == "farm@192.168.1.12:2222"


@pytest.mark.parametrize(
    "text, message",
    [
        ("nodes: [", "does not parse as YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("nodes: []", "'nodes' must be a non-empty list"),
        ("nodes:\n  - {name: a, host: h, colour: red}", "node 'a': unknown field 'colour'"),
        ("nodes:\n  - {host: h}", "node #1: field 'name' is missing"),
        ("nodes:\n  - {name: a}", "node 'a': field 'host' is missing"),
        ("nodes:\n  - {name: a, host: h}\n  - {name: a, host: g}", "node 'a': duplicate node name"),
        ("nodes:\n  - {name: a, host: h, port: 70000}", "node 'a': field 'port' must be a whole number"),
        ("nodes:\n  - {name: a, host: h, port: ssh}", "field 'port'"),
        ("nodes:\n  - {name: a, host: h, threads: 0}", "field 'threads' must be a whole number of 1 or more"),
        ("nodes:\n  - {name: a, host: 'h; rm -rf /'}", "field 'host' must be an IP address or host name"),
        ("nodes:\n  - {name: a, host: h, workdir: relative}", "field 'workdir' must be an absolute path"),
        ("nodes:\n  - {name: a, host: h, mac: nope}", "field 'mac' must be a MAC address"),
        ("defaults: {colour: red}\nnodes:\n  - {name: a, host: h}", "defaults: unknown field 'colour'"),
        ("extra: 1\nnodes:\n  - {name: a, host: h}", "top level: unknown field 'extra'"),
        ("nodez:\n  - {name: a, host: h}", "unknown field 'nodez'; did you mean 'nodes'?"),
        ("nodes:\n  - {name: a, hots: h}", "unknown field 'hots'; did you mean 'host'? ('host' is missing)"),
        ("defaults: {connect_timout: 3}\nnodes:\n  - {name: a, host: h}", "did you mean 'connect_timeout'?"),
        ("router: {dhcp_start: abc}\nnodes:\n  - {name: a, host: h}", "'dhcp_start' must be a whole number"),
        ("router: {dhcp_start: 300}\nnodes:\n  - {name: a, host: h}", "from 2 to 254"),
        ("router: {lan_ip: 10.0.0.300}\nnodes:\n  - {name: a, host: h}", "lan_ip '10.0.0.300'"),
        ("router: {security: wep}\nnodes:\n  - {name: a, host: h}", "'security' must be one of"),
        ("router: {home_gateway: gw}\nnodes:\n  - {name: a, host: h}", "'home_gateway' must be an IPv4"),
    ],
)
def test_bad_inventories_name_the_node_and_field(text, message):
    with pytest.raises(InventoryError) as caught:
        parse_cluster(text, source="cluster.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("cluster.yaml")


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(InventoryError, match="no such inventory; pass --cluster PATH"):
        load_cluster(tmp_path / "nope.yaml")


def test_shipped_inventories_load():
    embedded = load_cluster(REPO / "cluster.yaml")
    assert [n.transport for n in embedded.nodes] == ["local"]
    nebulae = load_cluster(REPO / "cluster.example.yaml")
    assert [n.name for n in nebulae.nodes] == ["horsehead", "crab", "eagle", "pelican", "tarantula"]
    assert all(n.mac for n in nebulae.nodes)
