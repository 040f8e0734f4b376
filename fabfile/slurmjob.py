"""A job's parts as Slurm job arrays: the task script, sbatch's options, and what a look
at the cluster says. Pure: text in, text and decisions out (fabfile.slurm acts on them).

Each submission is one array; task i renders the i-th part its script lists, in the
job's shared folder, and leaves `rc`, `node` and `times` beside the part's image
and log. povfarm follows its parts by those files and by `squeue`: a part whose
task left squeue without an `rc` was ended by Slurm (time limit, node lost, scancel).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fabfile.errors import JobError
from fabfile.inventory import SlurmOptions
from fabfile.sizing import first_wave
from fabfile.transport import shell_join

# A task gone from squeue is lost only when two looks in a row miss both it and its rc
# file: a shared filesystem may show the file a moment after the task has ended.
LOST_AFTER_LOOKS = 2
# squeue's reasons for a pending task that no wait will end: the job asks what the partition
# or the account never gives. Others (Resources, Priority, PartitionDown...) pass with time.
# Right after a submission squeue may show PartitionConfig until the scheduler has looked at
# the job (measured: 2 s, then PartitionTimeLimit), so a reason counts once it held a while.
HELD_LOOKS = 5
NEVER_STARTS = {
    "PartitionTimeLimit": "its time limit (slurm.time) is above the partition's",
    "PartitionNodeLimit": "it asks for more than the partition's node limits",
    "PartitionConfig": "it asks for what the partition is not configured for (cpus_per_task?)",
    "BadConstraints": "its constraints cannot be met (cpus_per_task?)",
    "InvalidAccount": "its account (slurm.account) is not valid",
    "InvalidQOS": "its QOS is not valid",
}
RC_MARK = "--povfarm-rc--"
LOG_MARK = "--povfarm-log--"


def job_name(job_id: str) -> str:
    """Every array of a povfarm job carries its id: squeue and scancel find them by it."""
    return f"povfarm-{job_id}"


def task_script(job_id: str, parts: Sequence[tuple[str, Sequence[str]]], scene_dir: str, parts_dir: str) -> str:
    """The array's batch script: task i runs POV-Ray (argv given, quoted here) for part i."""
    cases = "".join(f"  {index}) {shell_join(argv)} ;;\n" for index, (_, argv) in enumerate(parts))
    names = " ".join(shell_join([name]) for name, _ in parts)
    return (
        "#!/bin/bash\n"
        f"# povfarm job {job_id}: array task i renders the i-th part named below, then leaves its\n"
        "# exit status in the part's rc file (povfarm follows the files and squeue).\n"
        f"parts=({names})\n"
        'part=${parts[$SLURM_ARRAY_TASK_ID]}\n'
        f"dir={shell_join([parts_dir])}/$part\n"
        'mkdir -p "$dir" && rm -f "$dir/rc" "$dir/times" || exit 1\n'
        'echo "${SLURMD_NODENAME:-$(hostname)}" >"$dir/node"\n'
        f"cd {shell_join([scene_dir])} || exit 1\n"
        "start=$(date +%s.%N)\n"
        'case "$SLURM_ARRAY_TASK_ID" in\n'
        f"{cases}"
        "  *) echo \"povfarm: no part for array task $SLURM_ARRAY_TASK_ID\"; false ;;\n"
        'esac </dev/null >/dev/null 2>"$dir/log"\n'
        "rc=$?\n"
        'echo "$start $(date +%s.%N)" >"$dir/times"\n'
        'echo "$rc" >"$dir/rc"\n'
        'exit "$rc"\n'
    )


