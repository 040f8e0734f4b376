"""povfarm's Invoke tasks: `inv --list` shows them. The work is in fabfile/."""

import gc

from invoke import Collection

from fabfile.tasks import cluster, jobs

ns = Collection()
ns.add_task(jobs.render)
ns.add_task(jobs.collect)
ns.add_task(jobs.merge)
ns.add_task(jobs.jobs)
ns.add_task(jobs.clean)
ns.add_task(jobs.report)
ns.add_task(cluster.health)
ns.add_collection(cluster.provision_tasks)

# What is imported by now (Invoke, Fabric, Paramiko, Pillow, rich) lives until the command
# exits: the garbage collector need not walk it again, neither during a render nor at exit,
# where it cost ~70 ms of every command on the test machine.
gc.freeze()
