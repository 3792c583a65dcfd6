"""The SLI provider table: every provider is one module built by ``create(ctx)``, and nothing else.

Table-driven over ``sluice.adapters.sli.PROVIDERS``: an unknown name is an error naming the
known ones (the sli function and ``sluice set sli-provider`` alike); each provider builds from a
minimal context; hostile sli.yaml content is a ``ConfigurationError`` naming the file, the level
and the field path, never a crash; product code constructs a provider only through its module's
``create(ctx)`` reached from the composition root; the builtin path imports no vendor client.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.adapters.sli import PROVIDERS, SECTIONS, create
from sluice.adapters.state.memory import MemoryStore
from sluice.cli.main import main
from sluice.compose import sli_provider
from sluice.config import Settings
from sluice.core.sli_config import LEVELS
from sluice.errors import ConfigurationError
from sluice.ports.sli import ProviderContext, SliProvider
from sluice.services.records import Records

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "functions" / "sluice"
KNOWN = ", ".join(sorted(PROVIDERS))

#: What each provider needs beyond an empty context to build: secrets by name. A new provider
#: without a line here fails ``test_every_provider_has_a_minimal_context``.
MINIMAL: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "builtin": {},
    "prometheus": {},
    "cloudwatch": {},
    "dynatrace": {"sluice-dynatrace-sockshop": {"tenant": "https://abc123.live.dynatrace.com", "token": "dt0c01.x"}},
}

#: The SLI files each provider reads (so the hostile-input property puts its input where it looks).
FILES: Mapping[str, tuple[str, ...]] = {
    "builtin": (),
    "prometheus": ("sli.yaml", "prometheus/sli.yaml"),
    "cloudwatch": ("sli.yaml",),
    "dynatrace": ("dynatrace/sli.yaml",),
}


def context(docs: Mapping[tuple[str, str], object] | None = None,
            secrets: Mapping[str, Mapping[str, str]] | None = None) -> ProviderContext:
    """A context over loaded documents keyed by (uri, level), no records, ``secrets`` by name."""
    docs, secrets = docs or {}, secrets or {}
    return ProviderContext(
        Settings(), "sockshop", "staging", "carts",
        levels=lambda uri: tuple(docs.get((uri, level)) for level in LEVELS),
        record=lambda _name: None, secret=secrets.get, load_measurements=lambda *_: None,
    )


def test_every_provider_has_a_minimal_context() -> None:
    """This suite's tables cover every provider of the product's table (a new one must be added here)."""
    assert set(MINIMAL) == set(PROVIDERS) == set(FILES)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_each_provider_builds_from_a_minimal_context(name: str) -> None:
    """``create(name, ctx)`` builds the provider with ``fetch``, from its own module's ``create``."""
    provider = create(name, context(secrets=MINIMAL[name]))
    assert callable(getattr(provider, "fetch", None))
    assert type(provider).__module__.startswith(PROVIDERS[name].module)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_each_module_has_one_factory_taking_ctx(name: str) -> None:
    """Every provider module exposes ``create(ctx)`` with exactly that one parameter."""
    factory = importlib.import_module(PROVIDERS[name].module).create
    assert list(inspect.signature(factory).parameters) == ["ctx"]