def sbatch_argv(options: SlurmOptions, job_id: str, count: int, root: str, script: str) -> list[str]:
    """sbatch's command line for an array of `count` parts; its output: the array's id."""
    argv = [
        options.sbatch, "--parsable", f"--array=0-{count - 1}", f"--job-name={job_name(job_id)}",
        f"--chdir={root}", f"--output={root}/slurm/%A_%a.out", f"--time={options.time}",
        f"--cpus-per-task={options.cpus_per_task}", "--ntasks=1", "--requeue",
    ]
    if options.partition:
        argv.append(f"--partition={options.partition}")
    if options.account:
        argv.append(f"--account={options.account}")
    return [*argv, script]


def parse_array_id(output: str) -> str:
    """sbatch --parsable prints `id` or `id;cluster`."""
    line = output.strip().splitlines()[-1] if output.strip() else ""
    array_id = line.split(";")[0].strip()
    if not array_id.isdigit():
        raise JobError(f"sbatch printed {output.strip()!r}, not a job id; check slurm.sbatch in the inventory")
    return array_id


def look_command(options: SlurmOptions, job_id: str, parts_dir: str, running: Iterable[str]) -> str:
    """One command for one look: the job's tasks in squeue, the parts' rc files, and the
    tail of running parts' logs (their progress). squeue comes first: a task gone from
    it has already written its rc, which the listing after it then sees."""
    squeue = shell_join([options.squeue, "-h", "-r", f"--name={job_name(job_id)}", "-o", "%i %T %r"])
    logs = " ".join(shell_join([f"{name}/log"]) for name in running)
    tails = f'for f in {logs}; do echo "{LOG_MARK} ${{f%/log}}"; tail -c 300 "$f" 2>/dev/null; echo; done; ' \
        if logs else ""
    return (
        f"{squeue} || exit 3; echo {RC_MARK}; cd {shell_join([parts_dir])} 2>/dev/null || exit 0; "
        'for d in */; do [ -f "$d/rc" ] && echo "${d%/} $(cat "$d/rc") $(cat "$d/node" 2>/dev/null) '
        '$(cat "$d/times" 2>/dev/null)"; done; '
        f"{tails}exit 0"
    )


@dataclass(frozen=True)
class Finished:
    """A part whose task wrote its rc: POV-Ray's exit status, the node, when (epoch seconds)."""

    rc: int
    node: str = ""
    start: float | None = None
    end: float | None = None


@dataclass
class Look:
    """What one look at the cluster found."""

    alive: dict[str, str] = field(default_factory=dict)  # "array_index" -> squeue state
    reasons: dict[str, str] = field(default_factory=dict)  # "array_index" -> why it is pending
    finished: dict[str, Finished] = field(default_factory=dict)  # part name -> its end
    logs: dict[str, str] = field(default_factory=dict)  # running part -> its log's tail


def parse_look(output: str) -> Look:
    look = Look()
    section = "squeue"
    log_part = None
    for line in output.splitlines():
        if line.startswith(RC_MARK):
            section = "rc"
            continue
        if line.startswith(LOG_MARK):
            section, log_part = "log", line[len(LOG_MARK):].strip()
            look.logs[log_part] = ""
            continue
        words = line.split()
        if section == "squeue" and len(words) >= 2:
            look.alive[words[0]] = words[1]
            if len(words) > 2 and words[1] == "PENDING":
                look.reasons[words[0]] = words[2]
        elif section == "rc" and len(words) >= 2 and re.fullmatch(r"-?\d+", words[1]):
            times = [float(w) for w in words[3:5] if re.fullmatch(r"\d+(\.\d+)?", w)]
            start, end = (times[0], times[1]) if len(times) == 2 else (None, None)
            look.finished[words[0]] = Finished(int(words[1]), words[2] if len(words) > 2 else "", start, end)
        elif section == "log" and log_part is not None:
            look.logs[log_part] += line + "\n"
    return look


