"""The ISO check: hash a downloaded image against the sums its publisher lists.

Ubuntu publishes MD5SUMS and SHA256SUMS files with lines like
`<hex digest> *ubuntu-24.04-live-server-amd64.iso`. The image is hashed in
1 MiB chunks, so a 3 GB file costs no memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fabfile.errors import ChecksumError

CHUNK = 1 << 20
ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
SUM_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{32,128})\s+\*?(?P<name>.+?)\s*$")


@dataclass(frozen=True)
class IsoCheck:
    path: Path
    algorithm: str
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def parse_sums(text: str) -> dict[str, str]:
    """File name -> digest from a *SUMS file ('-' and '#' lines skipped)."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        match = SUM_LINE.match(line.strip())
        if match and len(match.group("digest")) in ALGORITHMS:
            name = match.group("name").lstrip("./")
            sums[name] = match.group("digest").lower()
    return sums


def algorithm_of(digest: str) -> str:
    try:
        return ALGORITHMS[len(digest)]
    except KeyError:
        raise ChecksumError(f"{digest!r} is not an MD5, SHA-1, SHA-256 or SHA-512 digest") from None


def expected_digest(iso: Path, sums_file: Path | None, digest: str | None) -> str:
    if digest:
        if not re.fullmatch(r"[0-9a-fA-F]+", digest):
            raise ChecksumError(f"{digest!r} is not a hexadecimal digest")
        algorithm_of(digest)
        return digest.lower()
    if sums_file is None:
        raise ChecksumError("give the published sums with --sums MD5SUMS (or SHA256SUMS), or a digest with --md5")
    try:
        sums = parse_sums(sums_file.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        raise ChecksumError(f"{sums_file}: no such sums file") from None
    if not sums:
        raise ChecksumError(f"{sums_file}: no '<digest> <file name>' lines in it; is it a *SUMS file?")
    if iso.name not in sums:
        raise ChecksumError(
            f"{iso.name} is not listed in {sums_file} (it lists {', '.join(sorted(sums)[:3])}...); "
            "check that the sums belong to this release"
        )
    return sums[iso.name]


def hash_file(path: Path, algorithm: str, advance: Callable[[int], None] | None = None) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if advance:
                advance(len(chunk))
    return digest.hexdigest()


def check_iso(
    iso: Path, sums_file: Path | None = None, digest: str | None = None, advance: Callable[[int], None] | None = None
) -> IsoCheck:
    """Hash the image and compare; a mismatch is a ChecksumError."""
    if not iso.is_file():
        raise ChecksumError(f"{iso}: no such image file")
    expected = expected_digest(iso, sums_file, digest)
    algorithm = algorithm_of(expected)
    actual = hash_file(iso, algorithm, advance)
    result = IsoCheck(iso, algorithm, expected, actual)
    if not result.ok:
        raise ChecksumError(
            f"{iso.name}: {algorithm.upper()} mismatch (expected {expected}, got {actual}); "
            "the image is corrupt or incomplete: download it again"
        )
    return result
