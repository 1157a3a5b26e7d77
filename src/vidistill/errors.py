"""Exceptions shared across stages (kept import-free so any module can raise them)."""


class VideoError(Exception):
    """A video could not be read (corrupt, empty, not a video). The file is skipped and recorded."""


class RunInUse(FileExistsError):
    """Another process holds this run directory's lock (two ``vidistill run`` on one --out)."""
