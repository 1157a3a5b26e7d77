"""Exceptions shared across stages (kept import-free so any module can raise them)."""


class VideoError(Exception):
    """A video could not be read (corrupt, empty, not a video). The file is skipped and recorded."""
