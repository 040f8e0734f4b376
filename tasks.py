"""povfarm's Invoke tasks: `inv --list` shows them. The work is in fabfile/."""

from invoke import Collection

from fabfile.tasks import cluster, jobs

ns = Collection()
ns.add_task(jobs.render)
ns.add_task(jobs.collect)
ns.add_task(jobs.merge)
ns.add_task(cluster.health)
ns.add_collection(cluster.provision_tasks)
