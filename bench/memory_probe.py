"""Peak resident memory of the current process, for the benchmarks' child processes."""


def hwm():
    """Peak resident memory (VmHWM) of this process image in MB (``ru_maxrss`` would include the parent's
    before exec)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
