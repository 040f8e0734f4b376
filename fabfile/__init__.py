"""povfarm: a POV-Ray render farm over SSH, driven by Invoke tasks.

The pure core (inventory, povopts, deps, plan, scheduler, merge, jobs) has no
SSH in it; transport.py alone talks to nodes, through Fabric.
"""
