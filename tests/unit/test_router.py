from pathlib import Path

from fabfile.inventory import load_cluster, parse_cluster
from fabfile.router import router_notes

REPO = Path(__file__).resolve().parents[2]


def test_notes_for_the_nebula_farm_list_every_lease_and_the_nvram_commands():
    notes = router_notes(load_cluster(REPO / "cluster.example.yaml"))
    for name, mac, ip in [("horsehead", "00:1e:67:00:00:11", "192.168.2.11"),
                          ("tarantula", "00:1e:67:00:00:15", "192.168.2.15")]:
        assert f"| {name} | `{mac}` | `{ip}` |" in notes
        assert f"{mac}={name}={ip}=1440" in notes
    assert "nvram set wl0_mode=sta" in notes
    assert "nvram set wl0_ssid=HomeNetwork" in notes
    assert "nvram set static_leasenum=5" in notes
    assert "sudo ip route add 192.168.2.0/24 via 192.168.1.50" in notes
    assert "<your Wi-Fi passphrase>" in notes  # never a real secret


def test_nodes_without_mac_are_named_and_quoting_holds():
    cluster = parse_cluster(
        "router: {ssid: \"Bob's net; reboot\"}\n"
        "nodes:\n  - {name: a, host: 192.168.2.20, mac: 'AA:BB:CC:DD:EE:FF'}\n  - {name: b, host: 192.168.2.21}\n"
    )
    notes = router_notes(cluster)
    assert "No `mac:` in the inventory for b" in notes
    assert "aa:bb:cc:dd:ee:ff=a=192.168.2.20=1440" in notes
    assert "nvram set wl0_ssid='Bob'\"'\"'s net; reboot'" in notes
    assert "nvram set wan_proto=dhcp" in notes
