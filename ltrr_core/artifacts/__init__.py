"""Serving artifacts: the bundle (seam 3) and its validated promotion (``promotion``: gates,
the ``PROMOTED`` pointer the runtime serves, history, rollback)."""

from .bundle import BundleError, build_bundle, bundles_root, latest_bundle, verify_bundle

__all__ = ["BundleError", "build_bundle", "bundles_root", "latest_bundle", "verify_bundle"]
