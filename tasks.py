"""povfarm's Invoke tasks: `inv --list` shows them. The work is in fabfile/."""

from invoke import Collection

from fabfile.tasks import jobs
from fabfile.tasks.common import DEFAULTS

ns = Collection()
ns.add_task(jobs.render)
ns.add_task(jobs.collect)
ns.add_task(jobs.merge)
ns.configure({"povfarm": DEFAULTS})
