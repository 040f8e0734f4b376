"""The errors povfarm raises for problems a user can fix.

Each carries a one-line message that names the thing and what to do; the
Invoke tasks turn any of them into a clean non-zero exit.
"""


class PovfarmError(Exception):
    """A problem with the user's input or cluster, reported as one line."""


class InventoryError(PovfarmError):
    """cluster.yaml is missing, does not parse, or holds a bad field."""


class SceneError(PovfarmError):
    """The scene, a file it needs, or POV-Ray's parse of it is wrong."""


class OptionsError(PovfarmError):
    """A render option (size, frames, --args) is not usable."""


class NodeError(PovfarmError):
    """A node cannot be used: unreachable, untrusted, or not provisioned."""


class HostKeyError(NodeError):
    """A node's SSH host key is unknown or has changed."""


class JobError(PovfarmError):
    """A render job cannot go on or be found."""


class ChecksumError(PovfarmError):
    """An ISO image does not match its published checksum."""
