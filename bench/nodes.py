"""sshd nodes on this machine's loopback addresses for a benchmark, and their inventory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.sshnodes import SshCluster


@contextmanager
def loopback_nodes(prefix: str, nodes: int) -> Iterator[tuple[Path, Path]]:
    """A work folder and the inventory of `nodes` sshd nodes (each pinned to a core), stopped after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        work = Path(temporary)
        cluster = SshCluster(work / "cluster", nodes).start()
        try:
            inventory = work / "nodes.yaml"
            inventory.write_text(cluster.inventory())
            yield work, inventory
        finally:
            cluster.stop()
