"""Serving artifacts: the bundle (seam 3) and the champion (``champion``: the ``PROMOTED``
pointer the runtime serves and the gate decisions' history). The gates, promotion and rollback
are ``ltrr_core.promotion``, above the runtime (its smoke gate loads one)."""

from .bundle import BundleError, build_bundle, bundles_root, latest_bundle, verify_bundle

__all__ = ["BundleError", "build_bundle", "bundles_root", "latest_bundle", "verify_bundle"]
