import pytest

import kue
from kue.options import Option, read_options

TABLE = (
    Option("max_body", "int", 100, "largest body", low=1, high=1000),
    Option("wait", "seconds", 5.0, "longest wait"),
    Option("create", "bool", False, "create missing queues"),
    Option("mode", "choice", "fast", "how", choices=("fast", "safe")),
    Option("prefix", "str", "kue", "key prefix"),
)


def test_defaults_fill_what_neither_the_url_nor_the_configuration_gives() -> None:
    values = read_options("demo", TABLE, "demo://host/")
    assert values.by_name == {"max_body": 100, "wait": 5.0, "create": False, "mode": "fast",
                              "prefix": "kue"}
    assert values.given == frozenset()


def test_the_url_query_wins_over_the_configuration() -> None:
    values = read_options("demo", TABLE, "demo://host/?max_body=7&create=yes",
                          {"max_body": 9, "mode": "safe", "wait": 0.5})
    assert (values["max_body"], values["create"], values["mode"], values["wait"]) == (
        7, True, "safe", 0.5)
    assert values.given == {"max_body", "create", "mode", "wait"}


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("demo://h/?colour=blue", {}, r"unknown demo option 'colour' in demo://h/\?colour=blue; "
                                      "known: create, max_body, mode, prefix, wait"),
        ("demo://h/", {"colour": 1}, "unknown demo option 'colour' in the configuration's"),
        ("demo://h/?max_body=0", {}, "max_body=0 in demo://h/.* out of range: 1 to 1000"),
        ("demo://h/", {"max_body": 1001}, "max_body=1001 .* out of range: 1 to 1000"),
        ("demo://h/?max_body=lots", {}, "max_body='lots' .* is not an integer"),
        ("demo://h/", {"max_body": True}, "max_body=True .* is not an integer"),
        ("demo://h/?wait=0", {}, "wait='0' .* must be above 0 seconds"),
        ("demo://h/?wait=nan", {}, "wait='nan' .* finite"),
        ("demo://h/?create=maybe", {}, "create='maybe' .* must be one of 1, true, yes, on, 0"),
        ("demo://h/?mode=slow", {}, "mode='slow' .* must be one of fast, safe"),
        ("demo://h/?wait=1&wait=2", {}, "'wait' is given twice"),
        ("demo://u:hunter2@h/?colour=1", {}, r"u:\*\*\*@h"),
    ],
)
def test_a_bad_option_names_the_value_and_the_limit(url: str, options: dict[str, object],
                                                     message: str) -> None:
    with pytest.raises(kue.ConfigError, match=message) as info:
        read_options("demo", TABLE, url, options)
    assert "hunter2" not in str(info.value)


def test_names_for_the_client_library_are_handed_on_in_order() -> None:
    values = read_options("demo", TABLE, "demo://h/?ssl_ca=x&prefix=p&db=2",
                          passthrough=lambda name: name == "db" or name.startswith("ssl_"),
                          passthrough_name="the client's db, ssl_*")
    assert values.passed == [("ssl_ca", "x"), ("db", "2")] and values["prefix"] == "p"
    with pytest.raises(kue.ConfigError, match=r"known: create.*; and the client's db, ssl_"):
        read_options("demo", TABLE, "demo://h/?dbb=2", passthrough=lambda name: name == "db",
                     passthrough_name="the client's db, ssl_*")


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("memory://x?size=3", {}, "unknown memory option 'size'.*known: none"),
        ("sqlite:///kue.sqlite3", {"synchronous": "sometimes"}, "synchronous='sometimes'"),
        ("sqlite:///kue.sqlite3?max_body=0", {}, "max_body=0 .* out of range: 1 to 1000000000"),
        ("sqlite:///kue.sqlite3?journal=wal", {}, "unknown sqlite option 'journal'"),
    ],
)
def test_the_builtin_backends_read_their_options_the_same_way(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(kue.ConfigError, match=message):
        kue.connect(url, queue="jobs", options=options)
