"""The router notes: DD-WRT in client mode, written for this cluster.

The cluster sits on the router's LAN; the router joins the home Wi-Fi as a
client. These notes give the web-interface steps and the equivalent
`nvram set` commands. They are only notes: nothing here touches a router,
and the Wi-Fi passphrase is left as a placeholder, never written down.
"""

from __future__ import annotations

import ipaddress
import shlex

from fabfile.inventory import Cluster, Node, Router

SECURITY_MODES = {
    "wpa2-psk": ("psk2", "aes"),
    "wpa3-sae": ("sae", "aes"),
    "wpa-psk": ("psk", "tkip"),
    "none": ("disabled", ""),
}


def nvram_commands(cluster: Cluster) -> list[str]:
    router = cluster.router
    network = ipaddress.ip_interface(f"{router.lan_ip}/{router.lan_netmask}").network
    akm, crypto = SECURITY_MODES.get(router.security, SECURITY_MODES["wpa2-psk"])
    leases = [
        f"{node.mac}={node.name}={node.host}=1440"
        for node in cluster.nodes
        if node.mac and not node.is_local and _in(node.host, network)
    ]
    commands = [
        "nvram set wl0_mode=sta",
        f"nvram set wl0_ssid={shlex.quote(router.ssid)}",
        f"nvram set wl0_security_mode={akm}",
        f"nvram set wl0_akm={akm}",
    ]
    if crypto:
        commands += [f"nvram set wl0_crypto={crypto}", "nvram set wl0_wpa_psk='<your Wi-Fi passphrase>'"]
    commands += [
        f"nvram set lan_ipaddr={router.lan_ip}",
        f"nvram set lan_netmask={router.lan_netmask}",
        f"nvram set dhcp_start={router.dhcp_start}",
    ]
    if router.wan_ip and router.home_gateway:
        home = ipaddress.ip_interface(f"{router.wan_ip}/24")
        commands += [
            "nvram set wan_proto=static",
            f"nvram set wan_ipaddr={router.wan_ip}",
            f"nvram set wan_netmask={home.netmask}",
            f"nvram set wan_gateway={router.home_gateway}",
            f"nvram set wan_dns={router.home_gateway}",
        ]
    else:
        commands.append("nvram set wan_proto=dhcp")
    commands += [
        "nvram set wk_mode=router",
        f"nvram set static_leases={shlex.quote(' '.join(leases))}",
        f"nvram set static_leasenum={len(leases)}",
        "nvram commit",
        "reboot",
    ]
    return commands


MADE_UP = (
    "**Not your network yet**: the inventory has no `router:` section, so these notes use DD-WRT's "
    "example LAN (192.168.2.1/24) and SSID; add a `router:` section with yours and write them again."
)


def router_notes(cluster: Cluster) -> str:
    """The Markdown notes for this cluster's router."""
    router = cluster.router
    network = ipaddress.ip_interface(f"{router.lan_ip}/{router.lan_netmask}").network
    lines = [
        "# DD-WRT in client mode for this cluster",
        "",
        f"Written by `inv provision.router` from {cluster.source}. The router joins the home",
        f"network `{router.ssid}` as a Wi-Fi client; the render nodes sit on its LAN, {network}.",
        "",
        *([] if cluster.router_given else [MADE_UP, ""]),
        *_web_steps(router),
        *_leases([node for node in cluster.nodes if not node.is_local], network),
        "",
        "## The route from the home network",
        "",
        f"The home network reaches {network} through the router's home-side address"
        + (f" `{router.wan_ip}`." if router.wan_ip else " (its WAN address)."),
        "Add a static route on the home router, or on the laptop alone:",
        "",
        "```sh",
        f"sudo ip route add {network} via {router.wan_ip or '<router WAN address>'}",
        "```",
        "",
        "## The same with nvram (Administration → Commands, or over SSH/telnet)",
        "",
        "```sh",
        *nvram_commands(cluster),
        "```",
        "",
    ]
    return "\n".join(lines)


def _web_steps(router: Router) -> list[str]:
    """The notes' steps in DD-WRT's web interface."""
    if router.wan_ip and router.home_gateway:
        wan = [
            f"4. **Setup → Basic Setup → WAN Setup**: Static IP `{router.wan_ip}`, gateway and DNS",
            f"   `{router.home_gateway}`, so the home network can route to the cluster through it.",
        ]
    else:
        wan = ["4. **Setup → Basic Setup → WAN Setup**: Automatic Configuration (DHCP)."]
    return [
        "## In the web interface",
        "",
        "1. **Wireless → Basic Settings**: Wireless Mode *Client*; Wireless Network Name (SSID)",
        f"   `{router.ssid}`; Save.",
        f"2. **Wireless → Wireless Security**: Security Mode *{router.security.upper()}*, AES, the",
        "   home network's passphrase; Save.",
        f"3. **Setup → Basic Setup → Network Setup**: Local IP Address `{router.lan_ip}`, Subnet Mask",
        f"   `{router.lan_netmask}`; DHCP server on, starting at .{router.dhcp_start}.",
        *wan,
        "5. **Setup → Advanced Routing**: Operating Mode *Router* (no NAT between the home network",
        "   and the cluster, so the laptop reaches each node by its own address).",
        "6. **Services → Services → Static Leases**: one line per node, below. Save, Apply Settings.",
    ]


def _leases(nodes: list[Node], network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """The notes' table of static DHCP leases, a line per node with a MAC address."""
    lines = ["", "## Static DHCP leases", "", "| node | MAC | address |", "| --- | --- | --- |"]
    for node in nodes:
        if node.mac:
            note = "" if _in(node.host, network) else " (not in the LAN: check `host`)"
            lines.append(f"| {node.name} | `{node.mac}` | `{node.host}`{note} |")
    without = [node.name for node in nodes if not node.mac]
    if without:
        lines += ["", f"No `mac:` in the inventory for {', '.join(without)}: give them a fixed address by hand."]
    return lines


def _in(host: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return True  # a host name: the lease still names it
