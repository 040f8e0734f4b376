import hashlib

import pytest

from fabfile.errors import ChecksumError
from fabfile.iso import check_iso, parse_sums


@pytest.fixture
def iso(tmp_path):
    path = tmp_path / "ubuntu-24.04-live-server-amd64.iso"
    path.write_bytes(bytes(range(256)) * 9000)  # a few MiB: more than one chunk
    return path


def sums_file(tmp_path, name, algorithm, iso):
    digest = hashlib.new(algorithm, iso.read_bytes()).hexdigest()
    path = tmp_path / name
    # The format Ubuntu publishes: "<digest> *<file>", one per line.
    path.write_text(f"{'0' * len(digest)} *ubuntu-24.04-desktop-amd64.iso\n{digest} *{iso.name}\n")
    return path


@pytest.mark.parametrize("name, algorithm", [("MD5SUMS", "md5"), ("SHA256SUMS", "sha256")])
def test_a_good_image_passes_both_formats(tmp_path, iso, name, algorithm):
    seen = []
    result = check_iso(iso, sums_file(tmp_path, name, algorithm, iso), advance=seen.append)
    assert result.ok and result.algorithm == algorithm
    assert sum(seen) == iso.stat().st_size and len(seen) > 1


@pytest.mark.parametrize("name, algorithm", [("MD5SUMS", "md5"), ("SHA256SUMS", "sha256")])
def test_a_corrupted_image_fails_with_both_digests(tmp_path, iso, name, algorithm):
    sums = sums_file(tmp_path, name, algorithm, iso)
    data = bytearray(iso.read_bytes())
    data[1_000_000] ^= 0xFF
    iso.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=f"{algorithm.upper()} mismatch.*download it again"):
        check_iso(iso, sums)


def test_an_image_not_listed_is_an_error(tmp_path, iso):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'a' * 64} *other.iso\n")
    with pytest.raises(ChecksumError, match="is not listed in"):
        check_iso(iso, sums)


def test_a_digest_given_directly(iso):
    digest = hashlib.md5(iso.read_bytes()).hexdigest()
    assert check_iso(iso, digest=digest.upper()).ok
    with pytest.raises(ChecksumError, match="MD5 mismatch"):
        check_iso(iso, digest="0" * 32)
    with pytest.raises(ChecksumError, match="not an MD5"):
        check_iso(iso, digest="abc")


def test_parse_sums_accepts_text_and_binary_markers():
    assert parse_sums(f"{'b' * 32}  ./a.iso\n# comment\n{'c' * 32} *b.iso\n") == {"a.iso": "b" * 32, "b.iso": "c" * 32}
