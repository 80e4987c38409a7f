"""The option, error and metric tables reach Python whole: every option is taken by name
or refused with ConfigError (never a panic or a crash), every error kind has its class,
and stats(), prometheus() and corral.metrics() list the same metrics."""

from __future__ import annotations

import builtins
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corral
from corral import _corral

OPTIONS = {o["name"]: o for o in corral.options()}


def start(name, value):
    """An engine of the kind the option applies to, with that one option."""
    if OPTIONS[name]["applies"] == "handoff":
        return corral.listen(**{name: value})
    return corral.serve(lambda r: b"", **{name: value})


def test_the_table_is_complete_and_documented():
    assert {"io_workers", "cpu_threads", "idle_timeout", "handoff_capacity", "per_ip_scope"} <= set(OPTIONS)
    for o in OPTIONS.values():
        assert o["doc"] and o["range"] and o["default"], o
        assert o["applies"] in ("serve", "handoff", "both")


def test_unknown_names_and_huge_values_are_config_errors():
    with pytest.raises(corral.ConfigError, match="unknown option 'idle_timeot'|unknown option \"idle_timeot\""):
        corral.serve(lambda r: b"", idle_timeot=5)
    with pytest.raises(corral.ConfigError, match=r"idle_timeout = 1e20 is out of range: use 1 ms to 365 days"):
        corral.serve(lambda r: b"", idle_timeout=1e20)
    with pytest.raises(corral.ConfigError, match="out of range"):
        corral.serve(lambda r: b"", idle_timeout=float("nan"))
    with pytest.raises(corral.ConfigError, match="out of range"):
        corral.serve(lambda r: b"", max_in_flight=10**40)
    with pytest.raises(corral.ConfigError, match="not bytes"):
        corral.serve(lambda r: b"", protocol=b"http")
    with pytest.raises(corral.ConfigError, match="no effect on a handoff engine"):
        corral.listen(max_in_flight=4)
    with pytest.raises(corral.ConfigError, match="no effect in the pool model"):
        corral.serve(lambda r: b"", model="pool", cpu_threads=2)
    with pytest.raises(corral.ConfigError, match="timeout"):
        corral.serve(lambda r: b"").close(timeout=float("inf"))


def test_zero_means_off_for_codel_as_in_every_front():
    with corral.serve(lambda r: b"", codel_target=0) as server:
        assert server.stats()["cpu_queue_overloaded"] == 0


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["250ms", "1.5s", "0", "100us", "-1s", "stealing", "http", "true", "\udcff"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(OPTIONS)), value=values)
def test_every_option_with_any_value_is_taken_or_refused_cleanly(name, value):
    try:
        engine = start(name, value)
    except corral.ConfigError as e:
        assert str(e), "a refusal says why"
        return
    engine.close(5.0)


def test_each_error_kind_has_its_class():
    for code, cls in _corral.error_classes():
        assert code.startswith("CORRAL_")
        found = getattr(corral, cls, None) or getattr(builtins, cls, None)
        assert isinstance(found, type) and issubclass(found, Exception), cls


def test_stats_prometheus_and_the_metrics_list_agree():
    names = {m["name"] for m in corral.metrics()}
    with corral.serve(lambda r: b"x", io_workers=2) as server:
        st_ = server.stats()
        flat = set(st_) - {"listeners", "workers"}
        assert flat == names
        prom = set()
        for line in server.prometheus().splitlines():
            m = re.match(r"# TYPE corral_(\w+) (counter|gauge)", line)
            if m:
                prom.add(m.group(1)[: -len("_total")] if m.group(2) == "counter" else m.group(1))
        assert prom == names
        scoped = {m["name"] for m in corral.metrics() if m["scope"] == "worker"}
        assert len(st_["workers"]) == 2 and set(st_["workers"][0]) == scoped
        assert all(isinstance(st_[n], int) for n in ("replies", "accepts", "connections_refused_per_ip"))
        assert isinstance(st_["uptime_seconds"], float) and not math.isnan(st_["uptime_seconds"])
