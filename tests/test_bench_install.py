"""The install-size bench reads an environment's files: sizes, largest packages, batch packages."""

from __future__ import annotations

from ltrr_core.bench.install import MIB, InstallReport, environment_size, render_install


def _environment(root, packages: dict[str, int]):
    site = root / "lib" / "python3.11" / "site-packages"
    for name, mib in packages.items():
        (site / name).mkdir(parents=True)
        (site / name / "data.bin").write_bytes(b"\0" * (mib * MIB))
        (site / f"{name}-1.0.dist-info").mkdir()
    return root


def test_sizes_name_the_largest_packages_and_any_batch_package(tmp_path):
    runtime = environment_size("runtime", _environment(tmp_path / "r", {"catboost": 3, "numpy": 1}))
    platform = environment_size("platform", _environment(tmp_path / "p", {"torch": 5, "catboost": 3, "numpy": 1}))
    assert runtime.largest == [("catboost", 3.0), ("numpy", 1.0)] and runtime.batch_packages == []
    assert platform.batch_packages == ["torch"] and platform.n_distributions == 3
    assert 9.0 <= platform.mib < 9.1  # every file under the environment
    page = render_install(InstallReport(runtime, platform, 12.0), "test machine", "ltrr bench-install")
    assert "| runtime | 4 | 2 | none | catboost 3, numpy 1 |" in page and "44% of the whole platform" in page
