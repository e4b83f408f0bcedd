"""Cheap feast imports: typeguard checks instrumented on first call (nothing at import, each method once when first
used, a wrong argument type still raises ``TypeCheckError``) and torch imported only when feast asks for it
(both checked in a fresh interpreter, where feast is imported after the feature package)."""

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

from components.features.feast_import import lazy


def test_instrumentation_waits_for_the_first_call_and_happens_once() -> None:
    calls: list[str] = []

    def instrument(f: Any) -> Any:
        calls.append(f.__name__)

        def checked(x: int) -> int:
            if not isinstance(x, int):
                raise TypeError("x is not an int")
            return f(x) + 1000

        return checked

    def double(x: int) -> int:
        return 2 * x

    deferred = lazy(instrument)(double)
    assert calls == [] and deferred.__name__ == "double" and deferred.__wrapped__ is double
    assert deferred(2) == 1004 and deferred(3) == 1006
    assert calls == ["double"]


def test_reasons_pass_through_and_uninstrumentable_functions_run_unchecked() -> None:
    def wrapped() -> None: ...

    wrapped.__wrapped__ = print  # type: ignore[attr-defined]
    assert lazy(lambda f: "reason")(wrapped) == "reason"  # refused at once, as typeguard refuses

    def plain(x: int) -> int:
        return x

    assert lazy(lambda f: "instrumentor did not find the target function")(plain)(5) == 5


def test_coroutine_functions_stay_coroutine_functions() -> None:
    async def fetch(x: int) -> int:
        return x

    deferred = lazy(lambda f: f)(fetch)
    assert asyncio.iscoroutinefunction(deferred) and asyncio.run(deferred(4)) == 4


def test_feast_keeps_its_type_checks_and_gets_torch_on_demand() -> None:
    script = textwrap.dedent("""
        import sys
        import components.features
        import feast, typeguard
        from feast.infra.offline_stores.offline_store import get_torch
        assert "torch" not in sys.modules, "importing feast imported torch"
        init = feast.Entity.__init__
        assert getattr(init, "__wrapped__", None) is not None, "Entity.__init__ was instrumented at import"
        entity = feast.Entity(name="driver", join_keys=["driver_id"])
        assert entity.name == "driver"
        try:
            feast.Entity(name=123, join_keys=["driver_id"])
        except typeguard.TypeCheckError as err:
            print("TypeCheckError:", err)
        else:
            raise SystemExit("a wrong argument type was accepted")
        assert get_torch().tensor([1.0]).shape == (1,)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'argument "name" (int) is not an instance of str' in out.stdout
