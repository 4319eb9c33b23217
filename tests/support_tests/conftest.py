"""Load the support fixtures for the tests that prove them.

Not `pytest_plugins = [...]`: pytest refuses that outside the rootdir's conftest as soon as
the whole suite runs (`pytest` from the project root). Registering on configure works in both
runs and is a no-op once the root conftest registers the plugin itself.
"""

import pytest

PLUGIN = "tests.support.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