def test_the_folder_is_the_catalogue() -> None:
    """Every public module or package in adapters/sli/ is a provider in the table, and back."""
    folder = PACKAGE / "adapters" / "sli"
    found = {p.stem for p in folder.iterdir()
             if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert found == set(PROVIDERS)
    assert {f"sluice.adapters.sli.{n}" for n in found} == {p.module for p in PROVIDERS.values()}


@pytest.mark.parametrize("unknown", ["newrelic", "", "Prometheus", "builtin "])
def test_unknown_provider_is_an_error_naming_the_known_ones(unknown: str) -> None:
    """An unknown name is a ConfigurationError listing every provider of the table, through the
    table and through the composition root alike."""
    with pytest.raises(ConfigurationError) as direct:
        create(unknown, context())
    with pytest.raises(ConfigurationError) as composed:
        sli_provider(Settings(), Records(MemoryStore()), lambda: pytest.fail("no secret is read"), unknown,
                     "sockshop", "staging", "carts")
    for err in (direct, composed):
        assert f"unknown SLI provider {unknown!r}: expected one of {KNOWN}" in str(err.value)


def test_cli_refuses_an_unknown_provider_from_the_same_table(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """``sluice set sli-provider`` takes its valid names from the same table (exit 2, names listed)."""
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path / "state"))
    assert main(["create", "project", "sockshop", "--shipyard", str(ROOT / "examples" / "sockshop" / "shipyard.yaml")]) == 0
    capsys.readouterr()
    assert main(["set", "sli-provider", "newrelic", "--project", "sockshop"]) == 2
    assert f"expected one of {KNOWN}" in capsys.readouterr().err
    for name in PROVIDERS:
        assert main(["set", "sli-provider", name, "--project", "sockshop"]) == 0


#: (provider, file, level, document, text the error must contain: file and level, field path).
HOSTILE = [
    ("cloudwatch", "sli.yaml", "service", {"cloudwatch": {"indicators": {"rt": {"namespace": "N", "metric": "M", "period": 7}}}},
     "cloudwatch.indicators.rt.period"),
    ("cloudwatch", "sli.yaml", "project", {"cloudwatch": {"indicators": {"rt": {"metric": "M"}}}},
     "cloudwatch.indicators.rt.namespace"),
    ("cloudwatch", "sli.yaml", "stage", {"cloudwatch": {"region": "mars-1"}}, "cloudwatch.region"),
    ("cloudwatch", "sli.yaml", "stage", {"cloudwatch": ["a"]}, "cloudwatch: expected a mapping"),
    ("cloudwatch", "sli.yaml", "stage", {"cloudwatch": {"indicators": {"rt": {"namespace": "N", "metric": "M",
                                                                             "dimensions": {"S": ["x"]}}}}},
     "cloudwatch.indicators.rt.dimensions"),
    ("prometheus", "sli.yaml", "stage", {"indicators": {"a": ""}}, "indicators.a"),
    ("prometheus", "sli.yaml", "project", {"indicators": ["a"]}, "indicators: expected a mapping"),
    ("prometheus", "sli.yaml", "service", {"indicators": {"a": "up"}, "cloudwach": {}}, "cloudwach: unknown field"),
    ("prometheus", "prometheus/sli.yaml", "stage", {"indicators": {"a b": "up"}}, "indicators: 'a b'"),
    ("dynatrace", "dynatrace/sli.yaml", "service", {"indicators": {"a": 5}}, "indicators.a"),
    ("dynatrace", "dynatrace/sli.yaml", "project", "just text", "expected a mapping"),
]


@pytest.mark.parametrize(("name", "uri", "level", "doc", "field"), HOSTILE)
def test_hostile_sections_name_the_file_level_and_field(name: str, uri: str, level: str, doc: object, field: str) -> None:
    """A provider's invalid section is one ConfigurationError naming the service, the file, its level and the field."""
    with pytest.raises(ConfigurationError) as err:
        create(name, context({(uri, level): doc}, MINIMAL[name]))
    message = str(err.value)
    assert "carts in sockshop/staging" in message and f"{uri} ({level} level)" in message and field in message


