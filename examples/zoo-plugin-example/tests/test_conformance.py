from zoo.testing import check_plugin


def test_conformance():
    check_plugin("zoo_plugin_example")