@dataclass
class ArrayBook:
    """Which array task renders which part, and what each look means for them.

    Parts are submitted, kept when their rc says 0, failed when it says more,
    and lost when their task leaves squeue without an rc. Failed and lost parts
    go back to `waiting` until one has failed `max_failures` times.
    """

    waiting: list[str]
    max_failures: int = 2
    flying: dict[str, str] = field(default_factory=dict)  # part -> "array_index"
    failures: Counter = field(default_factory=Counter)
    unseen: Counter = field(default_factory=Counter)  # looks in a row that saw neither task nor rc
    held: int = 0  # looks in a row that saw every task pending for a reason no wait ends

    def submitted(self, array_id: str, parts: Sequence[str]) -> None:
        for index, name in enumerate(parts):
            self.flying[name] = f"{array_id}_{index}"
            self.waiting.remove(name)

    def adopt(self, arrays: dict[str, list[str]], alive: dict[str, str]) -> list[str]:
        """An earlier session's tasks still in squeue: follow them, do not submit their parts again."""
        adopted = []
        for array_id, parts in arrays.items():
            for index, name in enumerate(parts):
                if f"{array_id}_{index}" in alive and name in self.waiting:
                    self.flying[name] = f"{array_id}_{index}"
                    self.waiting.remove(name)
                    adopted.append(name)
        return adopted

    def observe(self, look: Look) -> tuple[list[str], list[str], list[str]]:
        """The parts this look found done, failed (rc not 0) and lost (gone from squeue, no rc)."""
        done, failed, lost = [], [], []
        for name, task in list(self.flying.items()):
            end = look.finished.get(name)
            if task in look.alive and (end is None or look.alive[task] != "COMPLETING"):
                self.unseen[name] = 0  # requeued by Slurm, or still running: an old rc is stale
                continue
            if end is not None:
                del self.flying[name]
                (done if end.rc == 0 else failed).append(name)
                continue
            self.unseen[name] += 1
            if self.unseen[name] >= LOST_AFTER_LOOKS:
                del self.flying[name]
                self.unseen[name] = 0
                lost.append(name)
        return done, failed, lost

    def retry(self, name: str) -> bool:
        """A failed or lost part goes back to waiting, unless it has failed too often."""
        self.failures[name] += 1
        if self.failures[name] > self.max_failures:
            return False
        self.waiting.append(name)
        return True

    def never_starts(self, look: Look) -> str | None:
        """Why Slurm will never start the job's tasks, once HELD_LOOKS looks in a row found all of
        them pending for such a reason; else None."""
        tasks = list(self.flying.values())
        reasons = [look.reasons.get(task) for task in tasks]
        if not tasks or any(look.alive.get(task) != "PENDING" or reason not in NEVER_STARTS
                            for task, reason in zip(tasks, reasons, strict=True)):
            self.held = 0
            return None
        self.held += 1
        reason = reasons[-1] or ""
        return f"{reason}: {NEVER_STARTS[reason]}" if self.held >= HELD_LOOKS else None

    @property
    def finished(self) -> bool:
        return not self.waiting and not self.flying

    def states(self, look: Look) -> Counter:
        """How many of the job's parts Slurm runs now and how many wait for a CPU."""
        return Counter("running" if look.alive.get(task) == "RUNNING" else "waiting" for task in self.flying.values())


def band_units(pending: Sequence[int], weights: dict[int, float], slots: int, per_slot: int) -> list[tuple[int, int]]:
    """A still's missing row blocks as runs of about equal cost, `per_slot` for each task
    Slurm can run at once: Slurm hands them out in order as CPUs come free, so a dear
    band is followed by cheaper ones on the other CPUs (bench/slurm_bands.py)."""
    count = max(1, min(len(pending), slots * per_slot))
    return first_wave(pending, weights, count)


def parse_cpus(output: str, cpus_per_task: int) -> int:
    """Tasks the partition can run at once, from `sinfo -h -o %C` (allocated/idle/other/total
    CPUs; "other" are down or drained)."""
    tasks = 0
    for line in output.split():
        fields = line.split("/")
        if len(fields) == 4 and all(f.isdigit() for f in fields):
            tasks += (int(fields[3]) - int(fields[2])) // max(1, cpus_per_task)
    return tasks
