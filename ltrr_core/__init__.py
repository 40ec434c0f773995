"""ltrr_core: the domain library of the ltrr platform.

It never imports prefect: everything here is testable and usable without orchestration.
"""

__version__ = "0.1.0"
