"""Engine options of ABI 1.2 from Python: numerics, plugin_dirs, log."""

from __future__ import annotations

import numpy as np
import pytest

import stretch
from conftest import BUILD, write_manifest

TEST_PLUGINS = BUILD / "tests" / "engine" / "test-plugins"  # logging-sampler


def test_numerics_option_overrides_the_environment(manifest, monkeypatch):
    ids = [5, 17, 42, 99, 7, 3, 250, 31]
    monkeypatch.delenv("STRETCH_NUMERICS", raising=False)
    with stretch.Engine(manifest, numerics="fast") as e:
        fast = e.score(ids)
    with stretch.Engine(manifest, numerics="ggml") as e:
        ggml = e.score(ids)
    monkeypatch.setenv("STRETCH_NUMERICS", "ggml")
    with stretch.Engine(manifest, numerics="fast") as e:
        fast_over_env = e.score(ids)
    assert not np.array_equal(fast, ggml), "the two modes round alike here: the test proves nothing"
    assert np.array_equal(fast, fast_over_env)
    with pytest.raises(ValueError):
        stretch.Engine(manifest, numerics="exact")


def test_plugin_dirs_and_log(workdir, model):
    if not (TEST_PLUGINS / "sampler" / "logging-sampler" / "plugin.yaml").exists():
        pytest.fail(f"{TEST_PLUGINS}: build the C tests first (cmake --build build)")
    m = write_manifest(workdir / "logging.yaml", model, samplers="  - plugin: logging-sampler\n")
    with pytest.raises(stretch.Error) as refused:
        stretch.Engine(m)
    assert "logging-sampler" in str(refused.value)
    lines = []
    with stretch.Engine(m, plugin_dirs=[TEST_PLUGINS],
                        log=lambda level, source, msg: lines.append((level, source, msg))) as e:
        assert e.generate("Hello", max_tokens=2).stats.n_generated >= 1
    assert (1, "logging-sampler", "created with margin 0.5") in lines


def test_backend_and_device_options(manifest, tmp_path, monkeypatch):
    """ABI 1.3: backend/device override the manifest; the info says which ran.
    On the OpenCL backend the greedy continuation is the CPU backend's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # The device follows the CPU's 8-lane dot kernels, not AVX-512's
    # repacked ones (docs/opencl.md, "Numerics").
    monkeypatch.setenv("STRETCH_ISA", "avx2")
    with stretch.Engine(manifest) as e:
        assert e.info.backend == "cpu" and e.info.device is None
        cpu = e.generate("The quick brown fox", max_tokens=8, ignore_eos=True).tokens
    try:
        cl = stretch.Engine(manifest, backend="opencl", device=0, no_kernel_cache=True)
    except stretch.Error as err:
        if "no OpenCL" in str(err):
            pytest.skip(f"no OpenCL here: {err}")
        raise
    with cl:
        assert cl.info.backend == "opencl" and cl.info.device
        assert cl.generate("The quick brown fox", max_tokens=8, ignore_eos=True).tokens == cpu
    with pytest.raises(stretch.Error) as refused:
        stretch.Engine(manifest, backend="opencl", device="no-such-device-xyz")
    assert "no-such-device-xyz" in str(refused.value)
