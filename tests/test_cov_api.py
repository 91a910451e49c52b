"""MockIMDS (the Python API) with a clock object of its own and whole-section overrides."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from imdsmock import MockIMDS
from imdsmock.clock import SystemClock
from imdsmock.errors import ImdsMockError


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


def test_mockimds_runs_on_a_clock_object_and_reset_leaves_it_alone() -> None:
    """A clock object given to MockIMDS is the one served from; reset() forgets edits but
    does not touch a clock that is not the manual one, and `clock` says why it is absent."""
    clock = SystemClock()
    with MockIMDS(clock=clock) as imds:
        imds.set_metadata("meta-data/ami-id", "ami-0edited")
        assert _get(imds.url + "/latest/meta-data/ami-id") == (200, b"ami-0edited")
        imds.reset()
        assert _get(imds.url + "/latest/meta-data/ami-id")[1] != b"ami-0edited"
        assert imds.app.clock is clock
        with pytest.raises(ImdsMockError, match="runs on the system clock"):
            _ = imds.clock


def test_mockimds_takes_a_whole_config_section_as_a_keyword() -> None:
    """A section name (options=...) as a keyword configures that whole section."""
    with MockIMDS(options={"http-tokens": "required"}) as imds:
        assert imds.config.options.http_tokens == "required"
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(imds.url + "/latest/meta-data/ami-id")
        exc.value.close()
        assert exc.value.code == 401


def test_manual_clock_refuses_to_go_backwards() -> None:
    """imds.clock.advance() with a negative number is a ValueError saying what is allowed."""
    with MockIMDS() as imds:
        with pytest.raises(ValueError, match="expected >= 0"):
            imds.clock.advance(-1)
        assert imds.clock.advance(0) == imds.clock.now()


def test_package_dir_lists_the_lazy_public_names() -> None:
    """dir(imdsmock) shows the public names even before they are first imported."""
    import imdsmock

    assert set(imdsmock.__all__) <= set(dir(imdsmock))
