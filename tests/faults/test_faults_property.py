"""Property-based parsing (hypothesis): for ANY input, the ``-o KEY=VALUE`` options, a run
config, a folder dataset's CSV and a store's manifest are parsed as documented or refused
with the error the CLI turns into one line (naming the file) — never another exception.

Derandomized, so the examples (and the counts in docs/reliability.md) are the same on
every run.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zlib
from pathlib import Path

import click
import pytest
import yaml

pytest.importorskip("hypothesis")  # the dev extra; tests/faults runs without it otherwise
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vidistill.clipstore import ClipStore, _head_crc
from vidistill.commands.app import parse_key_values
from vidistill.datasets.folder import SPLITS, FolderDataset
from vidistill.pipeline import DEFAULTS, GENERATE_DEFAULTS, load_config

pytestmark = pytest.mark.fault("property")

SETTINGS = settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CLEAN = (ValueError, KeyError, FileNotFoundError)  # what the CLI reports as one Error line

scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False)
scalars |= st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def test_key_value_options(ledger) -> None:
    seen = [0]

    @SETTINGS
    @given(
        key=st.text(st.characters(exclude_characters="="), max_size=10),
        value=values,
        raw=st.text(max_size=20),
    )
    def prop(key: str, value, raw: str) -> None:
        seen[0] += 1
        name = key.strip().replace("-", "_")
        if not name:
            with pytest.raises(click.BadParameter):
                parse_key_values((f"{key}={json.dumps(value)}",))
            return
        assert parse_key_values((f"{key}={json.dumps(value)}",)) == {name: value}
        got = parse_key_values((f"{key}={raw}",))[name]  # JSON when it parses, else the text
        try:
            assert got == json.loads(raw) or got != got  # NaN from "NaN"
        except json.JSONDecodeError:
            assert got == raw.strip()
        if "=" not in raw:
            with pytest.raises(click.BadParameter, match="KEY=VALUE"):
                parse_key_values((raw,))

    prop()
    ledger.tried(seen[0])


def _section(keys: list[str]) -> st.SearchStrategy:
    """A mapping with some of ``keys``, any values."""
    return st.dictionaries(st.sampled_from(keys), values, min_size=1, max_size=3)


SECTIONS = {
    "generate": _section(sorted(GENERATE_DEFAULTS)),
    "evaluate": _section(["preset", "runs", "seed", "epochs", "width", "min_steps"]),
    "spec": _section(["frames", "size", "stride", "short_policy"]),
    "synthesize": st.dictionaries(st.sampled_from(["dm", "idtd", "nope"]), values, max_size=2),
    "vpcs": st.lists(st.integers(-2, 12) | values, max_size=3),
    "select": st.lists(st.sampled_from(["tac-dt", "herding", "nope"]) | values, max_size=2),
}
configs = st.fixed_dictionaries(
    {}, optional={k: SECTIONS.get(k, values) | values for k in DEFAULTS}
)
configs |= st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=3) | values


def test_run_config(ledger) -> None:
    seen = [0]

    @settings(SETTINGS, max_examples=300)
    @given(user=configs)
    def prop(user) -> None:
        seen[0] += 1
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cfg.yaml"
            path.write_text(yaml.safe_dump(user))
            try:
                cfg = load_config(path)
            except CLEAN:
                return
        assert set(cfg) == set(DEFAULTS)
        assert all(isinstance(v, int) and v >= 1 for v in cfg["vpcs"])

    prop()
    ledger.tried(seen[0])


cells = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=10)
rows = st.lists(
    st.tuples(
        cells, st.sampled_from(["a", "b", " a ", ""]) | cells, st.sampled_from([*SPLITS, "x", ""])
    )
    | st.lists(cells, max_size=4),
    max_size=6,
)


def test_folder_csv(ledger) -> None:
    seen = [0]

    @SETTINGS
    @given(
        header=st.sampled_from(
            [
                "path,label,split",
                "folder_name,label,split",
                "path,label",
                "\ufeffpath,label,split",
                "",
            ]
        ),
        body=rows,
    )
    def prop(header: str, body) -> None:
        seen[0] += 1
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            buf = io.StringIO()
            writer = csv.writer(buf)
            for row in body:
                writer.writerow(row)
            (root / "v.csv").write_text(header + "\n" + buf.getvalue(), encoding="utf-8")
            try:
                ds = FolderDataset(root, csv_file="v.csv")
            except CLEAN as err:
                assert "v.csv" in str(err) or "no videos found" in str(err), err
                return
            for item in ds.items():
                assert item.split in SPLITS and item.class_name == ds.class_names[item.label]
                assert item.class_name == item.class_name.strip() != ""
                assert (root / item.source).resolve().is_relative_to(root.resolve())

    prop()
    ledger.tried(seen[0])


@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory) -> dict[str, bytes]:
    from stores_tiny import tiny_store

    root = tiny_store(tmp_path_factory.mktemp("prop") / "s")
    return {
        name: (root / name).read_bytes() for name in ("store.json", "manifest.json", "clips.u8")
    }


records = st.lists(
    st.fixed_dictionaries(
        {"label": st.integers(-2, 4) | values, "split": st.sampled_from(["train", "test"]) | values}
    )
    | values,
    max_size=4,
)


def test_store_manifest(store_bytes, ledger) -> None:
    """Any manifest (CRCs made to match, so the validation itself is what is tested)."""
    seen = [0]

    @SETTINGS
    @given(manifest=st.fixed_dictionaries({"clips": records}) | values, skipped=values)
    def prop(manifest, skipped) -> None:
        seen[0] += 1
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "clips.u8").write_bytes(store_bytes["clips.u8"])
            if isinstance(manifest, dict):
                manifest = {**manifest, "skipped": skipped}
            text = json.dumps(manifest).encode()
            (root / "manifest.json").write_bytes(text)
            head = json.loads(store_bytes["store.json"])
            head["manifest_crc32"] = f"{zlib.crc32(text):08x}"
            head["crc32"] = _head_crc(head)
            (root / "store.json").write_text(json.dumps(head))
            try:
                store = ClipStore(root)
            except CLEAN as err:
                assert str(root) in str(err), err
                return
            assert len(store) == head["count"] == len(store.labels)
            assert all(0 <= lab < store.num_classes for lab in store.labels)

    prop()
    ledger.tried(seen[0])
