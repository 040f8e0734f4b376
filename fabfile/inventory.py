"""The inventory: cluster.yaml loaded and checked into frozen dataclasses.

Every node takes the `defaults:` mapping and may override any field. A
wrong or missing field is an InventoryError naming the node and the field.
A cluster run by Slurm (`engine: slurm`) names no nodes: it names the login
node parts are submitted from, the shared `workdir`, and the `slurm:` options.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fabfile.errors import InventoryError

TRANSPORTS = ("ssh", "local")
ENGINES = ("ssh", "slurm")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAC_PATTERN = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True)
class Node:
    """One render node, with every default already applied."""

    name: str
    host: str = "localhost"
    transport: str = "ssh"
    user: str | None = None
    port: int = 22
    key: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    trust_on_first_use: bool = False
    workdir: str = "/tmp/povfarm"
    povray: str = "povray"
    threads: int | None = None
    packages: tuple[str, ...] = ()
    mac: str | None = None
    connect_timeout: float = 10.0

    @property
    def is_local(self) -> bool:
        return self.transport == "local"

    @property
    def address(self) -> str:
        """Where the node is, for messages: user@host:port or 'local'."""
        if self.is_local:
            return "local"
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class Router:
    """The DD-WRT router in client mode that joins the cluster to the home network."""

    ssid: str = "HomeNetwork"
    security: str = "wpa2-psk"
    lan_ip: str = "192.168.2.1"
    lan_netmask: str = "255.255.255.0"
    dhcp_start: int = 100
    wan_ip: str | None = None
    home_gateway: str | None = None


@dataclass(frozen=True)
class SlurmOptions:
    """How parts are submitted to a Slurm cluster (`engine: slurm`)."""

    partition: str | None = None  # None: the cluster's default partition
    time: str = "01:00:00"  # a task's time limit (sbatch --time): a hung part ends there and is rendered again
    cpus_per_task: int = 1  # POV-Ray's threads in each task
    account: str | None = None
    sbatch: str = "sbatch"  # Slurm's commands on the login node, if not on its PATH
    squeue: str = "squeue"
    scancel: str = "scancel"
    sinfo: str = "sinfo"


@dataclass(frozen=True)
class Cluster:
    """All nodes of one inventory file, in file order; for Slurm, its login node."""

    nodes: tuple[Node, ...]
    source: str = "<embedded>"
    router: Router = field(default_factory=Router)
    router_given: bool = False  # False: the inventory has no router section; the notes use DD-WRT's example LAN
    engine: str = "ssh"
    slurm: SlurmOptions | None = None  # engine: slurm; nodes then holds the login node alone

    @property
    def login(self) -> Node:
        """A Slurm cluster's login node, where povfarm submits and follows its parts."""
        return self.nodes[0]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InventoryError(f"{self.source}: no node named {name!r}")


NODE_FIELDS = {f.name: f for f in fields(Node)}
SLURM_FIELDS = {f.name for f in fields(SlurmOptions)}
LOGIN_FIELDS = ("host", "transport", "user", "port", "key", "known_hosts", "trust_on_first_use", "povray",
                "connect_timeout")
SLURM_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # sbatch --time: minutes, M:S, H:M:S, D-H[:M[:S]]
DEFAULTABLE = set(NODE_FIELDS) - {"name"}
ROUTER_FIELDS = {f.name for f in fields(Router)}
SECURITY_NAMES = ("wpa2-psk", "wpa3-sae", "wpa-psk", "none")  # the modes the router notes know (fabfile.router)


