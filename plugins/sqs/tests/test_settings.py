import pytest

from kue.errors import ConfigError
from kue_sqs.layout import Layout
from kue_sqs.settings import parse_bands, parse_settings


def test_a_full_url_parses() -> None:
    s = parse_settings(
        "sqs://AK:S%2Fecret@/?region=eu-west-1&endpoint=http://127.0.0.1:1&prefix=kue-"
        "&create=1&bands=100,1000&wait=5"
    )
    assert (s.region, s.endpoint, s.prefix, s.create, s.bands, s.wait) == (
        "eu-west-1", "http://127.0.0.1:1", "kue-", True, (0, 100, 1000), 5)
    assert (s.access_key, s.secret_key) == ("AK", "S/ecret")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqs://?colour=blue", "unknown sqs option 'colour'.*known: bands, create"),
        ("sqs://?wait=30", "wait=30 .* out of range: 1 to 20"),
        ("sqs://?create=maybe", "create='maybe'"),
        ("sqs://?bands=10,5", "strictly increasing"),
        ("sqs://?bands=0,x", "bands='0,x'"),
        ("sqs://?endpoint=127.0.0.1:9", "http"),
        ("sqs://somehost/?region=x", "takes no host"),
        ("sqs://?region=a&region=b", "twice"),
    ],
)
def test_bad_urls_name_the_value(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(url)


def test_one_band_means_no_bands() -> None:
    assert parse_bands("0") == ()
    assert parse_bands("") == ()
    assert parse_bands("5") == (0, 5)


def test_layout_names_bands_and_the_buried_companion() -> None:
    layout = Layout("kue-", (0, 100, 1000))
    assert layout.band_names("jobs") == ["kue-jobs", "kue-jobs-b100", "kue-jobs-b1000"]
    assert [layout.name_for("jobs", p) for p in (0, 99, 100, 999, 1000, 2**32 - 1)] == [
        "kue-jobs", "kue-jobs", "kue-jobs-b100", "kue-jobs-b100", "kue-jobs-b1000",
        "kue-jobs-b1000"]
    assert layout.buried_name("jobs") == "kue-jobs-buried"


@pytest.mark.parametrize("bad", ["has.dot", "has space", "", "x" * 70])
def test_queue_names_sqs_cannot_hold_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        Layout("kue-").check(bad)


def test_a_fifo_queue_name_is_refused_as_unsupported() -> None:
    import pytest

    import kue
    from kue_sqs.layout import Layout

    with pytest.raises(kue.Unsupported, match=r"FIFO queues \('jobs\.fifo'\).*add fifo=1"):
        Layout(prefix="kue-", bands=()).check("jobs.fifo")


def test_a_fifo_layout_ends_every_name_in_dot_fifo() -> None:
    layout = Layout("kue-", (0, 100), fifo=True)
    assert layout.band_names("jobs") == ["kue-jobs.fifo", "kue-jobs-b100.fifo"]
    assert layout.buried_name("jobs") == "kue-jobs-buried.fifo"
    longest = "x" * (80 - len("kue-") - len(f"-b{2**32 - 1}") - len(".fifo"))
    assert layout.check(longest) == longest  # its longest SQS name is exactly 80 characters
    with pytest.raises(ValueError, match="limit is"):
        layout.check(longest + "x")
