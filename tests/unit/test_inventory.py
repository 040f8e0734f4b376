from pathlib import Path

import pytest

from fabfile.errors import InventoryError
from fabfile.inventory import FIELD_RULES, NODE_FIELDS, load_cluster, parse_cluster

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
        ("nodes:\n  - {name: a, host: h, user: ''}", "field 'user' must be a non-empty string"),
        ("nodes:\n  - {name: a, host: h, transport: telnet}", "field 'transport' must be one of ssh, local"),
        ("nodes:\n  - {name: a, host: h, connect_timeout: true}", "field 'connect_timeout' must be a positive"),
        ("nodes:\n  - {name: a, host: h, trust_on_first_use: 1}", "'trust_on_first_use' must be true or false"),
        ("nodes:\n  - {name: a, host: h, packages: [Bad Name]}", "'packages' must be a list of Debian package"),
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


def test_every_node_field_has_a_rule_and_null_unsets_only_optional_ones():
    assert set(FIELD_RULES) == set(NODE_FIELDS)
    node = parse_cluster("nodes:\n  - {name: a, host: h, user: null, threads: null, mac: 00:AA:22:33:44:55,"
                         " connect_timeout: 3, packages: [povray]}").nodes[0]
    assert (node.user, node.threads, node.mac) == (None, None, "00:aa:22:33:44:55")
    assert (node.connect_timeout, node.packages) == (3.0, ("povray",))
    with pytest.raises(InventoryError, match="field 'port' must be"):
        parse_cluster("nodes:\n  - {name: a, host: h, port: null}")


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(InventoryError, match="no such inventory; pass --cluster PATH"):
        load_cluster(tmp_path / "nope.yaml")


def test_shipped_inventories_load():
    embedded = load_cluster(REPO / "cluster.yaml")
    assert [n.transport for n in embedded.nodes] == ["local"]
    nebulae = load_cluster(REPO / "cluster.example.yaml")
    assert [n.name for n in nebulae.nodes] == ["horsehead", "crab", "eagle", "pelican", "tarantula"]
    assert all(n.mac for n in nebulae.nodes)


def test_a_slurm_cluster_names_its_login_node_shared_workdir_and_sbatch_options():
    cluster = parse_cluster(
        """
engine: slurm
login: {host: login.cluster.example, user: me, key: ~/.ssh/id_ed25519}
slurm: {partition: render, time: "00:30:00", cpus_per_task: 4, account: vis}
workdir: /scratch/me/povfarm
"""
    )
    assert cluster.engine == "slurm"
    assert cluster.login.address == "me@login.cluster.example:22"
    assert cluster.login.workdir == "/scratch/me/povfarm"
    assert (cluster.slurm.partition, cluster.slurm.time, cluster.slurm.cpus_per_task, cluster.slurm.account) == (
        "render", "00:30:00", 4, "vis")
    assert parse_cluster("engine: slurm\nlogin: {transport: local}\nworkdir: /shared\n").slurm.cpus_per_task == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("engine: pbs\nnodes: [{name: a, host: h}]", "'engine' must be one of ssh, slurm"),
        ("engine: slurm\nworkdir: /s\n", "'login' must be a mapping"),
        ("engine: slurm\nlogin: {host: h}\n", "'workdir' is missing: a folder the login and compute nodes share"),
        ("engine: slurm\nlogin: {host: h}\nworkdir: /s\nnodes: []", "a Slurm cluster names no nodes"),
        ("engine: slurm\nlogin: {host: h, threads: 2}\nworkdir: /s", "login: unknown field 'threads'"),
        ("engine: slurm\nlogin: {host: h}\nworkdir: /s\nslurm: {partion: a}", "did you mean 'partition'"),
        ("engine: slurm\nlogin: {host: h}\nworkdir: /s\nslurm: {time: soon}", "field 'time' must be a Slurm time"),
        ("engine: slurm\nlogin: {host: h}\nworkdir: /s\nslurm: {cpus_per_task: 0}", "'cpus_per_task' must be"),
        ("engine: slurm\nlogin: {host: h}\nworkdir: /s\nslurm: {partition: ''}", "'partition' must be a non-empty"),
        ("engine: slurm\nlogin: {host: h}\nworkdir: scratch", "field 'workdir' must be an absolute path"),
    ],
)
def test_a_bad_slurm_inventory_names_the_field(text, message):
    with pytest.raises(InventoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cluster(text)