def test_a_cloudwatch_section_is_no_error_for_the_other_providers() -> None:
    """sli.yaml's cloudwatch section (a provider's own, from the table) is left alone by prometheus."""
    assert {"cloudwatch"} == SECTIONS
    doc = {"indicators": {"a": "up"}, "cloudwatch": {"indicators": {"a": {"namespace": "N", "metric": "M"}}}}
    for name in ("prometheus", "cloudwatch"):
        create(name, context({("sli.yaml", "project"): doc}, MINIMAL[name]))


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_KEYS = st.sampled_from(["indicators", "cloudwatch", "spec_version", "region", "namespace", "metric", "dimensions",
                         "statistic", "period", "unit", "aggregate", "rt", "a"]) | st.text(max_size=6) | st.integers()
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["prometheus", "cloudwatch", "dynatrace"]), level=st.sampled_from(LEVELS),
       doc=_VALUES | st.dictionaries(_KEYS, _VALUES, max_size=4), pick=st.integers(0, 1))
def test_any_document_builds_or_is_one_configuration_error(name: str, level: str, doc: object, pick: int) -> None:
    """Whatever a stored SLI file holds, ``create`` builds the provider or raises one
    ConfigurationError naming the service, the file and the level — never another exception."""
    uri = FILES[name][pick % len(FILES[name])]
    try:
        provider: SliProvider = create(name, context({(uri, level): doc}, MINIMAL[name]))
    except ConfigurationError as err:
        assert "carts in sockshop/staging" in str(err) and f"{uri} ({level} level)" in str(err)
    else:
        assert callable(provider.fetch)


def _product_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_providers_are_constructed_only_by_their_own_module() -> None:
    """In the product, a ``*SliProvider(...)`` class is called only inside its provider's module
    (its ``create``), the table's ``create`` is imported only by the composition root, and the
    old keyword-configured ``create_provider`` is gone."""
    provider_dirs = {name: PACKAGE / "adapters" / "sli" / name for name in PROVIDERS}
    offenders: list[str] = []
    for path in _product_files():
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if called.endswith("SliProvider"):
                    owner = called.removesuffix("SliProvider").lower()
                    home = provider_dirs.get(owner)
                    if home is None or not (path == home.with_suffix(".py") or home in path.parents):
                        offenders.append(f"{rel}:{node.lineno} calls {called}")
                if called == "create_provider":
                    offenders.append(f"{rel}:{node.lineno} calls create_provider")
            if (isinstance(node, ast.ImportFrom) and node.module == "sluice.adapters.sli"
                    and any(alias.name == "create" for alias in node.names) and rel != "compose.py"):
                offenders.append(f"{rel}:{node.lineno} imports the table's create (only compose.py may)")
    assert offenders == []


def test_the_sli_function_has_no_provider_names() -> None:
    """functions/sli.py asks the composition root; it names no provider (no if-chain to extend)."""
    text = (PACKAGE / "functions" / "sli.py").read_text()
    body = text.split('"""', 2)[2]  # past the module docstring
    assert not [name for name in PROVIDERS if f'"{name}"' in body]


def test_the_builtin_path_imports_no_vendor_client_nor_yaml() -> None:
    """Building the builtin provider the way the sli function does imports none of the other
    providers' clients (nor the YAML loader, which it does not need)."""
    script = """
import sys
from sluice.functions import sli
from sluice.adapters.state.memory import MemoryStore
from sluice.config import Settings
from sluice.core.events import GetSli
from sluice.functions.runtime import Runtime
from sluice.services.records import Records
runtime = Runtime(Settings(), "sli")
runtime.__dict__["records"] = Records(MemoryStore())
request = GetSli(project="p", stage="s", service="c", sliProvider="builtin", start="2026-01-01T00:00:00Z",
                 end="2026-01-01T00:01:00Z", indicators=["throughput"])
print(type(sli.provider_for(runtime, runtime.records, "builtin", request)).__name__)
print(" ".join(sorted(m for m in ("yaml", "httpx", "boto3", "botocore", "prometheus_api_client", "requests",
                                  "kubernetes", "sluice.adapters.sli.prometheus", "sluice.adapters.sli.cloudwatch",
                                  "sluice.adapters.sli.dynatrace") if m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120).stdout
    built, loaded = [*out.splitlines(), ""][:2]
    assert built == "BuiltinSliProvider"
    assert loaded == ""