def load_cluster(path: str | Path) -> Cluster:
    """Read and check an inventory file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(
            f"{path}: no such inventory; pass --cluster PATH or copy cluster.yaml"
        ) from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read it: {exc.strerror}") from None
    return parse_cluster(text, source=str(path))


def parse_cluster(text: str, source: str = "<string>") -> Cluster:
    """Check inventory text; `source` names it in messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InventoryError(f"{source}{where}: does not parse as YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{source}: expected a mapping with a 'nodes:' list")
    if data.get("engine", "ssh") == "slurm":
        return _parse_slurm_cluster(data, source)
    if data.get("engine", "ssh") not in ENGINES:
        raise InventoryError(f"{source}: 'engine' must be one of {', '.join(ENGINES)}, not {data['engine']!r}")
    unknown = set(data) - {"defaults", "nodes", "router", "engine"}
    if unknown:
        raise _unknown_field(f"{source}: top level", sorted(unknown)[0], ("defaults", "nodes", "router", "engine"))
    defaults = _mapping(data.get("defaults") or {}, source, "defaults", DEFAULTABLE, "a mapping")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise InventoryError(f"{source}: 'nodes' must be a non-empty list")
    nodes: list[Node] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_nodes, start=1):
        node = _parse_node(raw, defaults, source, index)
        if node.name in seen:
            raise InventoryError(f"{source}: node {node.name!r}: duplicate node name")
        seen.add(node.name)
        nodes.append(node)
    return Cluster(nodes=tuple(nodes), source=source, router=_parse_router(data.get("router"), source),
                   router_given=data.get("router") is not None)


def _parse_slurm_cluster(data: dict, source: str) -> Cluster:
    """engine: slurm: the login node (SSH or local), the shared workdir, sbatch's options."""
    known = ("engine", "login", "slurm", "workdir")
    unknown = set(data) - set(known)
    if unknown:
        note = " (a Slurm cluster names no nodes: Slurm places the parts)" if "nodes" in unknown else ""
        raise _unknown_field(f"{source}: top level", sorted(unknown)[0], known, note)
    login = _mapping(data.get("login"), source, "login", LOGIN_FIELDS,
                     "a mapping: host, user, key (or transport: local)")
    workdir = data.get("workdir")
    if workdir is None:
        raise InventoryError(f"{source}: 'workdir' is missing: a folder the login and compute nodes share")
    node = _parse_node({"name": "login", **login, "workdir": workdir}, {}, source, 1)
    raw = _mapping(data.get("slurm") or {}, source, "slurm", SLURM_FIELDS,
                   "a mapping (partition, time, cpus_per_task, account)")
    where = f"{source}: slurm"
    for key in SLURM_FIELDS - {"cpus_per_task", "time"}:
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InventoryError(f"{where}: field {key!r} must be a non-empty string, not {value!r}")
    time_limit = str(raw.get("time", SlurmOptions.time))
    if not SLURM_TIME.match(time_limit):
        raise InventoryError(f"{where}: field 'time' must be a Slurm time limit such as \"00:30:00\" or "
                             f"\"1-00:00:00\", not {raw['time']!r}")
    cpus = raw.get("cpus_per_task", SlurmOptions.cpus_per_task)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise InventoryError(f"{where}: field 'cpus_per_task' must be a whole number of 1 or more, not {cpus!r}")
    options = SlurmOptions(**{**raw, "time": time_limit, "cpus_per_task": cpus})
    return Cluster(nodes=(node,), source=source, engine="slurm", slurm=options)


def _parse_node(raw: Any, defaults: dict, source: str, index: int) -> Node:
    if not isinstance(raw, dict):
        raise InventoryError(f"{source}: node #{index}: must be a mapping with a 'name'")
    name = raw.get("name")
    label = f"node {name!r}" if isinstance(name, str) else f"node #{index}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InventoryError(
            f"{source}: {label}: field 'name' is missing or not a plain name "
            "(letters, digits, '.', '_', '-')"
        )
    for key in raw:
        if key not in NODE_FIELDS:
            missing = " ('host' is missing)" if "host" not in raw and "transport" not in raw else ""
            raise _unknown_field(f"{source}: {label}", key, NODE_FIELDS, missing)
    merged = {**defaults, **raw}
    values: dict[str, Any] = {}
    for key, value in merged.items():
        values[key] = _check_field(key, value, f"{source}: {label}")
    transport = values.get("transport", "ssh")
    if transport == "ssh" and "host" not in values:
        raise InventoryError(f"{source}: {label}: field 'host' is missing (or set transport: local)")
    return Node(**values)


def _mapping(raw: Any, source: str, name: str, known: Iterable[str], expected: str) -> dict:
    """A section of the inventory that must be a mapping of known fields."""
    if not isinstance(raw, dict):
        raise InventoryError(f"{source}: {name!r} must be {expected}")
    for key in raw:
        if key not in known:
            raise _unknown_field(f"{source}: {name}", key, known)
    return raw


