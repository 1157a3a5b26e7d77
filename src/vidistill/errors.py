"""Exceptions shared across stages (kept import-free so any module can raise them)."""


class VideoError(Exception):
    """A video could not be read (corrupt, empty, not a video). The file is skipped and recorded."""


class RunInUse(FileExistsError):
    """Another process holds this run directory's lock (two ``vidistill run`` on one --out)."""


class CorruptArtifact(ValueError):
    """A file a stage wrote cannot be read back (truncated, damaged bytes, a checksum that
    does not match). Writes are atomic, so this is damage from outside (disk, copy, another
    tool): the message names the file and the command that makes it again, instead of a
    parser or torch traceback from deep inside a loader."""

    def __init__(self, path: object, problem: str, remake: str, delete: object = None):
        self.path, self.problem, self.remake = str(path), problem, remake
        what = "it" if delete is None else str(delete)
        super().__init__(f"{path} is damaged ({problem}); delete {what} and re-run {remake}")


class NonFiniteLoss(ArithmeticError):
    """A training loop met a NaN / Inf loss and stopped before saving anything from that step,
    so the last checkpoint on disk is still the last good one (the message names it)."""


# Import name → (distribution, extra) of every optional dependency (pyproject.toml
# [project.optional-dependencies]; tests/test_first_user_errors.py keeps the two in step).
OPTIONAL_DEPENDENCIES: dict[str, tuple[str, str]] = {
    "diffusers": ("diffusers", "models"),
    "transformers": ("transformers", "models"),
    "accelerate": ("accelerate", "models"),
    "matplotlib": ("matplotlib", "report"),
    "PIL": ("pillow", "report"),
}
# Import name → distribution of the required ones (missing only in a broken install).
REQUIRED_DEPENDENCIES: dict[str, str] = {
    "torch": "torch",
    "av": "av",
    "numpy": "numpy",
    "safetensors": "safetensors",
    "yaml": "pyyaml",
    "click": "click",
    "tqdm": "tqdm",
    "sklearn": "scikit-learn",
    "scipy": "scipy",  # comes with scikit-learn
}


def missing_dependency_message(err: ModuleNotFoundError) -> str | None:
    """What to install for a ModuleNotFoundError of one of our dependencies (None for any
    other module: that is a bug, and its traceback is the useful answer)."""
    top = (err.name or "").split(".")[0]
    if top in OPTIONAL_DEPENDENCIES:
        dist, extra = OPTIONAL_DEPENDENCIES[top]
        return (
            f"{dist} is not installed; this needs vidistill's optional '{extra}' "
            f"dependencies: pip install 'vidistill[{extra}]'"
        )
    if top == "torch":
        return (
            "torch is not installed; install the torch for your machine first "
            "(CPU: pip install torch; GPU: the wheel for your CUDA), then vidistill"
        )
    if top in REQUIRED_DEPENDENCIES:
        dist = REQUIRED_DEPENDENCIES[top]
        return f"{dist} is not installed, but vidistill needs it (a broken install?): pip install {dist}"
    return None


class RankFailed(RuntimeError):
    """A rank of a distributed job failed (or stopped answering): raised on the other ranks
    with a message naming it, so the job ends instead of hanging (``vidistill.distributed``)."""


def stop_if_not_finite(loss: float, what: str, kept: str, fix: str) -> None:
    """Raise :class:`NonFiniteLoss` when ``loss`` is NaN / Inf — called before the update it
    would make, so no weight (and nothing on disk) is poisoned. ``what`` names the loop and
    step, ``kept`` what is still good (the last checkpoint, or that nothing was written)."""
    if loss == loss and loss not in (float("inf"), float("-inf")):
        return
    raise NonFiniteLoss(f"{what}: non-finite loss {loss}; stopped, {kept}. {fix}")