def _unknown_field(where: str, key: object, known: Iterable[str], note: str = "") -> InventoryError:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(sorted(known))}"
    return InventoryError(f"{where}: unknown field {key!r}{hint}{note}")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_whole(value: Any, low: int, high: int | None = None) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int)
            and value >= low and (high is None or value <= high))


def _is_seconds(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def _is_package_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, str) and re.match(r"^[a-z0-9][a-z0-9+.:=~-]*$", p) for p in value)


# A node field: what it must be (for the error), the test, whether it may be null (unset).
_TEXT = ("a non-empty string", _is_text, False)
FIELD_RULES: dict[str, tuple[str, Callable[[Any], bool], bool]] = {
    "name": _TEXT, "host": _TEXT, "povray": _TEXT, "workdir": _TEXT, "known_hosts": _TEXT,
    "user": ("a non-empty string", _is_text, True),
    "key": ("a non-empty string", _is_text, True),
    "transport": ("one of " + ", ".join(TRANSPORTS), lambda v: v in TRANSPORTS, False),
    "port": ("a whole number from 1 to 65535", lambda v: _is_whole(v, 1, 65535), False),
    "threads": ("a whole number of 1 or more", lambda v: _is_whole(v, 1), True),
    "connect_timeout": ("a positive number of seconds", _is_seconds, False),
    "trust_on_first_use": ("true or false", lambda v: isinstance(v, bool), False),
    "packages": ("a list of Debian package names", _is_package_list, False),
    "mac": ("a MAC address like 00:11:22:33:44:55", lambda v: isinstance(v, str) and bool(MAC_PATTERN.match(v)), True),
}
_STORED_AS: dict[str, Callable[[Any], Any]] = {"connect_timeout": float, "packages": tuple, "mac": str.lower}


def _check_field(key: str, value: Any, where: str) -> Any:
    expected, accepts, may_be_null = FIELD_RULES[key]
    if value is None and may_be_null:
        return None
    if not accepts(value):
        raise InventoryError(f"{where}: field {key!r} must be {expected}, not {value!r}")
    if key == "host":
        _check_host(value, where)
    if key == "workdir" and not value.startswith(("/", "~")):
        raise InventoryError(f"{where}: field {key!r} must be an absolute path, not {value!r}")
    return _STORED_AS.get(key, lambda v: v)(value)


def _check_host(host: str, where: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$", host):
        raise InventoryError(f"{where}: field 'host' must be an IP address or host name, not {host!r}")


def _parse_router(raw: Any, source: str) -> Router:
    if raw is None:
        return Router()
    _mapping(raw, source, "router", ROUTER_FIELDS, "a mapping")
    router = Router(**raw)
    where = f"{source}: router"
    try:
        lan = ipaddress.IPv4Interface(f"{router.lan_ip}/{router.lan_netmask}")
    except (TypeError, ValueError):
        raise InventoryError(f"{where}: lan_ip {router.lan_ip!r} / lan_netmask {router.lan_netmask!r} "
                             "is not an IPv4 address and netmask") from None
    last = lan.network.num_addresses - 2
    start = router.dhcp_start
    if isinstance(start, bool) or not isinstance(start, int) or not 2 <= start <= last:
        raise InventoryError(f"{where}: field 'dhcp_start' must be a whole number from 2 to {last} "
                             f"(the last number of the first address handed out), not {router.dhcp_start!r}")
    if not isinstance(router.ssid, str) or not 1 <= len(router.ssid) <= 32:
        raise InventoryError(f"{where}: field 'ssid' must be the home network's name (1-32 characters)")
    if router.security not in SECURITY_NAMES:
        raise InventoryError(f"{where}: field 'security' must be one of {', '.join(SECURITY_NAMES)}")
    for name in ("wan_ip", "home_gateway"):
        value = getattr(router, name)
        try:
            if value is not None:
                ipaddress.IPv4Address(value)
        except ValueError:
            raise InventoryError(f"{where}: field {name!r} must be an IPv4 address, not {value!r}") from None
    return router
